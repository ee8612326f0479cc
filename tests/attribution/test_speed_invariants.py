"""The engine's fast code paths give what the plain ones give.

- the fused LM-head log-prob (keeping or recomputing the softmax) = checkpointed autograd,
  and the two routes give the same bits (the budget that picks one never changes a score);
- the temperature applied to the hidden state (bias-free head) = applied to the logits;
- the joint-mode (a - a') kept from a chunk's forward for its backward = rebuilt there;
- the broadcast prompt cache = a deep copy repeated over the batch, and leaves the prompt's
  cache untouched;
- the joint-mode path hooks (recorded terms cached per prompt, mask shared by the path
  points) = the generic hooks with the mask repeated per row.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from ipg.attribution import surrogate as sur
from ipg.attribution.path import PathHooks
from ipg.attribution.reference import reference_activations
from ipg.core.units import Granularity, get_granularity
from ipg.errors import IPGError


def _batch():
    return sur.build_batch([3, 4, 5, 6], [[7, 8, 9], [10, 11], [12, 13, 14]])


@pytest.mark.parametrize("keep", [True, False])
def test_fused_head_matches_checkpointed_autograd(qwen, keep, monkeypatch) -> None:
    batch = _batch()

    def grad_of(fused: bool):
        monkeypatch.setattr(sur, "_fused_head", lambda head: fused)
        monkeypatch.setattr(sur, "fits", lambda n_bytes, device: keep)
        leaf = qwen.get_input_embeddings()(batch.input_ids).detach().requires_grad_(True)
        out = qwen.model(inputs_embeds=leaf, attention_mask=batch.attention_mask, use_cache=False)
        hidden = out.last_hidden_state
        src = hidden[:, batch.prompt_len - 1: batch.prompt_len - 1 + batch.targets.shape[1]]
        head = qwen.get_output_embeddings()
        if fused:
            lp = sur._TargetLogProb.apply(src, batch.targets, head.weight, head.bias, 0.7, keep)
        else:
            lp = sur._chunk_logprobs(src, batch.targets, head, 0.7)
        (lp * batch.target_mask).sum().backward()
        return lp.detach(), leaf.grad

    params = [(p, p.requires_grad) for p in qwen.parameters()]
    for p, _ in params:
        p.requires_grad_(False)
    try:
        lp_f, g_f = grad_of(True)
        lp_c, g_c = grad_of(False)
    finally:
        for p, flag in params:
            p.requires_grad_(flag)
    assert torch.allclose(lp_f, lp_c, rtol=1e-12, atol=1e-12)
    assert torch.allclose(g_f, g_c, rtol=1e-10, atol=1e-14)


def test_batch_cache_equals_deep_copy_and_keeps_the_prompt(qwen) -> None:
    batch = _batch()
    prefix = sur.encode_prompt(qwen, batch)
    before = [(l.keys.clone(), l.values.clone()) for l in prefix.cache.layers]
    with torch.no_grad():
        fast = sur.sequence_logprobs(qwen, batch, 1.0, prefix=prefix)
        again = sur.sequence_logprobs(qwen, batch.repeat(2), 1.0, prefix=prefix)
        slow_cache = copy.deepcopy(prefix.cache)
        slow_cache.batch_repeat_interleave(batch.size)
        view = sur._batch_cache(prefix.cache, batch.size)
    for layer, (k, v), new in zip(prefix.cache.layers, before, view.layers):
        assert torch.equal(layer.keys, k) and torch.equal(layer.values, v)
        assert layer.keys.shape[0] == 1
    for a, b in zip(slow_cache.layers, view.layers):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    assert torch.allclose(fast.repeat(2), again, rtol=1e-12, atol=1e-12)
    plain = sur.sequence_logprobs(qwen, batch, 1.0)
    assert torch.allclose(fast, plain, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("gran_name", ["neurons", "heads", "layers"])
def test_joint_fast_hooks_equal_generic_hooks(qwen, gran_name, monkeypatch) -> None:
    batch = _batch()
    gran = get_granularity(gran_name, qwen)
    layers = gran.select_layers(None)
    base = reference_activations("mean" if gran_name == "layers" else "zero", gran, layers,
                                 torch.float64, torch.device("cpu"),
                                 {l: (torch.full(gran.unit_shape(l), 0.1, dtype=torch.float64),
                                      torch.ones(gran.unit_shape(l), dtype=torch.float64))
                                  for l in layers})
    m_pos = batch.gen_mask
    c = 3
    alphas = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64).repeat_interleave(batch.size)

    def run(fast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not fast:  # a write override disables the fast path (as for SAE latents)
            monkeypatch.setattr(type(gran), "write", lambda self, l, x, a_new, a:
                                Granularity.write(self, l, x, a_new, a))
        hooks = PathHooks(gran, layers, base)
        params = [(p, p.requires_grad) for p in qwen.parameters()]
        for p, _ in params:
            p.requires_grad_(False)
        try:
            with torch.no_grad(), hooks.record():
                sur.sequence_logprobs(qwen, batch, 1.0)
            mask = m_pos if fast else m_pos.repeat(c, 1)
            with torch.no_grad(), hooks.interpolate(torch.zeros(batch.size), m_pos, "joint", False):
                lp0 = sur.sequence_logprobs(qwen, batch, 1.0)
            with hooks.interpolate(alphas, mask, "joint", grad=True):
                lp = sur.sequence_logprobs(qwen, batch.repeat(c), 1.0)
                (lp * torch.linspace(-1, 1, lp.shape[0], dtype=lp.dtype)).sum().backward()
        finally:
            for p, flag in params:
                p.requires_grad_(flag)
            monkeypatch.undo()
        return torch.cat([lp0, lp.detach()]), hooks.scores()

    lp_fast, s_fast = run(True)
    lp_slow, s_slow = run(False)
    assert torch.allclose(lp_fast, lp_slow, rtol=1e-12, atol=1e-12)
    assert torch.allclose(s_fast, s_slow, rtol=1e-9, atol=1e-12)
    assert s_fast.abs().max() > 0


def _frozen_grads(qwen, fn):
    params = [(p, p.requires_grad) for p in qwen.parameters()]
    for p, _ in params:
        p.requires_grad_(False)
    try:
        return fn()
    finally:
        for p, flag in params:
            p.requires_grad_(flag)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_kept_and_recomputed_softmax_give_the_same_bits(qwen, temperature, monkeypatch) -> None:
    batch = _batch()

    def run(keep: bool):
        monkeypatch.setattr(sur, "fits", lambda n_bytes, device: keep)
        leaf = qwen.get_input_embeddings()(batch.input_ids).detach().requires_grad_(True)
        hidden = qwen.model(inputs_embeds=leaf, attention_mask=batch.attention_mask,
                            use_cache=False).last_hidden_state
        src = hidden[:, batch.prompt_len - 1: batch.prompt_len - 1 + batch.targets.shape[1]]
        head = qwen.get_output_embeddings()
        lp = sur._TargetLogProb.apply(src, batch.targets, head.weight, head.bias, temperature,
                                      sur.fits(0, src.device))
        (lp * batch.target_mask).sum().backward()
        return lp.detach(), leaf.grad

    lp_k, g_k = _frozen_grads(qwen, lambda: run(True))
    lp_r, g_r = _frozen_grads(qwen, lambda: run(False))
    assert torch.equal(lp_k, lp_r) and torch.equal(g_k, g_r)
    assert g_k.abs().max() > 0


def test_fused_backward_refuses_a_second_pass(qwen) -> None:
    batch = _batch()
    head = qwen.get_output_embeddings()
    hidden = torch.randn(batch.size, batch.targets.shape[1], head.in_features,
                         dtype=head.weight.dtype, requires_grad=True)
    lp = sur._TargetLogProb.apply(hidden, batch.targets, head.weight.detach(), None, 1.0, True)
    lp.sum().backward(retain_graph=True)
    with pytest.raises(IPGError, match="backpropagated twice"):
        lp.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_temperature_on_the_hidden_state_equals_it_on_the_logits(dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(12, 16, generator=gen, dtype=dtype)
    weight = torch.randn(300, 16, generator=gen, dtype=dtype)
    bias = torch.randn(300, generator=gen, dtype=dtype)
    t = 0.7
    want = (hidden @ weight.T) / t
    got = sur._linear_logits(hidden, weight, None, t)
    tol = 1e-5 if dtype == torch.float32 else 1e-13  # a few ulp of |logits| ~ 10
    assert torch.allclose(got, want, rtol=tol, atol=tol)
    # with a bias the logits themselves are divided (the same operations as before)
    assert torch.equal(sur._linear_logits(hidden, weight, bias, t),
                       torch.nn.functional.linear(hidden, weight, bias) / t)
    # a bf16 hidden state is not divided (one more rounding): the logits are
    h16, w16 = hidden.bfloat16(), weight.bfloat16()
    assert torch.equal(sur._linear_logits(h16, w16, None, t),
                       torch.nn.functional.linear(h16, w16).float() / t)


def test_joint_diff_kept_per_chunk_gives_the_same_bits(qwen, monkeypatch) -> None:
    import ipg.attribution.path as path_mod

    batch = _batch()
    gran = get_granularity("neurons", qwen)
    layers = gran.select_layers(None)
    base = reference_activations("zero", gran, layers, torch.float64, torch.device("cpu"), None)
    alphas = torch.tensor([0.3, 0.8], dtype=torch.float64).repeat_interleave(batch.size)

    def run(checkpointed: bool) -> torch.Tensor:
        monkeypatch.setattr(path_mod, "layers_checkpointed", lambda: checkpointed)
        hooks = PathHooks(gran, layers, base)
        with torch.no_grad(), hooks.record():
            sur.sequence_logprobs(qwen, batch, 1.0)
        with hooks.interpolate(alphas, batch.gen_mask, "joint", grad=True):
            lp = sur.sequence_logprobs(qwen, batch.repeat(2), 0.7)
            (lp * torch.linspace(-1, 1, lp.shape[0], dtype=lp.dtype)).sum().backward()
        return hooks.scores()

    kept = _frozen_grads(qwen, lambda: run(False))
    rebuilt = _frozen_grads(qwen, lambda: run(True))
    assert torch.equal(kept, rebuilt) and kept.abs().max() > 0


def _consumers(model, gran_name: str) -> list[torch.nn.Module]:
    gran = get_granularity(gran_name, model)
    return [gran.module(layer) for layer in gran.select_layers(None)]


@pytest.mark.parametrize("gran_name", ["neurons", "heads"])
@pytest.mark.parametrize("variant", [{}, {"positions": "generated", "baseline": "mean"},
                                     {"quadrature": "adaptive", "tol": 1e-3, "m_max": 17},
                                     {"checkpoint_layers": True}])
def test_linear_route_equals_the_route_through_the_module(qwen, gran_name, variant) -> None:
    """Joint mode: the consumer's output on the path, y - (1 - alpha) dy, and its IG terms
    (a - a') * ((sum_k g_k) W) equal running the consumer (down_proj / o_proj) on every path
    point; a consumer with a hook of its own is run (the route through the module); a plain
    one runs only in the recording forward."""
    from ipg.attribution.ipg import IPGConfig, attribute
    from tiny_models import sample_table

    table = sample_table(qwen, n_prompts=2, seed=5)
    cfg = IPGConfig(m=6, chunk=3, max_residual=None, **variant)
    consumers = _consumers(qwen, gran_name)
    calls = [0]

    def counted(module):
        own = module.forward

        def forward(x):
            calls[0] += 1
            return own(x)
        return forward

    def run(config):
        calls[0] = 0
        for module in consumers:  # an instance-level forward keeps the module a plain nn.Linear
            module.forward = counted(module)
        try:
            return attribute(qwen, table, gran_name, config, progress=False), calls[0]
        finally:
            for module in consumers:
                del module.forward

    linear, n_calls = run(cfg)
    if "quadrature" not in variant:  # the consumers run in no path forward: not more with m
        assert n_calls == run(dataclasses.replace(cfg, m=12))[1] > 0
    handles = [module.register_forward_hook(lambda *_: None) for module in consumers]
    try:
        through = attribute(qwen, table, gran_name, cfg, progress=False)
    finally:
        for handle in handles:
            handle.remove()
    np.testing.assert_allclose(linear.per_prompt, through.per_prompt, rtol=1e-9,
                               atol=1e-12 * np.abs(through.per_prompt).max())
    assert np.abs(linear.per_prompt).max() > 0
    assert linear.metrics["path_points"] == through.metrics["path_points"]


def test_linear_route_under_bf16_autocast_stays_close(qwen) -> None:
    """Under bf16 autocast the route computes y and dy in float32 (the module would round
    its output to bf16): scores stay within bf16 rounding of the route through the module."""
    from ipg.attribution.ipg import IPGConfig, attribute
    from tiny_models import sample_table

    model = tiny_model_float32(qwen)
    table = sample_table(model, n_prompts=2, seed=5)
    cfg = IPGConfig(m=6, chunk=3, max_residual=None, autocast="bfloat16")
    consumers = _consumers(model, "neurons")
    linear = attribute(model, table, "neurons", cfg, progress=False).per_prompt
    handles = [module.register_forward_hook(lambda *_: None) for module in consumers]
    try:
        through = attribute(model, table, "neurons", cfg, progress=False).per_prompt
    finally:
        for handle in handles:
            handle.remove()
    scale = np.abs(through).max()
    assert scale > 0
    assert np.abs(linear - through).max() <= 2e-2 * scale


def tiny_model_float32(model):
    return copy.deepcopy(model).float()
