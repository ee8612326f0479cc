"""The cluster profiles and the paper's config build the study's DAG (dry runs, in temp dirs)
without conda, every rule that runs a model (derived from rules/*.smk) asks the cluster for a
GPU, and a GPU job is submitted with the profile's CPUs, memory and runtime (a stub sbatch
records the call). `ipg check profile` catches what would break these."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from ipg.config.study import (
    attribution_targets, load_config, model_task_pairs, models_in_study, steering_targets,
    transfer_targets,
)

from ipg.errors import IPGError
from ipg.workflow.profiles import CPU_TORCH_RULES, check_profile, gpu_rules, torch_rules

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow

# Rules whose job loads (or builds) a model: on a cluster each needs a GPU node.
GPU_RULES = tuple(sorted(gpu_rules(ROOT / "rules")))


def profile_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def local_profile(name: str, tmp_path: Path) -> Path:
    """A copy of profiles/<name>, as shipped (it must run without conda)."""
    cfg = profile_yaml(name)
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


def slurm_dry_run(config: Path, tmp_path: Path, run_snakemake, planned_jobs) -> tuple[str, Path]:
    """(output, profile) of a dry run of `config` with a copy of profiles/slurm, checked to plan
    the whole study."""
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), "slurm plugin not installed"
    profile = local_profile("slurm", tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, config, "-n", "--profile", str(profile))
    return assert_plans_study(result, config, planned_jobs), profile


@pytest.fixture(scope="module")
def paper_slurm_dry_run(tmp_path_factory, run_snakemake, planned_jobs) -> tuple[str, Path]:
    """The slurm-profile dry run of config/paper.yaml (the largest DAG), once per module: read by
    test_slurm_profile_dry_run and test_paper_config_dry_run_plans_every_model_and_task."""
    return slurm_dry_run(ROOT / "config" / "paper.yaml", tmp_path_factory.mktemp("paper"),
                         run_snakemake, planned_jobs)


@pytest.mark.parametrize("config_name", ["test.yaml", "paper.yaml"])
def test_slurm_profile_dry_run(config_name, tmp_path, run_snakemake, planned_jobs, request):
    if config_name == "paper.yaml":
        out, profile = request.getfixturevalue("paper_slurm_dry_run")
    else:
        out, profile = slurm_dry_run(ROOT / "config" / config_name, tmp_path, run_snakemake, planned_jobs)
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


def assert_plans_paper_study(out: str, planned_jobs) -> None:
    """The dry run of config/paper.yaml attributes and steers every model on every task."""
    cfg = load_config(ROOT / "config" / "paper.yaml")
    assert {e["model"] for e in cfg["study"]} == {"r1-distill-qwen-1.5b", "qwen2.5-math-1.5b-instruct"}
    for model, task in model_task_pairs(cfg):
        assert f"Attributing {model} on {task}: neurons by ipg" in out
        assert f"results/intervention/{model}/{task}/neurons/ipg.csv" in out
    assert planned_jobs(out)["attribute"] > planned_jobs(out)["evaluate_steering"] > 0


def test_paper_config_dry_run_plans_every_model_and_task(paper_slurm_dry_run, planned_jobs):
    """config/paper.yaml names hub models that are not downloaded here: the DAG still builds
    (the slurm-profile dry run; the plain one: test_paper_config_dry_run_without_a_profile)."""
    assert_plans_paper_study(paper_slurm_dry_run[0], planned_jobs)


@pytest.mark.slow  # the same DAG as the slurm-profile dry run above (a second ~10 s CPU dry run)
def test_paper_config_dry_run_without_a_profile(tmp_path, run_snakemake, planned_jobs):
    config = ROOT / "config" / "paper.yaml"
    result = run_snakemake(tmp_path, config, "-n")
    assert_plans_paper_study(assert_plans_study(result, config, planned_jobs), planned_jobs)


def test_rules_that_run_a_model_get_a_gpu(run_snakemake, tmp_path):
    listed = run_snakemake(tmp_path, ROOT / "config" / "test.yaml", "--list-rules")
    assert listed.returncode == 0, listed.stderr[-2000:]
    rules = set(listed.stdout.split())
    torch = torch_rules(ROOT / "rules")
    assert torch <= rules, torch - rules
    # every rule block of rules/*.smk with `conda: TORCH_ENV`, counted independently
    blocks = [b for f in sorted((ROOT / "rules").glob("*.smk")) for b in f.read_text().split("\nrule ")[1:]]
    assert len(torch) == sum("TORCH_ENV" in b.split("\nrule ")[0] for b in blocks)
    assert set(CPU_TORCH_RULES) <= torch, "CPU_TORCH_RULES names a rule that does not run torch"
    assert {"build_model", "attribute", "sensitivity_variant", "evaluate_steering"} <= set(GPU_RULES)
    for name in ("slurm", "kubernetes"):
        cfg = profile_yaml(name)
        assert "conda" not in str(cfg.get("software-deployment-method", "")), \
            f"profiles/{name} must run without conda (conda only with --software-deployment-method conda)"
        assert set(cfg["set-threads"]) >= set(GPU_RULES), (name, set(GPU_RULES) - set(cfg["set-threads"]))
        assert max(cfg["set-threads"].values()) <= cfg["cores"], name
    assert "cores" not in profile_yaml("default"), \
        "profiles/default is applied on top of --profile: its cores would cap every cluster job"

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


def stub_slurm(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH folder whose sbatch records its arguments and refuses the job (nothing runs);
    the other Slurm commands fail quietly, as on a host without Slurm."""
    stub, log = tmp_path / "stub-bin", tmp_path / "sbatch.log"
    stub.mkdir()
    (stub / "sbatch").write_text(f'#!/bin/sh\necho "$*" >> {log}\necho "stub: not submitted" >&2\nexit 1\n')
    for name in ("squeue", "sacct", "sinfo", "scontrol", "sacctmgr", "sshare"):
        (stub / name).write_text("#!/bin/sh\nexit 1\n")
    for path in stub.iterdir():
        path.chmod(0o755)
    return stub, log


@pytest.mark.slow  # ~60-90 s: the plugin waits before it shuts down
def test_gpu_job_is_submitted_with_the_profiles_resources(tmp_path, run_snakemake, monkeypatch):
    """`snakemake --profile profiles/slurm` (no --cores) submits build_model with the profile's
    partition, GPU, memory, runtime and set-threads as --cpus-per-task, not the host's cores."""
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), "slurm plugin not installed"
    stub, log = stub_slurm(tmp_path)
    monkeypatch.setenv("PATH", f"{stub}{os.pathsep}{os.environ['PATH']}")
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(workdir, ROOT / "config" / "test.yaml", "--profile",
                           str(ROOT / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks",
                           "1", "results/models/tiny-qwen2", timeout=600)
    assert result.returncode != 0 and "stub: not submitted" in result.stdout + result.stderr
    call = log.read_text().split()
    res, threads = profile_yaml("slurm")["set-resources"]["build_model"], profile_yaml("slurm")["set-threads"]["build_model"]
    assert "--comment" in call and call[call.index("--comment") + 1].startswith("rule_build_model")
    assert f"--cpus-per-task={threads}" in call, call
    assert call[call.index("-p") + 1] == res["slurm_partition"]
    assert call[call.index("--mem") + 1] == str(res["mem_mb"])
    assert call[call.index("-t") + 1] == str(res["runtime"])
    assert f"--gpus={res['gpu']}" in call


def write_profile(folder: Path, cfg: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def cluster_profile(**changes) -> dict:
    cfg = profile_yaml("slurm")
    cfg.update(changes)
    return cfg


def test_check_profile_accepts_the_shipped_profiles():
    assert check_profile(ROOT / "profiles" / "default") is None
    assert check_profile(ROOT / "profiles" / "slurm") == "slurm"


def test_check_profile_names_a_model_rule_without_gpu(tmp_path):
    cfg = cluster_profile()
    del cfg["set-resources"]["sensitivity_variant"]
    profile = write_profile(tmp_path / "profiles" / "slurm", cfg)
    with pytest.raises(IPGError, match="sensitivity_variant run a model but get no GPU"):
        check_profile(profile, rules_dir=ROOT / "rules")


def test_check_profile_conda_without_conda(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no conda, no mamba
    profile = write_profile(tmp_path / "p", cluster_profile(**{"software-deployment-method": "conda"}))
    with pytest.raises(IPGError, match="conda/mamba is not on PATH"):
        check_profile(profile, rules_dir=ROOT / "rules")


def test_check_profile_cores_that_cap_threads(tmp_path):
    low = write_profile(tmp_path / "profiles" / "low", cluster_profile(cores=2))
    with pytest.raises(IPGError, match="capped by cores: 2"):
        check_profile(low, rules_dir=ROOT / "rules")
    write_profile(tmp_path / "profiles" / "default", {"cores": "all"})
    ok = write_profile(tmp_path / "profiles" / "slurm", cluster_profile())
    with pytest.raises(IPGError, match="sets cores: all, which overrides"):
        check_profile(ok, rules_dir=ROOT / "rules")


def node_profile_module():
    """scripts/slurm_node_profile.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("slurm_node_profile",
                                                  ROOT / "scripts" / "slurm_node_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cores, threads", [(None, 8), (2, 2)])
def test_node_profile_caps_threads_at_the_node_or_the_given_cores(cores, threads):
    """A 16-CPU, 64 GB node: the profile's 8 threads a GPU job fit; `--cores 2` caps them (and
    `cores`, `jobs`) at 2, as tests/workflow/test_slurm.py asks to match a local --cores 2 run.
    Memory per job is the node's per-CPU share; no GPU is requested from a node without one."""
    shipped = profile_yaml("slurm")
    cfg = node_profile_module().fitted_profile({"cpus": 16, "mem_mb": 64000}, cores=cores)
    assert cfg["cores"] == cfg["jobs"] == (cores or 16)
    assert set(cfg["set-threads"]) == set(shipped["set-threads"])
    assert all(t == min(shipped["set-threads"][r], threads) for r, t in cfg["set-threads"].items())
    assert all(res["mem_mb"] == 64000 // 16 and "gpu" not in res
               for res in cfg["set-resources"].values())
    assert cfg["slurm-status-command"] == "squeue"


def test_node_profile_refuses_nonpositive_cores(tmp_path, capsys):
    with pytest.raises(SystemExit):
        node_profile_module().main([str(tmp_path / "p"), "--cores", "0"])
    assert "--cores 0: give a positive number of threads, e.g. --cores 2" in capsys.readouterr().err
