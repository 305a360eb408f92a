"""The one YAML reader for files a user names (run configs, presets, sweep spaces) and ``--set`` values.

Why not plain ``yaml.safe_load``: safe_load never runs code, but it still (1) expands aliases without
bound — a 500-byte "billion laughs" file hangs validation, (2) lets a duplicated key silently win, (3)
recurses without limit on deep nesting, and (4) reads ``1e-3`` as a *string* (YAML 1.1 wants a dot),
so ``--set optim.lr=1e-3`` was refused as "must be a number". This reader refuses aliases, reports a
duplicated key with both lines, bounds size and depth, reads YAML 1.2 exponent numbers as floats, and
turns every I/O and encoding problem into one sentence that names the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "StrictLoader", "load_yaml_text", "read_yaml_file"]

MAX_YAML_BYTES = 1 << 20
"""1 MiB: ten times the largest shipped file's size times a hundred; anything bigger is not a config."""
MAX_YAML_DEPTH = 32
"""Nesting depth of mappings and lists; a sweep space needs four."""

# YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: an exponent without a dot (1e-3, 2E+6).
_YAML12_EXPONENT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")


class YamlInputError(ConfigError):
    """The text could be read but is not acceptable YAML for a config (alias, duplicate key, depth)."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases or duplicate keys, with a depth bound and YAML 1.2 exponent floats."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 — PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlInputError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed in "
                "spikesweep files; write the value out"
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlInputError(f"line {mark.line + 1}: nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 — PyYAML's signature
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML reports it below
                continue
            if first is not None:
                raise YamlInputError(f"duplicate key {key!r} on lines {first} and {line}; keep one")
            seen[key] = line
        return super().construct_mapping(node, deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_EXPONENT, list("-+0123456789"))


def load_yaml_text(text: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader` (errors are :class:`YamlInputError` / ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 — StrictLoader is a SafeLoader


def read_yaml_file(path: Path, what: str, error: type[ConfigError] = ConfigError) -> Any:
    """The parsed YAML of ``path``; any problem raises ``error`` with one sentence naming the file."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {str(path)!r} is a directory, not a file")
    if not path.exists():
        raise error(f"{what} {str(path)!r} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise error(f"{path}: {size} bytes; a {what} may have at most {MAX_YAML_BYTES} bytes")
        data = path.read_bytes()
    except PermissionError:
        raise error(f"{what} {str(path)!r} cannot be read: permission denied") from None
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(f"{path}: the file is UTF-16 text; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return load_yaml_text(text)
    except YamlInputError as exc:
        raise error(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply") from None
