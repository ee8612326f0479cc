"""The integration path of Eq. 2 as forward hooks, with the IG sum reduced inside the hooks.

At path point alpha every hooked activation a of a selected layer is replaced by

    a_alpha = a' + alpha * (a - a')            (at the interpolated positions; a elsewhere)

- joint: a is the activation recorded on the unmodified forward (`record`), so every
  selected layer is clamped to its own path, independently of the layers before it.
- onthefly: a is the activation of the current (already modified) forward, so later layers
  see the earlier layers' scaling; the gradient flows through them.
A tensor hook on a_alpha receives g = dPhi/da_alpha during backward and adds
(a - a') * g, summed over batch, positions and unit_dim, to a per-layer [units] accumulator.
Path points may share one batch (rows of different alpha); the quadrature weight is put in
the objective, so the accumulator holds sum_k w_k (a - a') * g_k = IPG (Eq. 2).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

import torch
from torch import Tensor

from ipg.attribution.surrogate import wide
from ipg.components import Granularity, edit_activations

Mode = Literal["joint", "onthefly"]


class PathHooks:
    """Baselines a', recorded activations and the IG accumulators for a set of layers."""

    def __init__(self, gran: Granularity, layers: list[int], base: dict[int, Tensor]) -> None:
        self.gran, self.layers, self.base = gran, layers, base  # base[l]: a' [units, unit_dim]
        self.recorded: dict[int, Tensor] = {}  # hooked x on the unmodified forward [G, pos, ...]
        self.acc: dict[int, Tensor] = {}  # [units] float32 (float64 for a float64 model)
        self.reset()

    def reset(self) -> None:
        """Zero the accumulators (one prompt)."""
        self.acc = {l: wide(torch.zeros(self.base[l].shape[0], dtype=self.base[l].dtype,
                                        device=self.base[l].device)) for l in self.layers}

    @contextmanager
    def record(self) -> Iterator[None]:
        """Store every selected layer's hooked tensor (detached) on an unmodified forward."""
        self.recorded = {}

        def make(layer: int):
            def fn(x: Tensor) -> None:
                self.recorded[layer] = x.detach()
            return fn

        with edit_activations(self.gran, {l: make(l) for l in self.layers}):
            yield

    @contextmanager
    def interpolate(
        self,
        alpha: Tensor | float,
        mask: Tensor | None,
        mode: Mode,
        grad: bool,
        layers: list[int] | None = None,
    ) -> Iterator[None]:
        """Replace a by a' + alpha (a - a') on `layers` (default all) during the block.

        alpha [b] per row (or one float); mask [b, pos] (1 where the activation is
        interpolated; None: everywhere, e.g. during generation); grad=True registers the
        accumulating tensor hooks (call backward inside the block or after).
        """
        layers = self.layers if layers is None else layers
        with edit_activations(self.gran, {l: self._hook(l, alpha, mask, mode, grad) for l in layers}):
            yield

    def _hook(self, layer: int, alpha: Tensor | float, mask: Tensor | None, mode: Mode, grad: bool):
        gran = self.gran

        def fn(x: Tensor) -> Tensor:
            if mode == "joint":
                rec = self.recorded[layer]  # [G, pos, ...]
                reps = x.shape[0] // rec.shape[0]
                x = rec.repeat(reps, *([1] * (rec.ndim - 1))) if reps > 1 else rec
            a = gran.read(layer, x)  # [b, pos, units, unit_dim]
            if mode == "joint":
                a = a.detach()
            a4 = alpha.to(a.dtype).view(-1, 1, 1, 1) if isinstance(alpha, Tensor) else alpha
            diff = a - self.base[layer].to(a.dtype)  # (a - a') at interpolated positions
            if mask is not None:
                diff = diff * mask.to(a.dtype).view(*mask.shape, 1, 1)  # mask [b, pos, 1, 1]
            a_path = a - (1 - a4) * diff  # a' + alpha (a - a') there, a elsewhere
            if grad:
                if mode == "joint" or not a_path.requires_grad:
                    a_path = a_path.detach().requires_grad_(True)
                d = diff.detach()
                a_path.register_hook(lambda g, l=layer, d=d: self._accumulate(l, d, g))
            return gran.write(layer, x, a_path, a)

        return fn

    def _accumulate(self, layer: int, diff: Tensor, g: Tensor) -> None:
        # (a - a') * dPhi/da_alpha summed over batch, positions and unit_dim -> [units]
        acc = self.acc[layer]
        self.acc[layer] = acc + (diff.to(acc.dtype) * g.to(acc.dtype)).sum(dim=(0, 1, 3))

    def scores(self) -> Tensor:
        """The accumulated IPG of every unit, layers concatenated in order: [n_units]."""
        return torch.cat([self.acc[l] for l in self.layers])
