"""Tests for ipg.tasks.reasoning_gym_tasks: registration, determinism, agreement with
reasoning-gym's own `score_answer` on correct and incorrect answers."""
from __future__ import annotations

import pytest
import reasoning_gym

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.reasoning_gym_tasks import GENERATORS


def test_required_generators_registered() -> None:
    assert {"gsm_symbolic", "chain_sum", "basic_arithmetic"} <= set(GENERATORS)
    assert set(GENERATORS) <= set(TASKS.names())


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_grader_agrees_with_reasoning_gym_scoring(name: str) -> None:
    task = TASKS.get(name)
    dataset_name, defaults, _ = GENERATORS[name]
    ds = reasoning_gym.create_dataset(dataset_name, size=12, seed=3, **defaults)
    rows = task.load(12, 3, dict(defaults))
    assert [r["question"] for r in rows] == [e["question"] for e in ds]
    for row, entry in zip(rows, ds):
        gold = row["answer"]
        right = f"Let me think step by step.\nSo the result is \\boxed{{{gold}}}."
        ours_right = task.grade(task.extract_answer(right), gold)
        theirs_right = ds.score_answer(task.extract_answer(right), entry) == 1.0
        assert ours_right and theirs_right
        wrong_value = str(int(float(gold)) + 7)  # these generators have integer answers
        wrong = f"... so the answer is \\boxed{{{wrong_value}}}"
        assert not task.grade(task.extract_answer(wrong), gold)
        assert ds.score_answer(wrong_value, entry) < 1.0
        assert not task.grade(task.extract_answer("I cannot solve this."), gold)


def test_prompt_asks_for_boxed_answer() -> None:
    task = TASKS.get("chain_sum")
    row = task.load(1, 0, {})[0]
    prompt = task.render(row)
    assert prompt.startswith(row["question"]) and "\\boxed{}" in prompt and "step by step" in prompt


def test_load_is_deterministic_in_seed() -> None:
    task = TASKS.get("basic_arithmetic")
    assert task.load(6, 1, {}) == task.load(6, 1, {})
    assert [r["question"] for r in task.load(6, 1, {})] != [r["question"] for r in task.load(6, 2, {})]


def test_generator_params_pass_through() -> None:
    rows = TASKS.get("chain_sum").load(5, 0, {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    for r in rows:
        expr = r["question"].split(":")[-1].strip().rstrip("=").strip()
        assert len(expr.split()) == 3  # "a op b"
        assert eval(expr) == int(r["answer"])  # noqa: S307 - a generated "a + b" expression


def test_bad_generator_param_is_one_line_error() -> None:
    with pytest.raises(IPGError) as err:
        TASKS.get("chain_sum").load(3, 0, {"no_such_knob": 1})
    assert "\n" not in str(err.value) and "chain_sum" in str(err.value)
