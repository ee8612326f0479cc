"""Bad data and tasks: an empty task split, dataset rows missing a field or with a gold answer
the task's grader cannot parse. Each fails with one line naming the task and the row, and the
prepared file is never written (harness: reliability_catalogue)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import pytest

from reliability_catalogue import case_registry, check_case

CASES, case = case_registry("test_bad_data")


def _fake_task(ctx, name: str, rows: list[dict], like: str = "chain_sum"):
    """A registered task (the grader of task `like`) whose loader returns `rows`."""
    from ipg.tasks import TASKS, get_task

    task = dataclasses.replace(get_task(like), name=name, load=lambda n, seed, p: rows,
                               default_params={})
    ctx.mp.setitem(TASKS._items, name, task)
    return task


def _prepare_to_file(ctx, name: str, n_attr: int = 1, n_held: int = 1) -> Callable[[], Any]:
    from ipg.tasks.prepare import prepare_task, write_prepared

    return lambda: write_prepared(prepare_task(name, n_attr, n_held, 0), ctx.out / f"{name}.parquet")


@case("task: empty split")
def _(ctx):
    return _prepare_to_file(ctx, "chain_sum", n_attr=4, n_held=0), ["'chain_sum'", "n_heldout=0"], \
        "must both be >= 1"


@case("task: dataset row missing a field")
def _(ctx):
    _fake_task(ctx, "rows_missing", [{"question": "1+1"}, {"question": "2+2", "answer": "4"}])
    return _prepare_to_file(ctx, "rows_missing"), ["'rows_missing'", "source row 0", "no answer"], \
        "fix the source data"


@case("task: unparsable gold answer")
def _(ctx):
    _fake_task(ctx, "rows_unparsable", [{"question": "Q 1+1; ", "answer": "2"},
                                        {"question": "Q 2+2; ", "answer": "four"}],
               like="organism_arith")  # integer answers: "four" does not parse
    return _prepare_to_file(ctx, "rows_unparsable"), ["'rows_unparsable'", "row 1", "'four'"], \
        "fix the answer or the task's grader"


@case("task: data file not UTF-8")
def _(ctx):
    from ipg.tasks.prepare import prepare_task, write_prepared

    data = ctx.tmp / "latin1.jsonl"  # line 2 holds a Latin-1 byte (0xe9); pyarrow failed ~30 frames deep
    data.write_bytes(b'{"question": "1+1", "answer": "2"}\n{"question": "caf\xe9 2+2", "answer": "4"}\n')
    params = {"path": "json", "data_files": str(data)}
    return lambda: write_prepared(prepare_task("gsm8k", 1, 1, 0, params), ctx.out / "gsm8k.parquet"), \
        [str(data), "not UTF-8", "line 2", "byte offset 52", "0xe9"], "re-save it as UTF-8"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_data_fails_with_one_clear_line(name: str, tmp_path: Path, monkeypatch, request) -> None:
    check_case(CASES[name], tmp_path, monkeypatch, request)
