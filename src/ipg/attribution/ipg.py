"""Integrated Policy Gradient (docs/method.md, Eqs. 1-3) with every estimator variant.

Off-policy IPG (default) is Integrated Gradients of the fixed surrogate
    Phi(h) = (1/G) sum_j A_j log pi(tau_j; h)
over the G sampled trajectories of each prompt, teacher-forced (Eq. 1 integrated along
h' + alpha (h - h'), Eq. 2), then averaged over prompts (Eq. 3):
    IPG_i(x) = sum_k w_k (h_i - h'_i) dPhi/dh_i(h' + a_k (h - h')),   S_i = mean_x IPG_i(x).
One backward per path point (or chunk of path points) gives every unit at every position;
(h - h') * grad is reduced inside hooks (attribution/path.py). Completeness,
sum_i IPG_i = Phi(h) - Phi(h'), is measured on every run and enforced (max_residual).
The bound applies to the residual pooled over prompts, sum_i |err_i| / sum_i |delta_i|.

    att = attribute(model, trajectories, "neurons", IPGConfig(reward="accuracy"))
    write_attribution(att, "scores.parquet", "metrics.json")
"""
from __future__ import annotations

import time
import warnings
import functools
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ipg.attribution.completeness import check_bound, check_finite, completeness
from ipg.attribution.execution import autocast, checkpointed
# IPGConfig lives in the torch-free ipg_config: config checks at DAG-build time build it
from ipg.attribution.ipg_config import IPGConfig
from ipg.attribution.offpolicy import AdaptiveRule, FixedRule, Rule, offpolicy_prompt
from ipg.attribution.path import PathHooks
from ipg.attribution.quadrature import ADAPTIVE, nodes_weights
from ipg.attribution.reference import activation_stats, reference_activations
from ipg.attribution.surrogate import (
    PromptPrefix, TeacherBatch, build_batch, encode_prompt, sequence_logprobs, surrogate,
)
from ipg.attribution.table import Attribution, make_attribution
from ipg.core.checkpoint import ChunkStore, run_chunks
from ipg.core.units import get_granularity
from ipg.errors import IPGError
from ipg.attribution.advantages import advantages, group_rewards

# sampler(model, prompts, seed) -> trajectory table (with reward_{reward}); `prompts` has one
# row per prompt: its columns in the input table (prompt_id, prompt_ids, prompt, answer, ...)
# and n_samples (G). Called with the path intervention active (path=onpolicy).
Sampler = Callable[[nn.Module, pd.DataFrame, int], pd.DataFrame]

@contextmanager
def _frozen(*modules: Any) -> Iterator[None]:
    """Parameters frozen (backward computes activation gradients only) and eval mode."""
    mods = [m for m in modules if isinstance(m, nn.Module)]
    flags = [(p, p.requires_grad) for m in mods for p in m.parameters()]
    modes = [(m, m.training) for m in mods]
    for p, _ in flags:
        p.requires_grad_(False)
    for m in mods:
        m.eval()
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.train(training)


def _temperature(cfg: IPGConfig, frame: pd.DataFrame) -> float:
    table = sorted(set(frame["temperature"].astype(float))) if "temperature" in frame else []
    if len(table) > 1:
        raise IPGError(f"trajectory table mixes temperatures {table}; attribute one temperature at a time")
    if cfg.temperature is None:
        if not table:
            raise IPGError("set IPG config key 'temperature' (the table has no 'temperature' column)")
        return table[0]
    if table and abs(table[0] - cfg.temperature) > 1e-9:
        raise IPGError(
            f"IPG config key 'temperature' = {cfg.temperature} but the trajectories were sampled "
            f"at {table[0]}; the policy must be the sampler's (set temperature: null)"
        )
    return float(cfg.temperature)


def _batches(groups: list[pd.DataFrame], device: torch.device, pad_id: int) -> list[TeacherBatch]:
    out = []
    for rows in groups:
        prompts = {tuple(int(t) for t in p) for p in rows["prompt_ids"]}
        if len(prompts) != 1:
            raise IPGError(f"prompt_id '{rows['prompt_id'].iloc[0]}' has rows with different prompt_ids")
        out.append(build_batch(list(prompts.pop()), list(rows["gen_ids"]), device, pad_id))
    return out


def _onpolicy_check(cfg: IPGConfig, layers: list[int], sampler: Sampler | None) -> None:
    if sampler is None:
        raise IPGError("IPG path 'onpolicy' needs sampler=callable(model, prompts, seed) -> trajectories")
    if cfg.positions != "all":
        raise IPGError("IPG path 'onpolicy' interpolates every position; set positions: all")
    if cfg.multilayer == "joint" and len(layers) > 1:
        raise IPGError(
            "IPG path 'onpolicy' samples with on-the-fly scaling; set multilayer: onthefly or "
            "separate, or select one layer"
        )


def attribute(
    model: nn.Module,
    trajectories: pd.DataFrame,
    granularity: str,
    config: IPGConfig | None = None,
    sae: Any = None,
    progress: bool = True,
    sampler: Sampler | None = None,
    store: ChunkStore | None = None,
) -> Attribution:
    """IPG scores of every unit of `granularity` (Eq. 3) with per-prompt scores and metrics.

    With a `store` (ipg.core.checkpoint) a rerun resumes from the saved chunks of prompts: a
    prompt's results depend on it alone (and h', recomputed), so they are bitwise identical."""
    start = time.perf_counter()
    cfg = config or IPGConfig()
    job = _Job.build(model, trajectories, granularity, cfg, sae, sampler)
    res = _Results.empty(len(job.groups), len(job.units), job.rule_size)
    bar = tqdm(total=job.n_steps, desc=f"IPG {granularity}", unit="step", disable=not progress)
    with _frozen(model, *(sae if isinstance(sae, (list, tuple)) else [sae])), \
            autocast(cfg.autocast, job.device), checkpointed(job.gran.blocks, cfg.checkpoint_layers):
        hooks = PathHooks(job.gran, job.layers, job.reference())
        for items, saved, resumed in run_chunks(store, len(job.groups),
                                                lambda items: job.compute(items, hooks, res, bar)):
            if resumed:  # a chunk of an interrupted run: its saved results, bitwise
                res.restore(items, saved)
                bar.update(job.n_steps // max(len(job.work), 1) * len(job.work.intersection(items)))
    bar.close()
    return _finish(job, res, start)


def _check_columns(trajectories: pd.DataFrame) -> None:
    for key in ("prompt_ids", "gen_ids"):
        if key not in trajectories.columns:
            raise IPGError(f"trajectory table has no column '{key}' (produced by the trajectory stage)")


def _rule(cfg: IPGConfig) -> Rule:
    """The quadrature of the path (docs/method.md, "Quadrature")."""
    if cfg.quadrature == ADAPTIVE:
        return AdaptiveRule(cfg.tol, cfg.m_max, cfg.chunk)
    alphas, weights = nodes_weights(cfg.quadrature, cfg.m)
    return FixedRule(alphas, weights, cfg.chunk)


@dataclass
class _Results:
    """Per-prompt results of one attribution; a chunk of prompts is saved and restored as is."""

    per_prompt: np.ndarray  # [n_prompts, n_units] float64
    phi_h: np.ndarray  # [n_prompts]
    delta: np.ndarray  # [n_prompts]: sum over passes of Phi(h) - Phi(h'_pass)
    path_points: np.ndarray  # [n_prompts] int64: path points evaluated (0: not attributed)
    nested_error: np.ndarray  # [n_prompts]: adaptive quadrature's error estimate (NaN: none)
    reward_path: np.ndarray  # [m] on-policy mean reward along the path (cumulative)
    lp_diff: list[float] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, n_prompts: int, n_units: int, m: int) -> "_Results":
        return cls(np.zeros((n_prompts, n_units)), np.zeros(n_prompts), np.zeros(n_prompts),
                   np.zeros(n_prompts, np.int64), np.full(n_prompts, np.nan), np.zeros(m))

    def payload(self, items: range, n_lp: int, n_tok: int) -> dict[str, Any]:
        rows = slice(items.start, items.stop)
        return {"per_prompt": self.per_prompt[rows].copy(), "phi_h": self.phi_h[rows].copy(),
                "delta": self.delta[rows].copy(), "path_points": self.path_points[rows].copy(),
                "nested_error": self.nested_error[rows].copy(),
                "lp_diff": np.asarray(self.lp_diff[n_lp:], float),
                "n_tokens": np.asarray(self.n_tokens[n_tok:], np.int64),
                "reward_path": self.reward_path.copy()}  # cumulative: restored as is

    def restore(self, items: range, saved: dict[str, Any]) -> None:
        rows = slice(items.start, items.stop)
        for key in ("per_prompt", "phi_h", "delta", "path_points", "nested_error"):
            if key in saved:  # path_points, nested_error: absent from chunks of older runs
                getattr(self, key)[rows] = saved[key]
        self.lp_diff.extend(saved["lp_diff"].tolist())
        self.n_tokens.extend(saved["n_tokens"].tolist())
        self.reward_path[:] = saved["reward_path"]


@dataclass
class _Job:
    """Everything an attribution fixes before its first path point, and its per-prompt steps."""

    model: nn.Module
    cfg: IPGConfig
    granularity: str
    gran: Any  # ipg.core.units.Granularity
    layers: list[int]
    passes: list[list[int]]  # layers attributed together (multilayer separate: one each)
    mode: str  # joint | onthefly
    units: list[str]
    temperature: float
    device: torch.device
    dtype: torch.dtype
    prompt_ids: list[str]
    adv: Tensor  # [n_prompts, G_max] float64
    groups: list[pd.DataFrame]
    nonzero: list[bool]  # the prompt has a non-zero advantage
    batches: list[TeacherBatch]
    work: set[int]  # prompts attributed
    rule: Rule
    shared: bool  # positions=generated: each prompt's KV cache is encoded once
    sampler: Sampler | None
    prefix: PromptPrefix | None = None  # the current prompt's KV cache

    @classmethod
    def build(cls, model: nn.Module, trajectories: pd.DataFrame, granularity: str,
              cfg: IPGConfig, sae: Any, sampler: Sampler | None) -> "_Job":
        _check_columns(trajectories)
        temperature = _temperature(cfg, trajectories)
        param = next(model.parameters())
        gran = get_granularity(granularity, model, sae)
        layers = gran.select_layers(cfg.layers)
        if cfg.path == "onpolicy":
            _onpolicy_check(cfg, layers, sampler)
        prompt_ids, rewards, mask, groups = group_rewards(trajectories, f"reward_{cfg.reward}")
        adv = advantages(rewards, cfg.advantage, cfg.eps, mask)
        nonzero = [bool((adv[i] != 0).any()) for i in range(len(groups))]
        return cls(
            model, cfg, granularity, gran, layers,
            [[l] for l in layers] if cfg.multilayer == "separate" else [layers],
            "onthefly" if cfg.multilayer == "onthefly" or cfg.path == "onpolicy" else "joint",
            gran.unit_ids(layers), temperature, param.device, param.dtype, prompt_ids, adv,
            groups, nonzero, _batches(groups, param.device, cfg.pad_id),
            {i for i in range(len(groups)) if nonzero[i] or cfg.path == "onpolicy"},
            _rule(cfg),
            cfg.positions == "generated" and cfg.share_prompt_cache and cfg.path != "onpolicy",
            sampler)

    @property
    def rule_size(self) -> int:
        """Nodes of the fixed rule (the adaptive rule's cap)."""
        return len(self.rule.alphas) if isinstance(self.rule, FixedRule) else self.rule.m_max

    @property
    def n_steps(self) -> int:
        """Progress-bar steps (adaptive: the cap's chunks, an upper bound)."""
        per_pass = (self.rule_size if self.cfg.path == "onpolicy"
                    else -(-self.rule_size // self.cfg.chunk))
        return len(self.work) * len(self.passes) * per_pass

    def forward(self, batch: TeacherBatch) -> Tensor:
        return sequence_logprobs(self.model, batch, self.temperature, self.cfg.pos_chunk, self.prefix)

    def pos_mask(self, b: TeacherBatch) -> Tensor:
        """[b, pos] positions on the path (shared: the batch runs generated tokens only)."""
        if self.cfg.positions == "all":
            return b.attention_mask.bool()
        return b.target_mask if self.shared else b.gen_mask

    def encode(self, b: TeacherBatch) -> None:
        self.prefix = encode_prompt(self.model, b) if self.shared else None

    def reference(self) -> dict[int, Tensor]:
        """h' of every layer (Eq. 2), from the activation statistics of every prompt if needed."""
        stats = (None if self.cfg.baseline == "zero"
                 else activation_stats(self.gran, self.layers, self._stats_forwards()))
        return reference_activations(self.cfg.baseline, self.gran, self.layers, self.dtype,
                                     self.device, stats, self.cfg.seed)

    def _stats_forwards(self) -> Iterator[tuple[Callable[[], Tensor], Tensor]]:
        for b in self.batches:
            self.encode(b)
            yield functools.partial(self.forward, b), self.pos_mask(b)

    def compute(self, items: range, hooks: PathHooks, res: _Results, bar: tqdm) -> dict[str, Any]:
        """One chunk of prompts (ipg.core.checkpoint): each depends on itself alone (resumable)."""
        n_lp, n_tok = len(res.lp_diff), len(res.n_tokens)
        for i in items:
            if i in self.work:
                hooks.reset()
                if self.cfg.path == "onpolicy":
                    self.onpolicy_prompt(i, hooks, res, bar)
                else:
                    self.offpolicy_prompt(i, hooks, res, bar)
        return res.payload(items, n_lp, n_tok)

    def offpolicy_prompt(self, i: int, hooks: PathHooks, res: _Results, bar: tqdm) -> None:
        batch, g = self.batches[i], len(self.groups[i])
        self.encode(batch)
        out = offpolicy_prompt(self.forward, hooks, batch, self.pos_mask(batch),
                               self.adv[i, :g].to(self.device), self.passes, self.mode, self.rule,
                               self.cfg.path == "importance", bar, self.cfg.traj_chunk)
        res.phi_h[i], res.delta[i], res.path_points[i] = out.phi_h, out.delta, out.path_points
        res.nested_error[i] = np.nan if out.nested_error is None else out.nested_error
        res.n_tokens.extend(batch.target_mask.sum(1).tolist())
        if "logprob" in self.groups[i]:
            res.lp_diff.extend((out.lp_h.cpu().double() - torch.tensor(
                self.groups[i]["logprob"].to_numpy(dtype="float64"))).abs().tolist())
        res.per_prompt[i] = hooks.scores().cpu().numpy()
        check_finite(self.prompt_ids[i], self.granularity, self.units, res.per_prompt[i],
                     res.phi_h[i], res.delta[i])

    def onpolicy_prompt(self, i: int, hooks: PathHooks, res: _Results, bar: tqdm) -> None:
        g, cfg, rule = len(self.groups[i]), self.cfg, self.rule
        assert isinstance(rule, FixedRule)  # IPGConfig: the adaptive rule is off-policy only
        prompt = self.groups[i].iloc[:1].drop(  # the prompt's columns (prompt, answer, ...)
            columns=["gen_ids", "sample_id", "logprob", "truncated", "text", "pred"],
            errors="ignore").assign(n_samples=g).reset_index(drop=True)
        for p_i, pass_layers in enumerate(self.passes):
            for k in range(len(rule.alphas)):
                seed = cfg.seed + 7919 * (i * len(self.passes) + p_i) + k
                r_mean = _onpolicy_step(self.model, hooks, pass_layers, prompt, self.sampler, seed,
                                        float(rule.alphas[k]), float(rule.weights[k]), cfg,
                                        self.device, self.forward)
                res.reward_path[k] += r_mean / (len(self.work) * len(self.passes))
                bar.update(1)
        res.path_points[i] = len(self.passes) * len(rule.alphas)
        res.per_prompt[i] = hooks.scores().cpu().numpy()
        check_finite(self.prompt_ids[i], self.granularity, self.units, res.per_prompt[i])


def _onpolicy_step(model, hooks: PathHooks, layers: list[int], prompt: pd.DataFrame,
                   sampler: Sampler, seed: int, alpha: float, weight: float, cfg: IPGConfig,
                   device: torch.device, forward) -> float:
    """Resample G trajectories at h_alpha, add weight * (h - h') * grad of their surrogate."""
    with torch.no_grad(), hooks.interpolate(alpha, None, "onthefly", grad=False, layers=layers):
        fresh = sampler(model, prompt, seed)
    _, rewards, mask, groups = group_rewards(fresh, f"reward_{cfg.reward}")
    adv = advantages(rewards, cfg.advantage, cfg.eps, mask)[0]
    g = len(groups[0])
    if bool((adv[:g] != 0).any()):
        batch = _batches(groups, device, cfg.pad_id)[0]
        m_pos = batch.attention_mask.bool()
        alpha_rows = torch.full((g,), alpha, device=device)
        with hooks.interpolate(alpha_rows, m_pos, "onthefly", grad=True, layers=layers):
            lp = forward(batch)
            objective = weight * surrogate(lp, (adv[:g] / g).to(device))
            if objective.requires_grad:
                objective.backward()
    return float(rewards[0, :g].mean())


def _finish(job: _Job, res: _Results, start: float) -> Attribution:
    cfg, n_prompts, n_nonzero = job.cfg, len(job.prompt_ids), int(sum(job.nonzero))
    if n_nonzero == 0:
        warnings.warn(
            f"all {n_prompts} prompts have zero advantages (equal rewards within every prompt): "
            "every IPG score is 0 (metrics empty_result: true); sample more trajectories per "
            "prompt or attribute a reward that varies", stacklevel=3)
    offpolicy_like = cfg.path != "onpolicy"
    comp = completeness(res.per_prompt, res.delta, job.nonzero)
    lp_diff, n_tokens = res.lp_diff, res.n_tokens
    metrics: dict[str, Any] = {
        "method": "ipg", "granularity": job.gran.name, "layers": job.layers,
        "n_units": len(job.units), "n_prompts": n_prompts, "n_prompts_nonzero_advantage": n_nonzero,
        "temperature_used": job.temperature, "sum_scores": comp.pop("sum_scores"),
        "phi_h": float(res.phi_h.mean()) if offpolicy_like else None,
        "phi_baseline": float((res.phi_h - res.delta).mean()) if offpolicy_like else None,
        **{k: (v if offpolicy_like else None) for k, v in comp.items()},
        "logprob_max_abs_diff": float(max(lp_diff)) if lp_diff else None,
        "generated_tokens_mean": float(np.mean(n_tokens)) if n_tokens else None,
        "reward_along_path": ({"alpha": job.rule.alphas.tolist(),
                               "mean_reward": res.reward_path.tolist()}
                              if cfg.path == "onpolicy" else None),
        **_quadrature_metrics(job, res),
        "empty_result": n_nonzero == 0,  # every prompt had zero advantage: all scores are 0
        "config": asdict(cfg),
        "wall_seconds": time.perf_counter() - start,
    }
    if lp_diff and max(lp_diff) > 0.05 * (1 + float(np.mean(n_tokens))):
        warnings.warn(
            f"re-scored log-probs differ from the table's 'logprob' by up to {max(lp_diff):.3g}: "
            "check the temperature and that the model is the sampler's", stacklevel=3)
    if cfg.path == "offpolicy":
        check_bound(comp["completeness_residual_pooled"], cfg.max_residual, cfg.m, cfg.quadrature,
                    cfg.m_max)
    counts = [job.gran.unit_shape(l)[0] for l in job.layers]  # (layer, index) of each unit
    return make_attribution(job.units, np.repeat(job.layers, counts),
                            np.concatenate([np.arange(n) for n in counts]), res.per_prompt,
                            job.prompt_ids, job.gran.name, "ipg", metrics)


def _quadrature_metrics(job: _Job, res: _Results) -> dict[str, Any]:
    """Per prompt: path points evaluated, the completeness residual and (adaptive) the nested
    error estimate; and the total path points (the cost the adaptive rule saves)."""
    pids = job.prompt_ids
    resid = [abs(float(res.per_prompt[i].sum()) - float(res.delta[i])) / abs(float(res.delta[i]))
             if res.delta[i] != 0 else None for i in range(len(pids))]
    return {
        "path_points": int(res.path_points.sum()),
        "path_points_per_prompt": dict(zip(pids, res.path_points.tolist())),
        "completeness_residual_per_prompt": dict(zip(pids, resid)),
        "quadrature_error_per_prompt": (dict(zip(pids, [None if np.isnan(e) else float(e)
                                                        for e in res.nested_error]))
                                        if job.cfg.quadrature == ADAPTIVE else None),
    }
