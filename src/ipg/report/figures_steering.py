"""Figures of the steering evaluation: gamma sweeps, deletion curves, transfer, length steering,
and the sharpening (temperature) control. Each function writes one PNG and returns its path,
or returns a string saying why the figure was skipped (its inputs are absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from ipg.report.findings import is_random, reference_k
from ipg.report.plotting import (SELECTION_STYLE, STEERED, band, facet_label, facets, legend_below,
                                 method_style_legend, palette, pool_random, save)

METRICS = ("accuracy", "d_accuracy", "length", "d_length", "entropy")


def _prepare(steering: pd.DataFrame, selections) -> pd.DataFrame:
    """The rows of the given selections, random draws pooled, with a model · task row label.
    Filtering first keeps e.g. deletion-only random draws out of a gamma sweep's pooled line."""
    frame = steering[steering["selection"].isin(list(selections))]
    frame = pool_random(frame, [m for m in METRICS if m in frame.columns])
    return frame.assign(row=facet_label(frame, ["model", "task"]))


def _at_k(group: pd.DataFrame, config) -> pd.DataFrame:
    k = reference_k(group, config)
    return group[(group["selection"] == "none") | (group["k"] == k)], k


def _panels(frame: pd.DataFrame, has_data) -> list[tuple[str, str]]:
    """(model · task, granularity) pairs whose rows pass `has_data`, in a stable order."""
    return [key for key, group in frame.groupby(["row", "granularity"], sort=True) if has_data(group)]


def steering_gamma(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """1. Accuracy vs gamma per method; line style = selection; one panel per model·task x
    granularity that was steered (at its reference k)."""
    if steering.empty or not steering["selection"].isin(STEERED).any():
        return "no steering evaluation found (results/intervention/*.csv)"
    swept = steering[steering["selection"].isin(STEERED)][["model", "task", "granularity", "method"]]
    frame = _prepare(steering.merge(swept.drop_duplicates()), ("none",) + STEERED)
    keys = _panels(frame, lambda g: g["selection"].isin(STEERED).any())
    ks = {key: _at_k(frame[(frame["row"] == key[0]) & (frame["granularity"] == key[1])], config)
          for key in keys}
    fig, axes = facets([(r, f"{c}, k = {ks[(r, c)][1]}") for r, c in keys])
    colors = palette(frame["method"].unique())
    for (r, c), ax in zip(keys, axes.values()):
        group, k = ks[(r, c)]
        for (method, sel), sub in group[group["selection"].isin(STEERED)].groupby(["method", "selection"]):
            if method.startswith("random") and sel != "signed":
                continue  # every selection of a random score is a random set: one line suffices
            base = group[(group["method"] == method) & (group["selection"] == "none")].assign(gamma=1.0)
            sub = pd.concat([sub, base])
            band(ax, sub["gamma"], sub["accuracy"], sub["accuracy_lo"], sub["accuracy_hi"],
                 f"{method} ({sel})", colors[method], SELECTION_STYLE[sel], shade=sel == "signed")
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel("gamma (× top-k activations)")
        ax.set_ylabel("accuracy (fraction correct)")
    method_style_legend(fig, colors, SELECTION_STYLE)
    n_leg = -(-(len(colors) + 3) // 6)
    return save(fig, path, "Accuracy after scaling the top-k units by gamma (1 = unsteered; "
                "95% CI bands on signed-k)", legend_rows=n_leg)


def deletion_table(steering: pd.DataFrame) -> pd.DataFrame:
    """Accuracy vs k with the signed top-k ablated (gamma 0), per model/task/granularity/method:
    the "deletion" rows (steering.deletion_ks) where present, else the gamma grid's signed
    gamma-0 rows; k = 0 is the unsteered baseline."""
    keys = ["model", "task", "granularity", "method"]
    zero = np.isclose(steering["gamma"].astype(float), 0)
    deletion = steering[(steering["selection"] == "deletion") & zero]
    grid = steering[(steering["selection"] == "signed") & zero]
    grid = grid.merge(deletion[keys].drop_duplicates(), how="left", on=keys, indicator=True)
    grid = grid[grid["_merge"] == "left_only"].drop(columns="_merge")  # a curve exists: use it
    curves = pd.concat([deletion, grid], ignore_index=True)
    if curves.empty:
        return curves
    base = steering[steering["selection"] == "none"].merge(curves[keys].drop_duplicates(), on=keys)
    base = base.assign(k=0)
    have_zero = curves[curves["k"].astype(float) == 0][keys].drop_duplicates()
    base = base.merge(have_zero, how="left", on=keys, indicator=True)
    base = base[base["_merge"] == "left_only"].drop(columns="_merge")
    out = pd.concat([curves, base], ignore_index=True).assign(selection="deletion", gamma=0.0)
    return out.drop_duplicates(keys + ["k"]).sort_values(keys + ["k"])


def _random_band(sub: pd.DataFrame) -> pd.DataFrame:
    """Random draws at each k: the mean, and as a band the range of the draws' accuracies
    (with one draw, its 95% CI)."""
    agg = sub.groupby("k").agg(accuracy=("accuracy", "mean"), lo=("accuracy", "min"),
                               hi=("accuracy", "max"), ci_lo=("accuracy_lo", "min"),
                               ci_hi=("accuracy_hi", "max"), n=("method", "nunique")).reset_index()
    one = agg["n"] < 2
    agg.loc[one, "lo"], agg.loc[one, "hi"] = agg.loc[one, "ci_lo"], agg.loc[one, "ci_hi"]
    return agg


def random_label(n_draws: int) -> str:
    """The legend entry of a panel's random line: how many draws it pools, and its band."""
    if n_draws == 1:
        return "random set (1 draw; band: 95% CI)"
    return f"random sets (mean of {n_draws} draws; band: their range)"


def deletion_curves(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """2. Accuracy vs number of units ablated (gamma 0, signed top-k), per method; the random
    draws as one line (their mean) with a band (their range). The draw count of the legend is
    each panel's own (models may have different numbers of random draws)."""
    curves = deletion_table(steering)
    if curves.empty or not (curves["k"].astype(float) > 0).any():
        return "no ablation (gamma = 0) of a signed top-k selection was evaluated"
    curves = curves.assign(row=facet_label(curves, ["model", "task"]), k=curves["k"].astype(int))
    keys = _panels(curves, lambda g: g["k"].nunique() > 1)
    fig, axes = facets(keys)
    rand_mask = curves.apply(lambda r: is_random(r["method"], str(r.get("kind", ""))), axis=1)
    colors = palette([m for m in curves["method"].unique() if not is_random(m)] + ["random"])
    for (r, c), ax in axes.items():
        group = curves[(curves["row"] == r) & (curves["granularity"] == c)]
        rand = group[rand_mask.loc[group.index]]
        if len(rand):
            agg = _random_band(rand)
            ax.plot(agg["k"], agg["accuracy"], ls="--", marker="o", ms=4, color=colors["random"],
                    label=random_label(rand["method"].nunique()), lw=1.6)
            ax.fill_between(agg["k"], agg["lo"], agg["hi"], color=colors["random"], alpha=0.2, lw=0)
        for method, sub in group[~rand_mask.loc[group.index]].groupby("method"):
            sub = sub.sort_values("k")
            err = np.abs(np.vstack([sub["accuracy"] - sub["accuracy_lo"], sub["accuracy_hi"] - sub["accuracy"]]))
            ax.errorbar(sub["k"], sub["accuracy"], yerr=err, color=colors[method], marker="o", ms=4,
                        lw=1.6, capsize=2, elinewidth=0.8, label=method)
        ks = sorted(group["k"].unique())
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k: top-k units ablated (log scale)")
        ax.set_ylabel("accuracy (fraction correct)")
    legend_below(fig, list(axes.values()), ncol=3)
    return save(fig, path, "Deletion curves: accuracy as the signed top-k units are ablated "
                "(gamma = 0; error bars: 95% CI)", legend_rows=2)


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
    both["g"] = both["gamma"].astype(float)
    word = lambda g: "ablate" if g == 0 else "enhance" if g > 1 else "suppress"  # noqa: E731
    panels = [(r, g) for r in sorted(both["row"].unique()) for g in sorted(both["g"].unique())
              if ((both["row"] == r) & (both["g"] == g)).any()]
    fig, axes = facets([(r, f"gamma = {g:g} ({word(g)})") for r, g in panels], ncols=2,
                       panel=(4.8, 3.0))
    for (r, g), ax in zip(panels, axes.values()):
        sub = both[(both["row"] == r) & (both["g"] == g)].sort_values(["granularity", "method", "k"])
        x = np.arange(len(sub))
        for off, suffix, label, color in ((-0.2, "", "transferred from the source", "tab:purple"),
                                         (0.2, "_own", "target's own selection", "tab:green")):
            y = sub[f"d_accuracy{suffix}"].to_numpy(float)
            err = np.abs(np.vstack([y - sub[f"d_accuracy_lo{suffix}"], sub[f"d_accuracy_hi{suffix}"] - y]))
            ax.bar(x + off, y, 0.4, yerr=err, color=color, label=label, capsize=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [f"{m}\n{gr}, k={k}" for gr, m, k in zip(sub["granularity"], sub["method"], sub["k"])],
                      fontsize=8)
        ax.set_ylabel("accuracy change vs unsteered")
    legend_below(fig, list(axes.values()))
    return save(fig, path, "Cross-model transfer of selected units (paired difference, 95% CI)")


def length_steering(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """6. Length and accuracy vs gamma for the length-reward IPG method(s)."""
    frame = steering[(steering["kind"] == "ipg") & (steering["reward"] == "length")]
    if frame.empty or not (frame["selection"] == "signed").any():
        return "no IPG method with the length reward was steered"
    frame = frame.assign(row=facet_label(frame, ["model", "task"]))
    metrics = [("length", "reasoning length (tokens)"), ("accuracy", "accuracy (fraction correct)")]
    panels = [(r, m) for r in sorted(frame["row"].unique()) for m in metrics]
    fig, axes = facets([(r, label.split(" (")[0]) for r, (_, label) in panels], ncols=2,
                       sharey=False, panel=(4.2, 3.0), min_width=8.4)
    colors = palette(frame["granularity"].unique())
    for (r, (metric, label)), ax in zip(panels, axes.values()):
        for (gran, method), group in frame[frame["row"] == r].groupby(["granularity", "method"]):
            group, k = _at_k(group, config)
            sub = group[group["selection"].isin(["signed", "none"])]
            sub = sub.assign(gamma=np.where(sub["selection"] == "none", 1.0, sub["gamma"]))
            band(ax, sub["gamma"], sub[metric], sub[f"{metric}_lo"], sub[f"{metric}_hi"],
                 f"{gran} ({method}, top-{k})", colors[gran])
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel("gamma (1 = unsteered)")
        ax.set_ylabel(label)
    legend_below(fig, list(axes.values()), ncol=2)
    return save(fig, path, "Length steering: length-reward units scaled by gamma (95% CI bands)",
                legend_rows=2)


def sharpening_control(steering: pd.DataFrame, path: Path, config=None) -> Path | str:
    """8. Accuracy vs next-token entropy: steered conditions vs the temperature control curve."""
    ctrl_groups = steering.loc[steering["selection"] == "temperature", ["model", "task", "granularity"]]
    if ctrl_groups.empty:
        return "no temperature control was evaluated (steering.control_temperatures)"
    frame = _prepare(steering.merge(ctrl_groups.drop_duplicates(), on=["model", "task", "granularity"]),
                     ("none", "temperature", "signed"))
    keys = _panels(frame, lambda g: g["selection"].isin(["temperature", "none"]).any())
    fig, axes = facets(keys)
    colors = palette(frame["method"].unique())
    for (r, c), ax in axes.items():
        group = frame[(frame["row"] == r) & (frame["granularity"] == c)]
        curve = group[group["selection"].isin(["temperature", "none"])].drop_duplicates(
            ["selection", "temperature"]).sort_values("entropy")
        ax.errorbar(curve["entropy"], curve["accuracy"],
                    yerr=np.abs([curve["accuracy"] - curve["accuracy_lo"], curve["accuracy_hi"] - curve["accuracy"]]),
                    color="k", marker="s", ms=4, lw=1.4, capsize=2, label="temperature control (T labels)")
        for i, (_, p) in enumerate(curve.iterrows()):
            ax.annotate(f"T={p['temperature']:g}", (p["entropy"], p["accuracy"]), fontsize=7,
                        xytext=(3, 4 if i % 2 else -9), textcoords="offset points")
        steered = group[group["selection"] == "signed"]
        for (method, up), sub in steered.groupby(["method", steered["gamma"].astype(float) > 1]):
            ax.scatter(sub["entropy"], sub["accuracy"], color=colors[method], marker="^" if up else "v",
                       s=28, label=f"{method}, {'enhanced' if up else 'suppressed'}", zorder=3)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("mean next-token entropy (nats, log scale)")
        ax.set_ylabel("accuracy (fraction correct)")
    legend_below(fig, list(axes.values()), ncol=3)
    n_leg = -(-len({lab for ax in axes.values() for lab in ax.get_legend_handles_labels()[1]}) // 3)
    return save(fig, path, "Sharpening control: steered accuracy vs the unsteered model at lower "
                "temperature", legend_rows=n_leg)
