"""Prepare a task's prompts: attribution and held-out splits, validated, written as parquet.

`prepare_task` loads rows through the task's registered loader, drops repeated questions,
checks every gold answer is gradable by the task's own grader, renders the prompts and
assigns the first `n_attribution` rows to "attribution" and the next `n_heldout` to
"heldout" (disjoint by question text; fixed by the seed). `write_prepared` writes the
frame atomically; `read_prepared` reads and validates it. This is `data/prepared/{task}.parquet`.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipg.errors import IPGError
from ipg.tasks import get_task
from ipg.tasks.base import Task

if TYPE_CHECKING:  # pandas is imported where used: importing this module stays cheap
    import pandas as pd

COLUMNS = ["prompt_id", "task", "question", "prompt", "answer", "split"]
SPLITS = ("attribution", "heldout")
_MAX_TRIES = 4  # generators may repeat questions: ask for 1x, 2x, 4x, 8x as many rows


def _load_unique(task: Task, n: int, seed: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Up to n rows with distinct question text, in the loader's (seeded) order."""
    want = n
    for _ in range(_MAX_TRIES):
        rows = task.load(want, seed, params)
        unique: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, row in enumerate(rows):
            q, a = row.get("question"), row.get("answer")
            if q is None or not str(q).strip() or a is None or not str(a).strip():
                missing = "question" if q is None or not str(q).strip() else "answer"
                raise IPGError(f"task '{task.name}': source row {i} has no {missing}; "
                               f"fix the source data or the task's loader")
            key = " ".join(str(q).split())
            if key not in seen:
                seen.add(key)
                unique.append(row)
        if len(unique) >= n or len(rows) < want:  # enough, or the source is exhausted
            return unique[:n]
        want *= 2
    return unique[:n]


def _check_gold(task: Task, row: dict[str, Any], i: int) -> None:
    """The gold answer must grade as correct against itself and when boxed in a completion."""
    gold = str(row["answer"])
    boxed = task.extract_answer(task.answer_template.replace("{answer}", gold))
    if not (task.grade(gold, gold) and task.grade(boxed, gold)):
        raise IPGError(f"task '{task.name}': row {i} gold answer {gold!r} cannot be graded by the "
                       f"task's grader; fix the answer or the task's grader")


_TEXT_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".txt"}


def check_utf8_files(name: str, data_files: Any) -> None:
    """Local text data files must be UTF-8: else one IPGError naming the file, line and byte
    (the dataset reader would fail deep inside pyarrow without naming either)."""
    if isinstance(data_files, dict):
        files = [f for v in data_files.values() for f in ([v] if isinstance(v, str) else v)]
    elif isinstance(data_files, (str, list)):
        files = [data_files] if isinstance(data_files, str) else list(data_files)
    else:
        return
    for f in files:
        path = Path(str(f))
        if path.suffix.lower() not in _TEXT_SUFFIXES or not path.is_file():
            continue  # globs, archives and missing files are the loader's to report
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise IPGError(f"task '{name}': data file {path} is not UTF-8: line {line} (byte offset "
                           f"{e.start}) has byte 0x{data[e.start]:02x}; re-save it as UTF-8, e.g. "
                           f"iconv -f latin1 -t utf-8 {path} > fixed{path.suffix}") from None


def prepare_task(
    name: str, n_attribution: int, n_heldout: int, seed: int, params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """A frame [prompt_id, task, question, prompt, answer, split] with disjoint splits."""
    task = get_task(name)
    if n_attribution < 1 or n_heldout < 1:
        raise IPGError(f"task '{name}': n_attribution={n_attribution} and n_heldout={n_heldout} "
                       f"must both be >= 1 (an empty split cannot be evaluated)")
    merged = {**task.default_params, **(params or {})}
    check_utf8_files(name, merged.get("data_files"))
    n_total = n_attribution + n_heldout
    rows = _load_unique(task, n_total, seed, merged)
    if len(rows) < n_total:
        # keep the requested proportion, at least one row in each split
        n_attr = min(max(1, round(len(rows) * n_attribution / n_total)), len(rows) - 1)
        if len(rows) < 2:
            raise IPGError(f"task '{name}': the source has {len(rows)} distinct question(s), too few "
                           f"for two non-empty splits; lower n or check params")
        warnings.warn(f"task '{name}': source has {len(rows)} distinct questions, fewer than the "
                      f"{n_total} requested; using {n_attr} attribution + {len(rows) - n_attr} heldout")
    else:
        n_attr = n_attribution
    records = []
    for i, row in enumerate(rows):
        _check_gold(task, row, i)
        records.append({
            "prompt_id": f"{name}-{i:05d}",
            "task": name,
            "question": str(row["question"]),
            "prompt": task.render(row),
            "answer": str(row["answer"]),
            "split": SPLITS[0] if i < n_attr else SPLITS[1],
        })
    import pandas as pd

    return pd.DataFrame.from_records(records, columns=COLUMNS)


def write_prepared(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the frame as parquet atomically (temp file in the same folder + os.replace)."""
    _validate(df, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _validate(df: pd.DataFrame, where: str) -> None:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise IPGError(f"{where}: prepared table lacks column(s) {missing}; re-run prepare_task")
    bad = set(df["split"]) - set(SPLITS)
    if bad:
        raise IPGError(f"{where}: unknown split value(s) {sorted(bad)}; allowed: {', '.join(SPLITS)}")
    if df["prompt_id"].duplicated().any():
        dup = df.loc[df["prompt_id"].duplicated(), "prompt_id"].iloc[0]
        raise IPGError(f"{where}: prompt_id {dup!r} appears twice; re-run prepare_task")


def read_prepared(path: str | os.PathLike[str], split: str | None = None) -> pd.DataFrame:
    """Read a prepared parquet (optionally one split), with one-line errors for bad files."""
    path = Path(path)
    if split is not None and split not in SPLITS:
        raise IPGError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if not path.is_file():
        raise IPGError(f"prepared file {path} does not exist; run the prepare step for this task first")
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        reason = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise IPGError(f"prepared file {path} is not readable parquet ({reason}); delete it and "
                       f"re-run the prepare step") from None
    _validate(df, str(path))
    if split is not None:
        df = df[df["split"] == split].reset_index(drop=True)
    return df
