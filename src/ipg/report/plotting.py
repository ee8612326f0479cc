"""Shared plotting helpers: the figure style, facet grids, CI bands, pooled random draws, saving.

matplotlib runs headless (Agg); every figure is a PNG at DPI, sized for a page width.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ipg.report.findings import is_random  # noqa: E402

DPI = 150
PANEL_W, PANEL_H = 3.6, 2.8  # inches per facet: legible at page width up to 4 columns
SELECTION_STYLE = {"signed": "-", "bottom": "--", "magnitude": ":"}
STEERED = ("signed", "bottom", "magnitude")


def setup() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15)


def facet_label(frame: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    return frame[list(cols)].astype(str).agg(" · ".join, axis=1)


def grid(rows: list[str], cols: list[str], sharey: bool | str = True, panel=(PANEL_W, PANEL_H)):
    """A rows x cols grid of axes, returned as {(row, col): ax} with the row/col names as titles."""
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharey=sharey,
                             figsize=(panel[0] * len(cols) + 1.8, panel[1] * len(rows) + 0.9))
    out = {}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            ax.set_title(f"{r}\n{c}" if r else c, fontsize=10)
            out[(r, c)] = ax
    return fig, out


def facets(keys: Sequence[tuple], ncols: int = 4, sharey: bool = True, panel=(PANEL_W, PANEL_H),
           min_width: float = 7.0):
    """One panel per key that has data (a facet wrap: no empty panels for combinations the
    study did not run), `ncols` per row; returned as {key: ax}, titled by the key's parts
    (first part on its own line)."""
    keys = list(dict.fromkeys(keys))
    ncols = max(1, min(ncols, len(keys)))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharey=sharey,
                             figsize=(max(min_width, panel[0] * ncols + 0.8), panel[1] * nrows + 1.0))
    flat = [ax for row in axes for ax in row]
    out = {}
    for key, ax in zip(keys, flat):
        parts = [str(p) for p in (key if isinstance(key, tuple) else (key,)) if str(p)]
        ax.set_title(parts[0] + ("\n" + " · ".join(parts[1:]) if len(parts) > 1 else ""), fontsize=10)
        if sharey:
            ax.yaxis.set_tick_params(labelleft=True)
        out[key] = ax
    for ax in flat[len(keys):]:
        fig.delaxes(ax)
    return fig, out


def band(ax, x, y, lo, hi, label, color, linestyle="-", marker="o", shade=True) -> None:
    """A line with markers and a shaded CI band."""
    order = np.argsort(np.asarray(x, dtype=float))
    x, y, lo, hi = (np.asarray(v, dtype=float)[order] for v in (x, y, lo, hi))
    ax.plot(x, y, linestyle=linestyle, marker=marker, color=color, label=label, lw=1.6, ms=4)
    if shade and np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)


def pool_random(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Replace the random draws (method random*) by one method 'random (n draws)': the mean of
    each metric, its CI the envelope of the draws' CIs (min of lo, max of hi). n is counted per
    model / task / granularity (/ source / target): models may have different numbers of draws."""
    if frame.empty:
        return frame
    mask = frame.apply(lambda r: is_random(r["method"], str(r.get("kind", ""))), axis=1)
    rand = frame[mask]
    if rand.empty:
        return frame
    keys = [c for c in ("model", "task", "granularity", "source", "target", "selection", "k",
                        "gamma", "temperature", "condition") if c in frame.columns]
    agg = {}
    for m in metrics:
        agg[m] = (m, "mean")
        if f"{m}_lo" in frame.columns:
            agg[f"{m}_lo"] = (f"{m}_lo", "min")
            agg[f"{m}_hi"] = (f"{m}_hi", "max")
    pooled = rand.groupby(keys, dropna=False).agg(**agg).reset_index()
    panel = [c for c in ("model", "task", "granularity", "source", "target") if c in keys]
    if panel:
        n = rand.groupby(panel, dropna=False)["method"].nunique().rename("_n").reset_index()
        n = pooled[panel].merge(n, on=panel, how="left")["_n"].to_numpy()
    else:
        n = [rand["method"].nunique()] * len(pooled)
    pooled["method"] = [f"random ({int(c)} draw{'s' if c > 1 else ''})" for c in n]
    pooled["kind"] = "random"
    return pd.concat([frame[~mask], pooled], ignore_index=True)


def palette(methods: Sequence[str]) -> dict[str, tuple]:
    """Fixed colours: IPG variants blue-ish first, Act orange, random grey."""
    methods = sorted(set(methods), key=lambda m: (m.startswith("random"), not m.startswith("ipg"), m))
    colors = sns.color_palette("tab10", max(3, len(methods)))
    out, i = {}, 0
    for m in methods:
        if m.startswith("random"):
            out[m] = (0.45, 0.45, 0.45)
        else:
            out[m] = colors[i % len(colors)]
            i += 1
    return out


def legend_below(fig, axes, ncol: int = 4) -> None:
    """One legend for the figure (deduplicated), under the panels."""
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=ncol,
                   frameon=False, bbox_to_anchor=(0.5, 0.0), fontsize=9)


def method_style_legend(fig, colors: dict, styles: dict) -> None:
    """Two compact legend rows under the panels: colour = method, line style = selection."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2.5, label=m) for m, c in colors.items()]
    handles += [Line2D([], [], color="k", ls=ls, lw=1.6, label=f"{sel}-k") for sel, ls in styles.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False,
               bbox_to_anchor=(0.5, 0.0), fontsize=9)


PAD_IN = 0.08  # inches of white space kept around the title and under the figure legend


def _renderer(fig):
    """The Agg renderer of a figure (text and legend sizes are measured with it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def wrap_to_width(text, width_px: float, renderer) -> None:
    """Re-wrap each line of a Text at word boundaries until the text is at most `width_px`
    wide (display pixels); a text that fits is left as it is."""
    if text.get_window_extent(renderer).width <= width_px:
        return
    lines = [" ".join(line.split()) for line in text.get_text().split("\n")]
    chars = max(len(line) for line in lines)
    while chars > 10 and text.get_window_extent(renderer).width > width_px:
        chars = int(chars * 0.9)
        text.set_text("\n".join(textwrap.fill(line, chars, break_long_words=False) for line in lines))


def wrap_titles(fig, renderer) -> None:
    """Wrap every panel title to its panel's width, so neighbouring titles do not run into
    each other."""
    for ax in fig.axes:
        if ax.get_title():
            wrap_to_width(ax.title, ax.bbox.width, renderer)


def fit_legend(legend, width_px: float, renderer) -> None:
    """Fewer legend columns until the legend is at most `width_px` wide."""
    ncols = legend._ncols
    while ncols > 1 and legend.get_window_extent(renderer).width > width_px:
        ncols -= 1
        legend.set_ncols(ncols)


def save(fig, path: Path, title: str, legend_rows: int = 1) -> Path:
    """Title the figure, lay it out and write it (PNG at DPI). The title is wrapped to the figure
    width; the space above the panels (title) and under them (figure legends at the bottom,
    their columns reduced until they fit the width) is measured on the drawn figure, so nothing
    is clipped and no legend covers a panel; panel titles are wrapped to their panel's width.
    `legend_rows` is kept for the callers: the legend height is measured, not guessed."""
    renderer = _renderer(fig)
    width, height = fig.bbox.width, fig.bbox.height
    pad = PAD_IN * fig.dpi
    sup = fig.suptitle(title, fontsize=12, fontweight="bold")
    wrap_to_width(sup, width - 2 * pad, renderer)
    top = sup.get_window_extent(renderer).height + pad
    bottom = 0.0
    for legend in fig.legends:
        fit_legend(legend, width - 2 * pad, renderer)
        bottom = max(bottom, legend.get_window_extent(renderer).height + pad)
    rect = (0, bottom / height, 1, 1 - top / height)
    fig.tight_layout(rect=rect)
    wrap_titles(fig, renderer)  # to the panel widths the layout gave, then lay out again
    fig.tight_layout(rect=rect)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def annot_fontsize(n_cols: int, width_in: float, chars: int) -> float:
    """A font size (pt) that fits `chars` characters in each of `n_cols` heat-map cells across
    a panel `width_in` inches wide (about three quarters of it is cells), between 4 and 9 pt."""
    cell_pt = 72.0 * 0.75 * width_in / max(n_cols, 1)
    return float(max(4.0, min(9.0, cell_pt / (0.62 * max(chars, 1)))))
