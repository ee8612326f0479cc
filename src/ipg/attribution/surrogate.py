"""The off-policy surrogate of IPG: Phi(h) = (1/G) sum_j A_j log pi(tau_j; h) (docs/method.md).

log pi(tau; h) = sum_t log pi(a_t | s_t; h) over the GENERATED tokens only (Eq. 1), with
pi = softmax(logits / T). The G trajectories of one prompt are teacher-forced in one batch
(right-padded, so padding never affects a real position under causal attention).

Shared prompt (positions = "generated"): the prompt's activations are not on the path, so
its KV cache is computed once per prompt (`encode_prompt`) and shared by every sample and
path point; the batch then runs the generated tokens only.

Memory: the base model returns hidden states [b, pos, d]; the LM head and log-softmax run on
chunks of generated positions only, and their backward (a fused autograd function for a frozen
nn.Linear head, activation checkpointing otherwise) keeps the full-vocab float32 softmax of the
whole batch when it fits the memory budget (attribution/budget.py); otherwise the logits are
recomputed per chunk. Both routes give bitwise the same log-probs and gradients.

Temperature: for a bias-free linear head, logits / T = (h / T) W^T, so the d-wide hidden
state is divided instead of the vocab-wide logits (docs/method.md, "Cost of one pass").
"""
from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ipg.attribution.budget import fits
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

    def rows(self, sl: slice) -> "TeacherBatch":
        """Trajectories sl of the batch (same prompt and padded width)."""
        if sl == slice(0, self.size):
            return self
        return TeacherBatch(self.input_ids[sl], self.attention_mask[sl], self.gen_mask[sl],
                            self.prompt_len, self.targets[sl], self.target_mask[sl])

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


def _batch_cache(cache: object, b: int) -> object:
    """The prompt's cache for a batch of b rows, leaving `cache` itself untouched.

    Each layer's K/V [1, ...] is broadcast to [b, ...] as a view (no copy): the forward's own
    concatenation with the new tokens' K/V materialises it once; `update` stores nothing. (A deep copy followed by
    batch_repeat_interleave copied it twice more on every forward.)
    """
    layers = getattr(cache, "layers", None)
    if not isinstance(layers, list) or not all(
        isinstance(getattr(l, "keys", None), Tensor) and isinstance(getattr(l, "values", None), Tensor)
        for l in layers
    ):  # another cache layout: the generic (copying) route
        out = copy.deepcopy(cache)
        out.batch_repeat_interleave(b)
        return out
    out = copy.copy(cache)
    out.layers = []
    for layer in layers:
        new = copy.copy(layer)
        new.keys = layer.keys.expand(b, *layer.keys.shape[1:])
        new.values = layer.values.expand(b, *layer.values.shape[1:])
        new.update = functools.partial(_prefix_update, new)
        out.layers.append(new)
    return out


def _prefix_update(layer: object, keys: Tensor, values: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
    """The prompt's K/V followed by the new tokens', without storing them: the batched cache
    stays the prompt's, so a layer recomputed under activation checkpointing sees the same."""
    return torch.cat([layer.keys, keys], dim=-2), torch.cat([layer.values, values], dim=-2)


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


def _scaled(logits: Tensor, temperature: float) -> Tensor:
    """logits / T (T = 1: the same values without a pass over [b, s, vocab])."""
    return logits if temperature == 1 else logits / temperature


def _flat(hidden: Tensor) -> Tensor:
    """hidden [b, s, d] as [b * s, d]: with a 2-D input the LM head is one matmul; the strided
    slice of positions [b, s, d] made it a batched matmul over the weight expanded b times,
    about 1.5x (b = 2) to 3x (b = 8) slower on a CPU for a 49k vocabulary."""
    return hidden.reshape(-1, hidden.shape[-1])


def _linear_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None, temperature: float) -> Tensor:
    """logits / T [rows, vocab] (>= float32) of a linear head on hidden [rows, d].

    Without a bias, (h W^T) / T = (h / T) W^T: the division runs over d (576 on SmolLM2)
    instead of the vocabulary (49k). Same values up to float rounding (not bitwise); only for
    a float32 / float64 hidden state (dividing a bf16 one would round it once more). With a
    bias, or a lower-precision hidden state, the logits are divided."""
    if temperature != 1 and bias is None and hidden.dtype in (torch.float32, torch.float64):
        return wide(nn.functional.linear(hidden / temperature, weight))
    return _scaled(wide(nn.functional.linear(hidden, weight, bias)), temperature)


def plain_linear(head: nn.Module) -> bool:
    """An unhooked nn.Linear: its logits may be computed from its weights directly."""
    return type(head) is nn.Linear and not (
        head._forward_hooks or head._forward_pre_hooks or head._backward_hooks)


def _chunk_logprobs(
    hidden: Tensor, targets: Tensor, head: nn.Module, temperature: float
) -> Tensor:
    """log pi(target | hidden) [b, s] from hidden [b, s, d]; logits >= float32 [b, s, vocab]."""
    if plain_linear(head):
        logits = _linear_logits(_flat(hidden), head.weight, head.bias, temperature)
    else:
        logits = _scaled(wide(head(_flat(hidden))), temperature)
    logits = logits.view(*targets.shape, -1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


class _TargetLogProb(torch.autograd.Function):
    """log pi(target | hidden) [b, s] of a frozen nn.Linear head, with a fused backward.

    Forward: one fused log-softmax over the vocabulary. Backward: d/dlogits = g (onehot -
    softmax) / T, then one matmul with W; the softmax is either kept from the forward (`keep`)
    or recomputed from the saved hidden states (as activation checkpointing would, without its
    per-call machinery) by the same operations, so both routes give the same bits. The
    backward works on the softmax in place: it runs once (the engine never retains the graph).
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, targets: Tensor, weight: Tensor, bias: Tensor | None,
                temperature: float, keep: bool) -> Tensor:
        logp = _logp(hidden, targets, weight, bias, temperature)  # [b, s, vocab]
        out = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        ctx.temperature, ctx.keep, ctx.hidden_dtype = temperature, keep, hidden.dtype
        ctx.amp = _amp_state(hidden.device.type)  # the backward's matmuls run as the forward's
        ctx.used = False
        if keep:  # the exp of the log-softmax is the softmax the backward needs
            ctx.save_for_backward(logp.exp_(), targets, weight)
        else:
            ctx.bias = bias
            ctx.save_for_backward(hidden, targets, weight)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        if ctx.used:
            raise IPGError("the fused LM-head log-prob was backpropagated twice (retain_graph): "
                           "its backward consumes the kept softmax; backpropagate each graph once")
        ctx.used = True
        device_type, amp_dtype = ctx.amp
        amp = (torch.autocast(device_type, dtype=amp_dtype) if amp_dtype is not None
               else contextlib.nullcontext())
        if ctx.keep:
            probs, targets, weight = ctx.saved_tensors
        else:
            hidden, targets, weight = ctx.saved_tensors
            with amp:
                probs = _logp(hidden, targets, weight, ctx.bias, ctx.temperature).exp_()
        g_t = (g / ctx.temperature).to(probs.dtype).unsqueeze(-1)  # [b, s, 1]
        grad = probs.mul_(g_t.neg())  # g (onehot - softmax) / T, in place: probs is used once
        grad.scatter_add_(-1, targets.unsqueeze(-1), g_t)
        with amp:
            grad_h = grad.to(weight.dtype) @ weight
        return grad_h.to(ctx.hidden_dtype), None, None, None, None, None


def _logp(hidden: Tensor, targets: Tensor, weight: Tensor, bias: Tensor | None,
          temperature: float) -> Tensor:
    """log softmax(logits / T) [b, s, vocab] (>= float32) for hidden [b, s, d]."""
    logits = _linear_logits(_flat(hidden), weight, bias, temperature)
    return torch.log_softmax(logits.view(*targets.shape, -1), dim=-1)


def _amp_state(device_type: str) -> tuple[str, torch.dtype | None]:
    """(device type, autocast dtype or None when autocast is off there)."""
    if torch.is_autocast_enabled(device_type):
        return device_type, torch.get_autocast_dtype(device_type)
    return device_type, None


def _fused_head(head: nn.Module) -> bool:
    """True for a frozen, unhooked nn.Linear LM head (else: checkpointed autograd)."""
    return (
        plain_linear(head)
        and not head.weight.requires_grad
        and (head.bias is None or not head.bias.requires_grad)
    )


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
        cache = _batch_cache(prefix.cache, b)
        positions = torch.arange(p, p + n_gen, device=batch.input_ids.device).expand(b, -1)
        out = base(input_ids=batch.input_ids[:, p:], attention_mask=batch.attention_mask,
                   position_ids=positions, cache=cache, use_cache=True)
        hidden = out.last_hidden_state  # [b, n_gen, d]
        first = prefix.last_hidden.to(hidden.dtype).expand(b, 1, -1)  # [b, 1, d]
        src = torch.cat([first, hidden[:, : n_gen - 1]], dim=1)  # [b, n_gen, d]
    total = torch.zeros(batch.size, dtype=wide(src).dtype, device=hidden.device)
    grad = torch.is_grad_enabled() and src.requires_grad
    fused = grad and _fused_head(head)
    if fused:  # keep the softmax if the whole batch's fits the budget (after the forward)
        logit_bytes = src.shape[0] * n_gen * head.out_features * (8 if src.dtype == torch.float64 else 4)
        keep = fits(logit_bytes, src.device)
    for s in range(0, n_gen, pos_chunk):
        h_c, t_c = src[:, s : s + pos_chunk], batch.targets[:, s : s + pos_chunk]
        if fused:
            lp = _TargetLogProb.apply(h_c, t_c, head.weight, head.bias, temperature, keep)
        elif grad:
            lp = checkpoint(_chunk_logprobs, h_c, t_c, head, temperature, use_reentrant=False)
        else:
            lp = _chunk_logprobs(h_c, t_c, head, temperature)
        total = total + (lp * batch.target_mask[:, s : s + pos_chunk]).sum(dim=1)
    return total


def surrogate(logprobs: Tensor, coef: Tensor) -> Tensor:
    """Phi = sum_j coef_j log pi(tau_j); coef = A_j / G for the off-policy surrogate."""
    return (coef.to(logprobs.dtype) * logprobs).sum()
