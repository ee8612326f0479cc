"""Plug-in: act, mean |a| over the counted positions
(attribution/baselines.py); config BaselineConfig with the keys KEYS["act"]."""
from __future__ import annotations

from typing import Any

from ipg.attribution.baseline_config import KEYS, BaselineConfig
from ipg.attribution.methods import METHODS, Method


def parse(params: dict[str, Any]) -> BaselineConfig:
    return BaselineConfig.from_dict("act", params)


def run(model, trajectories, granularity: str, cfg: BaselineConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.baselines import act

    return act(model, trajectories, granularity, cfg, sae, progress)


METHODS.add("act", Method("act", parse, KEYS["act"], run,
                             description="mean |a| over the counted positions"))
