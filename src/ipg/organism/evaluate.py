"""Held-out evaluation of an organism: greedy and sampled accuracy, generated length.

Sampling is plain temperature 1 (top_k=0, top_p=1), the distribution the attribution
samples from. Generation is batched with left padding. Answers are parsed from the text
after "ans"; length is the number of generated tokens up to and including <eos>.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ipg.organism.traces import Problem, parse_answer


@dataclass(frozen=True)
class EvalResult:
    sampled_acc: float
    greedy_acc: float
    mean_len: float  # of sampled completions, in tokens
    std_len: float
    greedy_mean_len: float


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerFast,
    prompts: list[str],
    sample: bool,
    max_new_tokens: int,
    batch_size: int = 256,
) -> tuple[list[str], list[int]]:
    """Completions (text, special tokens skipped) and their lengths in tokens."""
    tok.padding_side = "left"
    texts: list[str] = []
    lengths: list[int] = []
    was_training = model.training
    model.eval()
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True)
        kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if sample else dict(do_sample=False)
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id, **kw,
        )
        new = out[:, enc["input_ids"].shape[1] :]  # [batch, new]
        is_eos = new == tok.eos_token_id
        # length = position of the first <eos> + 1, or all tokens when it never ended
        n_tokens = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, new.shape[1])  # [batch]
        lengths += n_tokens.tolist()
        texts += tok.batch_decode(new, skip_special_tokens=True)
    model.train(was_training)
    return texts, lengths


def evaluate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerFast,
    problems: list[Problem],
    max_new_tokens: int,
    seed: int = 0,
    sample_from_greedy: float = 0.0,
) -> EvalResult:
    """Greedy and temperature-1 sampled accuracy on `problems`; leaves the global RNG as it was.

    Sampling is skipped (sampled_acc, mean_len, std_len are NaN) while greedy accuracy is
    below `sample_from_greedy`: early checkpoints cannot qualify, so their evals stay cheap.
    """
    prompts = [p.question for p in problems]
    gold = [str(p.answer) for p in problems]

    def acc(texts: list[str]) -> float:
        return sum(parse_answer(t) == g for t, g in zip(texts, gold)) / len(gold)

    g_text, g_len = generate(model, tok, prompts, sample=False, max_new_tokens=max_new_tokens)
    if acc(g_text) < sample_from_greedy:
        nan = float("nan")
        return EvalResult(nan, acc(g_text), nan, nan, statistics.fmean(g_len))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        s_text, s_len = generate(model, tok, prompts, sample=True, max_new_tokens=max_new_tokens)

    return EvalResult(
        sampled_acc=acc(s_text),
        greedy_acc=acc(g_text),
        mean_len=statistics.fmean(s_len),
        std_len=statistics.pstdev(s_len),
        greedy_mean_len=statistics.fmean(g_len),
    )
