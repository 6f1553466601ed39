"""The base classes of every profile and target block, core and family alike.

``Strict``: unknown keys are errors and values are frozen.  ``Block``: a profile
requirement block, which cites catalogue ids (``ref``) and may set the severity a failure
has.  Families (``checks/<family>/family.py``) derive their own fragments from these, so a
family's schema is validated exactly like the core's.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from golive import catalogue
from golive.model import Severity

# fields that take one string or a list of them (a validator wraps a single one); the JSON
# Schema says so, so the published schema accepts `ref: OZ-POC-HW-01` as profiles write it
OneOrMany = Annotated[list[str], WithJsonSchema({"anyOf": [{"type": "string"},
                                                           {"type": "array", "items": {"type": "string"}}]})]


def also_accepts(*short_forms: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` for a model whose ``mode="before"`` validator also takes a short
    form (a plain string for a URL or a command, ...): its JSON Schema becomes
    ``anyOf: [the mapping, *short_forms]``, so the published schema accepts what golive accepts."""

    def extra(schema: dict[str, Any]) -> None:
        mapping = dict(schema)
        schema.clear()
        schema["anyOf"] = [mapping, *short_forms]
        if "title" in mapping:
            schema["title"] = mapping["title"]

    return extra


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Block(Strict):
    """Every requirement block cites catalogue ids (``ref``) and may set the severity a
    failure has (otherwise the check's declared severity decides)."""

    ref: OneOrMany = Field(default_factory=list, description="catalogue ids, e.g. OZ-POC-HW-01 (one or a list)")
    severity: Severity | None = None
    basis: dict[str, str] = Field(
        default_factory=dict, description="where a threshold of this block comes from, by field: 'seed' (the seed "
        "states it; its quote is the requirement's) or 'golive: why golive chose it' (docs/profiles.md)")

    @field_validator("basis")
    @classmethod
    def _basis_values(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            kind, _, why = text.partition(":")
            if kind.strip() not in ("seed", "golive") or (kind.strip() == "golive" and not why.strip()):
                raise ValueError(f"basis of '{key}' is {text!r}; write 'seed' (the seed states it) or "
                                 "'golive: the reason golive chose this value'")
        return v

    @model_validator(mode="after")
    def _basis_fields(self) -> Block:
        unknown = [k for k in self.basis if k not in type(self).model_fields or k in ("ref", "severity", "basis")]
        if unknown:
            raise ValueError(f"basis names {', '.join(unknown)}, not a threshold of this block; name one of its "
                             "fields, e.g. hsts_min_age")
        return self

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
