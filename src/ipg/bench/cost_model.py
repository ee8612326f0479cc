"""Cost model of the paper architecture: counted FLOPs and bytes -> time and peak memory.

Work of one run (ipg.bench.paper_arch.Arch counts; docs/method.md, Cost at the paper's scale):
  sample / steer  prefill forward (P tokens, one logit row) + T decode steps over rows = n G
                  sequences: FLOPs = linear + attention (query 1, keys = context) + LM head;
                  bytes = per step the weights and the KV cache of the context read once
  ipg             per prompt and trajectory group of g = traj_chunk: ceil(m / chunk) path
                  passes + 2 endpoint forwards, each on rows = chunk x g sequences of P + T
                  tokens; FLOPs = k_ipg . [m x decoder-layer forward FLOPs, m x LM-head
                  forward FLOPs, one forward (the endpoints)] of the G sequences, k_ipg (the
                  engine's work per unit of each: forward, backward as far as the first
                  attributed layer, checkpoint recompute, endpoints) fitted by non-negative
                  least squares on counted FLOPs (without attention on both sides: torch's
                  counter does not see the CPU sdpa kernel)
Time:   t = FLOPs / F + bytes / B + passes x o      (F FLOP/s, B bytes/s, o s per model call)
        fitted by non-negative least squares on the CPU points (CPU seconds, one thread);
        on a GPU F, B, o are the explicit assumptions of ipg.bench.paper_plan.GPU.
Memory: peak above the weights = c0 + sum_i c_i x feature_i, per workload, fitted on the CPU
        points; features in bytes: the KV cache and the logits rows (sample), the stored
        per-layer tensors L x S x (g d_ff + rows d), the LM-head chunk and one recomputed
        layer's intermediates rows x S x (3 d_ff + 4 d) (ipg).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ipg.bench.paper_arch import Arch

# forward + recompute + backward per path point, two endpoint forwards (without a fit)
DEFAULT_K_IPG = np.array([3.0, 2.0, 2.0])
POS_CHUNK = 256  # IPGConfig.pos_chunk default: positions per LM-head chunk
F32 = 4


@dataclass(frozen=True)
class Work:
    """One run's shape."""

    what: str  # sample | steer | ipg
    layers: int
    prompt_len: int
    gen_len: int
    G: int
    n_prompts: int = 1
    m: int = 1
    chunk: int = 1
    traj_chunk: int | None = None
    separate_layers: int = 1  # multilayer 'separate': one integration per layer

    @property
    def seq(self) -> int:
        return self.prompt_len + self.gen_len

    @property
    def group(self) -> int:
        return min(self.traj_chunk or self.G, self.G)


def work_of(row: dict[str, Any]) -> Work:
    return Work(row["what"], int(row["layers"]), int(row["prompt_len"]), int(row["gen_len"]),
                int(row["G"]), int(row.get("n_prompts", 1)), int(row.get("m", 1)),
                int(row.get("chunk", 1)), _opt_int(row.get("traj_chunk")))


def _opt_int(x: Any) -> int | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else int(x)


def ipg_terms(arch: Arch, w: Work, attention: bool = True) -> np.ndarray:
    """[m x layers' forward, m x LM-head forward, one forward] FLOPs of the G sequences of each
    prompt (x separate_layers), the terms k_ipg weighs."""
    rows = w.n_prompts * w.G
    layers = arch.linear_flops(rows * w.seq) + (arch.attention_flops(rows, w.seq, w.seq) if attention else 0.0)
    head = arch.head_flops(rows * w.gen_len)
    return w.separate_layers * np.array([w.m * layers, w.m * head, layers + head])


def base_flops(arch: Arch, w: Work, attention: bool = True) -> float:
    """Analytic FLOPs: sampling exactly; IPG one forward per path point (the fitted model weighs
    ipg_terms instead). attention False leaves out QK^T and AV (what torch's counter sees on
    a CPU)."""
    a = 1.0 if attention else 0.0
    if w.what in ("sample", "steer"):
        rows = w.n_prompts * w.G
        prefill = (arch.linear_flops(w.n_prompts * w.prompt_len)
                   + a * arch.attention_flops(w.n_prompts, w.prompt_len, w.prompt_len)
                   + arch.head_flops(w.n_prompts))
        ctx = w.prompt_len + np.arange(1, w.gen_len)  # keys of decode steps 1 .. T-1
        decode = (arch.linear_flops(rows * (w.gen_len - 1)) + arch.head_flops(rows * (w.gen_len - 1))
                  + a * 4.0 * rows * float(ctx.sum()) * arch.hidden * arch.layers)
        return prefill + decode
    fwd = arch.forward_flops(w.n_prompts * w.G, w.seq, w.gen_len, attention)
    return w.m * w.separate_layers * fwd


def passes(w: Work) -> int:
    """Model calls: sampling T (prefill + T - 1 steps); IPG per prompt and group ceil(m/c) + 2."""
    if w.what in ("sample", "steer"):
        return w.gen_len
    groups = math.ceil(w.G / w.group)
    return w.n_prompts * groups * w.separate_layers * (math.ceil(w.m / w.chunk) + 2)


def bytes_moved(arch: Arch, w: Work, bytes_per: int) -> float:
    """Weights read per model call, plus (sampling) the KV cache read at every decode step."""
    total = passes(w) * arch.weight_bytes(bytes_per)
    if w.what in ("sample", "steer"):
        ctx = w.prompt_len + np.arange(1, w.gen_len)
        total += w.n_prompts * w.G * float(ctx.sum()) * arch.kv_bytes_per_token(bytes_per)
    return total


def memory_features(arch: Arch, w: Work, bytes_per: int = F32) -> np.ndarray:
    """Bytes, see the module docstring: sampling [1, KV cache, logits rows]; IPG [1, stored
    per-layer tensors, LM-head chunk, one recomputed layer's intermediates]."""
    if w.what in ("sample", "steer"):
        rows = w.n_prompts * w.G
        return np.array([1.0, rows * w.seq * arch.kv_bytes_per_token(bytes_per),
                         rows * arch.vocab * F32])
    rows = w.chunk * w.group
    stored = w.layers * w.seq * (w.group * arch.intermediate + rows * arch.hidden) * F32
    head = rows * min(w.gen_len, POS_CHUNK) * arch.vocab * F32
    layer = rows * w.seq * (3 * arch.intermediate + 4 * arch.hidden) * F32
    return np.array([1.0, stored, head, layer])


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    scale = np.maximum(np.abs(x).max(0), 1e-30)  # columns of very different magnitude
    coef, _ = nnls(x / scale, y)
    return coef / scale


@dataclass
class Fit:
    """Fitted CPU cost model (k_ipg, 1/F, 1/B, o; memory coefficients per workload)."""

    k_ipg: np.ndarray  # weights of ipg_terms
    time_coef: np.ndarray  # [1/F s per FLOP, 1/B s per byte, o s per call]
    mem_coef: dict[str, np.ndarray]  # workload family -> [c0 MiB, c1, c2 per byte -> MiB]

    def flops(self, arch: Arch, w: Work) -> float:
        return float(ipg_terms(arch, w) @ self.k_ipg) if w.what == "ipg" else base_flops(arch, w)

    def time_features(self, arch: Arch, w: Work, bytes_per: int) -> np.ndarray:
        return np.array([self.flops(arch, w), bytes_moved(arch, w, bytes_per), passes(w)])

    def seconds(self, arch: Arch, w: Work, bytes_per: int = F32) -> float:
        return float(self.time_features(arch, w, bytes_per) @ self.time_coef)

    def peak_mib(self, arch: Arch, w: Work, bytes_per: int = F32) -> float:
        fam = "ipg" if w.what == "ipg" else "sample"
        return float(memory_features(arch, w, bytes_per) @ self.mem_coef[fam])


def fit(rows: list[dict[str, Any]], arch_of) -> Fit:
    """Fit on measured rows (ipg.bench.paper_scale results); arch_of(row) -> Arch."""
    ipg = [r for r in rows if r["what"] == "ipg"]
    # counted FLOPs on the analytic terms, both without attention (the CPU counter does not see it)
    k = _nnls(np.array([ipg_terms(arch_of(r), work_of(r), attention=False) for r in ipg]),
              np.array([r["flops"] for r in ipg])) if len(ipg) >= 3 else DEFAULT_K_IPG
    tmp = Fit(np.asarray(k, dtype=float), np.zeros(3), {})
    x = np.array([tmp.time_features(arch_of(r), work_of(r), _bytes(r)) for r in rows])
    y = np.array([r["cpu_seconds"] for r in rows])
    mem = {}
    for fam, sel in (("sample", lambda r: r["what"] != "ipg"), ("ipg", lambda r: r["what"] == "ipg")):
        sub = [r for r in rows if sel(r)]
        if sub:
            xm = np.array([memory_features(arch_of(r), work_of(r), _bytes(r)) for r in sub])
            mem[fam] = _nnls(xm, np.array([r["peak_mib"] - r["base_mib"] for r in sub]))
    return Fit(k, _nnls(x, y), mem)


def _bytes(row: dict[str, Any]) -> int:
    return 2 if row.get("dtype") == "bfloat16" else F32


def loo_errors(rows: list[dict[str, Any]], arch_of) -> list[tuple[float, float]]:
    """Leave-one-out relative errors (time, memory) of each row: fit without it, predict it."""
    out = []
    for i, r in enumerate(rows):
        rest = rows[:i] + rows[i + 1:]
        f = fit(rest, arch_of)
        w, a = work_of(r), arch_of(r)
        t = f.seconds(a, w, _bytes(r)) / r["cpu_seconds"] - 1
        fam = "ipg" if r["what"] == "ipg" else "sample"
        mem = (f.peak_mib(a, w, _bytes(r)) / max(r["peak_mib"] - r["base_mib"], 1e-9) - 1
               if fam in f.mem_coef else float("nan"))
        out.append((t, mem))
    return out
