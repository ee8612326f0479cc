"""The architecture table (ipg.models.architecture) on a tiny random model of every supported
architecture: hooks read the tensors the model really computes, IPG is complete, steering acts,
and the engine's placeholder forwards (bypass) change nothing."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
import transformers as T
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parents[1] / "attribution"))
from tiny_models import sample_table  # noqa: E402

from ipg.attribution.ipg import IPGConfig, attribute  # noqa: E402
from ipg.core.units import decoder_layers, edit_activations, get_granularity, scale_units  # noqa: E402
from ipg.errors import IPGError  # noqa: E402
from ipg.models.architecture import ARCHITECTURES, architecture  # noqa: E402
from ipg.sae import collect_residual  # noqa: E402

V, H, FF, L, NH = 20, 32, 64, 2, 4
COMMON = dict(vocab_size=V, num_hidden_layers=L, num_attention_heads=NH, max_position_embeddings=64,
              bos_token_id=1, eos_token_id=1, pad_token_id=0, tie_word_embeddings=False)
CONFIGS = {
    "llama": (T.LlamaConfig, dict(hidden_size=H, intermediate_size=FF, num_key_value_heads=2)),
    "qwen2": (T.Qwen2Config, dict(hidden_size=H, intermediate_size=FF, num_key_value_heads=2)),
    "qwen3": (T.Qwen3Config, dict(hidden_size=H, intermediate_size=FF, num_key_value_heads=2, head_dim=8)),
    "mistral": (T.MistralConfig, dict(hidden_size=H, intermediate_size=FF, num_key_value_heads=2)),
    "gemma": (T.GemmaConfig, dict(hidden_size=H, intermediate_size=FF, num_key_value_heads=2, head_dim=8)),
    "phi3": (T.Phi3Config, dict(hidden_size=H, intermediate_size=FF, num_key_value_heads=2)),
    "gpt2": (T.GPT2Config, dict(n_embd=H, n_inner=FF, n_positions=64, resid_pdrop=0.0,
                                embd_pdrop=0.0, attn_pdrop=0.0)),
    "gpt_neox": (T.GPTNeoXConfig, dict(hidden_size=H, intermediate_size=FF)),
}
# where the neurons / heads are, written out by hand (independent of the table)
EXPECTED = {
    **{a: ("model.layers.{l}.mlp.down_proj", "model.layers.{l}.self_attn.o_proj")
       for a in ("llama", "qwen2", "qwen3", "mistral", "gemma", "phi3")},
    "gpt2": ("transformer.h.{l}.mlp.c_proj", "transformer.h.{l}.attn.c_proj"),
    "gpt_neox": ("gpt_neox.layers.{l}.mlp.dense_4h_to_h", "gpt_neox.layers.{l}.attention.dense"),
}
IDS = torch.tensor([[3, 5, 7, 2, 9, 11], [4, 4, 8, 1, 6, 2]])


def tiny(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cls, kw = CONFIGS[arch]
    config = cls(**COMMON, **kw, initializer_range=0.2)
    config._attn_implementation = "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = T.AutoModelForCausalLM.from_config(config)
    model = model.to(torch.float64).eval().requires_grad_(False)
    _redraw_pad_embedding(model)
    return model


def _redraw_pad_embedding(model: torch.nn.Module) -> None:
    """HF initialises the embedding row of pad_token_id (padding_idx) to exact zeros, and the
    sampler draws that token. A trained checkpoint has no zero row; with one, the residual
    stream at that token is alpha * (what layer 0 writes) along a zero-baseline path, the next
    RMSNorm turns that into a step of width ~sqrt(eps) at alpha = 0, and no quadrature resolves
    it (test_zero_embedding_breaks_completeness; docs/method.md, "Known failure modes")."""
    emb = model.get_input_embeddings().weight
    gen = torch.Generator().manual_seed(1)
    emb[COMMON["pad_token_id"]] = 0.2 * torch.randn(emb.shape[1], generator=gen, dtype=emb.dtype)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def arch_model(request):
    torch.set_num_threads(1)
    return request.param, tiny(request.param)


def mlp_activation(arch: str, mlp: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The MLP's hidden activation computed from its input x, from the weights (by hand)."""
    if arch == "gpt2":
        return mlp.act(x @ mlp.c_fc.weight + mlp.c_fc.bias)  # Conv1D: weight [in, out]
    if arch == "gpt_neox":
        return mlp.act(F.linear(x, mlp.dense_h_to_4h.weight, mlp.dense_h_to_4h.bias))
    if arch == "phi3":
        gate, up = F.linear(x, mlp.gate_up_proj.weight).chunk(2, dim=-1)
        return mlp.activation_fn(gate) * up
    return mlp.act_fn(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight)


def capture(model, gran, layer):
    got = {}
    with edit_activations(gran, {layer: lambda x: got.setdefault("x", x.detach())}):
        model(IDS)
    return got["x"]


def test_every_listed_architecture_is_tested() -> None:
    assert set(CONFIGS) <= set(ARCHITECTURES)
    assert {"llama", "qwen2", "qwen3", "mistral", "gemma", "phi3", "gpt2", "gpt_neox"} <= set(ARCHITECTURES)


def test_modules_are_where_the_model_keeps_them(arch_model) -> None:
    arch, model = arch_model
    names = {m: n for n, m in model.named_modules()}
    assert len(decoder_layers(model)) == L
    neurons, heads = get_granularity("neurons", model), get_granularity("heads", model)
    for l in range(L):
        assert names[neurons.module(l)] == EXPECTED[arch][0].format(l=l)
        assert names[heads.module(l)] == EXPECTED[arch][1].format(l=l)
    assert neurons.unit_shape(0) == (FF, 1)
    assert heads.unit_shape(0) == (NH, H // NH)
    entry = architecture(model)
    assert model.get_output_embeddings() is model.get_submodule(entry.lm_head)
    assert isinstance(model.get_submodule(entry.final_norm), torch.nn.Module)


def test_neuron_hook_reads_the_mlp_activation(arch_model) -> None:
    arch, model = arch_model
    layer = 1
    mlp = getattr(decoder_layers(model)[layer], architecture(model).mlp)
    seen = {}
    handle = mlp.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].detach()))
    try:
        hooked = capture(model, get_granularity("neurons", model), layer)
    finally:
        handle.remove()
    torch.testing.assert_close(hooked, mlp_activation(arch, mlp, seen["x"]))


def test_layer_hook_reads_the_block_update(arch_model) -> None:
    """A layer's unit is what block 0 adds to the residual stream: HF's hidden state after
    the block minus the one before it (docs/method.md, "Normalisation cancels ...")."""
    _, model = arch_model
    hooked = capture(model, get_granularity("layers", model), 0)
    hidden = model(IDS, output_hidden_states=True).hidden_states  # [embeddings, block 0, ...]
    torch.testing.assert_close(hooked, hidden[1] - hidden[0])


def test_head_hook_sums_to_the_attention_output(arch_model) -> None:
    """o_proj(x) = sum_h W_o[:, head h] x_h + b: the per-head split of the hooked input
    reconstructs the projection's output."""
    _, model = arch_model
    heads = get_granularity("heads", model)
    proj = heads.module(0)
    x = capture(model, heads, 0)
    a = heads.read(0, x)  # [b, pos, n_heads, head_dim]
    weight = proj.weight.T if type(proj).__name__ == "Conv1D" else proj.weight  # [out, in]
    per_head = torch.einsum("bphd,ohd->bpo", a, weight.unflatten(1, (NH, H // NH)))
    bias = proj.bias if proj.bias is not None else 0
    torch.testing.assert_close(per_head + bias, proj(x))


@pytest.mark.parametrize("gran", ["neurons", "heads", "layers"])
def test_bypass_changes_nothing(arch_model, gran) -> None:
    """With an edit that replaces x entirely, skipping x's producer gives the same logits."""
    _, model = arch_model
    g = get_granularity(gran, model)
    x = capture(model, g, 1)
    replacement = torch.randn_like(x)
    outs = []
    for skip in (False, True):
        with edit_activations(g, {1: lambda _x: replacement}, skip_producer=skip):
            outs.append(model(IDS).logits)
    torch.testing.assert_close(outs[0], outs[1])


@pytest.mark.parametrize("gran", ["neurons", "heads"])
def test_ipg_is_complete(arch_model, gran) -> None:
    _, model = arch_model
    table = sample_table(model, n_prompts=2, G=4, max_new=5, seed=1)
    res = []
    for m in (16, 64):
        mt = attribute(model, table, gran, IPGConfig(m=m, chunk=32, max_residual=None),
                       progress=False).metrics
        assert abs(mt["phi_delta"]) > 1e-6  # something to attribute
        res.append(mt["completeness_residual_pooled"])
    # sum_i IPG_i = Phi(h) - Phi(h') up to the quadrature error, which shrinks with m
    # (init 0.2 makes the path strongly non-linear; 0.8% is the worst case, Qwen2 heads)
    assert res[1] < res[0] or res[1] < 1e-5, res  # 1e-5: float32 norms inside HF layers
    assert res[1] < 2e-2, res


def test_zero_embedding_breaks_completeness() -> None:
    """The cause of the old Qwen3 heads failure: trajectories that contain token 0 whose
    embedding row is zero (HF's padding_idx init). Layer-0 heads, zero baseline: with the zero
    row the residual does not shrink with m; with any non-zero row it converges (1e-6 at m=64)."""
    torch.set_num_threads(1)
    model = tiny("qwen3")
    table = sample_table(model, n_prompts=2, G=4, max_new=5, seed=1)
    assert any(0 in g for g in table.gen_ids)  # the sampler drew the pad token

    def residual(m: int) -> float:
        cfg = IPGConfig(m=m, chunk=64, max_residual=None, layers=[0])
        return attribute(model, table, "heads", cfg, progress=False).metrics[
            "completeness_residual_pooled"]

    converged = [residual(16), residual(64)]
    model.get_input_embeddings().weight[COMMON["pad_token_id"]] = 0.0
    spiky = [residual(16), residual(64)]
    assert converged[1] < 1e-2 * converged[0] and converged[1] < 1e-4, converged
    assert spiky[1] > 1e-2 and spiky[1] > 100 * converged[1], spiky


def test_steering_changes_outputs(arch_model) -> None:
    _, model = arch_model
    base = model(IDS).logits
    units = [f"L1.mlp.n{i}" for i in range(0, FF, 2)]
    with scale_units(model, units, 1.0):
        torch.testing.assert_close(model(IDS).logits, base)
    with scale_units(model, units, 0.0):
        assert (model(IDS).logits - base).abs().max() > 1e-3
    with scale_units(model, ["L0.attn.h1"], 0.0):
        assert (model(IDS).logits - base).abs().max() > 1e-3


def test_sae_collector_reads_each_block_output(arch_model) -> None:
    """collect_residual = HF's hidden_states[l + 1] (the last block: the final norm's input),
    at the non-pad positions of a right-padded batch. (Left padding is checked on Qwen2 in
    tests/test_sae.py: with eager attention a fully masked pad row is NaN in Gemma, and the
    NaN reaches the real tokens of that row from block 1 on, in HF's own hidden states too.)"""
    _, model = arch_model
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    seen = []
    norm = model.get_submodule(architecture(model).final_norm)
    handle = norm.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        hs = model(IDS, attention_mask=mask, position_ids=pos, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    want = [hs[1], seen[0]]  # block 0's output, block 1's (= L - 1) before the final norm
    for layer in range(L):
        got = collect_residual(model, [(IDS, mask)], layer)
        assert got.shape == (int(mask.sum()), H) and not got.isnan().any()
        torch.testing.assert_close(got, want[layer][mask.bool()].float())


def test_benches_find_the_neurons(arch_model) -> None:
    """The benchmark's naive per-token loop and captum's LayerIntegratedGradients (both
    independent of the engine) give the engine's neuron scores on every architecture."""
    from ipg.bench.captum_ref import captum_ipg
    from ipg.bench.naive import naive_ipg
    from ipg.bench.workload import dense_batch, keep_layers, synthetic_table

    arch, model = arch_model
    table = synthetic_table(V, n_traj=3, prompt_len=4, gen_len=3, seed=3)
    att = attribute(model, table, "neurons", IPGConfig(m=3, temperature=1.0, max_residual=None),
                    progress=False)
    got = torch.tensor(att.per_prompt[0], dtype=torch.float64)  # [L * FF]
    assert got.shape == (L * FF,)
    for want in (naive_ipg(model, dense_batch(table), 3), captum_ipg(model, dense_batch(table), 3, 3)):
        assert float((got - want).abs().max() / want.abs().max()) < 1e-6
    cut = tiny(arch)
    keep_layers(cut, 1)
    assert len(decoder_layers(cut)) == 1 and cut(IDS).logits.shape == (2, IDS.shape[1], V)


def test_unsupported_architecture_is_one_line() -> None:
    config = T.BloomConfig(vocab_size=V, hidden_size=H, n_layer=1, n_head=NH)
    model = T.BloomForCausalLM(config)
    with pytest.raises(IPGError, match="'bloom'.*not supported; supported: .*gpt2"):
        decoder_layers(model)
