"""`ipg bench attribution`: the IPG engine's speed, memory and correctness, measured side by side.

On one batch of synthetic trajectories (ipg.bench.workload) of each model, in one run:
  1. overhead:  IPG time / (m plain frozen-weight forward + backward passes)      <= 1.0
                (SmolLM2-sized: <= 0.9 at chunk 1, <= 0.6 at the best chunk, issue 16), with
                the same ratios of the pass before issue 16 (ipg.bench.legacy) timed in the
                same interleaved rounds, the two engines' scores compared, and each one's
                float32 rounding against the scores of a float64 copy of the model
  2. naive:     a per-(path point, token) loop (ipg.bench.naive) / IPG            >= 20, and
                their scores agree (an independent correctness check)
  3. captum:    IPG / captum LayerIntegratedGradients (best internal_batch_size)  <= 1
  4. memory:    peak RSS above start as the generation length doubles, fresh
                process per size (ipg.bench.memory); fitted exponent             <= 1.1
  5. chunk:     time with c path points per batch / time with c = 1; best c
  6. shared:    positions=all / positions=generated (shared prompt KV cache):
                a built model's own trajectories behind a k-shot prompt (bench.fewshot),
                a random model's synthetic prompt of 85% of the tokens           >= 3
  7. quadrature: path points and seconds to a median residual < 1%, riemann_mid vs
                gauss_legendre (bench.quadrature_cost)
  8. flops:     achieved FLOP/s (counted) over this machine's matmul FLOP/s (bench.flops)
  9. scaling:   time and peak memory as T, m, N, layers double; exponents (bench.scaling)
 10. execution: decoder-layer checkpointing (memory, time) and bf16 autocast (time,
                agreement with float32, completeness) (bench.execution)
Times are medians of interleaved repetitions (A, B, A, B, ...) after one warm-up, and
only their ratios are reported: the machine is shared, absolute times are noise. Every
row records the 1-minute load average when it was measured. `benches` picks a subset.
Every engine run attributes all MLP neurons (granularity "neurons", every layer),
Gauss-Legendre, zero baseline, leave-one-out advantages.
Output: a tidy table (one row per measurement), written as CSV, and a figure (plot.py).
"""
from __future__ import annotations

import math
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from ipg.bench.scaling import fit_exponent as _fit_exponent
from ipg.bench.workload import (
    DEFAULT_MODEL, bench_model, dense_batch, interleaved, ipg_run, load_average, plain_passes,
    synthetic_table,
)

COLUMNS = ["bench", "variant", "model", "n_prompts", "n_traj", "prompt_len", "gen_len", "m",
           "threads", "value", "unit", "target", "meets_target", "load_avg"]
BENCHES = ("chunk", "overhead", "captum", "naive", "shared", "memory", "quadrature", "flops",
           "scaling", "execution")


@dataclass(frozen=True)
class Profile:
    """Shapes (n_traj, prompt_len, gen_len, m) of every bench and repetitions. Sized so that a
    full run of one model takes minutes on a shared 2-core CPU."""

    main: tuple[int, int, int, int] = (2, 16, 48, 8)  # overhead and captum
    reps: int = 3
    chunk: tuple[int, int, int, int] = (2, 8, 24, 16)  # m = 16: chunks up to 16
    chunks: tuple[int, ...] = (1, 4, 8, 16)
    naive: tuple[int, int, int, int] = (2, 8, 48, 4)  # T forwards per path point: ratio ~ T
    naive_reps: int = 1
    captum_steps: tuple[int, ...] = (1, 4, 8)  # path points per captum internal batch
    shared: tuple[int, int, int, int] = (2, 136, 24, 8)  # prompt 85% of the tokens
    memory_gen: tuple[int, ...] = (64, 128, 256, 512)
    memory_shape: tuple[int, int, int] = (4, 16, 2)  # n_traj, prompt_len, m
    memory_plain: bool = True  # also the plain forward + backward (a reference curve)
    memory_workers: int = 4  # concurrent measurement processes (RAM: model + activations each)
    shots: int = 4  # k-shot prompt of a built model's own trajectories (shared bench)
    quadrature: tuple[int, int, int, int] = (2, 16, 32, 64)  # n_traj, P, T, largest m tried
    quadrature_prompts: int = 4  # the residual is a median over prompts
    quadrature_baseline: str = "zero"
    scaling: tuple[int, int, int, int] = (2, 16, 32, 4)  # base shape, each dim x 1, 2, 4
    scaling_memory: bool = True
    overhead_targets: tuple[str, str] = ("<= 1.0", "<= 1.0")  # chunk 1, best chunk
    overhead_wide: tuple[int, int, int, int] | None = None  # a second overhead shape


FULL = Profile()
# Models over LARGE_PARAMS parameters (SmolLM2-135M) on a CPU: smaller shapes, same reps.
# Quadrature: the study's SmolLM2 settings (mean baseline, generated positions: a zero
# baseline over all 30 MLP layers left a 769% residual at m=16).
LARGE = Profile(main=(2, 8, 16, 4), reps=3, chunk=(2, 8, 16, 4), chunks=(1, 2, 4), naive=(2, 4, 32, 2),
                captum_steps=(1, 4), shared=(2, 68, 16, 1), memory_gen=(32, 64, 128),
                memory_shape=(2, 8, 1), memory_plain=False, memory_workers=2, shots=2,
                quadrature=(2, 0, 16, 64), quadrature_prompts=2, quadrature_baseline="mean",
                scaling=(2, 8, 8, 2),  # G = 2: leave-one-out advantages need two samples
                overhead_targets=("<= 0.9", "<= 0.6"),  # issue 16, item 2
                overhead_wide=(4, 8, 48, 4))  # G = 4, T = 48: above the old 32 MiB softmax budget
LARGE_PARAMS = 50e6
QUICK = Profile(main=(2, 8, 16, 4), reps=1, chunk=(2, 8, 16, 4), chunks=(1, 2, 4),
                naive=(2, 4, 24, 2), captum_steps=(1, 4), shared=(2, 51, 9, 4),
                memory_gen=(32, 64, 128), memory_shape=(2, 8, 1), memory_plain=False,
                memory_workers=3, shots=2, quadrature=(2, 8, 8, 16), quadrature_prompts=2,
                scaling=(2, 8, 8, 2), scaling_memory=False)
QUICK_MODEL = "random-qwen2-tiny"


def meets(value: float, target: str) -> bool | None:
    match = re.fullmatch(r"\s*(<=|>=|<|>)\s*([0-9.eE+-]+)\s*", target or "")
    if not match or not math.isfinite(value):
        return None
    bound = float(match.group(2))
    return {"<=": value <= bound, ">=": value >= bound, "<": value < bound,
            ">": value > bound}[match.group(1)]


def _engine(model, table, m: int, chunk: int = 1, positions: str = "all"):
    return ipg_run(model, table, m, chunk, positions=positions)


def _rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))


def bench_model_rows(spec: str, profile: Profile, log: Callable[[str], None],
                     benches: tuple[str, ...] = BENCHES, results_dir: str = "results",
                     rows: list[dict] | None = None) -> list[dict]:
    """The selected benches for one model; rows of the tidy table, appended to `rows` as they
    are measured (so a caller keeps what was measured before an error)."""
    from ipg.bench.captum_ref import captum_ipg
    from ipg.bench.memory import measure
    from ipg.bench.naive import naive_ipg

    model, label = bench_model(spec)
    vocab, threads = model.config.vocab_size, torch.get_num_threads()
    rows = [] if rows is None else rows

    def row(bench, variant, shape, value, unit, target="", n_prompts=1):
        n, p, t, m = shape
        load = load_average()
        rows.append(dict(bench=bench, variant=variant, model=label, n_prompts=n_prompts, n_traj=n,
                         prompt_len=p, gen_len=t, m=m, threads=threads, value=float(value),
                         unit=unit, target=target, meets_target=meets(float(value), target),
                         load_avg=load))
        log(f"  {bench:<24} {variant:<28} {value:>10.4g} {unit} {target}  (load {load:.2f})")

    def table_of(shape):
        n, p, t, _ = shape
        return synthetic_table(vocab, n, p, t)

    n_params = sum(p.numel() for p in model.parameters())
    if profile is not QUICK and n_params > LARGE_PARAMS:
        profile = LARGE
    log(f"== {label}: {n_params / 1e6:.1f}M parameters, {threads} threads")
    on = set(benches)
    # 5. chunk: path points on the batch dimension (first: the other benches use the best)
    best = profile.chunk[3] if "chunk" in on else 8
    if "chunk" in on:
        shape = profile.chunk
        table, m = table_of(shape), shape[3]
        chunks = [c for c in profile.chunks if c <= m]
        times = interleaved({c: _engine(model, table, m, c) for c in chunks}, profile.reps)
        for c in chunks:
            row("chunk_time", f"chunk={c}", shape, times[c] / times[1], "ratio to chunk=1")
        best = min(chunks, key=lambda c: times[c])
        row("chunk_best", "fastest chunk", shape, best, "path points per batch")

    # 1. overhead over m plain forward + backward passes of the same batch
    shape = profile.main
    table, m = table_of(shape), shape[3]
    best = min(best, m)
    batch = dense_batch(table)
    fns = {1: _engine(model, table, m, 1), best: _engine(model, table, m, best),
           "plain": lambda: plain_passes(model, batch, m)}
    if "overhead" in on:
        _overhead_rows(fns, shape, best, profile, row, _float64_reference(model, table, m))
        if profile.overhead_wide:  # where the old fixed 32 MiB budget recomputed the softmax
            shape_w = profile.overhead_wide
            table_w, m_w = table_of(shape_w), shape_w[3]
            c_w = min(best, m_w)
            batch_w = dense_batch(table_w)
            _overhead_rows({1: _engine(model, table_w, m_w, 1), c_w: _engine(model, table_w, m_w, c_w),
                            "plain": lambda: plain_passes(model, batch_w, m_w)},
                           shape_w, c_w, profile, row, _float64_reference(model, table_w, m_w))
        att = fns[1]()  # the timed configuration (zero baseline, small m): not the study's accuracy
        row("completeness_residual", f"chunk=1, timed run (m={m}, zero baseline)", shape,
            att.metrics["completeness_residual_pooled"], "relative")

    # 8. achieved FLOP/s over the machine's dense matmul FLOP/s, same batch as the overhead
    if "flops" in on:
        from ipg.bench.flops import flops_rows

        flops_rows({f"ipg (chunk={best})": fns[best], "plain fwd+bwd": fns["plain"]}, shape,
                   profile.reps, row)

    # 3. captum LayerIntegratedGradients, internal_batch_size tuned over a small set
    if "captum" in on:
        g = shape[0]
        steps = [s for s in profile.captum_steps if s <= m]
        tune = interleaved({s: (lambda s=s: captum_ipg(model, batch, m, s * g)) for s in steps}, 1)
        s_best = min(steps, key=lambda s: tune[s])
        times = interleaved({"engine": fns[best],
                             "captum": lambda: captum_ipg(model, batch, m, s_best * g)}, profile.reps)
        row("captum_ratio", f"chunk={best}; captum internal_batch_size={s_best * g}", shape,
            times["engine"] / times["captum"], "ratio", "<= 1.0")
        got = torch.tensor(fns[1]().per_prompt[0], dtype=torch.float64)
        row("captum_agreement", "max |diff| / max |score|", shape,
            _rel_error(captum_ipg(model, batch, m, s_best * g), got), "relative", "<= 0.001")

    # 2. the naive loop over path points and generated tokens, on a small case
    if "naive" in on:
        shape_n = profile.naive
        table_n = table_of(shape_n)
        batch_n = dense_batch(table_n)
        engine_n = _engine(model, table_n, shape_n[3], 1)
        got_n = torch.tensor(engine_n().per_prompt[0], dtype=torch.float64)  # also the warm-up
        naive = {}
        times = interleaved({"engine": engine_n,
                             "naive": lambda: naive.update(s=naive_ipg(model, batch_n, shape_n[3]))},
                            profile.naive_reps, warmup=False)
        row("naive_speedup", "naive / engine (chunk=1)", shape_n, times["naive"] / times["engine"],
            "ratio", ">= 20")
        row("naive_agreement", "max |diff| / max |score|", shape_n, _rel_error(naive["s"], got_n),
            "relative", "<= 0.001")

    # 6. shared prompt KV cache (positions=generated) vs positions=all, long prompt
    if "shared" in on:
        from ipg.bench.fewshot import fewshot_table

        n_s, p_s, t_s, m_s = profile.shared
        table_s = fewshot_table(spec, label, profile.shots, n_s, t_s, results_dir)
        what = f"{profile.shots}-shot own trajectories"
        if table_s is None:
            table_s, what = table_of(profile.shared), "synthetic prompt"
        p_s = len(table_s["prompt_ids"].iloc[0])
        t_s = max(len(g) for g in table_s["gen_ids"])
        times = interleaved({"all": _engine(model, table_s, m_s, best, "all"),
                             "generated": _engine(model, table_s, m_s, best, "generated")},
                            profile.reps)
        row("shared_prompt_speedup", f"all / generated (chunk={best}; {what})",
            (len(table_s), p_s, t_s, m_s), times["all"] / times["generated"], "ratio", ">= 3")

    # 7. path points and seconds to a median completeness residual < 1%, per quadrature
    if "quadrature" in on:
        from ipg.bench.fewshot import real_table
        from ipg.bench.quadrature_cost import quadrature_rows

        n_q, p_q, t_q, m_max = profile.quadrature
        table_q = real_table(spec, label, profile.quadrature_prompts, n_q, t_q, results_dir)
        if table_q is None:
            table_q = synthetic_table(vocab, n_q, p_q, t_q, n_prompts=profile.quadrature_prompts)
        p_q = max(len(x) for x in table_q["prompt_ids"])
        positions = "generated" if profile.quadrature_baseline == "mean" else "all"
        quadrature_rows(model, table_q, (n_q, p_q, t_q, m_max), m_max, best, profile.reps,
                        lambda *a, **k: row(*a, **k, n_prompts=profile.quadrature_prompts),
                        profile.quadrature_baseline, positions)

    # 9. time and memory as T, m, N and the number of layers double
    if "scaling" in on:
        from ipg.bench.scaling import scaling_rows

        scaling_rows(spec, model, profile.scaling, profile.reps, threads, row,
                     profile.memory_workers, profile.scaling_memory)

    # 4. peak memory as the generation length doubles, a fresh process per size
    # (processes run concurrently: each one's peak RSS is its own; no time is compared)
    if "memory" in on:
        n, p, m_mem = profile.memory_shape
        whats = ("ipg", "plain") if profile.memory_plain else ("ipg",)
        jobs = [(what, t) for what in whats for t in profile.memory_gen]
        with ThreadPoolExecutor(max_workers=profile.memory_workers) as pool:
            results = dict(zip(jobs, pool.map(
                lambda job: measure(spec, job[0], n, p, job[1], m_mem, threads=threads), jobs)))
        for what in whats:
            peaks = []
            for t in profile.memory_gen:
                res = results[(what, t)]
                peaks.append(max(res["peak_mib"] - res["base_mib"], 1e-3))
                row("peak_memory", f"{what} T={t}", (n, p, t, m_mem), peaks[-1], "MiB above start")
            row("memory_exponent", what, (n, p, max(profile.memory_gen), m_mem),
                _fit_exponent(list(profile.memory_gen), peaks), "exponent of T",
                "<= 1.1" if what == "ipg" else "")

    # 10. decoder-layer checkpointing and bf16 autocast
    if "execution" in on:
        from ipg.bench.execution import execution_rows

        execution_rows(spec, model, profile.main, best, profile.reps, profile.memory_shape,
                       2 * max(profile.memory_gen), threads, row)
    return rows


def _overhead_rows(fns: dict, shape, best: int, profile: Profile, row,
                   reference: Callable[[], torch.Tensor]) -> None:
    """IPG / m plain passes at chunk 1 and the best chunk, for the current pass and the pass
    before issue 16 (ipg.bench.legacy) timed in the same interleaved rounds; how far the two
    passes' scores differ, and each one's float rounding: its distance to `reference()`, the
    old pass's scores on a float64 copy of the model."""
    from ipg.bench.legacy import legacy

    old = {f"old{c}": legacy(fns[c]) for c in dict.fromkeys([1, best])}
    times = interleaved({**fns, **old}, profile.reps)
    ref = reference()
    for c in dict.fromkeys([1, best]):
        what = f"chunk={c}" + (" (one path point per pass)" if c == 1 else " (best)")
        target = profile.overhead_targets[0 if c == 1 else 1]
        row("overhead_vs_backprop", what, shape, times[c] / times["plain"], "ratio", target)
        row("overhead_vs_backprop", f"{what} [before issue 16]", shape,
            times[f"old{c}"] / times["plain"], "ratio", target)
        new_s = torch.tensor(fns[c]().per_prompt[0], dtype=torch.float64)
        old_s = torch.tensor(old[f"old{c}"]().per_prompt[0], dtype=torch.float64)
        old_err = _rel_error(old_s, ref)
        row("overhead_agreement", f"chunk={c}: max |new - old| / max |old| (0: bitwise)", shape,
            _rel_error(new_s, old_s), "relative", "<= 1e-04")
        row("score_rounding", f"chunk={c} [before issue 16]: max |old - float64| / max |float64|",
            shape, old_err, "relative")
        # float32 rounding: both passes round differently (the linear route sums the path
        # points' gradients before the matmul), each well inside this bound
        row("score_rounding", f"chunk={c}: max |new - float64| / max |float64|", shape,
            _rel_error(new_s, ref), "relative", "<= 1e-04")


def _float64_reference(model, table, m: int) -> Callable[[], torch.Tensor]:
    """The old pass's scores (chunk 1) on a float64 copy of the model: the reference that
    the float32 passes' rounding is measured against."""
    import copy

    from ipg.bench.legacy import legacy

    def scores() -> torch.Tensor:
        wide = copy.deepcopy(model).double()
        att = legacy(_engine(wide, table, m, 1))()
        return torch.tensor(att.per_prompt[0], dtype=torch.float64)

    return scores


def run_bench(models: list[str] | None = None, quick: bool = False, csv_path: str | Path | None = None,
              png_path: str | Path | None = None, threads: int | None = None,
              log: Callable[[str], None] | None = None, benches: list[str] | None = None,
              results_dir: str = "results") -> pd.DataFrame:
    """Run the benches (default: all) for every model; write the CSV (after each model) and
    the figure; return the table."""
    from ipg.errors import IPGError

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    if threads:
        torch.set_num_threads(int(threads))
    unknown = sorted(set(benches or ()) - set(BENCHES))
    if unknown:
        raise IPGError(f"unknown bench '{unknown[0]}' (--only); allowed: {', '.join(BENCHES)}")
    chosen = tuple(b for b in BENCHES if not benches or b in benches)
    profile = QUICK if quick else FULL
    models = models or [QUICK_MODEL if quick else DEFAULT_MODEL]
    log(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows: list[dict] = []
    try:
        for spec in models:
            bench_model_rows(spec, profile, log, chosen, results_dir, rows)
            _write_csv(rows, csv_path)
    except BaseException:  # keep the rows measured so far (a partial table, said in the log)
        if rows and csv_path:
            _write_csv(rows, csv_path)
            log(f"stopped early: the {len(rows)} rows measured so far are in {csv_path}")
        raise
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if png_path:
        from ipg.bench.plot import plot_bench

        plot_bench(frame, png_path)
    return frame


def _write_csv(rows: list[dict], csv_path: str | Path | None) -> None:
    from ipg.study.trajectories import write_csv_atomic

    if csv_path:
        write_csv_atomic(pd.DataFrame(rows, columns=COLUMNS), csv_path)


def format_table(frame: pd.DataFrame) -> str:
    """The table for a terminal: one line per measurement, shapes as G x P+T, m."""
    view = frame.assign(
        shape=[f"{r.n_traj}x{r.prompt_len}+{r.gen_len} m{r.m}" for r in frame.itertuples()],
        value=[f"{v:.4g}" for v in frame["value"]],
        ok=frame["meets_target"].map({True: "yes", False: "NO"}).fillna(""))
    return view[["model", "bench", "variant", "shape", "value", "unit", "target", "ok"]].to_string(index=False)
