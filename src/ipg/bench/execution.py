"""Decoder-layer checkpointing and bf16 autocast (attribution/execution.py), side by side.

  checkpoint memory: peak RSS above start with checkpoint_layers / without, fresh process
                     per run (ipg.bench.memory), neurons and heads, at the longest T
  checkpoint time:   IPG time with checkpoint_layers / without (one extra forward per chunk)
  autocast time:     IPG time under bf16 autocast / float32 (on a CPU without bf16 matrix
                     units this is a slowdown; the mode is meant for GPUs)
  autocast agreement: correlation and max |diff| / max |score| of the per-prompt scores
                     against float32, and the bf16 run's pooled completeness residual
Rows go into the attribution bench table (bench/attribution.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ipg.bench.workload import interleaved, ipg_run, synthetic_table


def execution_rows(spec: str, model, main: tuple[int, int, int, int], chunk: int, reps: int,
                   memory_shape: tuple[int, int, int], memory_gen: int, threads: int,
                   row: Callable[..., None]) -> None:
    from ipg.bench.memory import measure

    n, p, t, m = main
    table = synthetic_table(model.config.vocab_size, n, p, t)
    fns = {"plain": ipg_run(model, table, m, chunk),
           "checkpoint": ipg_run(model, table, m, chunk, checkpoint_layers=True),
           "bf16": ipg_run(model, table, m, chunk, autocast="bfloat16")}
    times = interleaved(fns, reps)
    row("checkpoint_time", f"checkpoint_layers / not (chunk={chunk})", main,
        times["checkpoint"] / times["plain"], "ratio")
    row("autocast_time", f"bf16 autocast / float32 (chunk={chunk})", main,
        times["bf16"] / times["plain"], "ratio")
    full, half = fns["plain"](), fns["bf16"]()
    a, b = full.per_prompt.ravel(), half.per_prompt.ravel()
    row("autocast_agreement", "correlation with float32 scores", main,
        float(np.corrcoef(a, b)[0, 1]), "pearson r", ">= 0.99")
    row("autocast_agreement", "max |diff| / max |score| vs float32", main,
        float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)), "relative")
    for label, att in (("float32", full), ("bf16 autocast", half)):
        row("autocast_completeness", f"{label}, m={m} (pooled over prompts)", main,
            att.metrics["completeness_residual_pooled"], "relative")

    n_m, p_m, m_m = memory_shape
    for gran in ("heads", "neurons"):
        peaks = {}
        for on in (False, True):
            res = measure(spec, "ipg", n_m, p_m, memory_gen, m_m, threads=threads,
                          checkpoint_layers=on, granularity=gran)
            peaks[on] = max(res["peak_mib"] - res["base_mib"], 1e-3)
            row("checkpoint_memory", f"{gran}, checkpoint_layers={str(on).lower()} T={memory_gen}",
                (n_m, p_m, memory_gen, m_m), peaks[on], "MiB above start")
        row("checkpoint_memory", f"{gran}: checkpointed / not, T={memory_gen}",
            (n_m, p_m, memory_gen, m_m), peaks[True] / peaks[False], "ratio", "< 1.0")
