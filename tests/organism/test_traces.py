"""The trace generator: correct arithmetic, consistent checks, varying length, clean splits."""
import random
import re
from itertools import islice

import pytest

from ipg.errors import IPGError
from ipg.organism.traces import (
    Problem, TraceConfig, completion, max_completion_tokens, problem_stream, sample_problems,
    split_of, trace_stream,
)
from ipg.organism.tokenizer import build_tokenizer

STEP = re.compile(r"^(\d+)\+(\d+)=(\d+)$")
CHECK = re.compile(r"^check (\d+)\+(\d+)=(\d+) ok$")


def parse(question: str, comp: str) -> tuple[list[int], list[tuple[int, int, int]], list[tuple[int, int, int]], int]:
    terms = [int(t) for t in question.removeprefix("Q ").removesuffix("; ").split("+")]
    parts = comp.split("; ")
    steps = [tuple(map(int, STEP.match(p).groups())) for p in parts if STEP.match(p)]
    checks = [tuple(map(int, CHECK.match(p).groups())) for p in parts if CHECK.match(p)]
    assert parts[-1].startswith("ans ")
    assert len(steps) + len(checks) + 1 == len(parts), comp
    return terms, steps, checks, int(parts[-1].removeprefix("ans "))


def test_every_step_and_check_is_right() -> None:
    cfg = TraceConfig()
    for q, c in islice(trace_stream(3, cfg), 300):
        terms, steps, checks, ans = parse(q, c)
        assert cfg.min_terms <= len(terms) <= cfg.max_terms
        assert all(0 <= t <= cfg.max_operand for t in terms)
        assert len(steps) == len(terms) - 1
        acc = terms[0]
        for (a, b, s), t in zip(steps, terms[1:]):
            assert (a, b, s) == (acc, t, acc + t)
            acc = s
        assert ans == sum(terms) == acc
        assert cfg.min_checks <= len(checks) <= cfg.max_checks
        assert all(ch in steps for ch in checks)  # a check restates a real step


def test_number_of_checks_and_length_vary() -> None:
    pairs = list(islice(trace_stream(0, TraceConfig()), 400))
    n_checks = [c.count("check ") for _, c in pairs]
    assert set(n_checks) == {0, 1, 2, 3}
    tok = build_tokenizer()
    lens = [len(tok(c)["input_ids"]) for _, c in pairs]
    assert max(lens) - min(lens) > 20
    assert max(lens) + 1 <= max_completion_tokens(TraceConfig())  # + <eos>
    long = TraceConfig(max_operand=99, min_checks=2, max_checks=5)
    lens = [len(tok(c)["input_ids"]) for _, c in islice(trace_stream(0, long), 400)]
    assert max(lens) + 1 <= max_completion_tokens(long) <= max(lens) + 12


def test_completion_example() -> None:
    p = Problem((7, 3, 9, 2))
    assert p.question == "Q 7+3+9+2; "
    assert completion(p, 0, random.Random(0)) == "7+3=10; 10+9=19; 19+2=21; ans 21"
    assert completion(p, 2, random.Random(0)).count("check ") == 2


def test_streams_are_deterministic_and_splits_disjoint() -> None:
    cfg = TraceConfig()
    assert sample_problems(50, 1, "test", cfg) == sample_problems(50, 1, "test", cfg)
    assert sample_problems(50, 1, "test", cfg) != sample_problems(50, 2, "test", cfg)
    for split in ("train", "val", "test"):
        assert all(split_of(p.question) == split for p in sample_problems(100, 0, split, cfg))
    train = {p.question for p in islice(problem_stream(0, "train", cfg), 3000)}
    assert not train & {p.question for p in sample_problems(300, 0, "test", cfg)}


def test_bad_config_is_one_line_error() -> None:
    with pytest.raises(IPGError, match="min_terms"):
        TraceConfig(min_terms=5, max_terms=3)
    with pytest.raises(IPGError, match="split"):
        next(problem_stream(0, "dev", TraceConfig()))  # type: ignore[arg-type]
