"""Name -> object registries for models, tasks, granularities and methods.

Adding a model, task, granularity or method is one small module that calls
`REGISTRY.register("name")`; nothing else in the tree changes.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from ipg.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from a name to a registered object, with one-line errors for unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return add

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def replace(self, name: str, obj: T) -> T:
        """Add or overwrite `name` (entries a config declares may be declared again)."""
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; allowed: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
