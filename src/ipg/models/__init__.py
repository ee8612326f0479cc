"""Model registry. Every module in this package registers its models with `MODELS.add`.

Modules are discovered automatically: adding a model is adding one module here (or one
entry in `hub.HUB_MODELS` for a hub checkpoint with a pinned revision).
"""
from __future__ import annotations

import importlib
import pkgutil

from ipg.models.base import ModelSpec
from ipg.registry import Registry

MODELS: Registry[ModelSpec] = Registry("model")

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in {"base", "load", "architecture"} and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def get_model_spec(name: str) -> ModelSpec:
    return MODELS.get(name)
