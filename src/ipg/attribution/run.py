"""One call for a Snakemake script: load model (+ SAE) and trajectories, run IPG (Eqs. 1-3)
or any method of attribution/methods.py (docs/method.md, "Baselines the study compares IPG
against"), write the attribution table and its metrics.

    run_ipg(model_dir, trajectories_path, "neurons", params, out_parquet, out_metrics)
    run_method(model_dir, trajectories_path, "neurons",
               MethodSpec.parse({"kind": "random", "seed": 1}), out_parquet, out_metrics,
               method_name="random_s1")

run_method takes the typed MethodSpec (the attribute job's params, parsed at DAG-build time)
and uses it as is; run_ipg parses its IPGConfig keys into one.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from ipg.attribution.methods import CHUNKED, MethodSpec, run_spec
from ipg.attribution.table import write_attribution
from ipg.core.checkpoint import ChunkStore, fingerprint
from ipg.errors import IPGError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _load(model_dir, trajectories_path, granularity: str, sae_dirs: Sequence,
          device: torch.device, dtype: str) -> tuple[Any, Any, Any]:
    """(model, trajectory table, SAEs or None), with one-line errors for bad inputs."""
    from ipg.models.load import load_model
    from ipg.study.trajectories import read_trajectories

    if dtype not in _DTYPES:
        raise IPGError(f"dtype '{dtype}' unknown; allowed: {', '.join(_DTYPES)}")
    trajectories = read_trajectories(trajectories_path)
    model, _ = load_model(model_dir, dtype=_DTYPES[dtype], device=device)
    sae = None
    if granularity == "sae":
        from ipg.sae import load_sae

        if not sae_dirs:
            raise IPGError("granularity 'sae' needs sae_dirs (the trained SAE folders)")
        sae = [load_sae(d, device=device) for d in sae_dirs]
    return model, trajectories, sae


def run_ipg(
    model_dir: str | os.PathLike,
    trajectories_path: str | os.PathLike,
    granularity: str,
    params: dict[str, Any],
    parquet_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    sae_dirs: Sequence[str | os.PathLike] = (),
    device: str | None = None,
    dtype: str = "float32",
    progress: bool = True,
    chunk_prompts: int | None = None,
) -> dict[str, Any]:
    """Attribute one model on one trajectory table; `params` are IPGConfig keys. Returns metrics."""
    return run_method(model_dir, trajectories_path, granularity,
                      MethodSpec.parse({"kind": "ipg", **params}), parquet_path, metrics_path, sae_dirs, device, dtype, progress, "ipg",
                      chunk_prompts)


def run_method(
    model_dir: str | os.PathLike,
    trajectories_path: str | os.PathLike,
    granularity: str,
    method: MethodSpec,
    parquet_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    sae_dirs: Sequence[str | os.PathLike] = (),
    device: str | None = None,
    dtype: str = "float32",
    progress: bool = True,
    method_name: str | None = None,
    chunk_prompts: int | None = None,
) -> dict[str, Any]:
    """Run one parsed method entry (MethodSpec of kind ipg | act | freq | gxa | ig_likelihood |
    contrastive | random, ...) and write its table under `method_name` (default: the kind).

    chunk_prompts: for the long kinds (methods.CHUNKED), save per-prompt scores every that
    many prompts in `<parquet_path>.chunks/` (ipg.core.checkpoint), so a killed run resumes from
    its last chunk with a bitwise identical table; the folder is removed once the table is
    written. None: no checkpoints.

    device: None / "auto" = ipg.core.devices.resolve_device's choice ($IPG_DEVICE, else a GPU if
    any). The resolved device is part of the checkpoint key: chunks computed on one device
    are never mixed into a run resumed on another (their floats may differ)."""
    from ipg.core.devices import resolve_device
    from ipg.study.provenance import provenance

    if not isinstance(method, MethodSpec):
        raise IPGError(f"run_method takes a MethodSpec (MethodSpec.parse(entry)), got "
                       f"{type(method).__name__}")
    kind = method.kind
    device = resolve_device(device)
    store = None
    if chunk_prompts is not None and kind in CHUNKED:
        key = fingerprint([model_dir, trajectories_path, *sae_dirs], granularity=granularity,
                          method=method.entry, name=method_name, device=str(device), dtype=dtype)
        store = ChunkStore.for_output(parquet_path, key, chunk_size=chunk_prompts)
    model, trajectories, sae = _load(model_dir, trajectories_path, granularity, sae_dirs, device, dtype)
    att = run_spec(model, trajectories, granularity, method, sae, progress, method_name, store)
    att.metrics.update(provenance({
        "model_dir": str(model_dir), "trajectories": str(trajectories_path),
        "granularity": granularity, "dtype": dtype, "method": att.metrics["method"],
        **method.entry,
    }))
    att.metrics["device"] = str(device)  # where it ran (not a param: the config hash ignores it)
    write_attribution(att, parquet_path, metrics_path)
    if store is not None:
        store.clear()
    return att.metrics
