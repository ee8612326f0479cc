"""The workflow end to end on the CI-sized config: runs, is idempotent, reruns only what changed."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(config), *args],
        capture_output=True, text=True, env=env, timeout=900,
    )


def planned_jobs(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run into {rule: count}."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
            if m[1] != "total"}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    config = workdir / "test.yaml"
    shutil.copy(ROOT / "config" / "test.yaml", config)
    result = snakemake(workdir, config, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, config


def test_study_produces_trajectories(finished_study):
    workdir, config = finished_study
    cfg = yaml.safe_load(config.read_text())
    G = cfg["sampling"]["samples_per_prompt"]
    for task in cfg["study"][0]["tasks"]:
        prepared = pd.read_parquet(workdir / f"data/prepared/{task}.parquet")
        assert set(prepared["split"]) == {"attribution", "heldout"}
        table = pd.read_parquet(workdir / f"results/trajectories/tiny-qwen2/{task}/0.parquet")
        n_prompts = (prepared["split"] == "attribution").sum()
        assert len(table) == n_prompts * G
        assert table.groupby("prompt_id").size().eq(G).all()
        assert table["gen_ids"].map(len).le(cfg["sampling"]["max_new_tokens"]).all()
        metrics = json.loads((workdir / f"results/trajectories/tiny-qwen2/{task}/0.json").read_text())
        assert metrics["n_trajectories"] == len(table)
        assert metrics["tokens_per_second"] > 0
        assert (workdir / f"logs/sample_trajectories/tiny-qwen2/{task}/0.log").exists()


def test_finished_study_has_nothing_to_do(finished_study):
    workdir, config = finished_study
    result = snakemake(workdir, config, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_task_reruns_only_that_task(finished_study):
    workdir, config = finished_study
    cfg = yaml.safe_load(config.read_text())
    cfg.setdefault("data", {}).setdefault("task_params", {})["chain_sum"] = {
        "min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}
    edited = workdir / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg))
    result = snakemake(workdir, edited, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    assert planned_jobs(out) == {"prepare_task": 1, "sample_trajectories": 1, "all": 1}, out[-3000:]
    assert "data/prepared/chain_sum.parquet" in out
    assert "basic_arithmetic" not in out.split("Job stats:")[0].replace("input: ", "")
