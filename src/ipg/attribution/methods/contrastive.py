"""Plug-in: contrastive, mean activation of high- minus low-reward trajectories (attribution/baselines.py), config BaselineConfig."""
from __future__ import annotations

from typing import Any

from ipg.attribution.baseline_config import KEYS, BaselineConfig
from ipg.attribution.methods import METHODS, Method


def run(model, trajectories, granularity: str, cfg: BaselineConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.baselines import contrastive

    return contrastive(model, trajectories, granularity, cfg, sae, progress)


METHODS.add("contrastive", Method("contrastive", lambda params: BaselineConfig.from_dict("contrastive", params),
                          KEYS["contrastive"], run, description="mean activation of high- minus low-reward trajectories"))
