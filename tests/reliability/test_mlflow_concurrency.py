"""Concurrent ingestion into one sqlite MLflow store (ipg.tracking).

Ingestion is serial by design (sqlite has one writer; the workflow runs one `ingest_mlflow`
job). What must hold when several run at once anyway: each call either succeeds or fails with
the one-line 'locked' IPGError (never another exception, never a 'database is locked'
traceback), the store is never corrupted, and a retry succeeds. In the end every run and
every metric is in the store exactly once.

N = 6 processes (multiprocessing, spawn) each ingest their own metrics files into the store
that `init_store` created once. They start together (a barrier) while another connection
holds the store's write lock for LOCK_HELD_S, so every first attempt meets the lock and must
fail with the one-line message; the retries then run concurrently and must all succeed.
"""
from __future__ import annotations

import importlib
import json
import multiprocessing
import sqlite3
import sys
import time
import traceback
from pathlib import Path

import pytest

N_PROCESSES = 6
FILES_PER_PROCESS = 2
STEPS = 5  # a list of numbers in a metrics JSON becomes one metric with these steps
DEADLINE_S = 45.0
LOCK_HELD_S = 2.0
LOCK_WAIT_S = 1.0  # ingest's wait for a lock, shorter than LOCK_HELD_S


def _metrics(proc: int, i: int) -> dict:
    return {"accuracy": proc + i / 10, "mean_length": 10.0 * proc + i,
            "loss": [float(proc * 100 + i * 10 + s) for s in range(STEPS)],
            "params": {"proc": proc, "file": i}}


def _work(args: tuple) -> dict:
    """Ingest this process's files, retrying on the 'locked' IPGError until the deadline."""
    uri, results_dir, files, deadline, barrier = args
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow.tracking  # noqa: F401 - the slow imports happen before the barrier

    from ipg.errors import IPGError
    from ipg.tracking import ingest

    barrier.wait(timeout=DEADLINE_S)  # every process starts writing at the same moment

    attempts, locked_messages = 0, []
    while True:
        attempts += 1
        try:
            runs = ingest(files, uri, results_dir=results_dir, timeout=LOCK_WAIT_S)
            return {"ok": True, "attempts": attempts, "locked": locked_messages,
                    "runs": {k: v["run_id"] for k, v in runs.items()}}
        except IPGError as err:
            message = str(err)
            if "is locked" not in message or time.time() > deadline:
                return {"ok": False, "error": f"IPGError: {message}", "attempts": attempts,
                        "locked": locked_messages}
            locked_messages.append(message)
            time.sleep(0.05 * attempts)
        except BaseException as err:  # noqa: BLE001 - reported to the test, which fails on it
            return {"ok": False, "error": f"{type(err).__name__}: {err}",
                    "traceback": traceback.format_exc(), "attempts": attempts,
                    "locked": locked_messages}


@pytest.mark.slow  # ~30 s on a 2-core CPU: six MLflow imports and clients
def test_concurrent_ingest_is_safe_and_complete(tmp_path: Path) -> None:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    from ipg.tracking import EXPERIMENT, LEVEL_TAG, RUN_KEY_TAG, init_store, tracking_uri

    results = tmp_path / "results"
    uri = tracking_uri(tmp_path)
    experiment_id = init_store(uri)  # once, before the parallel writers (as rule init_tracking)
    parallel_start = time.monotonic()  # the bound: spawning, writing, retrying, checking
    spawn = multiprocessing.get_context("spawn")
    manager = spawn.Manager()
    barrier = manager.Barrier(N_PROCESSES + 1)  # the workers and this process
    jobs = []
    for proc in range(N_PROCESSES):
        files = []
        for i in range(FILES_PER_PROCESS):
            path = results / "stress" / f"p{proc}" / "task" / f"{i}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_metrics(proc, i)))
            files.append(str(path))
        jobs.append((uri, str(results), files, time.time() + DEADLINE_S, barrier))

    # spawn children import this module by name: make it importable as a top-level module
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        worker = importlib.import_module(Path(__file__).stem)._work
        with spawn.Pool(N_PROCESSES) as pool:
            pending = pool.map_async(worker, jobs)
            # A writer holds the store when they start: their first try must fail with the
            # one-line 'locked' error (LOCK_WAIT_S < LOCK_HELD_S), and a retry must succeed.
            holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            barrier.wait(timeout=DEADLINE_S)
            time.sleep(LOCK_HELD_S)
            holder.execute("ROLLBACK")
            holder.close()
            outcomes = pending.get(timeout=DEADLINE_S)
    finally:
        sys.path.remove(str(Path(__file__).parent))
        manager.shutdown()

    for outcome in outcomes:
        assert outcome["ok"], outcome.get("traceback") or outcome["error"]
    assert all(outcome["locked"] for outcome in outcomes), [o["attempts"] for o in outcomes]
    for outcome in outcomes:
        for message in outcome["locked"]:  # the only failure allowed: one clear line
            assert "\n" not in message and "is locked" in message and "rerun" in message
            assert "Traceback" not in message

    con = sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()

    client = MlflowClient(tracking_uri=uri)
    assert client.get_experiment_by_name(EXPERIMENT).experiment_id == experiment_id
    runs = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    by_key: dict[str, list] = {}
    for run in runs:  # the output runs (each ingestion also rebuilds the study / stage runs)
        if run.data.tags.get(LEVEL_TAG) == "output":
            by_key.setdefault(run.data.tags[RUN_KEY_TAG], []).append(run)
    expected = {f"stress/p{p}/task/{i}" for p in range(N_PROCESSES) for i in range(FILES_PER_PROCESS)}
    assert set(by_key) == expected
    for key, found in by_key.items():
        assert len(found) == 1, f"run {key} stored {len(found)} times"
        run = found[0]
        assert run.info.status == "FINISHED"
        proc, i = int(key.split("/")[1][1:]), int(key.split("/")[3])
        want = _metrics(proc, i)
        assert run.data.metrics["accuracy"] == want["accuracy"]
        assert run.data.metrics["mean_length"] == want["mean_length"]
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == want["loss"]
        assert run.data.params["proc"] == str(proc) and run.data.params["file"] == str(i)
    ids = {rid for outcome in outcomes for rid in outcome["runs"].values()}
    assert ids == {found[0].info.run_id for found in by_key.values()}

    # the store still takes a serial ingest afterwards: every run is kept unchanged
    from ipg.tracking import ingest

    again = ingest([f for job in jobs for f in job[2]], uri, results_dir=results)
    assert {v["action"] for v in again.values()} == {"unchanged"}
    # ... and leaves one study run and one stage run, whatever the parallel writers left
    runs = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    levels = [r.data.tags.get(LEVEL_TAG) for r in runs]
    assert levels.count("study") == 1 and levels.count("stage") == 1
    assert time.monotonic() - parallel_start < 60
