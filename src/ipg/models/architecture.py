"""Where a causal LM's parts live, per Hugging Face architecture (the `model_type` of its config).

    model_type          blocks                  neurons (input of)   heads (input of)    final norm                lm head
    llama, qwen2,       model.layers            mlp.down_proj        self_attn.o_proj    model.norm                lm_head
    qwen3, mistral,
    gemma, phi3
    gpt2                transformer.h           mlp.c_proj (Conv1D)  attn.c_proj         transformer.ln_f          lm_head
    gpt_neox            gpt_neox.layers         mlp.dense_4h_to_h    attention.dense     gpt_neox.final_layer_norm lm_head

Paths of blocks / norm / head are from the top model; paths of the MLP and attention
projections are from one block. The input of the MLP down-projection is the neurons' activation
(act(gate) * up for SwiGLU, act(c_fc(x)) for GPT-2 and GPT-NeoX); the input of the attention
output projection is the heads' outputs concatenated [.., n_heads * head_dim]. `bypass` says
whether the engine may replace the attention / MLP forwards by a placeholder (Granularity.bypass):
checked for each architecture in tests/models/test_architecture.py. Importing this module does
not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ipg.errors import IPGError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    blocks: str  # ModuleList of decoder blocks, from the top model
    down_proj: str  # MLP down-projection, from a block: its input = the neurons
    o_proj: str  # attention output projection, from a block: its input = the heads
    final_norm: str  # from the top model
    lm_head: str  # from the top model
    mlp: str  # the MLP module, from a block
    attn: str  # the attention module, from a block
    bypass: bool = True  # the engine's placeholder forwards are correct for this layout


_LLAMA_LIKE = Architecture(blocks="model.layers", down_proj="mlp.down_proj", o_proj="self_attn.o_proj",
                           final_norm="model.norm", lm_head="lm_head", mlp="mlp", attn="self_attn")

ARCHITECTURES: dict[str, Architecture] = {
    **{name: _LLAMA_LIKE for name in ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "phi3")},
    "gpt2": Architecture(blocks="transformer.h", down_proj="mlp.c_proj", o_proj="attn.c_proj",
                         final_norm="transformer.ln_f", lm_head="lm_head", mlp="mlp", attn="attn"),
    "gpt_neox": Architecture(blocks="gpt_neox.layers", down_proj="mlp.dense_4h_to_h",
                             o_proj="attention.dense", final_norm="gpt_neox.final_layer_norm",
                             lm_head="lm_head", mlp="mlp", attn="attention"),
}


def architecture(model: nn.Module) -> Architecture:
    """The table entry of a transformers causal LM (by config.model_type); one-line IPGError
    for an architecture outside the table."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type]
    if model_type is None and _get(model, _LLAMA_LIKE.blocks, None) is not None:
        return _LLAMA_LIKE  # a bare module tree in the Llama layout (no HF config)
    raise IPGError(f"model architecture {model_type!r} ({type(model).__name__}) is not supported; "
                   f"supported: {', '.join(sorted(ARCHITECTURES))} (add an entry to "
                   "ipg.models.architecture.ARCHITECTURES)")


def _get(root: Any, path: str, default: Any = ...) -> Any:
    obj = root
    for part in path.split("."):
        if not hasattr(obj, part):
            if default is not ...:
                return default
            raise IPGError(f"{type(root).__name__} has no submodule '{path}' where the "
                           "architecture table expects it; is the checkpoint's config.model_type right?")
        obj = getattr(obj, part)
    return obj


def submodule(root: nn.Module, path: str) -> nn.Module:
    """root.<path> (dotted), or a one-line IPGError naming the missing path."""
    return _get(root, path)


def in_features(module: nn.Module) -> int:
    """The input width of a linear projection (nn.Linear, or GPT-2's Conv1D with weight [in, out])."""
    if hasattr(module, "in_features"):
        return int(module.in_features)
    if type(module).__name__ == "Conv1D":
        return int(module.weight.shape[0])
    raise IPGError(f"{type(module).__name__}: cannot read its input width (not Linear or Conv1D)")
