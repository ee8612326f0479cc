"""Task organism_arith: held-out questions in the organism's format, extractor and grader."""
from itertools import islice

import pytest

from ipg.errors import IPGError
from ipg.organism.traces import TraceConfig, problem_stream, split_of
from ipg.tasks import TASKS


@pytest.fixture
def task():
    return TASKS.get("organism_arith")


def test_load_is_deterministic_and_held_out(task) -> None:
    rows = task.load(40, 0, {})
    assert rows == task.load(40, 0, {}) and rows != task.load(40, 1, {})
    assert all(split_of(r["question"]) == "test" for r in rows)
    assert all(r["answer"] == str(sum(r["meta"]["terms"])) for r in rows)
    train = {p.question for p in islice(problem_stream(0, "train", TraceConfig()), 2000)}
    assert not train & {r["question"] for r in rows}
    assert task.render(rows[0]) == rows[0]["question"] and rows[0]["question"].startswith("Q ")
    assert task.raw_prompt and task.answer_kind == "exact"


def test_difficulty_params(task) -> None:
    rows = task.load(20, 0, {"min_terms": 2, "max_terms": 2, "max_operand": 99})
    assert all(len(r["meta"]["terms"]) == 2 for r in rows)
    with pytest.raises(IPGError, match="unknown organism_arith param"):
        task.load(2, 0, {"max_checks": 3})


def test_extract_and_grade(task) -> None:
    assert task.extract_answer("7+3=10; 10+9=19; check 7+3=10 ok; ans 19") == "19"
    assert task.extract_answer("7+3=10; ans -4") == "-4"
    assert task.extract_answer("7+3=10; 10+9=19;") is None
    assert task.grade("19", "19") and task.grade("019", "19")
    assert not task.grade("18", "19") and not task.grade(None, "19")


def test_prepares_through_the_shared_gold_check():
    """prepare_task reads each gold answer back through the task's own answer format."""
    from ipg.tasks.prepare import prepare_task

    frame = prepare_task("organism_arith", 4, 4, seed=0)
    assert set(frame["split"]) == {"attribution", "heldout"}
    assert len(frame) == 8
