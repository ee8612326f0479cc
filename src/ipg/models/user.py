"""Models defined in the study config (`models: {name: {path: ... | hub: ..., ...}}`), no code.

    models:
      mymodel:
        path: /data/my-checkpoint    # a local folder of safetensors + config + tokenizer
        # or hub: org/name with revision: <commit sha> (safetensors only, never remote code)
        chat_template: true          # wrap prompts in the tokenizer's chat template
        description: my fine-tune

`check_entry` validates one entry with one-line errors (ipg.config.study calls it when the DAG is
built); `register` adds it to MODELS. The entry is the model's params, so a changed entry
rebuilds it; the model card records the folder (or repo and revision) and the sha256 of
every weight file. The Snakefile passes the entries to rule scripts in $IPG_USER_ENTRIES.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.base import ModelSpec
from ipg.models.hub import build_hub_model

ENV = "IPG_USER_ENTRIES"
FROM_CONFIG: set[str] = set()  # names registered from a config (may be re-registered)
KEYS = {"path", "hub", "revision", "cache_dir", "chat_template", "description"}


def check_entry(name: str, entry: dict[str, Any]) -> None:
    where = f"config error at models.{name}"
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise IPGError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(KEYS))}")
    if ("path" in entry) == ("hub" in entry):
        raise IPGError(f"{where}: give exactly one of path: <folder> or hub: <org/name>")
    if "path" in entry:
        folder = Path(entry["path"]).expanduser()
        if not (folder / "config.json").is_file():
            raise IPGError(f"{where}.path: {folder} has no config.json; point it at a checkpoint folder")
        if not any(folder.glob("*.safetensors")):
            raise IPGError(f"{where}.path: {folder} has no *.safetensors weights (only safetensors are loaded)")
    elif not entry.get("revision"):
        raise IPGError(f"{where}: hub model {entry['hub']!r} needs revision: <commit sha> (pinned)")


def _build(out_dir: Path, params: dict[str, Any]) -> None:
    from ipg.tasks.user import file_sha256

    if "path" in params:
        from ipg.models.hub import copy_checkpoint

        src = Path(params["path"]).expanduser().resolve()
        copied = copy_checkpoint(src, out_dir)
        card: dict[str, Any] = {"source": "path", "path": str(src), "files": copied}
    else:
        build_hub_model(params["hub"], params["revision"])(out_dir, {"cache_dir": params.get("cache_dir")})
        card = {**json.loads((out_dir / "model_card.json").read_text()), "source": "hub"}
    card["sha256"] = {f: file_sha256(out_dir / f) for f in sorted(card["files"]) if f.endswith(".safetensors")}
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")


def make_spec(name: str, entry: dict[str, Any]) -> ModelSpec:
    source = entry.get("path") or f"{entry.get('hub')}@{entry.get('revision')}"
    return ModelSpec(name=name, build=_build, chat=bool(entry.get("chat_template", True)),
                     from_hub="hub" in entry, description=entry.get("description") or f"from config: {source}",
                     default_params=dict(entry))


def register(name: str, entry: dict[str, Any]) -> None:
    """Add (or, for a config name seen before, replace) a config model in MODELS."""
    if name in MODELS and name not in FROM_CONFIG:
        raise IPGError(f"config error at models.{name}: {name!r} is a built-in model; choose another name")
    FROM_CONFIG.add(name)
    MODELS.replace(name, make_spec(name, entry))


for _name, _entry in json.loads(os.environ.get(ENV) or "{}").get("models", {}).items():
    register(_name, _entry)
