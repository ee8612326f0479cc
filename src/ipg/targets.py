"""Snakemake targets of each study stage, read from a config (used by dvc.yaml's stages).

    python -m ipg.targets trajectories [--configfile config/default.yaml]

The config is --configfile, else the IPG_CONFIG environment variable, else config/default.yaml
(dvc.yaml passes its `config` var both here and to snakemake's --configfile).
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from ipg.config import (
    attribution_targets, load_config, model_task_pairs, models_in_study, steering_targets,
    transfer_targets,
)

DEFAULT_CONFIG = "config/default.yaml"
STAGES = ("prepared", "models", "trajectories", "attribution", "steering", "report")


def stage_targets(config: dict[str, Any], stage: str) -> list[str]:
    results = config["results_dir"]
    pairs = model_task_pairs(config)
    if stage == "prepared":
        return sorted({f"data/prepared/{task}.parquet" for _, task in pairs})
    if stage == "models":
        return [f"{results}/models/{m}" for m in models_in_study(config)]
    if stage == "trajectories":
        return [f"{results}/metrics/trajectories.json"]
    if stage == "attribution":  # the .json metrics come with each .parquet; SAEs are trained on the way
        return [f"{results}/attribution/{m}/{t}/{g}/{meth}.parquet"
                for m, t, g, meth in attribution_targets(config)]
    if stage == "steering":
        return ([f"{results}/intervention/{m}/{t}/{g}/{meth}.csv"
                 for m, t, g, meth in steering_targets(config)]
                + [f"{results}/transfer/{s}__to__{d}/{t}/{g}/{meth}.csv"
                   for s, d, t, g, meth in transfer_targets(config)])
    if stage == "report":
        return ["reports/report.md"]
    raise SystemExit(f"unknown stage {stage!r}; allowed: {', '.join(STAGES)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage")
    parser.add_argument("--configfile", default=os.environ.get("IPG_CONFIG") or DEFAULT_CONFIG)
    args = parser.parse_args()
    print(" ".join(stage_targets(load_config(args.configfile), args.stage)))


if __name__ == "__main__":
    main()
