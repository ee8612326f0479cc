"""A study killed in the middle of attribution and rerun loses nothing: the rerun resumes the
killed job from its saved chunk (ipg.core.checkpoint) and every attribution table and downstream
table equals the uninterrupted run's (the session's finished_study, same config and cores).

Attribution tables (the killed job's output and its siblings) are compared bitwise: the
parquet bytes and, with pandas check_exact, every score, CI and per-prompt column. Downstream
tables (steering rows and summaries, report tables) are compared as data to 1e-6 (rtol, atol):
steering with mean ablation (ipg.core.intervention.trajectory_means) is not bitwise reproducible
between two runs even without any kill (observed: entropies of 3 of 36 heads rows differing
at ~1e-7 with identical tokens), so an exact check there would test that, not resumption.
Wall-clock columns and tables (wall_seconds, walltimes.csv) are left out.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from ipg.workflow import layout as L

pytestmark = [pytest.mark.workflow, pytest.mark.slow]  # a second full study run: minutes

ROOT = Path(__file__).resolve().parents[2]
CORES = os.environ.get("IPG_TEST_CORES", "2")  # as finished_study (conftest STUDY_CORES): same floats


def _snakemake_cmd(workdir: Path, config: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
            str(workdir), "--configfile", str(config), "--cores", CORES, "--rerun-incomplete"]


def _interrupted_stores(workdir: Path) -> list[Path]:
    """Attribution chunk stores holding a chunk whose table was not written (a killed job)."""
    out = []
    for store in (workdir / "results" / "attribution").rglob("*.chunks"):
        table = store.with_name(store.name.removesuffix(".chunks"))
        if list(store.glob("chunk-*.npz")) and not table.exists():
            out.append(store)
    return out


def _run_until_first_attribution_chunk(workdir: Path, config: Path, log: Path) -> bool:
    """Start the study, SIGKILL its process group as soon as an attribution chunk is on disk.
    False if the study finished first."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
    with open(log, "a") as fh:
        proc = subprocess.Popen(_snakemake_cmd(workdir, config), stdout=fh, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # its own process group
        deadline = time.monotonic() + 1800
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if any((workdir / "results" / "attribution").glob("**/*.chunks/chunk-*.npz")):
                    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the running job alike
                    proc.wait()
                    return True
                time.sleep(0.01)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return False


def _tables(root: Path) -> list[Path]:
    found = [p for sub in ("results/attribution", "results/intervention", "results/transfer")
             for p in (root / sub).rglob("*") if p.suffix in (".parquet", ".csv")]
    # the report of test.yaml (not the default study): {results_dir}/reports/test (ipg.workflow.layout)
    found += [p for p in (root / L.reports_dir("results", "test") / "tables").rglob("*.csv")
              if not TIMING.search(p.stem)]  # walltimes.csv: the rules' wall-clock times
    return sorted(p.relative_to(root) for p in found)


TIMING = re.compile(r"seconds|per_second|^time|_time$|walltime")  # wall clock: never equal


def _read(path: Path) -> pd.DataFrame:
    """A table without its wall-clock columns (e.g. reports/tables/attribution.csv's
    wall_seconds): they measure this machine's speed, not a result."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if TIMING.search(str(c))])


def test_killed_attribution_resumes_to_identical_outputs(finished_study, run_snakemake, tmp_path):
    reference, config = finished_study
    workdir = tmp_path / "study"
    workdir.mkdir()
    cfg = workdir / "test.yaml"
    shutil.copy(config, cfg)  # the very same config as the uninterrupted run
    log = tmp_path / "snakemake.log"

    # 1. Run until an attribution job has saved a chunk, then SIGKILL everything. A job can
    #    finish between the poll and the kill: go on killing later jobs until one is caught.
    killed = []
    for _ in range(4):
        if not _run_until_first_attribution_chunk(workdir, cfg, log):
            break
        killed = _interrupted_stores(workdir)
        if killed:
            break
        run_snakemake(workdir, cfg, "--unlock")
    assert killed, f"no attribution job was caught mid-run; log tail:\n{log.read_text()[-3000:]}"

    # 2. Rerun (the kill left Snakemake's lock behind) with --rerun-incomplete, to the end.
    assert run_snakemake(workdir, cfg, "--unlock").returncode == 0
    result = run_snakemake(workdir, cfg, "--cores", CORES, "--rerun-incomplete", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    for store in killed:  # each killed job resumed from its chunks, then removed them
        rel = store.relative_to(workdir / "results" / "attribution")
        job_log = workdir / "logs" / "attribute" / str(rel).removesuffix(".parquet.chunks")
        assert "resuming from" in job_log.with_suffix(".log").read_text(), job_log
        assert not store.exists()
    assert not list((workdir / "results").rglob("*.chunks"))

    # 3. Every attribution table and downstream table equals the uninterrupted run's.
    tables = _tables(reference)
    assert [t for t in tables if t.parts[1] == "attribution"], "no attribution tables"
    assert _tables(workdir) == tables
    for rel in tables:
        got, want = _read(workdir / rel), _read(reference / rel)
        if rel.parts[1] == "attribution":  # the resumed job's own output: bitwise
            assert (workdir / rel).read_bytes() == (reference / rel).read_bytes() or \
                rel.suffix != ".parquet", rel
            pd.testing.assert_frame_equal(got, want, check_exact=True, obj=str(rel))
        else:  # downstream: same rows; floats to 1e-6 (see the module docstring)
            pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-6,
                                          obj=str(rel))
