"""What one rule output becomes in MLflow: params, metrics, steered outcomes, real run times.

    flatten_params / split_metrics   metrics JSON -> {param: str}, {metric: [values by step]};
                                     the settings sections (params, config, versions) are params
                                     even where their values are numbers (config.m is a setting)
    steering_outcomes                a steering summary CSV -> one metric per condition and
                                     outcome (accuracy, length, entropy, paired difference + CI)
    run_times                        (start, end) in ms: the job's own wall time ending at the
                                     file's modification time, not the ingestion's clock
    figure_stage                     which stage run a report figure belongs to
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from ipg.errors import IPGError

# MLflow >= 2 accepts 6000 characters; 500 (the historical limit) keeps params readable in
# the UI and loadable by any MLflow server. The full JSON is logged as an artifact anyway.
PARAM_VALUE_MAX = 500
KEY_MAX = 250  # MLflow's key length limit
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
# top-level sections of a metrics JSON that hold settings, not measurements
PARAM_SECTIONS = ("params", "config", "versions")
# a job's own wall time, first match wins (ipg.attribution: wall_seconds; steering: seconds)
SECONDS_KEYS = ("wall_seconds", "seconds", "timing.seconds", "elapsed_seconds")
# the steered outcomes logged per condition, and the columns a steering summary CSV must hold
OUTCOMES = ("accuracy", "accuracy_lo", "accuracy_hi", "length", "entropy",
            "d_accuracy", "d_accuracy_lo", "d_accuracy_hi", "d_length", "d_length_lo",
            "d_length_hi", "d_entropy", "d_entropy_lo", "d_entropy_hi")
STEERING_COLUMNS = ("condition", "accuracy", "d_accuracy")
# report figure (reports/figures/<name>.png) -> the stage run it is attached to
FIGURE_STAGES = {
    "completeness": "attribution", "unit_layers": "attribution", "jaccard_methods": "attribution",
    "steering_gamma": "intervention", "deletion_curves": "intervention",
    "length_steering": "intervention", "sharpening_control": "intervention",
    "transfer": "transfer", "cross_task_jaccard": "cross_task", "sensitivity": "sensitivity",
    "bench_targets": "bench",
}


def metric_key(key: str) -> str:
    """A valid MLflow key: odd characters -> "_" ("=" -> ""), no empty or dot segments, <= 250."""
    key = _BAD_KEY_CHARS.sub("_", key.replace("=", ""))
    key = re.sub(r"/+", "/", key).strip("/")
    key = "/".join(p if p not in (".", "..") else "_" for p in key.split("/")) or "_"
    if len(key) > KEY_MAX:
        key = key[:KEY_MAX - 9] + "_" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return key


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= PARAM_VALUE_MAX else text[:PARAM_VALUE_MAX - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flatten_params(obj: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dict -> {"a.b": "value"}: keys made MLflow-valid, values strings of <= 500 chars."""
    out: dict[str, str] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten_params(v, name + "."))
        else:
            out[metric_key(name)] = _value(v)
    return out


def split_metrics(obj: dict[str, Any], prefix: str = "") -> tuple[dict[str, list[float]], dict[str, str]]:
    """Measurements -> metrics (lists of numbers as steps); settings and text -> params.

    Top-level "params" is left out (the caller logs it unprefixed); "config" and "versions" are
    params with their prefix, numbers included: `config.m` is a setting, not a measurement.
    """
    metrics: dict[str, list[float]] = {}
    params: dict[str, str] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if not prefix and k in PARAM_SECTIONS and isinstance(v, dict):
            if k != "params":
                params.update(flatten_params(v, name + "."))
            continue
        if isinstance(v, bool) or _is_number(v):
            metrics[metric_key(name)] = [float(v)]
        elif isinstance(v, dict) and v:
            m, p = split_metrics(v, name + ".")
            metrics.update(m)
            params.update(p)
        elif isinstance(v, list) and v and all(_is_number(x) for x in v):
            metrics[metric_key(name)] = [float(x) for x in v]
        else:
            params[metric_key(name)] = _value(v)
    return metrics, params


def _lookup(obj: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def job_seconds(metrics_json: dict[str, Any]) -> float | None:
    """The job's own wall time in seconds from its metrics JSON (None: it records none)."""
    for key in SECONDS_KEYS:
        value = _lookup(metrics_json, key)
        if _is_number(value) and math.isfinite(value) and value >= 0:
            return float(value)
    return None


def run_times(path: Path, metrics_json: dict[str, Any],
              benchmark: Path | None = None) -> tuple[int, int]:
    """(start, end) in ms since the epoch: the job ended when it wrote `path`, and ran for its
    recorded wall time (metrics JSON, else the `s` column of its Snakemake benchmark TSV)."""
    end = path.stat().st_mtime
    seconds = job_seconds(metrics_json)
    if seconds is None and benchmark is not None and benchmark.is_file():
        lines = benchmark.read_text().splitlines()
        if len(lines) >= 2:
            row = dict(zip(lines[0].split("\t"), lines[-1].split("\t")))
            try:
                seconds = float(row.get("s", "nan"))
            except ValueError:
                seconds = None
            seconds = seconds if seconds is not None and math.isfinite(seconds) else None
    start = end - (seconds or 0.0)
    return int(start * 1000), int(end * 1000)


def steering_outcomes(csv_path: Path):
    """(metrics {"<condition>/<outcome>": value}, the summary frame) of a steering summary CSV.

    One metric per condition and outcome: accuracy, length, entropy and the paired difference
    to the unsteered baseline with its CI (d_*, d_*_lo, d_*_hi). Missing outcome columns are
    skipped; a CSV without the condition / accuracy columns is refused with one line.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(csv_path)
    except (OSError, ValueError) as err:
        raise IPGError(f"steering summary {csv_path} is unreadable ({err}); rerun the rule "
                       f"that wrote it") from err
    missing = [c for c in STEERING_COLUMNS if c not in frame.columns]
    if missing:
        raise IPGError(f"steering summary {csv_path} lacks columns {missing}; it is not a "
                       f"summary of ipg.study.steering.run_steering (rerun that rule)")
    metrics: dict[str, float] = {}
    for _, row in frame.iterrows():
        for outcome in OUTCOMES:
            value = row.get(outcome)
            if value is not None and _is_number(value) and math.isfinite(value):
                metrics[metric_key(f"{row['condition']}/{outcome}")] = float(value)
    return metrics, frame


def figure_stage(name: str) -> str | None:
    """The stage a report figure belongs to (None: the study run takes it)."""
    return FIGURE_STAGES.get(Path(name).stem)
