"""A small named registry: methods and datasets register here so they can be listed and tested."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from clipstudy.errors import ClipstudyError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, error: type[ClipstudyError] = ClipstudyError):
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._items, self._error) from None

    def names(self, where: Callable[[T], bool] | None = None) -> list[str]:
        """Every registered name, sorted; with `where`, those whose item it accepts (e.g. methods that train), so
        messages that list choices never go stale."""
        return sorted(name for name, item in self._items.items() if where is None or where(item))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
