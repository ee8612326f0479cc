"""Paired verdicts on per-prompt rows: pairing, random pooling, Holm, exclusion, sharpening,
length controls, and a test of the test (family-wise error and power on simulated data)."""
import numpy as np
import pandas as pd
import pytest

from ipg.report.verdicts import (BETTER, EQUIVALENT, EXCLUDED, EXPLORATORY, INCONCLUSIVE, NO_DATA, WORSE,
                                 build_verdicts, compare, decide, detectable_effect, settings)
from ipg.study.statistics import holm, sign_flip_pvalue

P, S = 300, 2


def _arm(rng, q, u=None, length=50.0, entropy=1.0, truncated=0.0):
    """Per (prompt, seed) 0/1 accuracy from per-prompt probability q [P]; u: shared uniforms."""
    u = rng.random((P, S)) if u is None else u
    return dict(accuracy=(u < q[:, None]).astype(float), length=np.full((P, S), length) + u,
                entropy=np.full((P, S), entropy) + 0.01 * u, truncated=np.full((P, S), truncated))


def _rows(method, kind, reward, selection, k, gamma, arm, temperature=1.0):
    p, s = np.meshgrid(np.arange(P), np.arange(S), indexing="ij")
    return pd.DataFrame(dict(model="m", task="t", granularity="neurons", method=method, kind=kind,
                             reward=reward, selection=selection, k=k, gamma=gamma,
                             temperature=temperature, seed=s.ravel(), prompt_id=p.ravel(),
                             **{m: v.ravel() for m, v in arm.items()}))


def _study(rng, ipg_ablation=0.0, act_ablation=0.0, random_draws=5):
    q = rng.uniform(0.3, 0.7, P)
    u = rng.random((P, S))
    base = _arm(rng, q, u)
    parts = []
    for m, kind in [("ipg", "ipg"), ("act", "act")] + [(f"random_s{i}", "random")
                                                       for i in range(random_draws)]:
        parts.append(_rows(m, kind, "accuracy", "none", 0, 1.0, base))
        drop = {"ipg": ipg_ablation, "act": act_ablation}.get(m, 0.0)
        parts.append(_rows(m, kind, "accuracy", "signed", 4, 0.0, _arm(rng, np.clip(q - drop, 0, 1))))
        parts.append(_rows(m, kind, "accuracy", "signed", 4, 2.0, _arm(rng, q)))
    return pd.concat(parts, ignore_index=True)


def test_holm_matches_its_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1, running max
    want = np.array([0.03, 0.06, 0.06, np.nan, 0.02])
    np.testing.assert_allclose(holm(p), want)


def test_sign_flip_is_exact_on_a_tiny_case():
    d = np.array([1.0, 1.0, 1.0, 1.0])  # all 16 sign patterns: |mean| = 1 in 2 of them
    assert sign_flip_pvalue(d, n_resamples=20000, seed=1) == pytest.approx(2 / 16, abs=0.01)
    assert sign_flip_pvalue(np.zeros(5)) == 1.0


def test_paired_verdicts_find_a_real_difference_and_pool_random_draws():
    rng = np.random.default_rng(1)
    found = build_verdicts(_study(rng, ipg_ablation=0.3, act_ablation=0.0))
    get = lambda fam, g: found[(found["family"] == fam) & (found["gamma"] == g)].iloc[0]
    act = get("ablation vs act", 0.0)
    assert act["verdict"] == BETTER and act["section"] == "confirmatory"
    assert act["diff"] == pytest.approx(-0.3, abs=0.07)
    assert act["diff_lo"] < act["diff"] < act["diff_hi"] and act["half_width"] > 0
    rnd = get("ablation vs random", 0.0)
    assert rnd["versus"] == "random (5 draws)" and rnd["verdict"] == BETTER
    # enhancement: no effect anywhere -> not better/worse
    assert get("enhancement vs act", 2.0)["verdict"] in (EQUIVALENT, INCONCLUSIVE)
    assert (found[found["family"] == "sign"]["verdict"] == "no data").all()  # not evaluated
    # the paired CI on the random arm is the per-prompt mean of the draws, narrower than Act's
    assert rnd["half_width"] < act["half_width"]


def test_pairing_uses_the_same_prompt_and_seed():
    """A shared uniform per (prompt, seed) makes the paired CI far narrower than unpaired."""
    rng = np.random.default_rng(1)
    q = rng.uniform(0.2, 0.8, P)
    u = rng.random((P, S))
    a, b = _arm(rng, q, u)["accuracy"], _arm(rng, np.clip(q - 0.02, 0, 1), u)["accuracy"]
    s = settings(None)
    paired = compare(a, b, "accuracy", s)
    unpaired = compare(a, _arm(rng, np.clip(q - 0.02, 0, 1))["accuracy"], "accuracy", s)
    assert paired["half_width"] < 0.5 * unpaired["half_width"]
    # direct check of the mean against the definition
    assert paired["diff"] == pytest.approx((a - b).mean())


def test_degenerate_cells_are_excluded_and_constant_cells_get_a_nonzero_interval():
    rng = np.random.default_rng(2)
    rows = _study(rng)
    cell = (rows["selection"] == "signed") & (rows["gamma"] == 0.0)
    rows.loc[cell, "accuracy"] = 0.0  # every arm collapses to 0 correct
    found = build_verdicts(rows)
    abl = found[found["family"].str.startswith("ablation")]
    assert (abl["verdict"] == EXCLUDED).all()
    assert (abl["diff"] == 0).all() and (abl["diff_hi"] > 0).all() and (abl["diff_lo"] < 0).all()
    assert found[found["family"] == "ablation vs act"]["p_holm"].isna().all()  # not tested


def test_decide_rules():
    s = settings({"findings": {"equivalence_margin": 0.05}})
    row = dict(metric="accuracy", diff_lo=0.02, diff_hi=0.08, p_holm=0.01)
    assert decide(row, True, s) == BETTER and decide(row, False, s) == WORSE
    assert decide({**row, "p_holm": 0.2}, True, s) == INCONCLUSIVE
    assert decide({**row, "diff_lo": -0.03, "diff_hi": 0.03, "p_holm": 0.6}, True, s) == EQUIVALENT
    with pytest.raises(Exception, match="findings.families"):
        settings({"findings": {"families": ["nope"]}})


def test_exploratory_rows_have_no_verdict_and_ks_outside_the_config_too():
    rng = np.random.default_rng(3)
    found = build_verdicts(_study(rng, ipg_ablation=0.3),
                           {"findings": {"confirmatory_gammas": [2.0]}}, ks_for=lambda m, g: [4])
    abl = found[found["family"] == "ablation vs act"].iloc[0]
    assert abl["section"] == "exploratory" and abl["verdict"] == EXPLORATORY
    assert np.isnan(abl["p_holm"]) and abl["half_width"] > 0
    found = build_verdicts(_study(rng, ipg_ablation=0.3), ks_for=lambda m, g: [8])
    assert (found["section"] == "exploratory").all()


def _sharpening_study(rng, gain=0.3, steered_entropy=0.75, method="ipg"):
    """The control method's job (ipg): unsteered at T=1 (entropy ~1.0) and a temperature arm at
    T=0.5 (entropy ~0.5); `method`'s enhanced signed top-4 with accuracy q + gain."""
    q = rng.uniform(0.3, 0.6, P)
    parts = [_rows("ipg", "ipg", "accuracy", "none", 0, 1.0, _arm(rng, q, entropy=1.0))]
    lo_t = _arm(rng, q + 0.1, entropy=0.5)
    parts.append(_rows("ipg", "ipg", "accuracy", "temperature", 0, 1.0, lo_t, temperature=0.5))
    steered = _arm(rng, np.clip(q + gain, 0, 1), entropy=steered_entropy)
    if method != "ipg":
        parts.append(_rows(method, "ipg", "accuracy", "none", 0, 1.0, _arm(rng, q, entropy=1.0)))
    parts.append(_rows(method, "ipg", "accuracy", "signed", 4, 2.0, steered))
    return parts, lo_t, steered


def test_sharpening_interpolates_per_prompt_between_bracketing_controls():
    rng = np.random.default_rng(4)
    parts, lo_t, steered = _sharpening_study(rng)
    found = build_verdicts(pd.concat(parts, ignore_index=True))
    row = found[found["family"] == "sharpening"].iloc[0]
    assert "between T=0.5 and unsteered" in row["note"]
    base = parts[0]
    w = (float(np.mean(steered["entropy"])) - float(np.mean(lo_t["entropy"]))) / (
        float(base["entropy"].mean()) - float(np.mean(lo_t["entropy"])))
    control = (1 - w) * lo_t["accuracy"] + w * base["accuracy"].to_numpy().reshape(P, S)
    assert row["diff"] == pytest.approx(float((steered["accuracy"] - control).mean()))
    assert row["other"] == pytest.approx(float(control.mean()))
    assert row["diff_lo"] < row["diff"] < row["diff_hi"] and row["verdict"] == BETTER
    assert row["p_holm"] == row["p"]  # a family of one


def _independent_bootstrap(ya, ha, y0, h0, y1, h1, n, rng):
    """A plain loop: resample prompts, then seeds within each, recompute w and the difference."""
    P_, S_ = ya.shape
    out = []
    for _ in range(n):
        pi = rng.integers(0, P_, P_)
        si = rng.integers(0, S_, (P_, S_))
        m = [x[pi[:, None], si].mean() for x in (ya, ha, y0, h0, y1, h1)]
        w = (m[1] - m[3]) / (m[5] - m[3])
        out.append(m[0] - (1 - w) * m[2] - w * m[4])
    return np.quantile(out, [0.025, 0.975])


def test_sharpening_interval_carries_the_control_arms_and_weight_noise():
    """The interval matches an independently coded bootstrap that re-estimates w, and is wider
    than the naive one that treats the interpolated control as a fixed per-prompt column."""
    from ipg.report.sharpening import Point, find_bracket, matched_difference

    rng = np.random.default_rng(7)
    q = rng.uniform(0.2, 0.7, P)
    noisy = lambda h: h + rng.normal(0, 0.3, (P, S))  # per-prompt entropy noise
    acc = lambda p: (rng.random((P, S)) < np.clip(p, 0, 1)[:, None]).astype(float)
    c0 = Point(0.5, "T=0.5", acc(q + 0.15), noisy(0.5))
    c1 = Point(1.0, "unsteered", acc(q), noisy(1.0))
    ya, ha = acc(q + 0.2), noisy(0.7)
    br = find_bracket([c1, c0], float(ha.mean()))
    assert br.low.label == "T=0.5" and 0 < br.w < 1
    got = matched_difference(ya, ha, br, n_resamples=3000, seed=3)
    want = _independent_bootstrap(ya, ha, c0.accuracy, c0.entropy, c1.accuracy, c1.entropy,
                                  1500, np.random.default_rng(11))
    assert got["diff_lo"] == pytest.approx(want[0], abs=0.012)
    assert got["diff_hi"] == pytest.approx(want[1], abs=0.012)
    naive = compare(ya, (1 - br.w) * c0.accuracy + br.w * c1.accuracy, "accuracy", settings(None))
    assert got["half_width"] > naive["half_width"]


@pytest.mark.slow
def test_sharpening_interval_has_its_coverage_at_no_effect():
    """A's accuracy lies on the control curve at its entropy (true difference 0): the 95%
    interval excludes 0 in about 5% of simulated studies (binomial bound)."""
    from scipy.stats import binom

    from ipg.report.sharpening import Point, find_bracket, matched_difference

    rng = np.random.default_rng(8)
    n_sim, misses = 120, 0
    for _ in range(n_sim):
        q0, q1 = rng.uniform(0.4, 0.8, P), rng.uniform(0.2, 0.6, P)
        acc = lambda p: (rng.random((P, S)) < p[:, None]).astype(float)
        ent = lambda h: h + rng.normal(0, 0.3, (P, S))
        c0, c1 = Point(0.5, "T=0.5", acc(q0), ent(0.5)), Point(1.0, "unsteered", acc(q1), ent(1.0))
        w = 0.4
        ya, ha = acc((1 - w) * q0 + w * q1), ent(0.5 + w * 0.5)
        br = find_bracket([c0, c1], float(ha.mean()))
        if br is None:
            continue
        r = matched_difference(ya, ha, br, n_resamples=400, seed=int(rng.integers(1 << 30)))
        misses += int(r["diff_lo"] > 0 or r["diff_hi"] < 0)
    assert misses <= binom.ppf(0.99, n_sim, 0.05)


def test_sharpening_rows_without_a_gain_or_a_bracket_say_so_and_are_not_tested():
    from ipg.report.verdicts import NO_BRACKET, NO_GAIN

    rng = np.random.default_rng(9)
    parts, _, _ = _sharpening_study(rng, gain=-0.1)
    row = build_verdicts(pd.concat(parts, ignore_index=True)).query("family == 'sharpening'").iloc[0]
    assert row["verdict"] == NO_GAIN and "did not rise" in row["note"] and np.isnan(row["p_holm"])
    parts, _, _ = _sharpening_study(rng, steered_entropy=0.2)  # below T=0.5's entropy
    row = build_verdicts(pd.concat(parts, ignore_index=True)).query("family == 'sharpening'").iloc[0]
    assert row["verdict"] == NO_BRACKET and np.isnan(row["p_holm"])
    assert "(T=0.5) .. 1.01 (unsteered)" in row["note"] and "control_temperatures" in row["note"]


def test_sharpening_reads_the_control_methods_temperature_arms_for_another_ipg_method():
    rng = np.random.default_rng(10)
    parts, _, _ = _sharpening_study(rng, method="ipg_v2")
    found = build_verdicts(pd.concat(parts, ignore_index=True))
    row = found[(found["family"] == "sharpening") & (found["ipg_method"] == "ipg_v2")].iloc[0]
    assert row["verdict"] == BETTER and row["half_width"] > 0


def _with_ids(rows, ids):
    """rows with a units_id per (method, selection): ids[(method, selection)] (default: unique)."""
    out = rows.copy()
    out["units_id"] = [("" if sel == "none" else ids.get((m, sel), f"{m}/{sel}/{k}"))
                       for m, sel, k in out[["method", "selection", "k"]].itertuples(index=False)]
    return out


def test_identical_unit_sets_read_same_set_and_leave_the_holm_family():
    from ipg.report.verdicts import SAME_SET

    rng = np.random.default_rng(12)
    rows = _study(rng, ipg_ablation=0.3)
    act = rows["method"] == "act"
    ipg = rows[rows["method"] == "ipg"]
    rows.loc[act, ["accuracy", "length", "entropy", "truncated"]] = ipg[
        ["accuracy", "length", "entropy", "truncated"]].to_numpy()  # the same intervention
    rows = pd.concat([rows, ipg.assign(selection="magnitude")], ignore_index=True)
    found = build_verdicts(_with_ids(rows, {("ipg", "signed"): "S", ("act", "signed"): "S",
                                            ("ipg", "magnitude"): "S"}))
    same = found[found["verdict"] == SAME_SET]
    assert set(same["family"]) == {"ablation vs act", "enhancement vs act", "sign"}
    assert len(same) == 4 and same["diff_lo"].isna().all() and same["p_holm"].isna().all()
    assert (same["diff"] == 0).all() and same["note"].str.contains("the same 4 units").all()
    # random draws are other sets: still tested, with a family of one (no same-set row counted)
    rnd = found[found["family"] == "ablation vs random"].iloc[0]
    assert rnd["verdict"] == BETTER and rnd["p_holm"] == rnd["p"]
    # without unit ids (or with different ones) equal outcomes are not called the same set
    found = build_verdicts(rows)
    assert SAME_SET not in set(found["verdict"])
    assert (found["half_width"].dropna() > 0).all()


def test_unit_ids_are_recomputed_from_the_attribution_tables(tmp_path):
    from ipg.attribution.table import make_attribution, write_attribution
    from ipg.report.unit_sets import attach_unit_ids, unit_set_id

    units = [f"L{i}.mlp.n0" for i in range(4)]
    paths = {}
    for method, scores in {"ipg": [4.0, 3.0, 2.0, 1.0], "act": [5.0, 1.0, 2.0, 3.0]}.items():
        att = make_attribution(units, list(range(4)), [0] * 4, np.array([scores]), ["p0"],
                               "layers", method)
        paths[method] = tmp_path / f"{method}.parquet"
        write_attribution(att, paths[method], tmp_path / f"{method}.json")
    atts = pd.DataFrame([dict(model="m", task="t", granularity="layers", method=m, path=str(p))
                         for m, p in paths.items()])
    rows = pd.concat([_rows(m, m, "accuracy", sel, k, 0.0, _arm(np.random.default_rng(0),
                                                                np.full(P, 0.5)))
                      for m in ("ipg", "act") for sel, k in [("signed", 1), ("signed", 2),
                                                             ("magnitude", 1), ("none", 0)]],
                     ignore_index=True).assign(granularity="layers")
    got = attach_unit_ids(rows, atts).drop_duplicates(["method", "selection", "k"]).set_index(
        ["method", "selection", "k"])["units_id"]
    assert got[("ipg", "signed", 1)] == got[("act", "signed", 1)] == unit_set_id(["L0.mlp.n0"])
    assert got[("ipg", "signed", 2)] != got[("act", "signed", 2)]
    assert got[("ipg", "magnitude", 1)] == got[("ipg", "signed", 1)] and got[("ipg", "none", 0)] == ""
    assert attach_unit_ids(rows, atts.iloc[0:0])["units_id"].isna().sum() == 6 * P * S


def test_a_constant_length_difference_gets_a_nonzero_interval():
    rng = np.random.default_rng(13)
    a = np.full((P, S), 60.0)
    got = compare(a, a - 5.0, "length", settings(None), length_bound=96.0)
    assert got["diff"] == 5.0 and got["diff_lo"] < 5.0 < got["diff_hi"]
    got = compare(a, a.copy(), "length", settings(None))
    assert got["diff_lo"] < 0 < got["diff_hi"]
    # a non-degenerate length difference is the plain bootstrap (scale-equivariant)
    b = a + rng.normal(0, 3, (P, S))
    s = settings(None)
    scaled = compare(a, b, "length", s, length_bound=96.0)
    ci = __import__("ipg.study.statistics", fromlist=["x"]).paired_difference(a, b, "hierarchical", 0.95,
                                                                          s["n_resamples"], 0)
    assert (scaled["diff_lo"], scaled["diff_hi"]) == pytest.approx((ci.lo, ci.hi))


def test_findings_defaults_come_from_the_config_schema():
    from ipg.config.schema import load_schema
    from ipg.report.verdicts import FAMILIES, defaults

    props = load_schema()["properties"]["findings"]["properties"]
    assert settings(None) == {k: v["default"] for k, v in props.items()} == defaults()
    assert tuple(props["families"]["items"]["enum"]) == FAMILIES
    assert settings({"findings": {"alpha": 0.01}})["alpha"] == 0.01


def test_length_rows_have_act_and_random_controls():
    rng = np.random.default_rng(5)
    q = rng.uniform(0.3, 0.7, P)
    parts = []
    for m, kind, reward, extra in [("ipg_length", "ipg", "length", 10.0), ("act", "act", "accuracy", 0.0)] + [
            (f"random_s{i}", "random", "accuracy", 0.0) for i in range(5)]:
        parts.append(_rows(m, kind, reward, "none", 0, 1.0, _arm(rng, q)))
        parts.append(_rows(m, kind, reward, "signed", 4, 2.0, _arm(rng, q, length=50 + extra)))
    found = build_verdicts(pd.concat(parts, ignore_index=True))
    length = found[found["family"] == "length"]
    assert set(length["versus"]) == {"act", "random (5 draws)", "unsteered"}
    assert (length["verdict"] == BETTER).all()
    # fewer draws than findings.min_random_draws: one arbitrary set is not the random control
    few = pd.concat(parts[:6], ignore_index=True)
    row = build_verdicts(few).query("family == 'length' and versus.str.startswith('random')").iloc[0]
    assert row["versus"] == "random (1 draw < 5)" and row["verdict"] == NO_DATA
    assert length["diff"].to_numpy() == pytest.approx([10, 10, 10], abs=0.2)


def _simulate(effect, n_sim, m, rng, s):
    """n_sim studies of a family of m paired comparisons (P prompts x S seeds, 0/1 outcomes;
    the arms share the sampler's uniform half the time): the verdict per comparison."""
    words = np.empty((n_sim, m), dtype=object)
    for i in range(n_sim):
        q = rng.uniform(0.2, 0.8, (m, P))
        u = rng.random((m, P, S))
        share = rng.random((m, P, S)) < 0.5
        u2 = np.where(share, u, rng.random((m, P, S)))
        a = (u < np.clip(q + effect, 0, 1)[..., None]).astype(float)
        b = (u2 < q[..., None]).astype(float)
        rows = [dict(metric="accuracy", **compare(a[j], b[j], "accuracy", s, seed=j)) for j in range(m)]
        p_holm = holm([r["p"] for r in rows])
        words[i] = [decide({**r, "p_holm": ph}, True, s) for r, ph in zip(rows, p_holm)]
    return words


def test_the_verdict_rule_controls_family_wise_error_and_has_its_stated_power():
    """Effect 0: P(any better/worse in the family) <= 5% (binomial upper bound on the
    simulation's count); effect = the design's detectable effect: >= 80% of rows 'better'."""
    from scipy.stats import binom

    rng = np.random.default_rng(0)
    s = {**settings(None), "n_resamples": 300, "n_sign_flips": 1000}
    m, n_sim = 4, 150
    null = _simulate(0.0, n_sim, m, rng, s)
    false_pos = int(np.isin(null, [BETTER, WORSE]).any(1).sum())
    assert false_pos <= binom.ppf(0.99, n_sim, 0.05)  # consistent with FWER <= 0.05
    # the design's detectable effect from the half-width the design achieves
    hw = float(np.median([compare(*(_simulate_pair(rng, 0.0)), "accuracy", s)["half_width"]
                          for _ in range(10)]))
    delta = detectable_effect(hw, m, s["alpha"], 0.8)
    alt = _simulate(delta, 60, m, rng, s)
    assert (alt == BETTER).mean() >= 0.8 - 2 * np.sqrt(0.16 / alt.size)
    assert (alt == WORSE).sum() == 0


def _simulate_pair(rng, effect):
    q = rng.uniform(0.2, 0.8, P)
    u = rng.random((P, S))
    u2 = np.where(rng.random((P, S)) < 0.5, u, rng.random((P, S)))
    return ((u < np.clip(q + effect, 0, 1)[:, None]).astype(float),
            (u2 < q[:, None]).astype(float))


def test_design_table_and_headline_use_confirmatory_cells_that_meet_the_target():
    from ipg.report.verdicts import design_table, headline

    rng = np.random.default_rng(6)
    rows = _study(rng, ipg_ablation=0.3)
    small = rows[rows["prompt_id"] < 30].assign(model="smoke")  # 30 prompts: wide intervals
    cfg = {"findings": {"target_half_width": 0.08}}  # 300 prompts x 2 seeds, independent arms
    found = build_verdicts(pd.concat([rows, small], ignore_index=True), cfg)
    design = design_table(found, cfg).set_index("model")
    assert design.loc["m", "status"] == "confirmatory" and design.loc["smoke", "status"] == "smoke test"
    assert design.loc["m", "median_half_width"] <= 0.08 < design.loc["smoke", "median_half_width"]
    assert design.loc["m", "detectable_effect"] == pytest.approx(
        detectable_effect(design.loc["m", "median_half_width"], 2))  # 2 cells per family
    text = headline(found, cfg)
    assert text.startswith("Confirmatory families") and "ablation vs act: IPG better in 1 of 1" in text
    assert "Smoke tests only" in text and "smoke/t/neurons" in text
    assert "m/neurons ipg k=4 gamma=0 vs act: -0.3" in text  # effect size with its CI
    hw = found[(found["model"] == "m") & (found["family"] == "ablation vs act")]["half_width"].iloc[0]
    assert f"half-width {hw:.3f}" in text and "median half-width" in text
    # every row carries its cell's design label
    by_model = found.groupby("model")["design"].unique()
    assert list(by_model["m"]) == ["confirmatory"] and list(by_model["smoke"]) == ["smoke test"]
    assert "no claim" in headline(build_verdicts(rows[rows["method"] == "act"]))
