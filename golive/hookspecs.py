"""Hooks golive's pytest plugin calls, for plugins that provide what the core must not know.

The embedded lab (``lab/plugin.py``, its own ``pytest11`` entry point) implements
:func:`pytest_golive_start_target`; the core never imports the lab.
"""
from __future__ import annotations

from typing import Any, Protocol

import pytest


class StartedTarget(Protocol):
    """A deployment a plugin started for this run."""

    def target_overrides(self) -> dict[str, Any]:
        """Target sections to replace (addresses and ports known only once started)."""

    def describe(self) -> dict[str, Any]:
        """What report.json records about it (e.g. the lab variant)."""

    def stop(self) -> None:
        """Stop it and remove everything it created (called on every exit path)."""


@pytest.hookspec(firstresult=True)
def pytest_golive_start_target(config: pytest.Config, target: Any) -> StartedTarget | None:
    """Start the deployment ``target`` describes, if this plugin provides it; else None."""
