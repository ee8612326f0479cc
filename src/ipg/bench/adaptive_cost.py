"""Path-point evaluations of the study's IPG attributions: fixed rules as configured vs the
adaptive rule (docs/method.md "Quadrature"), with both compared to a high-m Gauss-Legendre
reference. Path points are deterministic counts (metrics `path_points`), so the saving does not
depend on the machine.

    python -m ipg.bench.adaptive_cost --config config/default.yaml --models organism=DIR \
        --trajectories organism=PARQUET --sae organism=DIR --out rows.csv [--ref-m 128]

Rows (one per study attribution): path points and pooled completeness residual of the fixed
and the adaptive run, and each one's relative L1 distance of the mean scores to the reference,
||S - S_ref||_1 / ||S_ref||_1.

`--previous 'layers={baseline: mean, multilayer: separate, m: 128}'` adds the same job under
earlier fixed settings of a granularity (here: the settings before a layer was its block's
update), run side by side: its path points, pooled residual and CPU time (`previous_*`; equal
to the fixed run's where no setting changed). The last line sums the fixed and the previous
path points over the rows.

`--from-results results --previous ...` runs nothing: it sums the path points every finished
attribution of a study recorded (each `results/**/*.json` with `path_points`: attribution,
sensitivity, reliability, cross-task) against the count of the earlier settings on the same
prompts (m x passes x prompts with an advantage, deterministic).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from ipg.config import study as cfgmod
from ipg.attribution.ipg import IPGConfig, attribute
from ipg.config.jobs import SAMPLES_KEY
from ipg.study.sensitivity import first_samples


def jobs(config: dict[str, Any], models: set[str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, model, granularity, IPG params) of every IPG-kind study attribution and every
    sensitivity variant, on the given models."""
    out = []
    for model, _task, gran, method in cfgmod.attribution_targets(config):
        params = cfgmod.method_params(config, model, gran, method)
        if params.pop("kind") == "ipg" and model in models:
            out.append((f"{model}/{gran}/{method}", model, gran, params))
    for model, _task, gran in cfgmod.sensitivity_targets(config):
        for variant in cfgmod.sensitivity_variants(config):
            if model in models:
                out.append((f"{model}/{gran}/sensitivity:{variant}", model, gran,
                            cfgmod.sensitivity_params(config, variant)))
    return out


def _run(model, table, gran, params, sae) -> tuple[Any, float]:
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        att = attribute(model, table, gran, IPGConfig(**{**params, "max_residual": None}),
                        sae=sae, progress=False)
    return att, time.process_time() - t0


def _dist(att, ref) -> float:
    s, r = att.scores["score"].to_numpy(), ref.scores["score"].to_numpy()
    return float(np.abs(s - r).sum() / np.abs(r).sum())


def _fixed_points(ipg: dict[str, Any], adaptive_metrics: dict[str, Any]) -> int:
    """m x passes per prompt that the adaptive run attributed (the fixed rule's count)."""
    cfg = IPGConfig(**ipg)
    passes = len(adaptive_metrics["layers"]) if cfg.multilayer == "separate" else 1
    n = sum(1 for p in adaptive_metrics["path_points_per_prompt"].values() if p)
    return cfg.m * passes * n


def parse_previous(items: list[str]) -> dict[str, dict[str, Any]]:
    """'granularity={yaml mapping}' items -> {granularity: IPG settings that replace the job's}."""
    out = {}
    for item in items:
        gran, _, text = item.partition("=")
        settings = yaml.safe_load(text) if text else None
        if not gran or not isinstance(settings, dict):
            raise SystemExit(f"--previous {item!r}: expected granularity={{key: value, ...}}, "
                             "e.g. 'layers={baseline: mean, multilayer: separate, m: 128}'")
        out[gran] = settings
    return out


def study_path_points(results_dir: str | Path,
                      previous: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per recorded attribution under `results_dir`: its path points and the count
    under `previous` settings of its granularity (equal where none are given)."""
    rows = []
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(metrics, dict) or "path_points" not in metrics:
            continue
        gran = metrics.get("granularity")
        now = int(metrics["path_points"])
        prev = now
        if gran in previous:
            settings = {"m": metrics.get("config", {}).get("m", IPGConfig.m), **previous[gran]}
            prev = _fixed_points(settings, metrics)
        rows.append({"job": str(path.relative_to(results_dir).with_suffix("")),
                     "granularity": gran, "path_points": now, "previous_points": prev})
    if not rows:
        raise SystemExit(f"--from-results {results_dir}: no attribution metrics with path_points; "
                         "run the study first (make study)")
    return pd.DataFrame(rows)


def print_ratio(now: int, previous: int, n: int, what: str) -> None:
    """The summary line: summed path points today vs under the previous settings."""
    print(f"path points summed over {n} {what}: now {now}, previous {previous}, "
          f"now / previous {now / previous:.3f}", flush=True)


def load_inputs(a: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str],
                                                 dict[str, pd.DataFrame], dict[str, list[str]]]:
    """The benches' inputs from their shared options: the validated config, model folders
    (name=dir), trajectory tables (name=parquet; the first --prompts prompts) and SAE folders."""
    from ipg.study.trajectories import read_trajectories

    config = cfgmod.validate_config(cfgmod.load_config(a.config))
    model_dirs = dict(s.split("=", 1) for s in a.models)
    tables = {k: read_trajectories(v) for k, v in (s.split("=", 1) for s in a.trajectories)}
    if a.prompts:
        tables = {k: t[t["prompt_id"].isin(t["prompt_id"].drop_duplicates()[: a.prompts])]
                  for k, t in tables.items()}
    sae_dirs: dict[str, list[str]] = {}
    for s in a.sae:
        k, v = s.split("=", 1)
        sae_dirs.setdefault(k, []).append(v)
    return config, model_dirs, tables, sae_dirs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config/default.yaml")
    ap.add_argument("--models", nargs="+", default=[], help="name=model_dir")
    ap.add_argument("--trajectories", nargs="+", default=[], help="name=parquet")
    ap.add_argument("--from-results", default=None,
                    help="a study's results folder: sum its recorded path points (runs nothing)")
    ap.add_argument("--sae", nargs="*", default=[], help="name=sae_dir (one per SAE layer)")
    ap.add_argument("--only", nargs="*", default=None, help="job names to run (default: all)")
    ap.add_argument("--tol", type=float, default=IPGConfig.tol)
    ap.add_argument("--m-max", type=int, default=IPGConfig.m_max)
    ap.add_argument("--ref-m", type=int, default=128)
    ap.add_argument("--prompts", type=int, default=None,
                    help="only the first N prompts of each table (counts scale per prompt)")
    ap.add_argument("--counts-only", action="store_true",
                    help="run the adaptive rule only; the fixed rule's count is m per prompt with "
                         "an advantage and pass (deterministic)")
    ap.add_argument("--previous", nargs="*", default=[],
                    help="granularity={IPG settings}: also run each job under these earlier "
                         "settings (see the module docstring)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    previous = parse_previous(a.previous)
    if a.from_results:
        table = study_path_points(a.from_results, previous)
        table.to_csv(a.out, index=False)
        print(table.groupby("granularity")[["path_points", "previous_points"]].sum().to_string())
        print_ratio(table["path_points"].sum(), table["previous_points"].sum(), len(table),
                    "attributions")
        return
    if not a.models or not a.trajectories:
        raise SystemExit("--models and --trajectories are required unless --from-results is given")
    torch.set_num_threads(1)
    from ipg.models.load import load_model
    config, model_dirs, tables, sae_dirs = load_inputs(a)
    rows = []
    for name, model_name, gran, params in jobs(config, set(model_dirs)):
        if a.only and name not in a.only:
            continue
        if gran == "sae" and model_name not in sae_dirs:
            continue
        model, _ = load_model(model_dirs[model_name])
        sae = None
        if gran == "sae":
            from ipg.sae import load_sae
            sae = [load_sae(d) for d in sae_dirs[model_name]]
        ipg = {k: v for k, v in params.items() if k != SAMPLES_KEY}  # IPG keys; G apart
        g = params.get(SAMPLES_KEY)
        table = tables[model_name] if g is None else first_samples(tables[model_name], g)
        adaptive, t_adapt = _run(model, table, gran, {**ipg, "quadrature": "adaptive",
                                                      "tol": a.tol, "m_max": a.m_max}, sae)
        am = adaptive.metrics
        row = {"job": name, "fixed_rule": f"{ipg.get('quadrature', IPGConfig.quadrature)} "
                                          f"m={ipg.get('m', IPGConfig.m)}",
               "fixed_points": _fixed_points(ipg, am), "adaptive_points": am["path_points"],
               "adaptive_residual": am["completeness_residual"],
               "adaptive_max_prompt_residual": am["completeness_residual_prompt_max"],
               "adaptive_cpu_s": t_adapt}
        if not a.counts_only:
            fixed, t_fixed = _run(model, table, gran, ipg, sae)
            ref, _ = _run(model, table, gran, {**ipg, "quadrature": "gauss_legendre", "m": a.ref_m},
                          sae)
            assert fixed.metrics["path_points"] == row["fixed_points"]
            row.update({"fixed_residual": fixed.metrics["completeness_residual"],
                        "ref_residual": ref.metrics["completeness_residual"],
                        "fixed_vs_ref_l1": _dist(fixed, ref),
                        "adaptive_vs_ref_l1": _dist(adaptive, ref), "fixed_cpu_s": t_fixed})
        if gran in previous:
            old = {**ipg, **previous[gran]}
            row["previous_rule"] = ", ".join(f"{k}={v}" for k, v in previous[gran].items())
            if a.counts_only:
                row["previous_points"] = _fixed_points(old, am)
            else:
                prev, t_prev = _run(model, table, gran, old, sae)
                assert prev.metrics["path_points"] == _fixed_points(old, am)
                row.update({"previous_points": prev.metrics["path_points"],
                            "previous_residual": prev.metrics["completeness_residual"],
                            "previous_cpu_s": t_prev})
        elif previous:
            row["previous_points"] = row["fixed_points"]
        print(row, flush=True)
        rows.append(row)
        pd.DataFrame(rows).to_csv(a.out, index=False)
    if previous and rows:
        print_ratio(sum(r["fixed_points"] for r in rows), sum(r["previous_points"] for r in rows),
                    len(rows), "jobs")


if __name__ == "__main__":
    main()
