"""Everything a run reads before any probe runs, loaded one way for ``pytest --profile``
and ``golive check-config`` alike: profile, target (with ``--hosts``/``--roles``), the
waiver file and the attestation file -- each given, or found next to the target file.

:func:`load_run_config` reads every file even when an earlier one is wrong, and raises
one :class:`ConfigErrors` listing every problem found, so a broken setup is fixed in one
round rather than one error per run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from golive.attestations import Attestations
from golive.profile import ResolvedProfile, load_profile
from golive.target import Target, load_target, select_hosts
from golive.target import resolve_path as resolve_target_path
from golive.waivers import DEFAULT_MAX_DAYS, Waivers
from golive.yamlpos import ConfigError

WAIVERS_FILE = "waivers.yaml"
ATTESTATIONS_FILE = "attestations.yaml"


class ConfigErrors(Exception):
    """One or more :class:`ConfigError`; ``str()`` lists them all."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        head = f"{len(errors)} configuration problems:\n" if len(errors) > 1 else ""
        super().__init__(head + "\n".join(str(e) for e in errors))


@dataclasses.dataclass
class RunConfig:
    profile: ResolvedProfile
    target: Target
    target_path: str
    waivers: Waivers
    attestations: Attestations | None
    files: dict[str, str]  # what was read: profile, target, waivers, attestations


def _all(exc: ConfigError) -> list[ConfigError]:
    more: list[ConfigError] = getattr(exc, "more", [])
    if more:  # list each problem on its own (the first one's "(and N more)" is then redundant)
        first = ConfigError(exc.path, exc.line, exc.problem.rsplit(" (and ", 1)[0], exc.fix)
        return [first, *more]
    return [exc]


def beside_target(target: str, name: str) -> str | None:
    """``name`` in the target file's folder, when it exists (the default waiver and attestation files)."""
    candidate = resolve_target_path(target).parent / name
    return str(candidate) if candidate.exists() else None


def load_run_config(profile: str, target: str, waivers: str | None = None, attestations: str | None = None,
                    hosts: list[str] | None = None, roles: list[str] | None = None) -> RunConfig:
    """Load and validate everything; :class:`ConfigErrors` with every problem found."""
    errors: list[ConfigError] = []
    prof: ResolvedProfile | None = None
    tgt: Target | None = None
    try:
        prof = load_profile(profile)
    except ConfigError as exc:
        errors += _all(exc)
    try:
        tgt = load_target(target)
        if hosts or roles:
            tgt = select_hosts(tgt, hosts or [], roles or [], target)
    except ConfigError as exc:
        errors += _all(exc)
    wpath = waivers if waivers is not None else beside_target(target, WAIVERS_FILE)
    apath = attestations if attestations is not None else beside_target(target, ATTESTATIONS_FILE)
    wv = Waivers()
    att: Attestations | None = None
    if wpath:
        try:
            wv = Waivers.load(wpath, max_days=prof.profile.waivers.max_days if prof else DEFAULT_MAX_DAYS)
        except ConfigError as exc:
            errors += _all(exc)
    if apath:
        try:
            att = Attestations.load(apath, prof.profile.attestable if prof else None,
                                    prof.name if prof else "(the profile did not load)")
        except ConfigError as exc:
            errors += _all(exc)
    if errors:
        raise ConfigErrors(errors)
    assert prof is not None and tgt is not None
    files = {"profile": " <- ".join(prof.files), "target": str(resolve_target_path(target))}
    if wpath:
        files["waivers"] = str(Path(wpath))
    if apath:
        files["attestations"] = str(Path(apath))
    return RunConfig(prof, tgt, target, wv, att, files)
