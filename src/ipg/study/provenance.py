"""What produced an output: library versions, config hash, seeds (recorded with every metrics JSON)."""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from ipg.config.study import config_hash

_LIBRARIES = ("torch", "transformers", "numpy", "pandas", "ipg")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(params: dict[str, Any]) -> dict[str, Any]:
    return {"params": params, "config_hash": config_hash(params), "versions": library_versions()}
