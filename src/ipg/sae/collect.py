"""Collect the residual stream that an SAE reads: the output of one decoder layer.

For every causal LM in the architecture table (ipg.models.architecture: Llama, Qwen2/3,
Mistral, Gemma, Phi-3, GPT-2, GPT-NeoX), decoder block `layer`'s output hidden state
(= `hidden_states[layer + 1]` of `output_hidden_states=True`, except that HF applies the final
norm to the last entry) at the non-pad positions of each batch, stacked to [n_tokens, d_model].
The forward stops right after that layer, so later layers and the LM head never run.
docs/method.md, "Setting" (an SAE latent is read from this residual stream).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from ipg.core.units import decoder_layers
from ipg.errors import IPGError

Batch = Tensor | tuple[Tensor, Tensor] | Mapping[str, Tensor]


class _StopForward(Exception):
    """Raised by the capture hook once the wanted layer has run."""


def _unpack(batch: Batch) -> tuple[Tensor, Tensor]:
    """(input_ids [b, pos], attention_mask [b, pos]) from any accepted batch form."""
    if isinstance(batch, Mapping):
        ids, mask = batch["input_ids"], batch.get("attention_mask")
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        ids, mask = batch
    else:
        ids, mask = batch, None
    if not isinstance(ids, Tensor) or ids.ndim != 2 or ids.is_floating_point():
        raise IPGError(
            "collect_residual batches must be LongTensor input_ids [batch, pos], optionally "
            "with an attention mask as (ids, mask) or {'input_ids', 'attention_mask'}"
        )
    mask = torch.ones_like(ids) if mask is None else mask
    if mask.shape != ids.shape:
        raise IPGError(f"attention mask shape {tuple(mask.shape)} != input_ids {tuple(ids.shape)}")
    return ids, mask


@torch.inference_mode()
def collect_residual(
    model: nn.Module,
    input_ids_batches: Iterable[Batch],
    layer: int,
    *,
    max_tokens: int | None = None,
) -> Tensor:
    """Residual stream after decoder layer `layer` at non-pad tokens: float32 [n_tokens, d_model].

    Position ids follow the attention mask (cumsum - 1), so left-padded rows see the same
    positions as in generation; for right padding they equal the default 0..pos-1.
    Stops once `max_tokens` tokens are collected (the result is cut to exactly that many).
    """
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise IPGError(f"SAE layer {layer} is out of range: the model has {len(layers)} layers")
    device = next(model.parameters()).device
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: Tensor | tuple) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)  # [b, pos, d]
        raise _StopForward

    out: list[Tensor] = []
    n_total = 0
    was_training = model.training
    model.eval()
    handle = layers[layer].register_forward_hook(hook)
    try:
        for batch in input_ids_batches:
            ids, mask = _unpack(batch)
            ids, mask = ids.to(device), mask.to(device)
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)  # [b, pos]
            captured.clear()
            try:
                model(
                    input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False
                )
            except _StopForward:
                pass
            if not captured:
                raise IPGError(f"decoder layer {layer} did not run during the model's forward")
            acts = captured[0][mask.bool()].float().cpu()  # [non-pad tokens, d]
            out.append(acts)
            n_total += acts.shape[0]
            if max_tokens is not None and n_total >= max_tokens:
                break
    finally:
        handle.remove()
        model.train(was_training)
    if not out:
        raise IPGError("collect_residual got no batches; pass at least one batch of input_ids")
    res = torch.cat(out)
    return res[:max_tokens] if max_tokens is not None else res
