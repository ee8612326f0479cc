"""Save / load SAEs in sparsify's published format, and check one fits a model.

A saved SAE is one hookpoint folder, as in EleutherAI's published SAEs (`layers.12/` ...):
    cfg.json          sparsify SparseCoderConfig fields + d_in (+ layer: ours; sparsify's
                      loader ignores extra keys)
    sae.safetensors   encoder.weight [n_latents, d_in], encoder.bias [n_latents],
                      W_dec [n_latents, d_in], b_dec [d_in]
    metrics.json      training metrics (ours; absent from published SAEs)
Saving is atomic: files go to a sibling temp folder that is renamed into place. Loading reads
safetensors only (no pickle). The layer comes from `layer=`, else cfg.json, else a folder
name `layers.{l}` (sparsify's hookpoint name for the output of decoder layer l).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_model
from sparsify import SparseCoder
from torch import nn

from ipg.errors import IPGError
from ipg.sae.model import TopKSAE

CFG_FILE, WEIGHTS_FILE, METRICS_FILE = "cfg.json", "sae.safetensors", "metrics.json"


def _where(sae: TopKSAE) -> str:
    return str(sae.path / WEIGHTS_FILE) if sae.path else f"(in-memory SAE for layer {sae.layer})"


def save_sae(sae: TopKSAE, directory: str | Path, metrics: dict | None = None) -> Path:
    """Write sae to `directory` (cfg.json, sae.safetensors, metrics.json), atomically.

    metrics defaults to sae.metrics (set by train_sae). Replaces an existing folder.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_model(sae.coder, str(tmp / WEIGHTS_FILE))
        cfg = {**sae.coder.cfg.to_dict(), "d_in": sae.d_in, "layer": sae.layer}
        (tmp / CFG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
        m = sae.metrics if metrics is None else metrics
        (tmp / METRICS_FILE).write_text(json.dumps(m, indent=2, default=str) + "\n")
        old = None
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            os.replace(directory, old / "x")
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sae.path = directory
    return directory


def _resolve_layer(directory: Path, cfg: dict, layer: int | None) -> int:
    stored = cfg.get("layer")
    named = re.fullmatch(r"layers\.(\d+)", directory.name)
    if layer is not None and stored is not None and int(stored) != int(layer):
        raise IPGError(
            f"SAE {directory / CFG_FILE} was trained on layer {stored} but layer={layer} was "
            "requested; drop layer= or load the SAE for that layer"
        )
    for cand in (layer, stored, named.group(1) if named else None):
        if cand is not None:
            return int(cand)
    raise IPGError(
        f"SAE {directory} does not say its layer (no 'layer' in cfg.json, folder not named "
        "layers.N); pass load_sae(..., layer=N)"
    )


def load_sae(
    directory: str | Path,
    layer: int | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> TopKSAE:
    """Load a sparsify-format SAE folder (also accepts the path of its sae.safetensors) onto
    `device` (None / "auto": ipg.core.devices.resolve_device's choice, as load_model)."""
    from ipg.core.devices import resolve_device

    device = resolve_device(device)
    directory = Path(directory)
    if directory.name == WEIGHTS_FILE:
        directory = directory.parent
    for name in (CFG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise IPGError(
                f"SAE folder {directory} has no {name}: expected sparsify format "
                "(cfg.json + sae.safetensors), as written by save_sae"
            )
    try:
        cfg = json.loads((directory / CFG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IPGError(f"SAE config {directory / CFG_FILE} is not valid JSON ({e}); re-save it")
    if "d_in" not in cfg:
        raise IPGError(f"SAE config {directory / CFG_FILE} lacks d_in; re-save it with save_sae")
    resolved = _resolve_layer(directory, cfg, layer)
    try:
        coder = SparseCoder.load_from_disk(directory, device=device)
    except Exception as e:  # safetensors header / key / shape errors
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise IPGError(f"cannot load SAE weights {directory / WEIGHTS_FILE}: {msg}") from None
    if dtype is not None:
        coder = coder.to(dtype)
    coder.requires_grad_(False)
    metrics_path = directory / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return TopKSAE(coder, resolved, path=directory, metrics=metrics)


def check_sae_fits(sae: TopKSAE, model: nn.Module) -> None:
    """IPGError (one line) unless sae.d_in == the model's hidden size and its layer exists."""
    config = model.config
    text_cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, n_layers = int(text_cfg.hidden_size), int(text_cfg.num_hidden_layers)
    if sae.d_in != hidden:
        raise IPGError(
            f"SAE {_where(sae)} has d_in={sae.d_in} but the model's hidden size is {hidden}: "
            "use an SAE trained on this model's residual stream (or retrain with train_sae)"
        )
    if not 0 <= sae.layer < n_layers:
        raise IPGError(
            f"SAE {_where(sae)} reads layer {sae.layer} but the model has {n_layers} layers: "
            "use an SAE trained on one of this model's layers"
        )
