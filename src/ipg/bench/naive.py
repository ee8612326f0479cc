"""A straightforward IPG for MLP neurons: the speed baseline and an independent correctness check.

It loops over path points AND over generated tokens, as a per-token attribution tool would
(captum's llm_attr pattern): for every Gauss-Legendre node a_k and every generated position t,
one forward of the whole batch with every layer's neuron activations (the input of
the MLP down-projection, found by ipg.models.architecture) clamped to a_k * h (zero baseline, h recorded on the unmodified forward), the
objective sum_j (A_j / G) log pi(a_{j,t} | s_{j,t}) from full-vocab logits, and one backward
to those activations (hooks make them leaves). Then
    IPG_i = sum_k w_k sum_t sum_{j, pos} h_i * dobjective_{k,t} / da_i.
By linearity in t this equals IG of Phi = sum_j (A_j / G) log pi(tau_j), which the engine
computes with one backward per path point: the scores must agree to float precision.
Shares no code with ipg.attribution (own hooks, quadrature, advantages, log-probs).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ipg.bench.workload import TEMPERATURE, DenseBatch, neuron_modules


def naive_ipg(model: nn.Module, batch: DenseBatch, m: int) -> Tensor:
    """IPG of every MLP neuron (layers concatenated) [n_layers * d_ff], float64."""
    downs = neuron_modules(model)
    x, w = np.polynomial.legendre.leggauss(m)
    alphas, weights = (x + 1) / 2, w / 2
    recorded: list[Tensor] = [torch.empty(0)] * len(downs)

    def record(i: int):
        def hook(mod: nn.Module, args: tuple) -> None:
            recorded[i] = args[0].detach()
        return hook

    handles = [d.register_forward_pre_hook(record(i)) for i, d in enumerate(downs)]
    with torch.no_grad():
        model(input_ids=batch.ids, attention_mask=batch.mask)
    for h in handles:
        h.remove()

    scores = [torch.zeros(r.shape[-1], dtype=torch.float64) for r in recorded]
    p = batch.prompt_len
    for alpha, weight in zip(alphas, weights):
        for t in range(batch.gen_len):
            leaves = [(float(alpha) * r).requires_grad_(True) for r in recorded]
            handles = [d.register_forward_pre_hook(lambda mod, args, a=a: (a, *args[1:]))
                       for d, a in zip(downs, leaves)]
            try:
                logits = model(input_ids=batch.ids, attention_mask=batch.mask).logits
            finally:
                for h in handles:
                    h.remove()
            logits = logits[:, p + t - 1]  # [G, V], >= float32
            logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32))
                                     / TEMPERATURE, dim=-1)
            picked = logp.gather(-1, batch.targets[:, t : t + 1]).squeeze(-1)  # [G]
            objective = (batch.coef.to(logp.dtype) * picked).sum()
            grads = torch.autograd.grad(objective, leaves)
            for i, (r, g) in enumerate(zip(recorded, grads)):
                scores[i] += float(weight) * (r * g).sum(dim=(0, 1)).double()
    return torch.cat(scores)
