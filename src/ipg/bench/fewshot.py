"""Few-shot trajectory tables from a built model's own sampled trajectories (shared-prompt bench).

    table = fewshot_table("results/models/smollm2-135m", "smollm2-135m", shots=2, n_traj=2, gen_len=24)

The study's trajectories of the model (results/trajectories/{label}/{task}/0.parquet, the first
task found) give real prompts and generated tokens. A k-shot prompt is the token sequence of
k OTHER prompts' (prompt + one of their generated continuations), then the prompt itself:
    prompt_ids' = [p_1 + g_1] + ... + [p_k + g_k] + p,
a few-shot context in the model's own format (its chat template, its stop tokens). The G
continuations of the prompt are kept (cut to gen_len tokens) and teacher-forced as they are:
the engine's cost depends on the token counts, not on whether the few-shot model would have
sampled them. Rewards are set to 0, 1, 0, 1, ... so every prompt has non-zero advantages
(the time does not depend on their values). None when the model has no trajectories.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ipg.bench.workload import TEMPERATURE, split_layers


def trajectories_of(spec: str, label: str, results_dir: str = "results") -> pd.DataFrame | None:
    """The model's first trajectory table under {results}/trajectories/{label}/ (None: none)."""
    spec, _ = split_layers(spec)
    roots = [Path(results_dir) / "trajectories" / label]
    if Path(spec).exists():  # a model folder results/models/{name}: its results dir
        roots.insert(0, Path(spec).resolve().parent.parent / "trajectories" / label)
    for root in roots:
        files = sorted(root.glob("*/0.parquet")) if root.is_dir() else []
        if files:
            return pd.read_parquet(files[0])
    return None


def fewshot_table(spec: str, label: str, shots: int, n_traj: int, gen_len: int,
                  results_dir: str = "results") -> pd.DataFrame | None:
    """One k-shot prompt with n_traj of its own continuations (cut to gen_len tokens, all at
    least gen_len long where the table allows), in the trajectory table's schema."""
    frame = trajectories_of(spec, label, results_dir)
    if frame is None:
        return None
    groups = [g.sort_values("sample_id") for _, g in frame.groupby("prompt_id", sort=True)]
    if len(groups) < shots + 1:
        return None
    # the target: the prompt whose n_traj longest continuations are longest
    target = max(groups, key=lambda g: sorted(map(len, g["gen_ids"]), reverse=True)[:n_traj][-1])
    others = [g for g in groups if g is not target][:shots]
    context: list[int] = []
    for g in others:
        best = max(g["gen_ids"], key=len)
        context += list(g["prompt_ids"].iloc[0]) + list(best)
    prompt = context + list(target["prompt_ids"].iloc[0])
    gens = sorted(target["gen_ids"], key=len, reverse=True)[:n_traj]
    rows = [dict(prompt_id="fewshot", sample_id=j, prompt_ids=prompt, gen_ids=list(g)[:gen_len],
                 reward_accuracy=float(j % 2), reward_length=float(len(g)),
                 temperature=TEMPERATURE) for j, g in enumerate(gens)]
    return pd.DataFrame(rows)


def real_table(spec: str, label: str, n_prompts: int, n_traj: int, gen_len: int,
               results_dir: str = "results") -> pd.DataFrame | None:
    """n_prompts of the model's own prompts with n_traj continuations each (cut to gen_len),
    rewards 0, 1, 0, 1, ... (None: no trajectories)."""
    frame = trajectories_of(spec, label, results_dir)
    if frame is None:
        return None
    rows = []
    for pid, g in list(frame.groupby("prompt_id", sort=True))[:n_prompts]:
        for j, gen in enumerate(g.sort_values("sample_id")["gen_ids"].iloc[:n_traj]):
            rows.append(dict(prompt_id=pid, sample_id=j, prompt_ids=list(g["prompt_ids"].iloc[0]),
                             gen_ids=list(gen)[:gen_len], reward_accuracy=float(j % 2),
                             reward_length=float(len(gen)), temperature=TEMPERATURE))
    return pd.DataFrame(rows)
