"""Tasks defined in the study config (`tasks: {name: {file: ... | hub: ..., ...}}`), no code.

    tasks:
      mytask:
        file: data/my.jsonl          # .jsonl / .json / .csv / .parquet, or hub: org/dataset
        split: train                 # hub only (also config: <dataset config>, revision: <sha>)
        question_field: question
        answer_field: answer
        grader: numeric              # ipg.tasks.grading.GRADERS: numeric | math-verify | exact | multiple_choice
        prompt_template: "Solve: {question}\\nPut the final answer in \\\\boxed{}."

`check_entry` validates one entry with one-line errors (ipg.config.study calls it when the DAG is
built); `register` adds it to TASKS. The entry itself is the task's params, so a changed
entry reruns its prepare rule; the prepared rows' meta records the file and its sha256.
The Snakefile passes the entries to rule scripts in $IPG_USER_ENTRIES (read on import).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.base import Row, Task
from ipg.tasks.grading import GRADERS

ENV = "IPG_USER_ENTRIES"
SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
FROM_CONFIG: set[str] = set()  # names registered from a config (may be re-registered)
KEYS = {"file", "hub", "split", "config", "revision", "question_field", "answer_field", "grader",
        "prompt_template", "description"}


def check_entry(name: str, entry: dict[str, Any]) -> None:
    """One-line IPGError for a bad entry: source, file, grader, template, fields of the first row."""
    where = f"config error at tasks.{name}"
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise IPGError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(KEYS))}")
    if ("file" in entry) == ("hub" in entry):
        raise IPGError(f"{where}: give exactly one of file: <path> or hub: <org/dataset>")
    if "file" in entry:
        path = Path(entry["file"])
        if path.suffix not in SUFFIXES:
            raise IPGError(f"{where}.file: {path} is not one of {', '.join(SUFFIXES)}")
        if not path.is_file():
            raise IPGError(f"{where}.file: {path} does not exist; fix the path (relative to the project root)")
    if entry.get("grader", "math-verify") not in GRADERS:
        raise IPGError(f"{where}.grader: unknown grader {entry['grader']!r}; allowed: {', '.join(GRADERS)}")
    if "{question}" not in entry.get("prompt_template", "{question}"):
        raise IPGError(f"{where}.prompt_template: has no {{question}} placeholder; add it where the question goes")
    if "file" in entry:  # fields: checked on the first record (hub data is checked when prepared)
        first = _records(name, entry, limit=1)
        for key in ("question_field", "answer_field"):
            field = entry.get(key, key.split("_")[0])
            if first and field not in first[0]:
                raise IPGError(f"{where}.{key}: {entry['file']} row 0 has no field {field!r} "
                               f"(it has {sorted(first[0])}); set {key}")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _records(name: str, entry: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    import datasets

    try:
        if "file" in entry:
            path = str(entry["file"])
            ds = datasets.load_dataset(SUFFIXES[Path(path).suffix], data_files={"train": path}, split="train")
        else:
            ds = datasets.load_dataset(entry["hub"], entry.get("config"), split=entry.get("split", "train"),
                                       revision=entry.get("revision"))
    except Exception as e:  # noqa: BLE001 - every failure here is "cannot read this data"
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        source = entry.get("file") or f"hub dataset {entry.get('hub')}"
        raise IPGError(f"task '{name}': cannot read {source} ({reason}); fix tasks.{name}") from None
    n = len(ds) if limit is None else min(limit, len(ds))
    return [dict(ds[i]) for i in range(n)]


def make_loader(name: str):
    def load(n: int, seed: int, params: dict[str, Any]) -> list[Row]:
        q_field, a_field = params.get("question_field", "question"), params.get("answer_field", "answer")
        source = {"file": str(params["file"]), "sha256": file_sha256(params["file"])} if "file" in params \
            else {"hub": params["hub"], "revision": params.get("revision"), "split": params.get("split", "train")}
        rows = []
        for i, r in enumerate(_records(name, params)):
            if q_field not in r or a_field not in r:
                raise IPGError(f"task '{name}': row {i} has no field {q_field if q_field not in r else a_field!r} "
                               f"(it has {sorted(r)}); fix tasks.{name}.question_field / answer_field")
            rows.append({"question": r[q_field], "answer": str(r[a_field]).strip(),
                         "meta": {"index": i, **source}})
        random.Random(seed).shuffle(rows)
        return rows[: max(n, 0)]

    return load


def make_task(name: str, entry: dict[str, Any]) -> Task:
    extract, grade, kind = GRADERS[entry.get("grader", "math-verify")]
    source = entry.get("file") or f"{entry.get('hub')}@{entry.get('revision', 'main')}"
    template = entry.get("prompt_template", "{question}")
    return Task(name=name, load=make_loader(name), prompt_template=template, extract_answer=extract,
                grade=grade, answer_kind=kind, description=entry.get("description") or f"from config: {source}",
                answer_template="The final answer is \\boxed{{answer}}" if kind != "choice" else "Answer: {answer}",
                default_params=dict(entry))


def register(name: str, entry: dict[str, Any]) -> None:
    """Add (or, for the same name from the config again, replace) a config task in TASKS."""
    if name in TASKS and name not in FROM_CONFIG:
        raise IPGError(f"config error at tasks.{name}: {name!r} is a built-in task; choose another name")
    FROM_CONFIG.add(name)
    TASKS.replace(name, make_task(name, entry))


for _name, _entry in json.loads(os.environ.get(ENV) or "{}").get("tasks", {}).items():
    register(_name, _entry)
