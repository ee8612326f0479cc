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


def surrogate_of_activation(model, table, module, hook, reshape, a_to_x):
    """f(a [k, ...]) -> Phi [k]: the hooked tensor replaced by a_to_x(a[k]) for each k."""
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

    def phi(a):
        out = []
        for k in range(a.shape[0]):
            repl = a_to_x(a[k])
            if hook == "pre":
                h = module.register_forward_pre_hook(lambda m, args: (repl,))
            else:
                h = module.register_forward_hook(lambda m, args, o: repl)
            logp = torch.log_softmax(model(ids, attention_mask=mask).logits / T, dim=-1)
            h.remove()
            total = 0.0
            for j, gen in enumerate(gens):
                for t, tok in enumerate(gen):
                    total = total + adv[j] / g * logp[j, len(prompt) + t - 1, tok]
            out.append(total)
        return torch.stack(out)

    captured = {}
    if hook == "pre":
        h = module.register_forward_pre_hook(lambda m, args: captured.setdefault("x", args[0]))
    else:
        h = module.register_forward_hook(lambda m, args, o: captured.setdefault("x", o))
    with torch.no_grad():
        model(ids, attention_mask=mask)
    h.remove()
    return phi, reshape(captured["x"].detach())


@pytest.mark.parametrize("arch, gran, layer", [
    ("qwen", "neurons", 1), ("qwen", "heads", 0), ("qwen", "layers", 0), ("qwen", "sae", 1),
    ("llama", "neurons", 0), ("llama", "heads", 1),
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
        module, hook, reshape, to_x = blocks[layer], "post", (lambda x: x), (lambda a: a)
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
