"""Summaries of steering rows and unit selections, without a model (docs/method.md,
"Evaluation: paired verdicts on held-out prompts").

- The row schema of ipg.study.steering (`ROW_COLUMNS`, `METRICS`, `BASELINE`).
- `summarize`: per condition, means with bootstrap CIs over prompts (and seeds; ipg.study.statistics)
  and the paired difference to the unsteered baseline (same prompt, same seed); accuracy and
  truncated (proportions) never get a zero-width CI (score interval where the bootstrap degenerates).
- `entropy_matched`: the temperature control's accuracy at each condition's next-token entropy
  (the sharpening control).
- `selected_sets` and `jaccard_table`: the units each attribution table selects and the overlap
  of every pair of sets, with the chance overlap of random sets of the same sizes.

No torch: the report and the cross-task stage use these on files alone.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ipg.errors import IPGError
from ipg.study.statistics import bootstrap_ci, expected_random_jaccard, jaccard

ROW_COLUMNS = ["condition", "selection", "k", "gamma", "mode", "temperature", "seed",
               "prompt_id", "accuracy", "length", "entropy", "truncated", "n_units", "n_samples"]
METRICS = ("accuracy", "length", "entropy", "truncated")
BASELINE = "none"
PROPORTIONS = ("accuracy", "truncated")  # in [0, 1]: no zero-width CI (ipg.study.statistics)



def _scores(table: Any, granularity: str | None) -> pd.DataFrame:
    frame = getattr(table, "scores", table)  # an Attribution or its scores frame
    if not isinstance(frame, pd.DataFrame) or not {"unit", "score"} <= set(frame.columns):
        raise IPGError("attribution scores need columns unit and score (an Attribution table)")
    if granularity is not None and "granularity" in frame.columns:
        frame = frame[frame["granularity"] == granularity]
        if frame.empty:
            raise IPGError(f"the attribution table has no units of granularity '{granularity}'")
    return frame


def summarize(rows: pd.DataFrame, by: Sequence[str] = (), scheme: str = "prompts",
              confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per condition: n_prompts, n_seeds, and for each metric its mean with a bootstrap
    CI ({m}, {m}_lo, {m}_hi) and the paired difference to the baseline (d_{m}, d_{m}_lo,
    d_{m}_hi; steered - unsteered on the same prompt and seed). Baseline rows are those with
    selection "none"; `by` names label columns (e.g. model, task) the pairing must also match."""
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise IPGError(f"steering rows lack column(s) {missing}; pass what evaluate_steering returns")
    by = list(by)
    pair = by + ["prompt_id", "seed"]
    base = rows[rows["selection"] == BASELINE].groupby(pair)[list(METRICS)].mean()
    keys = [c for c in rows.columns if c not in ("seed", "prompt_id", *METRICS)]
    out = []
    for key, group in rows.groupby(keys, sort=False, dropna=False):
        rec = dict(zip(keys, key))
        wide = {m: group.pivot_table(index="prompt_id", columns="seed", values=m, aggfunc="mean")
                for m in METRICS}
        rec.update(n_prompts=wide["accuracy"].shape[0], n_seeds=wide["accuracy"].shape[1])
        for m in METRICS:
            y = wide[m].to_numpy(dtype=np.float64)  # [n_prompts, n_seeds]
            bounds = (0.0, 1.0) if m in PROPORTIONS else None
            ci = bootstrap_ci(y, scheme, confidence, n_resamples, seed, bounds) if np.isfinite(y).all() \
                else (float(np.nanmean(y)), float("nan"), float("nan"))
            rec.update({m: ci[0], f"{m}_lo": ci[1], f"{m}_hi": ci[2]})
            paired = group.set_index(pair)[m]
            b = base[m].reindex(paired.index)
            if len(base) and b.notna().all() and np.isfinite(y).all():
                d_wide = (paired - b).reset_index().pivot_table(
                    index="prompt_id", columns="seed", values=m, aggfunc="mean")
                d = bootstrap_ci(d_wide.to_numpy(), scheme, confidence, n_resamples, seed,
                                 (-1.0, 1.0) if bounds else None)
            else:
                d = (float("nan"),) * 3
            rec.update({f"d_{m}": d[0], f"d_{m}_lo": d[1], f"d_{m}_hi": d[2]})
        out.append(rec)
    return pd.DataFrame(out)


def entropy_matched(summary: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Add the temperature control's `metric` and temperature interpolated at each condition's
    mean entropy (matched_{metric}, matched_temperature; NaN outside the controls' range)."""
    ctrl = summary[summary["selection"] == "temperature"].sort_values("entropy")
    out = summary.copy()
    if len(ctrl) < 2:
        out[f"matched_{metric}"] = out["matched_temperature"] = np.nan
        return out
    h = ctrl["entropy"].to_numpy()
    inside = (out["entropy"] >= h.min()) & (out["entropy"] <= h.max())
    for col, src in ((f"matched_{metric}", metric), ("matched_temperature", "temperature")):
        vals = np.interp(out["entropy"], h, ctrl[src].to_numpy(dtype=np.float64))
        out[col] = np.where(inside, vals, np.nan)
    return out


def selected_sets(tables: Mapping[str, Any], k: int, mode: str = "signed",
                  per_layer: bool = False) -> dict[str, list[str]]:
    """{name: attribution table} -> {name: the k units it selects}."""
    from ipg.attribution.table import select_units

    return {name: select_units(_scores(t, None), k, mode, per_layer) for name, t in tables.items()}


def jaccard_table(sets: Mapping[str, Iterable[str]], n_units: int | None = None) -> pd.DataFrame:
    """Every unordered pair of named sets: a, b, n_a, n_b, n_common, jaccard, and (given the
    number of candidate units) `chance`, the expected Jaccard of two random sets of those sizes."""
    named = {k: set(v) for k, v in sets.items()}
    names, rows = list(named), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            row = dict(a=a, b=b, n_a=len(named[a]), n_b=len(named[b]),
                       n_common=len(named[a] & named[b]), jaccard=jaccard(named[a], named[b]))
            if n_units is not None:
                row["chance"] = expected_random_jaccard(n_units, len(named[a]), len(named[b]))
            rows.append(row)
    cols = ["a", "b", "n_a", "n_b", "n_common", "jaccard"] + (["chance"] if n_units else [])
    return pd.DataFrame(rows, columns=cols)
