"""What part of the profile a run checked: the effective selection, counted.

A GO must mean that the whole profile ran.  pytest narrows a run in many ways: ``-k``,
``-m``, node ids, ``--deselect``, options hidden in ``$PYTEST_ADDOPTS`` or ``addopts``,
plugins that drop items, and golive's own ``--hosts``/``--roles``.  Rather than parse
every way, :class:`SelectionTracker` counts: the golive items collected before any
``pytest_collection_modifyitems`` implementation ran (M) and after all of them (N), plus
what the ``pytest_deselected`` hook reported.  A run with N < M, or with a host filter, is
*partial*: its verdict is at best ``PASS-PARTIAL`` (docs/usage.md, "Partial runs").

Collection in this process only: under pytest-xdist the workers collect, so the
controller sees no count and the selection is judged from the options alone.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from golive.redact import redact

# pytest options that narrow a run without using collection hooks golive can count (they
# act before collection or stop it early); each makes the run partial on its own
NARROWING_OPTIONS = {"keyword": "-k", "markexpr": "-m", "deselect": "--deselect", "ignore": "--ignore",
                     "ignore_glob": "--ignore-glob", "maxfail": "--maxfail/-x"}
REFUSED_OPTIONS = {"lf": "--lf/--last-failed", "stepwise": "--sw/--stepwise", "stepwise_skip": "--sw-skip"}


def refuse_cache_selection(config: pytest.Config) -> None:
    """``--lf`` and ``--sw`` select by what failed *before*; golive runs without pytest's
    cache (``-p no:cacheprovider``), so they would quietly run everything.  Refuse them."""
    used = [flag for dest, flag in REFUSED_OPTIONS.items() if getattr(config.option, dest, False)]
    if used:
        raise pytest.UsageError(
            f"{', '.join(used)}: not supported by golive runs: golive keeps no pytest cache (a verdict is about "
            "the target now, not about what failed last time), so the option would silently run everything\n"
            "  fix: run the whole profile, or rerun the checks you want with -k CHECK_ID "
            "(a partial run: its verdict is PASS-PARTIAL at best)")


@dataclasses.dataclass
class Selection:
    """The effective selection of one run, as report.json records it (``run.selection``)."""

    collected: int | None = None  # golive items before any deselection (M); None: not counted here (xdist)
    selected: int | None = None  # golive items left to run (N)
    deselected_reported: int = 0  # golive items announced through pytest_deselected
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # -k, -m, --deselect, ... as given
    host_filter: dict[str, Any] | None = None  # --hosts / --roles, from the target's selection
    locations: list[str] = dataclasses.field(default_factory=list)  # test paths/node ids narrower than testpaths
    addopts_env: str = ""  # $PYTEST_ADDOPTS (redacted)
    args: list[str] = dataclasses.field(default_factory=list)  # the command line (redacted)

    @property
    def deselected(self) -> int:
        if self.collected is None or self.selected is None:
            return self.deselected_reported
        return max(self.collected - self.selected, self.deselected_reported)

    @property
    def reasons(self) -> list[str]:
        """Why this run is partial, in words; empty for a complete run."""
        out = []
        if self.deselected:
            out.append(f"{self.deselected} of {self.collected if self.collected is not None else '?'} checks deselected")
        for key, flag in NARROWING_OPTIONS.items():
            value = self.options.get(key)
            if value:
                out.append(f"{flag} {value!r}" if not isinstance(value, bool) else flag)
        if self.locations:
            out.append("only these test locations: " + ", ".join(self.locations))
        if self.host_filter:
            out.append(f"host filter {self.host_filter.get('describe', '')}".strip())
        return out

    @property
    def complete(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, "collected": self.collected, "selected": self.selected,
                "deselected": self.deselected, "options": self.options, "host_filter": self.host_filter,
                "locations": self.locations,
                "addopts_env": self.addopts_env, "args": self.args, "reasons": self.reasons}


def _options(config: pytest.Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in NARROWING_OPTIONS:
        value = getattr(config.option, key, None)
        if key == "maxfail":
            value = value if isinstance(value, int) and value > 0 else None
        if value:
            out[key] = [redact(str(v)) for v in value] if isinstance(value, list) else (
                value if isinstance(value, int) else redact(str(value)))
    return out


def _locations(config: pytest.Config) -> list[str]:
    """Test paths or node ids given on the command line that are narrower than the whole
    suite (``testpaths``): they limit collection itself, so counting cannot see them."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    root = config.rootpath
    whole = {(root / p).resolve() for p in (config.getini("testpaths") or ["."])}
    out = []
    for arg in config.args:
        path = arg.split("::", 1)[0]
        if "::" not in arg and (root / path).resolve() in whole | {root.resolve()}:
            continue
        out.append(redact(arg))
    return out


def from_config(config: pytest.Config) -> Selection:
    env = os.environ.get("PYTEST_ADDOPTS", "")
    return Selection(options=_options(config), addopts_env=redact(env), locations=_locations(config),
                     args=[redact(a) for a in config.invocation_params.args])


class SelectionTracker:
    """A pytest plugin object: counts golive items before and after every deselection."""

    def __init__(self, selection: Selection, is_golive: Callable[[pytest.Item], bool]) -> None:
        self.selection = selection
        self.is_golive = is_golive

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Iterator[None]:
        self.selection.collected = sum(1 for i in items if self.is_golive(i))
        result = yield
        self.selection.selected = sum(1 for i in items if self.is_golive(i))
        return result

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.selection.deselected_reported += sum(1 for i in items if self.is_golive(i))


def command_line(sel: dict[str, Any]) -> str:
    """The command line as a shell would show it (for the report)."""
    return shlex.join(sel.get("args", []))
