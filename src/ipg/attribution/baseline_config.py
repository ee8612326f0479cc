"""The baselines' typed config (BaselineConfig) and the keys each baseline kind accepts (KEYS),
torch-free: the config checks at DAG-build time build it for every baseline method entry.
Act, Freq, GxA, Contrastive and Random (ipg.attribution.baselines) share this one dataclass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipg.errors import IPGError

_COMMON = ("layers", "positions", "batch_size", "pad_id")
KEYS = {  # the params each baseline accepts (anything else is a one-line error)
    "act": _COMMON,
    "freq": _COMMON + ("threshold",),
    "gxa": _COMMON + ("temperature", "pos_chunk"),
    "contrastive": _COMMON + ("reward",),
    "random": ("layers", "seed"),
}


@dataclass
class BaselineConfig:
    layers: list[int] | None = None  # subset of layers (None: all the granularity has)
    positions: str = "all"  # all real tokens, or generated tokens only (as IPGConfig.positions)
    batch_size: int | None = None  # trajectories per forward (None: all G of a prompt)
    pad_id: int = 0  # any token id: padded positions are masked
    threshold: float | None = None  # freq: the active rule (baselines.py docstring)
    reward: str = "accuracy"  # contrastive: column reward_{reward} splits high / low
    seed: int = 0  # random
    temperature: float | None = None  # gxa: the sampler's T; None: the table's column
    pos_chunk: int = 256  # gxa: positions per LM-head chunk

    def __post_init__(self) -> None:
        if self.positions not in ("all", "generated"):
            raise IPGError(f"baseline key 'positions' = {self.positions!r}; allowed: all, generated")
        if self.reward not in ("accuracy", "length"):
            raise IPGError(f"baseline key 'reward' = {self.reward!r}; allowed: accuracy, length")
        if self.batch_size is not None and (int(self.batch_size) != self.batch_size or self.batch_size < 1):
            raise IPGError(
                f"baseline key 'batch_size' must be an integer >= 1 or null, got {self.batch_size!r}")
        if self.layers is not None:
            self.layers = [int(l) for l in self.layers]

    @classmethod
    def from_dict(cls, kind: str, values: dict[str, Any]) -> "BaselineConfig":
        allowed = KEYS[kind]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise IPGError(f"unknown {kind} key '{unknown[0]}'; allowed: {', '.join(allowed)}")
        return cls(**values)
