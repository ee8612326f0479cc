"""Confidence intervals for steering results, paired differences, and overlap of unit sets.

The evaluation (IPG_METHOD.md, "Evaluation the paper reports": seeds and confidence
intervals) measures a metric y[p, s] per held-out prompt p and sampling seed s (each itself a
mean over the G samples of that prompt and seed). The quantity reported is the grand mean
over prompts and seeds; its 95% interval comes from a bootstrap:

- scheme "prompts" (default): scipy.stats.bootstrap over prompts of the per-prompt means
  ybar[p] = mean_s y[p, s] (seeds pooled within a prompt). Prompts are the independent units
  of the population we generalise to; seed-to-seed sampling noise is part of each ybar[p]'s
  spread, so resampling the top level alone estimates the variance of the grand mean without
  bias, whereas also resampling seeds counts the within-prompt noise twice (Davison & Hinkley
  1997, Sec. 3.8; Field & Welsh 2007).
- scheme "hierarchical": resample prompts, then seeds within each drawn prompt (percentile
  interval). Slightly conservative for the reason above; offered for comparison.
- scheme "seeds": bootstrap over seeds of the per-seed means mean_p y[p, s]: the sampling
  noise alone with the prompt set held fixed (how much a rerun with new seeds would move).

Paired differences (steered - unsteered on the same prompts and the same seeds, which share
the sampler's random stream) go through the same bootstrap as d[p, s] = y[p, s] - y0[p, s].
Jaccard overlap J(A, B) = |A n B| / |A u B| compares selected unit sets (J(empty, empty) = 1);
`expected_random_jaccard` is its value for two random sets, the chance level.
"""
from __future__ import annotations

from typing import Iterable, Literal, NamedTuple

import numpy as np

from ipg.errors import IPGError

SCHEMES = ("prompts", "hierarchical", "seeds")
Scheme = Literal["prompts", "hierarchical", "seeds"]


class CI(NamedTuple):
    mean: float
    lo: float
    hi: float


def _as_matrix(values) -> np.ndarray:
    y = np.asarray(values, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]  # [n_prompts] -> [n_prompts, 1 seed]
    if y.ndim != 2 or y.size == 0:
        raise IPGError(f"bootstrap needs a [prompts, seeds] array of values, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise IPGError("bootstrap values contain NaN or inf; every (prompt, seed) needs a value")
    return y


def bootstrap_ci(
    values,
    scheme: Scheme = "prompts",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> CI:
    """Grand mean of y [n_prompts, n_seeds] (or [n_prompts]) and its bootstrap interval.

    With a single resampling unit (one prompt, or one seed for scheme "seeds") or constant
    values there is no spread to resample: the interval collapses to (nan, nan) or the mean.
    """
    if scheme not in SCHEMES:
        raise IPGError(f"unknown bootstrap scheme '{scheme}'; allowed: {', '.join(SCHEMES)}")
    if not 0 < confidence < 1:
        raise IPGError(f"confidence must be in (0, 1), got {confidence}")
    y = _as_matrix(values)
    mean = float(y.mean())
    units = {"prompts": y.mean(1), "seeds": y.mean(0), "hierarchical": y.mean(1)}[scheme]
    if len(units) < 2:
        return CI(mean, float("nan"), float("nan"))
    if np.ptp(y) == 0:
        return CI(mean, mean, mean)
    rng = np.random.default_rng(seed)
    if scheme == "hierarchical":
        n_p, n_s = y.shape
        p_idx = rng.integers(0, n_p, size=(n_resamples, n_p))  # [B, n_p]
        s_idx = rng.integers(0, n_s, size=(n_resamples, n_p, n_s))  # [B, n_p, n_s]
        stats = y[p_idx[..., None], s_idx].mean(axis=(1, 2))  # [B]
        alpha = (1 - confidence) / 2
        lo, hi = np.quantile(stats, [alpha, 1 - alpha])
        return CI(mean, float(lo), float(hi))
    from scipy.stats import bootstrap

    res = bootstrap((units,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                    method="percentile", vectorized=True, rng=rng)
    return CI(mean, float(res.confidence_interval.low), float(res.confidence_interval.high))


def paired_difference(steered, baseline, scheme: Scheme = "prompts", confidence: float = 0.95,
                      n_resamples: int = 2000, seed: int = 0) -> CI:
    """Mean and interval of steered - baseline, paired on the same prompt and seed ([P, S] each)."""
    a, b = _as_matrix(steered), _as_matrix(baseline)
    if a.shape != b.shape:
        raise IPGError(f"paired difference needs the same prompts and seeds: shapes {a.shape} "
                       f"and {b.shape} differ")
    return bootstrap_ci(a - b, scheme, confidence, n_resamples, seed)


def jaccard(a: Iterable, b: Iterable) -> float:
    """|A n B| / |A u B|; 1.0 for two empty sets."""
    a, b = set(a), set(b)
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def expected_random_jaccard(n: int, k_a: int, k_b: int | None = None) -> float:
    """E[J(A, B)] for independent uniformly random subsets of sizes k_a, k_b of n units.

    |A n B| is hypergeometric (draw k_b from n with k_a marked); J = i / (k_a + k_b - i).
    """
    from scipy.stats import hypergeom

    k_b = k_a if k_b is None else k_b
    if not (0 <= k_a <= n and 0 <= k_b <= n):
        raise IPGError(f"set sizes {k_a}, {k_b} must lie in 0..{n}")
    if k_a + k_b == 0:
        return 1.0
    i = np.arange(0, min(k_a, k_b) + 1)
    pmf = hypergeom(n, k_a, k_b).pmf(i)
    return float((pmf * i / (k_a + k_b - i)).sum())
