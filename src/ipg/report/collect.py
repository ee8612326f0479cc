"""Find the study's results on disk and load them into tidy frames (one row per thing measured).

Layout read (README.md, "The DAG"; paths in ipg.workflow.layout); every piece is optional, a missing
piece gives an empty frame with the documented columns:

- results/metrics/trajectories.json            -> `trajectories` (model, task, seed, metrics...)
- results/attribution/{m}/{t}/{g}/{method}.json -> `attributions` (kind, reward, completeness...)
- results/intervention/{m}/{t}/{g}/{method}.csv -> `steering` (one row per condition)
- results/intervention/{m}/{t}/{g}/{method}.parquet -> `steering_rows` (one row per condition x
  seed x prompt: the per-prompt rows the paired verdicts use; read where its .csv is allowed)
- results/transfer/{s}__to__{d}/{t}/{g}/{method}.csv -> `transfer` (+ source, target)
- results/sae/{m}/metrics.json                  -> `sae` (model, layer, fvu, dead_fraction, ...)
- results/sensitivity/{m}/{t}/{g}.csv           -> `sensitivity` (one row per IPG estimator variant)
- results/cross_task/{m}.csv                    -> `cross_task` (one row per granularity x method x task pair)
- {reports}/bench/attribution.csv               -> `bench`
- {benchmarks}/{rule}/**.tsv                    -> `walltimes` (rule, job, s, max_rss_mb, end);
  with the workflow's list of its jobs' benchmark files, only those (stale files of an
  earlier config are left out). `end` is the file's mtime: Snakemake writes it when the job ends.
"""
from __future__ import annotations

from typing import Iterable

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ipg.workflow import layout as L

ATTRIBUTION_COLUMNS = ["model", "task", "granularity", "method", "kind", "reward",
                       "completeness_residual", "residual_prompt_median",
                       "residual_of_mean_illconditioned", "max_residual", "phi_delta",
                       "n_prompts_nonzero_advantage", "wall_seconds", "n_units", "path"]
STEERING_KEYS = ["model", "task", "granularity", "method"]
SENSITIVITY_COLUMNS = ["model", "task", "granularity", "variant", "spearman", "jaccard_topk",
                       "completeness_residual", "wall_seconds"]
CROSS_TASK_COLUMNS = ["model", "granularity", "method", "task_a", "task_b", "k", "n_units",
                      "n_common", "jaccard", "chance"]
RELIABILITY_COLUMNS = ["model", "task", "granularity", "G", "n", "repeats", "k", "n_units",
                       "spearman", "spearman_lo", "spearman_hi", "jaccard", "jaccard_lo",
                       "jaccard_hi", "chance_jaccard"]
RETEST_COLUMNS = ["model", "task", "granularity", "method", "n_prompts", "half", "k", "n_units",
                  "spearman_half", "spearman_half_lo", "spearman_half_hi", "jaccard_half",
                  "jaccard_half_lo", "jaccard_half_hi", "chance_jaccard", "spearman_full_sb"]
RANDOM_LABEL = "random"  # methods whose name starts with this are draws of the random control


@dataclass
class Study:
    """Everything the report shows, as tidy frames (empty where the study has no such result)."""
    trajectories: pd.DataFrame
    attributions: pd.DataFrame
    steering: pd.DataFrame
    transfer: pd.DataFrame
    sae: pd.DataFrame
    bench: pd.DataFrame
    walltimes: pd.DataFrame
    sensitivity: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SENSITIVITY_COLUMNS))
    cross_task: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CROSS_TASK_COLUMNS))
    steering_rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEERING_KEYS))
    reliability: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RELIABILITY_COLUMNS))
    retest: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RETEST_COLUMNS))
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def load_trajectories(results: Path) -> pd.DataFrame:
    path = results / "metrics" / "trajectories.json"
    if not path.exists():
        return pd.DataFrame(columns=["model", "task", "seed"])
    rows = []
    for key, metrics in _read_json(path).items():
        model, task, seed = key.split("/")
        rows.append({"model": model, "task": task, "seed": int(seed), **metrics})
    return pd.DataFrame(rows)


def method_kind(name: str, metrics: dict[str, Any]) -> str:
    """The attribution kind (ipg, act, random, ...): recorded in the JSON, else from the name."""
    kind = metrics.get("kind") or (metrics.get("params") or {}).get("kind")
    if kind:
        return str(kind)
    for guess in ("random", "ipg", "act"):
        if name.startswith(guess):
            return guess
    return name


def method_reward(metrics: dict[str, Any]) -> str:
    for src in (metrics.get("config") or {}, metrics.get("params") or {}):
        if src.get("reward"):
            return str(src["reward"])
    return "accuracy"


def _found(base: Path, pattern: str, allowed: set[Path] | None) -> list[Path]:
    """Files under base matching pattern; with `allowed` (the workflow's inputs), only those,
    so results left by an earlier config never reach the report."""
    paths = sorted(base.glob(pattern))
    return paths if allowed is None else [p for p in paths if p.resolve() in allowed]


def _residual_of_mean(metrics: dict) -> float | None:
    """The ill-conditioned residual of the mean: its own key, or (files written before the pooled
    residual became `completeness_residual`) the old `completeness_residual`."""
    if "completeness_residual_of_mean" in metrics:
        return metrics["completeness_residual_of_mean"]
    if "completeness_residual_pooled" in metrics:
        return metrics.get("completeness_residual")
    return None


def load_attributions(results: Path, allowed: set[Path] | None = None) -> pd.DataFrame:
    rows = []
    for path in _found(results / "attribution", "*/*/*/*.json", allowed):
        model, task, gran = path.parts[-4:-1]
        metrics = _read_json(path)
        method = path.stem
        rows.append({
            "model": model, "task": task, "granularity": gran, "method": method,
            "kind": method_kind(method, metrics), "reward": method_reward(metrics),
            # the figure of merit: the pooled residual (older files: completeness_residual
            # was the ill-conditioned residual of the mean, so read the pooled key first)
            "completeness_residual": metrics.get("completeness_residual_pooled",
                                                 metrics.get("completeness_residual")),
            "residual_prompt_median": metrics.get("completeness_residual_prompt_median"),
            "residual_of_mean_illconditioned": _residual_of_mean(metrics),
            "max_residual": (metrics.get("config") or {}).get("max_residual"),
            "phi_delta": metrics.get("phi_delta"),
            "n_prompts_nonzero_advantage": metrics.get("n_prompts_nonzero_advantage"),
            "wall_seconds": metrics.get("wall_seconds"), "n_units": metrics.get("n_units"),
            "path": str(path.with_suffix(".parquet")),
        })
    return pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)


def _with_kinds(frame: pd.DataFrame, attributions: pd.DataFrame) -> pd.DataFrame:
    """Add kind and reward (from the attribution JSONs; guessed from the name if absent)."""
    if frame.empty:
        return frame.assign(kind=pd.Series(dtype=str), reward=pd.Series(dtype=str))
    keys = ["model", "task", "granularity", "method"]
    kinds = attributions[keys + ["kind", "reward"]].drop_duplicates(keys)
    out = frame.drop(columns=[c for c in ("kind", "reward") if c in frame.columns])
    out = out.merge(kinds, on=keys, how="left")
    guess = out["method"].map(lambda m: method_kind(m, {}))
    out["kind"] = out["kind"].fillna(guess)
    out["reward"] = out["reward"].fillna(
        out["method"].map(lambda m: "length" if "length" in m else "accuracy"))
    return out


def load_steering(results: Path, attributions: pd.DataFrame,
                  allowed: set[Path] | None = None) -> pd.DataFrame:
    parts = []
    for path in _found(results / "intervention", "*/*/*/*.csv", allowed):
        frame = pd.read_csv(path)
        for key, value in zip(STEERING_KEYS, [*path.parts[-4:-1], path.stem]):
            frame[key] = value
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=STEERING_KEYS + ["condition", "selection", "k", "gamma", "accuracy"])
    return _with_kinds(frame, attributions)


def load_steering_rows(results: Path, attributions: pd.DataFrame,
                       allowed: set[Path] | None = None) -> pd.DataFrame:
    """The per-prompt steering rows (each job's .parquet beside its summary .csv), labelled
    with model, task, granularity, method, kind and reward; empty if no job wrote any."""
    parts = []
    for csv in _found(results / "intervention", "*/*/*/*.csv", allowed):
        path = csv.with_suffix(".parquet")
        if not path.exists():
            continue
        frame = pd.read_parquet(path)
        for key, value in zip(STEERING_KEYS, [*path.parts[-4:-1], path.stem]):
            frame[key] = value
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=STEERING_KEYS + ["kind", "reward"])
    return _with_kinds(pd.concat(parts, ignore_index=True), attributions)


def load_transfer(results: Path, attributions: pd.DataFrame,
                  allowed: set[Path] | None = None) -> pd.DataFrame:
    parts = []
    for path in _found(results / "transfer", "*__to__*/*/*/*.csv", allowed):
        pair, task, gran = path.parts[-4:-1]
        source, target = pair.split("__to__")
        frame = pd.read_csv(path)
        frame = frame.assign(source=source, target=target, model=source, task=task,
                             granularity=gran, method=path.stem)
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=["source", "target"] + STEERING_KEYS)
    frame = _with_kinds(pd.concat(parts, ignore_index=True), attributions)
    return frame.assign(model=frame["target"])  # the model steered is the target


def load_sae(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "sae").glob("*/metrics.json")):
        for key, value in _read_json(path).items():
            if key.startswith("L") and isinstance(value, dict):
                rows.append({"model": path.parent.name, "layer": value.get("layer", key[1:]),
                             **{k: v for k, v in value.items() if k != "layer"}})
    return pd.DataFrame(rows, columns=None if rows else ["model", "layer", "fvu", "dead_fraction"])


def load_bench(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=["bench", "model", "value", "unit", "target", "meets_target"])
    return pd.read_csv(path)


def load_sensitivity(results: Path, allowed: set[Path] | None = None) -> pd.DataFrame:
    """The estimator-sensitivity tables, one row per variant (model, task, granularity added)."""
    parts = []
    for path in _found(results / "sensitivity", "*/*/*.csv", allowed):
        model, task = path.parts[-3:-1]
        parts.append(pd.read_csv(path).assign(model=model, task=task, granularity=path.stem))
    if not parts:
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    rest = [c for c in frame.columns if c not in SENSITIVITY_COLUMNS]
    return frame.reindex(columns=SENSITIVITY_COLUMNS + rest)


def load_cross_task(results: Path, allowed: set[Path] | None = None) -> pd.DataFrame:
    """The cross-task overlap tables (results/cross_task/{model}.csv), model added."""
    parts = [pd.read_csv(path).assign(model=path.stem)
             for path in _found(results / "cross_task", "*.csv", allowed)]
    if not parts:
        return pd.DataFrame(columns=CROSS_TASK_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    rest = [c for c in frame.columns if c not in CROSS_TASK_COLUMNS]
    return frame.reindex(columns=CROSS_TASK_COLUMNS + rest)


def load_reliability(results: Path, allowed: set[Path] | None = None) -> pd.DataFrame:
    """The reliability curves (results/reliability/{model}/{task}/{granularity}.csv), one row
    per G x n (model, task, granularity added)."""
    parts = []
    for path in _found(results / "reliability", "*/*/*.csv", allowed):
        model, task = path.parts[-3:-1]
        parts.append(pd.read_csv(path).assign(model=model, task=task, granularity=path.stem))
    if not parts:
        return pd.DataFrame(columns=RELIABILITY_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    return frame.reindex(columns=RELIABILITY_COLUMNS)


def load_retest(attributions: pd.DataFrame, k_of, repeats: int = 50) -> pd.DataFrame:
    """The split-half retest level of every attribution (ipg.study.reliability.whole_split_half on
    its own per-prompt scores): k_of(model, granularity) gives the steered k (capped at the
    number of units); attributions with fewer than 2 prompts are skipped."""
    from ipg.attribution.table import read_attribution
    from ipg.study.reliability import whole_split_half

    rows = []
    for r in attributions.itertuples(index=False):
        if not Path(r.path).exists():
            continue
        pp = read_attribution(r.path).per_prompt
        if pp.shape[0] < 2 or pp.shape[1] < 1:
            continue
        k = max(1, min(int(k_of(r.model, r.granularity)), pp.shape[1]))
        rows.append({"model": r.model, "task": r.task, "granularity": r.granularity,
                     "method": r.method, **whole_split_half(pp, k, repeats)})
    return pd.DataFrame(rows, columns=RETEST_COLUMNS)


def load_walltimes(benchmarks: Path, skip: tuple[str, ...] = ("report",),
                   files: Iterable[str | Path] | None = None) -> pd.DataFrame:
    """Snakemake benchmark files: one row per job (rule = first folder or the file's stem).
    `files` (the workflow's jobs' benchmark files) restricts the rows to those."""
    wanted = None if files is None else {Path(f).resolve() for f in files}
    rows = []
    for path in sorted(benchmarks.rglob("*.tsv")) if benchmarks.exists() else []:
        if wanted is not None and path.resolve() not in wanted:
            continue
        rel = path.relative_to(benchmarks)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if rule in skip:
            continue
        try:
            frame = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if "s" not in frame.columns or frame.empty:
            continue
        rows.append({"rule": rule, "job": str(rel.with_suffix("")),
                     "s": float(frame["s"].mean()),
                     "max_rss_mb": float(frame["max_rss"].mean()) if "max_rss" in frame else None,
                     "end": path.stat().st_mtime})
    return pd.DataFrame(rows, columns=["rule", "job", "s", "max_rss_mb", "end"])


def collect(results_dir: str | Path, reports_dir: str | Path = L.DEFAULT_REPORTS,
            benchmarks_dir: str | Path = L.BENCHMARKS, bench_csv: str | Path | None = None,
            inputs: Iterable[str | Path] | None = None,
            benchmark_files: Iterable[str | Path] | None = None) -> Study:
    """Load the results under results_dir (and the bench CSV, benchmark TSVs) into a Study.
    `inputs` (the workflow's list of files) restricts attribution, steering and transfer
    results to the current config's, `benchmark_files` the wall times to the current jobs';
    without them every file found is used."""
    results = Path(results_dir)
    allowed = None if inputs is None else {Path(p).resolve() for p in inputs}
    attributions = load_attributions(results, allowed)
    return Study(
        trajectories=load_trajectories(results),
        attributions=attributions,
        steering=load_steering(results, attributions, allowed),
        steering_rows=load_steering_rows(results, attributions, allowed),
        transfer=load_transfer(results, attributions, allowed),
        sae=load_sae(results),
        bench=load_bench(Path(bench_csv) if bench_csv else Path(reports_dir) / "bench" / "attribution.csv"),
        walltimes=load_walltimes(Path(benchmarks_dir), files=benchmark_files),
        sensitivity=load_sensitivity(results, allowed),
        cross_task=load_cross_task(results, allowed),
        reliability=load_reliability(results, allowed),
    )


def study_benchmarks(config: dict[str, Any], benchmarks_dir: str | Path = L.BENCHMARKS) -> list[str]:
    """The benchmark files of the study's jobs (the `benchmark:` paths of rules/*.smk, filled
    from the config's targets), so that the wall-time table leaves out files an earlier config
    left behind. Rules a config does not define (e.g. without sensitivity functions) add none."""
    from ipg.config import study as cfg

    b = str(benchmarks_dir)
    pairs = cfg.model_task_pairs(config)
    seeds = sorted({*config["sampling"]["seeds"], config["attribution"].get("trajectory_seed", 0)})
    out = [f"{b}/prepare_task/{t}.tsv" for t in sorted({t for _, t in pairs})]
    out += [f"{b}/build_model/{m}.tsv" for m in cfg.models_in_study(config)]
    out += [f"{b}/sample_trajectories/{m}/{t}/{s}.tsv" for m, t in pairs for s in seeds]
    out += [f"{b}/summarize_trajectories.tsv", f"{b}/tracking/init_tracking.tsv",
            f"{b}/tracking/ingest_mlflow.tsv"]
    out += [f"{b}/train_sae/{e['model']}.tsv" for e in config["study"] if "sae" in e["granularities"]]
    out += [f"{b}/attribute/{m}/{t}/{g}/{meth}.tsv" for m, t, g, meth in cfg.attribution_targets(config)]
    steered = cfg.steering_targets(config)
    out += [f"{b}/evaluate_unsteered/{m}/{t}.tsv" for m, t in sorted({(m, t) for m, t, _, _ in steered})]
    out += [f"{b}/evaluate_steering/{m}/{t}/{g}/{meth}.tsv" for m, t, g, meth in steered]
    out += [f"{b}/evaluate_transfer/{s}__to__{d}/{t}/{g}/{meth}.tsv"
            for s, d, t, g, meth in cfg.transfer_targets(config)]
    if hasattr(cfg, "sensitivity_targets") and config.get("sensitivity"):
        for m, t, g in cfg.sensitivity_targets(config):
            out.append(f"{b}/sensitivity/{m}/{t}/{g}.tsv")
            out += [f"{b}/sensitivity_variant/{m}/{t}/{g}/{v}.tsv" for v in cfg.sensitivity_variants(config)]
    if hasattr(cfg, "cross_task_targets") and cfg.cross_task_on(config):
        model, seed = config["cross_task"]["model"], config["attribution"].get("trajectory_seed", 0)
        targets = cfg.cross_task_targets(config)
        out += [f"{b}/prepare_task/{t}.tsv" for _, t, _, _ in targets]
        out += [f"{b}/sample_trajectories/{model}/{t}/{seed}.tsv" for _, t, _, _ in targets]
        out += [f"{b}/attribute/{m}/{t}/{g}/{meth}.tsv" for m, t, g, meth in targets]
        out.append(f"{b}/cross_task/{model}.tsv")
    rel = config.get("reliability") or {}
    if rel.get("model"):  # rules/reliability.smk
        m, t = rel["model"], rel["task"]
        out += [f"{b}/reliability_pool/{t}.tsv", f"{b}/reliability_sample/{m}/{t}.tsv"]
        for g in rel["granularities"]:
            out.append(f"{b}/reliability/{m}/{t}/{g}.tsv")
            out += [f"{b}/reliability_attribute/{m}/{t}/{g}/G{n}.tsv" for n in sorted(rel["G"])]
    return list(dict.fromkeys(out))
