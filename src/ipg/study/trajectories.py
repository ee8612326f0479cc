"""Trajectories: sample G chains of thought per prompt and score them with outcome rewards.

Produces the table every attribution method consumes (one row per trajectory):
prompt_id, sample_id, prompt, answer, prompt_ids, gen_ids, text, pred, reward_accuracy,
reward_length, logprob, truncated, temperature, entropy. `logprob` is log pi(tau; h) of Eq. 1
at the unmodified activations, summed over generated tokens; `entropy` (optional when
reading: older tables lack it) is the mean next-token entropy of the trajectory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ipg.core.checkpoint import ChunkStore, fingerprint
from ipg.errors import IPGError
from ipg.config.jobs import SamplingSettings
from ipg.core.rewards import accuracy_reward, length_reward
from ipg.core.sampling import SamplingConfig, sample_trajectories
from ipg.tasks import get_task

TRAJECTORY_COLUMNS = [
    "prompt_id", "sample_id", "prompt", "answer", "prompt_ids", "gen_ids", "text", "pred",
    "reward_accuracy", "reward_length", "logprob", "truncated", "temperature",
]
OPTIONAL_COLUMNS = ["entropy"]  # written by trajectories_for_prompts, not required when reading


def trajectories_for_prompts(
    model,
    tokenizer,
    prepared: pd.DataFrame,
    task_name: str,
    chat: bool,
    n_samples: int,
    cfg: SamplingConfig,
    progress: bool = True,
    store: ChunkStore | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sample and score `n_samples` trajectories for every row of a prepared task frame
    (resuming from `store`'s saved batches, ipg.core.checkpoint)."""
    from ipg.models.load import render_prompt

    task = get_task(task_name)
    rendered = [render_prompt(tokenizer, p, chat) for p in prepared["prompt"]]
    trajs, stats = sample_trajectories(model, tokenizer, rendered, n_samples, cfg, progress, store)
    eos_ids = set()
    for t in trajs:
        if not t.truncated:
            eos_ids.add(t.gen_ids[-1])
    rows = []
    for t in trajs:
        src = prepared.iloc[t.prompt_index]
        text = tokenizer.decode(t.gen_ids, skip_special_tokens=True)
        pred = task.extract_answer(text)
        rows.append({
            "prompt_id": src["prompt_id"],
            "sample_id": t.sample_id,
            "prompt": rendered[t.prompt_index],
            "answer": str(src["answer"]),
            "prompt_ids": t.prompt_ids,
            "gen_ids": t.gen_ids,
            "text": text,
            "pred": pred,
            "reward_accuracy": accuracy_reward(task, pred, str(src["answer"])),
            "reward_length": length_reward(t.gen_ids, t.truncated),
            "logprob": t.logprob,
            "truncated": t.truncated,
            "temperature": cfg.temperature,
            "entropy": t.entropy,
        })
    frame = pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS + OPTIONAL_COLUMNS)
    return frame, summarize(frame) | stats


def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    """Accuracy, length spread and the fraction of prompts whose rewards vary (non-zero advantage)."""
    by_prompt = frame.groupby("prompt_id")
    varies_acc = by_prompt["reward_accuracy"].nunique() > 1
    varies_len = by_prompt["reward_length"].nunique() > 1
    greedy_like = by_prompt["reward_accuracy"].mean()
    return {
        "n_prompts": int(frame["prompt_id"].nunique()),
        "n_trajectories": int(len(frame)),
        "accuracy": float(frame["reward_accuracy"].mean()),
        "accuracy_prompt_std": float(greedy_like.std(ddof=0)) if len(greedy_like) else 0.0,
        "mean_length": float(frame["reward_length"].mean()),
        "std_length": float(frame["reward_length"].std(ddof=0)),
        "truncated_fraction": float(frame["truncated"].mean()),
        "frac_prompts_nonzero_adv_accuracy": float(varies_acc.mean()),
        "frac_prompts_nonzero_adv_length": float(varies_len.mean()),
        "unparsed_fraction": float(frame["pred"].isna().mean()),
    }


def _write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Write through a temp file and rename, so a crash never leaves a half-written `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    _write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    _write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_json_atomic(obj: dict[str, Any], path: str | os.PathLike) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(
        json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_trajectories(path: str | os.PathLike) -> pd.DataFrame:
    """Read a trajectory table, with a one-line error for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.exists():
        raise IPGError(f"trajectory file {path} does not exist; run the trajectories rule first")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise IPGError(
            f"trajectory file {path} is not readable parquet ({type(exc).__name__}); "
            "delete it and rerun the trajectories rule"
        ) from None
    missing = [c for c in TRAJECTORY_COLUMNS if c not in frame.columns]
    if missing:
        raise IPGError(f"trajectory file {path} lacks columns {missing}; regenerate it")
    return frame


def run_sampling(
    model_dir: str,
    prepared_path: str,
    task: str,
    chat: bool,
    split: str,
    seed: int,
    sampling: SamplingSettings,
    table_path: str,
    metrics_path: str,
    progress: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Load a model and a prepared split, sample G trajectories per prompt, write table + metrics.
    `sampling`: the typed settings (ipg.config.jobs.SamplingSettings), used as is.

    Progress is saved per batch of prompts in `<table_path>.chunks/` (ipg.core.checkpoint): a
    killed run resumes from its last saved batch with identical results. device: None / "auto"
    = ipg.core.devices.resolve_device's choice; it is part of the checkpoint key (a GPU draws other
    random numbers than the CPU: batches of two devices are never mixed)."""
    from ipg.core.devices import resolve_device
    from ipg.models.load import load_model
    from ipg.study.provenance import provenance
    from ipg.tasks.prepare import read_prepared

    if not isinstance(sampling, SamplingSettings):
        raise IPGError(f"run_sampling takes a SamplingSettings (SamplingSettings.from_dict("
                       f"settings)), got {type(sampling).__name__}")
    device = resolve_device(device)  # a bad device: one line before reading anything
    prepared = read_prepared(prepared_path, split=split)
    if sampling.n_prompts:
        prepared = prepared.head(sampling.n_prompts)
    model, tokenizer = load_model(model_dir, device=device)
    n_samples = sampling.samples_per_prompt
    cfg = sampling.sampler(seed)
    key = fingerprint([model_dir, prepared_path], task=task, chat=chat, split=split,
                      n_prompts=len(prepared), n_samples=n_samples, cfg=cfg.__dict__,
                      device=str(device))
    store = ChunkStore.for_output(table_path, key, chunk_size=cfg.prompts_per_batch)
    frame, metrics = trajectories_for_prompts(
        model, tokenizer, prepared, task, chat, n_samples, cfg, progress, store
    )
    metrics.update(provenance({"model_dir": str(model_dir), "task": task, "split": split,
                               "seed": seed, "samples_per_prompt": n_samples, **cfg.__dict__}))
    metrics["device"] = str(device)  # where it ran (not a param: the config hash ignores it)
    write_table_atomic(frame, table_path)
    write_json_atomic(metrics, metrics_path)
    store.clear()
    return metrics


SUMMARY_KEYS = ("accuracy", "mean_length", "std_length", "truncated_fraction",
                "frac_prompts_nonzero_adv_accuracy", "frac_prompts_nonzero_adv_length",
                "tokens_per_second", "n_trajectories")


def summarize_files(metric_paths: list[str], out_path: str) -> dict[str, Any]:
    """Collect per-file trajectory metrics into {"<model>/<task>/<seed>": {...}}."""
    summary = {}
    for path in metric_paths:
        p = Path(path)
        key = "/".join([p.parent.parent.name, p.parent.name, p.stem])
        metrics = json.loads(p.read_text())
        summary[key] = {k: metrics[k] for k in SUMMARY_KEYS if k in metrics}
    write_json_atomic(summary, out_path)
    return summary
