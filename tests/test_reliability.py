"""ipg.study.reliability against constructed per-prompt scores with known answers."""
import numpy as np
import pytest

from ipg.errors import IPGError
from ipg.study.reliability import (
    n_for_correlation, reliability_curve, smallest_n, spearman_brown, split_half, top_k,
    whole_split_half,
)
from ipg.study.statistics import expected_random_jaccard


def test_identical_prompts_agree_perfectly():
    # every prompt carries the same scores: any two disjoint halves have the same means
    scores = np.random.default_rng(0).normal(size=200)
    pp = np.tile(scores, (20, 1))
    res = split_half(pp, n=10, k=16, repeats=5)
    assert np.allclose(res["spearman"], 1.0) and np.allclose(res["jaccard"], 1.0)


def test_independent_noise_is_near_chance():
    pp = np.random.default_rng(1).normal(size=(64, 400))
    curve = reliability_curve(pp, ns=[8, 32], k=40, repeats=40)
    chance = expected_random_jaccard(400, 40, 40)
    assert np.allclose(curve["chance_jaccard"], chance)
    # Spearman of two independent 400-vectors has sd 1/sqrt(399) ~ 0.05: the mean of 40 repeats
    # lies well within 0.05 of 0; Jaccard within a few hundredths of chance (~0.053)
    assert np.all(np.abs(curve["spearman"]) < 0.05)
    assert np.all(np.abs(curve["jaccard"] - chance) < 0.03)


def test_planted_signal_reliability_rises_with_n_and_matches_theory():
    rng = np.random.default_rng(2)
    n_units, n_prompts, noise = 500, 256, 4.0
    true = rng.normal(size=n_units)
    pp = true + noise * rng.normal(size=(n_prompts, n_units))
    curve = reliability_curve(pp, ns=[4, 16, 64, 128], k=25, repeats=30)
    assert np.all(np.diff(curve["spearman"]) > 0) and np.all(np.diff(curve["jaccard"]) > 0)
    # classical test theory: corr of two n-means = 1 / (1 + noise^2 / n) (Pearson; Spearman of
    # bivariate normal = 6/pi asin(r/2), within 0.02 of r here)
    for n, rho in zip(curve["n"], curve["spearman"]):
        r = 1.0 / (1.0 + noise ** 2 / n)
        expected = 6 / np.pi * np.arcsin(r / 2)
        assert abs(rho - expected) < 0.04, (n, rho, expected)
    assert curve["jaccard"].iloc[0] < 0.3 < curve["jaccard"].iloc[-1]
    assert smallest_n(curve, "jaccard", 0.3) in (16, 64, 128)
    assert smallest_n(curve, "jaccard", 1.01) is None


def test_spearman_brown_projection():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.5, 1) == pytest.approx(0.5)
    # projecting to n_for_correlation's n gives the target back
    n = n_for_correlation(0.2, 16, 0.8)
    assert spearman_brown(0.2, n / 16) == pytest.approx(0.8)
    rng = np.random.default_rng(3)
    true = rng.normal(size=400)
    pp = true + 3.0 * rng.normal(size=(64, 400))
    whole = whole_split_half(pp, k=20, repeats=20)
    assert whole["half"] == 32 and whole["n_prompts"] == 64
    r_full = 1.0 / (1.0 + 9.0 / 64)  # the theoretical retest corr of two full-size means
    assert abs(whole["spearman_full_sb"] - r_full) < 0.05


def test_top_k_is_signed_and_stable():
    assert list(top_k(np.array([1.0, 3.0, -5.0, 3.0]), 2)) == [1, 3]


@pytest.mark.parametrize("bad", [dict(n=11), dict(n=0), dict(k=0), dict(k=51), dict(repeats=0)])
def test_bad_arguments_are_one_line_errors(bad):
    pp = np.zeros((20, 50))
    args = {"n": 5, "k": 5, "repeats": 2, **bad}
    with pytest.raises(IPGError):
        split_half(pp, **args)


def test_nan_scores_are_rejected():
    pp = np.ones((4, 3))
    pp[1, 1] = np.nan
    with pytest.raises(IPGError, match="NaN"):
        split_half(pp, 1, 1)


def test_cross_split_separates_shared_from_task_specific_signal():
    from ipg.study.reliability import retest_vs_cross

    rng = np.random.default_rng(4)
    shared, own_a, own_b = (rng.normal(size=300) for _ in range(3))
    pp_a = shared + own_a + 0.5 * rng.normal(size=(40, 300))
    pp_b = shared + own_b + 0.5 * rng.normal(size=(40, 300))
    same = retest_vs_cross(pp_a, pp_a + 0.0, k=30, repeats=20)
    diff = retest_vs_cross(pp_a, pp_b, k=30, repeats=20)
    # the same signal on both sides: cross agreement equals retest agreement
    assert abs(same["cross_jaccard_half"] - same["retest_jaccard_half"]) < 0.08
    # half the signal task-specific: Pearson of the true scores is 1/2, so cross << retest
    assert diff["cross_spearman_half"] < diff["retest_spearman_half"] - 0.2
    assert diff["cross_jaccard_half"] < diff["retest_jaccard_half"]


def test_curve_files_report_table_and_figure(tmp_path):
    """write_curve on attribution files -> the report's loader, table, figure and retest table."""
    from ipg.attribution.table import make_attribution, write_attribution
    from ipg.study.reliability import budget_choice, write_curve
    from ipg.report import figures_reliability as frel
    from ipg.report.collect import load_attributions, load_reliability, load_retest
    from ipg.report.plotting import setup

    rng = np.random.default_rng(5)
    n_units, units = 120, [f"L0.mlp.n{i}" for i in range(120)]
    true = rng.normal(size=n_units)
    tables = {}
    for g, noise in ((2, 6.0), (4, 3.0)):  # more samples per prompt: less noise per prompt
        att = make_attribution(units, [0] * n_units, range(n_units),
                               true + noise * rng.normal(size=(32, n_units)),
                               [f"p{i}" for i in range(32)], "neurons", "ipg")
        tables[g] = tmp_path / f"G{g}.parquet"
        write_attribution(att, tables[g], tmp_path / f"G{g}.json")
    out = tmp_path / "results" / "reliability" / "organism" / "arith"
    curve = write_curve({g: str(p) for g, p in tables.items()}, [2, 8, 16, 64], 12, 10, 0, 0.5,
                        str(out / "neurons.csv"), str(out / "neurons.json"))
    assert sorted(curve["n"].unique()) == [2, 8, 16]  # 64 > 32 / 2 is dropped
    at16 = curve[curve["n"] == 16].set_index("G")["spearman"]
    assert at16[4] > at16[2]  # less per-prompt noise, more reliable
    choice = budget_choice(curve, 0.0)["choice"]
    assert choice == {**choice, "n": 2, "G": 2}  # the cheapest cell reaches a zero target
    assert budget_choice(curve, 1.01)["choice"] is None
    frame = load_reliability(tmp_path / "results")
    assert set(frame["granularity"]) == {"neurons"} and len(frame) == len(curve)
    assert len(frel.reliability_table(frame)) == len(curve)
    setup()
    assert frel.reliability_curves(frame, tmp_path / "fig.png").exists()
    assert isinstance(frel.reliability_curves(frame.iloc[:0], tmp_path / "none.png"), str)
    # the retest table of study attributions
    att_dir = tmp_path / "results" / "attribution" / "organism" / "arith" / "neurons"
    att_dir.mkdir(parents=True)
    for ext in ("parquet", "json"):
        (att_dir / f"ipg.{ext}").write_bytes((tmp_path / f"G4.{ext}").read_bytes())
    retest = load_retest(load_attributions(tmp_path / "results"), lambda m, g: 500)
    assert len(retest) == 1 and retest["k"].iloc[0] == n_units and retest["half"].iloc[0] == 16


def test_reliability_figure_when_spearman_is_undefined_everywhere(tmp_path) -> None:
    """Constant scores in every split leave Spearman NaN at every n and G (a tiny study): the
    figure still draws (the log axis is kept for the panel that has data) and says why the other
    panel is empty, instead of failing the report."""
    import pandas as pd

    from ipg.report import figures_reliability as frel
    from ipg.report.plotting import setup

    setup()
    frame = pd.DataFrame([{"model": "m", "task": "t", "granularity": "neurons", "G": g, "n": n,
                           "k": 2, "spearman": float("nan"), "spearman_lo": float("nan"),
                           "spearman_hi": float("nan"), "jaccard": 1.0, "jaccard_lo": 1.0,
                           "jaccard_hi": 1.0, "chance_jaccard": 0.001}
                          for g in (2, 4) for n in (2, 4)])
    out = frel.reliability_curves(frame, tmp_path / "fig.png")
    assert out.exists() and out.stat().st_size > 0
