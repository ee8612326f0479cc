"""Tests for ipg.tasks.grading: extraction, math equivalence, exact match, multiple choice."""
from __future__ import annotations

import random
import string
import threading
from fractions import Fraction

import pytest

from ipg.tasks.grading import (
    extract_choice, extract_final_answer, grade_choice, grade_exact, grade_math, last_boxed,
)


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("first \\boxed{3} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # the last box, nested braces
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("So the answer is $1,000$.", "1,000"),
        ("Step 1: 2+2=4.\nAnswer: **7.5**", "7.5"),
        ("Therefore, the final answer is 12. I hope it is correct.", "12"),
        ("#### 72", "72"),
        ("we get 3 apples, then 1,250 pears", "1250"),  # last number, separators dropped
        ("x = -4", "-4"),
        ("the roots are 1,2,3", "3"),
        ("in 2024, we had 0.75", "0.75"),
        # a stated number, then its justification in words: the number alone
        ("The answer is 3, since 4 - 1 = 3.", "3"),
        ("So the answer is **7** because 3 + 4 = 7", "7"),
        ("The answer is 1,000 dollars.", "1,000"),
        ("The answer is 1, 2, 3.", "1, 2, 3"),  # a list stays whole
        # "answer to <the problem> is" marks the answer too (SmolLM2's usual phrasing)
        ("The final answer to this arithmetic problem is 8 and can be represented as 1 + 5 =.", "8"),
        ("The answer to the given problem is -12, which is 0 - 4 - 8.", "-12"),
        ("The final answer to the given arithmetic problem is 2.", "2"),
    ],
)
def test_extract_final_answer(completion: str, expected: str) -> None:
    assert extract_final_answer(completion) == expected


@pytest.mark.parametrize(
    "completion, gold, correct",
    [
        # math_verify read the restated question "1 + 5" as the answer: 8 was graded as 6
        ("The final answer to this arithmetic problem is 8 and can be represented as 1 + 5 =.", "6", False),
        ("The final answer to this arithmetic problem is 8 and can be represented as 1 + 5 =.", "8", True),
        ("The final answer to this arithmetic problem is 8 and can be represented as 1 + 5 =.", "5", False),
        ("The answer is 8 and can be represented as 1 + 5 =.", "6", False),
        # ...and "3, since 4 - 1 = 3" parsed as a set with an equation: a right answer graded wrong
        ("The answer is 3, since 4 - 1 = 3.", "3", True),
        ("The answer to the given problem is -12, which is 0 - 4 - 8.", "-12", True),
        ("The answer to the given problem is -12, which is 0 - 4 - 8.", "8", False),
    ],
)
def test_stated_answer_is_graded_not_its_justification(completion: str, gold: str, correct: bool) -> None:
    assert grade_math(extract_final_answer(completion), gold) is correct


@pytest.mark.parametrize("garbage", ["", "   ", "no digits here", "\\boxed{", "\\boxed{}", None, 42, b"7"])
def test_extract_final_answer_garbage_is_none(garbage: object) -> None:
    assert extract_final_answer(garbage) is None


def test_last_boxed_balances_braces() -> None:
    assert last_boxed("\\boxed{a{b}c} and \\boxed{d}") == "d"
    assert last_boxed("\\boxed{a{b}c}") == "a{b}c"
    assert last_boxed("\\boxed{unclosed") is None


@pytest.mark.parametrize(
    "pred, gold",
    [("0.5", "\\frac{1}{2}"), ("1/2", "\\dfrac{1}{2}"), ("1,000", "1000"), ("72.0", "72"),
     ("2^{n-1}", "2^(n-1)"), ("(3,\\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"), ("6\\sqrt{2}", "\\sqrt{72}"),
     ("030", "30"), ("x=12", "12")],
)
def test_grade_math_equivalent_forms(pred: str, gold: str) -> None:
    assert grade_math(pred, gold)


@pytest.mark.parametrize("pred, gold", [("3", "4"), ("-12", "12"), ("\\frac{1}{3}", "0.5"), ("2^{n}", "2^{n-1}")])
def test_grade_math_different_values(pred: str, gold: str) -> None:
    assert not grade_math(pred, gold)


def test_grade_math_matches_fraction_arithmetic() -> None:
    """Equivalence of p/q and its scaled LaTeX form agrees with fractions.Fraction."""
    rng = random.Random(0)
    for _ in range(20):
        p, q, k = rng.randint(-50, 50), rng.randint(1, 30), rng.randint(2, 5)
        r, s = rng.randint(-50, 50), rng.randint(1, 30)
        scaled = f"\\frac{{{p * k}}}{{{q * k}}}"
        assert grade_math(f"{p}/{q}", scaled)
        assert grade_math(f"{r}/{s}", scaled) == (Fraction(r, s) == Fraction(p, q))


def test_grade_math_never_raises_on_garbage() -> None:
    rng = random.Random(1)
    alphabet = string.printable + "\\{}^_$"
    for _ in range(40):
        junk = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        assert grade_math(junk, "17") in (True, False)
    assert not grade_math(None, "17")
    assert not grade_math("", "17")
    assert not grade_math("\\boxed{{{", "17")
    assert not grade_math("9" * 5000 + "x", "17")


def test_grade_math_off_main_thread_still_grades() -> None:
    out: dict[str, bool] = {}

    def run() -> None:
        out["right"] = grade_math("1,000", "1000")
        out["wrong"] = grade_math("999", "1000")

    with pytest.warns(UserWarning, match="main thread"):
        t = threading.Thread(target=run)
        t.start()
        t.join()
    assert out == {"right": True, "wrong": False}


def test_grade_exact() -> None:
    assert grade_exact("  Hello   World. ", "hello world")
    assert grade_exact("\\text{yes}", "Yes")
    assert not grade_exact("Hello", "hello", case_sensitive=True)
    assert not grade_exact(None, "x")
    assert not grade_exact("", "")


@pytest.mark.parametrize(
    "completion, letter",
    [("\\boxed{B}", "B"), ("\\boxed{\\text{(C)}}", "C"), ("The answer is (D).", "D"), ("Answer: A", "A"),
     ("Answer: B) 42 kg", "B"), ("(B) is wrong, so (C).", "C"), ("\\boxed{E}", None), ("A cat sat.", None),
     ("\\boxed{42}", None), ("", None), (None, None)],
)
def test_extract_choice(completion: object, letter: str | None) -> None:
    assert extract_choice(completion) == letter


def test_grade_choice() -> None:
    assert grade_choice("B", "B") and grade_choice("b", "B") and grade_choice("(B)", "B")
    assert not grade_choice("C", "B") and not grade_choice(None, "B") and not grade_choice("BC", "B")
