"""YAML loading that remembers where every value came from.

Config errors must name the file, the line and the fix (architecture: exit 4, no
traceback).  PyYAML's plain loader forgets positions, so we compose the node graph and
build Python data ourselves, keeping a map from each key path to its (line, column).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[Any, ...]

#: Bounds on what a configuration file may be (a config is a few KiB; these stop alias
#: bombs and runaway files before they cost memory or time).
MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_DEPTH = 40
MAX_VALUES = 100_000


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


class _Budget:
    """How many values the document expands to (aliases repeat whole subtrees)."""

    def __init__(self) -> None:
        self.values = 0


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path, budget: _Budget | None = None) -> Any:
    budget = budget or _Budget()
    budget.values += 1
    if budget.values > MAX_VALUES:
        # the line of the nearest key: an alias's node carries its anchor's line, not its own
        keyed = [loc[:i] for i in range(len(loc), 0, -1) if isinstance(loc[i - 1], str) and loc[:i] in lines]
        raise ConfigError(path, lines[keyed[0]] if keyed else node.start_mark.line + 1, f"the document expands to more than {MAX_VALUES} values "
                          "(aliases repeating large parts?)", "write the values out; configuration files are small")
    if len(loc) > MAX_DEPTH:
        raise ConfigError(path, node.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels",
                          "flatten the structure")
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
            lines[(*loc, key_str)] = key_node.start_mark.line + 1
            out[key_str] = _build(value_node, (*loc, key_str), lines, path, budget)
            lines[(*loc, key_str)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), lines, path, budget) for i, item in enumerate(node.value)]
    return _scalar(node, path)


def _scalar(node: yaml.Node, path: Path) -> Any:
    """One scalar; a value YAML recognises but cannot build (``2027-02-30``) or a number
    that is not finite (``.inf``, ``.nan``) is a config error at its line."""
    line = node.start_mark.line + 1
    try:
        value = _LOADER.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except (ValueError, OverflowError, TypeError) as exc:
        text = getattr(node, "value", "")
        if node.tag.endswith(":timestamp"):
            raise ConfigError(path, line, f"'{text}' is not a valid date: {exc}",
                              "write a real calendar date as YYYY-MM-DD, e.g. 2027-02-28") from None
        raise ConfigError(path, line, f"cannot read '{text}': {exc}", "quote it if it is meant as text") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, line, f"'{getattr(node, 'value', value)}' is not a finite number",
                          "write a plain number, e.g. 60")
    return value


def _prescan(text: str, path: Path) -> None:
    """Refuse alias bombs and runaway nesting from the token stream, before any node is
    built (composing a deeply nested document recurses in PyYAML)."""
    aliases = depth = 0
    opens = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
             yaml.FlowSequenceStartToken)
    closes = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
    for tok in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(tok, yaml.AliasToken):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise ConfigError(path, tok.start_mark.line + 1, f"more than {MAX_ALIASES} YAML aliases (*name)",
                                  "write the values out instead of repeating anchors")
        elif isinstance(tok, opens):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(path, tok.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels",
                                  "flatten the structure")
        elif isinstance(tok, closes):
            depth -= 1


_LOADER = yaml.SafeLoader("")


def load(path: Path | str) -> PositionedYaml:
    """Parse ``path``; raise :class:`ConfigError` with the line for syntax errors."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ConfigError(p, raw[:MAX_BYTES].count(b"\n") + 1, f"the file is larger than {MAX_BYTES // 1024} KiB",
                              "a configuration file is a few KiB; is this the right file?")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(p, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(p, None, "is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, None, f"cannot read file: {exc}") from None
    return loads(text, p)


def loads(text: str, path: Path | str = "<string>") -> PositionedYaml:
    p = Path(path)
    if len(text) > MAX_BYTES:
        raise ConfigError(p, text[:MAX_BYTES].count("\n") + 1, f"the document is larger than {MAX_BYTES // 1024} KiB",
                          "a configuration file is a few KiB; is this the right file?")
    try:
        _prescan(text, p)
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
