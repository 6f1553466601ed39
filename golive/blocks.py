"""The base classes of every profile and target block, core and family alike.

``Strict``: unknown keys are errors and values are frozen.  ``Block``: a profile
requirement block, which cites catalogue ids (``ref``) and may set the severity a failure
has.  Families (``checks/<family>/family.py``) derive their own fragments from these, so a
family's schema is validated exactly like the core's.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from golive import catalogue
from golive.model import Severity


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Block(Strict):
    """Every requirement block cites catalogue ids (``ref``) and may set the severity a
    failure has (otherwise the check's declared severity decides)."""

    ref: list[str] = Field(default_factory=list, description="catalogue ids, e.g. OZ-POC-HW-01")
    severity: Severity | None = None

    @field_validator("ref", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("ref")
    @classmethod
    def _known_ids(cls, v: list[str]) -> list[str]:
        for rid in v:
            if not catalogue.known(rid):
                raise ValueError(f"unknown requirement id '{rid}' (not in the catalogue; see docs/profiles.md)")
        return v
