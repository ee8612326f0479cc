"""Answer extraction and grading shared by every task (the accuracy reward's R(tau)).

- `extract_final_answer`: the last ``\\boxed{...}`` of a completion, else the text after the
  last "answer is" / "answer to <...> is" / "Answer:" / "####" (only its leading number when
  words follow it: "3, since 4 - 1 = 3" -> "3"), else the last number; None when nothing is found.
- `grade_math`: mathematical equivalence with `math_verify` (gold and prediction both parsed,
  then `verify(gold, pred)`), e.g. "1/2" == "\\frac{1}{2}" == "0.5", "1,000" == "1000".
- `grade_exact`: whitespace/case-normalised string equality, for token answers.
- `extract_choice` / `grade_choice`: a multiple-choice letter (A-D by default), for GPQA.

Every function here is total: a garbage completion gives None or False, never an exception.
"""
from __future__ import annotations

import functools
import logging
import re
import threading
import warnings
from typing import Any

# latex2sympy logs a deprecation warning on every parse with math_verify's default config
logging.getLogger("latex2sympy2_extended.math_normalization").setLevel(logging.ERROR)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "answer is", "answer to this problem is" (a short clause, within one sentence), "Answer:", "####"
_MARKERS = re.compile(
    r"(?:answer(?:\s+(?:to|for|of)\b[^.\n]{1,60}?)?\s+is\s*:?|answer\s*:|####)", re.IGNORECASE
)
# "1,250" is one number (groups of three); "1,2,3" is three
_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.DOTALL)
# a number stated first and then justified in words: "3, since 4 - 1 = 3", "-12 and ...";
# math_verify would otherwise read an equation of the justification ("1 + 5 =") as the answer
_LEADING_NUMBER = re.compile(rf"^(?:\*\*|\$)?({_NUMBER.pattern})(?:\*\*|\$)?,?\s+[A-Za-z]")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            content = text[start : i - 1].strip()
            if content:
                return content
    return None


def _clean(answer: str) -> str:
    """Strip the decorations models put around a final answer: markdown, $, trailing dot."""
    s, prev = answer.strip(), None
    while s != prev:  # peel layers in any order: "**$42$**." -> "42"
        prev = s
        s = s.strip("*").strip().rstrip(".").strip()
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s[1:-1].strip()
        if s[:2] in ("\\(", "\\[") and s[-2:] in ("\\)", "\\]"):
            s = s[2:-2].strip()
    return s


def _after_marker(text: str) -> str | None:
    matches = list(_MARKERS.finditer(text))
    for m in reversed(matches):
        rest = text[m.end() :].strip()
        line = rest.split("\n", 1)[0]
        # a sentence ends at ". " (a dot followed by a space), not at a decimal point
        line = re.split(r"\.\s", line, maxsplit=1)[0]
        cleaned = _clean(line)
        leading = _LEADING_NUMBER.match(cleaned)
        if leading:
            return leading.group(1)
        if cleaned:
            return cleaned
    return None


def last_number(text: str) -> str | None:
    """The last number in the text, thousands separators removed ("1,234" -> "1234")."""
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    return numbers[-1].replace(",", "")


def extract_final_answer(completion: Any, number_fallback: bool = True) -> str | None:
    """The final answer of a completion: last boxed, else after "answer is", else last number."""
    if not isinstance(completion, str) or not completion.strip():
        return None
    boxed = last_boxed(completion)
    if boxed is not None:
        return _clean(boxed) or None
    marked = _after_marker(completion)
    if marked is not None:
        return marked
    return last_number(completion) if number_fallback else None


@functools.lru_cache(maxsize=65536)
def _parse_math(answer: str) -> tuple:
    """math_verify parses of an extracted answer string (math mode first, then plain text)."""
    from math_verify import parse  # imported on first use: registering tasks stays cheap

    parsed = parse(f"${answer}$") if "$" not in answer else parse(answer)
    if not parsed:
        parsed = parse(answer)
    return tuple(parsed)


def _as_float(s: str) -> float | None:
    try:
        return float(_clean(s).replace(",", "").replace("\\$", "").replace("\\%", ""))
    except ValueError:
        return None


_warned_thread = False


def grade_math(pred: str | None, gold: str) -> bool:
    """True iff `pred` is mathematically equivalent to `gold` (math_verify, gold first)."""
    if pred is None or not isinstance(pred, str) or not pred.strip():
        return False
    pred, gold = _clean(pred), _clean(str(gold))
    if threading.current_thread() is not threading.main_thread():
        # math_verify's timeouts use SIGALRM, which only the main thread may set
        global _warned_thread
        if not _warned_thread:
            warnings.warn("grade_math called off the main thread: numeric/string comparison only")
            _warned_thread = True
        a, b = _as_float(pred), _as_float(gold)
        return (a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))) or (
            normalize_exact(pred) == normalize_exact(gold)
        )
    from math_verify import verify  # imported on first use: registering tasks stays cheap

    try:
        gold_parsed, pred_parsed = _parse_math(gold), _parse_math(pred)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(list(gold_parsed), list(pred_parsed)))
    except Exception:  # noqa: BLE001 - sympy can fail in many ways on garbage; that is "wrong"
        return False


def normalize_exact(s: str, case_sensitive: bool = False) -> str:
    """Canonical form for exact-match grading: cleaned, whitespace collapsed, \\text{} removed."""
    s = _clean(s)
    m = _TEXT_WRAP.match(s)
    if m:
        s = m.group(1).strip()
    s = " ".join(s.split())
    return s if case_sensitive else s.lower()


def grade_exact(pred: str | None, gold: str, case_sensitive: bool = False) -> bool:
    """Exact string match after `normalize_exact` (for token answers)."""
    if pred is None or not isinstance(pred, str):
        return False
    p = normalize_exact(pred, case_sensitive)
    return bool(p) and p == normalize_exact(str(gold), case_sensitive)


def _choice_in(fragment: str, letters: str) -> str | None:
    """A lone option letter in a short fragment: "B", "(B)", "\\text{B}", "B) 42", "B."."""
    s = normalize_exact(fragment, case_sensitive=True)
    m = re.match(rf"^\(?([{letters}])\)?(?:[.):\s]|$)", s)
    return m.group(1) if m else None


def extract_choice(completion: Any, letters: str = "ABCD") -> str | None:
    """The chosen option letter: from the last boxed, else after "answer is"/"Answer:",
    else the last parenthesised "(X)"; None if nothing names a single letter."""
    if not isinstance(completion, str) or not completion.strip():
        return None
    boxed = last_boxed(completion)
    if boxed is not None:
        return _choice_in(boxed, letters)
    marked = _after_marker(completion)
    if marked is not None:
        letter = _choice_in(marked, letters)
        if letter:
            return letter
    found = re.findall(rf"\(([{letters}])\)", completion)
    return found[-1] if found else None


def grade_choice(pred: str | None, gold: str) -> bool:
    """True iff the extracted letter equals the gold letter (case-insensitive)."""
    if pred is None or not isinstance(pred, str):
        return False
    p = pred.strip().strip("()").upper()
    return len(p) == 1 and p == str(gold).strip().upper()


MATH_PROMPT = "{question}\n\nPlease reason step by step, and put your final answer within \\boxed{}."
CHOICE_PROMPT = (
    "{question}\n\nPlease reason step by step, and put the letter of your final answer "
    "(A, B, C or D) within \\boxed{}."
)


def grade_numeric(pred: str | None, gold: str) -> bool:
    """Both parse as numbers ("1,250" included) and agree to 1e-6 relative."""
    if pred is None:
        return False
    p, g = _as_float(_clean(str(pred))), _as_float(_clean(str(gold)))
    return p is not None and g is not None and abs(p - g) <= 1e-6 * max(1.0, abs(g))


def _extract_exact(completion: Any) -> str | None:
    return extract_final_answer(completion, number_fallback=False)


# name -> (extract_answer, grade, answer_kind): the graders a config task entry can name
GRADERS: dict[str, tuple[Any, Any, str]] = {
    "numeric": (extract_final_answer, grade_numeric, "math"),
    "math-verify": (extract_final_answer, grade_math, "math"),
    "exact": (_extract_exact, grade_exact, "exact"),
    "multiple_choice": (extract_choice, grade_choice, "choice"),
}
