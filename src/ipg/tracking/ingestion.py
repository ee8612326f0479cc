"""Metrics JSON files -> MLflow runs, one run per rule output, serially (rule `ingest_mlflow`).

A run is keyed by its file's path under results/ (tag `ipg.run_key`, e.g.
`trajectories/tiny-qwen2/arith/0`); re-ingesting keeps an unchanged run (same content hash,
tag `ipg.source_sha256`) and replaces a changed one, so runs are never duplicated. Numbers
(and lists of numbers, as steps) become metrics, everything else params; keys and values are
made valid for MLflow. sqlite allows one writer at a time: nothing here runs in parallel jobs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from ipg.errors import IPGError
from ipg.tracking.store import EXPERIMENT, LOCK_TIMEOUT_S, _client, _store_errors, init_store

log = logging.getLogger(__name__)

# MLflow >= 2 accepts 6000 characters; 500 (the historical limit) keeps params readable in
# the UI and loadable by any MLflow server. The full JSON is logged as an artifact anyway.
PARAM_VALUE_MAX = 500
KEY_MAX = 250  # MLflow's key length limit
RUN_KEY_TAG = "ipg.run_key"
SOURCE_HASH_TAG = "ipg.source_sha256"
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


# -- metrics JSON -> params, metrics, tags ------------------------------------------------------

def _key(key: str) -> str:
    key = _BAD_KEY_CHARS.sub("_", key)
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
            out[_key(name)] = _value(v)
    return out


def split_metrics(obj: dict[str, Any], prefix: str = "") -> tuple[dict[str, list[float]], dict[str, str]]:
    """Everything but "params": numbers (and lists of numbers, as steps) -> metrics; rest -> params."""
    metrics: dict[str, list[float]] = {}
    params: dict[str, str] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if not prefix and k == "params" and isinstance(v, dict):
            continue
        if isinstance(v, bool):
            metrics[_key(name)] = [float(v)]
        elif _is_number(v):
            metrics[_key(name)] = [float(v)]
        elif isinstance(v, dict) and v:
            m, p = split_metrics(v, name + ".")
            metrics.update(m)
            params.update(p)
        elif isinstance(v, list) and v and all(_is_number(x) for x in v):
            metrics[_key(name)] = [float(x) for x in v]
        else:
            params[_key(name)] = _value(v)
    return metrics, params


def run_identity(path: str | os.PathLike, results_dir: str | os.PathLike = "results") -> dict[str, str]:
    """{key, name, stage, model?, task?} from the file's path: results/{stage}/{model}/{task}/...json."""
    p = Path(path).with_suffix("")
    try:
        parts = p.resolve().relative_to(Path(results_dir).resolve()).parts
    except ValueError:
        parts = p.parts[-4:]
    if len(parts) == 1:
        parts = ("metrics", *parts)
    ident = {"key": "/".join(parts), "stage": parts[0], "name": "/".join(parts[1:])}
    if len(parts) >= 4:
        ident.update(model=parts[1], task=parts[2])
    return ident


def _source_hash(raw: bytes, base_params: dict[str, Any]) -> str:
    digest = hashlib.sha256(raw)
    digest.update(json.dumps(base_params, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _existing_runs(client, experiment_id: str) -> dict[str, list]:
    from mlflow.entities import ViewType

    by_key: dict[str, list] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=1000, page_token=token)
        for run in page:
            if RUN_KEY_TAG in run.data.tags:
                by_key.setdefault(run.data.tags[RUN_KEY_TAG], []).append(run)
        token = page.token
        if not token:
            return by_key


def _delete_run(client, run) -> None:
    """Remove a replaced run for good (metadata and its local artifacts), else soft-delete it."""
    store = client._tracking_client.store
    try:
        store._hard_delete_run(run.info.run_id)  # what `mlflow gc` does; private but stable
    except Exception:  # noqa: BLE001 - fall back to MLflow's public soft delete
        client.delete_run(run.info.run_id)
        return
    uri = run.info.artifact_uri or ""
    if uri.startswith("file://"):
        folder = Path(uri[len("file://"):]).parent  # <artifact root>/<run id>
        if folder.name == run.info.run_id:
            shutil.rmtree(folder, ignore_errors=True)


def _log_run(client, experiment_id: str, path: Path, metrics_json: dict, ident: dict,
             base_params: dict, digest: str) -> str:
    from mlflow.entities import Metric, Param, RunStatus, RunTag

    params = flatten_params(base_params)
    file_params = metrics_json.get("params")
    params.update(flatten_params(file_params if isinstance(file_params, dict) else {}))
    metrics, extra = split_metrics(metrics_json)
    params.update({k: v for k, v in extra.items() if k not in params})
    tags = {RUN_KEY_TAG: ident["key"], SOURCE_HASH_TAG: digest, "ipg.source": str(path),
            "stage": ident["stage"]}
    tags.update({k: ident[k] for k in ("model", "task") if k in ident})
    run = client.create_run(experiment_id, run_name=ident["name"], tags=tags)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        metric_list = [Metric(k, v, now, step) for k, values in metrics.items()
                       for step, v in enumerate(values)]
        for chunk in _chunks([Param(k, v) for k, v in sorted(params.items())], 100):
            client.log_batch(run_id, params=chunk)
        for chunk in _chunks(metric_list, 1000):
            client.log_batch(run_id, metrics=chunk)
        client.log_artifact(run_id, str(path))
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id


def ingest(metrics_files: Sequence[str | os.PathLike], uri: str, experiment: str = EXPERIMENT,
           base_params: dict[str, Any] | None = None, results_dir: str | os.PathLike = "results",
           timeout: float = LOCK_TIMEOUT_S) -> dict[str, dict[str, str]]:
    """One MLflow run per metrics JSON; returns {run key: {run_id, name, source, action}}.

    action is "created", "replaced" (the file or base params changed: the old run is deleted)
    or "unchanged" (same content: the run is kept). Serial only: sqlite has one writer.
    """
    base_params = dict(base_params or {})
    experiment_id = init_store(uri, experiment, timeout)
    out: dict[str, dict[str, str]] = {}
    with _store_errors(uri):
        client = _client(uri)
        existing = _existing_runs(client, experiment_id)
        for f in metrics_files:
            path = Path(f)
            raw = path.read_bytes()
            try:
                metrics_json = json.loads(raw)
            except json.JSONDecodeError as err:
                raise IPGError(f"{path} is not valid JSON ({err}); rerun the rule that wrote it") from err
            if not isinstance(metrics_json, dict):
                raise IPGError(f"{path} holds a JSON {type(metrics_json).__name__}, not an object")
            ident = run_identity(path, results_dir)
            if ident["key"] in out:
                raise IPGError(f"{path} and {out[ident['key']]['source']} map to the same run "
                               f"'{ident['key']}'; pass each output once")
            digest = _source_hash(raw, base_params)
            old = existing.get(ident["key"], [])
            keep = next((r for r in old if r.data.tags.get(SOURCE_HASH_TAG) == digest
                         and r.info.status == "FINISHED"), None)
            if keep is not None:
                run_id, action = keep.info.run_id, "unchanged"
            else:
                run_id = _log_run(client, experiment_id, path, metrics_json, ident,
                                  base_params, digest)
                action = "replaced" if old else "created"
            for run in old:
                if run is not keep:
                    _delete_run(client, run)
            out[ident["key"]] = {"run_id": run_id, "name": ident["name"], "source": str(path),
                                 "action": action}
            log.info("%s run %s (%s) from %s", action, run_id, ident["key"], path)
    return out


def _write_json(obj: dict, path: str | os.PathLike) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)


def init_to_file(marker: str | os.PathLike, uri: str, experiment: str = EXPERIMENT) -> dict:
    """`init_store`, then write {"tracking_uri", "experiment", "experiment_id"} to the marker."""
    summary = {"tracking_uri": uri, "experiment": experiment,
               "experiment_id": init_store(uri, experiment)}
    _write_json(summary, marker)
    return summary


def ingest_to_file(metrics_files: Sequence[str], out_path: str | os.PathLike, uri: str,
                   experiment: str = EXPERIMENT, base_params: dict[str, Any] | None = None,
                   results_dir: str | os.PathLike = "results") -> dict:
    """`ingest`, then write {"tracking_uri", "experiment", "runs": {key: {...}}} to out_path."""
    runs = ingest(metrics_files, uri, experiment, base_params, results_dir)
    summary = {"tracking_uri": uri, "experiment": experiment, "runs": runs}
    _write_json(summary, out_path)
    return summary
