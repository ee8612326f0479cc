"""IPG (ipg.attribution.ipg) against mathematics: completeness, identities of the algebra,
recorded variants, the all-equal-rewards case, and the table's file round trip."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ipg.attribution.ipg import IPGConfig, attribute
from ipg.attribution.table import read_attribution, select_units, write_attribution
from ipg.errors import IPGError
from tiny_models import ToySAE, sample_table

GRANS = ["neurons", "heads", "layers", "sae"]
FLOOR = 1e-9  # float64 round-off: residuals below it are "converged"


def run(model, table, gran, **cfg):
    cfg.setdefault("max_residual", None)
    cfg.setdefault("chunk", cfg.get("m", 32))  # path points batched: fast on tiny models
    sae = [ToySAE(32, 48, 8, layer=l, seed=l) for l in (0, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attribute(model, table, gran, IPGConfig(**cfg), sae=sae, progress=False)


@pytest.fixture(scope="module")
def tables(qwen, llama):
    return {"qwen": sample_table(qwen, n_prompts=2, seed=3), "llama": sample_table(llama, n_prompts=2, seed=4)}


@pytest.mark.parametrize("arch", ["qwen", "llama"])
@pytest.mark.parametrize("gran", GRANS)
def test_completeness_and_convergence_in_m(arch, gran, tables, request) -> None:
    """sum_i IPG_i = Phi(h) - Phi(h') up to the quadrature error, which shrinks with m."""
    model, table = request.getfixturevalue(arch), tables[arch]
    for quad in ("gauss_legendre", "riemann_mid"):
        res = []
        for m in (4, 8, 16, 32):
            att = run(model, table, gran, quadrature=quad, m=m)
            mt = att.metrics
            # the metric is what it claims: relative gap between the sum and Phi(h) - Phi(h')
            assert mt["phi_delta"] == pytest.approx(mt["phi_h"] - mt["phi_baseline"])
            assert att.per_prompt.sum(1).mean() == pytest.approx(mt["sum_scores"], rel=1e-5, abs=1e-12)
            res.append(mt["completeness_residual"])
        print(arch, gran, quad, ["%.2e" % r for r in res])
        for a, b in zip(res, res[1:]):
            assert b < a or b < FLOOR, (quad, res)
        bound = 1e-4 if quad == "gauss_legendre" else 1e-2
        assert res[-1] < bound, (quad, res)


def test_default_m_gauss_legendre_is_accurate(qwen, tables) -> None:
    att = run(qwen, tables["qwen"], "neurons", chunk=32)  # defaults: GL, m = 32
    assert att.metrics["config"]["m"] == 32 and att.metrics["config"]["quadrature"] == "gauss_legendre"
    assert att.metrics["completeness_residual"] < 1e-6
    assert att.metrics["completeness_residual_prompt_median"] < 1e-6


@pytest.mark.parametrize("gran, m", [("neurons", 32), ("heads", 96)])
def test_single_layer_path_is_per_layer_complete(qwen, tables, gran, m) -> None:
    """Units of layer l on a single-layer path sum to Phi(h) - Phi(h'_l) for that layer alone;
    'separate' is exactly that, layer by layer; joint == onthefly for one layer."""
    table = tables["qwen"]
    sep = run(qwen, table, gran, multilayer="separate", m=m)
    for layer in (0, 1):
        one = run(qwen, table, gran, layers=[layer], m=m)
        on_the_fly = run(qwen, table, gran, layers=[layer], m=m, multilayer="onthefly")
        rows = sep.scores["layer"] == layer
        assert np.allclose(sep.scores.loc[rows, "score"], one.scores["score"], atol=1e-12)
        assert np.allclose(one.scores["score"], on_the_fly.scores["score"], atol=1e-12)
        assert one.metrics["completeness_residual"] < 1e-6
    # separate: the totals add up layer by layer
    assert sep.metrics["completeness_residual"] < 1e-6


def test_heads_sum_to_whole_o_proj_input(qwen, tables) -> None:
    """Grouping coordinates into heads does not change the path: the heads of a layer sum to
    the attribution of the whole o_proj input = Phi(h) - Phi(h') of clamping all of it."""
    att = run(qwen, tables["qwen"], "heads", layers=[1], m=64)
    assert att.scores["score"].sum() == pytest.approx(att.metrics["phi_delta"], rel=1e-6)


def test_layers_joint_credits_every_block(qwen, tables) -> None:
    """A layer is its block's update: clamping every update jointly still lets each one reach
    the logits (the stream is in + u_path), so every block gets credit, unlike the stream
    itself, where only the last clamped output mattered. (Against captum: test_captum.py.)"""
    att = run(qwen, tables["qwen"], "layers", m=32)
    scores = att.scores.set_index("unit")["score"]
    assert scores["L0.resid"] != 0.0 and scores["L1.resid"] != 0.0
    assert scores.sum() == pytest.approx(att.metrics["phi_delta"], rel=1e-6)


def test_onthefly_is_complete_and_differs_from_joint(qwen, tables) -> None:
    joint = run(qwen, tables["qwen"], "neurons", m=32)
    fly = run(qwen, tables["qwen"], "neurons", m=32, multilayer="onthefly")
    assert fly.metrics["completeness_residual"] < 1e-6
    # both start from h' in every layer: same endpoints, different per-unit split
    assert fly.metrics["phi_delta"] == pytest.approx(joint.metrics["phi_delta"], rel=1e-9)
    assert not np.allclose(fly.scores["score"], joint.scores["score"])


@pytest.mark.parametrize("baseline", ["mean", "noise"])
def test_other_baselines_complete(qwen, tables, baseline) -> None:
    att = run(qwen, tables["qwen"], "neurons", m=32, baseline=baseline)
    zero = run(qwen, tables["qwen"], "neurons", m=32)
    assert att.metrics["completeness_residual"] < 1e-6
    assert att.metrics["phi_baseline"] != pytest.approx(zero.metrics["phi_baseline"])
    assert att.metrics["config"]["baseline"] == baseline


def test_noise_baseline_is_seeded(qwen, tables) -> None:
    a = run(qwen, tables["qwen"], "neurons", m=8, baseline="noise", seed=1)
    b = run(qwen, tables["qwen"], "neurons", m=8, baseline="noise", seed=1)
    c = run(qwen, tables["qwen"], "neurons", m=8, baseline="noise", seed=2)
    assert np.array_equal(a.per_prompt, b.per_prompt) and not np.allclose(a.per_prompt, c.per_prompt)


def test_generated_positions_differ_from_all(qwen, tables) -> None:
    all_pos = run(qwen, tables["qwen"], "neurons", m=32)
    gen = run(qwen, tables["qwen"], "neurons", m=32, positions="generated")
    assert gen.metrics["completeness_residual"] < 1e-6
    assert gen.metrics["phi_h"] == pytest.approx(all_pos.metrics["phi_h"])
    assert gen.metrics["phi_baseline"] != pytest.approx(all_pos.metrics["phi_baseline"])
    assert not np.allclose(gen.scores["score"], all_pos.scores["score"])


def test_chunking_path_points_does_not_change_scores(qwen, tables) -> None:
    looped = run(qwen, tables["qwen"], "heads", m=8, chunk=1)
    chunked = run(qwen, tables["qwen"], "heads", m=8, chunk=3)
    assert np.allclose(looped.per_prompt, chunked.per_prompt, rtol=1e-9, atol=1e-12)


def test_variants_run_and_are_recorded(qwen, tables) -> None:
    table = tables["qwen"]
    for kw in (dict(advantage="grpo"), dict(advantage="raw"), dict(reward="length"),
               dict(path="importance"), dict(quadrature="riemann_left"),
               dict(quadrature="riemann_right"), dict(temperature=1.0)):
        att = run(qwen, table, "neurons", m=8, **kw)
        for key, value in kw.items():
            assert att.metrics["config"][key] == value
        for key in ("phi_h", "phi_baseline", "sum_scores", "completeness_residual", "n_prompts",
                    "n_prompts_nonzero_advantage", "wall_seconds"):
            assert key in att.metrics
        assert np.isfinite(att.per_prompt).all()
    assert all(p.requires_grad for p in qwen.parameters())  # frozen only during the run
    # importance weights are 1/G at alpha = 1 and the surrogate's endpoints are the same
    imp = run(qwen, table, "neurons", m=8, path="importance")
    off = run(qwen, table, "neurons", m=8)
    assert imp.metrics["phi_delta"] == pytest.approx(off.metrics["phi_delta"])
    assert not np.allclose(imp.per_prompt, off.per_prompt)


def test_all_equal_rewards_give_zero_scores(qwen, tables) -> None:
    table = tables["qwen"].assign(reward_accuracy=1.0)
    with pytest.warns(UserWarning, match="zero advantages"):
        att = attribute(qwen, table, "neurons", IPGConfig(m=4), progress=False)
    assert att.metrics["n_prompts_nonzero_advantage"] == 0 and att.metrics["n_prompts"] == 2
    assert (att.scores["score"] == 0).all() and (att.per_prompt == 0).all()
    assert not att.scores[["score", "ci_lo", "ci_hi"]].isna().any().any()
    assert att.metrics["completeness_residual"] == 0.0


def test_one_zero_prompt_is_counted_and_contributes_zero(qwen, tables) -> None:
    table = tables["qwen"].copy()
    table.loc[table["prompt_id"] == "p0", "reward_accuracy"] = 0.5
    att = run(qwen, table, "neurons", m=8)
    assert att.metrics["n_prompts_nonzero_advantage"] == 1
    assert (att.per_prompt[0] == 0).all() and att.per_prompt[1].any()
    assert np.allclose(att.scores["score"], att.per_prompt.mean(0))  # Eq. 3: mean over ALL prompts


def test_residual_bound_fails_loudly(qwen, tables) -> None:
    with pytest.raises(IPGError, match="completeness residual .* raise config key 'm'"):
        run(qwen, tables["qwen"], "heads", m=2, quadrature="riemann_left", max_residual=1e-3)


def test_logprobs_match_sampler_and_temperature_is_checked(qwen) -> None:
    table = sample_table(qwen, n_prompts=1, temperature=0.7, seed=5)
    att = run(qwen, table, "neurons", m=4)  # temperature read from the table
    assert att.metrics["temperature_used"] == 0.7
    assert att.metrics["logprob_max_abs_diff"] < 1e-9
    with pytest.raises(IPGError, match="temperature"):
        run(qwen, table, "neurons", m=4, temperature=1.0)


def test_bad_config_is_one_line_error() -> None:
    with pytest.raises(IPGError, match="'path'"):
        IPGConfig(path="sideways")
    with pytest.raises(IPGError, match="unknown IPG config key 'mm'"):
        IPGConfig.from_dict({"mm": 3})
    assert IPGConfig.from_dict({"m": 8, "layers": [1]}).layers == [1]


def test_onpolicy_needs_a_sampler(qwen, tables) -> None:
    with pytest.raises(IPGError, match="sampler"):
        run(qwen, tables["qwen"], "neurons", m=4, path="onpolicy", layers=[0])


def test_write_read_roundtrip_and_selection(qwen, tables, tmp_path) -> None:
    att = run(qwen, tables["qwen"], "neurons", m=8)
    write_attribution(att, tmp_path / "a" / "s.parquet", tmp_path / "a" / "m.json")
    back = read_attribution(tmp_path / "a" / "s.parquet", tmp_path / "a" / "m.json")
    assert back.prompt_ids == att.prompt_ids and np.allclose(back.per_prompt, att.per_prompt)
    assert back.scores["unit"].tolist() == att.scores["unit"].tolist()
    assert json.loads((tmp_path / "a" / "m.json").read_text())["config"]["m"] == 8
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["m.json", "s.parquet"]
    s = att.scores.set_index("unit")["score"]
    top = select_units(att, 5)
    assert top == s.sort_values(ascending=False).index[:5].tolist()
    assert select_units(att.scores, 3, "bottom") == s.sort_values().index[:3].tolist()
    assert select_units(back, 4, "magnitude") == s.abs().sort_values(ascending=False).index[:4].tolist()
    per_layer = select_units(att, 2, per_layer=True)
    assert len(per_layer) == 4 and {u.split(".")[0] for u in per_layer} == {"L0", "L1"}
    # confidence interval brackets the mean
    sc = att.scores
    assert (sc["ci_lo"] <= sc["score"]).all() and (sc["score"] <= sc["ci_hi"]).all()


@pytest.mark.parametrize("baseline", ["zero", "mean"])
def test_shared_prompt_cache_gives_the_same_scores(qwen, tables, baseline) -> None:
    """positions=generated encodes each prompt once (KV cache); the result must not change."""
    table = tables["qwen"].copy()
    table.loc[table["sample_id"] == 1, "gen_ids"] = table.loc[table["sample_id"] == 1, "gen_ids"].map(
        lambda g: g[:2])  # ragged lengths: right padding inside the shared-prefix batch
    for gran in ("neurons", "heads", "layers", "sae"):
        kw = dict(m=8, positions="generated", baseline=baseline)
        cached = run(qwen, table, gran, **kw)
        plain = run(qwen, table, gran, share_prompt_cache=False, **kw)
        assert np.allclose(cached.per_prompt, plain.per_prompt, rtol=1e-8, atol=1e-12), gran
        assert cached.metrics["phi_baseline"] == pytest.approx(plain.metrics["phi_baseline"], rel=1e-10)




@pytest.mark.parametrize("gran,extra", [("neurons", {}), ("heads", {"multilayer": "separate"}),
                                        ("layers", {"traj_chunk": 1}), ("sae", {})])
def test_adaptive_quadrature_meets_completeness_and_matches_high_m(qwen, tables, gran, extra) -> None:
    """quadrature adaptive (docs/method.md "Quadrature"): every prompt's completeness residual
    <= tol, scores within tol (relative L1) of Gauss-Legendre m = 64, and the path points it
    records are the nodes it evaluated (5, 9, 17, ... per prompt, pass and trajectory group)."""
    tol = 1e-3
    att = run(qwen, tables["qwen"], gran, quadrature="adaptive", tol=tol, m_max=129, chunk=8, **extra)
    ref = run(qwen, tables["qwen"], gran, m=64, **extra)
    mt = att.metrics
    resid = [r for r in mt["completeness_residual_per_prompt"].values() if r is not None]
    assert resid and max(resid) <= tol and mt["completeness_residual"] <= tol
    assert all(e <= tol for e in mt["quadrature_error_per_prompt"].values() if e is not None)
    dist = np.abs(att.per_prompt - ref.per_prompt).sum() / np.abs(ref.per_prompt).sum()
    assert dist <= tol, dist
    # path points count per pass and per trajectory group (traj_chunk): each runs its own path
    n_pass = len(mt["layers"]) if extra.get("multilayer") == "separate" else 1
    sizes = tables["qwen"].groupby("prompt_id").size()
    n_group = {str(p): -(-int(g) // extra.get("traj_chunk", int(g))) for p, g in sizes.items()}
    for pid, points in mt["path_points_per_prompt"].items():
        if points:  # each (pass, group): a Clenshaw-Curtis level, 5 <= nodes <= m_max
            assert 5 * n_pass * n_group[pid] <= points <= 129 * n_pass * n_group[pid]
            assert ref.metrics["path_points_per_prompt"][pid] == 64 * n_pass * n_group[pid]
    assert mt["path_points"] == sum(mt["path_points_per_prompt"].values())


def test_adaptive_is_off_policy_only_and_checks_its_keys() -> None:
    with pytest.raises(IPGError, match="path: offpolicy"):
        IPGConfig(quadrature="adaptive", path="importance")
    with pytest.raises(IPGError, match="'tol'"):
        IPGConfig(tol=1.5)
    with pytest.raises(IPGError, match="'m_max'"):
        IPGConfig(m_max=3)
