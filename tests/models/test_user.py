"""Config-defined models (ipg.models.user): a local checkpoint folder or a pinned hub id (here a
local HF cache, no network) built and loaded under their own name; one-line errors; and the
whole study DAG (snakemake -n) with a config-only model and task."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ipg.config.study import validate_config
from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.load import build_model, load_model
from ipg.models.tiny import tiny_random_model

ROOT = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _restore_registries(monkeypatch):
    """Config entries register into the process-wide registries: undo that after each test."""
    from ipg.models import MODELS as _models
    from ipg.tasks import TASKS as _tasks

    saved = dict(_models._items), dict(_tasks._items)
    monkeypatch.delenv("IPG_USER_ENTRIES", raising=False)
    yield
    os.environ.pop("IPG_USER_ENTRIES", None)
    for registry, items in zip((_models, _tasks), saved):
        registry._items.clear()
        registry._items.update(items)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "my-model"
    model, tokenizer = tiny_random_model("llama", seed=3)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def config(models, model="mymodel"):
    return {"study": [{"model": model, "tasks": ["chain_sum"], "granularities": ["neurons"]}],
            "models": models}


def test_local_folder_builds_and_loads_under_its_own_name(folder, tmp_path) -> None:
    cfg = validate_config(config({"mymodel": {"path": str(folder), "chat_template": False}}))
    spec = MODELS.get("mymodel")
    assert spec.chat is False and spec.description == f"from config: {folder}"
    out = build_model("mymodel", tmp_path / "mymodel", cfg["model_params"]["mymodel"])
    card = json.loads((out / "model_card.json").read_text())
    assert card["name"] == "mymodel" and card["path"] == str(folder.resolve()) and card["chat"] is False
    assert card["sha256"]["model.safetensors"] == hashlib.sha256(
        (folder / "model.safetensors").read_bytes()).hexdigest()
    model, _ = load_model(out, device="cpu")
    original, _ = tiny_random_model("llama", seed=3)
    ids = torch.tensor([[5, 6, 7, 8]])
    torch.testing.assert_close(model(ids).logits, original(ids).logits)


def test_hub_id_from_a_local_cache(folder, tmp_path) -> None:
    """hub: org/name@revision is fetched by snapshot_download from the HF cache layout (offline)."""
    snap = tmp_path / "cache" / "models--org--tiny" / "snapshots" / SHA
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(SHA)
    entry = {"hub": "org/tiny", "revision": SHA, "cache_dir": str(tmp_path / "cache")}
    cfg = validate_config(config({"hubmodel": entry}, "hubmodel"))
    out = build_model("hubmodel", tmp_path / "hubmodel", cfg["model_params"]["hubmodel"])
    card = json.loads((out / "model_card.json").read_text())
    assert card["repo_id"] == "org/tiny" and card["revision"] == SHA and card["snapshot"] == SHA
    assert MODELS.get("hubmodel").from_hub


@pytest.mark.parametrize("entry, message", [
    ({"path": "/nowhere"}, r"models.mymodel.path: /nowhere has no config.json"),
    ({"hub": "org/x"}, r"hub model 'org/x' needs revision"),
    ({}, r"exactly one of path"),
    ({"path": "x", "trust_remote_code": True}, r"unknown key\(s\) \['trust_remote_code'\]"),
])
def test_bad_entries_are_one_line(entry, message) -> None:
    with pytest.raises(IPGError, match=message) as err:
        validate_config(config({"mymodel": entry}))
    assert "\n" not in str(err.value)


def test_builtin_name_is_refused(folder) -> None:
    with pytest.raises(IPGError, match="'tiny-qwen2' is a built-in model"):
        validate_config(config({"tiny-qwen2": {"path": str(folder)}}, "tiny-qwen2"))


def study_config(folder: Path, tmp_path: Path) -> Path:
    """A tiny study of a config-only model folder and JSONL task (no registered names)."""
    import yaml

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"q": f"{i} + {i} = ?", "a": str(2 * i)}) + "\n" for i in range(20)))
    cfg = {
        "models": {"mymodel": {"path": str(folder), "chat_template": True}},
        "tasks": {"mytask": {"file": str(data), "question_field": "q", "answer_field": "a",
                             "grader": "numeric", "prompt_template": "{question} Answer in \\boxed{}."}},
        "data": {"n_attribution": 2, "n_heldout": 2},
        "sampling": {"samples_per_prompt": 4, "max_new_tokens": 8, "prompts_per_batch": 4, "seeds": [0]},
        "attribution": {"methods": {"ipg_length": {"kind": "ipg", "reward": "length", "m": 4}}},
        "steering": {"methods": ["ipg_length"], "ks": {"neurons": [2]}, "deletion_ks": {"neurons": []},
                     "gammas": [0.0], "samples_per_prompt": 2, "control_method": "ipg_length"},
        "study": [{"model": "mymodel", "tasks": ["mytask"], "granularities": ["neurons"]}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(config: Path, workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src"),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
    env.pop("IPG_USER_ENTRIES", None)
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(config), "--cores", "1", *args],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_study_dag_with_config_only_model_and_task(folder, tmp_path) -> None:
    """snakemake -n plans build_model / prepare_task / ... under the config's own names."""
    run = snakemake(study_config(folder, tmp_path), tmp_path / "work", "-n")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for target in ("results/models/mymodel", "data/prepared/mytask.parquet",
                   "results/trajectories/mymodel/mytask/0.parquet",
                   "results/attribution/mymodel/mytask/neurons/ipg_length.parquet",
                   "results/intervention/mymodel/mytask/neurons/ipg_length.csv"):
        assert target in out, target


@pytest.mark.slow
def test_study_runs_with_config_only_model_and_task(folder, tmp_path) -> None:
    """The whole tiny study runs; outputs carry the config's names and provenance."""
    import pandas as pd

    work = tmp_path / "work"
    run = snakemake(study_config(folder, tmp_path), work, timeout=1800)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    card = json.loads((work / "results/models/mymodel/model_card.json").read_text())
    assert card["name"] == "mymodel" and card["path"] == str(folder.resolve())
    prepared = pd.read_parquet(work / "data/prepared/mytask.parquet")
    assert set(prepared["task"]) == {"mytask"} and prepared["prompt"].str.endswith("Answer in \\boxed{}.").all()
    traj = pd.read_parquet(work / "results/trajectories/mymodel/mytask/0.parquet")
    assert len(traj) == 2 * 4 and set(traj["prompt_id"]) <= set(prepared["prompt_id"])
    scores = pd.read_parquet(work / "results/attribution/mymodel/mytask/neurons/ipg_length.parquet")
    assert len(scores) > 0
    assert (work / "results/intervention/mymodel/mytask/neurons/ipg_length.csv").is_file()
