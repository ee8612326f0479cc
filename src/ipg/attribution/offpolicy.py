"""Off-policy IPG of one prompt (docs/method.md, Eqs. 1-2): Integrated Gradients of the fixed
surrogate Phi(h) = sum_j (A_j / G) log pi(tau_j; h) along h' + alpha (h - h'), teacher-forced.

Per group of the prompt's trajectories: one recording forward (h), one forward at alpha = 0
(Phi(h'), the completeness target), then the path points in chunks on the batch dimension
(rows [k * G + j]), each chunk one forward and one backward whose gradient taps add
w_k (h - h') * dPhi/dh into the hooks' accumulators (attribution/path.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ipg.attribution.path import PathHooks
from ipg.attribution.surrogate import TeacherBatch, surrogate


def offpolicy_prompt(forward: Callable[[TeacherBatch], Tensor], hooks: PathHooks,
                      batch: TeacherBatch, m_pos: Tensor, adv: Tensor, passes: list[list[int]],
                      mode: str, chunks: list[list[int]], alphas: np.ndarray, weights: np.ndarray,
                      importance: bool, bar: tqdm, traj_chunk: int | None = None
                      ) -> tuple[Tensor, float, float]:
    """IG of one prompt's surrogate into hooks.acc; returns (log pi(tau; h) [G], Phi(h), delta)
    where delta = sum over passes of Phi(h) - Phi(h'_pass) (the completeness target).

    traj_chunk: the G trajectories in groups of that many rows, one after the other. Phi is a
    sum over trajectories (coefficients A_j / G with the prompt's G), so Phi(h), delta and
    every IG sum add up over the groups; memory (the recording, each chunk's graph) is that
    of one group."""
    g = batch.size
    step = g if traj_chunk is None else min(traj_chunk, g)
    coef = adv / g  # A_j / G
    parts = []
    for start in range(0, g, step):
        rows = slice(start, min(start + step, g))
        parts.append(_rows_of_prompt(forward, hooks, batch.rows(rows), m_pos[rows], adv[rows],
                                     coef[rows], passes, mode, chunks, alphas, weights, importance,
                                     lambda: bar.update(step / g if step < g else 1)))
    return (torch.cat([p[0] for p in parts]), sum(p[1] for p in parts), sum(p[2] for p in parts))


def _rows_of_prompt(forward: Callable[[TeacherBatch], Tensor], hooks: PathHooks,
                    batch: TeacherBatch, m_pos: Tensor, adv: Tensor, coef: Tensor,
                    passes: list[list[int]], mode: str, chunks: list[list[int]], alphas: np.ndarray,
                    weights: np.ndarray, importance: bool, tick: Callable[[], None]
                    ) -> tuple[Tensor, float, float]:
    """`_offpolicy_prompt` for a group of one prompt's trajectories (coef: their A_j / G)."""
    g = batch.size
    with torch.no_grad(), hooks.record():
        lp_h = forward(batch)  # log pi(tau_j; h) [G], activations h recorded
    phi_h = float(surrogate(lp_h, coef))
    delta = 0.0
    for pass_layers in passes:
        with torch.no_grad(), hooks.interpolate(torch.zeros(g, device=adv.device), m_pos, mode,
                                                grad=False, layers=pass_layers):
            delta += phi_h - float(surrogate(forward(batch), coef))  # alpha = 0: Phi(h')
        for ks in chunks:  # path points on the batch dimension: rows [k * G + j]
            c = len(ks)
            a_rows = torch.tensor(alphas[ks], device=adv.device).repeat_interleave(g)  # [c*G]
            w = torch.tensor(weights[ks], device=adv.device, dtype=lp_h.dtype)  # [c]
            with hooks.interpolate(a_rows, m_pos, mode, grad=True, layers=pass_layers):
                lp = forward(batch.repeat(c)).view(c, g)  # [c, G]
                if importance:  # self-normalised pi(tau; h_a) / pi(tau; h) replaces 1/G
                    coefs = adv.to(lp.dtype) * torch.softmax(lp.detach() - lp_h, dim=1)
                else:
                    coefs = coef.to(lp.dtype).expand(c, g)
                objective = (w[:, None] * coefs * lp).sum()  # sum_k w_k Phi(h_{a_k})
                if objective.requires_grad:
                    objective.backward()  # tensor hooks add w_k (h - h') * grad to hooks.acc
            tick()
    return lp_h, phi_h, delta
