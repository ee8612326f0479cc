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

from ipg.report.plotting import annot_fontsize, facets, grid, save
from ipg.study.statistics import expected_random_jaccard, jaccard

FLOOR = 1e-9  # completeness residuals of exactly 0 are drawn here on the log axis


def top_sets(attributions: pd.DataFrame, k) -> pd.DataFrame:
    """The signed top-k units of every attribution table: model, task, granularity, method,
    k, units (set), layers (list), n_units (candidates), n_layers. `k`: an int, or a function
    (model, granularity) -> int (the ks differ by granularity)."""
    k_of = k if callable(k) else (lambda model, granularity: k)
    from ipg.attribution.table import read_attribution, select_units

    rows = []
    for rec in attributions.itertuples():
        if not Path(rec.path).exists():
            continue
        scores = read_attribution(rec.path).scores
        k_here = min(int(k_of(rec.model, rec.granularity)), len(scores))
        units = select_units(scores, k_here, "signed")
        # all-zero scores (e.g. no prompt with a nonzero advantage) select by table order only
        method = rec.method + (" (scores all 0)" if (scores["score"] == 0).all() else "")
        layer_of = dict(zip(scores["unit"], scores["layer"]))
        rows.append({"model": rec.model, "task": rec.task, "granularity": rec.granularity,
                     "method": method, "k": k_here, "units": set(units),
                     "layers": [int(layer_of[u]) for u in units], "n_units": len(scores),
                     "n_layers": int(scores["layer"].max()) + 1})
    return pd.DataFrame(rows, columns=["model", "task", "granularity", "method", "k", "units",
                                       "layers", "n_units", "n_layers"])


def _k_label(sets: pd.DataFrame) -> str:
    ks = sorted(sets["k"].unique())
    return f"top-{ks[0]}" if len(ks) == 1 else "top-k"


def unit_layers(sets: pd.DataFrame, path: Path, k=None) -> Path | str:
    """3. Heat map (method x layer) of the fraction of the top-k units in each layer; one panel
    per model x granularity, every layer of the model on the x axis."""
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
    info = sets.groupby(["model", "granularity"]).agg(n_layers=("n_layers", "max"), k=("k", "max"))
    keys = sorted(info.index)
    wide = max(int(info["n_layers"].max()), 1) > 12
    fig, axes = facets([(m, f"{g}, k = {info.loc[(m, g), 'k']}") for m, g in keys],
                       ncols=2 if wide else 3, sharey=False, panel=(7.0 if wide else 4.6, 3.4))
    for (m, g), ax in zip(keys, axes.values()):
        sub = mean[(mean["model"] == m) & (mean["granularity"] == g)]
        table = sub.pivot(index="method", columns="layer", values="fraction")
        table = table.reindex(columns=range(int(info.loc[(m, g), "n_layers"]))).fillna(0.0)
        n_layers = table.shape[1]
        percent = (100 * table).round().astype(int).astype(str)  # every cell numbered, in %
        sns.heatmap(table, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=percent.to_numpy(),
                    fmt="", annot_kws={"fontsize": annot_fontsize(n_layers, 7.0 if wide else 4.6, 3)},
                    cbar_kws={"label": "fraction of top-k (cells: %)"},
                    xticklabels=max(1, n_layers // 10))
        ax.set_xlabel("layer")
        ax.set_ylabel("")  # method names label the rows; a label would hit the colour bar to the left
        ax.tick_params(axis="x", rotation=0)
    return save(fig, path, f"Where the {_k_label(sets)} units live (signed selection; mean over tasks)", 0)


def jaccard_tasks(sets: pd.DataFrame, path: Path, k=None) -> Path | str:
    """4a. Mean Jaccard of the top-k sets across task pairs (same model, granularity, method)."""
    rows = []
    for (m, g, meth), grp in sets.groupby(["model", "granularity", "method"]):
        pairs = list(combinations(grp.itertuples(), 2))
        if not pairs:
            continue
        n = int(grp["n_units"].min())
        rows.append({"model": m, "granularity": g, "method": meth,
                     "jaccard": float(np.mean([jaccard(a.units, b.units) for a, b in pairs])),
                     "chance": expected_random_jaccard(n, int(grp["k"].min())), "n_pairs": len(pairs)})
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
        ax.set_title(f"{m}\ncell: Jaccard (chance for random sets of the same k)", fontsize=10)
        ax.set_xlabel("granularity")
        ax.set_ylabel("method")
    return save(fig, path, f"Overlap of the {_k_label(sets)} sets across tasks", 0)


def jaccard_methods(sets: pd.DataFrame, path: Path, k=None) -> Path | str:
    """4b. Jaccard between methods' top-k sets (same model, task, granularity); one panel per
    model · task x granularity with at least two methods."""
    if sets.empty or sets.groupby(["model", "task", "granularity"])["method"].nunique().max() < 2:
        return "fewer than two attribution methods per model/task/granularity"
    sets = sets.assign(row=sets["model"] + " · " + sets["task"])
    keys = [key for key, grp in sets.groupby(["row", "granularity"]) if grp["method"].nunique() >= 2]
    n_meth = int(sets.groupby(["row", "granularity"])["method"].nunique().max())
    side = max(3.6, 0.3 * n_meth + 1.8)
    titles = []
    for r, g in keys:
        sub = sets[(sets["row"] == r) & (sets["granularity"] == g)]
        n, kk = int(sub["n_units"].min()), int(sub["k"].min())
        titles.append((r, f"{g}, k = {kk} (chance {expected_random_jaccard(n, min(kk, n)):.2f})"))
    fig, axes = facets(titles, ncols=3, sharey=False, panel=(side + 1.0, side + 1.0))
    for (r, g), ax in zip(keys, axes.values()):
        sub = sets[(sets["row"] == r) & (sets["granularity"] == g)].set_index("method")
        names = list(sub.index)
        mat = pd.DataFrame([[jaccard(sub.loc[a, "units"], sub.loc[b, "units"]) for b in names]
                            for a in names], index=names, columns=names)
        sns.heatmap(mat, ax=ax, vmin=0, vmax=1, cmap="mako", annot=True, fmt=".2f",
                    annot_kws={"fontsize": annot_fontsize(len(names), side + 1.0, 4)},
                    cbar_kws={"label": "Jaccard", "shrink": 0.8}, square=True)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=8)
    return save(fig, path, f"Overlap of the {_k_label(sets)} sets between methods", 0)


def completeness(attributions: pd.DataFrame, path: Path) -> Path | str:
    """7a. The completeness figure of merit of the IPG runs: the pooled residual
    sum_x |sum_i IPG_ix - delta_x| / sum_x |delta_x| (ipg.attribution.completeness), the number
    MLflow and the tables show, against the `max_residual` bound the runs enforced (if any)."""
    frame = attributions[attributions["kind"] == "ipg"]
    frame = frame.assign(residual=frame["completeness_residual"].astype(float)).dropna(subset=["residual"])
    if frame.empty:
        return "no IPG attribution recorded a completeness residual"
    frame = frame.assign(residual=frame["residual"].abs().clip(lower=FLOOR),
                         model_method=frame["model"] + " · " + frame["method"])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * frame["granularity"].nunique() + 2.5), 3.8))
    sns.stripplot(frame, x="granularity", y="residual", hue="model_method", dodge=True, ax=ax,
                  size=6, jitter=0.15, log_scale=True)
    bounds = pd.to_numeric(frame.get("max_residual", pd.Series(dtype=float)), errors="coerce").dropna()
    for bound in sorted(set(bounds)):
        ax.axhline(bound, color="tab:red", ls="--", lw=1, label=f"max_residual bound {bound:g}")
    ax.set_ylabel("completeness residual\n(pooled over prompts)")
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
    ratio = frame["ratio"].clip(lower=1e-12)
    lo = 10 ** np.floor(np.log10(min(float(ratio.min()), 0.5)))
    ax.barh(frame["label"], ratio - lo, left=lo, color=np.where(ok, "tab:green", "tab:red"))
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(lo, max(2.0, float(ratio.max()) * 2))
    ax.set_xlabel("value / target threshold (log scale; 1 = on target)")
    ax.tick_params(axis="y", labelsize=8)
    ax.invert_yaxis()
    return save(fig, path, "Engine benchmark vs its targets (green = met, red = missed)", 0)
