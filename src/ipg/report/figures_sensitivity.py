"""Figure and table of IPG's estimator sensitivity: how much the unit ranking moves when one
estimator choice changes (baseline h', advantage, samples per prompt G, path points m of the
Eq. 2 quadrature), against the study's IPG on the same model, task and granularity.

Input: the `sensitivity` frame of ipg.report.collect (results/sensitivity/{model}/{task}/{gran}.csv,
one row per variant: spearman and jaccard_topk against the base ranking, completeness_residual,
wall_seconds, and the base's retest level, drawn as an orange dashed line on the agreement panels). Absent data gives a skip note, never an error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ipg.report.figures_units import FLOOR
from ipg.report.plotting import facets, save

PANELS = [("spearman", "Spearman rank corr. with the base", False),
          ("jaccard_topk", "Jaccard of the top-k with the base", False),
          ("completeness_residual", "completeness residual, pooled (log)", True),
          ("wall_seconds", "wall time (s)", False)]


def sensitivity_table(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """The table shown in the report: one row per model/task/granularity/variant."""
    cols = ["model", "task", "granularity", "variant", "spearman", "jaccard_topk",
            "completeness_residual", "wall_seconds", "retest_spearman_half", "retest_jaccard_half",
            "retest_spearman_full_sb"]
    if sensitivity.empty:
        return sensitivity.reindex(columns=cols)
    return sensitivity.reindex(columns=cols).sort_values(cols[:4]).reset_index(drop=True)


def sensitivity_bars(sensitivity: pd.DataFrame, path: Path) -> Path | str:
    """One row of bar panels per model · task · granularity: each variant's agreement with the
    base ranking (Spearman, top-k Jaccard), its completeness residual and its wall time."""
    if sensitivity.empty:
        return "no estimator-sensitivity table (results/sensitivity/*.csv; config: sensitivity)"
    frame = sensitivity.assign(group=sensitivity["model"] + " · " + sensitivity["task"] + " · "
                               + sensitivity["granularity"])
    panels = [c for c in PANELS if c[0] in frame.columns and frame[c[0]].notna().any()]
    groups = sorted(frame["group"].unique())
    n_var = int(frame.groupby("group")["variant"].nunique().max())
    fig, axes = facets([(g, label) for g in groups for _, label, _ in panels], ncols=len(panels),
                       sharey=False, panel=(3.2, 0.32 * n_var + 1.6))
    for (g, label), ax in axes.items():
        column, _, log = next(p for p in panels if p[1] == label)
        sub = frame[frame["group"] == g].sort_values("variant")
        values = sub[column].astype(float)
        if log:
            values = values.abs().clip(lower=FLOOR)
        ax.barh(sub["variant"], values, color="tab:blue" if not log else "tab:purple")
        if log:
            ax.set_xscale("log")
            bound = sub["max_residual"].dropna() if "max_residual" in sub else pd.Series(dtype=float)
            if len(bound):  # the max_residual bound the study's IPG enforces
                ax.axvline(float(bound.iloc[0]), color="tab:red", ls="--", lw=1)
        elif column in ("spearman", "jaccard_topk"):
            ax.set_xlim(min(0.0, float(np.nanmin(values))) if len(values) else 0.0, 1.0)
            level = {"spearman": "retest_spearman_half", "jaccard_topk": "retest_jaccard_half"}[column]
            if level in sub.columns and sub[level].notna().any():
                # the base's own retest level: two disjoint halves of its prompts
                ax.axvline(float(sub[level].iloc[0]), color="tab:orange", ls="--", lw=1)
        ax.set_xlabel(label.split(" (")[0] if log else label)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylabel("")
    return save(fig, path, "Estimator sensitivity of IPG: each variant vs the study's IPG", 0)
