"""IPG against captum's IntegratedGradients (an independent IG implementation) on the same
surrogate Phi(a) = (1/G) sum_j A_j log pi(tau_j; a), written here from scratch: full-vocab
logits of the whole model, log_softmax(logits / T), the generated tokens picked by hand."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from ipg.attribution.ipg import IPGConfig, attribute
from tiny_models import ToySAE, sample_table

T = 0.8


def surrogate(model, table):
    """score() -> Phi of the current forward (whatever hooks are installed), a 0-d tensor."""
    rows = table.sort_values("sample_id")
    prompt, gens = list(rows["prompt_ids"].iloc[0]), [list(g) for g in rows["gen_ids"]]
    r = torch.tensor(rows["reward_accuracy"].to_numpy(), dtype=torch.float64)
    g = len(r)
    adv = torch.stack([r[j] - (r.sum() - r[j]) / (g - 1) for j in range(g)])  # leave-one-out
    width = len(prompt) + max(map(len, gens))
    ids = torch.zeros(g, width, dtype=torch.long)
    mask = torch.zeros(g, width, dtype=torch.long)
    for j, gen in enumerate(gens):
        ids[j, : len(prompt) + len(gen)] = torch.tensor(prompt + gen)
        mask[j, : len(prompt) + len(gen)] = 1

    def score():
        logp = torch.log_softmax(model(ids, attention_mask=mask).logits / T, dim=-1)
        total = 0.0
        for j, gen in enumerate(gens):
            for t, tok in enumerate(gen):
                total = total + adv[j] / g * logp[j, len(prompt) + t - 1, tok]
        return total

    return score


def _install(module, hook, repl):
    """Replace the hooked tensor by repl: a block's input / output, or its update (in + repl)."""
    if hook == "pre":
        return module.register_forward_pre_hook(lambda m, args: (repl,))
    if hook == "update":
        return module.register_forward_hook(lambda m, args, o: args[0] + repl)
    return module.register_forward_hook(lambda m, args, o: repl)


def _capture(model, table, module, hook):
    """The hooked tensor on the unmodified forward (for "update": block output - input)."""
    captured = {}
    if hook == "pre":
        h = module.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
    elif hook == "update":
        h = module.register_forward_hook(lambda m, args, o: captured.setdefault("x", o - args[0]))
    else:
        h = module.register_forward_hook(lambda m, args, o: captured.setdefault("x", o))
    with torch.no_grad():
        surrogate(model, table)()
    h.remove()
    return captured["x"].detach()


def surrogate_of_activation(model, table, module, hook, reshape, a_to_x):
    """f(a [k, ...]) -> Phi [k]: the hooked tensor replaced by a_to_x(a[k]) for each k."""
    score = surrogate(model, table)

    def phi(a):
        out = []
        for k in range(a.shape[0]):
            h = _install(module, hook, a_to_x(a[k]))
            out.append(score())
            h.remove()
        return torch.stack(out)

    return phi, reshape(_capture(model, table, module, hook))


@pytest.mark.parametrize("arch, gran, layer", [
    ("qwen", "neurons", 1), ("qwen", "heads", 0), ("qwen", "layers", 0), ("qwen", "layers", 1),
    ("qwen", "sae", 1), ("llama", "neurons", 0), ("llama", "heads", 1), ("llama", "layers", 1),
])
def test_ipg_equals_captum_integrated_gradients(arch, gran, layer, request) -> None:
    model = request.getfixturevalue(arch)  # Qwen2 or Llama
    table = sample_table(model, n_prompts=1, G=4, temperature=T, seed=11)
    blocks = model.model.layers
    sae = ToySAE(32, 48, 8, layer=1)
    if gran == "neurons":
        module, hook, reshape, to_x = blocks[layer].mlp.down_proj, "pre", (lambda x: x), (lambda a: a)
    elif gran == "heads":
        module, hook, reshape, to_x = blocks[layer].self_attn.o_proj, "pre", (lambda x: x), (lambda a: a)
    elif gran == "layers":
        module, hook, reshape, to_x = blocks[layer], "update", (lambda x: x), (lambda a: a)
    else:  # latents f; residual = x - decode(f(x)) + decode(f_path)
        x_ref = {}
        module, hook = blocks[layer], "post"

        def reshape(x):
            x_ref["x"] = x
            return sae.encode(x).detach()
        to_x = lambda f: x_ref["x"] - sae.decode(sae.encode(x_ref["x"])) + sae.decode(f)  # noqa: E731
    phi, a = surrogate_of_activation(model, table, module, hook, reshape, to_x)
    m = 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ig = IntegratedGradients(phi)
        want = ig.attribute(a.unsqueeze(0), baselines=torch.zeros_like(a).unsqueeze(0),
                            n_steps=m, method="gausslegendre")[0]  # [G, pos, width]
    want = want.detach().sum(dim=(0, 1))  # over trajectories and positions -> per coordinate
    if gran == "heads":
        want = want.view(4, 8).sum(-1)  # a head sums its head_dim coordinates
    elif gran == "layers":
        want = want.sum().view(1)
    att = attribute(model, table, gran, IPGConfig(layers=[layer], m=m, chunk=m, max_residual=None),
                    sae=sae, progress=False)
    got = torch.tensor(att.per_prompt[0], dtype=torch.float64)
    scale = want.abs().max()
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(scale)), (got[:5], want[:5])
    rel = float((got - want).abs().max() / scale)
    print(arch, gran, "max relative deviation from captum:", f"{rel:.1e}")
    assert np.isclose(att.metrics["sum_scores"], float(want.sum()), rtol=1e-4)


@pytest.mark.parametrize("arch", ["qwen", "llama"])
def test_layers_joint_equals_captum_on_every_block_update(arch, request) -> None:
    """Joint mode over every layer = IG of Phi(u_0, u_1) where block l outputs in_l + u_l,
    with the zero baseline (every block skipped); captum attributes both inputs at once."""
    model = request.getfixturevalue(arch)
    table = sample_table(model, n_prompts=1, G=4, temperature=T, seed=11)
    blocks = model.model.layers
    us = [_capture(model, table, blocks[l], "update") for l in (0, 1)]  # [G, pos, d] each
    score = surrogate(model, table)

    def phi(u0, u1):  # [k, G, pos, d] each: both blocks add their path update at once
        out = []
        for k in range(u0.shape[0]):
            hooks = [_install(blocks[0], "update", u0[k]), _install(blocks[1], "update", u1[k])]
            out.append(score())
            for h in hooks:
                h.remove()
        return torch.stack(out)

    m = 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = IntegratedGradients(phi).attribute(
            tuple(u.unsqueeze(0) for u in us), baselines=tuple(torch.zeros_like(u).unsqueeze(0)
                                                               for u in us),
            n_steps=m, method="gausslegendre")
    want = torch.stack([w.detach().sum() for w in want])  # per layer
    att = attribute(model, table, "layers", IPGConfig(m=m, chunk=m, max_residual=None),
                    progress=False)
    got = torch.tensor(att.per_prompt[0], dtype=torch.float64)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max())), (got, want)
