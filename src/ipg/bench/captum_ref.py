"""captum's LayerIntegratedGradients on the same surrogate, for a timing comparison.

Layers: every decoder layer's MLP down-projection (mlp.down_proj in the Llama layout; where
it lives per architecture: ipg.models.architecture), attributed to its input (the neuron
activations), all layers at once (captum clamps each to its own path: the engine's
"joint" mode). Baseline: zero activations. LayerIntegratedGradients derives the layer
baseline by running the forward on baseline *inputs*, so the first input is a per-row
scale s (1 for the inputs, 0 for the baseline) that a pre-hook multiplies into every
layer's input only when s != 1; on the path captum replaces those inputs itself.
forward_func returns (A_j / G) log pi(tau_j) per row; captum differentiates their sum.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ipg.bench.workload import DenseBatch, generated_logprobs, neuron_modules


def captum_ipg(model: nn.Module, batch: DenseBatch, m: int, internal_batch_size: int) -> Tensor:
    """IPG of every MLP neuron (layers concatenated) [n_layers * d_ff] via captum, float64."""
    from captum.attr import LayerIntegratedGradients

    downs = neuron_modules(model)

    def forward_func(scale: Tensor, ids: Tensor, coef: Tensor) -> Tensor:
        handles = []
        if not bool((scale == 1).all()):
            handles = [d.register_forward_pre_hook(
                lambda mod, args: (args[0] * scale.view(-1, 1, 1).to(args[0].dtype), *args[1:]),
                prepend=True) for d in downs]
        try:
            lp = generated_logprobs(model, batch, input_ids=ids)  # [rows, T]
        finally:
            for h in handles:
                h.remove()
        return coef.to(lp.dtype) * lp.sum(1)

    g = batch.ids.shape[0]
    scale = torch.ones(g, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Multiple layers provided": the joint mode is intended
        lig = LayerIntegratedGradients(forward_func, downs)
        atts = lig.attribute(scale, baselines=torch.zeros_like(scale),
                             additional_forward_args=(batch.ids, batch.coef),
                             n_steps=m, method="gausslegendre",
                             internal_batch_size=internal_batch_size,
                             attribute_to_layer_input=True)
    return torch.cat([a.detach().double().sum(dim=(0, 1)) for a in atts])
