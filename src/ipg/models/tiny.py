"""Tiny random models of the study's architectures (Qwen2, Llama) for fast tests.

`tiny_random_model("qwen2")` returns a 2-layer randomly initialised model with grouped-query
attention (4 query heads, 2 KV heads) and a byte-level tokenizer that works offline.
The registered models `tiny-qwen2` and `tiny-llama` save such a model to a folder, so the
whole workflow can run end to end in seconds. Their outputs are meaningless by design.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.base import ModelShape, ModelSpec

if TYPE_CHECKING:  # torch/transformers are imported where used: registering stays cheap
    from transformers import PreTrainedModel, Qwen2Tokenizer

Arch = Literal["qwen2", "llama"]

PAD, UNK, BOS, IM_START, IM_END = "<pad>", "<unk>", "<s>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, UNK, BOS, IM_START, IM_END]
# ChatML, as SmolLM2 and Qwen2.5 use; the end-of-turn token is the end-of-sequence token.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Small enough to build in well under a second, large enough to have every component type
# (MLP neurons, GQA heads, several layers). Override any key with **config_overrides.
TINY_CONFIG: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,  # grouped-query attention, as in both target models
    max_position_embeddings=1024,
    tie_word_embeddings=True,
)
ARCH_NAMES: tuple[str, ...] = ("qwen2", "llama")


def _archs() -> dict[str, tuple[type, type]]:
    """arch -> (config class, model class); a function so that importing this module is cheap."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    return {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}


def tiny_tokenizer() -> Qwen2Tokenizer:
    """A byte-level tokenizer without merges (one token per byte) plus ChatML special tokens.

    It is a Qwen2Tokenizer (the class transformers forces for every qwen2 checkpoint), so it
    loads back identically from a saved folder for both architectures.
    """
    from tokenizers import AddedToken, pre_tokenizers
    from transformers import Qwen2Tokenizer

    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet())  # sorted: the set's order varies
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + byte_chars)}
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=UNK,
        bos_token=BOS,
        eos_token=IM_END,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
    tokenizer.add_tokens([AddedToken(IM_START, special=True)])
    return tokenizer


def tiny_random_model(
    arch: Arch, seed: int = 0, **config_overrides: Any
) -> tuple[PreTrainedModel, Qwen2Tokenizer]:
    """A frozen, eval-mode 2-layer random model of `arch` and its tokenizer (same seed, same weights)."""
    if arch not in ARCH_NAMES:
        raise IPGError(f"unknown tiny architecture '{arch}'; allowed: {', '.join(sorted(ARCH_NAMES))}")
    import torch

    config_cls, model_cls = _archs()[arch]
    tokenizer = tiny_tokenizer()
    config = config_cls(
        **{
            **TINY_CONFIG,
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            **config_overrides,
        }
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval().requires_grad_(False)
    return model, tokenizer


def _builder(arch: Arch):
    def build(out_dir: Path, params: dict[str, Any]) -> None:
        params = dict(params)
        seed = int(params.pop("seed", 0))
        model, tokenizer = tiny_random_model(arch, seed=seed, **params)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)

    return build


def tiny_shape(params: dict[str, Any]) -> ModelShape:
    """The size a tiny model's params give (TINY_CONFIG with their overrides)."""
    cfg = {**TINY_CONFIG, **params}
    return ModelShape(int(cfg["num_hidden_layers"]), int(cfg["intermediate_size"]),
                      int(cfg["num_attention_heads"]))


for _arch in ARCH_NAMES:
    MODELS.add(
        f"tiny-{_arch}",
        ModelSpec(
            name=f"tiny-{_arch}",
            build=_builder(_arch),  # type: ignore[arg-type]
            chat=True,
            description=f"2-layer random {_arch} model with a byte tokenizer (tests only)",
            default_params={"seed": 0},
            param_keys=("seed", *TINY_CONFIG, "vocab_size", "rope_theta", "rms_norm_eps"),
            shape=tiny_shape,
        ),
    )
