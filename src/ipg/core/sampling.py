"""Batched sampling of G trajectories per prompt with the KV cache.

The policy is pi(a_t | s_t) = softmax(logits_t / T) with top_p = 1 and no top_k, so the
log-probabilities stored with each trajectory are exactly the sampler's (the log pi(tau; h)
of Eq. 1 in docs/method.md, evaluated at the unmodified activation h). Each trajectory also
carries its mean next-token entropy, (1/T_gen) sum_t H(pi(. | s_t)) with
H(pi) = -sum_a pi(a) log pi(a), from the same log-softmax: the quantity the sharpening
control of the evaluation matches (a steered model vs the unsteered one at a lower temperature).

Speed: each prompt is encoded once and its KV cache repeated for its G samples; finished
sequences are dropped from the batch as soon as they emit an end-of-sequence token.
Interventions (ipg.core.intervention) act through forward hooks, so they apply here unchanged.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from ipg.core.checkpoint import ChunkStore, run_chunks
from ipg.errors import IPGError


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0  # the policy's temperature; log-probs are under this temperature
    max_new_tokens: int = 128  # cap on generated tokens; a trajectory at the cap is `truncated`
    prompts_per_batch: int = 8  # prompts encoded together; the batch holds prompts * G rows
    seed: int = 0  # sampling seed (a torch.Generator per batch, from (seed, batch): same tokens)

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise IPGError(
                f"sampling temperature must be > 0, got {self.temperature}; "
                "use a small value such as 0.1 for near-greedy decoding"
            )
        if self.max_new_tokens < 1:
            raise IPGError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.prompts_per_batch < 1:
            raise IPGError(f"prompts_per_batch must be >= 1, got {self.prompts_per_batch}")


@dataclass
class Trajectory:
    prompt_index: int
    sample_id: int
    prompt_ids: list[int]
    gen_ids: list[int]  # generated tokens, including the end-of-sequence token if emitted
    logprob: float  # sum_t log pi(a_t | s_t) under the sampler's temperature
    truncated: bool  # True when max_new_tokens was reached without an end-of-sequence token
    entropy: float = float("nan")  # mean over generated steps of H(pi(. | s_t)), in nats


def eos_token_ids(model, tokenizer) -> list[int]:
    """All token ids that end a trajectory (generation config and tokenizer)."""
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if value is None:
            continue
        ids.update(value if isinstance(value, (list, tuple)) else [value])
    if not ids:
        raise IPGError("the tokenizer has no eos token; set tokenizer.eos_token before sampling")
    return sorted(ids)


def batch_seed(seed: int, first_prompt: int) -> int:
    """The generator seed of the batch starting at prompt `first_prompt`: a function of
    (seed, batch) only, so batches are independent streams. The first batch keeps `seed`
    itself (a one-batch run samples what it sampled before batches had their own
    generators); later batches mix (seed, batch) with numpy's SeedSequence."""
    if first_prompt == 0:
        return int(seed)
    state = np.random.SeedSequence([int(seed) % 2**64, int(first_prompt)]).generate_state(2)
    return int(state[0]) << 31 ^ int(state[1])  # < 2**63: a valid torch seed


@torch.no_grad()
def _sample_batch(
    model,
    prompt_ids: list[list[int]],
    n_samples: int,
    cfg: SamplingConfig,
    eos_ids: list[int],
    pad_id: int,
    generator: torch.Generator,
) -> tuple[list[list[int]], list[float], list[bool], int, list[float]]:
    """Sample n_samples continuations of each prompt.

    Returns per-row tokens, logprob, truncated, the number of row-steps computed, and the
    per-row mean next-token entropy.
    """
    device = next(model.parameters()).device
    n_prompts = len(prompt_ids)
    width = max(len(p) for p in prompt_ids)
    # Left padding so every row's next token sits at the same column. [P, width]
    input_ids = torch.full((n_prompts, width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((n_prompts, width), dtype=torch.long, device=device)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids):] = torch.tensor(ids, device=device)
        mask[row, width - len(ids):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [P, width]
    cache = DynamicCache()
    out = model(
        input_ids=input_ids, attention_mask=mask, position_ids=positions,
        cache=cache, use_cache=True, logits_to_keep=1,
    )
    # Share the prompt's cache across its G samples: rows become [P * G].
    cache = out.cache
    cache.batch_repeat_interleave(n_samples)
    logits = out.logits[:, -1].repeat_interleave(n_samples, dim=0)  # [P*G, vocab]
    mask = mask.repeat_interleave(n_samples, dim=0)  # [P*G, width]
    next_pos = positions[:, -1].repeat_interleave(n_samples) + 1  # [P*G]

    n_rows = n_prompts * n_samples
    tokens: list[list[int]] = [[] for _ in range(n_rows)]
    logprobs = torch.zeros(n_rows, dtype=torch.float64)
    entropy_sums = torch.zeros(n_rows, dtype=torch.float64)  # sum_t H(pi(. | s_t)) per row
    alive = torch.arange(n_rows, device=device)  # original row index of each live batch row
    eos = torch.tensor(eos_ids, device=device)
    steps_computed = 0
    for step in range(cfg.max_new_tokens):
        logp = torch.log_softmax(logits.float() / cfg.temperature, dim=-1)  # [live, vocab]
        probs = logp.exp()  # [live, vocab]
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # [live]
        chosen_logp = logp.gather(-1, chosen[:, None]).squeeze(-1)
        # H = -sum pi log pi; 0 log 0 = 0 (logits of -inf give pi = 0 and logp = -inf)
        step_entropy = -torch.where(probs > 0, probs * logp, 0.0).sum(-1)  # [live]
        steps_computed += len(alive)
        for row, tok in zip(alive.tolist(), chosen.tolist()):
            tokens[row].append(tok)
        logprobs[alive.cpu()] += chosen_logp.double().cpu()
        entropy_sums[alive.cpu()] += step_entropy.double().cpu()
        keep = ~torch.isin(chosen, eos)
        if step == cfg.max_new_tokens - 1 or not bool(keep.any()):
            break
        if not bool(keep.all()):
            idx = keep.nonzero().squeeze(-1)
            cache.batch_select_indices(idx)
            alive, chosen, mask, next_pos = alive[idx], chosen[idx], mask[idx], next_pos[idx]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        out = model(
            input_ids=chosen[:, None], attention_mask=mask, position_ids=next_pos[:, None],
            cache=cache, use_cache=True,
        )
        cache = out.cache
        logits = out.logits[:, -1]
        next_pos = next_pos + 1
    eos_set = set(eos_ids)
    truncated = [not (t and t[-1] in eos_set) for t in tokens]
    mean_entropy = [float(h) / max(len(t), 1) for h, t in zip(entropy_sums.tolist(), tokens)]
    return tokens, logprobs.tolist(), truncated, steps_computed, mean_entropy


def sample_trajectories(
    model,
    tokenizer,
    prompts: Sequence[str],
    n_samples: int,
    cfg: SamplingConfig,
    progress: bool = True,
    store: ChunkStore | None = None,
) -> tuple[list[Trajectory], dict[str, float]]:
    """Sample `n_samples` trajectories for each (already rendered) prompt.

    Batch b (prompts [b * prompts_per_batch, ...)) draws from its own generator seeded by
    batch_seed(seed, first prompt index), so a batch's tokens do not depend on earlier
    batches and a run resumed from `store` (chunk = one batch; its chunk_size must be
    prompts_per_batch) is bitwise identical to an uninterrupted one. Returns the
    trajectories and throughput stats (generated tokens per second, seconds).
    """
    if store is not None and store.chunk_size != cfg.prompts_per_batch:
        raise IPGError(f"sampling store chunk size {store.chunk_size} != prompts_per_batch "
                       f"{cfg.prompts_per_batch}; build it with chunk_size=prompts_per_batch")
    if n_samples < 1:
        raise IPGError(f"samples per prompt (G) must be >= 1, got {n_samples}")
    if not prompts:
        raise IPGError("no prompts to sample from: the task split is empty")
    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    limit = getattr(model.config, "max_position_embeddings", None)
    for i, ids in enumerate(encoded):
        if not ids:
            raise IPGError(f"prompt {i} is empty after tokenization; check the task's prompt template")
        if limit is not None and len(ids) + cfg.max_new_tokens > limit:
            raise IPGError(
                f"prompt {i} has {len(ids)} tokens + max_new_tokens {cfg.max_new_tokens} > the "
                f"model's context {limit}; shorten the prompt or lower max_new_tokens"
            )
    device = next(model.parameters()).device

    def compute(batch: range) -> dict[str, Any]:  # one batch, its own generator: resumable
        generator = torch.Generator(device=device).manual_seed(batch_seed(cfg.seed, batch.start))
        tokens, logprobs, truncated, _, entropies = _sample_batch(
            model, [encoded[i] for i in batch], n_samples, cfg, eos_ids, pad_id, generator)
        return {"gen_ids": tokens, "logprob": np.asarray(logprobs, dtype=np.float64),
                "truncated": truncated, "entropy": np.asarray(entropies, dtype=np.float64)}

    trajectories: list[Trajectory] = []
    n_tokens = 0
    start = time.perf_counter()
    bar = tqdm(total=len(prompts) * n_samples, unit="traj", disable=not progress, desc="sampling")
    for batch, out, _ in run_chunks(store, len(prompts), compute, cfg.prompts_per_batch):
        rows = zip(out["gen_ids"], out["logprob"].tolist(), out["truncated"], out["entropy"].tolist())
        for row, (toks, lp, trunc, ent) in enumerate(rows):
            p_index = batch[row // n_samples]
            trajectories.append(
                Trajectory(p_index, row % n_samples, encoded[p_index], list(toks), lp, bool(trunc), ent)
            )
            n_tokens += len(toks)
        bar.update(len(out["gen_ids"]))  # resumed batches count too
        elapsed = time.perf_counter() - start
        bar.set_postfix(tok_s=f"{n_tokens / max(elapsed, 1e-9):.0f}")
    bar.close()
    elapsed = time.perf_counter() - start
    return trajectories, {
        "generated_tokens": float(n_tokens),
        "sampling_seconds": elapsed,
        "tokens_per_second": n_tokens / max(elapsed, 1e-9),
        "resumed_batches": float(store.resumed if store is not None else 0),
    }
