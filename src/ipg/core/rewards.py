"""Outcome rewards R(tau) of a trajectory (docs/method.md, "Setting"): what IPG attributes.

- accuracy ("reasoning capability"): 1.0 if the task's grader accepts the extracted answer.
- length ("reasoning strength"): the number of generated reasoning tokens, i.e. all
  generated tokens except the final end-of-sequence token.
Advantages built from these rewards live in ipg.attribution.advantages.
"""
from __future__ import annotations

from typing import Sequence

from ipg.tasks.base import Task


def accuracy_reward(task: Task, pred: str | None, gold: str) -> float:
    return 1.0 if pred is not None and task.grade(pred, gold) else 0.0


def length_reward(gen_ids: Sequence[int], truncated: bool) -> float:
    return float(len(gen_ids) - (0 if truncated else 1))

