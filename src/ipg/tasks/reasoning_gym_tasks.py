"""Offline procedural math tasks from reasoning-gym (generated from a seed, no download).

Each row is `reasoning_gym.create_dataset(name, size=n, seed=seed, **params)[i]` with
question = entry["question"], answer = entry["answer"]; graded by `grading.grade_math`
(tests check it agrees with reasoning-gym's own `score_answer`). Adding a generator is one
line in `GENERATORS`.
"""
from __future__ import annotations

from typing import Any

from ipg.errors import IPGError
from ipg.tasks import TASKS
from ipg.tasks.base import Row, Task
from ipg.tasks.grading import MATH_PROMPT, extract_final_answer, grade_math

# task name -> (reasoning-gym dataset name, default generator params, description)
GENERATORS: dict[str, tuple[str, dict[str, Any], str]] = {
    "gsm_symbolic": ("gsm_symbolic", {}, "GSM8K-style word problems with resampled numbers"),
    "chain_sum": ("chain_sum", {}, "sums and differences of 2-6 integers"),
    "basic_arithmetic": ("basic_arithmetic", {}, "+ - * / expressions with parentheses"),
    "leg_counting": ("leg_counting", {}, "count the legs of a list of animals"),
}


def make_loader(dataset: str):
    """A `Task.load` for one reasoning-gym generator; params are the generator's config."""

    def load(n: int, seed: int, params: dict[str, Any]) -> list[Row]:
        if n < 1:
            return []
        import reasoning_gym  # imported on first use: registering tasks stays cheap

        try:
            ds = reasoning_gym.create_dataset(dataset, size=n, seed=seed, **params)
        except (TypeError, ValueError, AssertionError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise IPGError(
                f"reasoning-gym '{dataset}' rejected params {sorted(params)}: {msg}; "
                f"fix the task params (see reasoning_gym's {dataset} config)"
            ) from None
        return [
            {
                "question": str(entry["question"]),
                "answer": str(entry["answer"]),
                "meta": {"source": f"reasoning_gym/{dataset}", "index": i},
            }
            for i, entry in enumerate(ds)
        ]

    return load


for _name, (_dataset, _defaults, _desc) in GENERATORS.items():
    TASKS.add(
        _name,
        Task(
            name=_name,
            load=make_loader(_dataset),
            prompt_template=MATH_PROMPT,
            extract_answer=extract_final_answer,
            grade=grade_math,
            answer_kind="math",
            description=f"reasoning-gym {_dataset}: {_desc}",
            default_params=dict(_defaults),
        ),
    )
