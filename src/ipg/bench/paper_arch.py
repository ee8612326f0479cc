"""The paper models' architectures with random weights, and their analytic FLOP and byte counts.

The published architecture keys of the paper's models (DeepSeek-R1-Distill-Qwen-1.5B,
Qwen2.5-Math-1.5B-Instruct: Qwen2, d 1536, 28 layers, d_ff 8960, 12 query / 2 KV heads,
vocab 151936) are data under src/ipg/models/architectures/<name>.json; `paper_model` builds
one through transformers from that config alone (no download), optionally with fewer layers
or another vocabulary (the CPU measurements and the tiny tests), in float32 or bfloat16.

`Arch` counts, per docs/method.md (Cost at the paper's scale), what one teacher-forced
forward costs:
linear FLOPs per token (2 x in x out per matmul), attention FLOPs (QK^T and AV on the
full S x S square, as torch.utils.flop_counter counts sdpa where it sees it: on a CPU the fused
kernel is not counted, hence `attention=False`), LM-head FLOPs per
logit position, and the bytes of the weights and of one token's KV cache.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipg.errors import IPGError

ARCH_DIR = Path(__file__).resolve().parents[1] / "models" / "architectures"
PAPER_MODELS = ("r1-distill-qwen-1.5b", "qwen2.5-math-1.5b-instruct")


def arch_config(name: str) -> dict[str, Any]:
    """The published architecture keys of `name` (a file in ARCH_DIR)."""
    path = ARCH_DIR / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in ARCH_DIR.glob("*.json"))
        raise IPGError(f"no architecture file {path}; known: {', '.join(known)}")
    return dict(json.loads(path.read_text())["config"])


@dataclass(frozen=True)
class Arch:
    """Shape of a Qwen2 decoder: enough to count its FLOPs and bytes."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "Arch":
        return cls(cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                   cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"],
                   bool(cfg.get("tie_word_embeddings", False)))

    @classmethod
    def named(cls, name: str, **overrides: Any) -> "Arch":
        return cls.from_config({**arch_config(name), **overrides})

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        """Matmul weights of one decoder layer (q, k, v, o, gate, up, down)."""
        d, kv = self.hidden, self.kv_heads * self.head_dim
        return d * d * 2 + 2 * d * kv + 3 * d * self.intermediate

    @property
    def params(self) -> int:
        """All parameters: layers (with q/k/v biases and norms), embedding, LM head."""
        d, kv = self.hidden, self.kv_heads * self.head_dim
        per_layer = self.layer_params + d + 2 * kv + 2 * d
        return self.layers * per_layer + self.vocab * d * (1 if self.tied else 2) + d

    def linear_flops(self, tokens: float) -> float:
        """Decoder-layer matmul FLOPs of `tokens` tokens (forward)."""
        return 2.0 * self.layer_params * self.layers * tokens

    def attention_flops(self, rows: float, queries: float, keys: float) -> float:
        """QK^T and AV of `rows` sequences, `queries` x `keys` each (forward, all layers)."""
        return 4.0 * rows * queries * keys * self.hidden * self.layers

    def head_flops(self, positions: float) -> float:
        """LM-head FLOPs of `positions` logit positions."""
        return 2.0 * self.hidden * self.vocab * positions

    def forward_flops(self, rows: float, seq: float, logit_positions: float,
                      attention: bool = True) -> float:
        """One teacher-forced forward of `rows` sequences of `seq` tokens (attention False:
        what torch's FlopCounterMode counts on a CPU, whose fused sdpa kernel it does not see)."""
        attn = self.attention_flops(rows, seq, seq) if attention else 0.0
        return self.linear_flops(rows * seq) + attn + self.head_flops(rows * logit_positions)

    def weight_bytes(self, bytes_per: int) -> float:
        """Weights one forward reads (layers and LM head; the embedding is a lookup)."""
        return float(self.layers * self.layer_params + self.vocab * self.hidden) * bytes_per

    def kv_bytes_per_token(self, bytes_per: int) -> float:
        return 2.0 * self.layers * self.kv_heads * self.head_dim * bytes_per


def paper_model(name: str, n_layers: int | None = None, dtype: str = "float32", seed: int = 0,
                **overrides: Any):
    """A random-weight transformers Qwen2ForCausalLM of `name`'s published config (frozen, eval).

    n_layers keeps the first k layers' shape (the per-layer cost is the same); `overrides`
    replace other config keys (tests: a small vocab). Weights are initialised in `dtype`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = {**arch_config(name), **overrides}
    cfg.pop("model_type", None)
    cfg.pop("torch_dtype", None)
    if n_layers is not None:
        cfg["num_hidden_layers"] = int(n_layers)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)  # initialise in place: no float32 copy of bf16 weights
    try:
        model = Qwen2ForCausalLM(Qwen2Config(**cfg, attn_implementation="sdpa"))
    finally:
        torch.set_default_dtype(previous)
    return model.requires_grad_(False).eval()
