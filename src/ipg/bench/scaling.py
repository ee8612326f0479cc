"""Scaling of the engine: time and peak memory as T, m, N and the number of layers grow.

From a base shape (G trajectories per prompt, prompt length P, generated length T, m path
points, chunk c = m, one prompt, all L layers), one dimension at a time takes the values
base x (1, 2, 4) (layers: L/4, L/2, L, the first layers of the model):
  T       generated tokens per trajectory          time ~ T, memory ~ T
  m       path points (chunk stays c)              time ~ m, memory flat beyond one chunk
  N       prompts (G trajectories each)            time ~ N, memory flat (one prompt at a time)
  layers  decoder layers                           time ~ L, memory ~ L
Time: one process, the levels of a dimension interleaved (median of reps). Memory: peak RSS
above start in a fresh process per size (ipg.bench.memory, glibc's mmap threshold pinned so
that allocator fragmentation is not counted as the engine's; the m levels are measured once
more with the default allocator and reported as a separate exponent). Rows: scaling_time and
scaling_memory per level, and the fitted exponents (slope of log y on log x):
time_exponent (T, m, N: <= 1.1) and memory_exponent (T: <= 1.1; m, N: <= 0.1).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ipg.bench.workload import bench_model, interleaved, split_layers, synthetic_table
from ipg.core.units import decoder_layers

FACTORS = (1, 2, 4)
TIME_TARGET = {"T": "<= 1.1", "m": "<= 1.1", "N": "<= 1.1", "layers": ""}
MEMORY_TARGET = {"T": "<= 1.1", "m": "<= 0.1", "N": "<= 0.1", "layers": ""}


@dataclass(frozen=True)
class Size:
    n_traj: int
    prompt_len: int
    gen_len: int
    m: int
    chunk: int
    n_prompts: int
    layers: int


def fit_exponent(x: list[float], y: list[float]) -> float:
    """Slope of log y on log x (least squares): 1 = linear, 0 = flat."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def sizes(base: tuple[int, int, int, int], n_layers: int) -> dict[str, list[Size]]:
    g, p, t, m = base
    s = lambda **kw: Size(**{**dict(n_traj=g, prompt_len=p, gen_len=t, m=m, chunk=m,  # noqa: E731
                                   n_prompts=1, layers=n_layers), **kw})
    levels = sorted({max(1, n_layers * f // FACTORS[-1]) for f in FACTORS})
    return {"T": [s(gen_len=t * f) for f in FACTORS], "m": [s(m=m * f) for f in FACTORS],
            "N": [s(n_prompts=f) for f in FACTORS], "layers": [s(layers=k) for k in levels]}


def _x(dim: str, size: Size) -> int:
    return {"T": size.gen_len, "m": size.m, "N": size.n_prompts, "layers": size.layers}[dim]


def scaling_rows(spec: str, model, base: tuple[int, int, int, int], reps: int, threads: int,
                 row: Callable[..., None], workers: int = 2, memory: bool = True) -> None:
    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.bench.memory import measure

    name, _ = split_layers(spec)
    n_layers = len(decoder_layers(model))
    plan = sizes(base, n_layers)
    vocab = model.config.vocab_size
    models = {n_layers: model}

    def runner(size: Size):
        if size.layers not in models:
            models[size.layers] = bench_model(f"{name}:L{size.layers}")[0]
        table = synthetic_table(vocab, size.n_traj, size.prompt_len, size.gen_len,
                                n_prompts=size.n_prompts)
        cfg = IPGConfig(m=size.m, chunk=size.chunk, temperature=1.0, max_residual=None)
        return lambda mod=models[size.layers]: attribute(mod, table, "neurons", cfg, progress=False)

    def shape(size: Size) -> tuple[int, int, int, int]:
        return size.n_traj, size.prompt_len, size.gen_len, size.m

    for dim, levels in plan.items():
        times = interleaved({i: runner(sz) for i, sz in enumerate(levels)}, reps)
        xs = [_x(dim, sz) for sz in levels]
        for i, sz in enumerate(levels):
            row("scaling_time", f"{dim}={xs[i]} (prompts={sz.n_prompts}, layers={sz.layers}, "
                f"chunk={sz.chunk})", shape(sz), times[i], "seconds", n_prompts=sz.n_prompts)
        row("time_exponent", dim, shape(levels[-1]), fit_exponent(xs, [times[i] for i in
            range(len(levels))]), f"exponent of {dim}", TIME_TARGET[dim])
    models.clear()
    if not memory:
        return
    jobs = list(dict.fromkeys(sz for levels in plan.values() for sz in levels))

    def one(sz: Size) -> dict:
        return measure(f"{name}:L{sz.layers}", "ipg", sz.n_traj, sz.prompt_len, sz.gen_len,
                       sz.m, sz.chunk, threads=threads, n_prompts=sz.n_prompts)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        peaks = {sz: max(r["peak_mib"] - r["base_mib"], 1e-3) for sz, r in zip(jobs, pool.map(one, jobs))}
    for dim, levels in plan.items():
        xs = [_x(dim, sz) for sz in levels]
        for x, sz in zip(xs, levels):
            row("scaling_memory", f"{dim}={x} (prompts={sz.n_prompts}, layers={sz.layers}, "
                f"chunk={sz.chunk})", shape(sz), peaks[sz], "MiB above start", n_prompts=sz.n_prompts)
        row("memory_exponent", f"scaling {dim}", shape(levels[-1]),
            fit_exponent(xs, [peaks[sz] for sz in levels]), f"exponent of {dim}", MEMORY_TARGET[dim])
    # the m levels again with glibc's default (dynamic) mmap threshold: what a user's run sees
    levels = plan["m"]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        glibc = list(pool.map(lambda sz: measure(
            f"{name}:L{sz.layers}", "ipg", sz.n_traj, sz.prompt_len, sz.gen_len, sz.m, sz.chunk,
            threads=threads, n_prompts=sz.n_prompts, allocator="glibc"), levels))
    row("memory_exponent", "scaling m, glibc default allocator", shape(levels[-1]),
        fit_exponent([sz.m for sz in levels], [max(r["peak_mib"] - r["base_mib"], 1e-3) for r in glibc]),
        "exponent of m")
