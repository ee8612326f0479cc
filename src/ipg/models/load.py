"""Build a registered model into a local folder, and load any model folder the same safe way.

`build_model(name, out_dir)` runs the model's builder in a temporary sibling folder and
renames it into place, so `out_dir` is either complete or absent. `load_model(dir)` reads
safetensors weights only (onto `ipg.core.devices.resolve_device(device)`: $IPG_DEVICE, else a GPU
when there is one) and never runs code shipped with a checkpoint
(`trust_remote_code=False` always; there is no switch). `render_prompt` wraps a prompt in
the tokenizer's chat template for chat models.
"""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ipg.core.devices import resolve_device
from ipg.errors import IPGError

CARD = "model_card.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
_LIBRARIES = ("ipg", "torch", "transformers", "safetensors", "tokenizers", "huggingface_hub", "gguf")


def _configs_writing(results_dir: Path) -> list[str]:
    """The config/*.yaml files (here) whose results_dir is `results_dir`."""
    import yaml

    found = []
    for path in sorted(Path("config").glob("*.yaml")):
        try:
            declared = (yaml.safe_load(path.read_text()) or {}).get("results_dir", "results")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if Path(str(declared)) == results_dir:
            found.append(str(path))
    return found


def _fix(model_dir: Path) -> str:
    """A rebuild that works: Snakemake keeps a folder that exists (a corrupt one too: "Nothing
    to be done"), so the folder goes first, then the study that built it runs again (its own
    config: model params differ between configs); only this model and its dependents rerun."""
    name = model_dir.name
    python_fix = f"ipg.models.load.build_model('{name}', '{model_dir}')"
    if model_dir.parent.name != "models":  # not a study's model folder
        return f"rebuild it: rm -rf {model_dir}, then in Python {python_fix}"
    configs = _configs_writing(model_dir.parent.parent)
    if configs == ["config/default.yaml"]:
        again = "make study"
    elif len(configs) == 1:
        again = f"snakemake --cores all --configfile {configs[0]}"
    else:
        again = "make study, or snakemake --cores all --configfile <the config that built it>"
    return f"rebuild it: rm -rf {model_dir}, then rerun the study ({again})"


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a model folder (one file, or the shards of an index)."""
    index = model_dir / WEIGHTS_INDEX
    if (model_dir / WEIGHTS).is_file():
        return [model_dir / WEIGHTS]
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as err:
            raise IPGError(f"{index}: not a valid safetensors index ({err}); {_fix(model_dir)}") from None
        return [model_dir / s for s in shards]
    raise IPGError(f"{model_dir / WEIGHTS}: missing (only safetensors weights are loaded); {_fix(model_dir)}")


def check_model_dir(model_dir: str | Path) -> Path:
    """Raise a one-line IPGError unless `model_dir` holds config, safetensors weights and tokenizer."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise IPGError(f"{model_dir}: model folder not found; {_fix(model_dir)}")
    for name in ("config.json", *TOKENIZER_FILES):
        if not (model_dir / name).is_file():
            raise IPGError(f"{model_dir / name}: missing; {_fix(model_dir)}")
    for path in weight_files(model_dir):
        if not path.is_file():
            raise IPGError(f"{path}: missing; {_fix(model_dir)}")
        try:  # reads and validates the header (offsets vs file size); no tensor data
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise IPGError(f"{path}: corrupt safetensors file ({reason}); {_fix(model_dir)}") from None
    return model_dir


def load_model(
    model_dir: str | Path, dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a frozen eval-mode causal LM and its left-padding tokenizer from a local folder,
    on `device` (None / "auto": ipg.core.devices.resolve_device's choice)."""
    device = resolve_device(device)  # a bad device: one line before reading any weight
    model_dir = check_model_dir(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model_dir, trust_remote_code=False, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            dtype=dtype,
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=True,
        )
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise IPGError(f"{model_dir}: cannot load model ({reason}); {_fix(model_dir)}") from None
    # No pad token, or a tokenizer-class default the model has no embedding for: pad with EOS.
    n_embeddings = model.get_input_embeddings().num_embeddings
    if tokenizer.pad_token_id is None or not 0 <= tokenizer.pad_token_id < n_embeddings:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval().requires_grad_(False)
    return model, tokenizer


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, chat: bool) -> str:
    """The text the model sees: one user turn in the chat template (chat=True), else `prompt`."""
    if not chat:
        return prompt
    if not tokenizer.chat_template:
        raise IPGError(
            f"tokenizer '{tokenizer.name_or_path}' has no chat template; set chat: false for this model"
        )
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def library_versions() -> dict[str, str]:
    versions = {}
    for lib in _LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    return versions


def build_model(name: str, out_dir: str | Path, params: dict[str, Any] | None = None) -> Path:
    """Build registered model `name` into `out_dir` atomically and write its model_card.json.

    The builder may write its own model_card.json (e.g. hub repo id and revision); its keys
    are kept and `name`, `params`, `libraries`, `build_seconds` are added.
    """
    from ipg.models import MODELS  # late import: ipg.models imports every model module

    spec = MODELS.get(name)
    params = {**spec.default_params, **(params or {})}
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.building-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        start = time.perf_counter()
        spec.build(tmp, dict(params))
        seconds = time.perf_counter() - start
        try:
            check_model_dir(tmp)
        except IPGError as err:
            problem = str(err).split("; ")[0]
            raise IPGError(f"builder of model '{name}' wrote an incomplete folder: {problem}") from None
        card_path = tmp / CARD
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        card.update(
            name=name,
            chat=spec.chat,
            from_hub=spec.from_hub,
            params=params,
            libraries=library_versions(),
            build_seconds=round(seconds, 2),
        )
        card_path.write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
        old = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir
