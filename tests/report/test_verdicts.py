"""Paired verdicts on per-prompt rows: pairing, random pooling, Holm, exclusion, sharpening,
length controls, and a test of the test (family-wise error and power on simulated data)."""
import numpy as np
import pandas as pd
import pytest

from ipg.report.verdicts import (BETTER, EQUIVALENT, EXCLUDED, EXPLORATORY, INCONCLUSIVE, NO_DATA, WORSE,
                                 build_verdicts, compare, decide, detectable_effect, settings)
from ipg.statistics import holm, sign_flip_pvalue

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


def test_sharpening_interpolates_per_prompt_between_bracketing_controls():
    rng = np.random.default_rng(4)
    q = rng.uniform(0.3, 0.6, P)
    parts = [_rows("ipg", "ipg", "accuracy", "none", 0, 1.0, _arm(rng, q, entropy=1.0))]
    lo_t = _arm(rng, q + 0.1, entropy=0.5)
    parts.append(_rows("ipg", "ipg", "accuracy", "temperature", 0, 1.0, lo_t, temperature=0.5))
    steered = _arm(rng, q + 0.3, entropy=0.75)
    parts.append(_rows("ipg", "ipg", "accuracy", "signed", 4, 2.0, steered))
    found = build_verdicts(pd.concat(parts, ignore_index=True))
    row = found[found["family"] == "sharpening"].iloc[0]
    assert "T=0.5..unsteered" in row["note"]
    base = parts[0]["accuracy"].to_numpy().reshape(P, S)
    w = (float(np.mean(steered["entropy"])) - float(np.mean(lo_t["entropy"]))) / (
        float(parts[0]["entropy"].mean()) - float(np.mean(lo_t["entropy"])))
    control = (1 - w) * lo_t["accuracy"] + w * base
    assert row["diff"] == pytest.approx(float((steered["accuracy"] - control).mean()))
    assert row["verdict"] == BETTER


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
    assert "no claim" in headline(build_verdicts(rows[rows["method"] == "act"]))
