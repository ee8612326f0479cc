"""Check a Snakemake profile before Snakemake starts, with one-line IPGErrors that name the fix:

- its executor plugin is installed (else `snakemake --profile` fails with a long traceback);
- a conda software-deployment-method only where conda/mamba is on PATH (a dry run already
  calls `conda info`);
- on a cluster executor, every rule that runs a model (the rules/*.smk rules whose env is
  TORCH_ENV, less CPU_TORCH_RULES) gets a GPU in set-resources, and no `cores` (the profile's
  own, or the workflow profile profiles/default's, which overrides it key by key) caps a
  set-threads entry below what the profile asks for.

    check_profile("profiles/slurm")  # -> the executor name ("slurm"), or None for local runs
    gpu_rules("rules")               # -> the rules that need a GPU on a cluster
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import yaml

from ipg.errors import IPGError

BUILTIN_EXECUTORS = ("local", "dryrun", "touch")  # shipped with Snakemake itself
# Rules that import torch (conda: TORCH_ENV) but run no model: no GPU on a cluster.
CPU_TORCH_RULES = {
    "prepare_task": "reads and splits a task's data",
    "cross_task": "compares selected unit sets",
    "sensitivity": "summarizes the sensitivity variants' tables",
    "bench_workflow": "times `snakemake -n`",
    "paper_scale_cpu": "measures the paper architecture on the CPU (the cost model's points)",
    "reliability_pool": "draws the reliability stage's prompt pool",
    "reliability": "computes the reliability curve from attribution tables",
}
_RULE = re.compile(r"^rule\s+(\w+)\s*:", flags=re.M)


def torch_rules(rules_dir: str | os.PathLike) -> set[str]:
    """Names of the rules in rules_dir/*.smk whose block names TORCH_ENV (their env has torch)."""
    found = set()
    for path in sorted(Path(rules_dir).glob("*.smk")):
        text = path.read_text()
        starts = list(_RULE.finditer(text))
        for i, match in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            if re.search(r"^\s+TORCH_ENV\b", text[match.end():end], flags=re.M):
                found.add(match.group(1))
    return found


def gpu_rules(rules_dir: str | os.PathLike) -> set[str]:
    """The rules that run a model: on a cluster each needs a GPU."""
    return torch_rules(rules_dir) - set(CPU_TORCH_RULES)


def requests_gpu(resources: dict) -> bool:
    """A set-resources entry asks for a GPU (the plugins' `gpu`, or Slurm's `gres: gpu:N`)."""
    return int(resources.get("gpu", 0) or 0) >= 1 or "gpu" in str(resources.get("gres", ""))


def read_profile(profile_dir: Path) -> dict:
    config_path = profile_dir / "config.yaml"
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())[:160]
        raise IPGError(f"Snakemake profile '{profile_dir.name}': {config_path} is not valid YAML "
                       f"({reason}); fix it") from None
    if not isinstance(config, dict):
        raise IPGError(f"Snakemake profile '{profile_dir.name}': {config_path} must be a mapping "
                       f"of Snakemake options")
    return config


def check_conda(name: str, config: dict) -> None:
    method = str(config.get("software-deployment-method", config.get("sdm", "")))
    if "conda" in method and not (shutil.which("conda") or shutil.which("mamba")):
        raise IPGError(f"Snakemake profile '{name}' sets software-deployment-method: {method} "
                       f"but conda/mamba is not on PATH; install conda or remove that line "
                       f"(the .venv then runs every job)")


def check_cluster_resources(name: str, config: dict, rules_dir: Path,
                            workflow_profile: Path | None) -> None:
    """Every model-running rule gets a GPU; no `cores` caps the profile's set-threads."""
    resources = config.get("set-resources") or {}
    missing = sorted(r for r in gpu_rules(rules_dir) if not requests_gpu(resources.get(r) or {}))
    if missing:
        raise IPGError(f"Snakemake profile '{name}': rule(s) {', '.join(missing)} run a model but "
                       f"get no GPU; add them to set-resources with `gpu: 1` (and to set-threads)")
    threads = {r: int(t) for r, t in (config.get("set-threads") or {}).items()}
    if workflow_profile is not None and (workflow_profile / "config.yaml").is_file():
        wf_cores = read_profile(workflow_profile).get("cores")
        if wf_cores is not None:
            raise IPGError(f"Snakemake profile '{name}': the workflow profile "
                           f"{workflow_profile / 'config.yaml'} sets cores: {wf_cores}, which "
                           f"overrides this profile's and caps every cluster job's threads; "
                           f"remove that line (pass --cores on the command line instead)")
    cores = config.get("cores")
    if cores is not None and threads and str(cores) != "all" and max(threads.values()) > int(cores):
        rule = max(threads, key=threads.get)
        raise IPGError(f"Snakemake profile '{name}': set-threads {rule}: {threads[rule]} is capped "
                       f"by cores: {cores}; raise cores to at least {threads[rule]}")


def plugin_module(executor: str) -> str:
    return f"snakemake_executor_plugin_{executor.replace('-', '_')}"


def check_profile(profile_dir: str | os.PathLike, rules_dir: str | os.PathLike | None = None,
                  workflow_profile: str | os.PathLike | None = None) -> str | None:
    """The profile's executor (None: none set); IPGError if it cannot run the study here.

    rules_dir (default: rules/ beside the profiles/ folder) gives the rules that need a GPU;
    workflow_profile (default: profiles/default beside it) is the profile Snakemake applies on
    top of --profile.
    """
    profile_dir = Path(profile_dir)
    config_path = profile_dir / "config.yaml"
    if not config_path.is_file():
        raise IPGError(f"Snakemake profile '{profile_dir.name}' has no {config_path}; pass a "
                       f"folder of profiles/ (default, slurm, kubernetes)")
    config = read_profile(profile_dir)
    check_conda(profile_dir.name, config)
    executor = config.get("executor")
    if executor is None:
        return None
    executor = str(executor).strip()
    if executor in BUILTIN_EXECUTORS:
        return executor
    if importlib.util.find_spec(plugin_module(executor)) is None:
        raise IPGError(f"Snakemake profile '{profile_dir.name}' uses executor '{executor}' but "
                       f"its plugin is not installed; run `pip install "
                       f"snakemake-executor-plugin-{executor}`")
    root = profile_dir.resolve().parent.parent
    rules_dir = Path(rules_dir) if rules_dir is not None else root / "rules"
    if workflow_profile is None and (root / "profiles" / "default").resolve() != profile_dir.resolve():
        workflow_profile = root / "profiles" / "default"
    if rules_dir.is_dir():
        check_cluster_resources(profile_dir.name, config, rules_dir,
                                Path(workflow_profile) if workflow_profile else None)
    return executor
