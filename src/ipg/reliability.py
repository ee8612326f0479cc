"""Retest reliability of an attribution from its per-prompt scores (no new model runs).

An attribution's score is the mean of per-prompt scores (Eq. 3; Attribution.per_prompt
[n_prompts, n_units]). Two attributions on disjoint prompt sets A, B of n prompts each are
simulated by splitting the pool at random (R repeats) and comparing the two mean-score vectors:

- spearman: Spearman rank correlation of the two mean-score vectors (over every unit);
- jaccard: |T_A n T_B| / |T_A u T_B| of their signed top-k sets (largest score first, ties in
  unit order, as ipg.attribution.table.select_units), next to chance_jaccard, the expected
  overlap of two random k-sets of the same units (ipg.statistics.expected_random_jaccard).

    split_half(per_prompt, n=16, k=32, repeats=50, seed=0) -> {"spearman": [R], "jaccard": [R]}
    reliability_curve(per_prompt, ns=[4, 8, 16], k=32) -> one row per n (mean and 2.5/97.5 %)
    whole_split_half(per_prompt, k=32) -> the split-half level of the whole attribution + a
        Spearman-Brown projection to its full size

Spearman-Brown assumes the per-prompt scores of a unit are i.i.d. draws around a unit's true
score with one noise variance for every unit (the classical test-theory model); then the
correlation of two n-prompt means is r(n) = n r1 / (1 + (n - 1) r1), and a split-half
correlation r at n/2 projects to 2 r / (1 + r) at n. It is exact for Pearson correlation of
the means and an approximation for Spearman; there is no such formula for top-k Jaccard, which
is read off the curve only.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ipg.errors import IPGError

CURVE_COLUMNS = ["n", "repeats", "k", "n_units", "spearman", "spearman_lo", "spearman_hi",
                 "jaccard", "jaccard_lo", "jaccard_hi", "chance_jaccard"]


def _check(per_prompt: np.ndarray, k: int) -> np.ndarray:
    pp = np.asarray(per_prompt, dtype=np.float64)
    if pp.ndim != 2:
        raise IPGError(f"per-prompt scores must be a 2-d array [n_prompts, n_units], got shape "
                       f"{pp.shape}; pass Attribution.per_prompt")
    if not np.all(np.isfinite(pp)):
        raise IPGError("per-prompt scores hold NaN or inf; rerun the attribution (a failed prompt)")
    if int(k) != k or not 1 <= k <= pp.shape[1]:
        raise IPGError(f"top-k size k={k} must be an integer in 1..{pp.shape[1]} (the number of "
                       f"units); lower steering.ks for this granularity")
    return pp


def top_k(scores_u: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores (signed; ties keep unit order, as select_units)."""
    return np.argsort(-np.asarray(scores_u), kind="stable")[: int(k)]


def spearman(x_u: np.ndarray, y_u: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either vector is constant."""
    from scipy.stats import spearmanr

    if np.ptp(x_u) == 0 or np.ptp(y_u) == 0:
        return float("nan")
    return float(spearmanr(x_u, y_u).statistic)


def _jaccard_idx(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b).size
    union = a.size + b.size - inter
    return 1.0 if union == 0 else inter / union


def split_half(per_prompt: np.ndarray, n: int, k: int, repeats: int = 50,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Spearman and top-k Jaccard of the mean scores of R random disjoint prompt sets A, B of
    n prompts each (2 n <= n_prompts). Returns {"spearman": [R], "jaccard": [R]}."""
    pp = _check(per_prompt, k)
    n_prompts = pp.shape[0]
    if int(n) != n or n < 1 or 2 * n > n_prompts:
        raise IPGError(f"split size n={n} needs 1 <= n and 2 n <= {n_prompts} prompts; lower n "
                       f"or attribute more prompts (reliability.pool_prompts)")
    if int(repeats) != repeats or repeats < 1:
        raise IPGError(f"repeats must be an integer >= 1, got {repeats}")
    rng = np.random.default_rng(seed)
    rho, jac = np.empty(int(repeats)), np.empty(int(repeats))
    for r in range(int(repeats)):
        order = rng.permutation(n_prompts)
        a, b = pp[order[:n]].mean(axis=0), pp[order[n:2 * n]].mean(axis=0)
        rho[r] = spearman(a, b)
        jac[r] = _jaccard_idx(top_k(a, k), top_k(b, k))
    return {"spearman": rho, "jaccard": jac}


def _summary(values: np.ndarray) -> tuple[float, float, float]:
    ok = values[np.isfinite(values)]
    if not ok.size:
        return float("nan"), float("nan"), float("nan")
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return float(ok.mean()), float(lo), float(hi)


def reliability_curve(per_prompt: np.ndarray, ns: Sequence[int], k: int, repeats: int = 50,
                      seed: int = 0) -> pd.DataFrame:
    """One row per n (columns CURVE_COLUMNS): mean and 2.5/97.5 percentiles over repeats of
    the split-half Spearman and top-k Jaccard; ns above n_prompts / 2 are an error."""
    from ipg.statistics import expected_random_jaccard

    pp = _check(per_prompt, k)
    rows = []
    for n in sorted({int(v) for v in ns}):
        res = split_half(pp, n, k, repeats, seed)
        s, j = _summary(res["spearman"]), _summary(res["jaccard"])
        rows.append({"n": n, "repeats": int(repeats), "k": int(k), "n_units": pp.shape[1],
                     "spearman": s[0], "spearman_lo": s[1], "spearman_hi": s[2],
                     "jaccard": j[0], "jaccard_lo": j[1], "jaccard_hi": j[2],
                     "chance_jaccard": expected_random_jaccard(pp.shape[1], int(k), int(k))})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def spearman_brown(r: float, factor: float) -> float:
    """Projected correlation when every set grows by `factor` (r' = f r / (1 + (f - 1) r))."""
    if not np.isfinite(r) or factor <= 0:
        return float("nan")
    den = 1.0 + (factor - 1.0) * r
    return float("nan") if den <= 0 else float(factor * r / den)


def n_for_correlation(r: float, n: int, target: float) -> float:
    """Prompts per set at which Spearman-Brown projects correlation r (at n) to `target`."""
    if not (np.isfinite(r) and 0 < r < 1 and 0 < target < 1):
        return float("nan")
    return float(n * target * (1 - r) / (r * (1 - target)))


def whole_split_half(per_prompt: np.ndarray, k: int, repeats: int = 50,
                     seed: int = 0) -> dict[str, Any]:
    """The split-half level of a whole attribution (n = n_prompts // 2 on each side) and the
    Spearman-Brown projection of its Spearman to the full n_prompts (module docstring)."""
    from ipg.statistics import expected_random_jaccard

    pp = _check(per_prompt, k)
    half = pp.shape[0] // 2
    if half < 1:
        raise IPGError(f"a split-half needs >= 2 prompts, the attribution has {pp.shape[0]}")
    res = split_half(pp, half, k, repeats, seed)
    s, j = _summary(res["spearman"]), _summary(res["jaccard"])
    return {"n_prompts": pp.shape[0], "half": half, "k": int(k), "n_units": pp.shape[1],
            "spearman_half": s[0], "spearman_half_lo": s[1], "spearman_half_hi": s[2],
            "jaccard_half": j[0], "jaccard_half_lo": j[1], "jaccard_half_hi": j[2],
            "chance_jaccard": expected_random_jaccard(pp.shape[1], int(k), int(k)),
            "spearman_full_sb": spearman_brown(s[0], pp.shape[0] / half)}


def smallest_n(curve: pd.DataFrame, column: str, target: float) -> int | None:
    """The smallest n of the curve whose mean `column` reaches `target` (None if none does)."""
    hit = curve[curve[column] >= target]
    return None if hit.empty else int(hit["n"].min())
