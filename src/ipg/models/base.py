"""The model abstraction: how a registered model is built into a local safetensors folder.

A model is registered by name in `ipg.models.MODELS`; adding one is one small module (or,
for a hub model, one entry in `ipg.models.hub.HUB_MODELS`).
Every model is loaded the same way (`ipg.models.load.load_model`): safetensors only,
never remote code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class ModelSpec:
    name: str
    # (out_dir, params) -> writes config.json, model.safetensors, tokenizer files to out_dir
    build: Callable[[Path, dict[str, Any]], None]
    # True: prompts are wrapped with the tokenizer's chat template
    chat: bool
    # model names that must be built first (e.g. organism-distilled needs organism)
    requires: tuple[str, ...] = ()
    # True: weights come from a hub with a pinned revision (not hashed into DVC)
    from_hub: bool = False
    description: str = ""
    default_params: dict[str, Any] = field(default_factory=dict)
    # the keys its model_params entry accepts (None: not declared, any key); checked at DAG build
    param_keys: tuple[str, ...] | None = None
    # params -> its size without building it (None: unknown until built, e.g. a hub checkpoint)
    shape: Callable[[dict[str, Any]], "ModelShape"] | None = None


@dataclass(frozen=True)
class ModelShape:
    """A model's size as the config checks need it (k vs units, layers vs depth)."""
    n_layers: int
    intermediate_size: int  # MLP neurons per layer
    n_heads: int  # attention (query) heads per layer

    def n_units(self, granularity: str, layers: int | None = None) -> int | None:
        """Units of a granularity over `layers` layers (default all); None for sae (its
        dictionary size is the SAE's, not the model's)."""
        per_layer = {"neurons": self.intermediate_size, "heads": self.n_heads, "layers": 1}
        if granularity not in per_layer:
            return None
        return per_layer[granularity] * (self.n_layers if layers is None else layers)
