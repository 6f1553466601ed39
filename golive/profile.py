"""Profiles: a tier's requirements, with numbers, units and catalogue ids.

A profile is YAML validated strictly (unknown keys are errors) before any probe runs.
``extends`` inherits another profile; sections deep-merge, except host *sizing*, which the
child replaces as a whole (catalogue §16: the Oz numbers are not monotonic, so max-merging
would invent requirements no seed states).
"""
from __future__ import annotations

import copy
import enum
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from golive.blocks import OneOrMany, Strict
from golive.validation import raise_config_error
from golive.yamlpos import ConfigError, PositionedYaml, load

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"


class Requirements(Strict):
    """The core's requirement blocks: none -- every family adds its own (profile_model)."""


class WaiverPolicy(Strict):
    """How far ahead a waiver may expire (docs/waivers.md)."""

    max_days: int = Field(default=180, ge=1, le=3650, description="latest waiver expiry, in days from the run")


class Profile(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    extends: str | None = None
    source: OneOrMany = Field(default_factory=list, description="seed files/sections, e.g. 004_...txt#poc")
    systems: OneOrMany = Field(default_factory=list)
    notes: OneOrMany = Field(default_factory=list, description="conflicts and interpretations (catalogue §15)")
    requirements: Requirements = Requirements()
    waivers: WaiverPolicy = WaiverPolicy()
    attestable: list[str] = Field(
        default_factory=list, description="check ids (or base ids like hosts.storage, for every host) that an "
        "attestation may settle when no probe can verify them (docs/attestations.md)")

    @field_validator("source", "systems", "notes", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("attestable")
    @classmethod
    def _declared_checks(cls, v: list[str]) -> list[str]:
        from golive import registry

        known = {c.id for c in registry.all_checks()}
        for cid in v:
            if cid.split("[", 1)[0] not in known:
                raise ValueError(f"attestable names '{cid}', which is not a golive check; `golive checks` lists them")
        return v


@functools.cache
def profile_model() -> type[Profile]:
    """:class:`Profile` with every registered family's requirement block added under
    ``requirements.<family>`` (golive.registry), so a family's fragment is validated with
    the same strictness and file:line errors as the core's blocks."""
    from golive import registry

    extra: dict[str, Any] = {}
    for fam in registry.families():
        if fam.profile_block is not None and fam.name not in Requirements.model_fields:
            extra[fam.name] = (fam.profile_block | None, None)
    if not extra:
        return Profile
    req_model = create_model("Requirements", __base__=Requirements, **extra)
    model: type[Profile] = create_model("Profile", __base__=Profile,
                                        requirements=(req_model, Field(default_factory=req_model)))
    return model


class ResolvedProfile(BaseModel):
    """A profile after ``extends`` was applied, with the files it was built from."""

    model_config = ConfigDict(frozen=True)
    profile: Profile
    files: list[str]
    sha256: str

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def req(self) -> Requirements:
        return self.profile.requirements


def _replaced_as_whole() -> dict[str, tuple[str, ...]]:
    """family -> the keys of its block a child profile replaces as a whole (Family.merge_replace)."""
    from golive import registry

    return {f.name: f.merge_replace for f in registry.families() if f.merge_replace}


def _merge(parent: dict[str, Any], child: dict[str, Any], path: tuple[str, ...] = (),
           replace: dict[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    replace = _replaced_as_whole() if replace is None else replace
    out = copy.deepcopy(parent)
    for key, value in child.items():
        here = (*path, key)
        keys = replace.get(key, ()) if path == ("requirements",) else ()
        if keys and isinstance(value, dict) and isinstance(out.get(key), dict):
            base = dict(out[key])
            if any(k in value for k in keys):
                for k in keys:  # e.g. host sizing: replaced as a whole, never merged key by key
                    base.pop(k, None)
            out[key] = _merge(base, value, here, replace)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, here, replace)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_path(name_or_path: str, directory: Path = PROFILES_DIR) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return p
    return directory / f"{name_or_path}.yaml"


def resolve_extends(parent: str, extending_file: Path) -> Path:
    """Where ``extends: parent`` in ``extending_file`` points: a path (with ``/`` or a
    ``.yaml`` suffix) relative to the extending file's folder; a bare name a profile next to
    the extending file, else a shipped profile (profiles/), so a profile anywhere can extend
    ``poc``."""
    p = Path(parent)
    if p.suffix in (".yaml", ".yml") or "/" in parent:
        return p if p.is_absolute() else extending_file.parent / p
    beside = extending_file.parent / f"{parent}.yaml"
    return beside if beside.exists() else PROFILES_DIR / f"{parent}.yaml"


def _validate(doc: PositionedYaml) -> Profile:
    if not isinstance(doc.data, dict):
        raise ConfigError(doc.path, 1, "a profile must be a mapping", "start with 'name:', 'description:', 'requirements:'")
    try:
        return profile_model().model_validate(doc.data)
    except ValidationError as exc:
        raise_config_error(doc, exc, kind="profile", model=profile_model())
        raise  # unreachable


def load_profile(name_or_path: str, directory: Path = PROFILES_DIR) -> ResolvedProfile:
    """Load, validate and resolve a profile.  Raises :class:`ConfigError` with file and line."""
    path = resolve_path(name_or_path, directory)
    if not path.exists():
        available = ", ".join(p.stem for p in sorted(directory.glob("*.yaml")))
        raise ConfigError(path, None, f"profile '{name_or_path}' not found",
                          f"use one of: {available} (or a path to a .yaml file); `pytest --profile list` describes them")
    chain: list[PositionedYaml] = []
    seen: set[Path] = set()
    current: Path | None = path
    while current is not None:
        real = current.resolve()
        if real in seen:
            raise ConfigError(current, chain[-1].line_of(("extends",)) if chain else None,
                              "'extends' forms a cycle", "remove the cycle between these profiles")
        seen.add(real)
        doc = load(current)
        _validate(doc)  # each file on its own, so errors point at the file that has them
        chain.append(doc)
        parent = doc.data.get("extends")
        if parent is None:
            current = None
        else:
            nxt = resolve_extends(str(parent), current)
            if not nxt.exists():
                shipped = ", ".join(p.stem for p in sorted(PROFILES_DIR.glob("*.yaml")))
                raise ConfigError(current, doc.line_of(("extends",)), f"extends unknown profile '{parent}' ({nxt})",
                                  f"name a shipped profile ({shipped}), a profile next to this file (without "
                                  ".yaml) or a path relative to this file")
            current = nxt
    merged: dict[str, Any] = {}
    for doc in reversed(chain):
        merged = _merge(merged, {k: v for k, v in doc.data.items() if k != "extends"})
    merged["name"] = chain[0].data["name"]
    merged["description"] = chain[0].data["description"]
    merged["extends"] = chain[0].data.get("extends")
    profile = profile_model().model_validate(merged)
    canonical = json.dumps(exact_values(profile), sort_keys=True, separators=(",", ":"))
    return ResolvedProfile(profile=profile, files=[str(d.path) for d in chain],
                           sha256=hashlib.sha256(canonical.encode()).hexdigest())


def exact_values(value: Any) -> Any:
    """A model's content with exact values (32.01 GiB as its bytes, not the display text
    "32.0 GiB" the JSON serializers write), for the profile digest: two profiles that
    differ in any requirement never share a sha256."""
    if isinstance(value, BaseModel):
        return {k: exact_values(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): exact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact_values(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def list_profiles(directory: Path = PROFILES_DIR) -> list[tuple[str, str, str | None]]:
    """(name, description, extends) of every profile in the folder, for ``--profile list``."""
    out = []
    for p in sorted(directory.glob("*.yaml")):
        try:
            doc = load(p)
            data = doc.data if isinstance(doc.data, dict) else {}
            out.append((p.stem, str(data.get("description", "")).strip(), data.get("extends")))
        except ConfigError as exc:
            out.append((p.stem, f"(invalid: {exc.problem})", None))
    return out
