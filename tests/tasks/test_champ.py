"""Tests for ipg.tasks.champ: the packaged 270 problems, gold cleaning, grading."""
from __future__ import annotations

import champ_dataset
import pytest

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.champ import answer_type, clean_answer, grade_champ


def test_registered_and_all_270_problems_load() -> None:
    task = TASKS.get("champ")
    rows = task.load(1000, 0, {"answer_types": ["math", "yesno", "text"]})
    assert len(rows) == 270  # CHAMP's published size
    texts = {p.text for p in champ_dataset.load("v0").problems.values()}
    assert {r["question"] for r in rows} == texts


@pytest.mark.parametrize(
    "raw, cleaned, kind",
    [("C(10, 5), or equivalently 252", "252", "math"),
     ("100 (i.e., all values)", "100", "math"),
     ("0 is the only possible value", "0", "math"),
     ("The limit exists and is equal to 2/3", "2/3", "math"),
     ("376 and 625", "376, 625", "math"),
     ("0 pairs", "0", "math"),
     ("5/14, or approximately 35.7%", "5/14", "math"),
     ("No", "No", "yesno"),
     ("No integer solutions", "No integer solutions", "text")],
)
def test_clean_answer(raw: str, cleaned: str, kind: str) -> None:
    assert clean_answer(raw) == cleaned
    assert answer_type(cleaned) == kind


def test_default_load_has_only_gradable_golds() -> None:
    task = TASKS.get("champ")
    rows = task.load(1000, 0, dict(task.default_params))
    assert 0 < len(rows) < 270
    assert all(r["meta"]["answer_type"] in {"math", "yesno"} for r in rows)
    for r in rows[:40]:
        gold = r["answer"]
        assert task.grade(task.extract_answer(f"Thus \\boxed{{{gold}}}."), gold), r["meta"]["id"]


def test_grade_champ() -> None:
    assert grade_champ("No, it cannot", "No") and not grade_champ("Yes", "No")
    assert grade_champ("\\text{Yes}", "Yes")
    assert grade_champ("625, 376", "376, 625")  # an unordered set of solutions
    assert grade_champ("\\frac{2}{3}", "2/3") and not grade_champ("3/2", "2/3")
    assert not grade_champ(None, "2/3")


def test_load_sample_depends_on_seed() -> None:
    task = TASKS.get("champ")
    a, b = task.load(5, 0, {}), task.load(5, 1, {})
    assert a == task.load(5, 0, {}) and a != b


def test_bad_params_are_one_line_errors() -> None:
    load = TASKS.get("champ").load
    for params in ({"answer_types": ["math", "prose"]}, {"colour": 1}, {"version": "v9"}):
        with pytest.raises(IPGError) as err:
            load(3, 0, params)
        assert "\n" not in str(err.value) and "champ" in str(err.value)
