"""Retest reliability of an attribution from its per-prompt scores (no new model runs).

An attribution's score is the mean of per-prompt scores (Eq. 3; Attribution.per_prompt
[n_prompts, n_units]). Two attributions on disjoint prompt sets A, B of n prompts each are
simulated by splitting the pool at random (R repeats) and comparing the two mean-score vectors:

- spearman: Spearman rank correlation of the two mean-score vectors (over every unit);
- jaccard: |T_A n T_B| / |T_A u T_B| of their signed top-k sets (largest score first, ties in
  unit order, as ipg.attribution.table.select_units), next to chance_jaccard, the expected
  overlap of two random k-sets of the same units (ipg.study.statistics.expected_random_jaccard).

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
    from ipg.study.statistics import expected_random_jaccard

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
    from ipg.study.statistics import expected_random_jaccard

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


def attribution_curve(tables: dict[int, str], ns: Sequence[int], k: int, repeats: int = 50,
                      seed: int = 0) -> pd.DataFrame:
    """{G: attribution parquet over one prompt pool} -> the curve of every G (a `G` column
    first), ns above half the pool dropped (they cannot be split into two disjoint sets)."""
    from ipg.attribution.table import read_attribution

    parts = []
    for g, path in sorted(tables.items()):
        pp = read_attribution(path).per_prompt
        usable = [n for n in ns if 2 * int(n) <= pp.shape[0]]
        if not usable:
            raise IPGError(f"attribution {path} has {pp.shape[0]} prompts, too few for any split "
                           f"size in {list(ns)}; raise reliability.pool_prompts or lower ns")
        parts.append(reliability_curve(pp, usable, k, repeats, seed).assign(G=int(g)))
    curve = pd.concat(parts, ignore_index=True)
    return curve[["G", *CURVE_COLUMNS]]


def budget_choice(curve: pd.DataFrame, target_jaccard: float) -> dict[str, Any]:
    """The cheapest (n prompts x G samples) cell of the curve whose mean top-k Jaccard reaches
    the target, or None with the best cell reached (n, G, its Jaccard) when none does."""
    hit = curve[curve["jaccard"] >= target_jaccard]
    best = curve.loc[curve["jaccard"].idxmax()]
    choice = None
    if not hit.empty:
        cell = hit.assign(cost=hit["n"] * hit["G"]).sort_values(["cost", "n"]).iloc[0]
        choice = {"n": int(cell["n"]), "G": int(cell["G"]), "jaccard": float(cell["jaccard"]),
                  "spearman": float(cell["spearman"])}
    return {"target_jaccard": float(target_jaccard), "choice": choice,
            "best": {"n": int(best["n"]), "G": int(best["G"]), "jaccard": float(best["jaccard"]),
                     "spearman": float(best["spearman"])}}


def write_curve(tables: dict[int, str], ns: Sequence[int], k: int, repeats: int, seed: int,
                target_jaccard: float, out_csv: str, out_json: str) -> pd.DataFrame:
    """attribution_curve + budget_choice, written atomically (csv; JSON with provenance)."""
    from ipg.study.provenance import provenance
    from ipg.study.trajectories import write_csv_atomic, write_json_atomic

    curve = attribution_curve(tables, ns, k, repeats, seed)
    write_csv_atomic(curve, out_csv)
    write_json_atomic({**budget_choice(curve, target_jaccard), **provenance(
        {"tables": {str(g): str(p) for g, p in tables.items()}, "ns": list(ns), "k": int(k),
         "repeats": int(repeats), "seed": int(seed)})}, out_json)
    return curve


def prepare_pool(task: str, pool_prompts: int, study_prepared: str, seed: int,
                 params: dict[str, Any] | None, out_path: str) -> pd.DataFrame:
    """A larger pool of attribution prompts for the reliability curve, never a held-out one:
    the task's loader asked for pool_prompts + |held-out| rows (seeded as the study's split),
    the study's held-out questions (study_prepared) dropped, the first pool_prompts kept, all
    in split "attribution". Written in the prepared format (ipg.tasks.prepare)."""
    from ipg.tasks.prepare import prepare_task, read_prepared, write_prepared

    heldout = read_prepared(study_prepared, split="heldout")
    held = {" ".join(q.split()) for q in heldout["question"]}
    frame = prepare_task(task, int(pool_prompts) + len(held), 1, int(seed), params)
    keep = frame[~frame["question"].map(lambda q: " ".join(q.split()) in held)]
    keep = keep[keep["split"] == "attribution"].head(int(pool_prompts)).assign(split="attribution")
    if len(keep) < int(pool_prompts):
        raise IPGError(f"task '{task}' has only {len(keep)} distinct questions outside its held-out "
                       f"split, fewer than reliability.pool_prompts={pool_prompts}; lower it")
    write_prepared(keep.reset_index(drop=True), out_path)
    return keep


def cross_split(pp_a: np.ndarray, pp_b: np.ndarray, n: int, k: int, repeats: int = 50,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Spearman and top-k Jaccard of the mean scores of n random prompts of attribution A vs
    n random prompts of attribution B (the same units in the same column order): the
    between-attribution agreement at the size of a split half, so that it can be read against
    split_half(pp_a, n) and split_half(pp_b, n) on equal terms."""
    a_all, b_all = _check(pp_a, k), _check(pp_b, k)
    if a_all.shape[1] != b_all.shape[1]:
        raise IPGError(f"cross split: the attributions score {a_all.shape[1]} and "
                       f"{b_all.shape[1]} units; compare one model and granularity")
    if int(n) != n or n < 1 or n > min(a_all.shape[0], b_all.shape[0]):
        raise IPGError(f"cross split size n={n} must lie in 1..{min(a_all.shape[0], b_all.shape[0])}")
    rng = np.random.default_rng(seed)
    rho, jac = np.empty(int(repeats)), np.empty(int(repeats))
    for r in range(int(repeats)):
        a = a_all[rng.permutation(a_all.shape[0])[:n]].mean(axis=0)
        b = b_all[rng.permutation(b_all.shape[0])[:n]].mean(axis=0)
        rho[r] = spearman(a, b)
        jac[r] = _jaccard_idx(top_k(a, k), top_k(b, k))
    return {"spearman": rho, "jaccard": jac}


def retest_vs_cross(pp_a: np.ndarray, pp_b: np.ndarray, k: int, repeats: int = 50,
                    seed: int = 0) -> dict[str, float]:
    """At n = half the smaller prompt set: the mean top-k Jaccard / Spearman between A and B
    (cross_*) and within A and within B (retest_*: the mean of their split halves)."""
    n = min(np.asarray(pp_a).shape[0], np.asarray(pp_b).shape[0]) // 2
    if n < 1:
        nan = float("nan")
        return {"half": 0, "cross_jaccard_half": nan, "cross_spearman_half": nan,
                "retest_jaccard_half": nan, "retest_spearman_half": nan}
    cross = cross_split(pp_a, pp_b, n, k, repeats, seed)
    ra, rb = split_half(pp_a, n, k, repeats, seed), split_half(pp_b, n, k, repeats, seed)
    return {"half": int(n),
            "cross_jaccard_half": float(np.nanmean(cross["jaccard"])),
            "cross_spearman_half": float(np.nanmean(cross["spearman"])),
            "retest_jaccard_half": float(np.nanmean(np.r_[ra["jaccard"], rb["jaccard"]])),
            "retest_spearman_half": float(np.nanmean(np.r_[ra["spearman"], rb["spearman"]]))}
