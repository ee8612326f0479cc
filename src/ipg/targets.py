"""Snakemake targets of each study stage, read from a config (used by dvc.yaml's stages).

    python -m ipg.targets trajectories [--configfile config/default.yaml]
"""
from __future__ import annotations

import argparse
from typing import Any

from ipg.config import load_config, model_task_pairs, models_in_study


def stage_targets(config: dict[str, Any], stage: str) -> list[str]:
    results = config["results_dir"]
    pairs = model_task_pairs(config)
    if stage == "prepared":
        return sorted({f"data/prepared/{task}.parquet" for _, task in pairs})
    if stage == "models":
        return [f"{results}/models/{m}" for m in models_in_study(config)]
    if stage == "trajectories":
        return [f"{results}/metrics/trajectories.json"]
    raise SystemExit(f"unknown stage {stage!r}; allowed: prepared, models, trajectories")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage")
    parser.add_argument("--configfile", default="config/default.yaml")
    args = parser.parse_args()
    print(" ".join(stage_targets(load_config(args.configfile), args.stage)))


if __name__ == "__main__":
    main()
