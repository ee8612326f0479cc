"""One call for a Snakemake script: load model (+ SAE) and trajectories, run IPG (Eqs. 1-3),
write the attribution table and its metrics.

    run_ipg(model_dir, trajectories_path, "neurons", params, out_parquet, out_metrics)
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from ipg.attribution.ipg import IPGConfig, attribute
from ipg.attribution.table import write_attribution
from ipg.errors import IPGError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def run_ipg(
    model_dir: str | os.PathLike,
    trajectories_path: str | os.PathLike,
    granularity: str,
    params: dict[str, Any],
    parquet_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    sae_dirs: Sequence[str | os.PathLike] = (),
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
) -> dict[str, Any]:
    """Attribute one model on one trajectory table; `params` are IPGConfig keys. Returns metrics."""
    from ipg.models.load import load_model
    from ipg.provenance import provenance
    from ipg.trajectories import read_trajectories

    if dtype not in _DTYPES:
        raise IPGError(f"dtype '{dtype}' unknown; allowed: {', '.join(_DTYPES)}")
    config = IPGConfig.from_dict(dict(params))
    trajectories = read_trajectories(trajectories_path)
    model, _ = load_model(model_dir, dtype=_DTYPES[dtype], device=device)
    sae = None
    if granularity == "sae":
        from ipg.sae import load_sae

        if not sae_dirs:
            raise IPGError("granularity 'sae' needs sae_dirs (the trained SAE folders)")
        sae = [load_sae(d, device=device) for d in sae_dirs]
    att = attribute(model, trajectories, granularity, config, sae=sae, progress=progress)
    att.metrics.update(provenance({
        "model_dir": str(model_dir), "trajectories": str(trajectories_path),
        "granularity": granularity, "dtype": dtype, **att.metrics["config"],
    }))
    write_attribution(att, parquet_path, metrics_path)
    return att.metrics
