"""Granularities (ipg.core.units) against the model's own algebra, on tiny Qwen2 and Llama."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "attribution"))
from tiny_models import ToySAE, tiny_model  # noqa: E402

from ipg.core.units import (  # noqa: E402
    GRANULARITIES, edit_activations, get_granularity, parse_unit, scale_units,
)
from ipg.errors import IPGError  # noqa: E402

IDS = torch.tensor([[3, 5, 7, 2, 9, 11], [4, 4, 8, 1, 6, 2]])


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def model(request):
    torch.set_num_threads(1)
    return tiny_model(request.param)


def capture(model, gran, layer):
    got = {}
    with edit_activations(gran, {layer: lambda x: got.setdefault("x", x.detach())}), torch.no_grad():
        model(IDS)
    return got["x"]


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def test_registry_and_unit_ids(model) -> None:
    assert GRANULARITIES.names() == ["heads", "layers", "neurons", "sae"]
    neurons = get_granularity("neurons", model)
    ids = neurons.unit_ids([1])
    assert len(ids) == 64 and ids[5] == "L1.mlp.n5"
    assert get_granularity("heads", model).unit_ids([0]) == [f"L0.attn.h{h}" for h in range(4)]
    assert get_granularity("layers", model).unit_ids([0, 1]) == ["L0.resid", "L1.resid"]
    sae = ToySAE(32, 48, 8, layer=1)
    assert get_granularity("sae", model, sae).unit_ids([1])[7] == "sae.L1.f7"
    for uid, want in [("L1.mlp.n5", ("neurons", 1, 5)), ("L0.attn.h3", ("heads", 0, 3)),
                      ("L1.resid", ("layers", 1, 0)), ("sae.L1.f7", ("sae", 1, 7))]:
        assert parse_unit(uid) == want
    with pytest.raises(IPGError, match="unit id"):
        parse_unit("L1.mlp.x5")
    with pytest.raises(IPGError, match="unknown granularity 'neuron'"):
        get_granularity("neuron", model)
    with pytest.raises(IPGError, match="config key 'layers'"):
        neurons.select_layers([0, 5])
    with pytest.raises(IPGError, match="needs an SAE"):
        get_granularity("sae", model)


def test_neurons_are_swiglu_product(model) -> None:
    gran = get_granularity("neurons", model)
    block = model.model.layers[1]
    got = {}
    h = block.post_attention_layernorm.register_forward_hook(lambda m, a, o: got.setdefault("in", o))
    a = gran.read(1, capture(model, gran, 1))
    h.remove()
    x = got["in"]
    want = block.mlp.act_fn(block.mlp.gate_proj(x)) * block.mlp.up_proj(x)
    assert a.shape == (2, 6, 64, 1) and torch.allclose(a.squeeze(-1), want)


def test_heads_split_o_proj(model) -> None:
    gran = get_granularity("heads", model)
    x = capture(model, gran, 0)
    a = gran.read(0, x)  # [b, pos, heads, head_dim]
    w = model.model.layers[0].self_attn.o_proj.weight  # [d, heads * head_dim]
    per_head = sum(a[:, :, h] @ w[:, h * 8:(h + 1) * 8].T for h in range(4))
    assert a.shape == (2, 6, 4, 8) and torch.allclose(per_head, model.model.layers[0].self_attn.o_proj(x))


def test_layers_read_block_update(model) -> None:
    """A layer's unit is what block l adds to the residual stream: hidden[l+1] - hidden[l]."""
    gran = get_granularity("layers", model)
    with torch.no_grad():
        hidden = model(IDS, output_hidden_states=True).hidden_states
    for layer in (0, 1):
        a = gran.read(layer, capture(model, gran, layer))
        assert a.shape == (2, 6, 1, 32)
        if layer + 1 < len(hidden) - 1:  # the last hidden state is after the final norm
            assert torch.allclose(a[:, :, 0], hidden[layer + 1] - hidden[layer])


def test_scaling_matches_weight_surgery(model) -> None:
    base = logits(model)
    for units in (["L1.mlp.n3", "L0.mlp.n60"], ["L0.attn.h1"], ["L1.resid"]):
        with scale_units(model, units, 1.0):
            assert torch.allclose(logits(model), base)
    # neurons / heads ablated (gamma = 0) == the matching down_proj / o_proj columns zeroed
    surgery = copy.deepcopy(model)
    with torch.no_grad():
        surgery.model.layers[1].mlp.down_proj.weight[:, 3] = 0
        surgery.model.layers[0].self_attn.o_proj.weight[:, 8:16] = 0
    with scale_units(model, ["L1.mlp.n3"], 0.0):
        with scale_units(model, ["L0.attn.h1"], 0.0):
            assert torch.allclose(logits(model), logits(surgery))
    # gamma = 2 on neuron i == doubling column i of down_proj
    with torch.no_grad():
        surgery.model.layers[0].mlp.down_proj.weight[:, 5] *= 2
    with scale_units(model, ["L1.mlp.n3"], 0.0), scale_units(model, ["L0.attn.h1"], 0.0), \
            scale_units(model, ["L0.mlp.n5"], 2.0):
        assert torch.allclose(logits(model), logits(surgery))
    with pytest.raises(IPGError, match="mix granularities"):
        with scale_units(model, ["L1.mlp.n3", "L0.attn.h1"], 2.0):
            pass
    with pytest.raises(IPGError, match="unit index"):
        with scale_units(model, ["L1.mlp.n64"], 2.0):
            pass


def _block_outputs(model, ids=IDS):
    """Every decoder block's (input, output), read with hooks written here."""
    seen = []
    hooks = [b.register_forward_hook(lambda m, a, o: seen.append((a[0].detach(), o.detach())))
             for b in model.model.layers]
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _skipping(model, layers):
    """A copy of the model whose blocks `layers` are identities (the block skipped)."""
    skipped = copy.deepcopy(model)
    for l in layers:
        skipped.model.layers[l].forward = lambda hidden_states, *args, **kwargs: hidden_states
    return skipped


@pytest.mark.parametrize("layer", [0, 1])
def test_layer_scaling_scales_the_block_update(model, layer) -> None:
    """gamma scales what block l adds: out' = in + gamma (out - in); gamma = 0 skips the block,
    also the last one (the final norm does not cancel a scaled update, it did a scaled stream)."""
    (inp, out), = [_block_outputs(model)[layer]]
    seen = []
    block = model.model.layers[layer]
    with scale_units(model, [f"L{layer}.resid"], 3.0):
        h = block.register_forward_hook(lambda m, a, o: seen.append(o.detach()))
        try:
            steered = logits(model)
        finally:
            h.remove()
    assert torch.allclose(seen[0], inp + 3 * (out - inp), atol=1e-12)
    assert not torch.allclose(steered, logits(model), atol=1e-6)
    with scale_units(model, [f"L{layer}.resid"], 0.0):
        assert torch.allclose(logits(model), logits(_skipping(model, [layer])), atol=1e-12)
    with scale_units(model, ["L0.resid", "L1.resid"], 0.0):
        assert torch.allclose(logits(model), logits(_skipping(model, [0, 1])), atol=1e-12)


def test_sae_keeps_reconstruction_error(model) -> None:
    sae = ToySAE(32, 48, 8, layer=0)
    gran = get_granularity("sae", model, sae)
    x = capture(model, gran, 0)
    f = gran.read(0, x)
    assert torch.allclose(gran.write(0, x, f, f), x)  # alpha = 1 / gamma = 1: unchanged
    idx = torch.tensor([f[0, 0, :, 0].argmax().item(), 2])
    got = gran.scale(0, x, idx, 2.5)
    want = x + (1.5 * f[..., idx, 0]) @ sae.W_dec[idx]  # Eq. 4: x + W_dec[P]^T (gamma - 1) f_P
    assert torch.allclose(got, want)
    base = logits(model)
    with scale_units(model, ["sae.L0.f3", "sae.L0.f9"], 1.0, sae=sae):
        assert torch.allclose(logits(model), base)
    with scale_units(model, ["sae.L0.f3"], 4.0, sae=sae):
        assert not torch.allclose(logits(model), base) or f[..., 3, 0].abs().max() == 0
