"""YAML loading that remembers where every value came from.

Config errors must name the file, the line and the fix (architecture: exit 4, no
traceback).  PyYAML's plain loader forgets positions, so we compose the node graph and
build Python data ourselves, keeping a map from each key path to its (line, column).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[Any, ...]


class ConfigError(Exception):
    """A profile, target or waiver file is wrong.  ``str()`` is the whole user message."""

    def __init__(self, path: Path | str, line: int | None, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.fix = fix
        where = f"{self.path}:{line}" if line else self.path
        msg = f"{where}: {problem}"
        if fix:
            msg += f"\n  fix: {fix}"
        super().__init__(msg)


@dataclasses.dataclass
class PositionedYaml:
    """Parsed YAML data plus the 1-based line of each key path."""

    path: Path
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of ``loc`` (pydantic locations may point into
        values that have no own node, e.g. a union member name)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader.construct_scalar(_LOADER, key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                raise ConfigError(path, key_node.start_mark.line + 1, "mapping keys must be plain strings")
            key_str = str(key)
            if key_str in out:
                raise ConfigError(path, key_node.start_mark.line + 1, f"duplicate key '{key_str}'",
                                  "remove one of the two entries")
            lines[loc + (key_str,)] = key_node.start_mark.line + 1
            out[key_str] = _build(value_node, loc + (key_str,), lines, path)
            lines[loc + (key_str,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), lines, path) for i, item in enumerate(node.value)]
    return _LOADER.construct_object(node, deep=True)


_LOADER = yaml.SafeLoader("")


def load(path: Path | str) -> PositionedYaml:
    """Parse ``path``; raise :class:`ConfigError` with the line for syntax errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(p, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, None, f"cannot read file: {exc}") from None
    return loads(text, p)


def loads(text: str, path: Path | str = "<string>") -> PositionedYaml:
    p = Path(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = f"YAML syntax error: {exc.problem or exc.context}"
        raise ConfigError(p, line, problem, "check indentation and quoting on that line (tabs are not allowed)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(p, None, f"YAML error: {exc}") from None
    if node is None:
        raise ConfigError(p, 1, "the file is empty", "write a mapping with at least 'name:'")
    lines: dict[Loc, int] = {}
    try:
        data = _build(node, (), lines, p)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ConfigError(p, mark.line + 1 if mark else None, f"YAML error: {exc.problem}") from None
    return PositionedYaml(p, data, lines)
