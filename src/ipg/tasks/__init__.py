"""Task registry. Every module in this package registers its tasks with `TASKS.add`.

Modules are discovered automatically: adding a task is adding one module here.
"""
from __future__ import annotations

import importlib
import pkgutil

from ipg.registry import Registry
from ipg.tasks.base import Task

TASKS: Registry[Task] = Registry("task")

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in {"base", "prepare"} and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def get_task(name: str) -> Task:
    return TASKS.get(name)
