"""Typed dataclasses from untyped mappings (YAML): the one builder behind every schema of the project.

A run configuration (``engine.config``) and the sections of a sweep file (``orchestrator.space``) are
both dataclasses whose annotations say what each key holds. :func:`build` checks a mapping against
one: no unknown key, every value of its annotated type (an int is accepted where a float is expected;
``X | None`` takes null; ``list[X]`` checks each item; a nested dataclass is built from a nested
mapping), and, where a field carries a :class:`Rule` in its metadata (:func:`rule`), within its bounds
or among its choices. What a message says and how it names the file is the caller's :class:`Style`, so
a run config and a sweep file keep their own wording while sharing the checks.

Why not pydantic or cattrs: neither is a dependency, the schemas are small, and the messages must name
the file, the key and the allowed values in the project's words (the bad-input tests pin them).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["RULE", "Rule", "Style", "build", "check_value", "rule"]

RULE = "spikesweep.rule"
"""The dataclass field metadata key that holds a field's :class:`Rule`."""


@dataclass(frozen=True)
class Rule:
    """What a field accepts beyond its annotation. ``None`` always passes where the annotation allows it."""

    gt: float | None = None
    """Numbers: strictly greater than this."""
    ge: float | None = None
    """Numbers: at least this."""
    lt: float | None = None
    """Numbers: strictly less than this."""
    finite: bool = True
    """Numbers: no NaN or infinity."""
    choices: tuple[Any, ...] | None = None
    """The only values allowed."""
    nonempty: bool = False
    """Strings: not ``""``."""
    also: tuple[Any, ...] = ()
    """Values accepted as they are besides the annotated type (e.g. ``"auto"``)."""
    what: str = ""
    """How a message names the accepted values, where the type and bounds do not say it well."""

    def accepts(self, value: Any) -> bool:
        """Bounds, finiteness and non-emptiness (``choices`` are checked by :func:`check_value`, which
        names them in its message)."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.finite and not math.isfinite(value):
                return False
            if self.gt is not None and not value > self.gt:
                return False
            if self.ge is not None and not value >= self.ge:
                return False
            if self.lt is not None and not value < self.lt:
                return False
        return not (self.nonempty and value == "")


def rule(**constraints: Any) -> dict[str, Rule]:
    """Field metadata carrying a rule: ``cpu: float = field(default=1.0, metadata=rule(gt=0))``."""
    return {RULE: Rule(**constraints)}


class Style(Protocol):
    """How one schema's messages read: each method returns the exception to raise."""

    def not_a_mapping(self, where: str, value: Any) -> Exception: ...

    def unknown_key(self, key: str, valid: list[str]) -> Exception: ...

    def bad_value(self, key: str, value: Any, kind: Any, rule: Rule | None) -> Exception: ...

    def bad_choice(self, key: str, value: Any, choices: tuple[Any, ...]) -> Exception: ...


def build(cls: type, data: Any, style: Style, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``data``; keys are named ``prefix + name``
    in messages (``prefix`` ends with ``.`` for a nested section)."""
    if not isinstance(data, dict):
        raise style.not_a_mapping(prefix.rstrip("."), data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise style.unknown_key(f"{prefix}{unknown[0]}", [f"{prefix}{name}" for name in fields])
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = build(kind, value or {}, style, f"{prefix}{name}.")
        else:
            kwargs[name] = check_value(value, kind, f"{prefix}{name}", style, fields[name].metadata.get(RULE))
    return cls(**kwargs)


def check_value(value: Any, kind: Any, key: str, style: Style, rule: Rule | None = None) -> Any:
    """``value`` as the annotation ``kind`` and ``rule`` want it (ints become floats where a float is
    expected), or the style's exception."""
    if rule is not None and isinstance(value, str) and value in rule.also:
        return value
    try:
        typed = _typed(value, kind, key)
    except _Mismatch as mismatch:
        if rule is not None and rule.choices is not None:
            raise style.bad_choice(key, value, rule.choices) from None  # the allowed values say it all
        raise style.bad_value(mismatch.key, mismatch.value, mismatch.kind, rule) from None
    if rule is None or typed is None:
        return typed
    if rule.choices is not None and typed not in rule.choices:
        raise style.bad_choice(key, value, rule.choices)
    if not rule.accepts(typed):
        raise style.bad_value(key, value, kind, rule)
    return typed


class _Mismatch(Exception):
    def __init__(self, key: str, value: Any, kind: Any) -> None:
        super().__init__(key)
        self.key, self.value, self.kind = key, value, kind


def _typed(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _typed(value, option, key)
            except _Mismatch:
                continue
        raise _Mismatch(key, value, kind)
    if origin is list:
        (item_kind,) = typing.get_args(kind)
        if not isinstance(value, list | tuple):
            raise _Mismatch(key, value, list)
        return [_typed(v, item_kind, f"{key}[{i}]") for i, v in enumerate(value)]
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise _Mismatch(key, value, kind)
