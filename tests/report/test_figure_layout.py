"""Layout of every report figure, checked with matplotlib's own geometry after a draw.

Each figure function of ipg.report renders SYNTHETIC inputs of the real schema
(tests/report/conftest.py, with the study's long model names, and large grids); the figure is
kept as `save` wrote it and measured in display coordinates:

- nothing is clipped: the tight bounding box of everything drawn (titles, labels, tick labels,
  legends, colour bars) lies inside the figure, and no two titles overlap;
- no legend covers data or text: a legend's box contains no drawn point of a line, marker,
  error bar or bar of any panel, and meets no title, axis label, tick label or annotation;
- every heat-map cell carries its value: one text at each cell's centre, whose number is the
  cell's value (or its percentage) at the printed precision, in a font of at least MIN_PT that
  fits inside the cell.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection, QuadMesh  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from ipg.report import (figures_cross_task, figures_reliability, figures_sensitivity,  # noqa: E402
                        figures_steering, figures_units)
from ipg.report.collect import collect  # noqa: E402

MIN_PT = 4.0  # the smallest heat-map annotation font accepted (ipg.report.plotting.annot_fontsize)
TOL_PX = 1.0  # rounding slack of the renderer, in pixels
FIGURE_MODULES = (figures_cross_task, figures_reliability, figures_sensitivity, figures_steering,
                  figures_units)
# the study's real model names are long; panel titles and legends must still fit
LONG_NAMES = {"synthA": "deepseek-r1-distill-qwen-1.5b", "synthB": "smollm2-1.7b-instruct"}
CONFIG = {"seed": 0, "steering": {"ks": [8, 2]}, "findings": {"target_half_width": 0.3}}


# ---------------------------------------------------------------- geometry ----------------
def _renderer(fig: Figure):
    """The renderer of one Agg draw of the figure (plt.close left it a bare canvas); drawn once,
    then reused by every check."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if getattr(fig, "_layout_renderer", None) is None:
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
        fig._layout_renderer = canvas.get_renderer()
    return fig._layout_renderer


def clipped(fig: Figure) -> list[str]:
    """What sticks out of the figure: the tight box of all drawn artists against the figure box,
    and the visible texts (titles, labels, legends) that cross the figure's edge."""
    renderer = _renderer(fig)
    inside = fig.bbox.padded(TOL_PX)
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    problems = []
    if not (inside.x0 <= tight.x0 and tight.x1 <= inside.x1 and inside.y0 <= tight.y0
            and tight.y1 <= inside.y1):
        problems.append(f"drawn content {np.round(tight.extents)} exceeds figure {np.round(fig.bbox.extents)}")
        for text in _texts(fig, renderer):
            box = text.get_window_extent(renderer)
            if not (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
                    and box.y1 <= inside.y1):
                problems.append(f"text {text.get_text()!r} at {np.round(box.extents)}")
    return problems


def _texts(fig: Figure, renderer) -> list:
    """Titles, axis labels, annotations, legend and figure texts that were drawn."""
    out = [t for t in (fig._suptitle, *fig.texts) if t is not None]
    for ax in fig.axes:
        out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    for leg in _legends(fig):
        out += list(leg.texts) + [leg.get_title()]
    unique = {id(t): t for t in out}  # the suptitle is also one of fig.texts
    return [t for t in unique.values() if t.get_visible() and t.get_text().strip()]


def _legends(fig: Figure) -> list:
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def _densify(points: np.ndarray, per_segment: int = 25) -> np.ndarray:
    """Points along a polyline (display coords), so a segment crossing a box is seen."""
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 2:
        return points
    t = np.linspace(0.0, 1.0, per_segment)[:, None, None]
    return (points[:-1] + t * (points[1:] - points[:-1])).reshape(-1, 2)


def data_points(ax) -> np.ndarray:
    """Display coordinates of the data an axes draws (lines, markers, error bars, bar outlines),
    only where they fall inside the axes (outside they are clipped away)."""
    parts = []
    for line in ax.get_lines():
        if isinstance(line, Line2D) and line.get_visible():
            path = line.get_transform().transform_path(line.get_path())
            parts.append(_densify(path.vertices) if line.get_linestyle() not in ("None", "", " ")
                         else path.vertices)
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                parts.append(_densify(coll.get_transform().transform(np.asarray(seg, float))))
        elif isinstance(coll, PathCollection) and len(coll.get_offsets()):
            parts.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float)))
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_visible():
            corners = patch.get_patch_transform().transform([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)])
            parts.append(_densify(patch.get_data_transform().transform(corners)))
    if not parts:
        return np.empty((0, 2))
    pts = np.vstack([p for p in parts if len(p)] or [np.empty((0, 2))])
    box = ax.bbox
    keep = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    return pts[keep]


def legend_overlaps(fig: Figure) -> list[str]:
    """Each legend that covers a drawn data point or another text (title, axis/tick labels,
    annotations) of any panel."""
    renderer = _renderer(fig)
    problems = []
    for leg in _legends(fig):
        box = leg.get_window_extent(renderer).shrunk(0.999, 0.999)  # touching edges do not count
        own = {id(t) for t in leg.texts} | {id(leg.get_title())}
        for i, ax in enumerate(fig.axes):
            pts = data_points(ax)
            inside = pts[(pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0)
                         & (pts[:, 1] < box.y1)] if len(pts) else pts
            if len(inside):
                problems.append(f"legend {[t.get_text() for t in leg.texts][:3]} covers "
                                f"{len(inside)} data points of panel {i} ({ax.get_title()!r})")
            boxes = [(f"ticks/label of the {name} axis", axis.get_tightbbox(renderer))
                     for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)) if axis.get_visible()]
            for name, b in boxes:
                if b is not None and b.width and Bbox.intersection(box, b) is not None \
                        and _overlap_area(box, b) > 1.0:
                    problems.append(f"legend {[t.get_text() for t in leg.texts][:3]} covers the "
                                    f"{name} of panel {i} ({ax.get_title()!r})")
        for text in _texts(fig, renderer):
            if id(text) not in own and _overlap_area(box, text.get_window_extent(renderer)) > 1.0:
                problems.append(f"legend {[t.get_text() for t in leg.texts][:3]} covers text "
                                f"{text.get_text()!r}")
    return problems


def _overlap_area(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def overlapping_titles(fig: Figure) -> list[str]:
    """Pairs of titles (the figure's and its panels') whose boxes overlap."""
    renderer = _renderer(fig)
    titles = [t for t in (fig._suptitle, *(ax.title for ax in fig.axes))
              if t is not None and t.get_visible() and t.get_text().strip()]
    boxes = [t.get_window_extent(renderer) for t in titles]
    return [f"title {titles[i].get_text()!r} runs into {titles[j].get_text()!r}"
            for i in range(len(titles)) for j in range(i + 1, len(titles))
            if _overlap_area(boxes[i], boxes[j]) > 1.0]


def _number(text: str) -> tuple[float, float] | None:
    """The first number of a cell text and half a unit of its last printed digit."""
    match = re.search(r"[-+]?\d+(?:\.(\d+))?", text)
    if not match:
        return None
    return float(match[0]), 0.5 * 10.0 ** -len(match[1] or "")


def heatmap_cells(fig: Figure) -> list[str]:
    """Every cell of every heat map (a QuadMesh) without a text at its centre whose number is
    the cell's value (or its percentage), or whose text is smaller than MIN_PT or overflows the
    cell."""
    renderer = _renderer(fig)
    problems = []
    for ax in (a for a in fig.axes if getattr(a, "_colorbar", None) is None):  # not colour bars
        for mesh in (c for c in ax.collections if isinstance(c, QuadMesh)):
            values = np.ma.asarray(mesh.get_array())
            coords = mesh.get_coordinates()  # (rows + 1, cols + 1, 2) cell corners, data coords
            values = values.reshape(coords.shape[0] - 1, coords.shape[1] - 1)
            texts = {(round(t.get_position()[0], 6), round(t.get_position()[1], 6)): t for t in ax.texts}
            for (r, c), value in np.ndenumerate(values):
                if np.ma.is_masked(value):
                    continue
                lo, hi = coords[r, c], coords[r + 1, c + 1]
                centre = (round((lo[0] + hi[0]) / 2, 6), round((lo[1] + hi[1]) / 2, 6))
                text = texts.get(centre)
                where = f"panel {ax.get_title()!r} cell ({r}, {c}) = {float(value):.4g}"
                if text is None or not text.get_visible() or _number(text.get_text()) is None:
                    problems.append(f"{where}: no number")
                    continue
                shown, half = _number(text.get_text())
                if not any(abs(shown - scale * float(value)) <= half + 1e-9 for scale in (1, 100)):
                    problems.append(f"{where}: shows {text.get_text()!r}")
                if text.get_fontsize() < MIN_PT:
                    problems.append(f"{where}: font {text.get_fontsize():.1f} pt < {MIN_PT}")
                cell = Bbox(ax.transData.transform([lo, hi]))
                cell = Bbox.from_extents(min(cell.x0, cell.x1), min(cell.y0, cell.y1),
                                         max(cell.x0, cell.x1), max(cell.y0, cell.y1))
                box = text.get_window_extent(renderer)
                if box.width > cell.width + TOL_PX or box.height > cell.height + TOL_PX:
                    problems.append(f"{where}: text {text.get_text()!r} ({box.width:.0f} x "
                                    f"{box.height:.0f} px) overflows the cell ({cell.width:.0f} x "
                                    f"{cell.height:.0f} px)")
    return problems


# ---------------------------------------------------------------- rendering ---------------
def _rename(frame, names: dict[str, str]):
    frame = frame.copy()
    for col in ("model", "source", "target"):
        if col in frame.columns:
            frame[col] = frame[col].replace(names)
    return frame


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Figure]:
    """Every report figure of the synthetic study (long model names), plus jaccard_tasks (which
    the cross-task stage supersedes in the report), as drawn by its own function and `save`."""
    from ipg.report import render
    from ipg.report.plotting import setup

    from .conftest import build_synthetic_study

    tmp = tmp_path_factory.mktemp("layout")
    root = build_synthetic_study(tmp)
    study = collect(root / "results", root / "reports", root / "benchmarks")
    study = dataclasses.replace(study, **{f.name: _rename(getattr(study, f.name), LONG_NAMES)
                                          for f in dataclasses.fields(study)
                                          if hasattr(getattr(study, f.name), "columns")})
    figures: dict[str, Figure] = {}
    with pytest.MonkeyPatch.context() as mp:
        for module in FIGURE_MODULES:
            real = module.save

            def keep(fig, path, title, legend_rows=1, _real=real):
                figures[Path(path).stem] = fig
                return _real(fig, path, title, legend_rows)

            mp.setattr(module, "save", keep)
        out = render.make_figures(study, tmp / "figures", CONFIG)
        setup()
        sets = figures_units.top_sets(study.attributions, 8)
        out["jaccard_tasks"] = figures_units.jaccard_tasks(sets, tmp / "figures" / "jaccard_tasks.png")
    skipped = {name: why for name, why in out.items() if isinstance(why, str)}
    assert not skipped, f"the synthetic study should draw every figure: {skipped}"
    assert set(figures) == set(out)
    return figures


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> dict[str, Figure]:
    """The heat maps on large grids of the real schema: a 28-layer model with six methods
    (unit_layers, jaccard_methods, jaccard_tasks) and a model compared across six tasks
    (cross_task_jaccard)."""
    import pandas as pd

    from ipg.attribution.table import make_attribution
    from ipg.study.cross_task import overlap_rows
    from ipg.report.plotting import setup

    setup()
    tmp = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    n_layers, width = 28, {"neurons": 64, "heads": 12}
    methods = ("ipg", "ipg_length", "act", "random_s0", "random_s1", "random_s2")
    rows = []
    for gran, w in width.items():
        for task in ("gsm8k", "math500"):
            for method in methods:
                picked = rng.choice(n_layers * w, size=32, replace=False)
                rows.append({"model": LONG_NAMES["synthA"], "task": task, "granularity": gran,
                             "method": method, "k": 32, "units": {f"u{i}" for i in picked},
                             "layers": [int(i // w) for i in picked], "n_units": n_layers * w,
                             "n_layers": n_layers})
    sets = pd.DataFrame(rows)
    tasks = ("gsm8k", "math500", "aime24", "gpqa-diamond", "mmlu-pro", "arc-challenge")
    units = [f"L{i // 8}.mlp.n{i % 8}" for i in range(64)]
    cross = []
    for method in ("ipg", "act"):
        tables = {t: make_attribution(units, [i // 8 for i in range(64)], [i % 8 for i in range(64)],
                                      rng.normal(size=(6, 64)), [f"p{i}" for i in range(6)],
                                      "neurons", method).scores for t in tasks}  # no retest: fast
        cross.append(overlap_rows(tables, 8, "neurons", method))
    cross = pd.concat(cross, ignore_index=True).assign(model=LONG_NAMES["synthB"])
    figures: dict[str, Figure] = {}
    with pytest.MonkeyPatch.context() as mp:
        for module in (figures_units, figures_cross_task):
            real = module.save

            def keep(fig, path, title, legend_rows=1, _real=real):
                figures[Path(path).stem] = fig
                return _real(fig, path, title, legend_rows)

            mp.setattr(module, "save", keep)
        for name in ("unit_layers", "jaccard_methods", "jaccard_tasks"):
            assert not isinstance(getattr(figures_units, name)(sets, tmp / f"{name}.png"), str)
        assert not isinstance(figures_cross_task.cross_task_heatmap(cross, tmp / "cross_task_jaccard.png"), str)
    return figures


FIGURES = sorted({"steering_gamma", "deletion_curves", "unit_layers", "jaccard_tasks",
                  "jaccard_methods", "transfer", "length_steering", "completeness", "bench_targets",
                  "sensitivity", "reliability", "cross_task_jaccard", "sharpening_control"})
HEATMAPS = ("unit_layers", "jaccard_tasks", "jaccard_methods", "cross_task_jaccard")


def test_the_list_covers_every_report_figure():
    from ipg.report.render import CAPTIONS

    assert set(FIGURES) == set(CAPTIONS)


@pytest.mark.slow  # shares the synthetic study's 13 figures: ~40 s of CPU to build and draw
@pytest.mark.parametrize("name", FIGURES)
def test_no_text_is_clipped(rendered, name):
    assert not clipped(rendered[name]), "\n".join(clipped(rendered[name]))


@pytest.mark.slow  # shares the synthetic study's 13 figures: ~40 s of CPU to build and draw
@pytest.mark.parametrize("name", FIGURES)
def test_titles_do_not_run_into_each_other(rendered, name):
    problems = overlapping_titles(rendered[name])
    assert not problems, "\n".join(problems)


@pytest.mark.slow  # shares the synthetic study's 13 figures: ~40 s of CPU to build and draw
@pytest.mark.parametrize("name", FIGURES)
def test_legends_cover_no_data_and_no_text(rendered, name):
    problems = legend_overlaps(rendered[name])
    assert not problems, "\n".join(problems)


@pytest.mark.slow  # shares the synthetic study's 13 figures: ~40 s of CPU to build and draw
@pytest.mark.parametrize("name", HEATMAPS)
def test_every_heatmap_cell_shows_its_value(rendered, name):
    fig = rendered[name]
    assert any(isinstance(c, QuadMesh) for ax in fig.axes for c in ax.collections), "no heat map drawn"
    problems = heatmap_cells(fig)
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} problems)"


@pytest.mark.parametrize("name", HEATMAPS)
def test_large_heatmaps_number_every_cell_legibly_and_clip_nothing(large, name):
    fig = large[name]
    problems = heatmap_cells(fig) + clipped(fig)
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} problems)"


def test_the_checks_catch_defective_figures():
    """Each check reports a figure built with its defect: a legend on a line, a title wider
    than the figure, titles of neighbouring panels that run together, a heat map without
    numbers, with wrong numbers, and with numbers too big for their cells."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, (left, right) = plt.subplots(1, 2, figsize=(4, 2.5))
    x = np.linspace(0, 1, 20)
    left.plot(x, x, label="a line under its own legend")
    left.legend(loc="center")
    left.set_title("a panel title long enough to run into the next one")
    right.set_title("the next panel's title, also long")
    fig.suptitle("a figure title far wider than this small figure, so its ends are cut off")
    assert any("covers" in p and "data points" in p for p in legend_overlaps(fig))
    assert any("exceeds figure" in p for p in clipped(fig))
    assert overlapping_titles(fig)
    plt.close(fig)
    values = np.array([[0.1, 0.25], [0.5, 0.75]])
    for annot, kws, word in ((False, {}, "no number"), (values[::-1], {}, "shows"),
                             (True, {"fontsize": 40}, "overflows")):
        fig, ax = plt.subplots(figsize=(3, 2.5))
        sns.heatmap(values, ax=ax, annot=annot, fmt=".2f", annot_kws=kws)
        problems = heatmap_cells(fig)
        assert problems and all(word in p for p in problems), problems
        plt.close(fig)
