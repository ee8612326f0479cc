"""The integration path of Eq. 2 as forward hooks, with the IG sum reduced inside the hooks.

At path point alpha every hooked activation a of a selected layer is replaced by

    a_alpha = a' + alpha * (a - a')            (at the interpolated positions; a elsewhere)

- joint: a is the activation recorded on the unmodified forward (`record`), so every
  selected layer is clamped to its own path, independently of the layers before it.
- onthefly: a is the activation of the current (already modified) forward, so later layers
  see the earlier layers' scaling; the gradient flows through them.
A gradient tap on a_alpha (attribution/tap.py: no .grad is stored) receives g = dPhi/da_alpha during backward and adds
(a - a') * g, summed over batch, positions and unit_dim, to a per-layer [units] accumulator.
Path points may share one batch (rows of different alpha); the quadrature weight is put in
the objective, so the accumulator holds sum_k w_k (a - a') * g_k = IPG (Eq. 2).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Literal

import torch
from torch import Tensor, nn

from ipg.attribution.execution import layers_checkpointed
from ipg.attribution.surrogate import plain_linear, wide
from ipg.attribution.tap import tap
from ipg.core.units import Granularity, computed_dtype, edit_activations, placeholder

Mode = Literal["joint", "onthefly"]


class PathHooks:
    """Baselines a', recorded activations and the IG accumulators for a set of layers."""

    def __init__(self, gran: Granularity, layers: list[int], base: dict[int, Tensor]) -> None:
        self.gran, self.layers, self.base = gran, layers, base  # base[l]: a' [units, unit_dim]
        self.recorded: dict[int, Tensor] = {}  # hooked x on the unmodified forward [G, pos, ...]
        self.recorded_out: dict[int, Tensor] = {}  # its linear consumer's output [G, pos, out]
        self.acc: dict[int, Tensor] = {}  # [units] float32 (float64 for a float64 model)
        # per_point: each backward stores its rows' terms [b, units] in `points` instead of
        # adding them to acc (adaptive quadrature re-weights every node: quadrature.py)
        self.per_point = False
        self.points: dict[int, Tensor] = {}
        # linear route (_linear_terms): layer -> (mask, a - a', y0, dy) of the current recording
        self._linear_cache: dict[int, tuple[Tensor | None, Tensor, Tensor, Tensor]] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the accumulators (one prompt)."""
        self.acc = {l: wide(torch.zeros(self.base[l].shape[0], dtype=self.base[l].dtype,
                                        device=self.base[l].device)) for l in self.layers}

    @contextmanager
    def record(self) -> Iterator[None]:
        """Store every selected layer's hooked tensor (detached) on an unmodified forward."""
        self.recorded, self.recorded_out = {}, {}
        self._linear_cache = {}

        def make(layer: int):
            def fn(x: Tensor) -> None:
                self.recorded[layer] = x.detach()
            return fn

        def make_out(layer: int):
            def fn(module: nn.Module, args: tuple, out: Tensor) -> None:
                self.recorded_out[layer] = out.detach()
            return fn

        # the output of a plain linear module fed by the hooked tensor: y = W a + b of the
        # linear route (_linear_terms), recorded by the forward that computes it anyway
        linear = {l: self.gran.module(l) for l in self.layers
                  if self.gran.hook == "pre" and plain_linear(self.gran.module(l))}
        handles = [module.register_forward_hook(make_out(l)) for l, module in linear.items()]
        try:
            with edit_activations(self.gran, {l: make(l) for l in self.layers}):
                yield
        finally:
            for handle in handles:
                handle.remove()

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

        alpha [b] per row (or one float); mask [b, pos] or [b0, pos] repeated over the batch
        (b = k * b0, e.g. the G rows of k path points) (1 where the activation is
        interpolated; None: everywhere, e.g. during generation); grad=True registers the
        accumulating tensor hooks (call backward inside the block or after).
        """
        layers = self.layers if layers is None else layers
        # joint mode with a reshape-only write never reads x's values (a comes from the
        # recording): the module computing x (for neurons, the MLP's gate and up) is skipped
        skip = mode == "joint" and type(self.gran).write is Granularity.write
        fns = {l: self._hook(l, alpha, mask, mode, grad) for l in layers}
        # ... and where x feeds a plain linear module, that module too (its output on the
        # path is linear in alpha: _linear_output)
        outputs = {l: self._linear_output(l, alpha, mask, grad, fns[l]) for l in layers
                   if skip and plain_linear(self.gran.module(l))}
        with edit_activations(self.gran, fns, skip_producer=skip, outputs=outputs):
            yield

    def _hook(self, layer: int, alpha: Tensor | float, mask: Tensor | None, mode: Mode, grad: bool):
        gran = self.gran
        # joint mode with a reshape-only write: a and (a - a') come from the recorded forward,
        # so they are computed once per prompt (G rows, cached) and broadcast over the path
        # points of every batch; x itself is only needed for its shape.
        fast = mode == "joint" and type(gran).write is Granularity.write

        def fn(x: Tensor) -> Tensor:
            if fast and (mask is None or mask.shape[0] == self.recorded[layer].shape[0]):
                return self._joint_path(layer, x, alpha, mask, grad)
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
                m = _rows(mask, a.shape[0])
                diff = diff * m.to(a.dtype).view(*m.shape, 1, 1)  # mask [b, pos, 1, 1]
            a_path = a - (1 - a4) * diff  # a' + alpha (a - a') there, a elsewhere
            if grad:
                if mode == "joint":
                    a_path = a_path.detach()
                d = diff.detach()
                a_path = tap(a_path, lambda g, l=layer, d=d: self._accumulate(l, d, g))
            return gran.write(layer, x, a_path, a)

        return fn

    def _joint_diff(self, layer: int, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """(a, (a - a') * mask) [G, pos, units, unit_dim] from the recorded forward, float32
        (float64 for a float64 model) even under bf16 autocast.

        Only the recording itself is kept for the whole prompt (in the model's activation
        dtype); a and the difference are rebuilt once per chunk in its forward, and the
        difference (G rows) is kept for the chunk's backward, unless the decoder layers are
        checkpointed: there it would outlive the recomputation that bounds memory, so the
        backward rebuilds it (docs/method.md, "Cost of one pass")."""
        a = wide(self.gran.read(layer, self.recorded[layer]).detach())
        diff = a - self.base[layer].to(a.dtype)
        if mask is not None:
            m = _rows(mask, a.shape[0])
            diff = diff * m.to(a.dtype).view(*m.shape, 1, 1)
        return a, diff

    def _joint_path(self, layer: int, x: Tensor, alpha: Tensor | float, mask: Tensor | None,
                    grad: bool) -> Tensor:
        """The joint-mode path tensor for x [b = reps * G, pos, ...]: same values as the
        generic route (a - (1 - alpha) * diff on the recorded a), without repeating a."""
        a, diff = self._joint_diff(layer, mask)
        g_rows = a.shape[0]
        reps = x.shape[0] // g_rows
        if isinstance(alpha, Tensor):
            a5 = alpha.to(a.dtype).view(reps, g_rows, 1, 1, 1)
            a_path = (a - (1 - a5) * diff).reshape(x.shape[0], *a.shape[1:])  # [b, pos, units, dim]
        else:
            a_path = a - (1 - alpha) * diff
            if reps > 1:
                a_path = a_path.repeat(reps, *([1] * (a.ndim - 1)))
        del a
        if grad:  # a and diff carry no graph: the tap makes a_path part of the backward
            if layers_checkpointed():
                fn = lambda g, l=layer: self._accumulate_joint(l, self._joint_diff(l, mask)[1], reps, g)
            else:  # diff of this chunk, kept until its backward: computed once per chunk
                fn = lambda g, l=layer, d=diff: self._accumulate_joint(l, d, reps, g)
            a_path = tap(a_path, fn)
        del diff
        return a_path.reshape(x.shape).to(x.dtype)

    def _linear_output(self, layer: int, alpha: Tensor | float, mask: Tensor | None, grad: bool,
                       fallback: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """producer input [b, pos, ...] -> y_alpha = W (a' + alpha (a - a')) + bias, the output
        of the linear module fed by the hooked tensor, without running that module on the b rows.

        In joint mode a and a' are fixed, so y_alpha = y0 + alpha dy with y0 = W a' + bias
        and dy = W (a - a') (where the position mask is on; y0 = W a + bias elsewhere), both
        from the G recorded rows, once per pass (_linear_terms). The gradient tap sits on
        y_alpha: dPhi/da_alpha = g W, so the chunk's IG terms sum_k (a - a') * (g_k W) = (a - a') * ((sum_k g_k) W): one G-row matmul per
        chunk in place of the module's backward on every path point (docs/method.md, "Cost of
        one pass"). Equal to the route through the module up to float rounding."""
        linear = self.gran.module(layer)

        def fn(h: Tensor) -> Tensor:
            out_dtype = computed_dtype(h)
            rec = self.recorded[layer]
            if mask is not None and mask.shape[0] != rec.shape[0]:  # rows per path point
                return linear(fallback(placeholder(h, rec.shape[-1])))
            diff, y0, dy = self._linear_terms(layer, linear, mask, h)
            g_rows, reps = y0.shape[0], h.shape[0] // y0.shape[0]
            if isinstance(alpha, Tensor):
                a4 = alpha.to(y0.dtype).view(reps, g_rows, 1, 1)
                y_path = (y0 + a4 * dy).flatten(0, 1)  # [b, pos, out]
            else:
                y_path = y0 + alpha * dy
                if reps > 1:
                    y_path = y_path.repeat(reps, 1, 1)
            del y0, dy
            if grad:
                if layers_checkpointed():
                    cb = lambda g, l=layer: self._accumulate_linear(  # noqa: E731
                        l, self._joint_diff(l, mask)[1], reps, g)
                else:
                    cb = lambda g, l=layer, d=diff: self._accumulate_linear(l, d, reps, g)  # noqa: E731
                y_path = tap(y_path, cb)
            del diff
            return y_path.to(out_dtype)

        return fn

    def _linear_terms(self, layer: int, linear: nn.Linear, mask: Tensor | None, h: Tensor
                      ) -> tuple[Tensor, Tensor, Tensor]:
        """((a - a') * mask [G, pos, units, unit_dim], y0, dy [G, pos, out]) from the recording,
        float32 (float64 for a float64 model): dy = W (a - a') * mask and y0 = y - dy, the
        output at alpha = 0 (W a' + b where the mask is on, y = W a + b elsewhere), so that
        y_alpha = y0 + alpha dy rounds once (alpha y for a zero baseline).

        All three are computed once per recording and mask and reused by every forward of the
        pass (the alpha = 0 forward and every chunk; a chunk's backward holds them anyway),
        unless the decoder layers are checkpointed: there they are rebuilt in each forward
        (and (a - a') in the backward), so that nothing per layer outlives the recomputation
        that bounds memory."""
        cached = self._linear_cache.get(layer)
        if cached is not None and cached[0] is mask:
            return cached[1:]
        a, diff = self._joint_diff(layer, mask)  # [G, pos, units, unit_dim]
        with torch.no_grad(), _no_autocast(h):  # weights are frozen: y and dy carry no graph
            weight = linear.weight.to(a.dtype)
            bias = None if linear.bias is None else linear.bias.to(a.dtype)
            if layer in self.recorded_out:  # the recording's own output of the module
                y = wide(self.recorded_out[layer])
                # W a' + b: one row (a' is the same at every position)
                y_base = nn.functional.linear(self.base[layer].flatten().to(a.dtype), weight, bias)
                if mask is None:
                    y0, dy = y_base.expand_as(y), y - y_base
                else:
                    on = _rows(mask, y.shape[0]).bool().unsqueeze(-1)  # [G, pos, 1]
                    y0, dy = torch.where(on, y_base, y), torch.where(on, y - y_base, 0.0)
            else:
                dy = nn.functional.linear(diff.flatten(2), weight)
                y0 = nn.functional.linear(a.flatten(2), weight, bias) - dy  # [G, pos, out]
        if not layers_checkpointed():
            self._linear_cache[layer] = (mask, diff, y0, dy)
        return diff, y0, dy

    def _accumulate_linear(self, layer: int, diff: Tensor, reps: int, g: Tensor) -> None:
        """IG terms from dPhi/dy [reps * G, pos, out] at the linear module's output: the
        gradient at its input is g W (diff [G, pos, units, unit_dim])."""
        acc = self.acc[layer]
        weight = self.gran.module(layer).weight.to(acc.dtype)  # [out, in]
        g4 = g.to(acc.dtype).view(reps, diff.shape[0], *g.shape[1:])  # [reps, G, pos, out]
        diff = diff.to(acc.dtype)
        if self.per_point:  # every path point's own terms: the matmul on all rows
            grad_in = (g4 @ weight).view(reps, *diff.shape)
            self.points[layer] = (grad_in * diff).sum(dim=(2, 4)).flatten(0, 1)  # [reps * G, units]
            return
        grad_in = (g4.sum(0) @ weight).view(diff.shape)  # sum over path points first
        self.acc[layer] = acc + (grad_in * diff).sum(dim=(0, 1, 3))

    def _accumulate_joint(self, layer: int, diff: Tensor, reps: int, g: Tensor) -> None:
        # diff [G, ...] is shared by the reps path points of the batch: sum over them in one go
        acc = self.acc[layer]
        diff = diff.to(acc.dtype)
        g5 = g.to(acc.dtype).view(reps, *diff.shape)
        if self.per_point:
            self.points[layer] = (g5 * diff).sum(dim=(2, 4)).flatten(0, 1)  # [reps * G, units]
            return
        self.acc[layer] = acc + (g5 * diff).sum(dim=(0, 1, 2, 4))

    def _accumulate(self, layer: int, diff: Tensor, g: Tensor) -> None:
        # (a - a') * dPhi/da_alpha summed over batch, positions and unit_dim -> [units]
        acc = self.acc[layer]
        if self.per_point:
            self.points[layer] = (diff.to(acc.dtype) * g.to(acc.dtype)).sum(dim=(1, 3))  # [b, units]
            return
        self.acc[layer] = acc + (diff.to(acc.dtype) * g.to(acc.dtype)).sum(dim=(0, 1, 3))

    def scores(self) -> Tensor:
        """The accumulated IPG of every unit, layers concatenated in order: [n_units]."""
        return torch.cat([self.acc[l] for l in self.layers])


def _no_autocast(h: Tensor):
    """A block where matmuls run in their inputs' dtype (float32 accumulators stay float32)."""
    return torch.autocast(h.device.type, enabled=False)


def _rows(mask: Tensor, b: int) -> Tensor:
    """mask [b0, pos] repeated over the batch to [b, pos] (b = k * b0: path points share it)."""
    return mask if mask.shape[0] == b else mask.repeat(b // mask.shape[0], 1)
