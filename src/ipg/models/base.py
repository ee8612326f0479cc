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
