"""Figures of the steering evaluation: gamma sweeps, deletion curves, transfer, length steering,
and the sharpening (temperature) control. Each function writes one PNG and returns its path,
or returns a string saying why the figure was skipped (its inputs are absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ipg.report.findings import reference_k
from ipg.report.plotting import (SELECTION_STYLE, STEERED, band, facet_label, grid, legend_below,
                                 method_style_legend,
                                 palette, pool_random, save)

METRICS = ("accuracy", "d_accuracy", "length", "d_length", "entropy")


def _prepare(steering: pd.DataFrame) -> pd.DataFrame:
    frame = pool_random(steering, [m for m in METRICS if m in steering.columns])
    frame = frame.assign(row=facet_label(frame, ["model", "task"]))
    return frame


def _at_k(group: pd.DataFrame, config) -> pd.DataFrame:
    k = reference_k(group, config)
    return group[(group["selection"] == "none") | (group["k"] == k)], k


def steering_gamma(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """1. Accuracy vs gamma per method; line style = selection; facets model·task x granularity."""
    if steering.empty or not steering["selection"].isin(STEERED).any():
        return "no steering evaluation found (results/intervention/*.csv)"
    frame = _prepare(steering)
    rows, cols = sorted(frame["row"].unique()), sorted(frame["granularity"].unique())
    fig, axes = grid(rows, cols)
    colors = palette(frame["method"].unique())
    for (r, c), ax in axes.items():
        group, k = _at_k(frame[(frame["row"] == r) & (frame["granularity"] == c)], config)
        for (method, sel), sub in group[group["selection"].isin(STEERED)].groupby(["method", "selection"]):
            if method.startswith("random") and sel != "signed":
                continue  # every selection of a random score is a random set: one line suffices
            base = group[(group["method"] == method) & (group["selection"] == "none")].assign(gamma=1.0)
            sub = pd.concat([sub, base])
            band(ax, sub["gamma"], sub["accuracy"], sub["accuracy_lo"], sub["accuracy_hi"],
                 f"{method} ({sel})", colors[method], SELECTION_STYLE[sel], shade=sel == "signed")
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel(f"gamma (scale of the top-{k} units; 1 = unsteered)")
        ax.set_ylabel("accuracy (fraction correct)")
    method_style_legend(fig, colors, SELECTION_STYLE)
    n_leg = (len(colors) + 3 + 5) // 6
    return save(fig, path, "Accuracy after scaling the selected units by gamma (95% CI bands on signed-k)",
                legend_rows=n_leg)


def deletion_curves(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """2. Accuracy vs number of units ablated (gamma 0, signed top-k); random as a band."""
    frame = steering[(steering["selection"] == "none")
                     | ((steering["selection"] == "signed") & np.isclose(steering["gamma"].astype(float), 0))]
    if not (frame["selection"] == "signed").any():
        return "no ablation (gamma = 0) of a signed top-k selection was evaluated"
    frame = _prepare(frame)
    rows, cols = sorted(frame["row"].unique()), sorted(frame["granularity"].unique())
    fig, axes = grid(rows, cols)
    colors = palette(frame["method"].unique())
    for (r, c), ax in axes.items():
        group = frame[(frame["row"] == r) & (frame["granularity"] == c)]
        for method, sub in group.groupby("method"):
            sub = sub.assign(k=np.where(sub["selection"] == "none", 0, sub["k"]))
            band(ax, sub["k"], sub["accuracy"], sub["accuracy_lo"], sub["accuracy_hi"], method,
                 colors[method], "--" if method.startswith("random") else "-")
        ax.set_xlabel("k: units ablated (gamma = 0)")
        ax.set_ylabel("accuracy (fraction correct)")
    legend_below(fig, list(axes.values()))
    return save(fig, path, "Deletion curves: accuracy as the top-k units are ablated (95% CI bands)")


def transfer_bars(transfer: pd.DataFrame, steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """5. d_accuracy of a source-selected set steering the target vs the target's own set."""
    if transfer.empty or not (transfer["selection"] == "signed").any():
        return "no cross-model transfer was evaluated (config: transfer)"
    keys = ["target", "task", "granularity", "method", "selection", "k", "gamma"]
    own = steering.rename(columns={"model": "target"})
    tr = transfer[transfer["selection"] == "signed"]
    both = tr.merge(own[keys + ["d_accuracy", "d_accuracy_lo", "d_accuracy_hi"]], on=keys,
                    how="left", suffixes=("", "_own"))
    both["row"] = both["source"] + " → " + both["target"] + " · " + both["task"]
    gammas = sorted(both["gamma"].astype(float).unique())
    cols = [f"gamma = {g:g} ({'ablate' if g == 0 else 'enhance' if g > 1 else 'suppress'})" for g in gammas]
    fig, axes = grid(sorted(both["row"].unique()), cols, sharey="row", panel=(4.4, 3.0))
    for (r, c), ax in axes.items():
        sub = both[(both["row"] == r) & (both["gamma"].astype(float) == gammas[cols.index(c)])]
        sub = sub.sort_values(["granularity", "method", "k"])
        x = np.arange(len(sub))
        for off, suffix, label, color in ((-0.2, "", "transferred from the source", "tab:purple"),
                                         (0.2, "_own", "target's own selection", "tab:green")):
            y = sub[f"d_accuracy{suffix}"].to_numpy(float)
            err = np.abs(np.vstack([y - sub[f"d_accuracy_lo{suffix}"], sub[f"d_accuracy_hi{suffix}"] - y]))
            ax.bar(x + off, y, 0.4, yerr=err, color=color, label=label, capsize=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [f"{g}\n{m} k={k}" for g, m, k in zip(sub["granularity"], sub["method"], sub["k"])],
                      fontsize=8)
        ax.set_ylabel("accuracy change vs unsteered")
    legend_below(fig, list(axes.values()))
    return save(fig, path, "Cross-model transfer of selected units (paired difference, 95% CI)")


def length_steering(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """6. Length and accuracy vs gamma for the length-reward IPG method(s)."""
    frame = steering[(steering["kind"] == "ipg") & (steering["reward"] == "length")]
    if frame.empty:
        return "no IPG method with the length reward was steered"
    frame = frame.assign(row=facet_label(frame, ["model", "task"]))
    cols = sorted(frame["row"].unique())
    metric_rows = ["reasoning length (tokens)", "accuracy (fraction correct)"]
    fig, axes = grid(metric_rows, cols, sharey="row")
    colors = palette(frame["granularity"].unique())
    for (r, c), ax in axes.items():
        ax.set_title(c, fontsize=10)
        metric = "length" if r.startswith("reasoning") else "accuracy"
        for (gran, method), group in frame[frame["row"] == c].groupby(["granularity", "method"]):
            group, k = _at_k(group, config)
            sub = group[group["selection"].isin(["signed", "none"])]
            sub = sub.assign(gamma=np.where(sub["selection"] == "none", 1.0, sub["gamma"]))
            band(ax, sub["gamma"], sub[metric], sub[f"{metric}_lo"], sub[f"{metric}_hi"],
                 f"{gran} ({method}, top-{k})", colors[gran])
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel("gamma (1 = unsteered)")
        ax.set_ylabel(r)
    legend_below(fig, list(axes.values()))
    return save(fig, path, "Length steering: units selected with the length reward, scaled by gamma")


def sharpening_control(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """8. Accuracy vs next-token entropy: steered conditions vs the temperature control curve."""
    ctrl_groups = steering.loc[steering["selection"] == "temperature", ["model", "task", "granularity"]]
    if ctrl_groups.empty:
        return "no temperature control was evaluated (steering.control_temperatures)"
    frame = _prepare(steering.merge(ctrl_groups.drop_duplicates(), on=["model", "task", "granularity"]))
    rows, cols = sorted(frame["row"].unique()), sorted(frame["granularity"].unique())
    fig, axes = grid(rows, cols, sharey=True)
    colors = palette(frame["method"].unique())
    for (r, c), ax in axes.items():
        group = frame[(frame["row"] == r) & (frame["granularity"] == c)]
        curve = group[group["selection"].isin(["temperature", "none"])].drop_duplicates(
            ["selection", "temperature"]).sort_values("entropy")
        if curve.empty:
            ax.set_axis_off()
            continue
        ax.errorbar(curve["entropy"], curve["accuracy"],
                    yerr=np.abs([curve["accuracy"] - curve["accuracy_lo"], curve["accuracy_hi"] - curve["accuracy"]]),
                    color="k", marker="s", ms=4, lw=1.4, capsize=2, label="temperature control")
        for _, p in curve.iterrows():
            ax.annotate(f"T={p['temperature']:g}", (p["entropy"], p["accuracy"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        steered = group[group["selection"] == "signed"]
        for (method, up), sub in steered.groupby(["method", steered["gamma"].astype(float) > 1]):
            ax.scatter(sub["entropy"], sub["accuracy"], color=colors[method], marker="^" if up else "v",
                       s=28, label=f"{method}, {'enhanced' if up else 'suppressed'}", zorder=3)
        ax.set_xlabel("mean next-token entropy (nats)")
        ax.set_ylabel("accuracy (fraction correct)")
    legend_below(fig, list(axes.values()), ncol=3)
    return save(fig, path, "Sharpening control: steered accuracy vs the unsteered model at lower temperature",
                legend_rows=2)
