"""Figure and table of the cross-task stage (the paper's Fig. 4b; ipg.study.cross_task): the Jaccard
overlap of the top-k units one model selects on each pair of tasks, next to chance (the expected
Jaccard of two random k-sets of the same n units) and the retest level (the Jaccard of two
disjoint halves of one task's prompts, next to the cross-task Jaccard of halves of the same size).

Input: the `cross_task` frame of ipg.report.collect (results/cross_task/{model}.csv, one row per
granularity x method x task pair, model added). Absent data gives a skip note, never an error.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ipg.report.plotting import facets, save

TABLE_COLUMNS = ["model", "granularity", "method", "task_a", "task_b", "k", "n_units",
                 "n_common", "jaccard", "chance", "ratio_to_chance", "half", "cross_jaccard_half",
                 "retest_jaccard_half"]


def cross_task_table(cross_task: pd.DataFrame) -> pd.DataFrame:
    """The table shown in the report: every task pair, with Jaccard / chance."""
    if cross_task.empty:
        return cross_task.reindex(columns=TABLE_COLUMNS)
    frame = cross_task.assign(ratio_to_chance=cross_task["jaccard"].astype(float)
                              / cross_task["chance"].astype(float))
    if "zero_scores" in frame.columns:  # an all-zero table "selects" its row order: say so
        frame["method"] = frame["method"].where(~frame["zero_scores"].astype(bool),
                                                frame["method"] + " (scores all 0)")
    return frame.reindex(columns=TABLE_COLUMNS).reset_index(drop=True)


def _matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """Task pairs -> a symmetric tasks x tasks Jaccard matrix (1 on the diagonal), tasks in
    their order of first appearance."""
    tasks = list(dict.fromkeys([*rows["task_a"], *rows["task_b"]]))
    mat = pd.DataFrame(1.0, index=tasks, columns=tasks)
    for r in rows.itertuples():
        mat.loc[r.task_a, r.task_b] = mat.loc[r.task_b, r.task_a] = float(r.jaccard)
    return mat


def cross_task_heatmap(cross_task: pd.DataFrame, path: Path) -> Path | str:
    """One tasks x tasks heat map of the top-k Jaccard per model x granularity x method; each
    panel's title gives k, the number of units and the chance Jaccard of two random k-sets
    (also the red mark on its colour bar)."""
    import seaborn as sns

    if cross_task.empty:
        return "no cross-task overlap table (results/cross_task/*.csv; config: cross_task)"
    frame = cross_task.assign(model=cross_task["model"].astype(str))
    keys, titles = [], []
    for (m, g, meth), rows in frame.groupby(["model", "granularity", "method"], sort=False):
        zero = " (scores all 0)" if "zero_scores" in rows and rows["zero_scores"].astype(bool).any() else ""
        k, n = int(rows["k"].iloc[0]), int(rows["n_units"].iloc[0])
        keys.append((m, g, meth))
        retest = ""
        if "retest_jaccard_half" in rows and rows["retest_jaccard_half"].notna().any():
            retest = (f"\nhalves of {int(rows['half'].min())} prompts: cross "
                      f"{float(rows['cross_jaccard_half'].mean()):.2f} vs retest "
                      f"{float(rows['retest_jaccard_half'].mean()):.2f} (orange)")
        titles.append((f"{m} · {g} · {meth}{zero}",
                       f"top-{k} of {n}; chance {float(rows['chance'].mean()):.3f} (red){retest}"))
    n_tasks = max(len(_matrix(frame[(frame["model"] == m) & (frame["granularity"] == g)
                                    & (frame["method"] == meth)])) for m, g, meth in keys)
    side = max(3.4, 0.9 * n_tasks + 1.6)
    n_methods = frame["method"].nunique()
    fig, axes = facets(titles, ncols=max(2, min(n_methods, 4)), sharey=False,
                       panel=(side + 1.2, side + 0.6))
    for (m, g, meth), ax in zip(keys, axes.values()):
        rows = frame[(frame["model"] == m) & (frame["granularity"] == g) & (frame["method"] == meth)]
        mat = _matrix(rows)
        sns.heatmap(mat, ax=ax, vmin=0, vmax=1, cmap="mako", annot=True, fmt=".2f",
                    annot_kws={"fontsize": 9}, square=True,
                    cbar_kws={"label": "Jaccard of the top-k sets", "shrink": 0.8})
        chance = float(rows["chance"].mean())  # the expected Jaccard of two random k-sets
        ax.collections[0].colorbar.ax.axhline(chance, color="tab:red", lw=2)
        if "retest_jaccard_half" in rows and rows["retest_jaccard_half"].notna().any():
            # the method's own retest agreement (split halves of one task's prompts)
            ax.collections[0].colorbar.ax.axhline(float(rows["retest_jaccard_half"].mean()),
                                                  color="tab:orange", lw=2)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.tick_params(axis="y", rotation=0, labelsize=8)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    return save(fig, path, "Overlap of the top-k units across tasks (signed selection; "
                "diagonal = 1)", 0)
