"""Tiny random models: architecture, determinism, frozen weights, tokenizer and chat template."""
from __future__ import annotations

import pytest
import torch

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.tiny import IM_END, IM_START, tiny_random_model


@pytest.mark.parametrize("fixture", ["tiny_qwen2", "tiny_llama"])
def test_shape_is_tiny_gqa_and_frozen(fixture, request) -> None:
    model, tokenizer = request.getfixturevalue(fixture)
    cfg = model.config
    assert cfg.num_hidden_layers == 2
    assert 32 <= cfg.hidden_size <= 64 and 64 <= cfg.intermediate_size <= 128
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (4, 2)
    assert cfg.vocab_size == len(tokenizer) <= 300  # 256 bytes + a few special tokens
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.model.layers[0].mlp.down_proj.in_features == cfg.intermediate_size


def test_architectures() -> None:
    assert type(tiny_random_model("qwen2")[0]).__name__ == "Qwen2ForCausalLM"
    assert type(tiny_random_model("llama")[0]).__name__ == "LlamaForCausalLM"
    with pytest.raises(IPGError, match="unknown tiny architecture 'gpt2'"):
        tiny_random_model("gpt2")  # type: ignore[arg-type]


def test_seed_determines_weights_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, _ = tiny_random_model("qwen2", seed=1)
    assert torch.equal(torch.rand(3), expected_next)
    b, _ = tiny_random_model("qwen2", seed=1)
    c, _ = tiny_random_model("qwen2", seed=2)
    wa, wb, wc = (m.model.layers[1].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_config_overrides() -> None:
    model, _ = tiny_random_model("llama", num_hidden_layers=3, hidden_size=48)
    assert len(model.model.layers) == 3 and model.config.hidden_size == 48


def test_tokenizer_round_trip_and_chat_tokens(tiny_qwen2) -> None:
    _, tok = tiny_qwen2
    text = "Q: 12*(3+4) = ?\nA: 84"
    ids = tok(text).input_ids
    assert len(ids) == len(text)  # one token per byte, no BOS added
    assert tok.decode(ids) == text
    assert tok.decode(tok("naïve – ünïcode").input_ids) == "naïve – ünïcode"  # any text encodes
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == f"{IM_START}user\nhi{IM_END}\n{IM_START}assistant\n"
    chat_ids = tok(chat).input_ids
    assert chat_ids.count(tok.convert_tokens_to_ids(IM_START)) == 2  # special tokens stay whole
    assert tok.eos_token == IM_END and tok.pad_token is not None and tok.padding_side == "left"


def test_generates_with_left_padding(tiny_llama) -> None:
    model, tok = tiny_llama
    batch = tok(["1+1=", "a much longer prompt"], return_tensors="pt", padding=True)
    assert batch.attention_mask[0, 0] == 0  # left padded
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    n = batch.input_ids.shape[1]
    assert n < out.shape[1] <= n + 4 and torch.equal(out[:, :n], batch.input_ids)
    assert int(out.max()) < len(tok)


def test_registered_as_chat_models() -> None:
    for name in ("tiny-qwen2", "tiny-llama"):
        spec = MODELS.get(name)
        assert spec.chat and not spec.from_hub and spec.name == name
