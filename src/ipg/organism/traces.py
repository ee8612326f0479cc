"""Synthetic multi-step arithmetic chains of thought: the organism's whole world.

A problem is a sum of a few non-negative integers. Its trace adds the terms left to right,
one step per term, then takes a random number of optional self-check steps that restate an
earlier step, then commits to an answer:

    question:   "Q 7+3+9+2; "
    completion: "7+3=10; 10+9=19; 19+2=21; check 10+9=19 ok; ans 21"

The number of checks varies per trace (uniform in [min_checks, max_checks]), so the
reasoning length varies under sampling and a length reward has variance.
Every question belongs to one split (train / val / test) by a hash of its text, so the
task's test questions are held out from training by construction.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Iterator, Literal

from ipg.errors import IPGError

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class TraceConfig:
    min_terms: int = 3  # fewer terms: too easy, the model converges before we can sample it
    max_terms: int = 5  # more terms: longer traces, slower training on 2 CPU cores
    max_operand: int = 9  # one-digit terms, two-digit running sums: learnable in minutes
    min_checks: int = 0  # optional self-checks; 0 lets the shortest trace skip them
    max_checks: int = 3  # 0..3 checks gives the length reward its variance

    def __post_init__(self) -> None:
        if not 2 <= self.min_terms <= self.max_terms:
            raise IPGError(f"need 2 <= min_terms <= max_terms, got {self.min_terms}, {self.max_terms}")
        if self.max_operand < 1:
            raise IPGError(f"max_operand must be >= 1, got {self.max_operand}")
        if not 0 <= self.min_checks <= self.max_checks:
            raise IPGError(f"need 0 <= min_checks <= max_checks, got {self.min_checks}, {self.max_checks}")


@dataclass(frozen=True)
class Problem:
    terms: tuple[int, ...]

    @property
    def question(self) -> str:
        return "Q " + "+".join(map(str, self.terms)) + "; "

    @property
    def answer(self) -> int:
        return sum(self.terms)

    def steps(self) -> list[tuple[int, int, int]]:
        """The running-sum steps (a, b, a + b), one per term after the first."""
        out, acc = [], self.terms[0]
        for t in self.terms[1:]:
            out.append((acc, t, acc + t))
            acc += t
        return out


_ANS = re.compile(r"\bans\s*(-?\d+)")


def parse_answer(text: str) -> str | None:
    """The integer after the first "ans" in a completion, or None."""
    m = _ANS.search(text)
    return m.group(1) if m else None


def split_of(question: str) -> Split:
    """The split a question belongs to: a stable hash, 80% train, 10% val, 10% test."""
    bucket = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % 10
    return "val" if bucket == 8 else "test" if bucket == 9 else "train"


def completion(problem: Problem, n_checks: int, rng: random.Random) -> str:
    """The chain of thought after the question: steps, `n_checks` self-checks, answer."""
    steps = problem.steps()
    parts = [f"{a}+{b}={c}" for a, b, c in steps]
    for _ in range(n_checks):
        a, b, c = steps[rng.randrange(len(steps))]
        parts.append(f"check {a}+{b}={c} ok")
    parts.append(f"ans {problem.answer}")
    return "; ".join(parts)


def random_problem(rng: random.Random, cfg: TraceConfig) -> Problem:
    n = rng.randint(cfg.min_terms, cfg.max_terms)
    return Problem(tuple(rng.randint(0, cfg.max_operand) for _ in range(n)))


def problem_stream(seed: int, split: Split, cfg: TraceConfig) -> Iterator[Problem]:
    """An endless, deterministic stream of problems of one split (seeded per split)."""
    if split not in SPLITS:
        raise IPGError(f"unknown split '{split}'; allowed: {', '.join(SPLITS)}")
    rng = random.Random(f"{split}:{seed}")
    while True:
        p = random_problem(rng, cfg)
        if split_of(p.question) == split:
            yield p


def sample_problems(n: int, seed: int, split: Split, cfg: TraceConfig) -> list[Problem]:
    stream = problem_stream(seed, split, cfg)
    return [next(stream) for _ in range(n)]


def trace_stream(seed: int, cfg: TraceConfig) -> Iterator[tuple[str, str]]:
    """Endless training pairs (question, completion) from the train split."""
    rng = random.Random(f"checks:{seed}")
    for p in problem_stream(seed, "train", cfg):
        yield p.question, completion(p, rng.randint(cfg.min_checks, cfg.max_checks), rng)


def max_completion_tokens(cfg: TraceConfig) -> int:
    """An upper bound on the completion length in tokens, <eos> included.

    Tokens: one per digit, "+", "=", ";" and space; "check", "ok", "ans" one each.
    """
    big = len(str(cfg.max_terms * cfg.max_operand))
    step = 2 * big + len(str(cfg.max_operand)) + 2  # "a+b=c"
    sep = 2  # "; "
    check = step + 3  # "check " + step + " ok"
    return (cfg.max_terms - 1) * (step + sep) + cfg.max_checks * (check + sep) + 2 + big + 1
