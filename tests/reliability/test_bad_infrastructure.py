"""Bad infrastructure: an MLflow store that is locked, of another schema or not a database; a
DVC remote that is not defined or whose folder does not exist; a Snakemake profile naming an
executor plugin that is not installed; an IPG_DEVICE this machine does not have. Each fails
with one line naming the store / remote / profile / device and the fix (harness:
reliability_catalogue). `ipg check` runs the last three:
tests/reliability/test_cli_errors.py."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reliability_catalogue import case_registry, check_case

CASES, case = case_registry("test_bad_infrastructure")


def _store(ctx) -> tuple[str, Path]:
    from ipg.tracking import init_store, tracking_uri

    root = ctx.tmp / "store"
    uri = ctx.fixture("new_mlflow_store")(root)  # a copy of the migrated empty store (conftest)
    assert uri == tracking_uri(root)
    init_store(uri)
    return uri, root / "mlflow.db"


# -- the MLflow store -----------------------------------------------------------------------------

@case("MLflow: store locked by another writer")
def _(ctx):
    from ipg.tracking import ingest

    uri, db = _store(ctx)
    metrics = ctx.tmp / "results" / "metrics" / "m.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text('{"accuracy": 0.5}')
    holder = sqlite3.connect(db, timeout=0.1, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # what a writer in the middle of a commit holds

    def call():
        try:
            ingest([metrics], uri, results_dir=ctx.tmp / "results", timeout=0.2)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    return call, [str(db), "is locked"], "wait for it or stop it, then rerun"


@case("MLflow: store from another schema")
def _(ctx):
    from ipg.tracking import init_store, tracking_uri

    (ctx.tmp / "store").mkdir()
    db = ctx.tmp / "store" / "mlflow.db"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE experiments (id INTEGER); CREATE TABLE runs (id INTEGER);"
                      "CREATE TABLE alembic_version (version_num TEXT);"
                      "INSERT INTO alembic_version VALUES ('0000deadbeef');")
    con.close()
    return lambda: init_store(tracking_uri(ctx.tmp / "store")), [str(db), "not a usable MLflow"], \
        "delete it"


@case("MLflow: store is not a database")
def _(ctx):
    from ipg.tracking import init_store, tracking_uri

    (ctx.tmp / "store").mkdir()
    db = ctx.tmp / "store" / "mlflow.db"
    db.write_text("notes, not a database\n")
    return lambda: init_store(tracking_uri(ctx.tmp / "store")), [str(db), "not an SQLite database"], \
        "delete it"


# -- DVC remotes and Snakemake profiles ------------------------------------------------------------

def _dvc_config(ctx, text: str) -> None:
    (ctx.tmp / ".dvc").mkdir()
    (ctx.tmp / ".dvc" / "config").write_text(text)


@case("DVC: remote folder does not exist and cannot be created")
def _(ctx):
    from ipg.workflow.dvc_remote import check_remote

    (ctx.tmp / "a-file").write_text("not a folder")
    _dvc_config(ctx, "[core]\n    remote = backup\n['remote \"backup\"']\n    url = ../a-file/remote\n")
    missing = ctx.tmp / "a-file" / "remote"
    return lambda: check_remote(ctx.tmp), ["'backup'", str(missing)], "dvc remote modify backup url"


@case("DVC: default remote not defined")
def _(ctx):
    from ipg.workflow.dvc_remote import check_remote

    _dvc_config(ctx, "[core]\n    remote = s3store\n")
    return lambda: check_remote(ctx.tmp), ["'s3store'", "not defined"], "dvc remote add -d s3store"


@case("DVC: not a DVC project")
def _(ctx):
    from ipg.workflow.dvc_remote import check_remote

    return lambda: check_remote(ctx.tmp), [str(ctx.tmp), "not a DVC project"], "dvc init"


@case("Snakemake profile: executor plugin not installed")
def _(ctx):
    from ipg.workflow.profiles import check_profile

    profile = ctx.tmp / "profiles" / "lsf"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text("executor: nosuchexec\njobs: 4\n")
    return lambda: check_profile(profile), ["'lsf'", "'nosuchexec'"], \
        "pip install snakemake-executor-plugin-nosuchexec"


@case("Snakemake profile: folder without config.yaml")
def _(ctx):
    from ipg.workflow.profiles import check_profile

    profile = ctx.tmp / "profiles" / "slurmm"
    profile.mkdir(parents=True)
    return lambda: check_profile(profile), ["'slurmm'", str(profile / "config.yaml")], \
        "pass a folder of profiles/"


# -- the torch device ----------------------------------------------------------------------------------

@case("make study: --configfile names a missing file")
def _(ctx):
    from ipg.workflow.preflight import check_configfiles

    missing = str(ctx.tmp / "missing.yaml")
    return lambda: check_configfiles(["--configfile", missing]), [missing, "no such file"], \
        "give an existing config"


@case("make study: a target after --configfile")
def _(ctx):
    from ipg.workflow.preflight import check_configfiles

    config = ctx.tmp / "test.yaml"
    config.write_text("seed: 0\n")  # snakemake took the target for a second config file
    return lambda: check_configfiles(["--configfile", str(config), "results/models/tiny-qwen2"]), \
        ["--configfile results/models/tiny-qwen2", "not a .yaml/.json config"], \
        "put targets before --configfile"


@case("IPG_DEVICE: not a device name")
def _(ctx):
    from ipg.models.load import load_model

    ctx.mp.setenv("IPG_DEVICE", "gpu")
    return lambda: load_model(ctx.fixture("tiny_qwen2_dir")), ["IPG_DEVICE='gpu'", "not a known device"], \
        "unset IPG_DEVICE or set it to 'auto', 'cpu'"


@case("IPG_DEVICE: CUDA on a machine without it")
def _(ctx):
    import torch

    from ipg.config.jobs import SamplingSettings
    from ipg.study.trajectories import run_sampling

    ctx.mp.setenv("IPG_DEVICE", "cuda")
    ctx.mp.setattr(torch.cuda, "is_available", lambda: False)  # the same line on a GPU machine
    call = lambda: run_sampling(str(ctx.fixture("tiny_qwen2_dir")), str(ctx.tmp / "missing.parquet"),  # noqa: E731
                                "chain_sum", False, "attribution", 0, SamplingSettings.from_dict({}),
                                str(ctx.out / "t.parquet"), str(ctx.out / "t.json"))
    return call, ["IPG_DEVICE='cuda'", "CUDA is not available"], "unset IPG_DEVICE"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_infrastructure_fails_with_one_clear_line(name: str, tmp_path: Path, monkeypatch,
                                                      request) -> None:
    check_case(CASES[name], tmp_path, monkeypatch, request)
