"""Shared fixtures: tiny random models of the study's architectures (built in well under a second).

Imports are inside the fixtures so that collecting any test never imports the model registry.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline and quiet by default, however the tests are started (make test exports the same).
for _key, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                     "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def tiny_qwen2():
    """(model, tokenizer): 2-layer random Qwen2, 4 heads / 2 KV heads, character tokenizer."""
    from ipg.models.tiny import tiny_random_model

    return tiny_random_model("qwen2", seed=0)


@pytest.fixture(scope="session")
def tiny_llama():
    """(model, tokenizer): 2-layer random Llama, 4 heads / 2 KV heads, character tokenizer."""
    from ipg.models.tiny import tiny_random_model

    return tiny_random_model("llama", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    """A model folder (safetensors + tokenizer + model_card.json) built by `build_model('tiny-qwen2')`."""
    from ipg.models.load import build_model

    return build_model("tiny-qwen2", tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """mlflow.db of an empty MLflow store with its schema migrations applied, built once per
    session: the migrations cost seconds (CPU and fsyncs) per new store. Copy it with
    `new_mlflow_store`; ipg.tracking.init_store's own migration of an empty file is still run by
    tests/test_tracking_dashboard.py::test_changed_steering_csv_replaces_the_run."""
    from mlflow.tracking import MlflowClient

    from ipg.tracking import tracking_uri

    root = tmp_path_factory.mktemp("mlflow-template")
    MlflowClient(tracking_uri=tracking_uri(root)).search_experiments()  # creates and migrates
    return root / "mlflow.db"


@pytest.fixture(scope="session")
def new_mlflow_store(mlflow_template):
    """make(root) -> tracking URI of a store in `root` that starts as a copy of the migrated
    empty template (as init_store would leave it before creating the experiment)."""
    import shutil

    from ipg.tracking import tracking_uri

    def make(root: Path) -> str:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mlflow_template, root / "mlflow.db")
        return tracking_uri(root)

    return make
