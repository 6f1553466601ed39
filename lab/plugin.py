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
from pydantic import Field, ValidationInfo, field_validator, model_validator

from golive.blocks import Strict
from golive.checkdef import Family


class LabSpec(Strict):
    """The embedded reference deployment: golive starts it for the run and stops it after.
    ``system`` picks the system lab (lab/systems/: ``oz``, the default, ``docusnap`` or
    ``docusnap_compose``);
    ``cost_ms`` and ``instances`` are the oz lab's."""

    system: str = "oz"
    variant: str = "compliant"
    cost_ms: float = Field(default=50, gt=0)
    instances: int | None = Field(default=None, ge=1, le=8)

    @field_validator("system")
    @classmethod
    def _known_system(cls, v: str) -> str:
        from lab.systems import parse_system

        return parse_system(v)

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, v: str, info: ValidationInfo) -> str:
        from lab.systems import parse_variant

        system = info.data.get("system")
        if system is None:  # the system itself was refused: that error is the one to show
            return v
        try:
            return parse_variant(system, v)
        except ValueError as exc:
            raise ValueError(f"unknown variant '{v}' of the {system} lab; `python -m lab variants` lists them") from exc

    @model_validator(mode="after")
    def _oz_options(self) -> LabSpec:
        # by value, not by fields set: golive re-validates a dumped copy (target.with_overrides)
        defaults = {name: field.default for name, field in type(self).model_fields.items()}
        for option in ("instances", "cost_ms"):
            if self.system != "oz" and getattr(self, option) != defaults[option]:
                raise ValueError(f"'{option}' is an option of the oz lab, not of the {self.system} lab")
        return self


# No checks: the lab contributes only its target fragment (``lab:``).
FAMILY = Family(name="lab", title="the embedded reference deployment", feature="", checks=(), target_block=LabSpec)


class StartedLab:
    """A running lab, as golive's plugin sees it (golive.hookspecs.StartedTarget)."""

    def __init__(self, running: Any, system: str = "oz") -> None:
        self.running = running
        self.system = system

    def __getattr__(self, name: str) -> Any:  # steps that know the lab (suites) reach RunningLab
        return getattr(self.running, name)

    def target_overrides(self) -> dict[str, Any]:
        return self.running.target_overrides()  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        extra = self.running.describe() if self.system != "oz" else {}
        return {"lab_system": self.system, "lab_variant": self.running.variant, **extra}

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
    from lab.systems import start

    options: dict[str, Any] = {"cost_ms": spec.cost_ms, "instances": spec.instances} if spec.system == "oz" else {}
    workdir = Path(tempfile.mkdtemp(prefix="golive-lab-"))
    try:
        running = start(spec.system, workdir, spec.variant, **options)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return StartedLab(running, spec.system)
