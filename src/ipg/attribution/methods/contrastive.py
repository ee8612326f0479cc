"""Plug-in: contrastive, mean activation of high- minus low-reward trajectories
(attribution/baselines.py); config BaselineConfig with the keys KEYS["contrastive"]."""
from __future__ import annotations

from typing import Any

from ipg.attribution.baseline_config import KEYS, BaselineConfig
from ipg.attribution.methods import METHODS, Method


def parse(params: dict[str, Any]) -> BaselineConfig:
    return BaselineConfig.from_dict("contrastive", params)


def run(model, trajectories, granularity: str, cfg: BaselineConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.baselines import contrastive

    return contrastive(model, trajectories, granularity, cfg, sae, progress)


METHODS.add("contrastive", Method("contrastive", parse, KEYS["contrastive"], run,
                             description="mean activation of high- minus low-reward trajectories"))
