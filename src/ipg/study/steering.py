"""Steering evaluation (docs/method.md, Eq. 4 and "Evaluation: paired verdicts on held-out prompts").

On the held-out prompts, sampled at the trajectories' temperature (never greedy):

- `evaluate_steering`: accuracy, length and next-token entropy after scaling the top-k
  (signed), bottom-k and top-|k| units of an attribution table by gamma (Eq. 4), for every
  k and gamma and sampling seed, plus the unsteered baseline on the same prompts and seeds.
- `temperature_control`: the unsteered model at other temperatures (the sharpening control:
  a gain from enhancing units must beat simply sampling at the same next-token entropy);
  `entropy_matched` reads off its accuracy at each steered condition's entropy.
- `deletion_curve`: metric vs k with the selected units ablated (gamma = 0); k = 0 is the baseline.
  `run_steering` adds it for the signed selection (rows with selection "deletion", k in
  deletion_ks and 0) and, with mean_ablation, the signed top-k of every k replaced by its
  mean activation (selection "mean_ablation", mode "mean", gamma 0): the means are taken
  over every position (prompt and generated tokens) of the model's attribution trajectories
  (ipg.core.intervention.trajectory_means).
- `transfer` (a set selected on one model steering another of the same architecture),
  `run_steering` (the Snakemake entry point).
- `summarize`, `entropy_matched`, `selected_sets`, `jaccard_table` live in
  ipg.study.steering_summary (no model needed).

Rows (`ROW_COLUMNS`, one per condition x seed x prompt): condition, selection ("none" for
the baseline, "temperature" for the control, "deletion" / "mean_ablation" for the extra
signed-set conditions above), k, gamma, mode, temperature, seed, prompt_id,
accuracy / length / entropy / truncated (means over the G samples), n_units, n_samples,
then the caller's label columns (method, granularity, ...). Each condition x seed is one
batched sampler call over all prompts x G samples; identical unit sets are sampled once.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ipg.errors import IPGError
from ipg.core.intervention import check_transfer, steer
from ipg.study.steering_summary import (
    BASELINE, METRICS, ROW_COLUMNS, _scores, entropy_matched, summarize,
)
from ipg.config.jobs import UNSTEERED_SETTINGS, SteeringConfig
from ipg.core.sampling import SamplingConfig


def _check_prompts(prompts: pd.DataFrame) -> None:
    missing = [c for c in ("prompt_id", "prompt", "answer") if c not in prompts.columns]
    if missing:
        raise IPGError(f"prompts frame lacks column(s) {missing}; pass a prepared split "
                       "(ipg.tasks.prepare.read_prepared(path, split='heldout'))")
    if prompts.empty:
        raise IPGError("no held-out prompts to evaluate on: the prompts frame is empty")
    if prompts["prompt_id"].duplicated().any():
        raise IPGError("prompts frame has a repeated prompt_id; pass each prompt once")


class _Runner:
    """Samples one condition (unit set, gamma, temperature) for every seed; caches repeats.

    With a `store` (ipg.core.checkpoint; its key covers the model, prompts and params), each
    condition x seed sampler call is one saved chunk, named by (mode, units, gamma, seed,
    temperature): a rerun loads it instead of sampling. Each call seeds its own generators
    from its seed, so the rows are identical whether or not a run was interrupted."""

    def __init__(self, model, tokenizer, task: str, prompts: pd.DataFrame, chat: bool,
                 samples_per_prompt: int, sampling: SamplingConfig | None, sae: Any,
                 mode: str, means: Any, progress: bool, store: Any = None) -> None:
        _check_prompts(prompts)
        self.store = store  # ipg.core.checkpoint.ChunkStore or None
        self.model, self.tokenizer, self.task, self.chat = model, tokenizer, task, chat
        self.prompts = prompts.reset_index(drop=True)
        self.G, self.cfg = int(samples_per_prompt), sampling or SamplingConfig()
        self.sae, self.mode, self.means = sae, mode, means
        self.cache: dict[tuple, pd.DataFrame] = {}
        from tqdm.auto import tqdm

        self.bar = tqdm(desc="steering (condition x seed)", unit="run", disable=not progress)

    def metrics(self, units: Sequence[str], gamma: float, seed: int,
                temperature: float | None = None) -> pd.DataFrame:
        """Per-prompt means over the G samples: [prompt_id, accuracy, length, entropy, truncated]."""
        from ipg.study.trajectories import trajectories_for_prompts

        t = self.cfg.temperature if temperature is None else float(temperature)
        key = (frozenset(units), float(gamma) if units else 1.0, seed, t)
        if key not in self.cache:
            name = self._chunk_name(key)
            saved = self.store.load(name) if self.store is not None else None
            if saved is None:
                cfg = replace(self.cfg, seed=int(seed), temperature=t)
                with steer(self.model, list(units), gamma, sae=self.sae, mode=self.mode,
                           means=self.means):
                    frame, _ = trajectories_for_prompts(self.model, self.tokenizer, self.prompts,
                                                        self.task, self.chat, self.G, cfg,
                                                        progress=False)
                per_prompt = frame.groupby("prompt_id", sort=False).agg(
                    accuracy=("reward_accuracy", "mean"), length=("reward_length", "mean"),
                    entropy=("entropy", "mean"), truncated=("truncated", "mean"))
                per_prompt = per_prompt.reindex(self.prompts["prompt_id"])
                saved = {m: per_prompt[m].to_numpy(np.float64) for m in METRICS}
                if self.store is not None:
                    self.store.save(name, saved)
            self.bar.update(1)  # resumed calls count too
            self.cache[key] = pd.DataFrame({"prompt_id": self.prompts["prompt_id"].to_numpy(),
                                            **{m: saved[m] for m in METRICS}})
        return self.cache[key]

    def _chunk_name(self, key: tuple) -> str:
        """A file-safe name of one condition x seed (units sorted: a set's order is not data)."""
        import hashlib
        import json

        units, gamma, seed, t = key
        text = json.dumps([self.mode, sorted(units), gamma, int(seed), t])
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def rows(self, condition: str, selection: str, k: int, units: Sequence[str], gamma: float,
             seeds: Iterable[int], labels: Mapping[str, Any],
             temperature: float | None = None) -> list[pd.DataFrame]:
        out = []
        for seed in seeds:
            m = self.metrics(units, gamma, seed, temperature).copy()
            m = m.assign(condition=condition, selection=selection, k=int(k), gamma=float(gamma),
                         mode=self.mode, seed=int(seed), n_units=len(units), n_samples=self.G,
                         temperature=self.cfg.temperature if temperature is None else temperature)
            out.append(m.assign(**dict(labels)))
        return out


def _frame(parts: list[pd.DataFrame], labels: Mapping[str, Any]) -> pd.DataFrame:
    if not parts:
        raise IPGError("nothing to evaluate: no selection, k, gamma or seed (and no baseline)")
    frame = pd.concat(parts, ignore_index=True)
    return frame[ROW_COLUMNS + [c for c in labels if c not in ROW_COLUMNS]]


def evaluate_unit_sets(model, tokenizer, task: str, prompts_frame: pd.DataFrame,
                       unit_sets: Mapping[str, Sequence[str]], gammas: Sequence[float],
                       seeds: Sequence[int] = (0,), samples_per_prompt: int = 4,
                       sampling: SamplingConfig | None = None, sae: Any = None,
                       baseline_condition: bool = True, chat: bool = False, mode: str = "scale",
                       means: Any = None, labels: Mapping[str, Any] | None = None,
                       progress: bool = False, _runner: _Runner | None = None) -> pd.DataFrame:
    """Rows for explicit named unit sets ({selection label: units}) at every gamma and seed."""
    labels = dict(labels or {})
    run = _runner or _Runner(model, tokenizer, task, prompts_frame, chat, samples_per_prompt,
                             sampling, sae, mode, means, progress)
    parts = run.rows("baseline", BASELINE, 0, [], 1.0, seeds, labels) if baseline_condition else []
    for name, units in unit_sets.items():
        for gamma in gammas:
            cond = f"{name}/k={len(units)}/gamma={float(gamma):g}" + ("/mean" if mode == "mean" else "")
            parts += run.rows(cond, name, len(units), list(units), gamma, seeds, labels)
    return _frame(parts, labels)


def evaluate_steering(model, tokenizer, task: str, prompts_frame: pd.DataFrame,
                      attribution_scores: Any, granularity: str | None = None, *,
                      selections: Sequence[str] = ("signed", "bottom", "magnitude"),
                      ks: Sequence[int] = (10,), gammas: Sequence[float] = (0.0, 2.0),
                      seeds: Sequence[int] = (0,), samples_per_prompt: int = 4,
                      sampling: SamplingConfig | None = None, sae: Any = None,
                      baseline_condition: bool = True, chat: bool = False, mode: str = "scale",
                      means: Any = None, per_layer: bool = False,
                      labels: Mapping[str, Any] | None = None, progress: bool = False,
                      _runner: _Runner | None = None) -> pd.DataFrame:
    """Eq. 4 on the held-out prompts for every selection x k x gamma x seed (+ the baseline)."""
    from ipg.attribution.table import select_units

    scores = _scores(attribution_scores, granularity)
    labels = dict(labels or {})
    run = _runner or _Runner(model, tokenizer, task, prompts_frame, chat, samples_per_prompt,
                             sampling, sae, mode, means, progress)
    parts = run.rows("baseline", BASELINE, 0, [], 1.0, seeds, labels) if baseline_condition else []
    for selection in selections:
        for k in ks:
            units = select_units(scores, int(k), selection, per_layer=per_layer, strict=True)
            for gamma in gammas:
                cond = f"{selection}/k={int(k)}/gamma={float(gamma):g}" + (
                    "/mean" if mode == "mean" else "")
                parts += run.rows(cond, selection, int(k), units, gamma, seeds, labels)
    return _frame(parts, labels)


def deletion_curve(model, tokenizer, task: str, prompts_frame: pd.DataFrame,
                   attribution_scores: Any, granularity: str | None = None, *,
                   ks: Sequence[int] = (0, 1, 5, 10), **kwargs: Any) -> pd.DataFrame:
    """Metric vs k ablated (gamma = 0) per selection; k = 0 (no unit) is the unsteered model."""
    kwargs.pop("gammas", None)
    kwargs.setdefault("baseline_condition", False)
    return evaluate_steering(model, tokenizer, task, prompts_frame, attribution_scores,
                             granularity, ks=sorted({0, *map(int, ks)}), gammas=(0.0,), **kwargs)


def temperature_control(model, tokenizer, task: str, prompts_frame: pd.DataFrame,
                        temperatures: Sequence[float], seeds: Sequence[int] = (0,),
                        samples_per_prompt: int = 4, sampling: SamplingConfig | None = None,
                        chat: bool = False, labels: Mapping[str, Any] | None = None,
                        progress: bool = False, _runner: _Runner | None = None) -> pd.DataFrame:
    """The unsteered model sampled at each temperature: selection "temperature", k 0, gamma 1."""
    labels = dict(labels or {})
    run = _runner or _Runner(model, tokenizer, task, prompts_frame, chat, samples_per_prompt,
                             sampling, None, "scale", None, progress)
    parts = []
    for t in temperatures:
        SamplingConfig(temperature=float(t))  # one-line error for t <= 0
        parts += run.rows(f"temperature={float(t):g}", "temperature", 0, [], 1.0, seeds, labels,
                          temperature=float(t))
    return _frame(parts, labels)


def transfer(source_model, target_model, tokenizer, task: str, prompts_frame: pd.DataFrame,
             attribution_scores: Any, granularity: str | None = None, *, sae_source: Any = None,
             sae_target: Any = None, **kwargs: Any) -> pd.DataFrame:
    """Units selected on `source_model` steering `target_model` (same architecture and shapes)."""
    from ipg.attribution.table import select_units

    scores = _scores(attribution_scores, granularity)
    for selection in kwargs.get("selections", ("signed", "bottom", "magnitude")):
        k_max = max(kwargs.get("ks", (10,)))
        units = select_units(scores, int(k_max), selection, per_layer=kwargs.get("per_layer", False))
        check_transfer(units, source_model, target_model, sae_source, sae_target)
    return evaluate_steering(target_model, tokenizer, task, prompts_frame, scores, granularity,
                             sae=sae_target, **kwargs)


def _signed_extras(model, tokenizer, task: str, prompts: pd.DataFrame, scores: pd.DataFrame,
                   granularity: str, p: SteeringConfig, run: _Runner,
                   mean_run: _Runner | None, common: Mapping[str, Any]) -> list[pd.DataFrame]:
    """The deletion curve (run on the grid's runner: conditions it sampled are cached) and the
    mean-ablation conditions of the signed selection, relabelled by selection."""
    parts = []
    suffix = "/mean" if p.mode == "mean" else ""
    if p.deletion_ks:
        curve = deletion_curve(model, tokenizer, task, prompts, scores, granularity,
                               ks=[int(k) for k in p.deletion_ks], selections=["signed"],
                               per_layer=p.per_layer, **{**common, "_runner": run})
        parts.append(curve.assign(selection="deletion",
                                  condition=[f"deletion/k={k}{suffix}" for k in curve["k"]]))
    if mean_run is not None:
        rows = evaluate_steering(model, tokenizer, task, prompts, scores, granularity,
                                 selections=["signed"], ks=[int(k) for k in p.ks],
                                 gammas=[0.0], per_layer=p.per_layer,
                                 baseline_condition=False, **{**common, "_runner": mean_run})
        parts.append(rows.assign(selection="mean_ablation",
                                 condition=[f"mean_ablation/k={k}" for k in rows["k"]]))
    return parts


def run_steering(model_dir: str, prepared_path: str, attribution_path: str, task: str,
                 chat: bool, params: SteeringConfig, out_parquet: str, out_summary_csv: str,
                 sae_dirs: Sequence[str] = (), metrics_path: str | None = None,
                 progress: bool = False, trajectories_path: str | None = None,
                 device: str | None = None, unsteered_path: str | None = None) -> pd.DataFrame:
    """Load the model once, steer it on the held-out split with the attribution table's units
    (gamma grid, deletion curve, mean ablation, temperature control), and write the rows
    (parquet), the summary (csv) and the config + provenance (JSON; default
    `{out_parquet without .parquet}.json`), each atomically. Returns the summary. `params`:
    the typed steering settings (ipg.config.jobs.SteeringConfig), used as is.
    `trajectories_path` (the steered model's attribution trajectories) gives the units' mean
    activations for mode 'mean' and mean_ablation. `unsteered_path`: run_unsteered's rows of
    the same model and task; where its settings equal this job's, the unsteered and
    temperature-control conditions are read from it instead of sampled again (the same seeds
    give the same rows). device: None / "auto" = ipg.core.devices.resolve_device's choice; part of
    the checkpoint key (no cross-device resume)."""
    from ipg.attribution.table import read_attribution
    from ipg.core.devices import resolve_device
    from ipg.models.load import load_model
    from ipg.study.provenance import provenance
    from ipg.study.trajectories import write_csv_atomic, write_json_atomic, write_table_atomic

    if not isinstance(params, SteeringConfig):
        raise IPGError(f"run_steering takes a SteeringConfig (SteeringConfig.from_dict(params)), "
                       f"got {type(params).__name__}")
    p = params
    wants_means = p.needs_means
    if wants_means and not trajectories_path:
        raise IPGError("steering mode 'mean' / mean_ablation need the units' mean activations: "
                       "pass trajectories_path (the model's attribution trajectories)")
    device = resolve_device(device)  # a bad device: one line before reading anything
    prompts = _held_out(prepared_path, p)
    scores = read_attribution(attribution_path).scores
    granularity = str(scores["granularity"].iloc[0]) if len(scores) else "neurons"
    method = str(scores["method"].iloc[0]) if len(scores) else "unknown"
    model, tokenizer = load_model(model_dir, device=device)
    sae = None
    if granularity == "sae":
        from ipg.sae import load_sae

        if not sae_dirs:
            raise IPGError("granularity 'sae' needs sae_dirs (the trained SAE folders)")
        sae = [load_sae(d, device=device) for d in sae_dirs]
    cfg = SamplingConfig(temperature=float(p.temperature), max_new_tokens=p.max_new_tokens,
                         prompts_per_batch=p.prompts_per_batch)
    labels = dict(model=Path(model_dir).name, task=task, method=method, granularity=granularity)
    start = time.perf_counter()
    means = None
    if wants_means:
        from ipg.core.intervention import trajectory_means
        from ipg.study.trajectories import read_trajectories

        means = trajectory_means(model, read_trajectories(trajectories_path), granularity, sae)
    G = p.samples_per_prompt
    from ipg.core.checkpoint import ChunkStore, fingerprint  # one chunk per condition x seed

    store = ChunkStore.for_output(out_parquet, fingerprint(
        [model_dir, prepared_path, attribution_path, *sae_dirs, *([trajectories_path] if
         wants_means else [])], task=task, chat=chat, params=p.as_dict(), device=str(device)))
    run = _Runner(model, tokenizer, task, prompts, chat, G, cfg, sae, p.mode,
                  means if p.mode == "mean" else None, progress, store)
    reused = _reuse_unsteered(run, unsteered_path, p, chat) if unsteered_path else 0
    mean_run = (_Runner(model, tokenizer, task, prompts, chat, G, cfg, sae, "mean", means, progress,
                        store) if p.mean_ablation and p.mode == "scale" else None)
    common = dict(seeds=[int(s) for s in p.seeds], labels=labels, _runner=run)
    rows = evaluate_steering(model, tokenizer, task, prompts, scores, granularity,
                             selections=list(p.selections), ks=[int(k) for k in p.ks],
                             gammas=[float(g) for g in p.gammas], per_layer=p.per_layer,
                             mode=p.mode, **common)
    extras = _signed_extras(model, tokenizer, task, prompts, scores, granularity, p, run,
                            mean_run, common)
    if extras:
        rows = pd.concat([rows, *extras], ignore_index=True)
    if p.control_temperatures:
        rows = pd.concat([rows, temperature_control(model, tokenizer, task, prompts,
                                                    list(p.control_temperatures), **common)],
                         ignore_index=True)
    for r in (run, mean_run):
        if r is not None:
            r.bar.close()
    # CIs over prompts and, with several sampling seeds, over seeds within prompts too
    scheme = "hierarchical" if rows["seed"].nunique() > 1 else "prompts"
    summary = entropy_matched(summarize(rows, scheme=scheme))
    seconds = time.perf_counter() - start
    write_table_atomic(rows, out_parquet)
    write_csv_atomic(summary, out_summary_csv)
    base = summary[summary["selection"] == BASELINE]
    metrics = {"n_rows": len(rows), "n_conditions": len(summary), "seconds": seconds,
               "sampler_calls": len(run.cache) - reused + (len(mean_run.cache) if mean_run else 0),
               "unsteered_calls_reused": reused,
               "n_prompts": len(prompts),
               "baseline_accuracy": float(base["accuracy"].iloc[0]) if len(base) else None,
               **provenance({"model_dir": str(model_dir), "prepared": str(prepared_path),
                             "attribution": str(attribution_path), "task": task, "chat": chat,
                             "trajectories": str(trajectories_path) if wants_means else None,
                             "sae_dirs": [str(d) for d in sae_dirs], **labels,
                             **p.as_dict()}),
               "device": str(device)}  # where it ran (not a param: the config hash ignores it)
    target = metrics_path or str(Path(out_parquet).with_suffix(".json"))
    write_json_atomic(metrics, target)
    store.clear()
    return summary


# --- the unsteered conditions, sampled once per (model, task) --------------------------------


def unsteered_settings(params: SteeringConfig, chat: bool) -> dict[str, Any]:
    """The settings a job's unsteered rows depend on: reuse needs them equal."""
    return {**{k: getattr(params, k) for k in UNSTEERED_SETTINGS}, "chat": bool(chat)}


def _held_out(prepared_path: str, p: SteeringConfig) -> pd.DataFrame:
    from ipg.tasks.prepare import read_prepared

    prompts = read_prepared(prepared_path, split="heldout")
    return prompts.head(p.n_prompts) if p.n_prompts else prompts


def run_unsteered(model_dir: str, prepared_path: str, task: str, chat: bool,
                  params: SteeringConfig, out_parquet: str, metrics_path: str,
                  progress: bool = False, device: str | None = None) -> pd.DataFrame:
    """The unsteered model on the held-out split at every seed (selection "none") and at each
    of `params.control_temperatures` (selection "temperature"), sampled once for every steering
    job of this model and task (run_steering(unsteered_path=...) reads them). Writes the rows
    (parquet) and the settings + provenance (JSON), atomically; resumable per seed x temperature
    (ipg.core.checkpoint). Returns the rows."""
    from ipg.core.checkpoint import ChunkStore, fingerprint
    from ipg.core.devices import resolve_device
    from ipg.models.load import load_model
    from ipg.study.provenance import provenance
    from ipg.study.trajectories import write_json_atomic, write_table_atomic

    if not isinstance(params, SteeringConfig):
        raise IPGError(f"run_unsteered takes a SteeringConfig, got {type(params).__name__}")
    p = params
    device = resolve_device(device)
    prompts = _held_out(prepared_path, p)
    model, tokenizer = load_model(model_dir, device=device)
    cfg = SamplingConfig(temperature=float(p.temperature), max_new_tokens=p.max_new_tokens,
                         prompts_per_batch=p.prompts_per_batch)
    settings = unsteered_settings(p, chat)
    store = ChunkStore.for_output(out_parquet, fingerprint(
        [model_dir, prepared_path], task=task, settings=settings,
        temperatures=list(p.control_temperatures), device=str(device)))
    run = _Runner(model, tokenizer, task, prompts, chat, p.samples_per_prompt, cfg, None,
                  "scale", None, progress, store)
    labels = dict(model=Path(model_dir).name, task=task)
    start = time.perf_counter()
    seeds = [int(s) for s in p.seeds]
    rows = evaluate_unit_sets(model, tokenizer, task, prompts, {}, [], seeds=seeds,
                              labels=labels, _runner=run)
    if p.control_temperatures:
        rows = pd.concat([rows, temperature_control(
            model, tokenizer, task, prompts, list(p.control_temperatures), seeds=seeds,
            labels=labels, _runner=run)], ignore_index=True)
    run.bar.close()
    write_table_atomic(rows, out_parquet)
    write_json_atomic({"settings": settings, "control_temperatures": list(p.control_temperatures),
                       "n_rows": len(rows), "sampler_calls": len(run.cache),
                       "seconds": time.perf_counter() - start,
                       **provenance({"model_dir": str(model_dir), "prepared": str(prepared_path),
                                     "task": task, **settings}),
                       "device": str(device)}, metrics_path)
    store.clear()
    return rows


def _reuse_unsteered(run: _Runner, unsteered_path: str, p: SteeringConfig, chat: bool) -> int:
    """Fill the runner's cache with run_unsteered's conditions when they were sampled with this
    job's settings on these prompts; returns how many (seed x temperature) calls it saved. A
    mismatch (say a per-model override) is not an error: the job samples them itself."""
    import json
    import logging

    meta = json.loads(Path(unsteered_path).with_suffix(".json").read_text())
    if meta.get("settings") != unsteered_settings(p, chat):
        logging.getLogger(__name__).warning(
            "unsteered rows %s were sampled with other settings (%s vs %s): sampling them here",
            unsteered_path, meta.get("settings"), unsteered_settings(p, chat))
        return 0
    rows = pd.read_parquet(unsteered_path)
    ids = run.prompts["prompt_id"].to_numpy()
    reused = 0
    for (seed, t), group in rows.groupby(["seed", "temperature"], sort=False):
        if len(group) != len(ids) or set(group["prompt_id"]) != set(ids):
            return reused  # other prompts: nothing more to reuse
        per_prompt = group.set_index("prompt_id").reindex(ids)
        run.cache[(frozenset(), 1.0, int(seed), float(t))] = pd.DataFrame(
            {"prompt_id": ids, **{m: per_prompt[m].to_numpy(np.float64) for m in METRICS}})
        reused += 1
    return reused
