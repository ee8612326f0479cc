"""Confidence intervals for steering results, paired differences, and overlap of unit sets.

The evaluation (docs/method.md, "Evaluation: paired verdicts on held-out prompts": seeds and confidence
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
Degenerate data (every value equal, e.g. 0 of 96 correct) give the bootstrap nothing to
resample. For a bounded metric (`bounds`: (0, 1) for a proportion, (-1, 1) for a difference of
proportions) the interval then comes from the Wilson score interval of the n = prompts x seeds
observations (conservative: each observation may pool G samples): a proportion c gets
Wilson(c n, n); a constant paired difference c gets c -/+ the Wilson upper bound of 0
discordant pairs in n, clipped to the bounds. Never a zero-width interval for such a metric.

Verdict helpers: `sign_flip_pvalue` (the paired sign-flip test of the per-prompt mean
differences; exact under the null that the two arms are exchangeable within a prompt) and
`holm` (Holm's step-down adjustment within a family of p-values).

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


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / n (successes may be fractional)."""
    from scipy.stats import norm

    if n < 1:
        raise IPGError(f"a Wilson interval needs n >= 1 observations, got {n}")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = float(successes) / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if p <= 0 else max(0.0, centre - half)  # exact ends at 0 and n successes
    hi = 1.0 if p >= 1 else min(1.0, centre + half)
    return lo, hi


def degenerate_interval(value: float, n: int, bounds: tuple[float, float],
                        confidence: float = 0.95) -> tuple[float, float]:
    """The interval of a constant bounded metric over n observations (see the module docstring):
    bounds (0, 1): Wilson(value n, n); bounds (-1, 1): value -/+ Wilson's upper bound of 0 in n."""
    lo_b, hi_b = bounds
    if (lo_b, hi_b) == (0.0, 1.0):
        return wilson_interval(min(max(value, 0.0), 1.0) * n, n, confidence)
    if (lo_b, hi_b) == (-1.0, 1.0):
        w = wilson_interval(0, n, confidence)[1]
        return max(-1.0, value - w), min(1.0, value + w)
    raise IPGError(f"bounds must be (0, 1) (a proportion) or (-1, 1) (a difference of "
                   f"proportions), got {bounds}")


def bootstrap_ci(
    values,
    scheme: Scheme = "prompts",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> CI:
    """Grand mean of y [n_prompts, n_seeds] (or [n_prompts]) and its bootstrap interval.

    With a single resampling unit (one prompt, or one seed for scheme "seeds") the interval
    is (nan, nan). Constant values (or a bootstrap that collapses to one value) give, for a
    bounded metric (`bounds`), the score interval of `degenerate_interval`, otherwise the mean.
    """
    ci = _bootstrap_ci(values, scheme, confidence, n_resamples, seed)
    if bounds is not None and not np.isnan(ci.lo) and ci.hi - ci.lo <= 1e-12:
        lo, hi = degenerate_interval(ci.mean, _as_matrix(values).size, tuple(map(float, bounds)),
                                     confidence)
        return CI(ci.mean, lo, hi)
    return ci


def _bootstrap_ci(values, scheme: Scheme, confidence: float, n_resamples: int, seed: int) -> CI:
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
                      n_resamples: int = 2000, seed: int = 0,
                      bounds: tuple[float, float] | None = None) -> CI:
    """Mean and interval of steered - baseline, paired on the same prompt and seed ([P, S] each).
    bounds: those of the difference, (-1, 1) for proportions (no zero-width interval then)."""
    a, b = _as_matrix(steered), _as_matrix(baseline)
    if a.shape != b.shape:
        raise IPGError(f"paired difference needs the same prompts and seeds: shapes {a.shape} "
                       f"and {b.shape} differ")
    return bootstrap_ci(a - b, scheme, confidence, n_resamples, seed, bounds)


def sign_flip_pvalue(diffs, n_resamples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of mean(d) = 0 for paired differences d [n_prompts, n_seeds] (or
    [n_prompts]): the per-prompt means get random signs (prompts are the exchangeable units);
    p = (1 + #{|resampled mean| >= |observed mean|}) / (1 + n_resamples). 1.0 for all-zero d."""
    d = _as_matrix(diffs).mean(1)  # [n_prompts]
    observed = abs(d.mean())
    if not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_resamples, len(d)), dtype=np.int8) * 2 - 1  # [B, P]
    null = np.abs(signs @ d) / len(d)  # [B]
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + n_resamples))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), same order as given;
    NaN entries stay NaN and do not count towards the family size."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


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
