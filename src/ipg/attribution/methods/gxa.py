"""Plug-in: gxa, gradient x activation of the plain log-likelihood (attribution/baselines.py),
config BaselineConfig; resumable per chunk of prompts (`gxa_chunked`)."""
from __future__ import annotations

from typing import Any

from ipg.attribution.baseline_config import KEYS, BaselineConfig
from ipg.attribution.methods import METHODS, Method


def run(model, trajectories, granularity: str, cfg: BaselineConfig, sae: Any = None,
        progress: bool = True, store: Any = None):
    from ipg.attribution.baselines import gxa

    if store is not None:
        return gxa_chunked(model, trajectories, granularity, cfg, sae, progress, store)
    return gxa(model, trajectories, granularity, cfg, sae, progress)


def gxa_chunked(model, trajectories, granularity: str, cfg: BaselineConfig, sae: Any,
                progress: bool, store: Any):
    """gxa resumable per chunk of prompts: a prompt's gxa scores depend on its trajectories
    alone, and a one-prompt call returns them in float64 (the mean over one prompt), so the
    table equals the unchunked gxa's bitwise. loglik_mean is recombined from per-prompt means."""
    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm

    from ipg.attribution.baselines import gxa
    from ipg.attribution.ipg import _temperature
    from ipg.attribution.table import make_attribution
    from ipg.core.checkpoint import run_chunks

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


METHODS.add("gxa", Method("gxa", lambda params: BaselineConfig.from_dict("gxa", params),
                          KEYS["gxa"], run, chunked=True,
                          description="gradient x activation of the log-likelihood"))
