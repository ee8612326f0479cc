"""Train the study's SAEs: one TopK SAE per configured layer on the model's own residual
stream over its sampled trajectories (prompt + generated tokens), for the `sae` granularity.

    run_train_sae(model_dir, trajectories_path, out_dir, layers=None, n_latents=512, k=16)

Writes out_dir/L{layer}/ (sparsify format: cfg.json + sae.safetensors + metrics.json) and
out_dir/metrics.json (FVU and dead-latent fraction per layer).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ipg.errors import IPGError


def default_layers(n_layers: int) -> list[int]:
    """The middle decoder layer: where reasoning features are usually studied."""
    return [n_layers // 2]


def token_batches(trajectories, batch_size: int = 16, pad_id: int = 0):
    """Right-padded (input_ids [b, pos], attention_mask [b, pos]) batches of prompt + generation."""
    import torch

    seqs = [list(p) + list(g) for p, g in zip(trajectories["prompt_ids"], trajectories["gen_ids"])]
    for start in range(0, len(seqs), batch_size):
        chunk = seqs[start:start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        yield ids, mask


def run_train_sae(
    model_dir: str | os.PathLike,
    trajectories_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    layers: Sequence[int] | None = None,
    n_latents: int = 512,
    k: int = 16,
    epochs: int = 10,
    seed: int = 0,
    max_tokens: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Collect each layer's residual stream with the model on `device` (None / "auto":
    ipg.core.devices.resolve_device's choice) and train its SAE on the CPU (deterministic)."""
    from ipg.models.load import load_model
    from ipg.study.provenance import provenance
    from ipg.sae import collect_residual, decoder_layers, save_sae, train_sae
    from ipg.study.trajectories import read_trajectories, write_json_atomic

    model, tokenizer = load_model(model_dir, device=device)
    n_layers = len(decoder_layers(model))
    layers = list(layers) if layers else default_layers(n_layers)
    bad = [l for l in layers if not 0 <= l < n_layers]
    if bad:
        raise IPGError(f"sae.layers {bad} out of range: {model_dir} has {n_layers} layers (0..{n_layers - 1})")
    trajectories = read_trajectories(trajectories_path)
    pad = tokenizer.pad_token_id or 0
    out_dir = Path(out_dir)
    summary: dict[str, Any] = {}
    for layer in layers:
        acts = collect_residual(model, token_batches(trajectories, pad_id=pad), layer,
                                max_tokens=max_tokens)
        sae, metrics = train_sae(acts, layer, n_latents, k, epochs=epochs, seed=seed)
        save_sae(sae, out_dir / f"L{layer}", metrics)
        summary[f"L{layer}"] = metrics
        print(f"SAE layer {layer}: fvu={metrics['fvu']:.4f} dead={metrics['dead_fraction']:.4f} "
              f"tokens={metrics['n_tokens']}", flush=True)
    summary.update(provenance({"model_dir": str(model_dir), "trajectories": str(trajectories_path),
                               "layers": layers, "n_latents": n_latents, "k": k, "epochs": epochs,
                               "seed": seed}))
    write_json_atomic(summary, out_dir / "metrics.json")
    return summary


def sae_dirs(root: str | os.PathLike) -> list[Path]:
    """The per-layer SAE folders written by run_train_sae, in layer order."""
    root = Path(root)
    dirs = sorted((p for p in root.glob("L*") if (p / "cfg.json").exists()),
                  key=lambda p: int(p.name[1:]))
    if not dirs:
        raise IPGError(f"no trained SAE under {root}; run the train_sae rule first")
    return dirs
