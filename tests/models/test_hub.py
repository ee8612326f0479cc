"""Hub models: pinned revisions, safetensors-only fetch, offline errors (on tiny Qwen2 checkpoints)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.hub import HUB_MODELS
from ipg.models.load import build_model, load_model
from ipg.models.tiny import tiny_random_model

CHECKPOINT_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                    "tokenizer_config.json", "chat_template.jinja"}
NOT_WANTED = {"pytorch_model.bin": b"pickle", "modeling_evil.py": b"raise SystemExit", "README.md": b"#",
              "model.gguf": b"GGUF", "figures/plot.png": b"png"}


def _tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A tiny Qwen2 laid out like a hub repo, with files a fetch must leave behind."""
    model, tok = tiny_random_model("qwen2", seed=seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    for rel, data in NOT_WANTED.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def _assert_clean_and_loads(out: Path, seed: int) -> None:
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == CHECKPOINT_FILES | {"model_card.json"}
    model, tok = load_model(out)
    reference, _ = tiny_random_model("qwen2", seed=seed)
    ids = tok(["12+30="], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)


def test_hub_models_registered_with_pinned_commits() -> None:
    assert set(HUB_MODELS) == {"r1-distill-qwen-1.5b", "qwen2.5-math-1.5b-instruct"}
    for name, (repo_id, revision) in HUB_MODELS.items():
        spec = MODELS.get(name)
        assert spec.from_hub and spec.chat
        assert spec.default_params == {"repo_id": repo_id, "revision": revision}
        assert re.fullmatch(r"[0-9a-f]{40}", revision), f"{name}: revision must be a commit SHA"
    assert HUB_MODELS["r1-distill-qwen-1.5b"][0] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert HUB_MODELS["qwen2.5-math-1.5b-instruct"][0] == "Qwen/Qwen2.5-Math-1.5B-Instruct"


def test_build_from_local_dir(tmp_path) -> None:
    src = _tiny_checkpoint(tmp_path / "checkpoint", seed=5)
    out = build_model("r1-distill-qwen-1.5b", tmp_path / "models" / "r1", {"local_dir": str(src)})
    _assert_clean_and_loads(out, seed=5)
    card = json.loads((out / "model_card.json").read_text())
    assert card["name"] == "r1-distill-qwen-1.5b" and card["from_hub"] is True
    assert (card["repo_id"], card["revision"]) == HUB_MODELS["r1-distill-qwen-1.5b"]
    assert card["local_dir"] == str(src.resolve())
    assert "model.safetensors" in card["files"] and "pytorch_model.bin" not in card["files"]


def test_build_from_offline_hub_cache(tmp_path, monkeypatch) -> None:
    """The snapshot_download path, served from an HF cache laid out as the hub client writes it."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    repo_id, revision = HUB_MODELS["qwen2.5-math-1.5b-instruct"]
    cache = tmp_path / "hf-cache"
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / revision
    _tiny_checkpoint(snapshot, seed=7)
    out = build_model("qwen2.5-math-1.5b-instruct", tmp_path / "qm", {"cache_dir": str(cache)})
    _assert_clean_and_loads(out, seed=7)
    card = json.loads((out / "model_card.json").read_text())
    assert card["snapshot"] == revision and card["repo_id"] == repo_id


def test_offline_and_not_cached_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "r1"
    with pytest.raises(IPGError) as excinfo:
        build_model("r1-distill-qwen-1.5b", out, {"cache_dir": str(tmp_path / "empty-cache")})
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B@" in msg and "local_dir" in msg
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_local_dir(tmp_path) -> None:
    with pytest.raises(IPGError, match="local_dir: folder .* not found"):
        build_model("r1-distill-qwen-1.5b", tmp_path / "r1", {"local_dir": str(tmp_path / "missing")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(IPGError, match="no safetensors/config/tokenizer files"):
        build_model("r1-distill-qwen-1.5b", tmp_path / "r1", {"local_dir": str(tmp_path / "empty")})
