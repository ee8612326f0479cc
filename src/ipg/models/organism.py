"""Registers the model organisms: `organism` (trained from scratch) and `organism-distilled`.

`organism-distilled` is fine-tuned from the selected `organism` checkpoint on longer traces
with more self-check steps: the analog of R1-Distill, fine-tuned from Qwen2.5-Math.
"""
from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.base import ModelShape, ModelSpec
from ipg.organism.config import OrganismConfig

# The distilled model: more self-checks per trace, a short gentle fine-tune, and a higher
# target accuracy (the distilled reasoner is the better one, but must stay below the ceiling).
DISTILLED_DEFAULTS: dict[str, Any] = dict(
    min_checks=2,  # every trace checks itself at least twice ...
    max_checks=5,  # ... and up to 5 times: longer reasoning than the organism's 0..3
    steps=200,  # a short fine-tune (~1-2 minutes); the selected step is usually 75-150
    lr=5e-4,  # a fine-tune: a quarter of the organism's peak learning rate
    warmup_steps=10,
    eval_every=25,
    target_sampled_acc=0.7,
)
_DIFFICULTY = ("min_terms", "max_terms", "max_operand")


def build_organism(out_dir: Path, params: dict[str, Any]) -> None:
    from ipg.organism.train import train  # torch: imported only when building

    train(Path(out_dir), OrganismConfig.from_params(params))


def build_distilled(out_dir: Path, params: dict[str, Any]) -> None:
    src = (params.get("requires_dirs") or {}).get("organism")
    if src is None or not (Path(src) / "config.json").is_file():
        raise IPGError(f"organism-distilled needs a built organism folder in params['requires_dirs']['organism'], got {src!r}")
    # the same questions as the organism was trained on, unless asked otherwise
    from ipg.organism.train import train

    base = json.loads((Path(src) / "metrics.json").read_text())["config"]
    defaults = {k: base[k] for k in _DIFFICULTY} | {"seed": base["seed"]} | DISTILLED_DEFAULTS
    train(Path(out_dir), OrganismConfig.from_params(params, **defaults), init_dir=Path(src))


ORGANISM_KEYS = tuple(f.name for f in fields(OrganismConfig))


def organism_shape(params: dict[str, Any]) -> ModelShape:
    """The organism's size from its params (OrganismConfig defaults otherwise)."""
    cfg = {**asdict(OrganismConfig()), **params}
    return ModelShape(int(cfg["n_layers"]), int(cfg["intermediate_size"]), int(cfg["n_heads"]))


MODELS.add("organism", ModelSpec(
    name="organism",
    build=build_organism,
    chat=False,
    description="tiny Qwen2 (~0.3M params) trained from scratch on arithmetic chains of thought with 0-3 self-checks",
    default_params=asdict(OrganismConfig()),
    param_keys=ORGANISM_KEYS,
    shape=organism_shape,
))
MODELS.add("organism-distilled", ModelSpec(
    name="organism-distilled",
    build=build_distilled,
    chat=False,
    requires=("organism",),
    description="the organism fine-tuned on longer traces with 2-5 self-checks (the R1-Distill analog)",
    default_params=DISTILLED_DEFAULTS,
    param_keys=ORGANISM_KEYS,  # its size is the organism's (fine-tuned from it)
))
