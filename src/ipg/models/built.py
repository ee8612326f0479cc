"""Where a model named on the command line lives: a folder, or a model the study built under
`<results_dir>/models/<name>`; and the registry name its model card records. Light (no torch),
so the CLI can resolve a model before it imports one."""
from __future__ import annotations

import json
from pathlib import Path


def find_model_dir(spec: str, results_dir: str = "results") -> Path | None:
    """`spec` as a folder, else `<results_dir>/models/<spec>`; None when neither exists."""
    for path in (Path(spec), Path(results_dir) / "models" / spec):
        if path.exists():
            return path
    return None


def card_name(model_dir: Path, default: str) -> str:
    """The `name` in the folder's model_card.json (written by the build), else `default`."""
    card = model_dir / "model_card.json"
    return json.loads(card.read_text()).get("name", default) if card.exists() else default
