"""Plug-in: IPG (attribution/ipg.py), config IPGConfig (attribution/ipg_config.py)."""
from __future__ import annotations

from typing import Any

from ipg.attribution.ipg_config import IPGConfig
from ipg.attribution.methods import METHODS, Method, dataclass_keys


def run(model, trajectories, granularity: str, cfg: IPGConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.ipg import attribute

    return attribute(model, trajectories, granularity, cfg, sae, progress, store=store)


METHODS.add("ipg", Method("ipg", IPGConfig.from_dict, dataclass_keys(IPGConfig), run,
                          chunked=True, ipg_family=True,
                          description="Integrated Policy Gradient of the outcome reward"))
