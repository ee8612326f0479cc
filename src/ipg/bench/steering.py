"""`ipg bench steering`: the cost of an active intervention during generation.

On the same prompts and seed of each model (ipg.bench.sampling's models and prompts), the
study's batched sampler runs plain and inside `steer(model, units, gamma=2)` (forward hooks
scaling k MLP neurons spread over every layer). Rows:
  - steering_overhead: steered / plain time on IDENTICAL work: both runs replay the plain
    run's token sequences (ipg.bench.sampling.forced_tokens), so the forwards, batch sizes
    and dropped rows are the same and only the hooks differ                        <= 1.05
  - steering_time_free: steered / plain time of free sampling (same seed): the steered
    model's trajectories differ in length, so this mixes the hooks' cost with the change
    in the work; reported with the generated-token ratio and the per-token time ratio.
Times: medians over interleaved rounds (plain, steered / steered, plain, ...) of the paired
ratio, by the wall clock and by CPU (process) time, which leaves out waiting for a core.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from ipg.bench.workload import load_average
from ipg.bench.sampling import (
    COLUMNS, DEFAULT_THREADS, FULL, QUICK, Profile, Rounds, default_log, forced_tokens,
    format_table, gen_model, meets, resolve_models, write_csv,
)

GAMMA = 2.0
N_UNITS = 16
FULL_REPS = 11  # a 5% target on a shared CPU: more repetitions than the throughput bench
QUICK_REPS = 2


def pick_units(model, k: int = N_UNITS, seed: int = 0) -> list[str]:
    """k MLP neurons spread evenly over the layers (a fixed random draw)."""
    from ipg.core.units import get_granularity

    gran = get_granularity("neurons", model)
    layers = gran.available_layers()
    rng = random.Random(seed)
    units = []
    for j in range(k):
        layer = layers[j % len(layers)]
        units.append(gran.unit_id(layer, rng.randrange(gran.unit_shape(layer)[0])))
    return sorted(set(units))


def bench_model_rows(spec: str, profile: Profile, threads: int, log: Callable[[str], None],
                     results_dir: str = "results", reps: int | None = None) -> list[dict]:
    from ipg.core.intervention import steer
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    p = profile
    reps = reps or (QUICK_REPS if p is QUICK else FULL_REPS)
    gm = gen_model(spec, p.prompts, p.max_new_tokens, results_dir)
    units = pick_units(gm.model)
    cfg = SamplingConfig(p.temperature, p.max_new_tokens, len(gm.prompts), 0)
    shapes = (f"P={p.prompts} G={p.samples} max_new={p.max_new_tokens} T={p.temperature:g} "
              f"units={len(units)} neurons gamma={GAMMA:g}")
    rows: list[dict] = []

    def row(bench, variant, value, unit, target=""):
        rows.append(dict(bench=bench, variant=variant, model=gm.label, shapes=shapes,
                         threads=threads, value=float(value), unit=unit, target=target,
                         meets_target=meets(float(value), target), load_avg=load_average()))
        log(f"  {bench:<22} {variant:<44} {value:>10.4g} {unit} {target}")

    log(f"== steering {gm.label}: {threads} threads, {shapes}")

    def sample():
        return sample_trajectories(gm.model, gm.tokenizer, gm.prompts, p.samples, cfg,
                                   progress=False)[0]

    counts: dict[str, int] = {}
    seqs: list[list[int]] = [t.gen_ids for t in sample()]  # also a warm-up

    def free(steered: bool) -> Callable[[], None]:
        def fn() -> None:
            if steered:
                with steer(gm.model, units, GAMMA):
                    trajs = sample()
            else:
                trajs = sample()
            counts["steered" if steered else "plain"] = sum(len(t.gen_ids) for t in trajs)
        return fn

    def replay(steered: bool) -> Callable[[], None]:
        def fn() -> None:
            with forced_tokens(seqs):
                if steered:
                    with steer(gm.model, units, GAMMA):
                        sample()
                else:
                    sample()
        return fn

    free(True)()  # warm-up of the hooks
    rounds = Rounds({"plain": replay(False), "steered": replay(True)}, reps)
    for clock, note in (("wall", ""), ("cpu", " (CPU time)")):
        row("steering_overhead", f"steered / plain, identical token sequences{note}",
            rounds.ratio("steered", "plain", clock), "ratio", "<= 1.05")
    rounds = Rounds({"plain": free(False), "steered": free(True)}, reps)
    tokens = counts["steered"] / counts["plain"]
    for clock, note in (("wall", ""), ("cpu", " (CPU time)")):
        time_ratio = rounds.ratio("steered", "plain", clock)
        row("steering_time_free", f"steered / plain, free sampling (same seed){note}",
            time_ratio, "ratio")
        row("steering_time_per_token_free", f"steered / plain time per generated token{note}",
            time_ratio / tokens, "ratio")
    row("steering_tokens_free", "steered / plain generated tokens", tokens, "ratio")
    return rows


def run_bench(models: Sequence[str] | None = None, quick: bool = False,
              csv_path: str | Path | None = None, threads: int | None = None,
              log: Callable[[str], None] | None = None, results_dir: str = "results",
              profile: Profile | None = None, reps: int | None = None) -> pd.DataFrame:
    log = log or default_log
    threads = int(threads or DEFAULT_THREADS)
    torch.set_num_threads(threads)
    profile = profile or (QUICK if quick else FULL)
    specs = resolve_models(models, quick, results_dir, log)
    rows = [r for spec in specs
            for r in bench_model_rows(spec, profile, threads, log, results_dir, reps)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(frame, csv_path)
    return frame


__all__ = ["run_bench", "format_table", "pick_units"]
