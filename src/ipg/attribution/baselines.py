"""The baseline attribution methods IPG is compared against, at the same granularity
(docs/method.md, "Baselines"): Act, Freq, GxA, Contrastive and
Random. IG-likelihood (Integrated Gradients of the plain log-likelihood, A_j = 1) reuses the
IPG engine and lives in methods.py. Every method reads units through ipg.core.units and
returns the same Attribution table as IPG, with per-prompt scores [n_prompts, n_units].

Notation: a = unit activation [b, pos, units, unit_dim] (units.Granularity.read),
|a| its L2 norm over unit_dim (|a| for scalar units: neurons, SAE latents), P the
counted positions (`positions`: all real tokens, or generated tokens only).

    act          S_i(x) = mean over P of the prompt's trajectories of |a_i|
    freq         S_i(x) = fraction of P where unit i is active:
                   scalar units: a_i > threshold (default 0);
                   vector units (heads, layers): |a_i| > threshold when `threshold` is set,
                   else (default) |a_i| > the mean |a| of its peers at that position
                   (heads: the heads of its layer; layers: the selected layers, so at
                   least two are needed). A vector unit always has |a| > 0, so a fixed
                   default threshold would make every unit active everywhere.
    gxa          S_i(x) = (1/G) sum_j sum_{t in P} a_i * d log pi(tau_j)/d a_i
                        = (1/G) sum_j d/ds log pi(tau_j; a_i -> s a_i) at s = 1
                 (plain log-likelihood, A_j = 1; one forward + one backward per batch)
    contrastive  m_j = mean over P of trajectory j of a; d = mean_{j in high} m_j -
                 mean_{j in low} m_j over the whole table (accuracy: reward 1 vs 0; length:
                 above vs at-or-below the median). Scalar units: S_i = d_i (signed).
                 Vector units: S_i = |d_i| (direction-free). Per-prompt scores c_p =
                 n_prompts (sum_{j in high, p} m_j / N_high - sum_{j in low, p} m_j / N_low),
                 projected on d_i / |d_i| for vector units, so mean_p c_p = S exactly.
    random       per-prompt scores i.i.d. N(0, 1) from a seeded generator: the mean over
                 prompts is exchangeable, so top-k is a uniformly random k-subset.

Trajectories are batched per prompt (its G rows, right-padded; `batch_size` rows at most),
one forward per batch (+ one backward for gxa); hooks reduce to float64 [units] accumulators,
no per-token tensor outlives its batch; parameters are frozen.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ipg.attribution.ipg import _frozen, _temperature
from ipg.attribution.baseline_config import KEYS, BaselineConfig
from ipg.attribution.surrogate import TeacherBatch, build_batch, sequence_logprobs
from ipg.attribution.table import Attribution, make_attribution
from ipg.attribution.tap import tap
from ipg.core.units import Granularity, edit_activations, get_granularity, parse_unit
from ipg.errors import IPGError


# -- shared plumbing ----------------------------------------------------------------------------
def _setup(model: nn.Module, trajectories: pd.DataFrame, granularity: str, cfg: BaselineConfig,
           sae: Any) -> tuple[Granularity, list[int], list[str], list[pd.DataFrame]]:
    """Granularity, selected layers, prompt ids and each prompt's rows (sorted by sample_id),
    in the order IPG uses (ipg.attribution.advantages.group_rewards: first appearance)."""
    for key in ("prompt_id", "sample_id"):
        if key not in trajectories.columns:
            raise IPGError(f"trajectory table has no column '{key}' (produced by the trajectory stage)")
    if trajectories.empty:
        raise IPGError("trajectory table is empty: there is nothing to attribute")
    gran = get_granularity(granularity, model, sae)
    layers = gran.select_layers(cfg.layers)
    groups = [rows.sort_values("sample_id", kind="stable")
              for _, rows in trajectories.groupby("prompt_id", sort=False)]
    return gran, layers, [str(g["prompt_id"].iloc[0]) for g in groups], groups


def _prompt_batches(rows: pd.DataFrame, cfg: BaselineConfig, device: torch.device) -> list[TeacherBatch]:
    """One prompt's trajectories as teacher-forcing batches of at most batch_size rows."""
    for key in ("prompt_ids", "gen_ids"):
        if key not in rows.columns:
            raise IPGError(f"trajectory table has no column '{key}' (produced by the trajectory stage)")
    prompts = {tuple(int(t) for t in p) for p in rows["prompt_ids"]}
    if len(prompts) != 1:
        raise IPGError(f"prompt_id '{rows['prompt_id'].iloc[0]}' has rows with different prompt_ids")
    prompt, gens = list(prompts.pop()), list(rows["gen_ids"])
    size = cfg.batch_size or len(gens)
    return [build_batch(prompt, gens[s : s + size], device, cfg.pad_id) for s in range(0, len(gens), size)]


def _mask(batch: TeacherBatch, cfg: BaselineConfig) -> Tensor:
    """[b, pos] bool: the counted positions."""
    return batch.attention_mask.bool() if cfg.positions == "all" else batch.gen_mask


def _scan(model: nn.Module, gran: Granularity, layers: list[int], groups: list[pd.DataFrame],
          cfg: BaselineConfig, reduce: Callable[[int, int, int, Tensor, Tensor], None],
          desc: str, progress: bool, after_batch: Callable[[int], None] | None = None) -> None:
    """One unmodified forward per batch; reduce(prompt, first_row, layer, a [b, pos, units,
    unit_dim], mask [b, pos]) runs inside the hooks (a detached; first_row: the batch's first
    row within its prompt), after_batch(prompt) after the forward."""
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    device = next(model.parameters()).device
    state: dict[str, Any] = {}

    def make(layer: int):
        def fn(x: Tensor) -> None:
            reduce(state["i"], state["row"], layer, gran.read(layer, x).detach(), state["mask"])
        return fn

    with torch.no_grad():
        for i, rows in enumerate(tqdm(groups, desc=desc, unit="prompt", disable=not progress)):
            row = 0
            for batch in _prompt_batches(rows, cfg, device):
                state.update(i=i, row=row, mask=_mask(batch, cfg))
                with edit_activations(gran, {l: make(l) for l in layers}):
                    base(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
                if after_batch is not None:
                    after_batch(i)
                row += batch.size


def _modules(model: nn.Module, sae: Any) -> list[Any]:
    """The model and its SAEs (frozen together)."""
    return [model, *(sae if isinstance(sae, (list, tuple)) else [sae])]


def _norms(a: Tensor) -> Tensor:
    """|a| over unit_dim in float64: [b, pos, units]."""
    return a.to(torch.float64).norm(dim=-1)


def _finish(gran: Granularity, layers: list[int], prompt_ids: list[str], per_prompt: np.ndarray,
            kind: str, cfg: BaselineConfig, start: float, n_traj: int, **extra: Any) -> Attribution:
    units = gran.unit_ids(layers)
    parsed = [parse_unit(u) for u in units]
    metrics = {"method": kind, "granularity": gran.name, "layers": layers, "n_units": len(units),
               "n_prompts": len(prompt_ids), "n_trajectories": n_traj,
               "params": {k: getattr(cfg, k) for k in KEYS[kind]}, **extra,
               "config": asdict(cfg), "wall_seconds": time.perf_counter() - start}
    return make_attribution(units, [p[1] for p in parsed], [p[2] for p in parsed], per_prompt,
                            prompt_ids, gran.name, kind, metrics)


def _concat(acc: dict[int, Tensor], layers: list[int]) -> np.ndarray:
    return torch.cat([acc[l] for l in layers], dim=-1).cpu().numpy()


# -- the methods --------------------------------------------------------------------------------
def act(model: nn.Module, trajectories: pd.DataFrame, granularity: str, cfg: BaselineConfig,
        sae: Any = None, progress: bool = True) -> Attribution:
    """Mean activation magnitude |a_i| over the counted positions (correlational)."""
    return _magnitude("act", model, trajectories, granularity, cfg, sae, progress)


def freq(model: nn.Module, trajectories: pd.DataFrame, granularity: str, cfg: BaselineConfig,
         sae: Any = None, progress: bool = True) -> Attribution:
    """Fraction of counted positions where the unit is active (threshold rule in the docstring)."""
    return _magnitude("freq", model, trajectories, granularity, cfg, sae, progress)


def _magnitude(kind: str, model, trajectories, granularity, cfg, sae, progress) -> Attribution:
    start = time.perf_counter()
    gran, layers, prompt_ids, groups = _setup(model, trajectories, granularity, cfg, sae)
    dev = next(model.parameters()).device
    sums = {l: torch.zeros(len(groups), gran.unit_shape(l)[0], dtype=torch.float64, device=dev)
            for l in layers}  # [n_prompts, units]
    count = torch.zeros(len(groups), dtype=torch.float64, device=dev)  # counted positions per prompt
    scalar = gran.unit_shape(layers[0])[1] == 1
    across = kind == "freq" and not scalar and cfg.threshold is None and gran.unit_shape(layers[0])[0] == 1
    pending: dict[int, tuple[Tensor, Tensor]] = {}  # across-layer rule: norms [b, pos] per layer
    if across and len(layers) == 1:
        warnings.warn("freq on one layer of granularity 'layers' without a threshold compares the "
                      "layer with itself: every score is 0; set params.threshold", stacklevel=3)

    def reduce(i: int, row: int, layer: int, a: Tensor, mask: Tensor) -> None:
        if layer == layers[0]:
            count[i] += mask.sum()
        m = mask.to(torch.float64).unsqueeze(-1)  # [b, pos, 1]
        if kind == "act":
            value = _norms(a)
        elif scalar:
            value = (a[..., 0] > (cfg.threshold or 0.0)).to(torch.float64)
        elif cfg.threshold is not None:
            value = (_norms(a) > cfg.threshold).to(torch.float64)
        elif across:  # one unit per layer: compare with the other selected layers afterwards
            pending[layer] = (_norms(a)[..., 0], m)
            return
        else:
            n = _norms(a)
            value = (n > n.mean(dim=-1, keepdim=True)).to(torch.float64)  # above its layer's mean head
        sums[layer][i] += (value * m).sum(dim=(0, 1))

    def after_batch(i: int) -> None:
        if across and pending:
            n = torch.stack([pending[l][0] for l in layers], dim=-1)  # [b, pos, n_layers]
            above = (n > n.mean(dim=-1, keepdim=True)).to(torch.float64)
            for k, l in enumerate(layers):
                sums[l][i] += (above[..., k : k + 1] * pending[l][1]).sum(dim=(0, 1))
            pending.clear()

    with _frozen(*_modules(model, sae)):
        _scan(model, gran, layers, groups, cfg, reduce, f"{kind} {granularity}", progress, after_batch)
    per_prompt = _concat(sums, layers) / np.maximum(count.cpu().numpy(), 1.0)[:, None]
    rule = None
    if kind == "freq" and scalar:
        rule = f"a > {cfg.threshold or 0.0}"
    elif kind == "freq":
        rule = (f"|a| > {cfg.threshold}" if cfg.threshold is not None else
                "|a| > mean |a| of the selected layers" if across else "|a| > mean |a| of its layer's units")
    return _finish(gran, layers, prompt_ids, per_prompt, kind, cfg, start, len(trajectories),
                   positions_counted=int(count.sum()), active_rule=rule)


def _add(acc: dict[int, Tensor], layer: int, a: Tensor, m4: Tensor, g: Tensor) -> None:
    """acc[layer] += sum over batch, counted positions, unit_dim of a * g: [units]."""
    acc[layer] += (a.to(torch.float64) * g.to(torch.float64) * m4).sum(dim=(0, 1, 3))


def gxa(model: nn.Module, trajectories: pd.DataFrame, granularity: str, cfg: BaselineConfig,
        sae: Any = None, progress: bool = True) -> Attribution:
    """Gradient x activation of the plain log-likelihood (A_j = 1): one backward per batch."""
    start = time.perf_counter()
    gran, layers, prompt_ids, groups = _setup(model, trajectories, granularity, cfg, sae)
    temperature = _temperature(cfg, trajectories)
    dev = next(model.parameters()).device
    per_prompt = np.zeros((len(groups), len(gran.unit_ids(layers))))
    loglik: list[float] = []
    with _frozen(*_modules(model, sae)):
        for i, rows in enumerate(tqdm(groups, desc=f"gxa {granularity}", unit="prompt",
                                      disable=not progress)):
            acc = {l: torch.zeros(gran.unit_shape(l)[0], dtype=torch.float64, device=dev) for l in layers}
            for batch in _prompt_batches(rows, cfg, dev):
                mask = _mask(batch, cfg)
                m4 = mask.view(*mask.shape, 1, 1)  # [b, pos, 1, 1]

                def make(layer: int):
                    def fn(x: Tensor) -> Tensor:
                        a = gran.read(layer, x)  # [b, pos, units, unit_dim]
                        # a new autograd node with a's value: its gradient is dL/da (total
                        # derivative; for SAE latents the error term's copy of a cancels upstream)
                        a_det = a.detach()
                        node = tap(a if a.requires_grad else a_det,
                                   lambda g, l=layer, a_det=a_det: _add(acc, l, a_det, m4, g))
                        return gran.write(layer, x, node, a)
                    return fn

                with edit_activations(gran, {l: make(l) for l in layers}):
                    lp = sequence_logprobs(model, batch, temperature, cfg.pos_chunk)  # [b]
                if lp.requires_grad:  # one backward: the hooks add a * dL/da into acc
                    lp.sum().backward()
                loglik.extend(lp.detach().double().tolist())
            per_prompt[i] = _concat(acc, layers) / len(rows)  # mean over the prompt's trajectories
    return _finish(gran, layers, prompt_ids, per_prompt, "gxa", cfg, start, len(trajectories),
                   temperature_used=temperature, loglik_mean=float(np.mean(loglik)))


def contrastive(model: nn.Module, trajectories: pd.DataFrame, granularity: str, cfg: BaselineConfig,
                sae: Any = None, progress: bool = True) -> Attribution:
    """Difference of mean activations between high- and low-reward trajectories."""
    start = time.perf_counter()
    gran, layers, prompt_ids, groups = _setup(model, trajectories, granularity, cfg, sae)
    column = f"reward_{cfg.reward}"
    if column not in trajectories.columns:
        raise IPGError(f"trajectory table has no column '{column}' (produced by the trajectory stage)")
    rewards = [rows[column].to_numpy(dtype="float64") for rows in groups]
    flat = np.concatenate(rewards)
    if np.isnan(flat).any():
        raise IPGError(f"column '{column}' has NaN; every trajectory needs a finite reward")
    if cfg.reward == "accuracy":
        if not np.isin(flat, (0.0, 1.0)).all():
            raise IPGError(f"contrastive on '{column}' needs rewards 0 or 1, got {sorted(set(flat))[:5]}")
        split, high = 0.5, [r == 1.0 for r in rewards]
    else:
        split = float(np.median(flat))
        high = [r > split for r in rewards]  # above the median vs at-or-below
    n_high = int(sum(h.sum() for h in high))
    n_low = len(flat) - n_high
    n_p = len(groups)
    shapes = {l: gran.unit_shape(l) for l in layers}
    units = gran.unit_ids(layers)
    extra = dict(reward=cfg.reward, split_value=split, n_high=n_high, n_low=n_low)
    if n_high == 0 or n_low == 0:
        warnings.warn(f"contrastive: the {'high' if n_high == 0 else 'low'}-reward group of "
                      f"'{column}' is empty (split {split}); every score is 0", stacklevel=2)
        return _finish(gran, layers, prompt_ids, np.zeros((n_p, len(units))), "contrastive", cfg,
                       start, len(trajectories), **extra)
    dev = next(model.parameters()).device
    c = {l: torch.zeros(n_p, *shapes[l], dtype=torch.float64, device=dev) for l in layers}
    coef = [torch.tensor(np.where(h, n_p / n_high, -n_p / n_low), device=dev) for h in high]

    def reduce(i: int, row: int, layer: int, a: Tensor, mask: Tensor) -> None:
        m = mask.to(torch.float64)  # [b, pos]
        # m_j: trajectory j's mean over its counted positions [b, units, unit_dim]
        mean = (a.to(torch.float64) * m[..., None, None]).sum(1) / m.sum(1).clamp_min(1)[:, None, None]
        w = coef[i][row : row + a.shape[0]]  # [b]: +n_p / N_high or -n_p / N_low
        c[layer][i] += (w[:, None, None] * mean).sum(0)

    with _frozen(*_modules(model, sae)):
        _scan(model, gran, layers, groups, cfg, reduce, f"contrastive {granularity}", progress)
    parts = []
    for l in layers:
        if shapes[l][1] == 1:
            parts.append(c[l][..., 0])  # scalar units: the signed difference
        else:  # vector units: project on the global direction d / |d|, so mean_p = |d|
            d = c[l].mean(0)  # [units, unit_dim]
            parts.append((c[l] * d / d.norm(dim=-1, keepdim=True).clamp_min(1e-300)).sum(-1))
    per_prompt = torch.cat(parts, dim=-1).cpu().numpy()
    return _finish(gran, layers, prompt_ids, per_prompt, "contrastive", cfg, start,
                   len(trajectories), **extra)


def random_scores(model: nn.Module, trajectories: pd.DataFrame, granularity: str,
                  cfg: BaselineConfig, sae: Any = None, progress: bool = True) -> Attribution:
    """Seeded i.i.d. N(0, 1) per-prompt scores: top-k of their mean is a uniform k-subset."""
    start = time.perf_counter()
    gran, layers, prompt_ids, _ = _setup(model, trajectories, granularity, cfg, sae)
    n_units = len(gran.unit_ids(layers))
    per_prompt = np.random.default_rng(int(cfg.seed)).standard_normal((len(prompt_ids), n_units))
    return _finish(gran, layers, prompt_ids, per_prompt, "random", cfg, start, len(trajectories))
