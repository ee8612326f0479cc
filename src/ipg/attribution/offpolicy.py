"""Off-policy IPG of one prompt (docs/method.md, Eqs. 1-2): Integrated Gradients of the fixed
surrogate Phi(h) = sum_j (A_j / G) log pi(tau_j; h) along h' + alpha (h - h'), teacher-forced.

Per group of the prompt's trajectories: one recording forward (h), one forward at alpha = 0
(Phi(h'), the completeness target), then the path points in chunks on the batch dimension
(rows [k * G + j]), each chunk one forward and one backward whose gradient taps add
w_k (h - h') * dPhi/dh into the hooks' accumulators (attribution/path.py).

The path points follow a rule: `FixedRule` (nodes and weights known in advance: the weights go
into the objective) or `AdaptiveRule` (nested Clenshaw-Curtis levels per prompt, group and pass,
docs/method.md "Quadrature": each node's terms are kept, re-weighted at the end, and the level
stops on the completeness identity and the nested error estimate).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ipg.attribution.path import PathHooks
from ipg.attribution.quadrature import adaptive_integrate
from ipg.attribution.surrogate import TeacherBatch, surrogate

Forward = Callable[[TeacherBatch], Tensor]


@dataclass
class FixedRule:
    alphas: np.ndarray  # [m]
    weights: np.ndarray  # [m]
    chunk: int  # path points per batch

    def chunks(self) -> list[list[int]]:
        m = len(self.alphas)
        return [list(range(s, min(s + self.chunk, m))) for s in range(0, m, self.chunk)]


@dataclass
class AdaptiveRule:
    tol: float  # completeness and nested-error target (quadrature.adaptive_integrate)
    m_max: int  # cap on the nodes of one prompt's path (per pass and trajectory group)
    chunk: int  # path points per batch


Rule = FixedRule | AdaptiveRule


@dataclass
class PromptPath:
    """One prompt's off-policy results besides the scores in hooks.acc."""

    lp_h: Tensor  # log pi(tau_j; h) [G]
    phi_h: float  # Phi(h)
    delta: float  # sum over passes of Phi(h) - Phi(h'_pass): the completeness target
    path_points: int  # path points evaluated (forward + backward), over passes and groups
    nested_error: float | None  # adaptive: the largest estimated relative error (None: fixed)


def offpolicy_prompt(forward: Forward, hooks: PathHooks, batch: TeacherBatch, m_pos: Tensor,
                      adv: Tensor, passes: list[list[int]], mode: str, rule: Rule,
                      importance: bool, bar: tqdm, traj_chunk: int | None = None) -> PromptPath:
    """IG of one prompt's surrogate into hooks.acc.

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
                                     coef[rows], passes, mode, rule, importance,
                                     lambda: bar.update(step / g if step < g else 1)))
    errors = [p.nested_error for p in parts if p.nested_error is not None]
    return PromptPath(torch.cat([p.lp_h for p in parts]), sum(p.phi_h for p in parts),
                      sum(p.delta for p in parts), sum(p.path_points for p in parts),
                      max(errors) if errors else None)


def _rows_of_prompt(forward: Forward, hooks: PathHooks, batch: TeacherBatch, m_pos: Tensor,
                    adv: Tensor, coef: Tensor, passes: list[list[int]], mode: str, rule: Rule,
                    importance: bool, tick: Callable[[], None]) -> PromptPath:
    """`offpolicy_prompt` for a group of one prompt's trajectories (coef: their A_j / G)."""
    g = batch.size
    with torch.no_grad(), hooks.record():
        lp_h = forward(batch)  # log pi(tau_j; h) [G], activations h recorded
    phi_h = float(surrogate(lp_h, coef))
    delta, points, errors = 0.0, 0, []
    for pass_layers in passes:
        with torch.no_grad(), hooks.interpolate(torch.zeros(g, device=adv.device), m_pos, mode,
                                                grad=False, layers=pass_layers):
            delta_pass = phi_h - float(surrogate(forward(batch), coef))  # alpha = 0: Phi(h')
        delta += delta_pass
        chunk = _Chunk(forward, hooks, batch, m_pos, adv, coef, lp_h, mode, pass_layers,
                       importance, tick)
        if isinstance(rule, FixedRule):
            for ks in rule.chunks():
                chunk(rule.alphas[ks], rule.weights[ks])
            points += len(rule.alphas)
        else:
            res = adaptive_integrate(chunk.terms(rule.chunk), rule.tol, rule.m_max, delta_pass)
            _add_scores(hooks, pass_layers, res.estimate)
            points += res.n_nodes
            errors.append(res.nested_error)
    return PromptPath(lp_h, phi_h, delta, points, max(errors) if errors else None)


@dataclass
class _Chunk:
    """Path points of one pass on the batch dimension: one forward and one backward."""

    forward: Forward
    hooks: PathHooks
    batch: TeacherBatch
    m_pos: Tensor
    adv: Tensor
    coef: Tensor
    lp_h: Tensor
    mode: str
    layers: list[int]
    importance: bool
    tick: Callable[[], None]

    def __call__(self, alphas: np.ndarray, weights: np.ndarray) -> None:
        """Add sum_k w_k (h - h') * dPhi/dh(h_{alpha_k}) to hooks.acc (or hooks.points)."""
        g, c, dev = self.batch.size, len(alphas), self.adv.device
        a_rows = torch.tensor(alphas, device=dev).repeat_interleave(g)  # [c * G]
        w = torch.tensor(weights, device=dev, dtype=self.lp_h.dtype)  # [c]
        with self.hooks.interpolate(a_rows, self.m_pos, self.mode, grad=True, layers=self.layers):
            lp = self.forward(self.batch.repeat(c)).view(c, g)  # [c, G]
            if self.importance:  # self-normalised pi(tau; h_a) / pi(tau; h) replaces 1/G
                coefs = self.adv.to(lp.dtype) * torch.softmax(lp.detach() - self.lp_h, dim=1)
            else:
                coefs = self.coef.to(lp.dtype).expand(c, g)
            objective = (w[:, None] * coefs * lp).sum()  # sum_k w_k Phi(h_{a_k})
            if objective.requires_grad:
                objective.backward()  # tensor hooks add w_k (h - h') * grad to hooks.acc
        self.tick()

    def terms(self, chunk: int) -> Callable[[np.ndarray], np.ndarray]:
        """alphas [k] -> (h - h') * dPhi/dh at each alpha, [k, units of the pass] float64, in
        batches of `chunk` path points (the integrand of adaptive_integrate)."""
        sizes = [self.hooks.acc[l].shape[0] for l in self.layers]

        def f(alphas: np.ndarray) -> np.ndarray:
            out = []
            for s in range(0, len(alphas), chunk):
                part = alphas[s: s + chunk]
                self.hooks.per_point, self.hooks.points = True, {}
                try:
                    self(part, np.ones(len(part)))
                finally:
                    self.hooks.per_point = False
                rows = [self.hooks.points[l].view(len(part), self.batch.size, -1).sum(1)
                        if l in self.hooks.points else torch.zeros(len(part), n)
                        for l, n in zip(self.layers, sizes)]  # a layer off the graph: zeros
                out.append(torch.cat([r.double().cpu() for r in rows], dim=1).numpy())
            return np.concatenate(out)

        return f


def _add_scores(hooks: PathHooks, layers: list[int], scores: np.ndarray) -> None:
    """Add a pass's integrated scores [units of the layers, in order] to hooks.acc."""
    start = 0
    for l in layers:
        acc = hooks.acc[l]
        n = acc.shape[0]
        hooks.acc[l] = acc + torch.from_numpy(scores[start: start + n]).to(acc.dtype).to(acc.device)
        start += n
