"""The published JSON Schemas (docs/schema/) accept every file golive ships -- profiles,
targets, example waiver and attestation files -- and reject what golive rejects."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from golive.yamlpos import load

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "docs" / "schema"
SHIPPED = {
    "profile": sorted((ROOT / "profiles").glob("*.yaml")),
    "target": sorted((ROOT / "targets").glob("*.yaml")),
    "waivers": [ROOT / "examples" / "waivers.yaml"],
    "attestations": [ROOT / "examples" / "attestations.yaml"],
}


def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _data(path: Path) -> Any:
    # dates and numbers as YAML gives them; JSON Schema sees what a YAML editor plugin sees
    return json.loads(json.dumps(load(path).data, default=str))


def test_there_are_files_to_check() -> None:
    assert len(SHIPPED["profile"]) >= 12 and SHIPPED["target"]


@pytest.mark.parametrize(("kind", "path"), [(k, p) for k, ps in SHIPPED.items() for p in ps],
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_every_shipped_file_validates_against_its_schema(kind: str, path: Path) -> None:
    errors = sorted(_validator(kind).iter_errors(_data(path)), key=lambda e: list(e.path))
    assert not errors, f"{path.name}: " + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize(("value", "ok"), [("32 GiB", True), ("100 GB", True), ("1.5 tib", True), (32, False),
                                           ("32", False), ("32 parsecs", False)])
def test_sizes_are_strings_with_units(value: Any, ok: bool) -> None:
    doc = {"name": "x", "description": "x", "requirements": {"hosts": {"default": {"memory": value}}}}
    assert _validator("profile").is_valid(doc) is ok


def test_durations_and_refs_take_the_forms_profiles_use() -> None:
    v = _validator("profile")
    base: dict[str, Any] = {"name": "x", "description": "x"}
    assert v.is_valid({**base, "requirements": {"http": {"hsts_min_age": "180 d", "ref": "OZ-SEC-01"}}})
    assert v.is_valid({**base, "requirements": {"http": {"ref": ["OZ-SEC-01", "OZ-SEC-02"]}}})
    assert not v.is_valid({**base, "requirements": {"http": {"hsts_min_age": 15552000}}})
    assert v.is_valid({**base, "requirements": {"hosts": {"software": {"python": "3.8", "docker": {"version": "20"}}}}})


def test_waiver_schema_refuses_what_golive_refuses() -> None:
    v = _validator("waivers")
    good = {"check": "tls.*", "justification": "because", "approver": "J. Doe", "expires": "2027-01-01"}
    assert v.is_valid({"waivers": [good]})
    assert not v.is_valid({"waivers": [{**good, "extra": 1}]})
    assert not v.is_valid({"waivers": [{k: val for k, val in good.items() if k != "approver"}]})
