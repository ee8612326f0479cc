"""Replay the adaptive rule (docs/method.md "Quadrature") at many `tol` values from one run of
every node up to m_max: the nodes are nested and deterministic, so each prompt's integrand
(h - h') * dPhi/dh at the m_max level's nodes is evaluated once (the run forced to the cap) and
adaptive_integrate is replayed on those values. Per tol: path points, pooled completeness
residual, and the relative L1 distance of the mean scores to the m_max-level estimate (the
high-m reference). Fixed-rule counts are m per prompt with an advantage.

    python -m ipg.bench.adaptive_replay --models organism=DIR --trajectories organism=PARQUET \
        [--sae organism=DIR] [--prompts N] [--m-max 65] --out rows.csv
"""
from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

from ipg.attribution import offpolicy
from ipg.attribution.ipg import IPGConfig, attribute
from ipg.attribution.quadrature import adaptive_integrate
from ipg.bench.adaptive_cost import jobs, load_inputs
from ipg.config.jobs import SAMPLES_KEY
from ipg.study.sensitivity import first_samples

TOLS = (0.003, 0.01, 0.02, 0.03, 0.05)


def capture(model, table, gran, ipg: dict[str, Any], sae, m_max: int) -> list[tuple]:
    """[(alphas, values [n_nodes, n_units], exact)] per adaptive call, every node to the cap."""
    calls: list[tuple] = []
    original = offpolicy.adaptive_integrate

    def forced(f, tol, cap, exact=None):
        def keep(alphas):
            values = f(alphas)
            calls[-1][0].append((alphas, values))
            return values
        calls.append(([], exact))
        return original(keep, 1e-15, cap, exact)

    offpolicy.adaptive_integrate = forced
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attribute(model, table, gran, IPGConfig(**{**ipg, "quadrature": "adaptive", "m_max": m_max,
                                                       "max_residual": None}), sae=sae, progress=False)
    finally:
        offpolicy.adaptive_integrate = original
    out = []
    for parts, exact in calls:
        alphas = np.concatenate([a for a, _ in parts])
        values = np.concatenate([v for _, v in parts])
        out.append((alphas, values, exact))
    return out


def replay(calls: list[tuple], tol: float, m_max: int) -> tuple[int, float, float]:
    """(path points, pooled residual, L1 distance of summed scores to the cap level's)."""
    points, err, scale, est_sum, ref_sum = 0, 0.0, 0.0, 0.0, 0.0
    for alphas, values, exact in calls:
        table = {round(float(a), 15): v for a, v in zip(alphas, values)}

        def f(a: np.ndarray) -> np.ndarray:
            return np.stack([table[round(float(x), 15)] for x in a])

        res = adaptive_integrate(f, tol, m_max, exact)
        ref = adaptive_integrate(f, 1e-15, m_max, exact).estimate
        points += res.n_nodes
        err += abs(res.estimate.sum() - exact)
        scale += abs(exact)
        est_sum = est_sum + res.estimate
        ref_sum = ref_sum + ref
    return points, err / scale, float(np.abs(est_sum - ref_sum).sum() / np.abs(ref_sum).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/default.yaml")
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--trajectories", nargs="+", required=True)
    ap.add_argument("--sae", nargs="*", default=[])
    ap.add_argument("--prompts", type=int, default=None)
    ap.add_argument("--m-max", type=int, default=65)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from ipg.models.load import load_model
    config, model_dirs, tables, sae_dirs = load_inputs(a)
    rows = []
    for name, model_name, gran, params in jobs(config, set(model_dirs)):
        if gran == "sae" and model_name not in sae_dirs:
            continue
        model, _ = load_model(model_dirs[model_name])
        sae = None
        if gran == "sae":
            from ipg.sae import load_sae
            sae = [load_sae(d) for d in sae_dirs[model_name]]
        ipg = {k: v for k, v in params.items() if k != SAMPLES_KEY}  # IPG keys; G apart
        g = params.get(SAMPLES_KEY)
        table = tables[model_name] if g is None else first_samples(tables[model_name], g)
        calls = capture(model, table, gran, ipg, sae, a.m_max)
        m = IPGConfig(**ipg).m
        for tol in TOLS:
            points, resid, dist = replay(calls, tol, a.m_max)
            rows.append({"job": name, "fixed_m": m, "fixed_points": m * len(calls), "tol": tol,
                         "adaptive_points": points, "adaptive_residual": resid,
                         "adaptive_vs_ref_l1": dist})
            print(rows[-1], flush=True)
        pd.DataFrame(rows).to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
