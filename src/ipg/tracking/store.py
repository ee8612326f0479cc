"""The study's MLflow store: where it lives, and one-line errors for a locked or foreign one.

    mlflow.db      the tracking store, URI `sqlite:///<absolute path>/mlflow.db`
    mlartifacts/   run artifacts, next to the store

`init_store` creates the store and the experiment once, before any parallel job (rule
`init_tracking`). `check_store` runs before MLflow opens the file, so a locked store, a file
that is not an SQLite database or a database of another schema fails with one line that names
the file and the fix (MLflow would otherwise add its tables to any sqlite database).
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ipg.errors import IPGError
from ipg.tracking.views import SHARED_VIEW_TAG, save_views

EXPERIMENT = "ipg-study"
# Experiment tags: the experiment's kind. MLflow 3.17's UI ignores it while its sidebar's
# GenAI / Model training switch is on (it is): the switch (default GenAI) picks the landing
# page, so ipg.tracking.runs_url carries workflowType=machine_learning (README, "MLflow").
EXPERIMENT_KIND = "custom_model_development"
EXPERIMENT_NOTE = (
    "Integrated Policy Gradient study. One parent run per study; nested under it one run per "
    "stage (trajectories, attribution, intervention, ...), and under each stage one run per "
    "rule output. Steering runs log their steered outcomes per condition "
    "(`<condition>/accuracy`, `d_accuracy` with `_lo`/`_hi` CI, length, entropy) and the table "
    "`steering_outcomes.json`; the completeness figure of merit is `completeness_residual` "
    "(pooled over prompts). Figures hang on the stage runs they belong to.")
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
LOCK_TIMEOUT_S = 5.0
_SQLITE_MAGIC = b"SQLite format 3\x00"


# -- where the store lives ----------------------------------------------------------------------

def tracking_uri(root: str | os.PathLike | None = None) -> str:
    """`sqlite:///<root>/mlflow.db` with an absolute path; root defaults to the working directory."""
    return f"sqlite:///{(Path(root) if root else Path.cwd()).resolve() / DB_NAME}"


def study_uri(root: str | os.PathLike | None = None) -> str:
    """The tracking URI the study writes to: $MLFLOW_TRACKING_URI (e.g. a remote
    `http://host:5000` server) when set, else the sqlite store under `root`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri(root)


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


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
    Other URIs (a remote server) are MLflow's to check.
    """
    if not is_sqlite(uri):
        return
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
        if not is_sqlite(uri):
            raise IPGError(f"MLflow tracking server {uri} failed: {joined.splitlines()[0][:300]}; "
                           f"check that it is running and reachable (MLFLOW_TRACKING_URI)") from err
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

    Idempotent; (re)sets the experiment's kind and note, and saves the stages' views (ipg.tracking.views) where there are none yet.
    Run once before any job that touches the store (sqlite has one writer). A remote server
    (non-sqlite URI) keeps its artifacts where it is configured to.
    """
    check_store(uri, timeout)
    if is_sqlite(uri):
        db_path(uri).parent.mkdir(parents=True, exist_ok=True)
    tags = {"ipg.study": "Integrated Policy Gradient", "mlflow.experimentKind": EXPERIMENT_KIND,
            "mlflow.note.content": EXPERIMENT_NOTE}
    with _store_errors(uri):
        client = _client(uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            from mlflow.exceptions import MlflowException

            location = None
            if is_sqlite(uri):
                artifact_root(uri).mkdir(parents=True, exist_ok=True)
                location = artifact_root(uri).as_uri()
            try:
                exp_id = client.create_experiment(experiment, artifact_location=location, tags=tags)
                save_views(client, exp_id)
                return exp_id
            except MlflowException as err:  # created meanwhile by another process
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    raise err
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        for key, value in tags.items():
            if exp.tags.get(key) != value:
                client.set_experiment_tag(exp.experiment_id, key, value)
        if not any(key.startswith(SHARED_VIEW_TAG) for key in exp.tags):
            save_views(client, exp.experiment_id)  # ingest refreshes them with steering columns
        return exp.experiment_id
