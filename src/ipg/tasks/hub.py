"""The paper's Hugging Face benchmarks: GSM8K, MATH500, AIME2024, GPQA-Diamond.

Each task loads with `datasets.load_dataset(path, name, split=..., revision=...)` from a
pinned repo id (`HUB_SOURCES`). Params `path`, `name`, `split`, `data_files`, `revision`
override the source, so the same code path reads a local copy, e.g. the fixtures in
`data/fixtures/{task}/` via `{"path": "json", "data_files": ".../test.jsonl"}` (see
`fixture_params`). Offline with an uncached dataset, loading fails with one IPGError line
that says how to fetch it. Rows are sampled without replacement by the seed.
GPQA's four options are shuffled by `random.Random(f"{choice_seed}:{record id}")` (param
`choice_seed`, default 0) so that the option order does not change with the split seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.base import Row, Task
from ipg.tasks.grading import (
    CHOICE_PROMPT, MATH_PROMPT, extract_choice, extract_final_answer, grade_choice, grade_math,
)

FIXTURES = Path(__file__).resolve().parents[3] / "data" / "fixtures"
LETTERS = "ABCD"


class _Blank(Exception):
    """A row's required field is null or empty (datasets fills a missing column with None)."""


def _req(r: dict[str, Any], key: str) -> Any:
    """r[key], required: a KeyError when absent, _Blank when null or empty (never str(None))."""
    value = r[key]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _Blank(key)
    return value


def _gsm8k_row(r: dict[str, Any], i: int, params: dict[str, Any]) -> Row:
    # gold = the text after '####' (thousands separators dropped: "1,250" -> "1250")
    gold = str(_req(r, "answer")).split("####")[-1].strip().replace(",", "")
    return {"question": _req(r, "question"), "answer": gold, "meta": {"solution": _req(r, "answer"), "index": i}}


def _math500_row(r: dict[str, Any], i: int, params: dict[str, Any]) -> Row:
    meta = {k: r[k] for k in ("unique_id", "subject", "level") if k in r}
    return {"question": _req(r, "problem"), "answer": str(_req(r, "answer")), "meta": {**meta, "index": i}}


def _aime_row(r: dict[str, Any], i: int, params: dict[str, Any]) -> Row:
    meta = {k: r[k] for k in ("id", "url", "year") if k in r}
    return {"question": _req(r, "problem"), "answer": str(_req(r, "answer")).strip(), "meta": {**meta, "index": i}}


def _gpqa_row(r: dict[str, Any], i: int, params: dict[str, Any]) -> Row:
    correct = str(_req(r, "Correct Answer")).strip()
    options = [correct] + [str(_req(r, f"Incorrect Answer {k}")).strip() for k in (1, 2, 3)]
    key = r.get("Record ID") or str(_req(r, "Question"))
    random.Random(f"{params.get('choice_seed', 0)}:{key}").shuffle(options)
    gold = LETTERS[options.index(correct)]
    body = "\n".join(f"{letter}) {opt}" for letter, opt in zip(LETTERS, options))
    question = f"{str(_req(r, 'Question')).strip()}\n\n{body}"
    meta = {"record_id": r.get("Record ID"), "domain": r.get("High-level domain"), "options": options}
    return {"question": question, "answer": gold, "meta": {**meta, "index": i}}


@dataclass(frozen=True)
class HubSource:
    path: str
    name: str | None
    split: str
    revision: str | None  # a commit sha; None = the repo's main branch (not pinned)
    to_row: Callable[[dict[str, Any], int, dict[str, Any]], Row]
    fixture: str  # file under data/fixtures/{task}/
    note: str = ""


HUB_SOURCES: dict[str, HubSource] = {
    "gsm8k": HubSource("openai/gsm8k", "main", "test",
                       "740312add88f781978c0658806c59bc2815b9866", _gsm8k_row, "test.jsonl"),
    "math500": HubSource("HuggingFaceH4/MATH-500", None, "test",
                         "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be", _math500_row, "test.jsonl"),
    "aime2024": HubSource("HuggingFaceH4/aime_2024", None, "train",
                          "2fe88a2f1091d5048c0f36abc874fb997b3dd99a", _aime_row, "train.jsonl"),
    # gated: accept the terms on the dataset page and `huggingface-cli login` first
    "gpqa_diamond": HubSource("Idavidrein/gpqa", "gpqa_diamond", "train", None, _gpqa_row,
                              "train.jsonl", note=" (gated: accept its terms and `huggingface-cli login`)"),
}
_SOURCE_KEYS = {"path", "name", "split", "data_files", "revision"}


def fixture_params(task: str) -> dict[str, Any]:
    """Params that load a hub task from its bundled fixture instead of the Hub."""
    src = HUB_SOURCES[task]
    return {"path": "json", "data_files": str(FIXTURES / task / src.fixture), "split": src.split}


def _load_records(task: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw records of a hub task (from the Hub/HF cache or the overriding local files)."""
    import datasets

    src = HUB_SOURCES[task]
    overridden = "path" in params and params["path"] != src.path
    path = params.get("path", src.path)
    name = params.get("name", None if overridden else src.name)
    revision = params.get("revision", None if overridden else src.revision)
    split = params.get("split", src.split)
    data_files = params.get("data_files")
    if isinstance(data_files, (str, list)):
        files = [data_files] if isinstance(data_files, str) else data_files
        missing = [f for f in files if not any(c in str(f) for c in "*?[") and not Path(f).exists()]
        if missing:
            raise IPGError(f"task '{task}': data_files {missing[0]} does not exist; fix params.data_files")
        data_files = {split: data_files}  # so the requested split name exists in the local files
    try:
        ds = datasets.load_dataset(path, name, split=split, revision=revision, data_files=data_files)
    except Exception as e:  # noqa: BLE001 - every failure here is "cannot read this dataset"
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        if data_files is not None:
            raise IPGError(f"task '{task}': cannot read {path} files {params.get('data_files')}: {reason}") from None
        raise IPGError(
            f"task '{task}': dataset {path} (config {name}, split {split}, revision {revision}) is not in "
            f"the local HF cache ({reason}){src.note}; fetch it once with network: HF_HUB_OFFLINE=0 "
            f"HF_DATASETS_OFFLINE=0 python -c \"import datasets; datasets.load_dataset('{path}', "
            f"{name!r}, split='{split}', revision={revision!r})\", or give params path/data_files"
        ) from None
    return [dict(r) for r in ds]


def make_loader(task: str) -> Callable[[int, int, dict[str, Any]], list[Row]]:
    src = HUB_SOURCES[task]

    def load(n: int, seed: int, params: dict[str, Any]) -> list[Row]:
        unknown = set(params) - _SOURCE_KEYS - {"choice_seed"}
        if unknown:
            raise IPGError(f"task '{task}' has no param(s) {sorted(unknown)}; allowed: "
                           f"{', '.join(sorted(_SOURCE_KEYS | {'choice_seed'}))}")
        records = _load_records(task, params)
        rows = []
        for i, r in enumerate(records):
            try:
                rows.append(src.to_row(r, i, params))
            except KeyError as e:
                raise IPGError(f"task '{task}': row {i} has no field {e} (it has {sorted(r)}); the "
                               f"data must use the {src.path} schema (see data/fixtures/{task}/)") from None
            except _Blank as e:
                raise IPGError(f"task '{task}': row {i} has an empty or null '{e.args[0]}'; fill it "
                               f"in or drop the row from the data") from None
        random.Random(seed).shuffle(rows)
        return rows[: max(n, 0)]

    return load


_DESCRIPTIONS = {
    "gsm8k": "GSM8K test (1319 grade-school word problems; gold after '####')",
    "math500": "MATH500 test (500 competition problems; LaTeX answers)",
    "aime2024": "AIME 2024 (30 problems; integer answers 0-999)",
    "gpqa_diamond": "GPQA-Diamond (198 graduate science questions; 4 shuffled options, gold letter)",
}

for _task, _src in HUB_SOURCES.items():
    _choice = _task == "gpqa_diamond"
    TASKS.add(
        _task,
        Task(
            name=_task,
            load=make_loader(_task),
            prompt_template=CHOICE_PROMPT if _choice else MATH_PROMPT,
            extract_answer=extract_choice if _choice else extract_final_answer,
            grade=grade_choice if _choice else grade_math,
            answer_kind="choice" if _choice else "math",
            description=_DESCRIPTIONS[_task],
            default_params={"choice_seed": 0} if _choice else {},
            param_keys=tuple(sorted(_SOURCE_KEYS | {"choice_seed"})),
        ),
    )
