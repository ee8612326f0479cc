"""MLflow as the study's dashboard: nesting (study > stage > output), settings as params, steered
outcomes per condition, real run times, figures on stage runs, the experiment opening on the
runs table, a remote tracking server, and (slow) a headless browser over the UI.

The steering summary is made by ipg.study.steering_summary.summarize from synthetic per-prompt rows;
the logged paired differences are checked against the rows by hand (pandas), not against the CSV.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipg import tracking
from ipg.errors import IPGError
from ipg.study.steering_summary import summarize
from ipg.tracking.browser import Browser, chromium_path, free_port

EXP = "ipg-study"
END = 1_700_000_000  # the jobs' files' modification time (s since the epoch)
STEERED = "ipg/k=2/gamma=0.0"
# mlflow ui's start and a page's first render: seconds on an idle machine; 120 s for the UI to
# answer was measured on this 2-core machine under a study's load
UI_WAIT_S = 300
PAGE_WAIT_S = 240


def steering_rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for cond, sel, k, gamma, p_correct in [("none", "none", 0, 1.0, 0.3), (STEERED, "ipg", 2, 0.0, 0.8)]:
        for p in range(12):
            rows.append(dict(condition=cond, selection=sel, k=k, gamma=gamma, mode="scale",
                             temperature=1.0, seed=0, prompt_id=f"p{p}",
                             accuracy=float(rng.random() < p_correct),
                             length=float(rng.integers(10, 60)), entropy=float(rng.random()),
                             truncated=0.0, n_units=k, n_samples=4))
    return pd.DataFrame(rows)


def write_study(root: Path) -> dict[str, Path]:
    """Trajectories, attribution and steering outputs as their rules write them, plus a figure."""
    res = root / "results"
    traj = res / "trajectories/tiny/arith/0.json"
    attr = res / "attribution/tiny/arith/neurons/ipg.json"
    steer = res / "intervention/tiny/arith/neurons/ipg.json"
    for p in (traj, attr, steer):
        p.parent.mkdir(parents=True, exist_ok=True)
    traj.write_text(json.dumps({"accuracy": 0.5, "params": {"seed": 0}}))
    attr.write_text(json.dumps({"completeness_residual": 0.01, "wall_seconds": 42.0,
                                "config": {"m": 16, "quadrature": "gauss_legendre"}}))
    steer.write_text(json.dumps({"seconds": 7.5, "baseline_accuracy": 0.3,
                                 "params": {"ks": [2], "gammas": [0.0]}}))
    summarize(steering_rows()).to_csv(steer.with_suffix(".csv"), index=False)
    for i, p in enumerate((traj, attr, steer)):
        os.utime(p, (END + 100 * i, END + 100 * i))
    figs = root / "reports/figures"
    figs.mkdir(parents=True)
    (figs / "steering_gamma.png").write_bytes(b"\x89PNG fake")
    (figs / "overview.png").write_bytes(b"\x89PNG fake")
    return {"trajectories": traj, "attribution": attr, "intervention": steer, "figures": figs}


@pytest.fixture(scope="module")
def dash(tmp_path_factory, new_mlflow_store):
    root = tmp_path_factory.mktemp("dashboard")
    files = write_study(root)
    uri = new_mlflow_store(root)  # the session's migrated empty store (tests/conftest.py)
    assert uri == tracking.tracking_uri(root)
    outputs = [files[s] for s in ("trajectories", "attribution", "intervention")]
    runs = tracking.ingest(outputs, uri, EXP, {"study.config_hash": "c0ffee"}, root / "results",
                           figures=files["figures"])
    return root, uri, files, outputs, runs


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_by(uri, experiment=EXP):
    c = client(uri)
    found = c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
    # output runs are named within their stage (model/task/...): key them by stage too
    return {(r.data.tags[tracking.LEVEL_TAG], r.info.run_name
             if r.data.tags[tracking.LEVEL_TAG] != "output"
             else f"{r.data.tags['stage']}:{r.info.run_name}"): r for r in found}


def artifacts(uri, run, path=""):
    return {Path(a.path).name for a in client(uri).list_artifacts(run.info.run_id, path)}


def test_study_stage_output_nesting(dash):
    _, uri, _, outputs, _ = dash
    runs = runs_by(uri)
    study = runs[("study", EXP)]
    stages = {name: r for (level, name), r in runs.items() if level == "stage"}
    assert set(stages) == {"trajectories", "attribution", "intervention"}
    assert all(r.data.tags["mlflow.parentRunId"] == study.info.run_id for r in stages.values())
    out = {name: r for (level, name), r in runs.items() if level == "output"}
    assert len(out) == len(outputs)
    for r in out.values():
        assert r.data.tags["mlflow.parentRunId"] == stages[r.data.tags["stage"]].info.run_id
    assert study.data.metrics["n_runs"] == 3 and study.data.params["study.config_hash"] == "c0ffee"


def test_reingest_rebuilds_one_study_run_and_relinks_kept_outputs(dash):
    root, uri, files, outputs, first = dash
    again = tracking.ingest(outputs, uri, EXP, {"study.config_hash": "c0ffee"}, root / "results",
                            figures=files["figures"])
    assert {v["action"] for v in again.values()} == {"unchanged"}
    runs = runs_by(uri)
    assert sum(level == "study" for level, _ in runs) == 1
    assert sum(level == "stage" for level, _ in runs) == 3
    stage_ids = {r.info.run_id for (level, _), r in runs.items() if level == "stage"}
    for (level, _), r in runs.items():
        if level == "output":
            assert r.data.tags["mlflow.parentRunId"] in stage_ids


def test_settings_are_params_and_durations_are_the_jobs(dash):
    _, uri, _, _, _ = dash
    runs = runs_by(uri)
    attr = runs[("output", "attribution:tiny/arith/neurons/ipg")]
    assert attr.data.params["config.m"] == "16" and "config.m" not in attr.data.metrics
    assert attr.data.params["config.quadrature"] == "gauss_legendre"
    # the job wrote its file at END + 100 s after 42 s of work (not the ~ms of ingestion)
    assert attr.info.end_time == (END + 100) * 1000
    assert attr.info.end_time - attr.info.start_time == 42_000
    stage = runs[("stage", "attribution")]
    assert (stage.info.start_time, stage.info.end_time) == (attr.info.start_time, attr.info.end_time)
    study = runs[("study", EXP)]
    assert study.info.start_time == END * 1000  # the trajectories file: no wall time recorded
    assert study.info.end_time == (END + 200) * 1000


def test_steering_run_logs_steered_outcomes_per_condition(dash):
    _, uri, files, _, _ = dash
    c = client(uri)
    exp = c.get_experiment_by_name(EXP).experiment_id
    (steer,) = c.search_runs([exp], "tags.stage = 'intervention' and tags.`ipg.level` = 'output'")
    m = steer.data.metrics
    rows = steering_rows()
    acc = rows.pivot_table(index="prompt_id", columns="condition", values="accuracy")
    diff = float((acc[STEERED] - acc["none"]).mean())  # paired difference, by hand
    key = "ipg/k2/gamma0.0"
    assert m[f"{key}/d_accuracy"] == pytest.approx(diff)
    assert m[f"{key}/accuracy"] == pytest.approx(float(acc[STEERED].mean()))
    assert m[f"{key}/d_accuracy_lo"] <= diff <= m[f"{key}/d_accuracy_hi"]
    lengths = rows.pivot_table(index="prompt_id", columns="condition", values="length")
    assert m[f"{key}/d_length"] == pytest.approx(float((lengths[STEERED] - lengths["none"]).mean()))
    assert {f"{key}/entropy", f"{key}/d_entropy", "none/accuracy"} <= set(m)
    assert m["baseline_accuracy"] == 0.3 and steer.data.params["ks"] == "[2]"
    assert {"steering_outcomes.json", "ipg.csv", "ipg.json"} <= artifacts(uri, steer)


def test_changed_steering_csv_replaces_the_run(tmp_path):
    files = write_study(tmp_path)
    uri = tracking.tracking_uri(tmp_path)
    outputs = [files[s] for s in ("trajectories", "attribution", "intervention")]
    tracking.ingest(outputs, uri, EXP, {}, tmp_path / "results")
    summarize(steering_rows(seed=1)).to_csv(files["intervention"].with_suffix(".csv"), index=False)
    again = tracking.ingest(outputs, uri, EXP, {}, tmp_path / "results")
    assert again["intervention/tiny/arith/neurons/ipg"]["action"] == "replaced"
    assert again["attribution/tiny/arith/neurons/ipg"]["action"] == "unchanged"
    exp = client(uri).get_experiment_by_name(EXP).experiment_id
    assert len(client(uri).search_runs([exp])) == 1 + 3 + 3  # replaced and old stage runs gone


def test_figures_hang_on_their_stage_runs(dash):
    _, uri, _, _, _ = dash
    runs = runs_by(uri)
    assert artifacts(uri, runs[("stage", "intervention")], "figures") == {"steering_gamma.png"}
    assert artifacts(uri, runs[("study", EXP)], "figures") == {"overview.png"}


def test_experiment_opens_on_the_runs_table(dash):
    _, uri, _, _, _ = dash
    exp = client(uri).get_experiment_by_name(EXP)
    assert exp.tags["mlflow.experimentKind"] == tracking.EXPERIMENT_KIND == "custom_model_development"
    assert "steered outcomes" in exp.tags["mlflow.note.content"]


def test_saved_views_are_on_the_server_with_the_steered_columns(dash):
    """One saved view per stage as an experiment tag (MLflow's sharedViewState envelope): the
    intervention view filters the steering output runs and shows each condition's accuracy
    and paired difference, i.e. metric keys the steering run really logged."""
    _, uri, _, _, _ = dash
    c = client(uri)
    exp = c.get_experiment_by_name(EXP)
    for stage in ("attribution", "intervention", "trajectories"):
        raw = json.loads(exp.tags[f"mlflow.sharedViewState.{tracking.share_key(stage)}"])
        assert isinstance(raw["name"], str) and isinstance(raw["createdAt"], int)
        state = json.loads(raw["state"])
        (run,) = c.search_runs([exp.experiment_id], state["searchFilter"])  # one output per stage
        assert run.data.tags["stage"] == stage
        logged = {f"metrics.`{k}`" for k in run.data.metrics} | {f"params.`{k}`" for k in run.data.params}
        shown = set(state["selectedColumns"])
        assert shown & logged and set(state["columnOrder"]) >= shown
    steer = json.loads(json.loads(exp.tags["mlflow.sharedViewState.ipg-intervention"])["state"])
    assert steer["selectedColumns"][:2] == ["metrics.`ipg/k2/gamma0.0/d_accuracy`",
                                            "metrics.`ipg/k2/gamma0.0/accuracy`"]
    assert tracking.runs_url("http://h", "7").endswith("viewStateShareKey=ipg-intervention")


def test_saved_views_are_rewritten_only_when_they_change(dash):
    _, uri, _, _, _ = dash
    c = client(uri)
    exp_id = c.get_experiment_by_name(EXP).experiment_id
    written = []
    real = c.set_experiment_tag
    c.set_experiment_tag = lambda *a: (written.append(a[1]), real(*a))
    tracking.save_views(c, exp_id, ["ipg/k2/gamma0.0/d_accuracy"])
    assert written == []
    tracking.save_views(c, exp_id, ["ipg/k2/gamma0.0/d_accuracy", "random/k2/gamma0.0/d_accuracy"])
    assert written == ["mlflow.sharedViewState.ipg-intervention"]
    tracking.save_views(c, exp_id, ["ipg/k2/gamma0.0/d_accuracy"])  # back as ingest left it


def test_study_uri_prefers_mlflow_tracking_uri(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.study_uri(tmp_path) == tracking.tracking_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.study_uri(tmp_path) == "http://127.0.0.1:5999"


@pytest.fixture(scope="module")
def server(dash, tmp_path_factory):
    _, uri, _, _, _ = dash
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    srv = tracking.ui(uri, port=free_port(), log_path=str(log), wait=False).wait_ready(UI_WAIT_S)
    yield srv
    srv.stop()


def test_ingest_into_a_remote_tracking_server(dash, server):
    """MLFLOW_TRACKING_URI=http://...: the same nesting and outcomes, artifacts via the server."""
    root, _, files, outputs, _ = dash
    tracking.ingest(outputs, server.url, "ipg-remote", {}, root / "results", figures=files["figures"])
    runs = runs_by(server.url, "ipg-remote")
    assert {level for level, _ in runs} == {"study", "stage", "output"}
    steer = next(r for (lvl, _), r in runs.items() if lvl == "output" and r.data.tags["stage"] == "intervention")
    assert "ipg/k2/gamma0.0/d_accuracy" in steer.data.metrics
    assert "steering_outcomes.json" in artifacts(server.url, steer)


def chromium() -> str:
    """Debian's chromium (installed here with apt-get when root and missing), else a skip."""
    try:
        return chromium_path()
    except IPGError:
        if shutil.which("apt-get") and os.geteuid() == 0:
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True,
                           timeout=600)
    try:
        return chromium_path()
    except IPGError as err:
        pytest.skip(str(err))


def shows(page, texts: list[str], seconds: float) -> bool:
    """Wait until the page's visible text holds every one of `texts`."""
    return page.wait_for(f"{json.dumps(texts)}.every(t => document.body && "
                         "document.body.innerText.includes(t))", seconds)


@pytest.mark.slow
def test_browser_sees_steering_outcomes(dash, server):
    """A real headless Chromium (fresh profile: nothing in localStorage) over the MLflow UI.
    The URL `ipg ui` prints opens the runs table (not the GenAI overview) on the saved
    intervention view and keeps `viewStateShareKey` (MLflow's redirect of the bare experiment
    route `#/experiments/<id>` would drop it; this one, on `/runs`, is not redirected): the
    steering run is a row (not hidden under its collapsed stage run) whose cells show the
    steered outcomes under their column headers; the steering run's own page shows them too.
    (The bare experiment route opens MLflow 3.17's GenAI overview in a fresh browser whatever
    the experiment's kind tag says: README, "MLflow".)"""
    chromium()
    _, uri, _, _, _ = dash
    c = client(uri)
    exp = c.get_experiment_by_name(EXP).experiment_id
    (steer,) = c.search_runs([exp], "tags.stage = 'intervention' and tags.`ipg.level` = 'output'")
    keys = ["ipg/k2/gamma0.0/d_accuracy", "ipg/k2/gamma0.0/accuracy"]
    values = [f"{steer.data.metrics[k]:.3g}"[:4] for k in keys]  # as a cell shows it (3 digits)
    with Browser() as browser:
        page = browser.page
        page.open(tracking.runs_url(server.url, exp), PAGE_WAIT_S)
        # column headers, the steering run's row and its values in the cells
        assert shows(page, [*keys, "tiny/arith/neurons/ipg", *values], PAGE_WAIT_S), page.text()[-3000:]
        assert f"viewStateShareKey={tracking.share_key('intervention')}" in page.href()
        assert "workflowType=machine_learning" in page.href()
        assert "No data available for the selected time range" not in page.text()

        page.open(f"{server.url}/#/experiments/{exp}/runs/{steer.info.run_id}", PAGE_WAIT_S)
        assert shows(page, [keys[0], values[0]], PAGE_WAIT_S), page.text()[-3000:]


def test_no_chromium_is_one_line_naming_the_fix(monkeypatch):
    from ipg.tracking.browser import chromium_path

    monkeypatch.setenv("CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(IPGError, match=r"^no chromium found; install it \(Debian: apt-get install "
                                       r"chromium\) or set CHROMIUM=/path/to/chromium$"):
        chromium_path()
