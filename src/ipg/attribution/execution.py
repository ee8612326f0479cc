"""How the engine's forwards run: mixed precision and decoder-layer activation checkpointing.

Neither changes what is computed (Eqs. 1-3 of docs/method.md), only its cost:

- autocast "bfloat16": the model's matmuls run in bfloat16 (torch.autocast) while everything
  that sums stays float32: the LM head's logits are upcast before log-softmax / logsumexp
  (surrogate.py), log pi(tau) and Phi are float32, the recorded activations a, a - a' and the
  path a' + alpha (a - a') are float32 before they are written back in the layer's dtype
  (path.py), and the IG accumulators are float32. Phi(h) and Phi(h') are computed under the
  same autocast, so completeness is measured for the function that is integrated.
- checkpoint_layers: every decoder layer's forward is wrapped in non-reentrant
  torch.utils.checkpoint while gradients are on, so a backward keeps one layer's
  intermediates at a time (plus each layer's input) and recomputes the rest: memory for long
  chains of thought drops from ~L x (intermediates) to ~L x (residual stream), for about one
  more forward of time. The recomputation re-runs the path hooks; their gradient taps
  (tap.py) fire only in the graph that is backpropagated, so nothing is counted twice.

    with autocast("bfloat16", device), checkpointed(decoder_layers(model), on=True):
        lp = sequence_logprobs(model, batch, temperature)
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ipg.core.units import replaced_forwards

AUTOCAST_DTYPES = {"none": None, "bfloat16": torch.bfloat16}
_CHECKPOINTING = contextvars.ContextVar("ipg_layers_checkpointed", default=False)


def autocast(name: str, device: torch.device) -> contextlib.AbstractContextManager:
    """torch.autocast on `device` in the named dtype ("none": a no-op context)."""
    dtype = AUTOCAST_DTYPES[name]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _checkpointed_forward(forward, *args, **kwargs):
    if not torch.is_grad_enabled():  # no backward to save memory for
        return forward(*args, **kwargs)
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def checkpointed(layers: nn.ModuleList | list[nn.Module], on: bool = True
                 ) -> contextlib.AbstractContextManager:
    """Within the block, each layer's forward is activation-checkpointed (when `on`).

    Module hooks on a layer itself run outside its forward (once); hooks on its submodules
    run again during the recomputation. The KV cache a layer is given must not grow when it
    is called twice (surrogate.py's batched prompt cache is stateless)."""
    if not on:
        return contextlib.nullcontext()
    return _flagged(replaced_forwards([(layer, functools.partial(_checkpointed_forward, layer.forward))
                                       for layer in layers]))


@contextlib.contextmanager
def _flagged(inner: contextlib.AbstractContextManager):
    """`inner`, with layers_checkpointed() True inside it."""
    token = _CHECKPOINTING.set(True)
    try:
        with inner:
            yield
    finally:
        _CHECKPOINTING.reset(token)


def layers_checkpointed() -> bool:
    """True inside `checkpointed(..., on=True)`: tensors kept from a forward to its backward
    then outlive the recomputation (the path hooks recompute a - a' instead, path.py)."""
    return _CHECKPOINTING.get()
