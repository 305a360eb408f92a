"""Name → object registries.

Every user-facing choice (model, neuron, surrogate, sliding schedule, dataset pair, ...) is picked by a
short name from a YAML file or the command line. A registry turns that name into the class or function
that implements it, so nothing in the project ever ``eval``s a string, and an unknown name fails early
with the list of valid ones instead of deep inside a training run.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to entries, filled with the :meth:`register` decorator.

    Args:
        kind: what the entries are ("model", "neuron", ...); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator that records ``obj`` under ``name`` (default: its ``__name__``)."""

        def decorator(obj: T) -> T:
            key = name or obj.__name__  # type: ignore[attr-defined]
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the entry called ``name``; a ``ValueError`` lists the valid names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(unknown_name_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def close_matches(word: object, valid: list[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The project's one did-you-mean: up to ``n`` of ``valid`` closest to ``word`` (difflib's ratio ≥
    ``cutoff``), best first. Used by every "unknown key/name/value" message."""
    return difflib.get_close_matches(str(word), valid, n=n, cutoff=cutoff)


def unknown_name_message(kind: str, name: object, valid: list[str]) -> str:
    """The one wording used for every "unknown name" error: the name, the closest match, all choices."""
    close = close_matches(name, valid)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid {kind} names: {', '.join(valid)}"
