"""Plug-in: Integrated Gradients of the plain log-likelihood, i.e. the IPG engine with A_j = 1:
every reward replaced by 1 and advantage 'raw', so the surrogate is
Phi(h) = (1/G) sum_j log pi(tau_j; h) and completeness reads sum_i S_i = L(h) - L(h').
Its keys: IPGConfig keys except reward / advantage / eps (fixed) and path (off-policy only).
"""
from __future__ import annotations

from typing import Any

from ipg.attribution.ipg_config import IPGConfig
from ipg.attribution.methods import METHODS, Method, dataclass_keys, rename
from ipg.errors import IPGError

FIXED = ("reward", "advantage", "eps")  # A_j = 1 by construction


def parse(params: dict[str, Any]) -> IPGConfig:
    fixed = [k for k in FIXED if k in params]
    if fixed:
        raise IPGError(f"ig_likelihood key '{fixed[0]}' is not settable: A_j = 1 (no outcome signal)")
    if params.get("path", "offpolicy") != "offpolicy":
        raise IPGError(f"ig_likelihood key 'path' = {params['path']!r}; allowed: offpolicy")
    return IPGConfig.from_dict({**params, "reward": "accuracy", "advantage": "raw"})


def run(model, trajectories, granularity: str, cfg: IPGConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.ipg import attribute

    ones = trajectories.assign(reward_accuracy=1.0)  # raw advantage of reward 1: A_j = 1
    att = attribute(model, ones, granularity, cfg, sae, progress, store=store)
    att.metrics["advantage_used"] = "ones (A_j = 1): IG of the mean log-likelihood"
    return rename(att, "ig_likelihood")


METHODS.add("ig_likelihood", Method(
    "ig_likelihood", parse, tuple(k for k in dataclass_keys(IPGConfig) if k not in FIXED), run,
    chunked=True, ipg_family=True, description="IG of the mean log-likelihood (A_j = 1)"))
