"""Completeness of IPG (docs/method.md, Eq. 2): per prompt, sum_i IPG_i = Phi(h) - Phi(h') up to
the quadrature error. The residuals every IPG run records, the bound it enforces, and the
one-line error for non-finite scores.

The study's one figure of merit is `completeness_residual`, the POOLED residual
    sum_x |sum_i IPG_ix - delta_x| / sum_x |delta_x|   over prompts with an advantage,
shown in MLflow, the tables and figures, and bounded by `max_residual`. Why this one: its
denominator is a sum of magnitudes, so it cannot cancel (well-conditioned); every prompt's error
counts (one prompt's error cannot hide behind another's, as in a median); and it is 0 exactly
when the axiom holds on every prompt. Kept as labelled diagnostics, never as the figure of merit:
- completeness_residual_pooled: the same number under its earlier name (older readers);
- completeness_residual_of_mean: |mean_x sum_i IPG_i - mean_x delta_x| / |mean_x delta_x|, the
  residual of the mean, ILL-CONDITIONED: the prompts' delta_x have both signs, so |mean delta|
  can be tiny and the ratio huge (0.894 and 2.75 on study runs whose pooled residual met the
  bound); before this change it was named `completeness_residual`;
- completeness_residual_prompt_median / _max: over prompts with an advantage and delta != 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ipg.errors import IPGError


def completeness(per_prompt: np.ndarray, delta: np.ndarray, nonzero: list[bool]) -> dict[str, Any]:
    """Residual metrics from per-prompt scores [n_prompts, n_units] and delta [n_prompts]."""
    sums = per_prompt.sum(axis=1)  # [n_prompts]
    total, target = float(sums.mean()), float(delta.mean())
    residual = abs(total - target) / abs(target) if target != 0 else (0.0 if total == 0 else float("inf"))
    used = [i for i in range(len(sums)) if nonzero[i]]
    per = [abs(sums[i] - delta[i]) / abs(delta[i]) for i in used if delta[i] != 0]
    scale = float(sum(abs(delta[i]) for i in used))
    pooled = (float(sum(abs(sums[i] - delta[i]) for i in used)) / scale if scale > 0
              else (0.0 if all(sums[i] == 0 for i in used) else float("inf")))
    return {
        "sum_scores": total,
        "phi_delta": target,
        "completeness_residual": pooled,  # THE figure of merit (see the module docstring)
        "completeness_residual_pooled": pooled,
        "completeness_residual_of_mean": residual,  # ill-conditioned diagnostic
        "completeness_residual_prompt_median": float(np.median(per)) if per else None,
        "completeness_residual_prompt_max": float(np.max(per)) if per else None,
    }


def check_bound(pooled: float, max_residual: float | None, m: int, quadrature: str,
                m_max: int | None = None) -> None:
    """One-line IPGError when the figure of merit (`completeness_residual`, the pooled residual)
    exceeds `max_residual` (None: no bound)."""
    if max_residual is not None and pooled > max_residual:
        if quadrature == "adaptive":
            fix = f"raise config key 'm_max' (now {m_max}: prompts stopped at this cap)"
        else:
            hint = "" if quadrature == "gauss_legendre" else " or use quadrature gauss_legendre"
            fix = f"raise config key 'm' (now {m}){hint}"
        raise IPGError(
            f"IPG completeness residual {pooled:.3g} (pooled over prompts) > max_residual "
            f"{max_residual}: {fix}"
        )


def check_finite(prompt_id: str, granularity: str, units: list[str], scores: np.ndarray,
                  phi: float = 0.0, delta: float = 0.0) -> None:
    """One-line IPGError if Phi or any unit's score of a prompt is NaN or infinite."""
    fix = ("the model's activations or gradients overflow or are NaN: check its weights, load "
           "it in float32, and check the trajectory's tokens")
    if not (np.isfinite(phi) and np.isfinite(delta)):
        raise IPGError(f"IPG ({granularity}): non-finite surrogate Phi = {phi} for prompt_id "
                       f"'{prompt_id}'; {fix}")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise IPGError(f"IPG ({granularity}): non-finite score {scores[bad[0]]} for unit "
                       f"'{units[bad[0]]}' ({bad.size} unit(s) in all) of prompt_id "
                       f"'{prompt_id}'; {fix}")
