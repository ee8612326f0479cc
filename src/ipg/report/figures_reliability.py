"""Figure and tables of attribution reliability (ipg.study.reliability): how well two attributions on
disjoint prompt sets agree, against the number of attribution prompts n and samples G.

Input: the `reliability` frame of ipg.report.collect (results/reliability/{model}/{task}/{gran}.csv,
one row per G x n: split-half Spearman and top-k Jaccard with 2.5/97.5 % over random splits,
chance_jaccard) and its `retest` frame (the split-half level of every study attribution).
Absent data gives a skip note, never an error.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ipg.report.plotting import facets, legend_below, save

PANELS = [("spearman", "Spearman of the two halves' scores"),
          ("jaccard", "Jaccard of the two halves' top-k")]
TABLE_COLUMNS = ["model", "task", "granularity", "G", "n", "k", "spearman", "spearman_lo",
                 "spearman_hi", "jaccard", "jaccard_lo", "jaccard_hi", "chance_jaccard"]
RETEST_COLUMNS = ["model", "task", "granularity", "method", "n_prompts", "half", "k",
                  "spearman_half", "jaccard_half", "jaccard_half_lo", "jaccard_half_hi",
                  "chance_jaccard", "spearman_full_sb"]


def reliability_table(reliability: pd.DataFrame) -> pd.DataFrame:
    """The curve table shown in the report: one row per model/task/granularity/G/n."""
    if reliability.empty:
        return reliability.reindex(columns=TABLE_COLUMNS)
    return (reliability.reindex(columns=TABLE_COLUMNS)
            .sort_values(["model", "task", "granularity", "G", "n"]).reset_index(drop=True))


def retest_table(retest: pd.DataFrame) -> pd.DataFrame:
    """Every study attribution's split-half retest level (n_prompts / 2 per half)."""
    if retest.empty:
        return retest.reindex(columns=RETEST_COLUMNS)
    return (retest.reindex(columns=RETEST_COLUMNS)
            .sort_values(["model", "task", "granularity", "method"]).reset_index(drop=True))


def reliability_curves(reliability: pd.DataFrame, path: Path, target: float | None = 0.5) -> Path | str:
    """One row of panels per model · task · granularity: split-half Spearman and top-k Jaccard
    against the prompts per half n (log scale), one line per G with its 2.5-97.5 % band over
    random splits; dotted: chance Jaccard; dashed: the target Jaccard. One legend under the
    panels (the same G lines in every panel)."""
    if reliability.empty:
        return "no reliability curve (results/reliability/*/*/*.csv; config: reliability)"
    frame = reliability.assign(group=reliability["model"] + " · " + reliability["task"] + " · "
                               + reliability["granularity"])
    groups = sorted(frame["group"].unique())
    fig, axes = facets([(g, label) for g in groups for _, label in PANELS], ncols=len(PANELS),
                       sharey=False, panel=(4.2, 3.2))
    for (g, label), ax in axes.items():
        column = next(c for c, lab in PANELS if lab == label)
        sub = frame[frame["group"] == g]
        defined = sub[sub[column].notna()]  # Spearman is undefined where a half's scores are constant
        for gval, rows in defined.groupby("G"):
            rows = rows.sort_values("n")
            ax.plot(rows["n"], rows[column], marker="o", label=f"G = {int(gval)}")
            ax.fill_between(rows["n"], rows[f"{column}_lo"], rows[f"{column}_hi"], alpha=0.2)
        if defined.empty:
            ax.text(0.5, 0.5, "undefined at every n and G\n(a half's scores are constant)",
                    ha="center", va="center", transform=ax.transAxes, fontsize=8)
        if column == "jaccard":
            ax.axhline(float(sub["chance_jaccard"].mean()), color="grey", ls=":", lw=1,
                       label="chance")
            if target is not None:
                ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:g}")
            ax.set_title(f"{g}\n{label} (k = {int(sub['k'].iloc[0])})", fontsize=9)
        if not defined.empty:  # a log axis needs data
            ax.set_xscale("log", base=2)
        lowest = defined[f"{column}_lo"].min()
        ax.set_ylim(min(0.0, float(lowest)) if pd.notna(lowest) else 0.0, 1.0)
        ax.set_xlabel("attribution prompts per half (n)")
        ax.set_ylabel(label.split(" of ")[0])
    legend_below(fig, list(axes.values()))  # under the panels: a legend inside hid the curves
    return save(fig, path, "Retest reliability of IPG vs attribution prompts n and samples G", 0)
