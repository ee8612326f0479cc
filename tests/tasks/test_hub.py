"""Tests for ipg.tasks.hub: each benchmark loads its local fixture through the same
`datasets.load_dataset` path as the Hub, renders prompts and grades gold / wrong answers."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.hub import FIXTURES, HUB_SOURCES, fixture_params

HUB_TASKS = ["gsm8k", "math500", "aime2024", "gpqa_diamond"]


def _raw(task: str) -> list[dict]:
    path = FIXTURES / task / HUB_SOURCES[task].fixture
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _load(task: str, n: int = 100, seed: int = 0, **extra: object) -> list[dict]:
    t = TASKS.get(task)
    return t.load(n, seed, {**t.default_params, **fixture_params(task), **extra})


def test_registered_with_pinned_sources() -> None:
    assert set(HUB_TASKS) <= set(TASKS.names())
    for task in ("gsm8k", "math500", "aime2024"):
        rev = HUB_SOURCES[task].revision
        assert rev is not None and len(rev) == 40 and int(rev, 16) >= 0


@pytest.mark.parametrize("task", HUB_TASKS)
def test_fixture_loads_renders_and_grades(task: str) -> None:
    t = TASKS.get(task)
    rows = _load(task)
    assert 5 <= len(rows) == len(_raw(task))
    for row in rows:
        prompt = t.render(row)
        assert row["question"] in prompt and "\\boxed{}" in prompt
        gold = row["answer"]
        assert t.grade(t.extract_answer(f"Reasoning...\nThe final answer is \\boxed{{{gold}}}."), gold)
        wrong = "E" if t.answer_kind == "choice" else "-123456"
        assert not t.grade(t.extract_answer(f"... \\boxed{{{wrong}}}"), gold)
        assert not t.grade(t.extract_answer("I give up"), gold)


def test_gsm8k_gold_is_the_text_after_hashes() -> None:
    by_question = {r["question"]: r["answer"] for r in _raw("gsm8k")}
    for row in _load("gsm8k"):
        tail = by_question[row["question"]].rsplit("#### ", 1)[1]
        assert float(row["answer"]) == float(tail.replace(",", ""))
        assert "####" not in row["answer"]


def test_gpqa_options_are_a_seeded_permutation_with_gold_letter() -> None:
    raw = {r["Question"]: r for r in _raw("gpqa_diamond")}
    rows = _load("gpqa_diamond")
    letters_seen = set()
    for row in rows:
        stem, options_text = row["question"].split("\n\n")
        r = raw[stem]
        options = [line[3:] for line in options_text.splitlines()]
        assert [line[:3] for line in options_text.splitlines()] == ["A) ", "B) ", "C) ", "D) "]
        assert sorted(options) == sorted([r["Correct Answer"]] + [r[f"Incorrect Answer {k}"] for k in (1, 2, 3)])
        assert options["ABCD".index(row["answer"])] == r["Correct Answer"]
        letters_seen.add(row["answer"])
    assert len(letters_seen) > 1  # shuffled, not always A
    # the option order depends on choice_seed, not on the sampling seed
    key = lambda rs: sorted(r["question"] for r in rs)  # noqa: E731
    assert key(_load("gpqa_diamond", seed=5)) == key(rows)
    assert key(_load("gpqa_diamond", choice_seed=1)) != key(rows)


def test_seed_selects_a_different_sample() -> None:
    a, b = _load("math500", n=4, seed=0), _load("math500", n=4, seed=1)
    assert a == _load("math500", n=4, seed=0) and a != b


def test_missing_fixture_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(IPGError) as err:
        TASKS.get("gsm8k").load(3, 0, {"path": "json", "data_files": str(tmp_path / "nope.jsonl")})
    assert "\n" not in str(err.value) and "nope.jsonl" in str(err.value)


def test_wrong_schema_is_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"prompt": "1+1?", "target": "2"}) + "\n")
    with pytest.raises(IPGError) as err:
        TASKS.get("gsm8k").load(3, 0, {"path": "json", "data_files": str(f)})
    assert "\n" not in str(err.value) and "row 0 has no field" in str(err.value)


def test_unknown_param_is_one_line_error() -> None:
    with pytest.raises(IPGError) as err:
        TASKS.get("aime2024").load(3, 0, {"dataset": "x"})
    assert "\n" not in str(err.value) and "dataset" in str(err.value)


@pytest.mark.skipif(not datasets.config.HF_HUB_OFFLINE, reason="needs HF_HUB_OFFLINE=1 (no network here)")
def test_offline_uncached_dataset_is_one_line_error() -> None:
    with pytest.raises(IPGError) as err:
        TASKS.get("gsm8k").load(3, 0, {"path": "ipg-tests/not-a-cached-dataset"})
    msg = str(err.value)
    assert "\n" not in msg and "ipg-tests/not-a-cached-dataset" in msg
    assert "not in the local HF cache" in msg and "HF_DATASETS_OFFLINE=0" in msg
