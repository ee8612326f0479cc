"""Metrics JSON files -> MLflow runs, serially (rule `ingest_mlflow`): a study run, nested in it
one run per stage, nested in those one run per rule output.

An output run is keyed by its file's path under results/ (tag `ipg.run_key`, e.g.
`trajectories/tiny-qwen2/arith/0`); re-ingesting keeps an unchanged run (same content hash,
tag `ipg.source_sha256`) and replaces a changed one, so runs are never duplicated. What becomes
a param or a metric is ipg.tracking.content's job; a steering output (a summary CSV next to its
JSON) also logs its steered outcomes per condition and the table. Run times are the jobs' own.
The study and stage runs are rebuilt on every ingestion (they span their children's times) and
carry the report's figures. sqlite allows one writer at a time: nothing here runs in parallel.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

from ipg.errors import IPGError
from ipg.tracking.content import (
    STEERING_COLUMNS, figure_stage, flatten_params, run_times,
    split_metrics, steering_outcomes)
from ipg.tracking.store import EXPERIMENT, LOCK_TIMEOUT_S, _client, _store_errors, init_store
from ipg.tracking.views import save_views

log = logging.getLogger(__name__)

RUN_KEY_TAG = "ipg.run_key"
SOURCE_HASH_TAG = "ipg.source_sha256"
LEVEL_TAG = "ipg.level"  # study | stage | output
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag: the UI groups children under it
STUDY_KEY = "_study"
STAGE_KEY = "_stage/{}"


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
        from mlflow.exceptions import MlflowException

        try:
            client.delete_run(run.info.run_id)
        except MlflowException as err:  # already gone (another ingestion removed it)
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        return
    uri = run.info.artifact_uri or ""
    if uri.startswith("file://"):
        folder = Path(uri[len("file://"):]).parent  # <artifact root>/<run id>
        if folder.name == run.info.run_id:
            shutil.rmtree(folder, ignore_errors=True)


def _steering_csv(path: Path) -> Path | None:
    """The steering summary CSV next to a metrics JSON, if the output is a steering one."""
    csv = path.with_suffix(".csv")
    if not csv.is_file():
        return None
    header = csv.open().readline().strip().split(",")
    return csv if set(STEERING_COLUMNS) <= set(header) else None


def _finish(client, run_id: str, metrics: dict[str, list[float]], params: dict[str, str],
            when: int) -> None:
    """Log params and metrics (each list a series of steps, stamped `when` ms) in batches."""
    from mlflow.entities import Metric, Param

    metric_list = [Metric(k, v, when, step) for k, values in metrics.items()
                   for step, v in enumerate(values)]
    for chunk in _chunks([Param(k, v) for k, v in sorted(params.items())], 100):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(metric_list, 1000):
        client.log_batch(run_id, metrics=chunk)


def _log_run(client, experiment_id: str, path: Path, metrics_json: dict, ident: dict,
             base_params: dict, digest: str, parent_id: str | None = None) -> str:
    from mlflow.entities import RunStatus

    params = flatten_params(base_params)
    file_params = metrics_json.get("params")
    params.update(flatten_params(file_params if isinstance(file_params, dict) else {}))
    metrics, extra = split_metrics(metrics_json)
    params.update({k: v for k, v in extra.items() if k not in params})
    csv = _steering_csv(path)
    frame = None
    if csv is not None:
        steered, frame = steering_outcomes(csv)
        metrics.update({k: [v] for k, v in steered.items()})
    tags = {RUN_KEY_TAG: ident["key"], SOURCE_HASH_TAG: digest, "ipg.source": str(path),
            "stage": ident["stage"], LEVEL_TAG: "output"}
    tags.update({k: ident[k] for k in ("model", "task") if k in ident})
    if parent_id:
        tags[PARENT_TAG] = parent_id
    start, end = run_times(path, metrics_json)
    run = client.create_run(experiment_id, start_time=start, run_name=ident["name"], tags=tags)
    run_id = run.info.run_id
    try:
        _finish(client, run_id, metrics, params, end)
        client.log_artifact(run_id, str(path))
        if csv is not None:
            client.log_artifact(run_id, str(csv))
            client.log_table(run_id, frame, "steering_outcomes.json")
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED), end_time=end)
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=end)
    return run_id


def _summary_run(client, experiment_id: str, key: str, name: str, level: str, span: list,
                 params: dict, metrics: dict, tags: dict, figures: Sequence[Path]) -> str:
    """A study or stage run spanning its children's times [(start, end) ms], with figures."""
    from mlflow.entities import RunStatus

    start = min((s for s, _ in span), default=None)
    end = max((e for _, e in span), default=None)
    run = client.create_run(experiment_id, start_time=start, run_name=name,
                            tags={RUN_KEY_TAG: key, LEVEL_TAG: level, **tags})
    run_id = run.info.run_id
    _finish(client, run_id, {k: [float(v)] for k, v in metrics.items()}, flatten_params(params),
            end or 0)
    for fig in figures:
        client.log_artifact(run_id, str(fig), "figures")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=end)
    return run_id


def _figure_files(figures: Sequence[str | os.PathLike] | str | os.PathLike | None) -> list[Path]:
    """PNG/SVG/PDF files from a list of files and folders (a folder: its figures)."""
    if figures is None:
        return []
    items = [figures] if isinstance(figures, (str, os.PathLike)) else list(figures)
    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            out += sorted(p for p in item.iterdir() if p.suffix in (".png", ".svg", ".pdf"))
        elif item.is_file():
            out.append(item)
        else:
            raise IPGError(f"figure {item} does not exist; rerun the report rule or drop it")
    return out


def _rebuild_hierarchy(client, experiment_id: str, existing: dict, outputs: dict,
                       spans: dict, experiment: str, base_params: dict,
                       figures: list[Path]) -> str:
    """Replace the study and stage runs and point every output run at its stage run."""
    for key, runs in existing.items():
        if key == STUDY_KEY or key.startswith(STAGE_KEY.format("")):
            for run in runs:
                _delete_run(client, run)
    by_stage: dict[str, list[str]] = {}
    for key, rec in outputs.items():
        by_stage.setdefault(rec["stage"], []).append(key)
    study_id = _summary_run(
        client, experiment_id, STUDY_KEY, experiment, "study", list(spans.values()), base_params,
        {"n_runs": len(outputs), **{f"n_runs.{s}": len(k) for s, k in by_stage.items()}},
        {"stage": "study"}, [f for f in figures if figure_stage(f.name) not in by_stage])
    for stage, keys in sorted(by_stage.items()):
        stage_id = _summary_run(
            client, experiment_id, STAGE_KEY.format(stage), stage, "stage",
            [spans[k] for k in keys], {}, {"n_runs": len(keys)},
            {"stage": stage, PARENT_TAG: study_id},
            [f for f in figures if figure_stage(f.name) == stage])
        for key in keys:
            if outputs[key].get("parent") != stage_id:
                client.set_tag(outputs[key]["run_id"], PARENT_TAG, stage_id)
    return study_id


def ingest(metrics_files: Sequence[str | os.PathLike], uri: str, experiment: str = EXPERIMENT,
           base_params: dict[str, Any] | None = None, results_dir: str | os.PathLike = "results",
           timeout: float = LOCK_TIMEOUT_S,
           figures: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
           ) -> dict[str, dict[str, str]]:
    """One MLflow run per metrics JSON, nested in a stage run nested in a study run.

    Returns {run key: {run_id, name, stage, source, action}}; action is "created", "replaced"
    (the file, its steering CSV or base params changed: the old run is deleted) or "unchanged"
    (the run is kept). `figures`: report figures (files or a folder) for the stage runs.
    Serial only: sqlite has one writer.
    """
    base_params = dict(base_params or {})
    figure_files = _figure_files(figures)
    experiment_id = init_store(uri, experiment, timeout)
    out: dict[str, dict[str, str]] = {}
    spans: dict[str, tuple[int, int]] = {}
    parents: dict[str, str | None] = {}
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
            csv = _steering_csv(path)
            digest = _source_hash(raw + (csv.read_bytes() if csv else b""), base_params)
            old = existing.get(ident["key"], [])
            keep = next((r for r in old if r.data.tags.get(SOURCE_HASH_TAG) == digest
                         and r.info.status == "FINISHED"), None)
            if keep is not None:
                run_id, action = keep.info.run_id, "unchanged"
                spans[ident["key"]] = (keep.info.start_time, keep.info.end_time or keep.info.start_time)
                parents[ident["key"]] = keep.data.tags.get(PARENT_TAG)
            else:
                run_id = _log_run(client, experiment_id, path, metrics_json, ident,
                                  base_params, digest)
                action = "replaced" if old else "created"
                spans[ident["key"]] = run_times(path, metrics_json)
                parents[ident["key"]] = None
            for run in old:
                if run is not keep:
                    _delete_run(client, run)
            out[ident["key"]] = {"run_id": run_id, "name": ident["name"], "stage": ident["stage"],
                                 "source": str(path), "action": action}
            log.info("%s run %s (%s) from %s", action, run_id, ident["key"], path)
        linked = {k: {**v, "parent": parents[k]} for k, v in out.items()}
        study_id = _rebuild_hierarchy(client, experiment_id, existing, linked, spans, experiment,
                                      base_params, figure_files)
        log.info("study run %s over %d output runs", study_id, len(out))
        steered = [k for v in out.values() if v["stage"] == "intervention"
                   for k in client.get_run(v["run_id"]).data.metrics]
        save_views(client, experiment_id, steered, created_ms=max(
            (end for _, end in spans.values()), default=0))
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
                   results_dir: str | os.PathLike = "results",
                   figures: Sequence[str | os.PathLike] | str | os.PathLike | None = None) -> dict:
    """`ingest`, then write {"tracking_uri", "experiment", "runs": {key: {...}}} to out_path."""
    runs = ingest(metrics_files, uri, experiment, base_params, results_dir, figures=figures)
    summary = {"tracking_uri": uri, "experiment": experiment, "runs": runs}
    _write_json(summary, out_path)
    return summary
