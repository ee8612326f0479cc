"""The Attribution table every method returns (Eq. 3: S_i = mean over prompts), its files, and
the selection of the top / bottom / largest-magnitude units (docs/method.md, Eq. 3 and
"Importance is not direction").

Parquet layout: one row per unit: unit, layer, index, score, ci_lo, ci_hi, granularity,
method, then one column `pp:{prompt_id}` per prompt holding that prompt's score (kept for
confidence intervals and bootstrap). ci_lo/ci_hi: normal 95% interval over prompts.
Metrics (a JSON file) hold the run's measurements and its full config.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from ipg.errors import IPGError

PP = "pp:"  # prefix of per-prompt score columns
SELECT_MODES = ("signed", "bottom", "magnitude")


@dataclass
class Attribution:
    scores: pd.DataFrame  # unit, layer, index, score, ci_lo, ci_hi, granularity, method
    per_prompt: np.ndarray  # [n_prompts, n_units] float32, IPG_i(x) of each prompt
    prompt_ids: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)


def make_attribution(
    units: Sequence[str],
    layers: Sequence[int],
    indices: Sequence[int],
    per_prompt: np.ndarray,
    prompt_ids: Sequence[str],
    granularity: str,
    method: str,
    metrics: dict[str, Any] | None = None,
) -> Attribution:
    """Build the table from per-prompt scores [n_prompts, n_units] (score = mean over prompts)."""
    pp = np.asarray(per_prompt, dtype=np.float64)
    n = pp.shape[0]
    mean = pp.mean(axis=0) if n else np.zeros(pp.shape[1])
    se = pp.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    scores = pd.DataFrame({
        "unit": list(units), "layer": np.asarray(layers, dtype=np.int64),
        "index": np.asarray(indices, dtype=np.int64), "score": mean,
        "ci_lo": mean - 1.96 * se, "ci_hi": mean + 1.96 * se,
        "granularity": granularity, "method": method,
    })
    return Attribution(scores, pp.astype(np.float32), [str(p) for p in prompt_ids], dict(metrics or {}))


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def write_attribution(att: Attribution, parquet_path: str | os.PathLike,
                      metrics_path: str | os.PathLike) -> None:
    """Write the table (+ per-prompt columns) and the metrics JSON, each atomically."""
    per_prompt = pd.DataFrame(att.per_prompt.T, columns=[PP + p for p in att.prompt_ids])
    frame = pd.concat([att.scores.reset_index(drop=True), per_prompt], axis=1)
    _atomic_write(Path(parquet_path), lambda tmp: frame.to_parquet(tmp, index=False))

    def dump(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(_jsonable(att.metrics), fh, indent=2, sort_keys=True)

    _atomic_write(Path(metrics_path), dump)


def read_attribution(parquet_path: str | os.PathLike,
                     metrics_path: str | os.PathLike | None = None) -> Attribution:
    """Read what write_attribution wrote (metrics {} when no metrics path is given)."""
    path = Path(parquet_path)
    if not path.exists():
        raise IPGError(f"attribution table {path} does not exist; run the attribution rule first")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
        raise IPGError(f"attribution table {path} is not readable parquet ({reason}); delete it "
                       f"and rerun the attribution rule") from None
    missing = [c for c in ("unit", "score") if c not in frame.columns]
    if missing:
        raise IPGError(f"attribution table {path} lacks column(s) {missing}; delete it and rerun "
                       f"the attribution rule")
    pp_cols = [c for c in frame.columns if c.startswith(PP)]
    metrics = _read_metrics(Path(metrics_path)) if metrics_path else {}
    per_prompt = (frame[pp_cols].to_numpy(dtype=np.float32).T if pp_cols
                  else np.zeros((0, len(frame)), np.float32))  # [n_prompts, n_units]
    return Attribution(frame.drop(columns=pp_cols), per_prompt,
                       [c[len(PP):] for c in pp_cols], metrics)


def _read_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise IPGError(f"attribution metrics {path} does not exist; rerun the attribution rule")
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise IPGError(f"attribution metrics {path} is not valid JSON ({reason}); delete it and "
                       f"rerun the attribution rule") from None
    if not isinstance(metrics, dict):
        raise IPGError(f"attribution metrics {path} holds a JSON {type(metrics).__name__}, not an "
                       f"object; delete it and rerun the attribution rule")
    return metrics


def select_units(
    scores: pd.DataFrame | Attribution,
    k: int,
    mode: Literal["signed", "bottom", "magnitude"] = "signed",
    per_layer: bool = False,
    strict: bool = True,
) -> list[str]:
    """The k units with the largest score (signed), smallest (bottom) or largest |score|
    (magnitude); per_layer=True takes k from every layer. Ties keep table order.
    k larger than the number of units (of the smallest layer, per_layer) is a one-line error
    naming the granularity, as steering k units of a 4-unit granularity would silently steer
    4; strict=False returns them all instead (plots that show "up to k")."""
    frame = scores.scores if isinstance(scores, Attribution) else scores
    if mode not in SELECT_MODES:
        raise IPGError(f"unknown selection mode '{mode}'; allowed: {', '.join(SELECT_MODES)}")
    if int(k) != k or k < 0:
        raise IPGError(f"selection size k must be an integer >= 0, got {k}")
    if strict:
        sizes = frame.groupby("layer").size() if per_layer else pd.Series({"all": len(frame)})
        n = int(sizes.min()) if len(sizes) else 0
        if k > n:
            where = "the smallest layer of the table" if per_layer else "the attribution table"
            gran = ", ".join(map(str, sorted(set(frame.get("granularity", []))))) or "units"
            raise IPGError(f"selection size k={int(k)} is larger than the {n} units of {where} "
                           f"({gran}); lower k (steering.ks) to at most {n} for {gran} (the same "
                           f"bound holds for steering.deletion_ks and sensitivity.top_k)")
    key = {"signed": -frame["score"], "bottom": frame["score"], "magnitude": -frame["score"].abs()}[mode]
    ordered = frame.assign(_key=key.to_numpy()).sort_values("_key", kind="stable")
    if per_layer:
        ordered = ordered.groupby("layer", sort=True, group_keys=False).head(int(k))
        return ordered.sort_values(["layer", "_key"], kind="stable")["unit"].tolist()
    return ordered["unit"].head(int(k)).tolist()
