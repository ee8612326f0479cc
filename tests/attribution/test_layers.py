"""Layers as the block's update (ipg.core.units.Layers): IPG's path, its zero baseline and
completeness, checked against a surrogate written here from scratch on models whose blocks
are skipped by replacing their forward (independent of ipg.core.units' hooks).

A layer's unit is u_l = out_l - in_l, so the zero baseline is "block l skipped" and the path
in + alpha u_l never passes through a zero residual stream: the final RMSNorm no longer
cancels the path scale, and completeness converges with m for every layer, the last included.
"""
from __future__ import annotations

import copy
import warnings

import pytest
import torch

from ipg.attribution.ipg import IPGConfig, attribute
from tiny_models import sample_table, tiny_model

T = 1.0  # sample_table's temperature


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2", init=0.15)


@pytest.fixture(scope="module")
def table(model):
    return sample_table(model, n_prompts=2, seed=3, temperature=T)


def run(model, table, **cfg):
    cfg = {"max_residual": None, "baseline": "zero", **cfg}
    cfg.setdefault("chunk", cfg.get("m", 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attribute(model, table, "layers", IPGConfig(**cfg), progress=False)


def skipping(model, layers):
    """A copy of the model whose blocks `layers` return their input (the block skipped)."""
    out = copy.deepcopy(model)
    for l in layers:
        out.model.layers[l].forward = lambda hidden_states, *a, **k: hidden_states
    return out


@torch.no_grad()
def phi(model, table) -> float:
    """mean over prompts of Phi = (1/G) sum_j A_j log pi(tau_j) (leave-one-out A_j), one
    trajectory at a time, log_softmax(logits / T) picked by hand."""
    values = []
    for _, rows in table.groupby("prompt_id", sort=False):
        r = torch.tensor(rows["reward_accuracy"].to_numpy(), dtype=torch.float64)
        g = len(r)
        adv = r - (r.sum() - r) / (g - 1)
        total = 0.0
        for a, (_, row) in zip(adv.tolist(), rows.iterrows()):
            ids = list(row.prompt_ids) + list(row.gen_ids)
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double() / T, -1)
            p = len(row.prompt_ids)
            total += a / g * sum(float(logp[p - 1 + t, tok]) for t, tok in enumerate(row.gen_ids))
        values.append(total)
    return sum(values) / len(values)


def test_zero_baseline_is_the_block_skipped(model, table) -> None:
    """Phi(h') with a zero update is Phi of the model with those blocks skipped: all blocks in
    joint mode, block l alone for layers=[l], and per pass (summed) in separate mode."""
    full = phi(model, table)
    skip = {l: phi(skipping(model, [l]), table) for l in (0, 1)}
    joint = run(model, table, m=4)
    assert joint.metrics["phi_h"] == pytest.approx(full, rel=1e-10)
    assert joint.metrics["phi_baseline"] == pytest.approx(phi(skipping(model, [0, 1]), table),
                                                          rel=1e-10)
    for l in (0, 1):
        one = run(model, table, m=4, layers=[l])
        assert one.metrics["phi_delta"] == pytest.approx(full - skip[l], rel=1e-10)
    sep = run(model, table, m=4, multilayer="separate")
    assert sep.metrics["phi_delta"] == pytest.approx(2 * full - skip[0] - skip[1], rel=1e-10)


@pytest.mark.parametrize("multilayer", ["joint", "separate", "onthefly"])
def test_zero_baseline_completeness_converges_in_m(model, table, multilayer) -> None:
    """sum_l IPG_l -> Phi(h) - Phi(h') as m grows, with a zero baseline (the block-output
    definition never converged there: its path crosses a zero stream under the final norm)."""
    res = []
    for m in (4, 8, 16, 32):
        att = run(model, table, m=m, multilayer=multilayer)
        res.append(att.metrics["completeness_residual_pooled"])
    print(multilayer, ["%.1e" % r for r in res])
    for a, b in zip(res, res[1:]):
        assert b < a, res
    assert res[-1] < 1e-4, res
    assert att.metrics["phi_delta"] != 0


def test_last_layer_alone_converges_to_its_skip_effect(model, table) -> None:
    """The last block's update with a zero baseline: its score alone tends to Phi(h) - Phi(the
    last block skipped), computed here without the engine."""
    want = phi(model, table) - phi(skipping(model, [1]), table)
    coarse, fine = (run(model, table, m=m, layers=[1]).scores["score"].iloc[0] for m in (4, 32))
    assert abs(fine - want) < 1e-4 * abs(want)
    assert abs(fine - want) < abs(coarse - want)


def test_joint_checkpointing_and_bypass_agree_with_onthefly_for_one_layer(model, table) -> None:
    """For one selected layer, joint (recorded update, block bypassed) and on-the-fly (block run,
    its update read live) follow the same path: the same scores."""
    for layer in (0, 1):
        joint = run(model, table, m=8, layers=[layer])
        fly = run(model, table, m=8, layers=[layer], multilayer="onthefly")
        ckpt = run(model, table, m=8, layers=[layer], checkpoint_layers=True)
        torch.testing.assert_close(torch.tensor(joint.per_prompt), torch.tensor(fly.per_prompt),
                                   rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(torch.tensor(joint.per_prompt), torch.tensor(ckpt.per_prompt),
                                   rtol=1e-12, atol=1e-15)


def test_llama_too() -> None:
    llama = tiny_model("llama", seed=1, init=0.15)
    table = sample_table(llama, n_prompts=2, seed=4, temperature=T)
    att = run(llama, table, m=32)
    assert att.metrics["completeness_residual_pooled"] < 1e-4
    assert att.metrics["phi_baseline"] == pytest.approx(phi(skipping(llama, [0, 1]), table),
                                                        rel=1e-10)
