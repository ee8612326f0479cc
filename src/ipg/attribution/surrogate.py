"""The off-policy surrogate of IPG: Phi(h) = (1/G) sum_j A_j log pi(tau_j; h) (IPG_METHOD.md).

log pi(tau; h) = sum_t log pi(a_t | s_t; h) over the GENERATED tokens only (Eq. 1), with
pi = softmax(logits / T). The G trajectories of one prompt are teacher-forced in one batch
(right-padded, so padding never affects a real position under causal attention).

Shared prompt (positions = "generated"): the prompt's activations are not on the path, so
its KV cache is computed once per prompt (`encode_prompt`) and shared by every sample and
path point; the batch then runs the generated tokens only.

Memory: the base model returns hidden states [b, pos, d]; the LM head and log-softmax run on
chunks of generated positions only, under activation checkpointing, so full-vocab float32
logits are never held for the whole batch (forward or backward).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ipg.errors import IPGError


@dataclass
class TeacherBatch:
    """The G trajectories of one prompt, teacher-forced: prompt + generated tokens."""

    input_ids: Tensor  # [b, pos] long, right-padded
    attention_mask: Tensor  # [b, pos] long, 1 on real tokens
    gen_mask: Tensor  # [b, pos] bool, True where the token is a generated one
    prompt_len: int  # P: generated tokens start at position P
    targets: Tensor  # [b, n_gen] long, generated tokens (padded with 0)
    target_mask: Tensor  # [b, n_gen] bool

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def repeat(self, c: int) -> "TeacherBatch":
        """The batch stacked c times (path points on the batch dimension), [c * b, ...]."""
        if c == 1:
            return self
        rep = lambda t: t.repeat(c, *([1] * (t.ndim - 1)))  # noqa: E731
        return TeacherBatch(
            rep(self.input_ids), rep(self.attention_mask), rep(self.gen_mask),
            self.prompt_len, rep(self.targets), rep(self.target_mask),
        )


@dataclass
class PromptPrefix:
    """The unmodified prompt, encoded once: its KV cache (batch 1) and last hidden state."""

    cache: object  # transformers Cache for the prompt, [1, ...]
    last_hidden: Tensor  # [1, d]: predicts the first generated token


@torch.no_grad()
def encode_prompt(model: nn.Module, batch: TeacherBatch) -> PromptPrefix:
    """Run the prompt (row 0; all rows share it) once, without any path hooks active."""
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    prompt = batch.input_ids[:1, : batch.prompt_len]
    out = base(input_ids=prompt, use_cache=True)
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    return PromptPrefix(cache, out.last_hidden_state[:, -1].detach())


def build_batch(
    prompt_ids: Sequence[int],
    gen_ids: Sequence[Sequence[int]],
    device: torch.device | str = "cpu",
    pad_id: int = 0,
) -> TeacherBatch:
    """Teacher-forcing batch for one prompt and its G generated continuations."""
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise IPGError("a trajectory has empty prompt_ids: the first generated token needs a prompt")
    gens = [[int(t) for t in g] for g in gen_ids]
    p_len, n_gen = len(prompt), max([len(g) for g in gens] + [1])
    b = len(gens)
    input_ids = torch.full((b, p_len + n_gen), pad_id, dtype=torch.long)
    attention_mask = torch.zeros(b, p_len + n_gen, dtype=torch.long)
    targets = torch.zeros(b, n_gen, dtype=torch.long)
    target_mask = torch.zeros(b, n_gen, dtype=torch.bool)
    input_ids[:, :p_len] = torch.tensor(prompt)
    attention_mask[:, :p_len] = 1
    for j, g in enumerate(gens):
        if g:
            input_ids[j, p_len : p_len + len(g)] = torch.tensor(g)
            targets[j, : len(g)] = torch.tensor(g)
        attention_mask[j, p_len : p_len + len(g)] = 1
        target_mask[j, : len(g)] = True
    gen_mask = attention_mask.bool().clone()
    gen_mask[:, :p_len] = False
    to = lambda t: t.to(device)  # noqa: E731
    return TeacherBatch(
        to(input_ids), to(attention_mask), to(gen_mask), p_len, to(targets), to(target_mask)
    )


def wide(t: Tensor) -> Tensor:
    """t in float32, or float64 when it already is (accumulators never lose precision)."""
    return t if t.dtype == torch.float64 else t.float()


def _chunk_logprobs(
    hidden: Tensor, targets: Tensor, head: nn.Module, temperature: float
) -> Tensor:
    """log pi(target | hidden) [b, s] from hidden [b, s, d]; logits >= float32 [b, s, vocab]."""
    logits = wide(head(hidden)) / temperature
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def sequence_logprobs(
    model: nn.Module,
    batch: TeacherBatch,
    temperature: float,
    pos_chunk: int = 256,
    prefix: PromptPrefix | None = None,
) -> Tensor:
    """log pi(tau_j; h) [b] (float32; float64 for a float64 model), summed over generated tokens.

    One forward of the batch; with `prefix`, only the generated tokens run (the hooked
    tensors then cover generated positions only: [b, n_gen, ...]).
    """
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    head = model.get_output_embeddings()
    n_gen, p, b = batch.targets.shape[1], batch.prompt_len, batch.size
    if prefix is None:
        out = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        hidden = out.last_hidden_state  # [b, pos, d]
        # hidden state at position t predicts token t + 1: positions P-1 .. P+n_gen-2
        src = hidden[:, p - 1 : p - 1 + n_gen]  # [b, n_gen, d]
    else:
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(b)
        positions = torch.arange(p, p + n_gen, device=batch.input_ids.device).expand(b, -1)
        out = base(input_ids=batch.input_ids[:, p:], attention_mask=batch.attention_mask,
                   position_ids=positions, cache=cache, use_cache=True)
        hidden = out.last_hidden_state  # [b, n_gen, d]
        first = prefix.last_hidden.to(hidden.dtype).expand(b, 1, -1)  # [b, 1, d]
        src = torch.cat([first, hidden[:, : n_gen - 1]], dim=1)  # [b, n_gen, d]
    total = torch.zeros(batch.size, dtype=wide(src).dtype, device=hidden.device)
    grad = torch.is_grad_enabled() and src.requires_grad
    for s in range(0, n_gen, pos_chunk):
        h_c, t_c = src[:, s : s + pos_chunk], batch.targets[:, s : s + pos_chunk]
        if grad:
            lp = checkpoint(_chunk_logprobs, h_c, t_c, head, temperature, use_reentrant=False)
        else:
            lp = _chunk_logprobs(h_c, t_c, head, temperature)
        total = total + (lp * batch.target_mask[:, s : s + pos_chunk]).sum(dim=1)
    return total


def surrogate(logprobs: Tensor, coef: Tensor) -> Tensor:
    """Phi = sum_j coef_j log pi(tau_j); coef = A_j / G for the off-policy surrogate."""
    return (coef.to(logprobs.dtype) * logprobs).sum()
