"""Activation checkpointing, bf16 autocast and the gradient tap (attribution/execution.py, tap.py).

Checkpointing must not change a single score; autocast must stay close to float32 and keep
completeness; the tap must hand over dL/dx without storing it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from ipg.attribution.execution import checkpointed
from ipg.attribution.ipg import IPGConfig, attribute
from ipg.attribution.tap import tap
from ipg.errors import IPGError
from tiny_models import ToySAE, sample_table, tiny_model

GRANS = ["neurons", "heads", "layers", "sae"]


def run(model, table, gran, dtype=torch.float64, **cfg):
    cfg = {"max_residual": None, "m": 8, "chunk": 4, **cfg}
    sae = [ToySAE(32, 48, 8, layer=l, seed=l, dtype=dtype) for l in (0, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attribute(model, table, gran, IPGConfig(**cfg), sae=sae, progress=False)


@pytest.fixture(scope="module")
def table(qwen):
    return sample_table(qwen, n_prompts=2, seed=3)


@pytest.mark.parametrize("gran", GRANS)
@pytest.mark.parametrize("variant", [{}, {"positions": "generated"}, {"multilayer": "onthefly"},
                                     {"multilayer": "separate", "baseline": "mean"}])
def test_checkpointing_layers_changes_no_score(qwen, table, gran, variant) -> None:
    plain = run(qwen, table, gran, **variant)
    ckpt = run(qwen, table, gran, checkpoint_layers=True, **variant)
    assert np.abs(plain.per_prompt).max() > 0
    np.testing.assert_allclose(ckpt.per_prompt, plain.per_prompt, rtol=1e-12, atol=1e-15)
    assert ckpt.metrics["phi_delta"] == pytest.approx(plain.metrics["phi_delta"], rel=1e-12)


def test_checkpointing_recomputes_layers_and_saves_less_for_backward() -> None:
    model = tiny_model("qwen2", init=0.15, layers=4)
    table = sample_table(model, n_prompts=1, seed=3)
    result = {}
    for on in (False, True):
        saved, calls = [0], [0]

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved[0] += t.numel() * t.element_size()
            return t

        # a layer's forward is counted at q_proj: in joint mode the path forwards skip the
        # MLP's gate/up/act (Neurons.bypass), so act_fn runs in the recording only
        hook = model.model.layers[2].self_attn.q_proj.register_forward_hook(
            lambda *_: calls.__setitem__(0, calls[0] + 1))
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                run(model, table, "neurons", m=4, chunk=4, checkpoint_layers=on)
        finally:
            hook.remove()
        result[on] = (saved[0], calls[0])
    # record + alpha=0 + one path chunk = 3 forwards; checkpointing recomputes once in backward
    assert result[False][1] == 3 and result[True][1] == 4
    assert result[True][0] < 0.5 * result[False][0], result  # only each layer's inputs kept


def test_checkpointed_restores_the_layers() -> None:
    model = tiny_model("qwen2", layers=2)
    layer = model.model.layers[0]
    with checkpointed(model.model.layers):
        assert "forward" in layer.__dict__
    assert "forward" not in layer.__dict__


@pytest.fixture(scope="module")
def qwen32():
    return tiny_model("qwen2", init=0.15, dtype=torch.float32)


@pytest.mark.parametrize("gran", ["neurons", "heads", "layers"])
def test_bf16_autocast_is_close_to_float32_and_complete(qwen32, gran) -> None:
    table = sample_table(qwen32, n_prompts=2, seed=3)
    seen: list[torch.dtype] = []
    hook = qwen32.model.layers[0].mlp.down_proj.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].dtype))
    try:
        full = run(qwen32, table, gran, dtype=torch.float32, m=32, chunk=8)
        n_full = len(seen)
        half = run(qwen32, table, gran, dtype=torch.float32, m=32, chunk=8, autocast="bfloat16")
    finally:
        hook.remove()
    assert set(seen[:n_full]) == {torch.float32} and set(seen[n_full:]) == {torch.bfloat16}
    a, b = full.per_prompt.ravel(), half.per_prompt.ravel()
    assert not np.array_equal(a, b)  # bf16 really ran
    assert np.corrcoef(a, b)[0, 1] > 0.999
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()
    # completeness holds for the bf16 function (float32 sums): well under the 5% default bound
    assert half.metrics["completeness_residual_pooled"] < 0.03
    assert half.metrics["config"]["autocast"] == "bfloat16"


def test_bad_execution_keys_are_one_line_errors() -> None:
    with pytest.raises(IPGError, match="'autocast' = 'fp8'; allowed: none, bfloat16"):
        IPGConfig(autocast="fp8")
    with pytest.raises(IPGError, match="'checkpoint_layers' must be true or false"):
        IPGConfig(checkpoint_layers="yes")


def test_tap_hands_over_the_gradient_without_storing_it() -> None:
    x = torch.randn(3, 4, dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64)
    got = []
    y = tap(x, got.append)  # x carries no graph: the tap makes y part of one
    assert torch.equal(y, x) and y.requires_grad
    (y.sin() * w).sum().backward()
    torch.testing.assert_close(got[0], x.cos() * w)  # d/dy sum(sin(y) w)
    assert x.grad is None

    leaf = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    mid = leaf * 2
    seen = []
    (tap(mid, seen.append) ** 2).sum().backward()  # the gradient flows on into the graph
    torch.testing.assert_close(seen[0], 2 * mid.detach())
    torch.testing.assert_close(leaf.grad, 2 * 2 * mid.detach())


@pytest.mark.parametrize("gran, producer", [("neurons", "mlp.gate_proj"), ("heads", "self_attn.q_proj"),
                                            ("layers", "mlp.down_proj")])
def test_joint_path_forwards_skip_the_replaced_computation(qwen, gran, producer) -> None:
    """Joint mode replaces the hooked tensor by a' + alpha (a - a') of the recording, so its
    producer runs only in the recording forward (once per prompt); on-the-fly mode reads the
    current forward's values and must run it in every forward (record, alpha = 0, path)."""
    table = sample_table(qwen, n_prompts=1, seed=3)
    module = qwen.model.layers[0].get_submodule(producer)
    counts = {}
    for mode in ("joint", "onthefly"):
        calls = [0]
        hook = module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        try:
            run(qwen, table, gran, m=4, chunk=4, multilayer=mode)
        finally:
            hook.remove()
        counts[mode] = calls[0]
    assert counts == {"joint": 1, "onthefly": 3}


@pytest.mark.parametrize("gran", GRANS)
@pytest.mark.parametrize("variant", [{}, {"positions": "generated", "baseline": "mean"},
                                     {"multilayer": "separate", "baseline": "mean"}])
def test_trajectory_groups_add_up_to_the_whole_prompt(qwen, table, gran, variant) -> None:
    """Phi is a sum over a prompt's trajectories: attributing them in groups of 1 or 2 gives
    the same scores and the same completeness target as all G at once."""
    whole = run(qwen, table, gran, **variant)
    for size in (1, 2):
        grouped = run(qwen, table, gran, traj_chunk=size, **variant)
        np.testing.assert_allclose(grouped.per_prompt, whole.per_prompt, rtol=1e-9,
                                   atol=1e-12 * np.abs(whole.per_prompt).max())
        assert grouped.metrics["phi_delta"] == pytest.approx(whole.metrics["phi_delta"], rel=1e-10)
        assert grouped.metrics["phi_h"] == pytest.approx(whole.metrics["phi_h"], rel=1e-10)


def test_trajectory_groups_bad_values_are_one_line_errors() -> None:
    with pytest.raises(IPGError, match="'traj_chunk' must be an integer >= 1 or null, got 0"):
        IPGConfig(traj_chunk=0)
    with pytest.raises(IPGError, match="'importance' normalises over all G"):
        IPGConfig(path="importance", traj_chunk=2)
