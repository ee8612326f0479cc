"""MLflow tracking of the study: one sqlite store, one experiment, one MLflow run per rule output.

Layout (relative to the study's working directory, the repo root under `make study`):
    mlflow.db      the tracking store, URI `sqlite:///<absolute path>/mlflow.db`
    mlartifacts/   run artifacts (each run keeps a copy of the metrics JSON it came from)

`init_store` creates the store and the experiment once, before any parallel job (rule
`init_tracking`); `ingest` turns metrics JSON files into runs, serially (rule `ingest_mlflow`).
A run is keyed by its file's path under results/ (tag `ipg.run_key`, e.g.
`trajectories/tiny-qwen2/arith/0`); re-ingesting keeps an unchanged run and replaces a changed
one, so runs are never duplicated. `ui` starts `mlflow ui` on 127.0.0.1 in its own process
group and returns a handle whose `stop()` ends the server and all its children.

sqlite allows one writer at a time: nothing here is meant to run in parallel jobs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ipg.errors import IPGError

log = logging.getLogger(__name__)

EXPERIMENT = "ipg-study"
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
# MLflow >= 2 accepts 6000 characters; 500 (the historical limit) keeps params readable in
# the UI and loadable by any MLflow server. The full JSON is logged as an artifact anyway.
PARAM_VALUE_MAX = 500
KEY_MAX = 250  # MLflow's key length limit
LOCK_TIMEOUT_S = 5.0
RUN_KEY_TAG = "ipg.run_key"
SOURCE_HASH_TAG = "ipg.source_sha256"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


# -- where the store lives ----------------------------------------------------------------------

def tracking_uri(root: str | os.PathLike | None = None) -> str:
    """`sqlite:///<root>/mlflow.db` with an absolute path; root defaults to the working directory."""
    return f"sqlite:///{(Path(root) if root else Path.cwd()).resolve() / DB_NAME}"


def db_path(uri: str) -> Path:
    if not uri.startswith("sqlite:///"):
        raise IPGError(f"tracking URI '{uri}' is not a sqlite:/// URI; the study keeps its runs "
                       f"in a sqlite file (see ipg.tracking.tracking_uri)")
    return Path(uri[len("sqlite:///"):])


def artifact_root(uri: str) -> Path:
    """mlartifacts/ next to the store."""
    return db_path(uri).parent / ARTIFACTS_DIR


# -- clear one-line errors for a locked or foreign store ----------------------------------------

def _locked(db: Path) -> IPGError:
    return IPGError(f"MLflow store {db} is locked by another process (an ingestion or a "
                    f"writer still running?); wait for it or stop it, then rerun")


def _foreign(db: Path, detail: str) -> IPGError:
    detail = " ".join(detail.split())[:200]
    return IPGError(f"{db} is not a usable MLflow tracking store ({detail}); delete it (runs are "
                    f"re-ingested from results/) or, if it is an older MLflow store, run "
                    f"`mlflow db upgrade sqlite:///{db}`")


def check_store(uri: str, timeout: float = LOCK_TIMEOUT_S) -> None:
    """Fail with one line if the store exists but is locked or is not an MLflow database.

    Runs before MLflow opens the file: MLflow would add its tables to any sqlite database.
    """
    db = db_path(uri)
    if not db.exists() or db.stat().st_size == 0:
        return
    with open(db, "rb") as fh:
        if fh.read(16) != _SQLITE_MAGIC:
            raise _foreign(db, "not an SQLite database")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=timeout)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.OperationalError as err:
        if "locked" in str(err):
            raise _locked(db) from err
        raise _foreign(db, str(err)) from err
    except sqlite3.DatabaseError as err:
        raise _foreign(db, str(err)) from err
    if tables and not {"experiments", "runs", "alembic_version"} <= tables:
        raise _foreign(db, f"it has tables {sorted(tables)[:5]} but no MLflow schema")


@contextmanager
def _store_errors(uri: str) -> Iterator[None]:
    """Turn sqlalchemy/sqlite/MLflow store errors into one clear line."""
    try:
        yield
    except IPGError:
        raise
    except Exception as err:  # noqa: BLE001 - inspected and re-raised below
        text, cause = [], err
        while cause is not None and len(text) < 8:
            text.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        joined = " ".join(text)
        db = db_path(uri)
        if "database is locked" in joined:
            raise _locked(db) from err
        for marker in ("out-of-date database schema", "no such table", "no such column",
                       "Can't locate revision", "file is not a database"):
            if marker in joined:
                raise _foreign(db, joined.split("\n")[0]) from err
        raise


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def init_store(uri: str, experiment: str = EXPERIMENT, timeout: float = LOCK_TIMEOUT_S) -> str:
    """Create the store (if missing) and the experiment (if missing); return the experiment id.

    Idempotent. Run once before any job that touches the store (sqlite has one writer).
    """
    check_store(uri, timeout)
    db_path(uri).parent.mkdir(parents=True, exist_ok=True)
    with _store_errors(uri):
        client = _client(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            from mlflow.exceptions import MlflowException

            location = artifact_root(uri)
            location.mkdir(parents=True, exist_ok=True)
            try:
                return client.create_experiment(experiment, artifact_location=location.as_uri(),
                                                tags={"ipg.study": "Integrated Policy Gradient"})
            except MlflowException as err:  # created meanwhile by another process
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    raise err
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id


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


# -- the MLflow UI as a child process group -----------------------------------------------------

def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group; uses /proc, else a signal-0 probe."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except ProcessLookupError:
            return []
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            members.append(int(stat.parent.name))
    return members


class UIServer:
    """A running `mlflow ui`: `url`, `pgid`, `wait_ready()`, `stop()`; a context manager."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: str | None):
        self.process, self.url, self.log_path = process, url, log_path
        self.pgid = os.getpgid(process.pid)

    def alive(self) -> bool:
        return bool(_group_members(self.pgid))

    def _log_tail(self) -> str:
        if not self.log_path or not Path(self.log_path).exists():
            return ""
        lines = Path(self.log_path).read_text(errors="replace").strip().splitlines()
        return f"; last log line: {lines[-1][:200]}" if lines else ""

    def wait_ready(self, timeout: float = 90.0) -> "UIServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise IPGError(f"mlflow ui exited with status {self.process.returncode} before "
                               f"serving {self.url}{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise IPGError(f"mlflow ui did not answer on {self.url} within {timeout:.0f}s"
                       f"{self._log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after `timeout` seconds."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.process.poll()  # reap the leader
                if not self.alive():
                    self._reap()
                    return
                time.sleep(0.1)
        self._reap()

    def _reap(self) -> None:
        """Wait for the group leader so its exit status is collected (no zombie left)."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self) -> "UIServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def ui(uri: str, host: str = "127.0.0.1", port: int = 5000, log_path: str | None = None,
       wait: bool = True, workers: int = 1) -> UIServer:
    """Start `mlflow ui` on the store in its own process group; return its handle.

    `log_path`: the server's stdout/stderr go there (None: inherit this process's).
    """
    check_store(uri)
    if not port_is_free(host, port):
        raise IPGError(f"port {port} on {host} is in use; pass another one (`ipg ui --port 5001`)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--artifacts-destination", artifact_root(uri).as_uri(),
           "--host", host, "--port", str(port), "--workers", str(workers)]
    # No GenAI job runner (7 huey consumer processes) unless asked for: browsing runs needs none.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ,
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    finally:
        if out:
            out.close()
    shown = f"[{host}]" if ":" in host else host
    server = UIServer(process, f"http://{shown}:{port}", log_path)
    return server.wait_ready() if wait else server
