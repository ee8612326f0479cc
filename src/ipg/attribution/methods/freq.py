"""Plug-in: freq, fraction of positions where the unit is active
(attribution/baselines.py); config BaselineConfig with the keys KEYS["freq"]."""
from __future__ import annotations

from typing import Any

from ipg.attribution.baseline_config import KEYS, BaselineConfig
from ipg.attribution.methods import METHODS, Method


def parse(params: dict[str, Any]) -> BaselineConfig:
    return BaselineConfig.from_dict("freq", params)


def run(model, trajectories, granularity: str, cfg: BaselineConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.baselines import freq

    return freq(model, trajectories, granularity, cfg, sae, progress)


METHODS.add("freq", Method("freq", parse, KEYS["freq"], run,
                             description="fraction of positions where the unit is active"))
