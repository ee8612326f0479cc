"""Tasks `organism_arith` (3-5 terms), `organism_arith_short` (3) and `organism_arith_long` (5):
the organism's own arithmetic questions, from its test split.

Questions come from the generator the organism was trained on (`ipg.organism.traces`) but
only from the test split (a hash of the question text), so none was seen in training.
The prompt is the organism's raw format ("Q 7+3+9+2; "); the answer is the integer after
"ans"; grading is exact integer match.
"""
from __future__ import annotations

from typing import Any

from ipg.errors import IPGError
from ipg.organism.traces import TraceConfig, parse_answer, sample_problems
from ipg.tasks import TASKS
from ipg.tasks.base import Row, Task

_DIFFICULTY = ("min_terms", "max_terms", "max_operand")


def load(n: int, seed: int, params: dict[str, Any]) -> list[Row]:
    bad = sorted(set(params) - set(_DIFFICULTY))
    if bad:
        raise IPGError(f"unknown organism_arith param(s) {', '.join(bad)}; allowed: {', '.join(_DIFFICULTY)}")
    cfg = TraceConfig(**{k: params[k] for k in _DIFFICULTY if k in params})
    return [
        {"question": p.question, "answer": str(p.answer), "meta": {"terms": list(p.terms)}}
        for p in sample_problems(n, seed, "test", cfg)
    ]


def grade(extracted: str | None, gold: str) -> bool:
    try:
        return extracted is not None and int(extracted) == int(gold)
    except ValueError:
        return False


def _task(name: str, description: str, **difficulty: int) -> Task:
    """The organism's arithmetic task; `difficulty` overrides TraceConfig's defaults."""
    defaults = {k: getattr(TraceConfig(), k) for k in _DIFFICULTY}
    return Task(
        name=name,
        load=load,
        prompt_template="{question}",
        extract_answer=parse_answer,
        grade=grade,
        answer_kind="exact",
        raw_prompt=True,
        answer_template="ans {answer}",
        description=description,
        default_params={**defaults, **difficulty},
    )


TASKS.add("organism_arith", _task(
    "organism_arith",
    "sums of 3-5 one-digit terms in the organism's native chain-of-thought format"))
# The two ends of the organism's training distribution (3-5 terms), for the cross-task overlap
# of selected units (config: cross_task): are the units that drive 3-step chains those of 5-step ones?
TASKS.add("organism_arith_short", _task(
    "organism_arith_short",
    "sums of exactly 3 one-digit terms: the short end of the organism's 3-5 term training "
    "distribution", min_terms=3, max_terms=3))
TASKS.add("organism_arith_long", _task(
    "organism_arith_long",
    "sums of exactly 5 one-digit terms: the long end of the organism's 3-5 term training "
    "distribution", min_terms=5, max_terms=5))
