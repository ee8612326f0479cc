"""Figures and tables of ipg.report on SYNTHETIC frames: panels only where data exist, deletion
curves from their own k grid, per-granularity ks, the sensitivity table, study wall time."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from ipg.report.collect import load_walltimes, study_benchmarks
from ipg.report.figures_steering import deletion_curves, deletion_table
from ipg.report.findings import configured_ks, reference_k
from ipg.report.plotting import facets
from ipg.report.render import study_wall_time

from .conftest import DELETION_KS, EFFECT, summary_rows


def test_facets_draws_one_panel_per_key_and_no_empty_ones():
    import matplotlib.pyplot as plt

    fig, axes = facets([("m1", "neurons"), ("m1", "heads"), ("m2", "neurons")], ncols=2)
    assert list(axes) == [("m1", "neurons"), ("m1", "heads"), ("m2", "neurons")]
    assert len(fig.axes) == 3 and axes[("m2", "neurons")].get_title() == "m2\nneurons"
    plt.close(fig)


def test_deletion_table_reads_the_deletion_rows_and_their_k_grid():
    frame = pd.concat([summary_rows("m", "t", "neurons", meth) for meth in ("ipg", "act")])
    table = deletion_table(frame)
    ipg = table[table["method"] == "ipg"].sort_values("k")
    assert list(ipg["k"]) == list(DELETION_KS)  # the curve's own grid, not the gamma grid's ks
    assert np.allclose(ipg["accuracy"], 0.5 - EFFECT["ipg"] * np.array(DELETION_KS) / 32)


def test_deletion_table_falls_back_to_the_grid_and_adds_the_baseline_at_k0():
    frame = summary_rows("m", "t", "neurons", "ipg", ks=(2, 8), deletion_ks=())
    table = deletion_table(frame)
    assert list(table["k"]) == [0, 2, 8]
    assert table.loc[table["k"] == 0, "accuracy"].item() == 0.5  # the unsteered baseline


def test_deletion_curves_skip_cleanly_without_ablations(tmp_path):
    frame = summary_rows("m", "t", "neurons", "ipg", gammas=(2.0,), deletion_ks=())
    assert isinstance(deletion_curves(frame, tmp_path / "d.png"), str)
    assert not (tmp_path / "d.png").exists()


def test_per_granularity_and_per_model_ks():
    config = {"steering": {"ks": {"neurons": [8, 32], "heads": [1, 4]}},
              "study": [{"model": "small", "steering": {"ks": [16]}}]}
    assert configured_ks(config, "m", "heads") == [1, 4]
    assert configured_ks(config, "m", None) == []
    assert configured_ks(config, "small", "heads") == [16]
    rows = summary_rows("m", "t", "heads", "ipg", ks=(1, 4), deletion_ks=())
    assert reference_k(rows, config) == 1
    assert reference_k(rows.assign(granularity="neurons"), config) == 1  # 8 not steered here


def test_walltimes_read_only_the_current_jobs_and_the_study_span(tmp_path):
    bench = tmp_path / "benchmarks"
    for name, s, end in (("attribute/a.tsv", 10.0, 1000.0), ("attribute/b.tsv", 30.0, 1100.0),
                         ("sample_trajectories/stale.tsv", 99.0, 50.0)):
        path = bench / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:01\t100\n")
        os.utime(path, (end, end))
    current = [bench / "attribute/a.tsv", bench / "attribute/b.tsv"]
    assert len(load_walltimes(bench)) == 3
    wt = load_walltimes(bench, files=current)
    assert set(wt["job"]) == {"attribute/a", "attribute/b"}
    total = study_wall_time(wt)
    assert total["sum_s"] == pytest.approx(40.0)
    assert total["span_s"] == pytest.approx(1100.0 - (1000.0 - 10.0))  # first start to last end


def test_study_benchmarks_follow_the_config():
    import yaml

    from ipg.config.study import validate_config

    config = validate_config(yaml.safe_load(open("config/test.yaml")))
    files = study_benchmarks(config, "B")
    assert "B/summarize_trajectories.tsv" in files and len(files) == len(set(files))
    m, t = config["study"][0]["model"], config["study"][0]["tasks"][0]
    assert f"B/build_model/{m}.tsv" in files
    assert any(f.startswith(f"B/attribute/{m}/{t}/") for f in files)


def _figure_texts(monkeypatch, draw) -> dict[str, list[str]]:
    """Run a figure function with `save` replaced: {panel title: its legend labels} plus
    'legend': the figure's legend texts."""
    import matplotlib.pyplot as plt

    from ipg.report import figures_steering

    seen: dict[str, list[str]] = {}

    def fake_save(fig, path, title, legend_rows=1):
        for ax in fig.axes:
            seen[ax.get_title()] = ax.get_legend_handles_labels()[1]
        seen["legend"] = [t.get_text() for leg in fig.legends for t in leg.texts]
        plt.close(fig)
        return path

    monkeypatch.setattr(figures_steering, "save", fake_save)
    draw()
    return seen


def test_deletion_legend_counts_each_models_own_random_draws(monkeypatch, tmp_path):
    # synthA has two random draws, synthB one (as SmolLM2 has fewer draws than the organism)
    frame = pd.concat([summary_rows("synthA", "t", "neurons", m) for m in ("ipg", "random_s0", "random_s1")]
                      + [summary_rows("synthB", "t", "neurons", m) for m in ("ipg", "random_s0")])
    seen = _figure_texts(monkeypatch, lambda: deletion_curves(frame, tmp_path / "d.png"))
    panel = {title.split("\n")[0]: labels for title, labels in seen.items() if title != "legend"}
    assert "random sets (mean of 2 draws; band: their range)" in panel["synthA · t"]
    assert "random set (1 draw; band: 95% CI)" in panel["synthB · t"]
    assert not any("2 draws" in lab for lab in panel["synthB · t"])
    assert {"random sets (mean of 2 draws; band: their range)",
            "random set (1 draw; band: 95% CI)"} <= set(seen["legend"])


def test_pooled_random_draws_are_counted_per_model():
    from ipg.report.plotting import pool_random

    frame = pd.concat([summary_rows("synthA", "t", "neurons", m) for m in ("random_s0", "random_s1")]
                      + [summary_rows("synthB", "t", "neurons", "random_s0")])
    pooled = pool_random(frame.assign(kind="random"), ["accuracy"])
    names = pooled.groupby("model")["method"].unique()
    assert list(names["synthA"]) == ["random (2 draws)"]
    assert list(names["synthB"]) == ["random (1 draw)"]


def test_heatmaps_number_every_cell_even_with_many_layers(monkeypatch, tmp_path):
    """unit_layers on a 28-layer model: one number per (method, layer) cell, in a font that
    fits the cell (ipg.report.plotting.annot_fontsize), and the numbers are the fractions."""
    from ipg.report import figures_units
    from ipg.report.plotting import annot_fontsize

    layers_a = [0, 0, 5, 27]  # 4 top-k units of method a: half in layer 0
    sets = pd.DataFrame([
        {"model": "m", "granularity": "neurons", "task": "t", "method": "a", "k": 4,
         "n_layers": 28, "layers": layers_a},
        {"model": "m", "granularity": "neurons", "task": "t", "method": "b", "k": 4,
         "n_layers": 28, "layers": [1, 2, 3, 4]},
    ])
    seen = {}

    def keep(fig, path, title, legend_rows=1):
        ax = fig.axes[0]
        seen["texts"] = [t.get_text() for t in ax.texts]
        seen["size"] = ax.texts[0].get_fontsize()
        return path

    monkeypatch.setattr(figures_units, "save", keep)
    figures_units.unit_layers(sets, tmp_path / "unit_layers.png")
    assert len(seen["texts"]) == 2 * 28
    assert seen["texts"][0] == "50"  # method a, layer 0: 2 of 4 units
    assert sum(int(t) for t in seen["texts"][:28]) == 100
    assert 4.0 <= seen["size"] == annot_fontsize(28, 7.0, 3) < 9.0
