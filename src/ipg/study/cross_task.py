"""Cross-task overlap of selected units (the paper's Fig. 4b; config: cross_task).

For one model, each (granularity, method) has one attribution table per task. Each table
selects its signed top-k units (`ipg.study.steering_summary.selected_sets`); every unordered task
pair gets the Jaccard overlap J(A, B) = |A n B| / |A u B| of its two sets and `chance`, the
expected Jaccard of two independent uniformly random k-sets of the same n units
(`ipg.study.statistics.expected_random_jaccard`, via `ipg.study.steering_summary.jaccard_table`). J well
above chance means the method picks the same units whatever the task.

results/cross_task/{model}.csv: granularity, method, task_a, task_b, k, n_units, n_common,
jaccard, chance, zero_scores (True when a table's scores are all 0, e.g. no prompt with a
nonzero advantage: its "top-k" is the table's order, not an attribution), and the retest level
(ipg.study.reliability.retest_vs_cross, from the tables' per-prompt scores; NaN without them): at
`half` prompts per side (half the smaller prompt set), cross_jaccard_half is the Jaccard
between a random half of task A's prompts and one of task B's, retest_jaccard_half the mean
Jaccard of two disjoint halves of the same task (A's and B's). Chance is the floor, the retest
level the ceiling: cross near retest means the tasks' units agree as well as the method agrees
with itself on new prompts of one task.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ipg.errors import IPGError

COLUMNS = ["granularity", "method", "task_a", "task_b", "k", "n_units", "n_common", "jaccard",
           "chance", "zero_scores", "half", "cross_jaccard_half", "retest_jaccard_half",
           "cross_spearman_half", "retest_spearman_half"]
RETEST_REPEATS = 50  # random splits per task pair for the retest level


def _scores(table: Any) -> pd.DataFrame:
    """An attribution table (a path, an Attribution or its scores frame) -> its scores frame."""
    if isinstance(table, (str, Path)):
        from ipg.attribution.table import read_attribution

        return read_attribution(table).scores
    return getattr(table, "scores", table)


def _per_prompt(table: Any, units: list[str]):
    """The table's per-prompt scores [n_prompts, n_units] in `units` order, or None (a frame
    without them, or fewer than 2 prompts)."""
    import numpy as np

    if isinstance(table, (str, Path)):
        from ipg.attribution.table import read_attribution

        table = read_attribution(table)
    pp = getattr(table, "per_prompt", None)
    if pp is None or pp.shape[0] < 2:
        return None
    order = {u: i for i, u in enumerate(table.scores["unit"])}
    return np.asarray(pp)[:, [order[u] for u in units]]


def _retest(tables: Mapping[str, Any], a: str, b: str, k: int, units: list[str]) -> dict[str, Any]:
    from ipg.study.reliability import retest_vs_cross

    pa, pb = _per_prompt(tables[a], units), _per_prompt(tables[b], units)
    if pa is None or pb is None:
        nan = float("nan")
        return {"half": 0, "cross_jaccard_half": nan, "retest_jaccard_half": nan,
                "cross_spearman_half": nan, "retest_spearman_half": nan}
    return retest_vs_cross(pa, pb, k, RETEST_REPEATS)


def overlap_rows(tables: Mapping[str, Any], k: int, granularity: str, method: str) -> pd.DataFrame:
    """{task: attribution table} of one (granularity, method) -> one row per task pair.
    The tables must score the same units (the same model and granularity); k is capped at
    their number."""
    from ipg.study.steering_summary import jaccard_table, selected_sets

    if len(tables) < 2:
        raise IPGError(f"cross-task overlap of {method} / {granularity} needs two tasks or more, "
                       f"got {len(tables)}")
    scores = {task: _scores(t) for task, t in tables.items()}
    units = {task: set(s["unit"]) for task, s in scores.items()}
    first = next(iter(units))
    for task, u in units.items():
        if u != units[first]:
            raise IPGError(f"cross-task overlap of {method} / {granularity}: the tables of "
                           f"{first!r} and {task!r} score different units ({len(units[first])} vs "
                           f"{len(u)}); compare attributions of one model and granularity")
    n_units = len(units[first])
    if n_units == 0:
        raise IPGError(f"cross-task overlap of {method} / {granularity}: the tables have no units")
    k_here = min(int(k), n_units)
    sets = selected_sets(scores, k_here, "signed")
    zero = {task: bool((s["score"] == 0).all()) for task, s in scores.items()}
    pairs = jaccard_table(sets, n_units=n_units)
    unit_order = list(scores[first]["unit"])
    retest = pd.DataFrame([_retest(tables, a, b, k_here, unit_order)
                           for a, b in zip(pairs["a"], pairs["b"])],
                          columns=COLUMNS[-5:], index=pairs.index)
    return pd.DataFrame({
        "granularity": granularity, "method": method,
        "task_a": pairs["a"], "task_b": pairs["b"], "k": k_here, "n_units": n_units,
        "n_common": pairs["n_common"], "jaccard": pairs["jaccard"], "chance": pairs["chance"],
        "zero_scores": [zero[a] or zero[b] for a, b in zip(pairs["a"], pairs["b"])],
        **{c: retest[c] for c in COLUMNS[-5:]},
    }, columns=COLUMNS)


def cross_task_table(tables: Sequence[tuple[str, str, str, Any]],
                     top_k: Mapping[str, int]) -> pd.DataFrame:
    """[(task, granularity, method, table)] and {granularity: k} -> every (granularity, method)'s
    task-pair rows, in the order the (granularity, method) pairs first appear."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for task, gran, method, table in tables:
        groups.setdefault((gran, method), {})[task] = table
    for gran, _ in groups:
        if gran not in top_k:
            raise IPGError(f"cross-task overlap: no top_k for granularity {gran!r}; "
                           f"set cross_task.top_k")
    parts = [overlap_rows(by_task, top_k[g], g, m) for (g, m), by_task in groups.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def write_cross_task(targets: Sequence[Sequence[str]], paths: Sequence[str | Path],
                     top_k: Mapping[str, int], out_csv: str | Path) -> pd.DataFrame:
    """The workflow's entry: targets [(task, granularity, method)] with their attribution
    parquet paths (same order) -> results/cross_task/{model}.csv; returns the frame."""
    if len(targets) != len(paths):
        raise IPGError(f"cross-task overlap: {len(targets)} targets but {len(paths)} tables")
    frame = cross_task_table([(*t, p) for t, p in zip(targets, paths)], dict(top_k))
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return frame
