"""A real Slurm run: profiles/slurm runs the CI-sized study (config/test.yaml, exactly the
session's finished_study) through snakemake-executor-plugin-slurm on a one-node Slurm
(scripts/slurm_single_node.sh: slurmctld, slurmd, munged, no accounting database, so job
status comes from squeue), and its outputs equal that local run's.

The profile is profiles/slurm as shipped, fitted to the node by scripts/slurm_node_profile.py
(threads and memory capped to its CPUs and memory, no `gpu` request, squeue status) with
`--cores` set to finished_study's cores: the same torch thread count, so the same floats.
Compared as tests/workflow/test_interrupt.py compares a resumed run: every table and JSON under
data/ and results/; data, trajectories and attribution exactly, the rest (model cards and
training curves, steering, transfer, sensitivity, reliability, report tables) to 1e-6 (steering
with mean ablation is not bitwise reproducible between two runs, see that module); wall-clock,
memory, host and path columns/keys left out (RUN_MEASURE).
Run time: the local run and the Slurm run are each the CI-sized study (58 jobs); on one core
of a shared 2-core machine under other load the local run did 8 of 58 jobs in 30 min.
Skips with the reason when Slurm cannot be installed or started (not root, no apt, ...).
"""
from __future__ import annotations

import json
import math
import os
import re
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
# columns / keys that measure the run (wall clock, memory, host, where it ran), not the result
RUN_MEASURE = re.compile(r"second|time|rss|duration|started|finished|host|path|dir$|file$",
                         re.IGNORECASE)
EXACT = ("data/", "results/trajectories/", "results/attribution/")  # bitwise-reproducible stages
# rules that run a model: each must have gone through Slurm's `gpu` partition
MODEL_RULES = {"build_model", "sample_trajectories", "attribute", "train_sae",
               "evaluate_steering", "evaluate_transfer", "sensitivity_variant",
               "reliability_sample", "reliability_attribute"}

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


def node_profile(out: Path, cores: int) -> Path:
    """profiles/slurm fitted to the node by scripts/slurm_node_profile.py, `cores` threads a job."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "slurm_node_profile.py"),
                           str(out), "--cores", str(cores)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def comparable(path: Path):
    """A result file's content without the columns/keys that measure the run."""
    if path.suffix in (".parquet", ".csv"):
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return frame[[c for c in frame.columns if not RUN_MEASURE.search(str(c))]]

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not RUN_MEASURE.search(str(k))}
        return [strip(v) for v in value] if isinstance(value, list) else value
    return strip(json.loads(path.read_text()))


def result_files(workdir: Path) -> dict[str, Path]:
    """Every table and JSON result under data/ and results/ (not wall-clock tables, and not
    results/tracking/: its record names the run's own MLflow store and run ids)."""
    return {p.relative_to(workdir).as_posix(): p
            for folder in ("data", "results") for p in sorted((workdir / folder).rglob("*"))
            if p.is_file() and p.suffix in (".parquet", ".csv", ".json")
            and not RUN_MEASURE.search(p.stem) and "walltime" not in p.stem
            and not p.relative_to(workdir).as_posix().startswith("results/tracking/")}


def close(got, want) -> bool:
    """JSON values equal, floats to 1e-6 (rel or abs; NaN equals NaN)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and \
            all(close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(close, got, want))
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and isinstance(want, (int, float)) and (
            math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6) or (got != got and want != want))
    return got == want


def assert_same(name: str, got, want) -> None:
    exact = name.startswith(EXACT)
    if isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want, check_exact=exact, rtol=1e-6, atol=1e-6, obj=name)
    else:
        assert got == want if exact else close(got, want), name


def test_ci_study_through_slurm_matches_local_run(slurm_node, finished_study, study_cores,
                                                   tmp_path, run_snakemake):
    local, config = finished_study  # config/test.yaml run with --cores study_cores
    assert study_cores <= slurm_node["cpus"], "the node has fewer CPUs than the local run's cores"
    profile = node_profile(tmp_path / "profiles" / "slurm", study_cores)
    assert yaml.safe_load((profile / "config.yaml").read_text())["executor"] == "slurm"

    cluster = tmp_path / "cluster"
    cluster.mkdir()
    shutil.copy(config, cluster / config.name)
    start = time.time()
    result = run_snakemake(cluster, cluster / config.name, "--profile", str(profile), timeout=3600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    print(f"slurm run of config/test.yaml: {time.time() - start:.0f} s")

    # every job was sbatch'd (one slurm log folder per rule); model rules on `gpu` with the cores
    logs = cluster / ".snakemake" / "slurm_logs"
    ran = {p.name.removeprefix("rule_") for p in logs.iterdir() if p.is_dir()}
    jobs = [j.split("|") for j in subprocess.run(
        ["squeue", "-t", "all", "-h", "-o", "%k|%P|%C|%T|%Z"], capture_output=True, text=True,
        check=True).stdout.splitlines()]
    ours = [j for j in jobs if Path(j[4]).resolve() == cluster.resolve()]
    assert ours and {rule.removeprefix("rule_").split("_wildcards")[0] for rule, *_ in ours} == ran
    assert all(state == "COMPLETED" for *_, state, _ in ours), ours
    model_jobs = [j for j in ours if any(j[0].startswith(f"rule_{r}") for r in MODEL_RULES)]
    assert {"build_model", "sample_trajectories", "attribute", "evaluate_steering"} <= ran, ran
    assert model_jobs and all(p == "gpu" and int(c) <= study_cores for _, p, c, *_ in model_jobs)

    local_files, cluster_files = result_files(local), result_files(cluster)
    assert set(cluster_files) == set(local_files)
    assert any(n.startswith("results/attribution/") and n.endswith(".parquet") for n in local_files)
    assert any(n.startswith("results/intervention/") for n in local_files)
    for name, path in local_files.items():
        assert_same(name, comparable(cluster_files[name]), comparable(path))
