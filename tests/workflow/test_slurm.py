"""A real Slurm run: profiles/slurm runs a CI-sized study through snakemake-executor-plugin-slurm
on a one-node Slurm (scripts/slurm_single_node.sh: slurmctld, slurmd, munged, no accounting
database, so job status comes from squeue), and its outputs equal a local run's.

The study is config/test.yaml's tiny-qwen2 entry (one task, two granularities; the organism
trains for minutes on a busy CPU). The profile is profiles/slurm as shipped, fitted to the node
by scripts/slurm_node_profile.py: threads and memory capped to its CPUs and memory, no `gpu`
request (it has none), squeue status.
Skips with the reason when Slurm cannot be installed or started (not root, no apt, ...).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm_single_node.sh"
# columns / keys that measure the run, not the result
RUN_MEASURES = ("second", "time", "rss", "duration", "started", "finished", "host", "path")

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm_node() -> dict:
    """A running one-node Slurm: {'cpus': int, 'mem_mb': int}; skips when it cannot start."""
    if shutil.which("sinfo") is None or subprocess.run(["sinfo", "-h"], capture_output=True).returncode:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("no running Slurm, and scripts/slurm_single_node.sh needs root and apt-get")
        try:
            started = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                                     timeout=900)
        except subprocess.TimeoutExpired:
            pytest.skip("scripts/slurm_single_node.sh did not finish in 15 min")
        if started.returncode != 0:
            pytest.skip(f"cannot start Slurm: {(started.stderr or started.stdout).strip()[-300:]}")
    line = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m"], capture_output=True, text=True,
                          check=True).stdout.split()
    return {"cpus": int(line[0]), "mem_mb": int(line[1])}


def small_study(path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["study"] = [{**e, "tasks": e["tasks"][:1], "granularities": ["neurons", "heads"]}
                    for e in cfg["study"] if e["model"] == "tiny-qwen2"]
    for key in ("model_params", "sensitivity", "cross_task"):
        cfg.pop(key, None)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def node_profile(out: Path) -> Path:
    """profiles/slurm fitted to the node by scripts/slurm_node_profile.py."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "slurm_node_profile.py"), str(out)],
                   check=True, capture_output=True)
    return out


def comparable(path: Path):
    """A result file's content without the columns/keys that measure the run."""
    def keep(name) -> bool:
        return not any(word in str(name).lower() for word in RUN_MEASURES)
    if path.suffix in (".parquet", ".csv"):
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return frame[[c for c in frame.columns if keep(c)]]
    if path.suffix == ".json":
        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if keep(k)}
            return [strip(v) for v in value] if isinstance(value, list) else value
        return strip(json.loads(path.read_text()))
    return path.read_bytes()


def result_files(workdir: Path) -> dict[str, Path]:
    return {p.relative_to(workdir).as_posix(): p
            for folder in ("data/prepared", "results/trajectories", "results/attribution",
                           "results/intervention")
            for p in sorted((workdir / folder).rglob("*"))
            if p.is_file() and p.suffix in (".parquet", ".csv", ".json")}


def test_study_through_slurm_matches_local_run(slurm_node, tmp_path, run_snakemake):
    config = small_study(tmp_path / "study.yaml")
    profile = node_profile(tmp_path / "profiles" / "slurm")

    local = tmp_path / "local"
    local.mkdir()
    result = run_snakemake(local, config, "--cores", str(slurm_node["cpus"]), timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]

    cluster = tmp_path / "cluster"
    cluster.mkdir()
    start = time.time()
    result = run_snakemake(cluster, config, "--profile", str(profile), timeout=2400)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    print(f"slurm run: {time.time() - start:.0f} s")

    # the jobs really went through Slurm: sbatch'd with the profile's partition and CPUs
    assert "executor: slurm" in out.lower() or "slurm" in out.lower()
    logs = cluster / ".snakemake" / "slurm_logs"
    ran = {p.name.removeprefix("rule_") for p in logs.iterdir() if p.is_dir()}
    assert {"prepare_task", "build_model", "sample_trajectories", "attribute",
            "evaluate_steering"} <= ran, ran
    jobs = subprocess.run(["squeue", "-t", "all", "-h", "-o", "%k|%P|%C|%T"], capture_output=True,
                          text=True, check=True).stdout.splitlines()
    attribute = [j.split("|") for j in jobs if j.startswith("rule_attribute")]
    assert attribute and all(p == "gpu" and c == str(slurm_node["cpus"]) and s == "COMPLETED"
                             for _, p, c, s in attribute), attribute

    local_files, cluster_files = result_files(local), result_files(cluster)
    assert local_files and set(cluster_files) == set(local_files)
    assert any(name.startswith("results/attribution/") and name.endswith(".parquet")
               for name in local_files)
    for name, path in local_files.items():
        expected, got = comparable(path), comparable(cluster_files[name])
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)
        else:
            assert got == expected, name
