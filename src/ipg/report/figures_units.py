"""Figures of the selected units and the engine: where the top units live, Jaccard overlaps
across tasks and across methods, completeness residuals, benchmark ratios vs their targets.
Each function writes one PNG and returns its path, or a string saying why it was skipped."""
from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ipg.report.plotting import grid, save
from ipg.statistics import expected_random_jaccard, jaccard

FLOOR = 1e-9  # completeness residuals of exactly 0 are drawn here on the log axis


def top_sets(attributions: pd.DataFrame, k: int) -> pd.DataFrame:
    """The signed top-k units of every attribution table: model, task, granularity, method,
    units (set), layers (list), n_units (candidates)."""
    from ipg.attribution.table import read_attribution, select_units

    rows = []
    for rec in attributions.itertuples():
        if not Path(rec.path).exists():
            continue
        scores = read_attribution(rec.path).scores
        units = select_units(scores, min(k, len(scores)), "signed")
        # all-zero scores (e.g. no prompt with a nonzero advantage) select by table order only
        method = rec.method + (" (scores all 0)" if (scores["score"] == 0).all() else "")
        layer_of = dict(zip(scores["unit"], scores["layer"]))
        rows.append({"model": rec.model, "task": rec.task, "granularity": rec.granularity,
                     "method": method, "units": set(units),
                     "layers": [int(layer_of[u]) for u in units], "n_units": len(scores)})
    return pd.DataFrame(rows, columns=["model", "task", "granularity", "method", "units",
                                       "layers", "n_units"])


def unit_layers(sets: pd.DataFrame, path: Path, k: int) -> Path | str:
    """3. Heat map (method x layer) of the fraction of the top-k units in each layer."""
    if sets.empty:
        return "no attribution tables found (results/attribution/*.parquet)"
    rows = [{"model": r.model, "granularity": r.granularity, "task": r.task, "method": r.method,
             "layer": layer, "fraction": 1.0 / len(r.layers)} for r in sets.itertuples() for layer in r.layers]
    frame = pd.DataFrame(rows)
    # the fraction per task, then the mean over tasks (every task weighs the same)
    per_task = frame.groupby(["model", "granularity", "task", "method", "layer"])["fraction"].sum()
    mean = per_task.groupby(["model", "granularity", "method", "layer"]).sum() / \
        frame.groupby(["model", "granularity"])["task"].nunique()
    mean = mean.rename("fraction").reset_index()
    models, grans = sorted(mean["model"].unique()), sorted(mean["granularity"].unique())
    fig, axes = grid(models, grans, sharey=False, panel=(4.2, 3.2))
    for (m, g), ax in axes.items():
        sub = mean[(mean["model"] == m) & (mean["granularity"] == g)]
        if sub.empty:
            ax.set_axis_off()
            continue
        table = sub.pivot(index="method", columns="layer", values="fraction").fillna(0.0)
        sns.heatmap(table, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=table.shape[1] <= 12,
                    fmt=".2f", annot_kws={"fontsize": 9}, cbar_kws={"label": "fraction of top-k"})
        ax.set_xlabel("layer")
        ax.set_ylabel("")  # method names label the rows; a label would hit the colour bar to the left
    return save(fig, path, f"Where the top-{k} units live (signed selection; mean over tasks)", 0)


def jaccard_tasks(sets: pd.DataFrame, path: Path, k: int) -> Path | str:
    """4a. Mean Jaccard of the top-k sets across task pairs (same model, granularity, method)."""
    rows = []
    for (m, g, meth), grp in sets.groupby(["model", "granularity", "method"]):
        pairs = list(combinations(grp.itertuples(), 2))
        if not pairs:
            continue
        n = int(grp["n_units"].min())
        rows.append({"model": m, "granularity": g, "method": meth,
                     "jaccard": float(np.mean([jaccard(a.units, b.units) for a, b in pairs])),
                     "chance": expected_random_jaccard(n, min(k, n)), "n_pairs": len(pairs)})
    if not rows:
        return "fewer than two tasks per model: no cross-task overlap to show"
    frame = pd.DataFrame(rows)
    models = sorted(frame["model"].unique())
    fig, axes = grid([""], models, sharey=False, panel=(4.6, 3.4))
    for (_, m), ax in axes.items():
        sub = frame[frame["model"] == m]
        table = sub.pivot(index="method", columns="granularity", values="jaccard")
        chance = sub.pivot(index="method", columns="granularity", values="chance")
        annot = table.map(lambda v: f"{v:.2f}") + "\n(" + chance.map(lambda v: f"{v:.2f}") + ")"
        sns.heatmap(table, ax=ax, vmin=0, vmax=1, cmap="mako", annot=annot.to_numpy(), fmt="",
                    annot_kws={"fontsize": 8}, cbar_kws={"label": "Jaccard (mean over task pairs)"})
        ax.set_title(f"{m}\ncell: Jaccard (chance for random top-{k} sets)", fontsize=10)
        ax.set_xlabel("granularity")
        ax.set_ylabel("method")
    return save(fig, path, f"Overlap of the top-{k} sets across tasks", 0)


def jaccard_methods(sets: pd.DataFrame, path: Path, k: int) -> Path | str:
    """4b. Jaccard between methods' top-k sets (same model, task, granularity)."""
    if sets.empty or sets.groupby(["model", "task", "granularity"])["method"].nunique().max() < 2:
        return "fewer than two attribution methods per model/task/granularity"
    sets = sets.assign(row=sets["model"] + " · " + sets["task"])
    rows, cols = sorted(sets["row"].unique()), sorted(sets["granularity"].unique())
    n_meth = sets["method"].nunique()
    side = max(3.4, 0.5 * n_meth + 2.0)
    fig, axes = grid(rows, cols, sharey=False, panel=(side + 0.8, side))
    for (r, c), ax in axes.items():
        sub = sets[(sets["row"] == r) & (sets["granularity"] == c)].set_index("method")
        if len(sub) < 2:
            ax.set_axis_off()
            continue
        names = list(sub.index)
        mat = pd.DataFrame([[jaccard(sub.loc[a, "units"], sub.loc[b, "units"]) for b in names]
                            for a in names], index=names, columns=names)
        n = int(sub["n_units"].min())
        sns.heatmap(mat, ax=ax, vmin=0, vmax=1, cmap="mako", annot=n_meth <= 8, fmt=".2f",
                    annot_kws={"fontsize": 9}, cbar_kws={"label": "Jaccard"})
        ax.set_title(f"{r}\n{c} (chance {expected_random_jaccard(n, min(k, n)):.2f})", fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("")
    return save(fig, path, f"Overlap of the top-{k} sets between methods", 0)


def completeness(attributions: pd.DataFrame, path: Path) -> Path | str:
    """7a. Completeness residual |sum IPG - (Phi(h) - Phi(h'))| / |...| of the IPG runs."""
    frame = attributions[attributions["kind"] == "ipg"].dropna(subset=["completeness_residual"])
    if frame.empty:
        return "no IPG attribution recorded a completeness residual"
    frame = frame.assign(residual=frame["completeness_residual"].astype(float).abs().clip(lower=FLOOR),
                         model_method=frame["model"] + " · " + frame["method"])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * frame["granularity"].nunique() + 2.5), 3.8))
    sns.stripplot(frame, x="granularity", y="residual", hue="model_method", dodge=True, ax=ax,
                  size=6, jitter=0.15, log_scale=True)
    ax.axhline(0.01, color="tab:red", ls="--", lw=1, label="1% (quadrature target)")
    ax.set_ylabel("relative completeness residual")
    ax.set_xlabel("granularity")
    ax.legend(fontsize=8, title="model · method", title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1))
    return save(fig, path, f"Completeness residuals of the IPG runs (log scale; {FLOOR:g} = exactly 0)", 0)


def _threshold(target: str) -> float | None:
    match = re.fullmatch(r"\s*(<=|>=)\s*([0-9.eE+-]+)\s*", str(target or ""))
    return float(match[2]) if match and float(match[2]) != 0 else None


def bench_targets(bench: pd.DataFrame, path: Path) -> Path | str:
    """7b. Each benchmark value divided by its target threshold (1 = exactly on target)."""
    if bench.empty:
        return "no engine benchmark (reports/bench/attribution.csv; rule bench_attribution)"
    frame = bench.assign(threshold=bench["target"].map(_threshold)).dropna(subset=["threshold"])
    if frame.empty:
        return "the engine benchmark has no rows with a numeric target"
    text = frame.reindex(columns=["bench", "variant", "model", "unit", "target"]).fillna("").astype(object)
    labels = [f"{b} · {v} · {m}\n({val:.3g} {u}, target {t})".replace(" · \n", "\n")
              for b, v, m, u, t, val in zip(text["bench"], text["variant"], text["model"], text["unit"],
                                            text["target"], frame["value"].astype(float))]
    frame = frame.assign(ratio=frame["value"].astype(float) / frame["threshold"], label=labels)
    ok = frame["meets_target"].astype(str).str.lower().isin(["true", "1"])
    fig, ax = plt.subplots(figsize=(9.0, 0.6 * len(frame) + 1.8))
    ax.barh(frame["label"], frame["ratio"], color=np.where(ok, "tab:green", "tab:red"))
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xlim(0, max(1.2, float(frame["ratio"].max()) * 1.1))
    ax.set_xlabel("value / target threshold (1 = on target)")
    ax.tick_params(axis="y", labelsize=8)
    ax.invert_yaxis()
    return save(fig, path, "Engine benchmark vs its targets (green = met, red = missed)", 0)
