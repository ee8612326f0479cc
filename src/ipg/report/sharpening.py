"""The sharpening control of one enhanced condition: the unsteered model at the same entropy.

docs/method.md, "Evaluation: paired verdicts on held-out prompts" (sharpening). Enhancing
units may raise accuracy only by sharpening the next-token distribution, which sampling the
unsteered model at a lower temperature also does. The control arms are the unsteered model
at the sampling temperature (selection "none") and at each steering.control_temperatures
(selection "temperature"; steering.control_method's job only), all on the same prompts and
seeds as the steered arm A. Every arm carries per (prompt, seed) its accuracy y and its mean
next-token entropy h (ipg.core.sampling: the entropy of the distribution actually sampled, at that
arm's temperature, so the same quantity in every arm).

Matching: along the control curve ordered by temperature, the adjacent arms C0, C1 whose mean
entropies H0 <= H_A <= H1 bracket A's mean entropy H_A; w = (H_A - H0) / (H1 - H0) and the
control is, per prompt and seed, c = (1 - w) y_C0 + w y_C1. The difference is
D = mean(y_A) - mean(c) = mean(y_A) - (1 - w) mean(y_C0) - w mean(y_C1).

Uncertainty: a bootstrap over prompts (then seeds within prompts, with several seeds) resamples
A, C0 and C1 together (they are paired) and recomputes every mean, w included, on each resample
(w is extrapolated linearly where a resample's H_A leaves [H0, H1]): the interval carries the
noise of both control arms and of the entropy match. p is the two-sided bootstrap p-value of
D = 0, (1 + #{D* on the far side of 0}) / (1 + B), doubled. A resample distribution with no
spread gets the score interval of ipg.study.statistics.degenerate_interval (never zero width).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ipg.study.statistics import degenerate_interval


class Point(NamedTuple):
    """One arm of the control curve: its temperature, label and [P, S] accuracy and entropy."""
    temperature: float
    label: str
    accuracy: np.ndarray
    entropy: np.ndarray


class Bracket(NamedTuple):
    low: Point
    high: Point
    w: float  # weight of `high` at the point estimate


def find_bracket(points: list[Point], entropy: float) -> Bracket | None:
    """The adjacent (in temperature) control arms whose mean entropies bracket `entropy`."""
    pts = sorted(points, key=lambda p: p.temperature)
    for a, b in zip(pts, pts[1:]):
        ha, hb = float(np.nanmean(a.entropy)), float(np.nanmean(b.entropy))
        lo, hi = (a, b) if ha <= hb else (b, a)
        h0, h1 = min(ha, hb), max(ha, hb)
        if h0 <= entropy <= h1 and h1 > h0:
            return Bracket(lo, hi, (entropy - h0) / (h1 - h0))
    return None


def describe_range(points: list[Point]) -> str:
    """'0.41 (T=0.5) .. 1.32 (T=1.3)': the control curve's entropy range, for a row's note."""
    pts = sorted(points, key=lambda p: float(np.nanmean(p.entropy)))
    if not pts:
        return "no control arm"
    lo, hi = pts[0], pts[-1]
    return f"{np.nanmean(lo.entropy):.3g} ({lo.label}) .. {np.nanmean(hi.entropy):.3g} ({hi.label})"


def matched_difference(acc_a: np.ndarray, ent_a: np.ndarray, bracket: Bracket,
                       n_resamples: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> dict[str, Any]:
    """D = A's accuracy - the entropy-matched control's, with its bootstrap interval and p
    (module docstring). Inputs [P, S]; (prompt, seed) cells missing in any arm are dropped by
    prompt. Returns {} with fewer than 2 complete prompts."""
    arrays = [acc_a, ent_a, bracket.low.accuracy, bracket.low.entropy, bracket.high.accuracy,
              bracket.high.entropy]
    keep = np.all([np.isfinite(x).all(1) for x in arrays], axis=0)
    ya, ha, y0, h0, y1, h1 = (np.asarray(x, np.float64)[keep] for x in arrays)
    n_p, n_s = ya.shape
    if n_p < 2:
        return {}

    def diff(m: list[np.ndarray]) -> np.ndarray:
        w = (m[1] - m[3]) / (m[5] - m[3])
        return m[0] - (1 - w) * m[2] - w * m[4]

    stack = np.stack([ya, ha, y0, h0, y1, h1])  # [6, P, S]
    w = float((ha.mean() - h0.mean()) / (h1.mean() - h0.mean()))
    point = float(diff([x.mean() for x in stack]))
    rng = np.random.default_rng(seed)
    p_idx = rng.integers(0, n_p, size=(n_resamples, n_p))  # [B, P]
    if n_s > 1:
        s_idx = rng.integers(0, n_s, size=(n_resamples, n_p, n_s))  # [B, P, S]
        means = [x[p_idx[..., None], s_idx].mean(axis=(1, 2)) for x in stack]  # 6 x [B]
    else:
        means = [x[:, 0][p_idx].mean(axis=1) for x in stack]
    stats = diff(means)  # [B]
    stats = stats[np.isfinite(stats)]
    alpha = (1 - confidence) / 2
    if len(stats) == 0 or np.ptp(stats) <= 1e-12:
        lo, hi = degenerate_interval(point, n_p * n_s, (-1.0, 1.0), confidence)
        p = 1.0 if point == 0 else float(1 / (1 + n_resamples))
    else:
        lo, hi = (float(x) for x in np.quantile(stats, [alpha, 1 - alpha]))
        below = (1 + np.count_nonzero(stats <= 0)) / (1 + len(stats))
        above = (1 + np.count_nonzero(stats >= 0)) / (1 + len(stats))
        p = float(min(1.0, 2 * min(below, above)))
    control = (1 - w) * y0 + w * y1
    return dict(ipg=float(ya.mean()), other=float(control.mean()), diff=point, diff_lo=lo,
                diff_hi=hi, half_width=(hi - lo) / 2, p=p, n_prompts=int(n_p), n_seeds=int(n_s),
                w=w)
