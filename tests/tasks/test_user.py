"""Config-defined tasks (ipg.tasks.user): validated with one-line errors, prepared under their own
name with their own fields, grader and template, provenance (file sha256) recorded."""
from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
import pytest

from ipg.config.study import validate_config
from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.prepare import prepare_task

ROWS = [{"q": f"What is {i} + {i}?", "a": str(2 * i)} for i in range(1, 11)]


@pytest.fixture(autouse=True)
def _restore_registries(monkeypatch):
    """Config entries register into the process-wide registries: undo that after each test."""
    from ipg.models import MODELS as _models
    from ipg.tasks import TASKS as _tasks

    saved = dict(_models._items), dict(_tasks._items)
    monkeypatch.delenv("IPG_USER_ENTRIES", raising=False)
    yield
    os.environ.pop("IPG_USER_ENTRIES", None)
    for registry, items in zip((_models, _tasks), saved):
        registry._items.clear()
        registry._items.update(items)


@pytest.fixture()
def jsonl(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def config(tasks, study_tasks=("mytask",)):
    return {"study": [{"model": "tiny-qwen2", "tasks": list(study_tasks), "granularities": ["neurons"]}],
            "tasks": tasks}


def entry(path, **kw):
    return {"file": str(path), "question_field": "q", "answer_field": "a", "grader": "numeric",
            "prompt_template": "Q: {question}\nA:", **kw}


def test_jsonl_task_prepares_under_its_own_name(jsonl) -> None:
    cfg = validate_config(config({"mytask": entry(jsonl)}))
    assert "mytask" in TASKS and TASKS.get("mytask").description == f"from config: {jsonl}"
    params = cfg["data"]["task_params"]["mytask"]
    df = prepare_task("mytask", 3, 3, 0, params)
    assert list(df["split"]) == ["attribution"] * 3 + ["heldout"] * 3
    by_q = {r["q"]: r["a"] for r in ROWS}
    for _, row in df.iterrows():
        assert row["task"] == "mytask" and row["answer"] == by_q[row["question"]]
        assert row["prompt"] == f"Q: {row['question']}\nA:"
    rows = TASKS.get("mytask").load(10, 0, params)
    assert rows[0]["meta"]["sha256"] == hashlib.sha256(jsonl.read_bytes()).hexdigest()
    task = TASKS.get("mytask")
    assert task.grade(task.extract_answer("so the answer is 1,250."), "1250")
    assert not task.grade(task.extract_answer("the answer is 12"), "1250")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet(tmp_path, suffix) -> None:
    path = tmp_path / f"qa{suffix}"
    frame = pd.DataFrame(ROWS)
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    cfg = validate_config(config({"mytask": entry(path, grader="exact")}))
    df = prepare_task("mytask", 2, 2, 1, cfg["data"]["task_params"]["mytask"])
    assert set(df["question"]) <= {r["q"] for r in ROWS} and len(df) == 4


@pytest.mark.parametrize("change, message", [
    ({"file": "nowhere.jsonl"}, r"tasks.mytask.file: nowhere.jsonl does not exist"),
    ({"question_field": "question"}, r"tasks.mytask.question_field: .* row 0 has no field 'question'"),
    ({"grader": "fuzzy"}, r"tasks.mytask.grader: unknown grader 'fuzzy'; allowed: numeric"),
    ({"prompt_template": "Answer this."}, r"tasks.mytask.prompt_template: has no \{question\}"),
    ({"hub": "org/ds"}, r"exactly one of file"),
    ({"colour": 1}, r"unknown key\(s\) \['colour'\]"),
])
def test_bad_entries_are_one_line(jsonl, change, message) -> None:
    with pytest.raises(IPGError, match=message) as err:
        validate_config(config({"mytask": entry(jsonl, **change)}))
    assert "\n" not in str(err.value)


def test_builtin_name_is_refused(jsonl) -> None:
    with pytest.raises(IPGError, match="'gsm8k' is a built-in task"):
        validate_config(config({"gsm8k": entry(jsonl)}, ["gsm8k"]))


def test_hub_dataset_from_a_local_cache(tmp_path, monkeypatch) -> None:
    """hub: org/ds goes through datasets.load_dataset(<repo id>, revision=...); offline, a local
    folder named like the repo id stands for the hub (the same call, no network)."""
    data = tmp_path / "org" / "ds"
    data.mkdir(parents=True)
    pd.DataFrame(ROWS).to_json(data / "train.jsonl", orient="records", lines=True)
    monkeypatch.chdir(tmp_path)
    cfg = validate_config(config({"mytask": {"hub": "org/ds", "revision": "main", "question_field": "q",
                                             "answer_field": "a", "grader": "numeric"}}))
    rows = TASKS.get("mytask").load(4, 0, cfg["data"]["task_params"]["mytask"])
    assert len(rows) == 4 and rows[0]["meta"]["hub"] == "org/ds"
