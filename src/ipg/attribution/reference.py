"""The baseline activation h' of Eq. 2 (docs/method.md: Eq. 2, reference h').

- zero (default): h' = 0 (for SAE latents: f' = 0, i.e. the decoded part removed).
- mean: the dataset mean of h over the interpolated positions of all trajectories.
- noise: h' = mean + std * z, z ~ N(0, 1) drawn once per unit coordinate with a seeded
  generator (std: the dataset standard deviation over positions); the same h' at every
  position and path point, so the path stays a straight line and completeness holds.
Named "reference" to keep it apart from the baseline *methods* of attribution/baselines.py.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from ipg.core.units import Granularity, edit_activations
from ipg.errors import IPGError

REFERENCES = ("zero", "mean", "noise")


def activation_stats(
    gran: Granularity,
    layers: list[int],
    forwards: Iterable[tuple[Callable[[], None], Tensor]],
) -> dict[int, tuple[Tensor, Tensor]]:
    """Per layer (mean, std) [units, unit_dim] float64 over the masked positions.

    `forwards` yields (run, mask [b, pos]): `run()` does one unmodified forward whose hooked
    tensors are read here; `mask` marks the positions that count.
    """
    sums: dict[int, Tensor] = {}
    sqs: dict[int, Tensor] = {}
    count = 0.0
    current: dict[str, Tensor] = {}

    def make(layer: int):
        def fn(x: Tensor) -> None:
            a = gran.read(layer, x).detach().to(torch.float64)  # [b, pos, units, unit_dim]
            m = current["mask"].to(a.device, torch.float64).view(*a.shape[:2], 1, 1)
            s, q = (a * m).sum(dim=(0, 1)), (a * a * m).sum(dim=(0, 1))
            sums[layer] = sums[layer] + s if layer in sums else s
            sqs[layer] = sqs[layer] + q if layer in sqs else q
        return fn

    with torch.no_grad():
        for run, mask in forwards:  # hooks only around run(): the iterator may run the model
            current["mask"] = mask
            with edit_activations(gran, {l: make(l) for l in layers}):
                run()
            count += float(mask.sum())
    if count == 0:
        raise IPGError("no positions to average for baseline 'mean'/'noise': the trajectories are empty")
    out = {}
    for l in layers:
        mean = sums[l] / count
        var = (sqs[l] / count - mean * mean).clamp_min(0.0)
        out[l] = (mean, var.sqrt())
    return out


def reference_activations(
    kind: str,
    gran: Granularity,
    layers: list[int],
    dtype: torch.dtype,
    device: torch.device,
    stats: dict[int, tuple[Tensor, Tensor]] | None = None,
    seed: int = 0,
) -> dict[int, Tensor]:
    """h' per layer, [units, unit_dim] in the model's dtype (broadcast over batch and positions)."""
    if kind not in REFERENCES:
        raise IPGError(f"unknown baseline '{kind}'; allowed: {', '.join(REFERENCES)}")
    out: dict[int, Tensor] = {}
    gen = torch.Generator().manual_seed(int(seed))
    for l in layers:
        shape = gran.unit_shape(l)
        if kind == "zero":
            ref = torch.zeros(shape, dtype=torch.float64)
        else:
            assert stats is not None, "mean/noise baselines need activation_stats"
            mean, std = stats[l]
            ref = mean.cpu()
            if kind == "noise":
                ref = ref + std.cpu() * torch.randn(shape, generator=gen, dtype=torch.float64)
        out[l] = ref.to(device=device, dtype=dtype)
    return out
