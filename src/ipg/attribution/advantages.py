"""Advantages A_j of the G trajectories sampled for one prompt (the R(tau) - b of Eq. 1).

docs/method.md, Eq. 1, advantages:
- `loo` (default): leave-one-out baseline A_j = R_j - mean_{k != j} R_k. The baseline of
  sample j does not depend on tau_j, so (1/G) sum_j A_j grad log pi(tau_j) is an UNBIASED
  estimate of dJ/dh (Eq. 1). Equals G/(G-1) * (R_j - mean_k R_k).
- `grpo`: (R_j - mean) / (std + eps), std the sample standard deviation (as TRL's GRPO);
  biased, kept because the paper's appendix reportedly uses it.
- `raw`: A_j = R_j (b = 0): unbiased, high variance.
Prompts whose G rewards are all equal get A = 0 under loo and grpo: they contribute zero.

Rewards of a trajectory table are grouped by prompt with `group_rewards`; prompts may have
different numbers of samples G (the short rows are padded and masked).
"""
from __future__ import annotations

from typing import Literal

import pandas as pd
import torch
from torch import Tensor

from ipg.errors import IPGError

ADVANTAGES = ("loo", "grpo", "raw")
AdvantageKind = Literal["loo", "grpo", "raw"]


def advantages(
    rewards: Tensor,
    kind: AdvantageKind = "loo",
    eps: float = 1e-6,
    mask: Tensor | None = None,
) -> Tensor:
    """Advantages [n_prompts, G] from rewards [n_prompts, G] (one row per prompt).

    `mask` [n_prompts, G] (bool) marks real samples when rows have different G; padded
    entries get advantage 0. Computed in float64, returned in the rewards' float dtype.
    """
    if kind not in ADVANTAGES:
        raise IPGError(f"unknown advantage '{kind}'; allowed: {', '.join(ADVANTAGES)}")
    if rewards.ndim != 2:
        raise IPGError(f"rewards must be [n_prompts, G], got shape {tuple(rewards.shape)}")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    r = rewards.to(torch.float64)
    m = torch.ones_like(r, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    if m.shape != r.shape:
        raise IPGError(f"mask shape {tuple(m.shape)} != rewards shape {tuple(r.shape)}")
    r = torch.where(m, r, torch.zeros_like(r))
    if torch.isnan(r).any():
        raise IPGError("rewards contain NaN; every trajectory needs a finite reward")
    g = m.sum(dim=1, keepdim=True).to(torch.float64)  # [n_prompts, 1] samples per prompt
    if kind == "raw":
        return torch.where(m, r, torch.zeros_like(r)).to(out_dtype)
    if (g < 2).any():
        bad = int((g.squeeze(1) < 2).nonzero()[0, 0])
        raise IPGError(
            f"advantage '{kind}' needs G >= 2 samples per prompt (prompt row {bad} has "
            f"{int(g[bad, 0])}); sample more per prompt or set advantage: raw"
        )
    total = r.sum(dim=1, keepdim=True)  # [n_prompts, 1]
    if kind == "loo":
        a = r - (total - r) / (g - 1)
    else:  # grpo
        mean = total / g
        var = (((r - mean) ** 2) * m).sum(dim=1, keepdim=True) / (g - 1)
        a = (r - mean) / (var.sqrt() + eps)
    return torch.where(m, a, torch.zeros_like(a)).to(out_dtype)


def group_rewards(
    frame: pd.DataFrame, column: str
) -> tuple[list[str], Tensor, Tensor, list[pd.DataFrame]]:
    """Group a trajectory table by prompt.

    Returns (prompt_ids in order of first appearance, rewards [n_prompts, G_max] float64
    zero-padded, mask [n_prompts, G_max] bool, the rows of each prompt sorted by sample_id).
    """
    for key in ("prompt_id", "sample_id", column):
        if key not in frame.columns:
            raise IPGError(
                f"trajectory table has no column '{key}'; it needs prompt_id, sample_id and "
                f"{column} (produced by the trajectory stage)"
            )
    if frame.empty:
        raise IPGError("trajectory table is empty: there is nothing to attribute")
    groups = [
        rows.sort_values("sample_id", kind="stable")
        for _, rows in frame.groupby("prompt_id", sort=False)
    ]
    prompt_ids = [str(rows["prompt_id"].iloc[0]) for rows in groups]
    g_max = max(len(rows) for rows in groups)
    rewards = torch.zeros(len(groups), g_max, dtype=torch.float64)
    mask = torch.zeros(len(groups), g_max, dtype=torch.bool)
    for i, rows in enumerate(groups):
        rewards[i, : len(rows)] = torch.tensor(rows[column].to_numpy(dtype="float64"))
        mask[i, : len(rows)] = True
    return prompt_ids, rewards, mask, groups
