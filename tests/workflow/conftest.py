"""Shared by the workflow tests: one finished run of config/test.yaml per session, and helpers
to run Snakemake on it (in a temp directory, with the repo's Snakefile) and parse dry runs.

Helpers are fixtures (`run_snakemake`, `planned_jobs`, `planned_messages`) because tests run with
--import-mode=importlib, where a test module cannot import this file.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}


# finished_study's --cores (torch threads a job); IPG_TEST_CORES=1 runs it on one core of a busy
# machine. Tests that compare their own runs with it take the same (`study_cores`).
STUDY_CORES = int(os.environ.get("IPG_TEST_CORES", "2"))


def snakemake(workdir: Path, config: Path | None, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the repo's Snakefile in `workdir` (with `--configfile config` unless None)."""
    configfile = ["--configfile", str(config)] if config is not None else []
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *configfile, *args],
        capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=timeout,
    )


def jobs_of(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run into {rule: count}."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
            if m[1] != "total"}


def messages_of(output: str) -> list[str]:
    """The `message:` of every job a dry run plans ("Job 12: Attributing ..." lines)."""
    return re.findall(r"^Job \d+: (.+)$", output, flags=re.M)


@pytest.fixture(scope="session")
def run_snakemake():
    return snakemake


@pytest.fixture(scope="session")
def planned_jobs():
    return jobs_of


@pytest.fixture(scope="session")
def planned_messages():
    return messages_of


@pytest.fixture(scope="session")
def study_cores() -> int:
    return STUDY_CORES


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory):
    """(workdir, config): config/test.yaml run to the end in a temp directory (a few minutes).

    Session-scoped: every workflow test reads it; tests only dry-run edited copies of the
    config against it and must never write into it."""
    workdir = tmp_path_factory.mktemp("study")
    config = workdir / "test.yaml"
    shutil.copy(ROOT / "config" / "test.yaml", config)
    # minutes on an idle 2-core runner (the organism trains out of band); generous for a busy one
    result = snakemake(workdir, config, "--cores", str(STUDY_CORES), timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, config
