"""Steering (Eq. 4) against the model's own algebra: weight edits, SAE reconstruction, hooks."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent / "attribution"))
from tiny_models import ToySAE, tiny_model  # noqa: E402

from ipg.errors import IPGError  # noqa: E402
from ipg.core.intervention import activation_means, check_transfer, steer  # noqa: E402

IDS = torch.tensor([[3, 5, 7, 2, 9, 11], [4, 4, 8, 1, 6, 2]])
NEURONS = ["L0.mlp.n3", "L0.mlp.n40", "L1.mlp.n7"]


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tiny_model("qwen2")


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def n_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("units", [NEURONS, ["L0.attn.h1", "L1.attn.h3"], ["L0.resid"], ["sae.L1.f2", "sae.L1.f9"]])
def test_gamma_one_is_bitwise_identity_and_hooks_are_removed(model, units) -> None:
    sae = ToySAE(32, 48, 8, layer=1)
    before, plain = n_hooks(model), logits(model)
    with steer(model, units, 1.0, sae=sae):
        assert n_hooks(model) > before
        steered_one = logits(model)
    assert torch.equal(steered_one, plain)
    with pytest.raises(RuntimeError, match="boom"), steer(model, units, 3.0, sae=sae):
        assert not torch.equal(logits(model), plain)
        raise RuntimeError("boom")
    assert n_hooks(model) == before and torch.equal(logits(model), plain)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_neuron_scaling_equals_scaling_down_proj_columns(model, gamma) -> None:
    edited = copy.deepcopy(model).requires_grad_(False)
    for unit in NEURONS:  # neuron i of layer l is column i of down_proj (its input feature)
        layer, index = int(unit[1]), int(unit.split(".n")[1])
        edited.model.layers[layer].mlp.down_proj.weight[:, index] *= gamma
    with steer(model, NEURONS, gamma):
        got = logits(model)
    assert torch.allclose(got, logits(edited), atol=1e-10)
    if gamma != 1.0:
        assert not torch.allclose(got, logits(model), atol=1e-6)


def test_head_scaling_equals_scaling_o_proj_columns(model) -> None:
    edited, head_dim = copy.deepcopy(model).requires_grad_(False), 32 // 4
    edited.model.layers[1].self_attn.o_proj.weight[:, 2 * head_dim:3 * head_dim] *= 0.0
    with steer(model, ["L1.attn.h2"], 0.0):
        assert torch.allclose(logits(model), logits(edited), atol=1e-10)


def test_mean_ablation_equals_a_down_proj_bias(model) -> None:
    units = ["L1.mlp.n5", "L1.mlp.n20"]
    means = {"L1.mlp.n5": 0.7, "L1.mlp.n20": -0.3}
    down = model.model.layers[1].mlp.down_proj
    w = down.weight.detach().clone()  # [d_model, d_ff]
    edited = copy.deepcopy(model)
    # x_i <- m_i for i in P  <=>  W x' = W_{not P} x + sum_i m_i W[:, i]: zero the columns, add a bias
    new = nn.Linear(w.shape[1], w.shape[0], bias=True, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        new.weight[:, [5, 20]] = 0.0
        new.bias.copy_(0.7 * w[:, 5] - 0.3 * w[:, 20])
    edited.model.layers[1].mlp.down_proj = new
    with steer(model, units, 0.0, mode="mean", means=means):
        got = logits(model)
    assert torch.allclose(got, logits(edited), atol=1e-10)


def test_mean_mode_with_gamma_one_is_the_identity(model) -> None:
    plain = logits(model)  # m + 1 (h - m) = h, for scalar and [head_dim] means
    with steer(model, ["L1.mlp.n5", "L1.mlp.n20"], 1.0, mode="mean", means=[0.7, -0.3]):
        assert torch.allclose(logits(model), plain, atol=1e-12)
    with steer(model, ["L0.attn.h0"], 1.0, mode="mean", means={"L0.attn.h0": torch.ones(8)}):
        assert torch.allclose(logits(model), plain, atol=1e-12)


def test_layer_mean_mode_replaces_the_block_update(model) -> None:
    """Layers are the block's update u = out - in: the dataset mean is the mean of u, and
    mean ablation (gamma = 0) makes block l add that mean, out' = in + m (hooks written here)."""
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    block = model.model.layers[1]
    seen = {}
    h = block.register_forward_hook(lambda m, a, o: seen.__setitem__("u", o - a[0]))
    with torch.no_grad():
        model(input_ids=IDS, attention_mask=mask)
    h.remove()
    means = activation_means(model, IDS, ["L1.resid"], attention_mask=mask)
    want = seen["u"][mask.bool()].mean(0)  # [d_model]
    assert torch.allclose(means["L1.resid"], want, atol=1e-12)
    edited = copy.deepcopy(model)
    edited.model.layers[1].forward = lambda hidden_states, *a, **k: hidden_states + want
    with steer(model, ["L1.resid"], 0.0, mode="mean", means=means):
        assert torch.allclose(logits(model), logits(edited), atol=1e-10)
    plain = logits(model)
    with steer(model, ["L1.resid"], 1.0, mode="mean", means=means):  # m + 1 (u - m) = u
        assert torch.allclose(logits(model), plain, atol=1e-12)


def test_activation_means_match_a_direct_average(model) -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    got = activation_means(model, IDS, ["L1.mlp.n5", "L1.mlp.n9"], attention_mask=mask)
    got |= activation_means(model, IDS, ["L0.attn.h1"], attention_mask=mask)
    store = {}
    h1 = model.model.layers[1].mlp.down_proj.register_forward_pre_hook(
        lambda m, a: store.__setitem__("n", a[0]))
    h2 = model.model.layers[0].self_attn.o_proj.register_forward_pre_hook(
        lambda m, a: store.__setitem__("h", a[0]))
    with torch.no_grad():
        model(input_ids=IDS, attention_mask=mask)
    h1.remove(), h2.remove()
    keep = mask.bool()
    assert torch.allclose(got["L1.mlp.n5"], store["n"][keep][:, 5].mean().reshape(1))
    assert torch.allclose(got["L1.mlp.n9"], store["n"][keep][:, 9].mean().reshape(1))
    assert torch.allclose(got["L0.attn.h1"], store["h"][keep][:, 8:16].mean(0))


def test_sae_steering_keeps_the_reconstruction_error(model) -> None:
    sae = ToySAE(32, 48, 8, layer=1)
    block = model.model.layers[1]
    seen = []
    with torch.no_grad():
        plain_out = {}
        h = block.register_forward_hook(lambda m, a, o: plain_out.setdefault("x", o))
        model(IDS)
        h.remove()
        x = plain_out["x"]
        f = sae.encode(x)  # [b, pos, 48]
        active = sorted({int(i) for i in (f[0, 2] > 0).nonzero().flatten()})[:3]
        units, gamma = [f"sae.L1.f{i}" for i in active], 2.5
        with steer(model, units, gamma, sae=sae):  # registered first: the capture sees its output
            h = block.register_forward_hook(lambda m, a, o: seen.append(o))
            model(IDS)
            h.remove()
    want = x + ((gamma - 1) * f[..., active]) @ sae.W_dec[active]  # x + W_dec[P]^T (gamma-1) f_P
    assert torch.allclose(seen[0], want, atol=1e-10)
    # the error term x - decode(f) is unchanged by the edit
    err = x - sae.decode(f)
    f_new = f.clone()
    f_new[..., active] *= gamma
    assert torch.allclose(seen[0] - sae.decode(f_new), err, atol=1e-10)


def test_steering_during_generation_changes_the_text(tiny_qwen2) -> None:
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    model, tokenizer = tiny_qwen2
    cfg = SamplingConfig(temperature=0.7, max_new_tokens=12, seed=5)
    run = lambda: [t.gen_ids for t in sample_trajectories(
        model, tokenizer, ["12+7=", "3*4="], 2, cfg, progress=False)[0]]
    plain = run()
    units = [f"L{l}.mlp.n{i}" for l in (0, 1) for i in range(0, 128, 4)]
    with steer(model, units, 1.0):
        assert run() == plain
    with steer(model, units, 25.0):
        assert run() != plain
    assert run() == plain


def test_bad_input_is_one_line_error(model) -> None:
    for units, gamma, match in [
        (NEURONS, -0.5, "gamma"), (NEURONS, float("nan"), "gamma"),
        (["L0.mlp.n64"], 2.0, "index 64 >= 64"), (["L5.mlp.n1"], 2.0, "layer 5"),
        (["L0.mlp.x1"], 2.0, "unit id"), (["L0.mlp.n1", "L0.resid"], 2.0, "mix"),
        (["sae.L1.f0"], 2.0, "needs an SAE"), ("L0.mlp.n1", 2.0, "list"),
    ]:
        with pytest.raises(IPGError, match=match) as err, steer(model, units, gamma):
            pass
        assert "\n" not in str(err.value)
    with pytest.raises(IPGError, match="means="), steer(model, NEURONS, 0.0, mode="mean"):
        pass
    with pytest.raises(IPGError, match="mode"), steer(model, NEURONS, 0.0, mode="zero"):
        pass
    assert n_hooks(model) == 0


def test_transfer_check(model) -> None:
    check_transfer(NEURONS, model, tiny_model("qwen2", seed=1))
    with pytest.raises(IPGError, match="architecture"):
        check_transfer(NEURONS, model, tiny_model("llama"))
    wide = tiny_model("qwen2")
    for layer in wide.model.layers:
        layer.mlp.down_proj = nn.Linear(96, 32, bias=False, dtype=torch.float64)
    with pytest.raises(IPGError, match="shape"):
        check_transfer(NEURONS, model, wide)


def test_cli_steer_prints_both_completions(tiny_qwen2_dir, tmp_path, capsys) -> None:
    from ipg.cli import main

    units = tmp_path / "units.txt"
    units.write_text("L0.mlp.n1\nL1.mlp.n5  # a comment\n\nL1.mlp.n7\n")
    base = ["steer", "--model", str(tiny_qwen2_dir), "--units", str(units), "--max-new-tokens",
            "8", "--width", "80", "What is 2 + 3?"]
    assert main(base[:-1] + ["--gamma", "1", base[-1]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "L0.mlp.n1, L1.mlp.n5, L1.mlp.n7" in out[0] and "unsteered" in out[1]
    for line in out[3:]:  # gamma = 1 with the same seed: both columns are the same text
        left, right = line.split(" | ", 1)
        assert left.rstrip() == right.rstrip()
    assert main(base[:-1] + ["--gamma", "-2", base[-1]]) == 2
    assert "gamma" in capsys.readouterr().err
    units.write_text("L0.mlp.n999\n")
    assert main(base) == 2 and "index 999" in capsys.readouterr().err
