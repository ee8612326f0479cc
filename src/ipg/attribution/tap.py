"""A gradient tap: an identity in the forward whose backward hands dPhi/dx to a callback.

The path hooks (attribution/path.py, the integrand of Eq. 2) need the gradient at an
activation that may carry no graph of its own (joint mode: a' + alpha (a - a') is built from
recorded, detached tensors). Making it a leaf with `requires_grad_` works, but autograd then
also stores that gradient in `.grad` of every hooked tensor: one activation-sized buffer per
hooked layer, alive for the rest of the backward and for as long as the graph's output is
referenced. A tap is anchored on a scalar leaf instead, and its backward returns no gradient
for the anchor, so nothing is stored; when x has a graph (on-the-fly mode) the gradient
flows on into it unchanged.

    y = tap(x, lambda g: acc.add_((diff * g).sum(0)))   # y == x; the callback sees dL/dy
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

_ANCHORS: dict[torch.device, Tensor] = {}


def _anchor(device: torch.device) -> Tensor:
    """A scalar leaf that requires grad (never receives one): makes the tap's output
    part of the graph even when x is detached."""
    if device not in _ANCHORS:
        _ANCHORS[device] = torch.zeros((), device=device, requires_grad=True)
    return _ANCHORS[device]


class _Tap(torch.autograd.Function):
    @staticmethod
    def forward(ctx, anchor: Tensor, x: Tensor, callback: Callable[[Tensor], None]) -> Tensor:
        ctx.callback = callback
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: Tensor):
        ctx.callback(g)
        return None, (g if ctx.needs_input_grad[1] else None), None


def tap(x: Tensor, callback: Callable[[Tensor], None]) -> Tensor:
    """x itself in the forward; during backward, callback(dL/dx) is called once per use of
    the graph (also under activation checkpointing, whose recomputed graph is not run)."""
    return _Tap.apply(_anchor(x.device), x, callback)
