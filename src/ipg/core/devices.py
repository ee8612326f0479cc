"""Which torch device the study's models and SAEs run on.

    resolve_device()          # $IPG_DEVICE if set, else "cuda" when available, else "cpu"
    resolve_device("cuda:1")  # an explicit device, checked to exist

Every model / SAE load site (ipg.models.load.load_model with device=None, the CLI, the
Snakemake stages) goes through `resolve_device`, so one environment variable moves the whole
study: `IPG_DEVICE=cpu snakemake ...` keeps a GPU machine on the CPU; unset, a visible GPU is
used. A device that does not exist here is one line naming the value and the fix, raised
before any weight is read.
"""
from __future__ import annotations

import os

import torch

from ipg.errors import IPGError

ENV_VAR = "IPG_DEVICE"
AUTO = "auto"
KNOWN_TYPES = ("cpu", "cuda", "mps")


def _where(name: str, from_env: bool) -> str:
    return f"{ENV_VAR}={name!r}" if from_env else f"device {name!r}"


def _fix(from_env: bool) -> str:
    how = f"unset {ENV_VAR} or set it to" if from_env else "pass"
    return f"{how} 'auto', 'cpu' or an available accelerator"


def _available(device: torch.device) -> str | None:
    """None if `device` can be used here, else why not."""
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
        return None
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "MPS is not available on this machine"
    return None


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The torch.device to run on: `name`, or for None / "auto" $IPG_DEVICE, else cuda when
    available, else cpu. Raises a one-line IPGError for an unknown or unavailable device."""
    if isinstance(name, torch.device):
        name = str(name)
    from_env = False
    if name is None or str(name).strip().lower() == AUTO:
        env = os.environ.get(ENV_VAR, "").strip()
        if env and env.lower() != AUTO:
            name, from_env = env, True
        else:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    text = str(name).strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in KNOWN_TYPES:
        raise IPGError(f"{_where(text, from_env)} is not a known device (allowed: auto, cpu, cuda, "
                       f"cuda:N, mps); {_fix(from_env)}")
    why = _available(device)
    if why is not None:
        raise IPGError(f"{_where(text, from_env)} cannot be used: {why}; {_fix(from_env)}")
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a loaded model's parameters (cpu for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
