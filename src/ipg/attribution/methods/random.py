"""Plug-in: random, i.i.d. N(0, 1) scores (top-k: a seeded random k-subset)
(attribution/baselines.py); config BaselineConfig with the keys KEYS["random"]."""
from __future__ import annotations

from typing import Any

from ipg.attribution.baseline_config import KEYS, BaselineConfig
from ipg.attribution.methods import METHODS, Method


def parse(params: dict[str, Any]) -> BaselineConfig:
    return BaselineConfig.from_dict("random", params)


def run(model, trajectories, granularity: str, cfg: BaselineConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.baselines import random_scores

    return random_scores(model, trajectories, granularity, cfg, sae, progress)


METHODS.add("random", Method("random", parse, KEYS["random"], run,
                             description="i.i.d. N(0, 1) scores (top-k: a seeded random k-subset)"))
