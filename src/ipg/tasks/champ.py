"""CHAMP: 270 competition math problems shipped inside the `champ-dataset` wheel (offline).

`champ_dataset.load("v0")` gives `Dataset.problems` (identifier -> Problem with `.text` and
`.answer`). CHAMP's gold answers are free text written for an LLM judge ("C(10, 5), or
equivalently 252", "0 is the only possible value", "No integer solutions"). `clean_answer`
reduces them to a gradable form with a few rules; each problem is then classified as
"math" (a formula or number, graded by math_verify), "yesno" (graded by the first word) or
"text" (a sentence no rule-based grader can check). By default only math and yes/no
problems are loaded (param `answer_types`).
"""
from __future__ import annotations

import functools
import random
import re
from typing import Any

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.base import Row, Task
from ipg.tasks.grading import MATH_PROMPT, extract_final_answer, grade_math, normalize_exact

CHAMP_VERSION = "v0"
ANSWER_TYPES = ("math", "yesno", "text")

# (pattern, replacement) applied in order to a gold answer
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\s*\((?:i\.e\.,?|none |no )[^)]*\)\s*$"), ""),  # "100 (i.e., all values)"
    (re.compile(r"^.*,\s*or (?:equivalently|an equivalent form such as)\s+(.+)$"), r"\1"),
    (re.compile(r",\s*or approximately .*$"), ""),  # "5/14, or approximately 35.7%"
    (re.compile(r"^(.+?) is the only possible value$"), r"\1"),
    (re.compile(r"^The limit exists and is equal to (.+)$"), r"\1"),
    (re.compile(r"^The only possible value for the limit is (.+)$"), r"\1"),
    (re.compile(r"^(\S+) (?:pairs|inequalities|values|roots|times)$"), r"\1"),
    (re.compile(r"\s+and\s+"), ", "),  # "376 and 625" -> "376, 625" (a set)
]
# words allowed in a "math" answer (function names), all others make it "text"
_MATH_WORDS = {"sqrt", "floor", "ceil", "sum"}
_YESNO = {"yes", "no"}


def clean_answer(answer: str) -> str:
    """A CHAMP gold answer reduced to a formula / number / word (see the module docstring)."""
    s = answer.strip()
    for pattern, repl in _RULES:
        s = pattern.sub(repl, s).strip()
    return s


def answer_type(cleaned: str) -> str:
    """"yesno", "math" or "text" for a cleaned gold answer."""
    if normalize_exact(cleaned) in _YESNO:
        return "yesno"
    words = {w.lower() for w in re.findall(r"[A-Za-z]{3,}", cleaned)}
    return "math" if words <= _MATH_WORDS else "text"


def grade_champ(pred: str | None, gold: str) -> bool:
    """Yes/no golds: the first word of the prediction; all others: math equivalence."""
    if pred is None or not isinstance(pred, str):
        return False
    if normalize_exact(gold) in _YESNO:
        words = re.findall(r"[a-z]+", normalize_exact(pred))
        return bool(words) and words[0] == normalize_exact(gold)
    return grade_math(pred, gold)


@functools.lru_cache(maxsize=2)
def _problems(version: str) -> tuple[tuple[str, str, str, str], ...]:
    """(id, category, text, raw answer) of every problem, in file order (the JSON is 72 MB: cached)."""
    import champ_dataset

    try:
        dataset = champ_dataset.load(version)
    except FileNotFoundError:
        raise IPGError(f"champ-dataset has no version '{version}'; use version: {CHAMP_VERSION}") from None
    return tuple((pid, p.category, p.text, p.answer) for pid, p in dataset.problems.items())


def load_champ(n: int, seed: int, params: dict[str, Any]) -> list[Row]:
    """Up to n CHAMP problems of the allowed answer types, sampled without replacement by seed."""
    unknown = set(params) - {"answer_types", "version"}
    if unknown:
        raise IPGError(f"task 'champ' has no param(s) {sorted(unknown)}; allowed: answer_types, version")
    allowed = params.get("answer_types", ["math", "yesno"])
    allowed = [allowed] if isinstance(allowed, str) else list(allowed)
    if not set(allowed) <= set(ANSWER_TYPES):
        raise IPGError(f"task 'champ' param answer_types={allowed}: use a subset of {list(ANSWER_TYPES)}")
    rows: list[Row] = []
    for pid, category, text, raw in _problems(str(params.get("version", CHAMP_VERSION))):
        gold = clean_answer(raw)
        kind = answer_type(gold)
        if kind in allowed:
            rows.append({
                "question": text,
                "answer": gold,
                "meta": {"id": pid, "category": category, "raw_answer": raw, "answer_type": kind},
            })
    random.Random(seed).shuffle(rows)
    return rows[: max(n, 0)]


TASKS.add(
    "champ",
    Task(
        name="champ",
        load=load_champ,
        prompt_template=MATH_PROMPT,
        extract_answer=extract_final_answer,
        grade=grade_champ,
        answer_kind="math",
        description="CHAMP (270 competition problems; free-text golds cleaned, sentence answers dropped)",
        default_params={"answer_types": ["math", "yesno"], "version": CHAMP_VERSION},
    ),
)
