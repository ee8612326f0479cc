"""The cost of a < 1% completeness residual: path points and seconds per quadrature rule.

Completeness (docs/method.md, Eq. 2): sum_i IPG_i = Phi(h) - Phi(h') exactly for the exact
integral, so the residual |sum_i IPG_i - (Phi(h) - Phi(h'))| / |Phi(h) - Phi(h')| measures
the quadrature error alone (off-policy path). For each rule (riemann_mid, gauss_legendre),
m doubles from 1 until the MEDIAN residual over the table's prompts is below the target;
then the engine is timed at each rule's m, interleaved (median of reps). Rows:
  quadrature_points   rule            m reached (or the largest m tried)
  quadrature_residual rule, m         median residual there                <= 0.01
  quadrature_seconds  rule, m         median seconds of the attribution
  quadrature_cost     mid / GL        seconds ratio (how much GL saves); the variant says
                                      which rule, if any, did not reach the target by m_max
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from ipg.bench.workload import interleaved, ipg_run

RULES = ("riemann_mid", "gauss_legendre")
TARGET = 0.01


def _runner(model, table: pd.DataFrame, rule: str, m: int, chunk: int, baseline: str,
            positions: str):
    return ipg_run(model, table, m, min(chunk, m), quadrature=rule, baseline=baseline,
                   positions=positions)


def median_residual(model, table: pd.DataFrame, rule: str, m: int, chunk: int,
                    baseline: str = "zero", positions: str = "all") -> float:
    att = _runner(model, table, rule, m, chunk, baseline, positions)()
    value = att.metrics["completeness_residual_prompt_median"]
    return float("inf") if value is None else float(value)


def quadrature_rows(model, table: pd.DataFrame, shape: tuple[int, int, int, int], m_max: int,
                    chunk: int, reps: int, row: Callable[..., None], baseline: str = "zero",
                    positions: str = "all") -> None:
    """Search m per rule, time both at their m side by side, emit rows via row(...)."""
    found: dict[str, tuple[int, float]] = {}
    for rule in RULES:
        m, res = 1, float("inf")
        while True:
            res = median_residual(model, table, rule, m, chunk, baseline, positions)
            if res < TARGET or m * 2 > m_max:
                break
            m *= 2
        found[rule] = (m, res)
    times = interleaved({rule: _runner(model, table, rule, m, chunk, baseline, positions)
                         for rule, (m, _) in found.items()}, reps)
    n, p, t, _ = shape
    note = f"baseline={baseline}, positions={positions}"
    for rule, (m, res) in found.items():
        row("quadrature_points", f"{rule} ({note})", (n, p, t, m), m, "path points")
        row("quadrature_residual", f"{rule} m={m} (median over prompts)", (n, p, t, m), res,
            "relative", f"<= {TARGET}")
        row("quadrature_seconds", f"{rule} m={m}", (n, p, t, m), times[rule], "seconds")
    a, b = RULES
    missed = [rule for rule, (_, res) in found.items() if not res < TARGET]
    label = (f"{a} / {b} seconds at < {TARGET:g} residual" if not missed else
             f"{a} / {b} seconds; {' and '.join(missed)} did not reach < {TARGET:g} by m={m_max}")
    row("quadrature_cost", label, shape, times[a] / times[b], "ratio")
