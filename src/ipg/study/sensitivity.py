"""Sensitivity of IPG to its estimator choices (docs/method.md: the baseline h' of Eq. 2, the
advantage A_j of Eq. 1, the number of samples G per prompt, the path points m of the Eq. 2
quadrature): attribute the same trajectories once per variant and compare with the base run.

    run_variant(model_dir, trajectories_path, "neurons", VariantSpec.parse({"m": 8}), out_parquet,
                out_json)
    summarize_sensitivity({"base": (pq, js), "m8": (pq, js)}, top_k=32) -> one row per variant

A variant is IPGConfig keys plus `max_samples_per_prompt` (G: only the first G samples of
each prompt, by sample_id, are attributed; the leave-one-out advantage needs G >= 2), parsed
once into an ipg.config.jobs.VariantSpec (at DAG-build time for the workflow's jobs). The
summary columns (`SUMMARY_COLUMNS`), per variant:

- spearman: Spearman rank correlation of the variant's unit scores with the base's
  (scipy.stats.spearmanr over every unit; NaN when either score vector is constant);
- jaccard_topk: |A n B| / |A u B| of the signed top-k sets (ipg.study.statistics.jaccard), next
  to chance_jaccard, the expected overlap of two random k-sets of the same units;
- completeness_residual: the run's pooled residual sum_x |sum_i IPG_ix - delta_x| / sum_x |delta_x|
  (ipg.attribution.completeness: the study's one figure of merit, the one max_residual bounds);
- wall_seconds: the attribution's own wall time (model loading excluded);
- params: the variant's keys that differ from the base (JSON), n_prompts_nonzero_advantage;
- retest_spearman_half, retest_jaccard_half, retest_spearman_full_sb: the base run's own retest
  level (ipg.study.reliability.whole_split_half on its per-prompt scores: two disjoint halves of its
  prompts; the Spearman-Brown projection to the full prompt set). The variants share the base's
  prompts, so a variant agreeing with the base less than the base's halves agree with each other
  moves the ranking more than drawing new prompts does. NaN without per-prompt scores.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ipg.errors import IPGError
from ipg.config.jobs import SAMPLES_KEY, VariantSpec

SUMMARY_COLUMNS = ["variant", "params", "n_units", "top_k", "spearman", "jaccard_topk",
                   "chance_jaccard", "completeness_residual", "wall_seconds",
                   "n_prompts_nonzero_advantage", "samples_per_prompt", "retest_spearman_half",
                   "retest_jaccard_half", "retest_spearman_full_sb"]
RETEST_REPEATS = 50  # random splits of the base's prompts for its retest level


def first_samples(trajectories: pd.DataFrame, g: int) -> pd.DataFrame:
    """The first g samples (lowest sample_id) of every prompt, in the table's order."""
    if int(g) != g or g < 1:
        raise IPGError(f"sensitivity key '{SAMPLES_KEY}' must be an integer >= 1, got {g!r}")
    for key in ("prompt_id", "sample_id"):
        if key not in trajectories.columns:
            raise IPGError(f"trajectory table has no column '{key}' (produced by the trajectory stage)")
    rank = trajectories.groupby("prompt_id", sort=False)["sample_id"].rank(method="first")
    return trajectories[rank <= int(g)].reset_index(drop=True)


def run_variant(model_dir: str | os.PathLike, trajectories_path: str | os.PathLike,
                granularity: str, variant: VariantSpec, parquet_path: str | os.PathLike,
                metrics_path: str | os.PathLike, sae_dirs: Sequence[str | os.PathLike] = (),
                name: str = "ipg", progress: bool = True) -> dict[str, Any]:
    """Attribute one variant (IPG, Eqs. 1-3) and write its table + metrics. Returns metrics."""
    from ipg.attribution.methods import run_spec
    from ipg.attribution.table import write_attribution
    from ipg.models.load import load_model
    from ipg.study.provenance import provenance
    from ipg.study.trajectories import read_trajectories

    trajectories = read_trajectories(trajectories_path)
    if variant.max_samples_per_prompt is not None:
        trajectories = first_samples(trajectories, variant.max_samples_per_prompt)
    model, _ = load_model(model_dir)
    sae = None
    if granularity == "sae":
        from ipg.sae import load_sae

        if not sae_dirs:
            raise IPGError("granularity 'sae' needs sae_dirs (the trained SAE folders)")
        sae = [load_sae(d) for d in sae_dirs]
    att = run_spec(model, trajectories, granularity, variant.method, sae, progress, name)
    att.metrics["samples_per_prompt"] = int(trajectories.groupby("prompt_id").size().max())
    att.metrics["variant_params"] = dict(variant.params)
    att.metrics.update(provenance({"model_dir": str(model_dir),
                                   "trajectories": str(trajectories_path),
                                   "granularity": granularity, "variant": name, **variant.params}))
    write_attribution(att, parquet_path, metrics_path)
    return att.metrics


def _changed(params: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    keys = sorted(k for k in set(params) | set(base) if params.get(k) != base.get(k))
    return json.dumps({k: params.get(k) for k in keys}, sort_keys=True, default=str)


def compare(base: pd.DataFrame, other: pd.DataFrame, top_k: int) -> dict[str, float]:
    """Spearman correlation of the unit scores and Jaccard overlap of the signed top-k sets of
    two attribution score frames over the same units."""
    from scipy.stats import spearmanr

    from ipg.attribution.table import select_units
    from ipg.study.statistics import expected_random_jaccard, jaccard

    a, b = base.set_index("unit")["score"], other.set_index("unit")["score"]
    if set(a.index) != set(b.index):
        raise IPGError("sensitivity variants scored different units; attribute every variant "
                       "at the same granularity and layers")
    b = b.reindex(a.index)
    x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
    constant = np.ptp(x) == 0 or np.ptp(y) == 0
    rho = float("nan") if constant else float(spearmanr(x, y).statistic)
    top_a, top_b = select_units(base, top_k), select_units(other, top_k)
    return {"spearman": rho, "jaccard_topk": jaccard(top_a, top_b),
            "chance_jaccard": expected_random_jaccard(len(a), top_k, top_k)}


def summarize_sensitivity(runs: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]],
                          top_k: int, base: str = "base") -> pd.DataFrame:
    """{variant: (table parquet, metrics JSON)} -> one row per variant (the base included,
    where spearman and jaccard are 1 by definition), columns SUMMARY_COLUMNS."""
    from ipg.attribution.table import read_attribution

    if base not in runs:
        raise IPGError(f"sensitivity runs lack the base run {base!r}; got {', '.join(runs)}")
    tables = {name: read_attribution(pq, js) for name, (pq, js) in runs.items()}
    ref = tables[base]
    ref_params = ref.metrics.get("variant_params") or {}
    retest = _retest_level(ref, int(top_k))
    rows = []
    for name, att in tables.items():
        m = att.metrics
        rows.append({"variant": name, "params": _changed(m.get("variant_params") or {}, ref_params),
                     "n_units": len(att.scores), "top_k": int(top_k),
                     **compare(ref.scores, att.scores, int(top_k)),
                     # the pooled residual, the figure of merit (older files: its own key)
                     "completeness_residual": m.get("completeness_residual_pooled",
                                                    m.get("completeness_residual")),
                     "wall_seconds": m.get("wall_seconds"),
                     "n_prompts_nonzero_advantage": m.get("n_prompts_nonzero_advantage"),
                     "samples_per_prompt": m.get("samples_per_prompt"), **retest})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _retest_level(att: Any, top_k: int) -> dict[str, float]:
    """The base run's split-half retest level (NaN with fewer than 2 prompts)."""
    from ipg.study.reliability import whole_split_half

    nan = float("nan")
    pp = att.per_prompt
    if pp.shape[0] < 2 or not 1 <= top_k <= pp.shape[1]:
        return {"retest_spearman_half": nan, "retest_jaccard_half": nan,
                "retest_spearman_full_sb": nan}
    level = whole_split_half(pp, top_k, RETEST_REPEATS)
    return {"retest_spearman_half": level["spearman_half"],
            "retest_jaccard_half": level["jaccard_half"],
            "retest_spearman_full_sb": level["spearman_full_sb"]}


def write_summary(runs: Mapping[str, tuple[str, str]], top_k: int, out_csv: str | os.PathLike,
                  metrics_path: str | os.PathLike | None = None) -> pd.DataFrame:
    """summarize_sensitivity, written atomically as csv (+ a JSON with the rows and provenance)."""
    from ipg.study.provenance import provenance
    from ipg.study.trajectories import write_csv_atomic, write_json_atomic

    summary = summarize_sensitivity(runs, top_k)
    write_csv_atomic(summary, out_csv)
    if metrics_path:
        records = json.loads(summary.to_json(orient="records"))
        write_json_atomic({"variants": records, **provenance({"top_k": top_k, "runs": {
            k: [str(p) for p in v] for k, v in runs.items()}})}, metrics_path)
    return summary
