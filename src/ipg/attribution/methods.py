"""The attribution methods of the study by kind: IPG and its baselines (IPG_METHOD.md,
"Baselines the study compares IPG against"), one signature for all:

    METHODS.get(kind)(model, trajectories, granularity, params, sae, progress) -> Attribution

- ipg: attribution/ipg.py, params are IPGConfig keys.
- ig_likelihood: Integrated Gradients of the plain log-likelihood, i.e. the IPG engine with
  A_j = 1: every reward replaced by 1 and advantage 'raw', so the surrogate is
  Phi(h) = (1/G) sum_j log pi(tau_j; h) and completeness reads sum_i S_i = L(h) - L(h').
  params: IPGConfig keys except reward / advantage / eps (fixed) and path (off-policy only).
- act, freq, gxa, contrastive, random: attribution/baselines.py; their params are the
  BaselineConfig keys listed per kind in KEYS (defined here, so that listing the kinds and
  checking a baseline entry import neither torch nor pandas).

`check_method(entry)` validates an entry {'kind': ..., **params} without a model (config
checks); `run_attribution` runs one (given an ipg.checkpoint store, the long kinds in
CHUNKED save per-prompt scores per chunk of prompts and resume from them; Eq. 3's mean is
then taken over all chunks' prompts); `rename(att, name)` records a method entry's name
(e.g. random_s1) in the table and metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ipg.errors import IPGError
from ipg.registry import Registry

if TYPE_CHECKING:  # torch / pandas are imported where used: checking a config stays light
    import pandas as pd
    from torch import nn

    from ipg.attribution.ipg import IPGConfig
    from ipg.attribution.table import Attribution
    from ipg.checkpoint import ChunkStore

MethodFn = Callable[["nn.Module", "pd.DataFrame", str, dict, Any, bool], "Attribution"]
METHODS: Registry[MethodFn] = Registry("attribution method")

_COMMON = ("layers", "positions", "batch_size", "pad_id")
KEYS = {  # the params each baseline accepts (anything else is a one-line error)
    "act": _COMMON,
    "freq": _COMMON + ("threshold",),
    "gxa": _COMMON + ("temperature", "pos_chunk"),
    "contrastive": _COMMON + ("reward",),
    "random": ("layers", "seed"),
}


@dataclass
class BaselineConfig:
    layers: list[int] | None = None  # subset of layers (None: all the granularity has)
    positions: str = "all"  # all real tokens, or generated tokens only (as IPGConfig.positions)
    batch_size: int | None = None  # trajectories per forward (None: all G of a prompt)
    pad_id: int = 0  # any token id: padded positions are masked
    threshold: float | None = None  # freq: the active rule (baselines.py docstring)
    reward: str = "accuracy"  # contrastive: column reward_{reward} splits high / low
    seed: int = 0  # random
    temperature: float | None = None  # gxa: the sampler's T; None: the table's column
    pos_chunk: int = 256  # gxa: positions per LM-head chunk

    def __post_init__(self) -> None:
        if self.positions not in ("all", "generated"):
            raise IPGError(f"baseline key 'positions' = {self.positions!r}; allowed: all, generated")
        if self.reward not in ("accuracy", "length"):
            raise IPGError(f"baseline key 'reward' = {self.reward!r}; allowed: accuracy, length")
        if self.batch_size is not None and (int(self.batch_size) != self.batch_size or self.batch_size < 1):
            raise IPGError(
                f"baseline key 'batch_size' must be an integer >= 1 or null, got {self.batch_size!r}")
        if self.layers is not None:
            self.layers = [int(l) for l in self.layers]

    @classmethod
    def from_dict(cls, kind: str, values: dict[str, Any]) -> "BaselineConfig":
        allowed = KEYS[kind]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise IPGError(f"unknown {kind} key '{unknown[0]}'; allowed: {', '.join(allowed)}")
        return cls(**values)


@METHODS.register("ipg")
def _ipg(model: nn.Module, trajectories: pd.DataFrame, granularity: str, params: dict,
         sae: Any = None, progress: bool = True, store: ChunkStore | None = None) -> Attribution:
    from ipg.attribution.ipg import IPGConfig, attribute

    return attribute(model, trajectories, granularity, IPGConfig.from_dict(dict(params)), sae,
                     progress, store=store)


_FIXED = ("reward", "advantage", "eps")  # ig_likelihood: A_j = 1 by construction


def _ig_likelihood_config(params: dict) -> IPGConfig:
    from ipg.attribution.ipg import IPGConfig

    fixed = [k for k in _FIXED if k in params]
    if fixed:
        raise IPGError(f"ig_likelihood key '{fixed[0]}' is not settable: A_j = 1 (no outcome signal)")
    if params.get("path", "offpolicy") != "offpolicy":
        raise IPGError(f"ig_likelihood key 'path' = {params['path']!r}; allowed: offpolicy")
    return IPGConfig.from_dict({**params, "reward": "accuracy", "advantage": "raw"})


@METHODS.register("ig_likelihood")
def _ig_likelihood(model: nn.Module, trajectories: pd.DataFrame, granularity: str, params: dict,
                   sae: Any = None, progress: bool = True,
                   store: ChunkStore | None = None) -> Attribution:
    from ipg.attribution.ipg import attribute

    cfg = _ig_likelihood_config(params)
    ones = trajectories.assign(reward_accuracy=1.0)  # raw advantage of reward 1: A_j = 1
    att = attribute(model, ones, granularity, cfg, sae, progress, store=store)
    att.metrics["advantage_used"] = "ones (A_j = 1): IG of the mean log-likelihood"
    return rename(att, "ig_likelihood")


def _baseline(kind: str) -> MethodFn:
    def run(model: nn.Module, trajectories: pd.DataFrame, granularity: str, params: dict,
            sae: Any = None, progress: bool = True) -> Attribution:
        from ipg.attribution.baselines import BASELINES

        cfg = BaselineConfig.from_dict(kind, dict(params))
        return BASELINES[kind](model, trajectories, granularity, cfg, sae, progress)

    run.__name__ = run.__qualname__ = kind
    return run


for _kind in KEYS:  # act, freq, gxa, contrastive, random (attribution/baselines.py)
    METHODS.add(_kind, _baseline(_kind))


def _gxa_chunked(model: nn.Module, trajectories: pd.DataFrame, granularity: str, params: dict,
                 sae: Any, progress: bool, store: ChunkStore) -> Attribution:
    """gxa resumable per chunk of prompts: a prompt's gxa scores depend on its trajectories
    alone, and a one-prompt call returns them in float64 (the mean over one prompt), so the
    table equals the unchunked gxa's bitwise. loglik_mean is recombined from per-prompt means."""
    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm

    from ipg.attribution.baselines import gxa
    from ipg.attribution.ipg import _temperature
    from ipg.attribution.table import make_attribution
    from ipg.checkpoint import run_chunks

    cfg = BaselineConfig.from_dict("gxa", dict(params))
    if trajectories.empty or "prompt_id" not in trajectories.columns:
        return gxa(model, trajectories, granularity, cfg, sae, progress)  # its one-line error
    _temperature(cfg, trajectories)  # one temperature for the whole table
    ids = list(pd.unique(trajectories["prompt_id"]))  # gxa's order: first appearance
    first: dict[str, Any] = {}
    bar = tqdm(total=len(ids), desc=f"gxa {granularity}", unit="prompt", disable=not progress)

    def compute(items: range) -> dict[str, Any]:
        atts = [gxa(model, trajectories[trajectories["prompt_id"] == ids[i]], granularity, cfg,
                    sae, False) for i in items]
        first.setdefault("att", atts[0])
        return {"per_prompt": np.stack([a.scores["score"].to_numpy(np.float64) for a in atts]),
                "loglik": np.array([a.metrics["loglik_mean"] for a in atts], np.float64),
                "n": np.array([a.metrics["n_trajectories"] for a in atts], np.int64)}

    parts = []
    for items, payload, _ in run_chunks(store, len(ids), compute):
        parts.append(payload)
        bar.update(len(items))  # resumed chunks count too
    bar.close()
    if "att" not in first:  # every chunk resumed: the unit list from one (cheap) prompt
        first["att"] = gxa(model, trajectories[trajectories["prompt_id"] == ids[0]],
                           granularity, cfg, sae, False)
    s, n = first["att"].scores, np.concatenate([p["n"] for p in parts])
    loglik = np.concatenate([p["loglik"] for p in parts])
    metrics = {**first["att"].metrics, "n_prompts": len(ids), "n_trajectories": int(n.sum()),
               "loglik_mean": float((loglik * n).sum() / n.sum()), "resumed_chunks": store.resumed}
    return make_attribution(s["unit"], s["layer"], s["index"],
                            np.concatenate([p["per_prompt"] for p in parts]), ids,
                            str(s["granularity"].iloc[0]), "gxa", metrics)


CHUNKED = ("ipg", "ig_likelihood", "gxa")  # the long (gradient) kinds: resumable with a store


def rename(att: Attribution, name: str) -> Attribution:
    """The same attribution under the method name `name` (table column and metrics)."""
    att.scores["method"] = name
    att.metrics["method"] = name
    return att


def check_method(method: Any) -> tuple[str, dict[str, Any]]:
    """Validate a method entry {'kind': ..., **params} without a model: (kind, params)."""
    if not isinstance(method, dict) or "kind" not in method:
        raise IPGError(f"a method entry needs a 'kind' ({', '.join(METHODS.names())}), got {method!r}")
    kind, params = method["kind"], {k: v for k, v in method.items() if k != "kind"}
    METHODS.get(kind)  # unknown kind: one line listing the allowed kinds
    if kind == "ipg":
        from ipg.attribution.ipg import IPGConfig

        IPGConfig.from_dict(dict(params))
    elif kind == "ig_likelihood":
        _ig_likelihood_config(params)
    else:
        BaselineConfig.from_dict(kind, dict(params))
    return kind, params


def run_attribution(model: nn.Module, trajectories: pd.DataFrame, granularity: str,
                    method: dict[str, Any], sae: Any = None, progress: bool = True,
                    name: str | None = None, store: ChunkStore | None = None) -> Attribution:
    """One method entry {'kind': ..., **params} -> Attribution named `name` (default: kind).

    With a `store` (ipg.checkpoint), the CHUNKED kinds save per-prompt scores per chunk of
    prompts and resume from them (bitwise identical results); other kinds ignore it."""
    kind, params = check_method(method)
    if store is not None and kind == "gxa":
        att = _gxa_chunked(model, trajectories, granularity, params, sae, progress, store)
    elif store is not None and kind in CHUNKED:
        att = METHODS.get(kind)(model, trajectories, granularity, params, sae, progress, store=store)
    else:
        att = METHODS.get(kind)(model, trajectories, granularity, params, sae, progress)
    att.metrics["kind"] = kind
    att.metrics.setdefault("n_trajectories", len(trajectories))
    att.metrics.setdefault("params", params)
    return rename(att, name or kind)
