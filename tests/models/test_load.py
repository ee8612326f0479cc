"""load_model / build_model / render_prompt: safetensors only, no remote code, atomic builds."""
from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import pytest
import torch

from ipg.errors import IPGError, UnknownNameError
from ipg.models import MODELS
from ipg.models.base import ModelSpec
from ipg.models.load import build_model, load_model, render_prompt
from ipg.models.tiny import tiny_random_model

PROMPT = "What is 2+3?"


def _copy(src: Path, tmp_path: Path, name: str = "m") -> Path:
    return Path(shutil.copytree(src, tmp_path / name))


def _one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg
    return msg


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_build_then_load_round_trip(arch, tmp_path) -> None:
    out = build_model(f"tiny-{arch}", tmp_path / f"tiny-{arch}", {"seed": 3})
    model, tok = load_model(out)
    reference, ref_tok = tiny_random_model(arch, seed=3)
    ids = tok([PROMPT], return_tensors="pt").input_ids
    assert ids.tolist() == ref_tok([PROMPT]).input_ids
    assert render_prompt(tok, PROMPT, True) == render_prompt(ref_tok, PROMPT, True)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert next(model.parameters()).dtype == torch.float32

    card = json.loads((out / "model_card.json").read_text())
    assert card["name"] == f"tiny-{arch}" and card["params"] == {"seed": 3}
    assert card["libraries"]["torch"] == torch.__version__
    assert {"transformers", "safetensors", "tokenizers"} <= set(card["libraries"])


def test_load_dtype(tiny_qwen2_dir) -> None:
    model, _ = load_model(tiny_qwen2_dir, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_never_reads_pickles(tiny_qwen2_dir, tmp_path, monkeypatch) -> None:
    d = _copy(tiny_qwen2_dir, tmp_path)
    for name in ("pytorch_model.bin", "model.pt", "training_args.bin"):
        (d / name).write_bytes(b"not a pickle")

    def refuse(*args, **kwargs):
        raise AssertionError(f"torch.load called with {args}")

    monkeypatch.setattr(torch, "load", refuse)
    model, _ = load_model(d)
    assert model.config.model_type == "qwen2"

    (d / "model.safetensors").unlink()  # only pickles left: refused, not loaded
    with pytest.raises(IPGError) as excinfo:
        load_model(d)
    _one_line_error(excinfo, "model.safetensors", "missing", "safetensors")


def test_remote_code_is_never_run(tiny_qwen2_dir, tmp_path) -> None:
    assert "trust_remote_code" not in inspect.signature(load_model).parameters
    with pytest.raises(TypeError):
        load_model(tiny_qwen2_dir, trust_remote_code=True)  # type: ignore[call-arg]

    d = _copy(tiny_qwen2_dir, tmp_path)
    marker = tmp_path / "remote_code_ran"
    config = json.loads((d / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(config))
    tok_config = json.loads((d / "tokenizer_config.json").read_text())
    tok_config["auto_map"] = {"AutoTokenizer": [None, "evil.EvilTokenizer"]}
    (d / "tokenizer_config.json").write_text(json.dumps(tok_config))
    (d / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")

    model, _ = load_model(d)
    assert type(model).__module__.startswith("transformers.models.qwen2")
    assert not marker.exists()


def test_missing_folder_and_files(tiny_qwen2_dir, tmp_path) -> None:
    with pytest.raises(IPGError) as excinfo:
        load_model(tmp_path / "nope")
    # a folder outside a study's results/models/ gets the Python rebuild (tests/reliability/test_recovery.py: the study one)
    _one_line_error(excinfo, "nope", "not found", f"rm -rf {tmp_path / 'nope'}", "build_model('nope'")

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        d = _copy(tiny_qwen2_dir, tmp_path, f"without-{name}")
        (d / name).unlink()
        with pytest.raises(IPGError) as excinfo:
            load_model(d)
        _one_line_error(excinfo, str(d / name), "missing", f"rm -rf {d}", "build_model(")


@pytest.mark.parametrize("damage", ["truncate", "garbage_header", "empty"])
def test_corrupt_safetensors(damage, tiny_qwen2_dir, tmp_path) -> None:
    d = _copy(tiny_qwen2_dir, tmp_path)
    weights = d / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "garbage_header":
        weights.write_bytes(data[:8] + b"{not json" + data[17:])
    else:
        weights.write_bytes(b"")
    with pytest.raises(IPGError) as excinfo:
        load_model(d)
    _one_line_error(excinfo, str(weights), "corrupt safetensors", f"rm -rf {d}", "build_model(")


def test_pad_token_defaults_to_eos(tiny_qwen2_dir, tmp_path) -> None:
    d = _copy(tiny_qwen2_dir, tmp_path)
    tok_config = json.loads((d / "tokenizer_config.json").read_text())
    tok_config.pop("pad_token", None)
    tok_config["padding_side"] = "right"
    (d / "tokenizer_config.json").write_text(json.dumps(tok_config))
    _, tok = load_model(d)
    assert tok.pad_token == tok.eos_token and tok.padding_side == "left"


def test_render_prompt(tiny_qwen2) -> None:
    _, tok = tiny_qwen2
    assert render_prompt(tok, PROMPT, chat=False) == PROMPT
    rendered = render_prompt(tok, PROMPT, chat=True)
    expected = tok.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == expected
    assert PROMPT in rendered and rendered.endswith("assistant\n") and rendered != PROMPT


def test_render_prompt_without_template_is_one_line_error(tmp_path) -> None:
    _, tok = tiny_random_model("llama")
    tok.chat_template = None
    with pytest.raises(IPGError, match="no chat template") as excinfo:
        render_prompt(tok, PROMPT, chat=True)
    _one_line_error(excinfo, "chat: false")
    assert render_prompt(tok, PROMPT, chat=False) == PROMPT


def _register(monkeypatch, name: str, build) -> None:
    monkeypatch.setitem(MODELS._items, name, ModelSpec(name=name, build=build, chat=False))


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_failed_build_leaves_nothing(tmp_path, monkeypatch) -> None:
    def half_then_fail(out_dir: Path, params: dict) -> None:
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    _register(monkeypatch, "broken", half_then_fail)
    out = tmp_path / "models" / "broken"
    with pytest.raises(RuntimeError, match="disk full"):
        build_model("broken", out)
    assert not out.exists()
    assert _leftovers(out.parent) == []


def test_failed_rebuild_keeps_previous_build(tiny_qwen2_dir, tmp_path, monkeypatch) -> None:
    out = _copy(tiny_qwen2_dir, tmp_path, "keep")
    before = sorted(p.name for p in out.iterdir())

    def fail(out_dir: Path, params: dict) -> None:
        raise KeyboardInterrupt  # even an interrupt cleans up the half-built folder

    _register(monkeypatch, "interrupted", fail)
    with pytest.raises(KeyboardInterrupt):
        build_model("interrupted", out)
    assert sorted(p.name for p in out.iterdir()) == before
    assert _leftovers(tmp_path) == []


def test_incomplete_builder_output_is_refused(tmp_path, monkeypatch) -> None:
    def weights_only(out_dir: Path, params: dict) -> None:
        model, _ = tiny_random_model("qwen2")
        model.save_pretrained(out_dir)  # forgets the tokenizer

    _register(monkeypatch, "no-tokenizer", weights_only)
    with pytest.raises(IPGError) as excinfo:
        build_model("no-tokenizer", tmp_path / "no-tokenizer")
    _one_line_error(excinfo, "no-tokenizer", "tokenizer.json")
    assert not (tmp_path / "no-tokenizer").exists() and _leftovers(tmp_path) == []


def test_rebuild_replaces_and_unknown_name(tmp_path) -> None:
    out = build_model("tiny-llama", tmp_path / "tiny-llama", {"seed": 0})
    (out / "stale.txt").write_text("old")
    build_model("tiny-llama", out, {"seed": 1})
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "model_card.json").read_text())["params"] == {"seed": 1}
    assert _leftovers(tmp_path) == []
    with pytest.raises(UnknownNameError, match="unknown model 'gpt-5'"):
        build_model("gpt-5", tmp_path / "gpt-5")


def test_find_model_dir_and_card_name(tmp_path) -> None:
    """A folder is taken as is, a name is looked up under <results>/models/, neither gives None;
    the card's name wins over the default."""
    from ipg.models.built import card_name, find_model_dir

    built = tmp_path / "results" / "models" / "organism"
    built.mkdir(parents=True)
    assert find_model_dir(str(built)) == built
    assert find_model_dir("organism", str(tmp_path / "results")) == built
    assert find_model_dir("nope", str(tmp_path / "results")) is None
    assert card_name(built, "fallback") == "fallback"
    (built / "model_card.json").write_text('{"name": "organism-v2"}')
    assert card_name(built, "fallback") == "organism-v2"
