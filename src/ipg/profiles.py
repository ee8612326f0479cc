"""Check a Snakemake profile before Snakemake starts: its executor plugin must be installed.

`snakemake --profile profiles/slurm` without snakemake-executor-plugin-slurm fails with a
long traceback; `check_profile(profile_dir)` reads the profile's config.yaml and, if it sets
`executor`, raises a one-line IPGError naming the profile and the pip command that fixes it.

    check_profile("profiles/slurm")  # -> the executor name ("slurm"), or None for local runs
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import yaml

from ipg.errors import IPGError

BUILTIN_EXECUTORS = ("local", "dryrun", "touch")  # shipped with Snakemake itself


def plugin_module(executor: str) -> str:
    return f"snakemake_executor_plugin_{executor.replace('-', '_')}"


def check_profile(profile_dir: str | os.PathLike) -> str | None:
    """The profile's executor (None: none set); IPGError if its plugin is not importable."""
    profile_dir = Path(profile_dir)
    config_path = profile_dir / "config.yaml"
    if not config_path.is_file():
        raise IPGError(f"Snakemake profile '{profile_dir.name}' has no {config_path}; pass a "
                       f"folder of profiles/ (default, slurm, kubernetes)")
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())[:160]
        raise IPGError(f"Snakemake profile '{profile_dir.name}': {config_path} is not valid YAML "
                       f"({reason}); fix it") from None
    if not isinstance(config, dict):
        raise IPGError(f"Snakemake profile '{profile_dir.name}': {config_path} must be a mapping "
                       f"of Snakemake options")
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
    return executor
