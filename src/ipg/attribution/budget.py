"""How much memory the engine may hold for speed: the LM-head softmax kept between a chunk's
forward and backward (attribution/surrogate.py; docs/method.md, "Cost of one pass").

    available_bytes(torch.device("cpu"))   # free memory the process can still allocate
    fits(n_bytes, device)                  # n_bytes <= KEEP_FRACTION * available_bytes(device)

The choice never changes a score: the kept and the recomputed softmax are bitwise the same
(tests/attribution/test_speed_invariants.py), so a budget derived from the memory free at
run time keeps runs reproducible.
"""
from __future__ import annotations

from pathlib import Path

import psutil
import torch

# Share of the available memory one kept softmax may take: the backward works on it in place,
# so the peak is about this share (the chunk's other activations are already allocated).
KEEP_FRACTION = 0.25
_CGROUP = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current"))


def _cgroup_free() -> float:
    """Bytes left under a cgroup v2 memory limit (inf without one)."""
    limit, current = _CGROUP
    try:
        text = limit.read_text().strip()
        if text == "max":
            return float("inf")
        return max(float(text) - float(current.read_text()), 0.0)
    except (OSError, ValueError):
        return float("inf")


def available_bytes(device: torch.device) -> float:
    """Memory the process can still allocate on `device`: CUDA free memory plus the caching
    allocator's reserved-but-unused blocks; elsewhere the host's available memory (psutil),
    capped by a cgroup limit."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return min(float(psutil.virtual_memory().available), _cgroup_free())


def fits(n_bytes: float, device: torch.device) -> bool:
    """True when n_bytes is within KEEP_FRACTION of the memory available on `device`."""
    return n_bytes <= KEEP_FRACTION * available_bytes(device)
