"""The cluster profiles and the paper's config build the study's DAG (dry runs, in temp dirs),
and every rule that runs a model asks the cluster for a GPU."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from ipg.config import (
    attribution_targets, load_config, model_task_pairs, models_in_study, steering_targets,
    transfer_targets,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow

# Rules whose job loads (or builds) a model: on a cluster each needs a GPU node.
GPU_RULES = ("build_model", "sample_trajectories", "attribute", "train_sae",
             "evaluate_steering", "evaluate_transfer", "bench_attribution")


def profile_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def local_profile(name: str, tmp_path: Path) -> Path:
    """A copy of profiles/<name> runnable here: without conda on PATH the conda deployment
    method is dropped (a dry run with it calls `conda info`); everything else is kept."""
    cfg = profile_yaml(name)
    if shutil.which("conda") is None and shutil.which("mamba") is None:
        cfg.pop("software-deployment-method", None)
    out = tmp_path / "profiles" / name
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    return out


def expected_jobs(config_path: Path) -> dict[str, int]:
    """{rule: jobs} of a from-scratch run of a config, computed from the config itself."""
    cfg = load_config(config_path)
    return {
        "build_model": len(models_in_study(cfg)),
        "prepare_task": len({t for _, t in model_task_pairs(cfg)}),
        "sample_trajectories": len(model_task_pairs(cfg)) * len(cfg["sampling"]["seeds"]),
        "train_sae": len({e["model"] for e in cfg["study"] if "sae" in e["granularities"]}),
        "attribute": len(attribution_targets(cfg)),
        "evaluate_steering": len(steering_targets(cfg)),
        "evaluate_transfer": len(transfer_targets(cfg)),
        "report": 1,
    }


def assert_plans_study(result, config_path: Path, planned_jobs) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    jobs = planned_jobs(out)
    for rule, n in expected_jobs(config_path).items():
        assert jobs.get(rule, 0) == n, (rule, jobs)
    return out


@pytest.mark.parametrize("config_name", ["test.yaml", "paper.yaml"])
def test_slurm_profile_dry_run(config_name, tmp_path, run_snakemake, planned_jobs):
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), "slurm plugin not installed"
    profile = local_profile("slurm", tmp_path)
    config = ROOT / "config" / config_name
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, config, "-n", "--profile", str(profile))
    out = assert_plans_study(result, config, planned_jobs)
    assert "Using profiles" in out and str(profile) in out


def test_kubernetes_profile_dry_run(tmp_path, run_snakemake, planned_jobs):
    assert importlib.util.find_spec("snakemake_executor_plugin_kubernetes"), "kubernetes plugin not installed"
    cfg = profile_yaml("kubernetes")
    # The executor assumes no shared filesystem, so Snakemake requires a default storage
    # provider and prefix, and loads that provider's plugin even for a dry run.
    provider = cfg.get("default-storage-provider")
    assert provider and cfg.get("default-storage-prefix"), \
        "kubernetes needs default-storage-provider and default-storage-prefix"
    plugin = f"snakemake_storage_plugin_{provider.replace('-', '_')}"
    if importlib.util.find_spec(plugin) is None:
        pytest.skip(f"{plugin.replace('_', '-')} (the profile's storage provider) is not installed")
    profile = local_profile("kubernetes", tmp_path)
    config = ROOT / "config" / "test.yaml"
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, config, "-n", "--profile", str(profile))
    assert_plans_study(result, config, planned_jobs)


def test_paper_config_dry_run_plans_every_model_and_task(tmp_path, run_snakemake, planned_jobs):
    """config/paper.yaml names hub models that are not downloaded here: the DAG still builds."""
    config = ROOT / "config" / "paper.yaml"
    result = run_snakemake(tmp_path, config, "-n")
    out = assert_plans_study(result, config, planned_jobs)
    cfg = load_config(config)
    assert {e["model"] for e in cfg["study"]} == {"r1-distill-qwen-1.5b", "qwen2.5-math-1.5b-instruct"}
    for model, task in model_task_pairs(cfg):
        assert f"Attributing {model} on {task}: neurons by ipg" in out
        assert f"results/intervention/{model}/{task}/neurons/ipg.csv" in out
    assert planned_jobs(out)["attribute"] > planned_jobs(out)["evaluate_steering"] > 0


def test_rules_that_run_a_model_get_a_gpu(run_snakemake, tmp_path):
    listed = run_snakemake(tmp_path, ROOT / "config" / "test.yaml", "--list-rules")
    assert listed.returncode == 0, listed.stderr[-2000:]
    rules = set(listed.stdout.split())
    assert set(GPU_RULES) <= rules, set(GPU_RULES) - rules

    slurm = profile_yaml("slurm")
    for rule in GPU_RULES:
        res = slurm["set-resources"][rule]
        gpus = int(res.get("gpu", 0))
        gres = str(res.get("gres", ""))
        # the slurm plugin submits `gpu` as --gpus and `gres` as --gres: exactly one of them
        assert (gpus >= 1) != ("gpu" in gres), (rule, res)
        assert "gres=gpu" not in str(res.get("slurm_extra", "")), (rule, "GPU requested twice")
        assert res["slurm_partition"] == "gpu", (rule, res)
        assert slurm["set-threads"][rule] >= 1
    for rule, res in slurm["set-resources"].items():
        assert rule in rules, f"profiles/slurm sets resources of unknown rule {rule}"

    k8s = profile_yaml("kubernetes")
    for rule in GPU_RULES:
        res = k8s["set-resources"][rule]
        # the kubernetes plugin reads `gpu` and requires `gpu_manufacturer` with it
        assert int(res.get("gpu", 0)) >= 1 and res.get("gpu_manufacturer") == "nvidia", (rule, res)
    for rule in k8s["set-resources"]:
        assert rule in rules, f"profiles/kubernetes sets resources of unknown rule {rule}"
