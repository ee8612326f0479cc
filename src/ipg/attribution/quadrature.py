"""Quadrature rules on [0, 1] for the path integral of Eq. 2 (docs/method.md, "Quadrature").

    integral_0^1 f(a) da  ~=  sum_k w_k f(a_k)

Fixed rules (`nodes_weights`):
- `gauss_legendre`: exact for polynomials of degree 2m - 1; reaches a < 1% completeness
  residual with about half the points of the midpoint rule.
- `riemann_left` / `riemann_mid` / `riemann_right`: a_k = k/m, (k + 1/2)/m, (k + 1)/m with
  w_k = 1/m (captum's riemann_* rules).

Adaptive rule (`adaptive_integrate`, `quadrature: adaptive`): nested Clenshaw-Curtis levels
(2^L + 1 Chebyshev points, both endpoints included, nodes clustered toward alpha = 0 and 1 where
the integrand changes fastest); each level reuses every node of the one before and adds 2^(L-1).
It stops at the first level whose estimate passes both tests, or at the cap m_max:
- nested: the error of the vector of unit scores Q_L, estimated from the differences of
  successive levels d_L = ||Q_L - Q_{L-1}||_1 as d_L * min(1, r / (1 - r)), r = d_L / d_{L-1}
  (geometric extrapolation; d_L itself when the levels do not yet converge), is <= tol * ||Q_L||_1;
- completeness: |sum_i Q_L,i - exact| <= tol * |exact|, exact = Phi(h) - Phi(h') (Eq. 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ipg.errors import IPGError

FIXED_QUADRATURES = ("gauss_legendre", "riemann_left", "riemann_mid", "riemann_right")
ADAPTIVE = "adaptive"
QUADRATURES = (*FIXED_QUADRATURES, ADAPTIVE)
FIRST_LEVEL = 2  # 5 nodes: the first estimate is compared with the 3-node (Simpson) level


def nodes_weights(kind: str, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas [m], weights [m]) of a fixed rule in float64; the weights sum to 1."""
    if kind not in FIXED_QUADRATURES:
        raise IPGError(f"unknown fixed quadrature '{kind}'; allowed: {', '.join(FIXED_QUADRATURES)}")
    if int(m) != m or m < 1:
        raise IPGError(f"quadrature points m must be an integer >= 1, got {m}")
    m = int(m)
    if kind == "gauss_legendre":
        x, w = np.polynomial.legendre.leggauss(m)  # on [-1, 1]
        return (x + 1.0) / 2.0, w / 2.0
    k = np.arange(m, dtype=np.float64)
    offset = {"riemann_left": 0.0, "riemann_mid": 0.5, "riemann_right": 1.0}[kind]
    return (k + offset) / m, np.full(m, 1.0 / m)


def clenshaw_curtis(level: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas [2^level + 1], weights) of the Clenshaw-Curtis rule on [0, 1], alphas increasing;
    exact for polynomials of degree 2^level (level 0: the trapezoid rule). Weights: Waldvogel's
    closed form."""
    if int(level) != level or level < 0:
        raise IPGError(f"Clenshaw-Curtis level must be an integer >= 0, got {level}")
    if level == 0:
        return np.array([0.0, 1.0]), np.array([0.5, 0.5])
    n = 2 ** int(level)
    j = np.arange(n + 1)
    k = np.arange(1, n // 2 + 1)
    b = np.where(k == n // 2, 1.0, 2.0)
    c = np.where((j == 0) | (j == n), 1.0, 2.0)
    cos = np.cos(2.0 * np.outer(j, k) * np.pi / n)  # [n + 1, n / 2]
    w = c / n * (1.0 - cos @ (b / (4.0 * k**2 - 1.0)))  # on [-1, 1], sum 2
    return (1.0 - np.cos(j * np.pi / n)) / 2.0, w / 2.0


def level_for(m_max: int) -> int:
    """The finest Clenshaw-Curtis level with at most m_max nodes (m_max >= 5)."""
    return int(np.floor(np.log2(m_max - 1)))


@dataclass
class AdaptiveResult:
    estimate: np.ndarray  # [n] the finest level's integral of the vector integrand
    alphas: np.ndarray  # [n_nodes] every node evaluated, increasing
    nested_error: float  # estimated ||Q_L - Q||_1 / ||Q_L||_1 (module docstring)
    completeness_error: float | None  # |sum Q_L - exact| / |exact| (None: no exact value)
    converged: bool  # both tests passed before the cap

    @property
    def n_nodes(self) -> int:
        return int(len(self.alphas))


def _rel(err: float, scale: float) -> float:
    return 0.0 if err == 0 else (err / scale if scale > 0 else float("inf"))


def adaptive_integrate(f: Callable[[np.ndarray], np.ndarray], tol: float, m_max: int,
                       exact: float | None = None) -> AdaptiveResult:
    """Integral over [0, 1] of f (alphas [k] -> values [k, n], float64) by nested Clenshaw-Curtis
    levels: every node is evaluated once, new nodes of a level in one call to f (the caller
    batches them); stops when the nested and completeness tests pass (module docstring) or the
    next level would exceed m_max nodes."""
    if not 0 < tol < 1:
        raise IPGError(f"adaptive quadrature tol must be in (0, 1), got {tol}")
    if int(m_max) != m_max or m_max < 2**FIRST_LEVEL + 1:
        raise IPGError(f"adaptive quadrature m_max must be an integer >= {2**FIRST_LEVEL + 1}, got {m_max}")
    level, top = FIRST_LEVEL, level_for(int(m_max))
    alphas = clenshaw_curtis(level)[0]
    values = np.asarray(f(alphas), dtype=np.float64)  # [2^level + 1, n], rows in alpha order
    q_prev = clenshaw_curtis(level - 1)[1] @ values[::2]
    d_prev = float(np.abs(q_prev - clenshaw_curtis(level - 2)[1] @ values[::4]).sum())
    while True:
        q = clenshaw_curtis(level)[1] @ values
        d = float(np.abs(q - q_prev).sum())
        r = d / d_prev if d_prev > 0 else 1.0
        nested = _rel(d * min(1.0, r / (1.0 - r)) if r < 1 else d, float(np.abs(q).sum()))
        comp = None if exact is None else _rel(abs(float(q.sum()) - exact), abs(exact))
        ok = nested <= tol and (comp is None or comp <= tol)
        if ok or level >= top:
            return AdaptiveResult(q, alphas, nested, comp, ok)
        level += 1
        new_alphas = clenshaw_curtis(level)[0][1::2]  # the odd nodes of the finer level
        new = np.asarray(f(new_alphas), dtype=np.float64)
        merged = np.empty((2 * len(values) - 1, values.shape[1]))
        merged[::2], merged[1::2] = values, new
        values, alphas, q_prev, d_prev = merged, clenshaw_curtis(level)[0], q, d
