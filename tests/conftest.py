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

# `make test` runs the suite on pytest-xdist workers (`-n 2 --dist loadgroup`). Every test that
# reads one of these session fixtures runs on ONE worker, so the fixture is built once per run, not
# once per worker. fixture -> the test files that read it (rootdir-relative): the scheduler below
# only sees node ids, and collection stops with one line if a test elsewhere reads the fixture.
# (xdist's own `xdist_group` marks are not used: pytest-xdist 3.8.0 puts the group into the node id,
# which pytest 9.2 no longer reads, so the marks are silently ignored: pytest-xdist issue #1386.)
ONE_WORKER_FIXTURES: dict[str, tuple[str, ...]] = {
    "finished_study": ("tests/workflow/test_workflow.py", "tests/workflow/test_rerun_scope.py",
                       "tests/workflow/test_interrupt.py", "tests/workflow/test_slurm.py"),
}


def one_worker_group(nodeid: str) -> str | None:
    """The fixture whose tests run on one worker that the test `nodeid` belongs to, else None."""
    path = nodeid.split("::", 1)[0]
    return next((fixture for fixture, files in ONE_WORKER_FIXTURES.items() if path in files), None)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        path = item.path.relative_to(config.rootpath).as_posix()
        for fixture, files in ONE_WORKER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and path not in files:
                raise pytest.UsageError(
                    f"{item.nodeid} reads the session fixture {fixture!r}, but {path} is not listed in "
                    f"ONE_WORKER_FIXTURES[{fixture!r}] (tests/conftest.py): add it there so that "
                    f"pytest-xdist runs it on the worker that builds the fixture")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: unused when xdist is not loaded
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup, plus one work unit per ONE_WORKER_FIXTURES entry. xdist hands out the
    largest unit first (the 7 tests of finished_study; every other test is a unit of its own), so
    one worker starts the CI study at once while the other runs the rest of the suite."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FixtureGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return one_worker_group(nodeid) or super()._split_scope(nodeid)

    return FixtureGroupScheduling(config, log)


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
