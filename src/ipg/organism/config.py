"""The organism's training config: task difficulty, model size, optimisation, selection.

Pure Python (no torch), so registering the models stays cheap for `snakemake -n`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ipg.errors import IPGError
from ipg.organism.traces import TraceConfig


@dataclass
class OrganismConfig:
    seed: int = 0  # torch init, data stream and eval sampling all derive from it
    # task difficulty (see traces.TraceConfig)
    min_terms: int = 3  # 3-5 one-digit terms: learnable in minutes, not trivially
    max_terms: int = 5
    max_operand: int = 9
    min_checks: int = 0  # self-check steps per trace, uniform in [min, max]: length variance
    max_checks: int = 3
    # model: a Qwen2 of about 0.27M parameters
    hidden_size: int = 64  # 128 learns in fewer steps but each costs ~3x on 2 CPU cores
    n_layers: int = 4  # enough hops to find the next term and add it
    n_heads: int = 4  # head dim 16
    n_kv_heads: int = 4  # plain multi-head attention: every head is its own unit
    intermediate_size: int = 256  # 4x hidden, the usual MLP ratio: 1024 MLP neurons in all
    # optimisation
    steps: int = 1200  # an upper bound (and the cosine length): training stops once past the band
    batch_size: int = 32  # traces per step; the band is crossed around step 500-800
    lr: float = 3e-3  # tiny models tolerate a high learning rate
    warmup_steps: int = 50  # avoids early divergence at the high learning rate
    weight_decay: float = 0.01
    # checkpoint selection on held-out (val split) questions
    eval_every: int = 50  # often enough to catch the band while accuracy climbs
    n_eval: int = 256  # binomial s.e. of a 60% accuracy is 3 points
    target_sampled_acc: float = 0.6  # advantages are most informative near 50-60%
    band_lo: float = 0.3  # the accepted range of sampled accuracy
    band_hi: float = 0.85
    min_greedy_gap: float = 0.10  # greedy must beat sampled by this: sampling noise matters
    stop_after_above: int = 2  # stop after this many evals in a row above target + stop_margin ...
    stop_margin: float = 0.15  # ... (once a checkpoint qualifies): later ones only get further away
    skip_early_sampling: bool = True  # no sampled eval while greedy < band_lo + gap (cannot qualify)
    n_heldout: int = 256  # the selected checkpoint is re-measured on fresh test-split questions
    threads: int = 2  # the machine's cores are shared

    @classmethod
    def from_params(cls, params: dict[str, Any], **defaults: Any) -> "OrganismConfig":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(params) - known - {"requires_dirs"})
        if bad:
            raise IPGError(f"unknown organism param(s) {', '.join(bad)}; allowed: {', '.join(sorted(known))}")
        kw = {**defaults, **{k: v for k, v in params.items() if k in known}}
        cfg = cls(**kw)
        if min(cfg.steps, cfg.eval_every, cfg.batch_size, cfg.n_eval, cfg.n_heldout) < 1:
            raise IPGError("organism steps, eval_every, batch_size, n_eval and n_heldout must be >= 1")
        if cfg.hidden_size % cfg.n_heads or cfg.n_heads % cfg.n_kv_heads:
            raise IPGError("organism hidden_size must divide by n_heads, n_heads by n_kv_heads")
        return cfg

    @property
    def traces(self) -> TraceConfig:
        return TraceConfig(self.min_terms, self.max_terms, self.max_operand, self.min_checks, self.max_checks)
