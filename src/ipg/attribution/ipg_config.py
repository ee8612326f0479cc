"""The IPG engine's typed config (IPGConfig), torch-free: the config checks at DAG-build time
(ipg.config.study.validate_config) build it for every IPG-family method entry, study override and
sensitivity variant, and the engine (ipg.attribution.ipg.attribute) takes it as is.

The allowed values of its string keys are spelled here; tests/attribution/test_methods.py checks
they equal the engine's registries (advantages.ADVANTAGES, reference.REFERENCES,
quadrature.QUADRATURES, execution.AUTOCAST_DTYPES).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ipg.errors import IPGError

_CHOICES: dict[str, tuple[str, ...]] = {
    "reward": ("accuracy", "length"),
    "advantage": ("loo", "grpo", "raw"),  # ipg.attribution.advantages.ADVANTAGES
    "path": ("offpolicy", "importance", "onpolicy"),
    "baseline": ("zero", "mean", "noise"),  # ipg.attribution.reference.REFERENCES
    "quadrature": ("gauss_legendre", "riemann_left", "riemann_mid", "riemann_right", "adaptive"),
    "positions": ("all", "generated"),
    "multilayer": ("joint", "separate", "onthefly"),
    "autocast": ("none", "bfloat16"),  # ipg.attribution.execution.AUTOCAST_DTYPES
}


@dataclass
class IPGConfig:
    reward: str = "accuracy"  # outcome R(tau): column reward_{reward} of the trajectory table
    advantage: str = "loo"  # loo: unbiased; grpo: (R-mean)/std as the paper; raw: b = 0
    path: str = "offpolicy"  # offpolicy: IG of the fixed surrogate (completeness holds)
    baseline: str = "zero"  # h': zero | mean (dataset mean) | noise (mean + std * z, seeded)
    quadrature: str = "gauss_legendre"  # GL needs ~half the points of the midpoint rule
    m: int = 32  # path points; GL m=32 gave ~0.2% median residual on a small Qwen2 (all MLPs)
    # quadrature adaptive (docs/method.md "Quadrature"): nested Clenshaw-Curtis levels per prompt
    # until the completeness residual and the nested error estimate are both <= tol, at most
    # m_max path points per prompt and pass (levels have 5, 9, 17, 33, 65, ... nodes); m unused
    tol: float = 0.01
    m_max: int = 65
    positions: str = "all"  # interpolate h at all positions or only at generated ones
    multilayer: str = "joint"  # joint (clamp to recorded h) | separate | onthefly
    layers: list[int] | None = None  # subset of layers (None: all the granularity has)
    temperature: float | None = None  # the sampler's T; None: the table's 'temperature' column
    chunk: int = 8  # path points per batch: 8 was 2.6x faster than 1 on this 2-core CPU (ipg bench)
    pos_chunk: int = 256  # positions per LM-head chunk (bounds the float32 logits)
    seed: int = 0  # noise baseline and on-policy resampling
    max_residual: float | None = 0.05  # fail if the off-policy completeness residual exceeds it
    eps: float = 1e-6  # GRPO's std epsilon
    pad_id: int = 0  # any token id: padded positions are masked
    share_prompt_cache: bool = True  # positions=generated: encode each prompt once (KV cache)
    autocast: str = "none"  # bfloat16: matmuls in bf16, sums and accumulators float32 (GPU)
    checkpoint_layers: bool = False  # recompute decoder layers in backward (long CoT memory)
    traj_chunk: int | None = None  # a prompt's trajectories in groups of this many (None: all G)

    def __post_init__(self) -> None:
        for key, allowed in _CHOICES.items():
            if getattr(self, key) not in allowed:
                raise IPGError(
                    f"IPG config key '{key}' = {getattr(self, key)!r}; allowed: {', '.join(allowed)}"
                )
        for key in ("m", "chunk", "pos_chunk"):
            value = getattr(self, key)
            if int(value) != value or value < 1:
                raise IPGError(f"IPG config key '{key}' must be an integer >= 1, got {value!r}")
        if isinstance(self.tol, bool) or not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1):
            raise IPGError(f"IPG config key 'tol' must be a number in (0, 1), got {self.tol!r}")
        if (isinstance(self.m_max, bool) or not isinstance(self.m_max, (int, float))
                or int(self.m_max) != self.m_max or self.m_max < 5):
            raise IPGError(f"IPG config key 'm_max' must be an integer >= 5 (the adaptive rule's "
                           f"first level), got {self.m_max!r}")
        if self.quadrature == "adaptive" and self.path != "offpolicy":
            raise IPGError(f"IPG quadrature 'adaptive' stops on the completeness identity, which "
                           f"holds on the off-policy path only; set path: offpolicy or quadrature: "
                           f"gauss_legendre (path is {self.path!r})")
        if self.temperature is not None and not self.temperature > 0:
            raise IPGError(f"IPG config key 'temperature' must be > 0, got {self.temperature}")
        if self.layers is not None:
            self.layers = [int(l) for l in self.layers]
        if self.traj_chunk is not None:
            if int(self.traj_chunk) != self.traj_chunk or self.traj_chunk < 1:
                raise IPGError(f"IPG config key 'traj_chunk' must be an integer >= 1 or null, got "
                               f"{self.traj_chunk!r}")
            if self.path == "importance":
                raise IPGError("IPG path 'importance' normalises over all G trajectories of a "
                               "prompt at once; leave traj_chunk null")
        if not isinstance(self.checkpoint_layers, bool):
            raise IPGError(f"IPG config key 'checkpoint_layers' must be true or false, got "
                           f"{self.checkpoint_layers!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "IPGConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise IPGError(f"unknown IPG config key '{unknown[0]}'; allowed: {', '.join(sorted(known))}")
        return cls(**values)
