"""Pre-flight checks a user runs before a study (`ipg check`): config, DVC remote, profile.

Each check either returns a short "ok" line or raises the one-line IPGError of the module
that owns it, so a bad setup is reported in a second, before Snakemake or DVC start:

    config   the study config validates against the schema (ipg.config.study.load_config)
    dvc      the project's DVC remote is defined and its local folder exists (ipg.workflow.dvc_remote)
    profile  the Snakemake profile's executor plugin is installed, no conda it cannot find,
             a GPU for every rule that runs a model, no capped threads (ipg.workflow.profiles)

`run_checks` runs the chosen ones and returns one (name, ok, line) per check, never stopping
at the first failure, so one call lists everything that needs fixing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ipg.errors import IPGError

CHECK_NAMES = ("config", "dvc", "profile")
DEFAULTS = {"configfile": "config/default.yaml", "dvc_root": ".", "profile": "profiles/default"}


def check_config(configfile: str | os.PathLike) -> str:
    from ipg.config.study import load_config, models_in_study, model_task_pairs

    try:
        config = load_config(configfile)
    except IPGError as err:
        message = str(err)
        raise IPGError(message if str(configfile) in message else f"{configfile}: {message}") from None
    return (f"config {configfile}: valid ({len(models_in_study(config))} models, "
            f"{len(model_task_pairs(config))} model-task pairs)")


def check_dvc(dvc_root: str | os.PathLike, remote: str | None = None) -> str:
    from ipg.workflow.dvc_remote import check_remote

    found = check_remote(dvc_root, remote)
    if found is None:
        return f"DVC project {Path(dvc_root).resolve()}: no remote configured (nothing to push to)"
    kind = "folder" if isinstance(found, Path) else "URL (not checked: needs credentials)"
    return f"DVC remote: {kind} {found}"


def check_snakemake_profile(profile: str | os.PathLike) -> str:
    from ipg.workflow.profiles import BUILTIN_EXECUTORS, check_profile, gpu_rules

    executor = check_profile(profile)
    rules_dir = Path(profile).resolve().parent.parent / "rules"
    gpus = ""
    if executor and executor not in BUILTIN_EXECUTORS and rules_dir.is_dir():
        gpus = f" (a GPU for each of the {len(gpu_rules(rules_dir))} rules that run a model)"
    return f"Snakemake profile {profile}{gpus}: executor {executor or 'local (default)'}"


def run_checks(names: tuple[str, ...] | list[str] = CHECK_NAMES, configfile: str | None = None,
               dvc_root: str | None = None, remote: str | None = None,
               profile: str | None = None) -> list[tuple[str, bool, str]]:
    """(name, ok, one line) for each check in `names`: the ok line or the IPGError's message."""
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown:
        raise IPGError(f"unknown check(s) {', '.join(map(repr, unknown))}; allowed: "
                       f"{', '.join(CHECK_NAMES)}")
    calls: dict[str, Callable[[], str]] = {
        "config": lambda: check_config(configfile or DEFAULTS["configfile"]),
        "dvc": lambda: check_dvc(dvc_root or DEFAULTS["dvc_root"], remote),
        "profile": lambda: check_snakemake_profile(profile or DEFAULTS["profile"]),
    }
    results = []
    for name in names:
        try:
            results.append((name, True, calls[name]()))
        except IPGError as err:
            results.append((name, False, " ".join(str(err).split())))
    return results
