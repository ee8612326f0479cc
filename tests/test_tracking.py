"""MLflow tracking: idempotent store and ingestion, one-line errors, the UI's process group.

One sqlite store is built per module, from the session's migrated empty store (MLflow's schema
migrations take seconds: tests/conftest.py); tests that break a store work on a copy of it.
"""
from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from ipg import tracking
from ipg.tracking.server import _group_members
from ipg.errors import IPGError

EXP = "ipg-study"


def write_metrics(root: Path, model: str, task: str, seed: int, accuracy: float) -> Path:
    path = root / "results" / "trajectories" / model / task / f"{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "accuracy": accuracy, "n_trajectories": 64, "per_layer": [0.25, 0.5],
        "config_hash": "abc123", "versions": {"torch": "2.13.0"}, "timing": {"seconds": 1.5},
        "params": {"task": task, "seed": seed, "sampling": {"temperature": 1.0},
                   "long": "x" * 700, "odd key!": 1},
    }))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory, new_mlflow_store):
    """(root, uri, files, first ingestion): a store with two runs from two metrics JSONs (the
    store starts as a copy of the session's migrated empty store: tests/conftest.py)."""
    root = tmp_path_factory.mktemp("tracking")
    uri = new_mlflow_store(root)
    assert uri == tracking.tracking_uri(root)
    files = [write_metrics(root, "tiny-qwen2", "arith", 0, 0.5),
             write_metrics(root, "tiny-qwen2", "arith", 1, 0.75)]
    runs = tracking.ingest(files, uri, EXP, {"study.config_hash": "c0ffee"}, root / "results")
    return root, uri, files, runs


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def all_runs(uri, level="output", experiment=EXP):
    """The experiment's runs of one level (study, stage, output; None: all)."""
    c = client(uri)
    runs = c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
    return [r for r in runs if level is None or r.data.tags.get(tracking.LEVEL_TAG) == level]


def one_line_error(func, *args, **kwargs) -> str:
    with pytest.raises(IPGError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def test_tracking_uri_is_an_absolute_sqlite_path(tmp_path):
    uri = tracking.tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.artifact_root(uri) == tmp_path.resolve() / "mlartifacts"


def test_flattening_follows_mlflow_key_and_value_rules():
    params = tracking.flatten_params({"a": {"b": 1, "c": [1, 2]}, "bad key!": "x" * 700})
    assert params["a.b"] == "1" and params["a.c"] == "[1, 2]"
    assert len(params["bad key_"]) == tracking.PARAM_VALUE_MAX
    metrics, extra = tracking.split_metrics({"acc": 0.5, "ok": True, "curve": [1, 2],
                                             "t": {"s": 2}, "name": "n", "params": {"p": 1}})
    assert metrics == {"acc": [0.5], "ok": [1.0], "curve": [1.0, 2.0], "t.s": [2.0]}
    assert extra == {"name": "n"}
    # settings are params even when they are numbers: config.m is not a measurement
    metrics, extra = tracking.split_metrics({"config": {"m": 16, "quadrature": "gauss_legendre"},
                                             "versions": {"torch": "2.13.0"}, "wall_seconds": 3.0})
    assert metrics == {"wall_seconds": [3.0]}
    assert extra == {"config.m": "16", "config.quadrature": "gauss_legendre",
                     "versions.torch": "2.13.0"}


def test_run_identity_from_the_results_layout(tmp_path):
    ident = tracking.run_identity(tmp_path / "results/trajectories/m/t/3.json", tmp_path / "results")
    assert ident == {"key": "trajectories/m/t/3", "stage": "trajectories", "name": "m/t/3",
                     "model": "m", "task": "t"}


def test_init_store_is_idempotent(study):
    root, uri, _, _ = study
    first = tracking.init_store(uri, EXP)
    assert tracking.init_store(uri, EXP) == first
    experiments = [e for e in client(uri).search_experiments() if e.name == EXP]
    assert len(experiments) == 1
    assert experiments[0].artifact_location == (root.resolve() / "mlartifacts").as_uri()


def test_ingest_creates_one_run_per_file(study):
    root, uri, files, ingested = study
    assert {v["action"] for v in ingested.values()} == {"created"}
    runs = {r.info.run_name: r for r in all_runs(uri)}
    assert set(runs) == {"tiny-qwen2/arith/0", "tiny-qwen2/arith/1"}
    run = runs["tiny-qwen2/arith/1"]
    assert run.data.metrics["accuracy"] == 0.75
    assert run.data.metrics["timing.seconds"] == 1.5
    assert run.data.params["seed"] == "1"
    assert run.data.params["sampling.temperature"] == "1.0"
    assert run.data.params["study.config_hash"] == "c0ffee"
    assert run.data.params["versions.torch"] == "2.13.0"
    assert len(run.data.params["long"]) == tracking.PARAM_VALUE_MAX
    assert run.data.tags["stage"] == "trajectories"
    assert run.data.tags["model"] == "tiny-qwen2" and run.data.tags["task"] == "arith"
    assert run.info.status == "FINISHED"
    history = client(uri).get_metric_history(run.info.run_id, "per_layer")
    assert [(m.step, m.value) for m in history] == [(0, 0.25), (1, 0.5)]
    assert (root / "mlartifacts" / run.info.run_id / "artifacts" / "1.json").exists()


def test_reingest_keeps_unchanged_runs_and_replaces_changed_ones(study):
    root, uri, files, first = study
    again = tracking.ingest(files, uri, EXP, {"study.config_hash": "c0ffee"}, root / "results")
    assert again == {k: {**v, "action": "unchanged"} for k, v in first.items()}
    write_metrics(root, "tiny-qwen2", "arith", 1, 1.0)
    third = tracking.ingest(files, uri, EXP, {"study.config_hash": "c0ffee"}, root / "results")
    key = "trajectories/tiny-qwen2/arith/1"
    assert third[key]["action"] == "replaced" and third[key]["run_id"] != first[key]["run_id"]
    runs = all_runs(uri)
    assert len(runs) == 2
    assert {r.info.run_name: r.data.metrics["accuracy"] for r in runs} == {
        "tiny-qwen2/arith/0": 0.5, "tiny-qwen2/arith/1": 1.0}
    assert not (root / "mlartifacts" / first[key]["run_id"]).exists()


def test_locked_store_gives_one_line(study, tmp_path):
    db = tmp_path / "mlflow.db"
    shutil.copy(tracking.db_path(study[1]), db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        uri = tracking.tracking_uri(tmp_path)
        message = one_line_error(tracking.init_store, uri, EXP, timeout=0.2)
        assert "locked" in message and str(db) in message
        message = one_line_error(tracking.ingest, study[2], uri, EXP, {}, timeout=0.2)
        assert "locked" in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_database_of_another_kind_gives_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE notes (text TEXT)")
    before = db.read_bytes()
    message = one_line_error(tracking.init_store, tracking.tracking_uri(tmp_path), EXP)
    assert str(db) in message and "delete it" in message and "mlflow db upgrade" in message
    assert db.read_bytes() == before  # MLflow did not add its tables to someone else's DB
    db.write_bytes(b"this is not a database at all" * 10)
    assert "not an SQLite database" in one_line_error(
        tracking.init_store, tracking.tracking_uri(tmp_path), EXP)


def test_store_of_another_schema_version_gives_one_line(study, tmp_path):
    db = tmp_path / "mlflow.db"
    shutil.copy(tracking.db_path(study[1]), db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = 'abcdef123456'")
    message = one_line_error(tracking.init_store, tracking.tracking_uri(tmp_path), EXP)
    assert str(db) in message and "mlflow db upgrade" in message


def test_cli_registers_ui():
    from ipg.cli import build_parser

    args = build_parser().parse_args(["ui", "--port", "5123"])
    assert (args.host, args.port, args.root) == ("127.0.0.1", 5123, ".")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_runs_and_stops_its_whole_process_group(study, tmp_path):
    _, uri, _, _ = study
    server = tracking.ui(uri, port=free_port(), log_path=str(tmp_path / "ui.log"))
    try:
        assert server.url.startswith("http://127.0.0.1:")
        experiment_id = tracking.init_store(uri, EXP)
        request = urllib.request.Request(
            f"{server.url}/api/2.0/mlflow/runs/search", method="POST",
            data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            runs = json.loads(resp.read())["runs"]
        assert {r["info"]["run_name"] for r in runs} == {"tiny-qwen2/arith/0", "tiny-qwen2/arith/1",
                                                         EXP, "trajectories"}
        assert len(_group_members(server.pgid)) >= 2  # mlflow ui and its uvicorn child
    finally:
        server.stop()
    assert not server.alive()
    assert _group_members(server.pgid) == []
    assert server.process.returncode is not None


def test_every_ipg_tracking_import_in_the_repo_resolves():
    """ipg.tracking is a package (store / ingestion / server); what callers import from it
    (src/, workflow/scripts/, rules/, tests/) must stay importable from the package itself."""
    import ast
    import importlib

    root = Path(__file__).resolve().parents[1]
    files = [p for d in ("src", "workflow/scripts", "rules", "tests") for p in (root / d).rglob("*")
             if p.suffix in (".py", ".smk")]
    wanted: dict[str, set[str]] = {}
    for path in files:
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:  # .smk files are not Python; their scripts are checked instead
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ipg.tracking"):
                wanted.setdefault(node.module, set()).update(a.name for a in node.names)
    assert "ingest_to_file" in wanted["ipg.tracking"] and "ui" in wanted["ipg.tracking"]
    for module, names in wanted.items():
        mod = importlib.import_module(module)
        missing = sorted(n for n in names if not hasattr(mod, n))
        assert not missing, f"{module} lacks {missing}"
