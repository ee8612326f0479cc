"""One completeness figure of merit: `completeness_residual` is the pooled residual
sum_x |sum_i IPG_ix - delta_x| / sum_x |delta_x| (computed here by hand), the number the
max_residual bound checks, the report's table shows and the completeness figure draws against
that bound; the residual of the mean is kept only as a labelled, ill-conditioned diagnostic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ipg.attribution.completeness import check_bound, completeness
from ipg.errors import IPGError

# two prompts whose Phi deltas nearly cancel: the residual of the mean blows up, the pooled
# residual stays at the size of the per-prompt errors
DELTA = np.array([1.0, -0.98])
SUMS = np.array([1.01, -0.97])  # sum_i IPG_i per prompt: errors of +0.01 on each


def scores() -> np.ndarray:
    rng = np.random.default_rng(0)
    parts = rng.random((2, 5))
    return parts / parts.sum(axis=1, keepdims=True) * SUMS[:, None]  # rows sum to SUMS


def test_figure_of_merit_is_the_pooled_residual_and_well_conditioned():
    res = completeness(scores(), DELTA, [True, True])
    by_hand = (abs(1.01 - 1.0) + abs(-0.97 + 0.98)) / (1.0 + 0.98)
    assert res["completeness_residual"] == pytest.approx(by_hand)
    assert res["completeness_residual_pooled"] == res["completeness_residual"]
    mean_based = abs((1.01 - 0.97) / 2 - (1.0 - 0.98) / 2) / abs((1.0 - 0.98) / 2)
    assert res["completeness_residual_of_mean"] == pytest.approx(mean_based)
    assert res["completeness_residual_of_mean"] > 50 * res["completeness_residual"]  # why retired


def test_prompts_without_an_advantage_do_not_count():
    sums = np.array([1.01, 5.0])
    parts = np.full((2, 2), 0.5) * sums[:, None]
    res = completeness(parts, np.array([1.0, 0.0]), [True, False])
    assert res["completeness_residual"] == pytest.approx(0.01)


@pytest.mark.parametrize("bound", [0.005, 0.0101, 0.02])
def test_the_bound_checks_exactly_the_figure_of_merit(bound):
    res = completeness(scores(), DELTA, [True, True])
    merit = res["completeness_residual"]  # 0.02 / 1.98 ~ 0.0101
    if merit > bound:
        with pytest.raises(IPGError, match="completeness residual"):
            check_bound(res["completeness_residual_pooled"], bound, 16, "gauss_legendre")
    else:
        check_bound(res["completeness_residual_pooled"], bound, 16, "gauss_legendre")
    check_bound(merit, None, 16, "gauss_legendre")  # no bound: never raises


def write_attribution(root, method, metrics):
    path = root / "attribution" / "tiny" / "arith" / "neurons" / f"{method}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return path


def test_table_and_figure_show_the_figure_of_merit_against_the_bound(tmp_path, monkeypatch):
    from ipg.report import figures_units
    from ipg.report.collect import load_attributions

    res = completeness(scores(), DELTA, [True, True])
    write_attribution(tmp_path, "ipg", {**res, "config": {"max_residual": 0.05, "m": 16}})
    # a file of the earlier layout: completeness_residual was the residual of the mean
    old = {k: v for k, v in res.items() if k != "completeness_residual_of_mean"}
    old["completeness_residual"] = res["completeness_residual_of_mean"]
    write_attribution(tmp_path, "ipg_old", {**old, "config": {"max_residual": 0.05}})
    table = load_attributions(tmp_path)
    assert table["completeness_residual"].tolist() == pytest.approx([res["completeness_residual"]] * 2)
    assert table["residual_of_mean_illconditioned"].tolist() == pytest.approx(
        [res["completeness_residual_of_mean"]] * 2)
    assert (table["completeness_residual"] <= table["max_residual"]).all()

    drawn = {}

    def keep(fig, path, title, legend_rows=1):
        ax = fig.axes[0]
        drawn["points"] = sorted(float(y) for c in ax.collections for _, y in c.get_offsets())
        drawn["lines"] = [ln.get_ydata()[0] for ln in ax.get_lines() if len(ln.get_ydata())]
        drawn["ylabel"] = ax.get_ylabel()
        return path

    monkeypatch.setattr(figures_units, "save", keep)
    frame = table.assign(kind="ipg")
    figures_units.completeness(frame, tmp_path / "completeness.png")
    assert drawn["points"] == pytest.approx(sorted(frame["completeness_residual"].astype(float)))
    assert drawn["lines"] == [0.05]  # the bound the runs enforced, not a separate 1% line
    assert "pooled" in drawn["ylabel"]
    assert all(p <= b for p in drawn["points"] for b in drawn["lines"])
