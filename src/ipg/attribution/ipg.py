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
from contextlib import contextmanager
from dataclasses import asdict
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
from ipg.attribution.offpolicy import offpolicy_prompt
from ipg.attribution.path import PathHooks
from ipg.attribution.quadrature import nodes_weights
from ipg.attribution.reference import activation_stats, reference_activations
from ipg.attribution.surrogate import (
    PromptPrefix, TeacherBatch, build_batch, encode_prompt, sequence_logprobs, surrogate,
)
from ipg.attribution.table import Attribution, make_attribution
from ipg.checkpoint import ChunkStore, run_chunks
from ipg.components import get_granularity
from ipg.errors import IPGError
from ipg.rewards import advantages, group_rewards

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

    With a `store` (ipg.checkpoint) a rerun resumes from the saved chunks of prompts: a
    prompt's results depend on it alone (and h', recomputed), so they are bitwise identical."""
    start = time.perf_counter()
    cfg = config or IPGConfig()
    for key in ("prompt_ids", "gen_ids"):
        if key not in trajectories.columns:
            raise IPGError(f"trajectory table has no column '{key}' (produced by the trajectory stage)")
    temperature = _temperature(cfg, trajectories)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    gran = get_granularity(granularity, model, sae)
    layers = gran.select_layers(cfg.layers)
    if cfg.path == "onpolicy":
        _onpolicy_check(cfg, layers, sampler)
    prompt_ids, rewards, mask, groups = group_rewards(trajectories, f"reward_{cfg.reward}")
    adv = advantages(rewards, cfg.advantage, cfg.eps, mask)  # [n_prompts, G_max] float64
    n_prompts = len(groups)
    nonzero = [bool((adv[i] != 0).any()) for i in range(n_prompts)]
    batches = _batches(groups, device, cfg.pad_id)
    alphas, weights = nodes_weights(cfg.quadrature, cfg.m)
    passes = [[l] for l in layers] if cfg.multilayer == "separate" else [layers]
    mode = "onthefly" if cfg.multilayer == "onthefly" or cfg.path == "onpolicy" else "joint"
    units = gran.unit_ids(layers)
    per_prompt = np.zeros((n_prompts, len(units)), dtype=np.float64)
    phi_h = np.zeros(n_prompts)
    delta = np.zeros(n_prompts)  # target of completeness: sum over passes of Phi(h) - Phi(h'_pass)
    lp_diff: list[float] = []
    n_tokens: list[int] = []
    reward_path = np.zeros(cfg.m)
    work = [i for i in range(n_prompts) if nonzero[i] or cfg.path == "onpolicy"]
    chunks = [list(range(s, min(s + cfg.chunk, cfg.m))) for s in range(0, cfg.m, cfg.chunk)]
    n_steps = len(work) * len(passes) * (cfg.m if cfg.path == "onpolicy" else len(chunks))
    bar = tqdm(total=n_steps, desc=f"IPG {granularity}", unit="step", disable=not progress)

    shared = cfg.positions == "generated" and cfg.share_prompt_cache and cfg.path != "onpolicy"
    prefix: dict[str, PromptPrefix | None] = {"now": None}  # the current prompt's KV cache

    def forward(batch: TeacherBatch) -> Tensor:
        return sequence_logprobs(model, batch, temperature, cfg.pos_chunk, prefix["now"])

    def pos_mask(b: TeacherBatch) -> Tensor:  # [b, pos] positions on the path
        if cfg.positions == "all":
            return b.attention_mask.bool()
        return b.target_mask if shared else b.gen_mask  # shared: the batch runs gen tokens only

    with _frozen(model, *(sae if isinstance(sae, (list, tuple)) else [sae])), \
            autocast(cfg.autocast, device), checkpointed(gran.blocks, cfg.checkpoint_layers):
        if cfg.baseline == "zero":
            stats = None
        else:
            def stats_forwards() -> Iterator[tuple[Callable[[], Tensor], Tensor]]:
                for b in batches:
                    prefix["now"] = encode_prompt(model, b) if shared else None
                    yield (lambda b=b: forward(b)), pos_mask(b)

            stats = activation_stats(gran, layers, stats_forwards())
        base = reference_activations(cfg.baseline, gran, layers, dtype, device, stats, cfg.seed)
        hooks = PathHooks(gran, layers, base)

        def one_prompt(i: int) -> None:  # depends on prompt i alone: chunks are resumable
            batch, g = batches[i], len(groups[i])
            hooks.reset()
            if cfg.path == "onpolicy":
                prompt = groups[i].iloc[:1].drop(  # the prompt's columns (prompt, answer, ...)
                    columns=["gen_ids", "sample_id", "logprob", "truncated", "text", "pred"],
                    errors="ignore").assign(n_samples=g).reset_index(drop=True)
                for p_i, pass_layers in enumerate(passes):
                    for k in range(cfg.m):
                        seed = cfg.seed + 7919 * (i * len(passes) + p_i) + k
                        r_mean = _onpolicy_step(model, hooks, pass_layers, prompt, sampler, seed,
                                                float(alphas[k]), float(weights[k]), cfg,
                                                device, forward)
                        reward_path[k] += r_mean / (len(work) * len(passes))
                        bar.update(1)
                per_prompt[i] = hooks.scores().cpu().numpy()
                check_finite(prompt_ids[i], granularity, units, per_prompt[i])
                return
            prefix["now"] = encode_prompt(model, batch) if shared else None
            lp_h, phi_h[i], delta[i] = offpolicy_prompt(
                forward, hooks, batch, pos_mask(batch), adv[i, :g].to(device), passes, mode,
                chunks, alphas, weights, cfg.path == "importance", bar, cfg.traj_chunk)
            n_tokens.extend(batch.target_mask.sum(1).tolist())
            if "logprob" in groups[i]:
                lp_diff.extend((lp_h.cpu().double() - torch.tensor(
                    groups[i]["logprob"].to_numpy(dtype="float64"))).abs().tolist())
            per_prompt[i] = hooks.scores().cpu().numpy()
            check_finite(prompt_ids[i], granularity, units, per_prompt[i], phi_h[i], delta[i])

        def compute(items: range) -> dict[str, Any]:  # one chunk of prompts (ipg.checkpoint)
            n_lp, n_tok, rows = len(lp_diff), len(n_tokens), slice(items.start, items.stop)
            for i in items:
                if i in work_set:
                    one_prompt(i)
            return {"per_prompt": per_prompt[rows].copy(), "phi_h": phi_h[rows].copy(),
                    "delta": delta[rows].copy(), "lp_diff": np.asarray(lp_diff[n_lp:], float),
                    "n_tokens": np.asarray(n_tokens[n_tok:], np.int64),
                    "reward_path": reward_path.copy()}  # cumulative: restored as is

        work_set = set(work)
        for items, saved, resumed in run_chunks(store, n_prompts, compute):
            if resumed:  # a chunk of an interrupted run: its saved results, bitwise
                rows = slice(items.start, items.stop)
                per_prompt[rows], phi_h[rows], delta[rows] = (
                    saved["per_prompt"], saved["phi_h"], saved["delta"])
                lp_diff.extend(saved["lp_diff"].tolist())
                n_tokens.extend(saved["n_tokens"].tolist())
                reward_path[:] = saved["reward_path"]
                bar.update(n_steps // max(len(work), 1) * len(work_set.intersection(items)))
    bar.close()
    counts = [gran.unit_shape(l)[0] for l in layers]  # (layer, index) of each unit, as `units`
    unit_pos = (np.repeat(layers, counts), np.concatenate([np.arange(n) for n in counts]))
    return _finish(gran.name, units, unit_pos, per_prompt, prompt_ids, phi_h, delta, nonzero, lp_diff,
                   n_tokens, reward_path, alphas, layers, temperature, cfg, start)


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


def _finish(granularity, units, unit_pos, per_prompt, prompt_ids, phi_h, delta, nonzero, lp_diff, n_tokens,
            reward_path, alphas, layers, temperature, cfg, start) -> Attribution:
    n_prompts, n_nonzero = len(prompt_ids), int(sum(nonzero))
    if n_nonzero == 0:
        warnings.warn(
            f"all {n_prompts} prompts have zero advantages (equal rewards within every prompt): "
            "every IPG score is 0 (metrics empty_result: true); sample more trajectories per "
            "prompt or attribute a reward that varies", stacklevel=3)
    offpolicy_like = cfg.path != "onpolicy"
    res = completeness(per_prompt, delta, nonzero)
    metrics: dict[str, Any] = {
        "method": "ipg", "granularity": granularity, "layers": layers, "n_units": len(units),
        "n_prompts": n_prompts, "n_prompts_nonzero_advantage": n_nonzero,
        "temperature_used": temperature, "sum_scores": res.pop("sum_scores"),
        "phi_h": float(phi_h.mean()) if offpolicy_like else None,
        "phi_baseline": float((phi_h - delta).mean()) if offpolicy_like else None,
        **{k: (v if offpolicy_like else None) for k, v in res.items()},
        "logprob_max_abs_diff": float(max(lp_diff)) if lp_diff else None,
        "generated_tokens_mean": float(np.mean(n_tokens)) if n_tokens else None,
        "reward_along_path": ({"alpha": alphas.tolist(), "mean_reward": reward_path.tolist()}
                              if cfg.path == "onpolicy" else None),
        "empty_result": n_nonzero == 0,  # every prompt had zero advantage: all scores are 0
        "config": asdict(cfg),
        "wall_seconds": time.perf_counter() - start,
    }
    if lp_diff and max(lp_diff) > 0.05 * (1 + float(np.mean(n_tokens))):
        warnings.warn(
            f"re-scored log-probs differ from the table's 'logprob' by up to {max(lp_diff):.3g}: "
            "check the temperature and that the model is the sampler's", stacklevel=3)
    if cfg.path == "offpolicy":
        check_bound(res["completeness_residual_pooled"], cfg.max_residual, cfg.m, cfg.quadrature)
    return make_attribution(units, unit_pos[0], unit_pos[1], per_prompt, prompt_ids, granularity,
                            "ipg", metrics)
