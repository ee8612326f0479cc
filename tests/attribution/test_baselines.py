"""Baselines (ipg.attribution.baselines) against independent code: activations hooked here on
single unpadded trajectories, finite differences of log-likelihoods computed from raw logits."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from ipg.attribution.baselines import BaselineConfig
from ipg.attribution.methods import run_attribution
from ipg.errors import IPGError
from tiny_models import ToySAE, sample_table

SAES = [ToySAE(32, 48, 8, layer=l, seed=l) for l in (0, 1)]


def run(model, table, gran, kind, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_attribution(model, table, gran, {"kind": kind, **params}, SAES, progress=False)


@pytest.fixture(scope="module")
def tables(qwen, llama):
    return {"qwen": sample_table(qwen, n_prompts=2, seed=3),
            "llama": sample_table(llama, n_prompts=2, seed=4)}


# -- independent activations: one trajectory at a time, no padding, hooks written here ----------
def _capture(model, gran: str, ids: list[int], layer: int) -> torch.Tensor:
    """Unit activations [pos, units, unit_dim] of one sequence at one layer."""
    block = model.model.layers[layer]
    got = {}
    if gran in ("neurons", "heads"):
        mod = block.mlp.down_proj if gran == "neurons" else block.self_attn.o_proj
        handle = mod.register_forward_pre_hook(lambda m, args: got.__setitem__("x", args[0][0]))
    else:  # layers: the block's update out - in; SAE: the block's output
        handle = block.register_forward_hook(lambda m, a, out: got.__setitem__(
            "x", ((out if torch.is_tensor(out) else out[0]) - (a[0] if gran == "layers" else 0))[0]))
    with torch.no_grad():
        model(torch.tensor([ids]))
    handle.remove()
    x = got["x"].double()
    if gran == "neurons":
        return x.unsqueeze(-1)
    if gran == "heads":
        return x.view(x.shape[0], model.config.num_attention_heads, -1)
    if gran == "layers":
        return x.unsqueeze(-2)
    with torch.no_grad():
        return SAES[layer].encode(x).unsqueeze(-1)


def _per_trajectory(model, table, gran, layers=(0, 1), generated=False):
    """{prompt_id: [list over trajectories of [pos, all units, unit_dim]]} (layers concatenated)."""
    out: dict[str, list] = {}
    for _, r in table.iterrows():
        ids = list(r.prompt_ids) + list(r.gen_ids)
        acts = torch.cat([_capture(model, gran, ids, l) for l in layers], dim=1)
        if generated:
            acts = acts[len(r.prompt_ids):]
        out.setdefault(r.prompt_id, []).append(acts)
    return out


@pytest.mark.parametrize("arch", ["qwen", "llama"])
@pytest.mark.parametrize("gran", ["neurons", "heads", "layers", "sae"])
def test_act_is_mean_magnitude(arch, gran, tables, request) -> None:
    model, table = request.getfixturevalue(arch), tables[arch]
    for positions in ("all", "generated"):
        acts = _per_trajectory(model, table, gran, generated=positions == "generated")
        want = np.stack([torch.cat(v).norm(dim=-1).mean(0).numpy() for v in acts.values()])
        att = run(model, table, gran, "act", positions=positions, batch_size=3)
        assert np.allclose(att.per_prompt, want, rtol=1e-5, atol=1e-7), positions
        assert np.allclose(att.scores["score"], want.mean(0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("gran", ["neurons", "heads", "layers", "sae"])
def test_freq_is_fraction_active(gran, qwen, tables) -> None:
    table = tables["qwen"]
    acts = {p: torch.cat(v) for p, v in _per_trajectory(qwen, table, gran).items()}  # [pos, U, D]

    def check(want, **params):
        att = run(qwen, table, gran, "freq", **params)
        assert np.allclose(att.per_prompt, np.stack(want), atol=1e-6), params

    if gran in ("neurons", "sae"):  # scalar units: a > threshold (default 0)
        check([(a[..., 0] > 0).double().mean(0).numpy() for a in acts.values()])
        check([(a[..., 0] > 0.1).double().mean(0).numpy() for a in acts.values()], threshold=0.1)
        return
    n = {p: a.norm(dim=-1) for p, a in acts.items()}  # [pos, U]
    if gran == "heads":  # default: above the mean norm of its layer's heads at that position
        peer = {p: torch.cat([v[:, :4].mean(1, keepdim=True).expand(-1, 4),
                              v[:, 4:].mean(1, keepdim=True).expand(-1, 4)], 1) for p, v in n.items()}
    else:  # layers: above the mean norm of the selected layers at that position
        peer = {p: v.mean(1, keepdim=True).expand_as(v) for p, v in n.items()}
    check([(n[p] > peer[p]).double().mean(0).numpy() for p in n])
    check([(v > 1.0).double().mean(0).numpy() for v in n.values()], threshold=1.0)


# -- gxa: d/ds log pi with a_i -> s a_i at s = 1, by central finite differences ----------------
def _scaled_loglik(model, table, gran, layer, unit, s, temperature=1.0, start_gen=False):
    """mean_j log pi(tau_j) per prompt with unit (layer, unit) scaled by s (hooks written here)."""
    block = model.model.layers[layer]
    state = {}

    def pre(m, args):
        x = args[0].clone()
        sl = slice(state["P"], None) if start_gen else slice(None)
        if gran == "neurons":
            x[:, sl, unit] *= s
        else:
            hd = x.shape[-1] // model.config.num_attention_heads
            x[:, sl, unit * hd:(unit + 1) * hd] *= s
        return (x, *args[1:])

    def post(m, a, out):
        x = out if torch.is_tensor(out) else out[0]
        if gran == "layers":  # the block's update scaled: in + s (out - in)
            x = a[0] + s * (x - a[0])
        else:  # SAE latent: x + (s - 1) f_i W_dec[i] (reconstruction error kept)
            f = SAES[layer].encode(x)[..., unit : unit + 1]
            x = x + (s - 1) * f * SAES[layer].W_dec[unit]
        return x if torch.is_tensor(out) else (x, *out[1:])

    if gran in ("neurons", "heads"):
        mod = block.mlp.down_proj if gran == "neurons" else block.self_attn.o_proj
        handle = mod.register_forward_pre_hook(pre)
    else:
        handle = block.register_forward_hook(post)
    out: dict[str, list[float]] = {}
    with torch.no_grad():
        for _, r in table.iterrows():
            state["P"] = len(r.prompt_ids)
            ids = list(r.prompt_ids) + list(r.gen_ids)
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double() / temperature, -1)
            p = len(r.prompt_ids)
            lp = sum(float(logp[p - 1 + t, tok]) for t, tok in enumerate(r.gen_ids))
            out.setdefault(r.prompt_id, []).append(lp)
    handle.remove()
    return np.array([np.mean(v) for v in out.values()])


@pytest.mark.parametrize("arch", ["qwen", "llama"])
@pytest.mark.parametrize("gran", ["neurons", "heads", "layers", "sae"])
def test_gxa_is_derivative_of_unit_scale(arch, gran, tables, request) -> None:
    model, table = request.getfixturevalue(arch), tables[arch]
    att = run(model, table, gran, "gxa", batch_size=3)
    units = list(att.scores["unit"])
    eps = 1e-5
    picks = {"neurons": [(0, 3), (1, 60)], "heads": [(0, 1), (1, 2)], "layers": [(0, 0), (1, 0)],
             "sae": [(0, 5), (1, 40)]}[gran]
    for layer, unit in picks:
        col = units.index({"neurons": f"L{layer}.mlp.n{unit}", "heads": f"L{layer}.attn.h{unit}",
                           "layers": f"L{layer}.resid", "sae": f"sae.L{layer}.f{unit}"}[gran])
        fd = (_scaled_loglik(model, table, gran, layer, unit, 1 + eps)
              - _scaled_loglik(model, table, gran, layer, unit, 1 - eps)) / (2 * eps)
        assert np.allclose(att.per_prompt[:, col], fd, rtol=1e-5, atol=1e-7), (layer, unit, fd)
    assert np.abs(att.per_prompt).max() > 0


def test_gxa_generated_positions_and_temperature(qwen, tables) -> None:
    table = tables["qwen"].assign(temperature=0.7)
    att = run(qwen, table, "neurons", "gxa", positions="generated")
    col = list(att.scores["unit"]).index("L0.mlp.n9")
    eps = 1e-5
    fd = (_scaled_loglik(qwen, table, "neurons", 0, 9, 1 + eps, 0.7, start_gen=True)
          - _scaled_loglik(qwen, table, "neurons", 0, 9, 1 - eps, 0.7, start_gen=True)) / (2 * eps)
    assert np.allclose(att.per_prompt[:, col], fd, rtol=1e-5, atol=1e-7)
    assert att.metrics["temperature_used"] == 0.7


# -- contrastive --------------------------------------------------------------------------------
@pytest.mark.parametrize("gran", ["neurons", "heads"])
def test_contrastive_hand_built(gran, qwen, tables) -> None:
    table = tables["qwen"].copy()
    table["reward_accuracy"] = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    acts = _per_trajectory(qwen, table, gran)
    means = [a.mean(0) for v in acts.values() for a in v]  # per trajectory [U, D], table order
    hi = torch.stack([m for m, r in zip(means, table["reward_accuracy"]) if r == 1]).mean(0)
    lo = torch.stack([m for m, r in zip(means, table["reward_accuracy"]) if r == 0]).mean(0)
    want = (hi - lo)[:, 0] if gran == "neurons" else (hi - lo).norm(dim=-1)
    att = run(qwen, table, gran, "contrastive", batch_size=3)
    assert np.allclose(att.scores["score"], want.numpy(), rtol=1e-6, atol=1e-9)
    assert att.metrics["n_high"] == 3 and att.metrics["n_low"] == 5
    if gran == "neurons":  # signed: flipping the labels flips the scores
        flipped = run(qwen, table.assign(reward_accuracy=1 - table["reward_accuracy"]), gran, "contrastive")
        assert np.allclose(flipped.scores["score"], -att.scores["score"], atol=1e-9)


def test_contrastive_length_splits_at_median(qwen, tables) -> None:
    table = tables["qwen"].copy()
    table["reward_length"] = [3.0, 5.0, 5.0, 1.0, 8.0, 5.0, 2.0, 9.0]  # median 5: above = {8, 9}
    att = run(qwen, table, "neurons", "contrastive", reward="length")
    assert (att.metrics["n_high"], att.metrics["n_low"], att.metrics["split_value"]) == (2, 6, 5.0)
    acts = [a.mean(0)[:, 0] for v in _per_trajectory(qwen, table, "neurons").values() for a in v]
    high = table["reward_length"].to_numpy() > 5
    want = torch.stack([a for a, h in zip(acts, high) if h]).mean(0) - torch.stack(
        [a for a, h in zip(acts, high) if not h]).mean(0)
    assert np.allclose(att.scores["score"], want.numpy(), rtol=1e-6, atol=1e-9)


def test_contrastive_empty_group_warns_and_scores_zero(qwen, tables) -> None:
    table = tables["qwen"].assign(reward_accuracy=1.0)
    with pytest.warns(UserWarning, match="low-reward group .* is empty"):
        att = run_attribution(qwen, table, "heads", {"kind": "contrastive"}, progress=False)
    assert (att.per_prompt == 0).all() and att.metrics["n_low"] == 0
    with pytest.raises(IPGError, match="needs rewards 0 or 1"):
        run(qwen, table.assign(reward_accuracy=0.5), "heads", "contrastive")


# -- random -------------------------------------------------------------------------------------
def test_random_is_seeded_and_uniform(qwen, tables) -> None:
    table = tables["qwen"]
    a, b = run(qwen, table, "heads", "random", seed=3), run(qwen, table, "heads", "random", seed=3)
    assert np.array_equal(a.per_prompt, b.per_prompt)
    assert not np.allclose(a.per_prompt, run(qwen, table, "heads", "random", seed=4).per_prompt)
    # top-2 of 8 heads over many seeds: every one of the 28 subsets equally likely
    subsets = list(itertools.combinations(range(8), 2))
    counts = dict.fromkeys(subsets, 0)
    for seed in range(840):
        s = run(qwen, table, "heads", "random", seed=seed).scores["score"].to_numpy()
        counts[tuple(sorted(np.argsort(-s)[:2]))] += 1
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3


# -- config -------------------------------------------------------------------------------------
def test_bad_params_are_one_line_errors(qwen, tables) -> None:
    with pytest.raises(IPGError, match="unknown act key 'seed'; allowed: layers, positions"):
        BaselineConfig.from_dict("act", {"seed": 1})
    with pytest.raises(IPGError, match="'positions' = 'prompt'"):
        run(qwen, tables["qwen"], "neurons", "act", positions="prompt")
    with pytest.raises(IPGError, match="not available for granularity"):
        run(qwen, tables["qwen"], "neurons", "act", layers=[5])
    att = run(qwen, tables["qwen"], "neurons", "act", layers=[1])
    assert att.scores["unit"].str.startswith("L1.").all()
    assert isinstance(att.scores, pd.DataFrame) and att.metrics["params"]["layers"] == [1]
