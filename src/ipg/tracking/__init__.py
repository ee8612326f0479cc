"""MLflow tracking of the study: one sqlite store (or $MLFLOW_TRACKING_URI), one experiment, a
study run with nested stage runs and one nested MLflow run per rule output.

    store.py      where the store lives (mlflow.db, mlartifacts/), init_store, one-line errors
                  for a locked store or a file of another kind / schema
    content.py    one output -> params, metrics, steered outcomes, real run times
    ingestion.py  metrics JSON files -> a study run, stage runs, one run per output (serial;
                  unchanged runs kept, changed ones replaced)
    server.py     `mlflow ui` on 127.0.0.1 in its own process group (UIServer.stop ends it all)
    views.py      saved views (experiment tags): each stage's runs with its useful columns
    browser.py    headless Chromium over DevTools, to look at the UI (screenshot, slow test)

The names below are the public interface: `from ipg.tracking import ingest, ui, ...`.
sqlite allows one writer at a time: nothing here is meant to run in parallel jobs.
"""
from __future__ import annotations

from ipg.tracking.content import KEY_MAX, PARAM_VALUE_MAX, flatten_params, split_metrics, steering_outcomes
from ipg.tracking.ingestion import (
    LEVEL_TAG,
    RUN_KEY_TAG,
    SOURCE_HASH_TAG,
    ingest,
    ingest_to_file,
    init_to_file,
    run_identity,
)
from ipg.tracking.server import UIServer, port_is_free, runs_url, ui
from ipg.tracking.store import (
    ARTIFACTS_DIR,
    DB_NAME,
    EXPERIMENT,
    LOCK_TIMEOUT_S,
    EXPERIMENT_KIND,
    artifact_root,
    check_store,
    db_path,
    init_store,
    study_uri,
    tracking_uri,
)
from ipg.tracking.views import COLUMNS, save_views, share_key, view_state, view_url

__all__ = [
    "ARTIFACTS_DIR", "DB_NAME", "EXPERIMENT", "KEY_MAX", "LOCK_TIMEOUT_S", "PARAM_VALUE_MAX",
    "RUN_KEY_TAG", "SOURCE_HASH_TAG", "UIServer", "artifact_root", "check_store", "db_path",
    "flatten_params", "ingest", "ingest_to_file", "init_store", "init_to_file", "port_is_free",
    "run_identity", "split_metrics", "tracking_uri", "ui", "EXPERIMENT_KIND", "LEVEL_TAG",
    "steering_outcomes", "study_uri", "runs_url", "COLUMNS", "save_views", "share_key",
    "view_state", "view_url",
]
