"""Achieved FLOP/s of the engine over this machine's dense matmul FLOP/s, measured in one run.

- `count_flops(fn)`: the floating-point operations of one call, counted by
  torch.utils.flop_counter.FlopCounterMode (matmuls, attention, convolutions, forward and
  backward; elementwise work is not counted, so the ratio is the share of the peak that the
  matmul-shaped work attains).
- `matmul(n)`: one float32 [n, n] @ [n, n] (2 n^3 FLOPs) at the current thread count: the
  machine's dense reference, timed interleaved with the engine (the CPU is shared, so the
  reference is measured under the same load).
Rows: flops_fraction (engine and the plain forward + backward), unit 'achieved / matmul'.
"""
from __future__ import annotations

from typing import Callable

import torch

from ipg.bench.workload import interleaved

MATMUL_N = 1024


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul(n: int = MATMUL_N) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)

    def fn() -> None:
        for _ in range(4):
            torch.mm(a, b)
    return fn


def flops_rows(fns: dict[str, Callable[[], object]], shape: tuple[int, int, int, int], reps: int,
               row: Callable[..., None]) -> None:
    """For each named callable: counted FLOPs / median seconds over matmul FLOP/s."""
    counts = {k: count_flops(fn) for k, fn in fns.items()}
    times = interleaved({**fns, "matmul": matmul()}, reps)
    peak = 4 * 2 * MATMUL_N**3 / times["matmul"]
    row("matmul_gflops", f"float32 {MATMUL_N}x{MATMUL_N} mm", shape, peak / 1e9, "GFLOP/s")
    for key, flops in counts.items():
        row("flops_fraction", key, shape, flops / times[key] / peak, "achieved / matmul FLOP/s")
