"""The task abstraction: loader + prompt template + answer extractor + grader.

A task is registered by name in `ipg.tasks.TASKS`; adding one is one small module in
`src/ipg/tasks/` that builds a `Task` and calls `TASKS.add(name, task)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Row = dict[str, Any]  # {"question": str, "answer": str, optional "meta": dict}


@dataclass(frozen=True)
class Task:
    name: str
    # (n, seed, params) -> rows with at least "question" and "answer" (gold, as a string)
    load: Callable[[int, int, dict[str, Any]], list[Row]]
    # the prompt shown to the model; "{question}" is replaced by the row's question
    prompt_template: str
    # model completion text -> extracted answer string, or None when nothing parses
    extract_answer: Callable[[str], str | None]
    # (extracted answer or None, gold answer) -> correct?
    grade: Callable[[str | None, str], bool]
    answer_kind: Literal["math", "exact", "choice"] = "math"
    # True: the prompt is the model's native raw format (the organism); False: chat models
    # wrap it in their chat template.
    raw_prompt: bool = False
    description: str = ""
    # how a completion states its final answer; prepare_task checks that the extractor reads
    # the gold back from it ("{answer}" is replaced by the gold answer)
    answer_template: str = "The final answer is \\boxed{{answer}}"
    default_params: dict[str, Any] = field(default_factory=dict)
    # the keys its data.task_params entry accepts (None: not declared); checked at DAG build
    param_keys: tuple[str, ...] | None = None

    def render(self, row: Row) -> str:
        return self.prompt_template.replace("{question}", str(row["question"]))
