"""Snakemake targets of each study stage, read from a config (used by dvc.yaml's stages).

    python -m ipg.workflow.targets trajectories [--configfile config/default.yaml]

The config is --configfile, else the IPG_CONFIG environment variable, else config/default.yaml
(dvc.yaml passes its `config` var both here and to snakemake's --configfile).
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from ipg.config.study import (
    attribution_targets, cross_task_on, cross_task_targets, load_config, model_task_pairs,
    models_in_study, sensitivity_targets, steering_targets, transfer_targets,
)
from ipg.workflow import layout as L
from ipg.errors import IPGError

DEFAULT_CONFIG = "config/default.yaml"
STAGES = ("prepared", "models", "trajectories", "attribution", "steering", "analysis", "report")


def stage_targets(config: dict[str, Any], stage: str, study: str = "default") -> list[str]:
    """The stage's targets (paths from ipg.workflow.layout); `study`: the config's name (L.study_name)."""
    results = config["results_dir"]
    pairs = model_task_pairs(config)
    # the cross-task stage may attribute a studied model on tasks outside the study
    extra = sorted({(m, t) for m, t, _, _ in cross_task_targets(config)} - set(pairs))
    seed = config["attribution"]["trajectory_seed"]
    if stage == "prepared":
        return sorted({L.PREPARED.format(task=task) for _, task in pairs + extra})
    if stage == "models":
        return [L.path(L.MODEL, results, model=m) for m in models_in_study(config)]
    if stage == "trajectories":
        return [L.path(L.TRAJECTORY_METRICS, results)] + [
            L.path(L.TRAJECTORIES, results, model=m, task=t, seed=seed) + ".parquet" for m, t in extra]
    if stage == "attribution":  # the .json metrics come with each .parquet; SAEs are trained on the way
        return list(dict.fromkeys(L.path(L.ATTRIBUTION, results, model=m, task=t, granularity=g, method=meth) + ".parquet"
                                  for m, t, g, meth
                                  in attribution_targets(config) + cross_task_targets(config)))
    if stage == "analysis":  # the sensitivity and cross-task summaries
        return ([L.path(L.SENSITIVITY, results, model=m, task=t, granularity=g) + ".csv" for m, t, g in sensitivity_targets(config)]
                + ([L.path(L.CROSS_TASK, results, model=config["cross_task"]["model"])]
                   if cross_task_on(config) else []))
    if stage == "steering":
        return ([L.path(L.INTERVENTION, results, model=m, task=t, granularity=g, method=meth) + ".csv"
                 for m, t, g, meth in steering_targets(config)]
                + [L.path(L.TRANSFER, results, source=s, target=d, task=t, granularity=g, method=meth) + ".csv"
                   for s, d, t, g, meth in transfer_targets(config)])
    if stage == "report":
        return [f"{L.reports_dir(results, study)}/report.md"]
    raise SystemExit(f"unknown stage {stage!r}; allowed: {', '.join(STAGES)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage")
    parser.add_argument("--configfile", default=os.environ.get("IPG_CONFIG") or DEFAULT_CONFIG)
    args = parser.parse_args()
    try:
        config = load_config(args.configfile)
        # the config's study_name, else its file's stem (relative to the repo root), as the Snakefile
        study = config.get("study_name") or L.study_name([args.configfile])
        print(" ".join(stage_targets(config, args.stage, study)))
    except IPGError as exc:  # one line for dvc's log, not a traceback
        raise SystemExit(f"ipg.workflow.targets: error: {exc}") from None


if __name__ == "__main__":
    main()
