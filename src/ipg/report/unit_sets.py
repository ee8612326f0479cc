"""Which units each steering condition scaled: an id per (job, selection, k) for the verdicts.

The per-prompt steering rows (ipg.study.steering) name a condition by selection and k, not by the
units it steered. Those units are a deterministic function of the job's input attribution
table (results/attribution/{m}/{t}/{g}/{method}.parquet, which Snakemake makes the steering job
rerun on when it changes): `select_units(scores, k, mode, per_layer)` with mode = the selection
("deletion" and "mean_ablation" are the signed top-k). `attach_unit_ids` recomputes them and
adds `units_id` (a hash of the sorted unit names; "" for the unsteered and temperature-control
rows) so that two arms that steer exactly the same units (e.g. layers k = 1 for IPG and Act, or
IPG's signed and magnitude sets) are known to be the same intervention (docs/method.md,
"Evaluation: paired verdicts on held-out prompts"). A job whose table is absent, and a
selection that is not an attribution ranking, keep NaN ids (unknown: never "same set").
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterable

import numpy as np
import pandas as pd


JOB = ["model", "task", "granularity", "method"]
UNSTEERED = ("none", "temperature")
SIGNED_ALIASES = ("deletion", "mean_ablation")


def unit_set_id(units: Iterable[str]) -> str:
    """A short stable id of a set of unit names (order is not data); "" for the empty set."""
    names = sorted(map(str, units))
    return hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16] if names else ""


def per_layer_of(config: dict | None, model: str) -> bool:
    """steering.per_layer for one model (its study entry's override first; schema default false)."""
    steering = (config or {}).get("steering") or {}
    value = steering.get("per_layer", False)
    for entry in (config or {}).get("study") or []:
        if entry.get("model") == model and "per_layer" in (entry.get("steering") or {}):
            value = entry["steering"]["per_layer"]
    return bool(value)


def attach_unit_ids(rows: pd.DataFrame, attributions: pd.DataFrame,
                    config: dict | None = None) -> pd.DataFrame:
    """`rows` with a `units_id` column: the id of the units each (job, selection, k) steered,
    recomputed from the job's attribution table (`attributions`: ipg.report.collect's frame,
    with its parquet `path`); rows that already carry an id keep it."""
    from ipg.attribution.table import SELECT_MODES, read_attribution, select_units

    out = rows.copy()
    if "units_id" not in out.columns:
        out["units_id"] = np.nan
    out["units_id"] = out["units_id"].astype(object)
    unsteered = out["selection"].isin(UNSTEERED)
    out.loc[unsteered & out["units_id"].isna(), "units_id"] = ""
    if out.empty or attributions is None or attributions.empty:
        return out
    paths = attributions.set_index(JOB)["path"].to_dict()
    todo = out["units_id"].isna()
    for key, idx in out[todo].groupby(JOB, sort=False).groups.items():
        path = paths.get(tuple(key))
        if path is None:
            continue
        scores = read_attribution(path).scores
        part = out.loc[idx]
        for (selection, k), sub in part.groupby(["selection", "k"], sort=False).groups.items():
            mode = "signed" if selection in SIGNED_ALIASES else selection
            if mode not in SELECT_MODES:  # a named set (evaluate_unit_sets): unknown units
                continue
            units = select_units(scores, int(k), mode, per_layer=per_layer_of(config, key[0]),
                                 strict=False)
            out.loc[sub, "units_id"] = unit_set_id(units)
    return out
