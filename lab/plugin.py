"""The embedded lab as a pytest plugin of its own (``pytest11`` entry point ``golive-lab``).

golive's core knows nothing of the lab: a target with a ``lab:`` section (the fragment
below, registered like a check family's through the ``golive.families`` entry point) is
started here through the ``pytest_golive_start_target`` hook, and stopped -- its temporary folder,
TLS private key included, removed -- on every exit path.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, field_validator

from golive.blocks import Strict
from golive.checkdef import Family


class LabSpec(Strict):
    """The embedded reference deployment: golive starts it for the run and stops it after."""

    variant: str = "compliant"
    cost_ms: float = Field(default=50, gt=0)
    instances: int | None = Field(default=None, ge=1, le=8)

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, v: str) -> str:
        from lab.variants import Variant

        try:
            return Variant.parse(v).key
        except ValueError as exc:
            raise ValueError(f"unknown lab variant '{v}'; `python -m lab variants` lists them") from exc


# No checks: the lab contributes only its target fragment (``lab:``).
FAMILY = Family(name="lab", title="the embedded reference deployment", feature="", checks=(), target_block=LabSpec)


class StartedLab:
    """A running lab, as golive's plugin sees it (golive.hookspecs.StartedTarget)."""

    def __init__(self, running: Any) -> None:
        self.running = running

    def __getattr__(self, name: str) -> Any:  # steps that know the lab (suites) reach RunningLab
        return getattr(self.running, name)

    def target_overrides(self) -> dict[str, Any]:
        return self.running.target_overrides()  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        return {"lab_variant": self.running.variant}

    def stop(self) -> None:
        try:
            self.running.stop()
        finally:
            shutil.rmtree(self.running.workdir, ignore_errors=True)


@pytest.hookimpl
def pytest_golive_start_target(config: pytest.Config, target: Any) -> StartedLab | None:
    spec = getattr(target, "lab", None)
    if spec is None:
        return None
    from lab.run import start_lab

    workdir = Path(tempfile.mkdtemp(prefix="golive-lab-"))
    try:
        running = start_lab(workdir, spec.variant, cost_ms=spec.cost_ms, instances=spec.instances)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return StartedLab(running)
