"""Tests for ipg.tasks.prepare: splits, determinism, validation, atomic parquet I/O."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.base import Task
from ipg.tasks.grading import extract_final_answer, grade_math
from ipg.tasks.hub import fixture_params
from ipg.tasks.prepare import COLUMNS, prepare_task, read_prepared, write_prepared

OFFLINE_TASKS = ["gsm_symbolic", "chain_sum", "basic_arithmetic", "leg_counting", "champ"]


@pytest.fixture
def fake_task():
    """Register a throwaway task whose loader returns the given rows; unregister after."""
    names: list[str] = []

    def make(rows: list[dict], name: str = "fake_prepare_task") -> str:
        TASKS.add(name, Task(name=name, load=lambda n, seed, params: [dict(r) for r in rows][:n],
                             prompt_template="Q: {question}\nA:", extract_answer=extract_final_answer,
                             grade=grade_math))
        names.append(name)
        return name

    yield make
    for name in names:
        TASKS._items.pop(name, None)


@pytest.mark.parametrize("name", OFFLINE_TASKS)
def test_offline_task_prepares_deterministic_disjoint_splits(name: str) -> None:
    df = prepare_task(name, 5, 5, seed=0)
    task = TASKS.get(name)
    assert list(df.columns) == COLUMNS
    assert (df["split"] == "attribution").sum() == 5 and (df["split"] == "heldout").sum() == 5
    assert df["prompt_id"].tolist() == [f"{name}-{i:05d}" for i in range(10)]
    assert (df["task"] == name).all()
    attr, held = df[df.split == "attribution"], df[df.split == "heldout"]
    assert not set(attr["question"]) & set(held["question"])
    for row in df.itertuples():
        assert row.prompt == task.render({"question": row.question})
        assert task.grade(task.extract_answer(f"so \\boxed{{{row.answer}}}"), row.answer)
    pd.testing.assert_frame_equal(df, prepare_task(name, 5, 5, seed=0))
    assert not df["question"].equals(prepare_task(name, 5, 5, seed=1)["question"])


def test_hub_task_prepares_from_fixture() -> None:
    df = prepare_task("gpqa_diamond", 4, 4, seed=0, params=fixture_params("gpqa_diamond"))
    assert len(df) == 8 and set(df["answer"]) <= set("ABCD")
    assert df["prompt"].str.contains("A) ", regex=False).all()


def test_repeated_questions_are_dropped_so_splits_stay_disjoint(fake_task) -> None:
    rows = [{"question": f"What is {i % 4} + 1?", "answer": str(i % 4 + 1)} for i in range(12)]
    with pytest.warns(UserWarning, match="4 distinct"):
        df = prepare_task(fake_task(rows), 3, 3, seed=0)
    assert len(df) == 4 and df["question"].is_unique
    assert set(df["split"]) == {"attribution", "heldout"}


def test_short_source_is_split_proportionally_with_warning(fake_task) -> None:
    rows = [{"question": f"{i} + {i}?", "answer": str(2 * i)} for i in range(6)]
    with pytest.warns(UserWarning, match="fewer than the 20 requested"):
        df = prepare_task(fake_task(rows), 10, 10, seed=0)
    assert (df["split"] == "attribution").sum() == 3 and (df["split"] == "heldout").sum() == 3


def test_empty_split_is_an_error(fake_task) -> None:
    one = fake_task([{"question": "1+1?", "answer": "2"}])
    with pytest.raises(IPGError, match="too few"):
        prepare_task(one, 1, 1, seed=0)
    with pytest.raises(IPGError, match="n_heldout=0"):
        prepare_task("chain_sum", 3, 0, seed=0)


@pytest.mark.parametrize(
    "bad, message",
    [({"question": "", "answer": "2"}, "row 1 has no question"),
     ({"question": "3+3?"}, "row 1 has no answer"),
     ({"question": "3+3?", "answer": "\\frac{1}{2"}, "row 1 gold answer")],
)
def test_bad_rows_are_one_line_errors(fake_task, bad: dict, message: str) -> None:
    name = fake_task([{"question": "1+1?", "answer": "2"}, bad, {"question": "2+2?", "answer": "4"}])
    with pytest.raises(IPGError) as err:
        prepare_task(name, 1, 2, seed=0)
    assert message in str(err.value) and name in str(err.value) and "\n" not in str(err.value)


def test_unknown_task_is_one_line_error() -> None:
    with pytest.raises(IPGError) as err:
        prepare_task("no_such_task", 1, 1, seed=0)
    assert "no_such_task" in str(err.value) and "\n" not in str(err.value)


def test_write_read_roundtrip_and_split_filter(tmp_path: Path) -> None:
    df = prepare_task("chain_sum", 3, 2, seed=4)
    path = write_prepared(df, tmp_path / "sub" / "chain_sum.parquet")
    assert [p.name for p in path.parent.iterdir()] == ["chain_sum.parquet"]  # no temp file left
    pd.testing.assert_frame_equal(read_prepared(path), df)
    held = read_prepared(path, split="heldout")
    assert len(held) == 2 and (held["split"] == "heldout").all()


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    df = prepare_task("chain_sum", 2, 2, seed=0)
    target = tmp_path / "out.parquet"
    write_prepared(df, target)
    before = target.read_bytes()

    def boom(self, path, **kw):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError):
        write_prepared(df, target)
    assert os.listdir(tmp_path) == ["out.parquet"] and target.read_bytes() == before


def test_read_errors_are_one_line(tmp_path: Path) -> None:
    cases = {"missing": tmp_path / "missing.parquet", "corrupt": tmp_path / "corrupt.parquet",
             "columns": tmp_path / "columns.parquet"}
    cases["corrupt"].write_bytes(b"not a parquet file")
    pd.DataFrame({"prompt": ["x"]}).to_parquet(cases["columns"])
    expected = {"missing": "does not exist", "corrupt": "not readable parquet", "columns": "lacks column"}
    for key, path in cases.items():
        with pytest.raises(IPGError) as err:
            read_prepared(path)
        assert expected[key] in str(err.value) and path.name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(IPGError, match="split 'train'"):
        read_prepared(cases["missing"], split="train")
