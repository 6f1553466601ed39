"""The result model shared by probes, evaluation, the collector and every report.

Probes (``checks/*``) return :class:`Measurement` objects: what was measured, in which
unit, how, and when -- or why it could not be measured (``error``).  The pytest layer
compares a measurement with the profile's requirement and records a :class:`CheckResult`.
Reports render ``CheckResult`` only; nothing else crosses that boundary.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
from typing import Any


class Status(str, enum.Enum):
    """Outcome of one check.  ``error`` means *could not verify* and is never compliant;
    ``attested``: no probe could verify it, and a named person attested it with evidence
    (golive.attestations); compliant, but shown apart from measured results."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    WAIVED = "waived"
    ATTESTED = "attested"


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return {"critical": 4, "high": 3, "medium": 2, "low": 1}[self.value]


def utcnow() -> str:
    """Current UTC time as ISO-8601 with a ``Z`` suffix (second resolution is too coarse
    for drills, so milliseconds are kept)."""
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """How a value was measured.

    ``probe``: the golive probe (``hosts.cpu_cores``); ``subject``: what was probed (host
    name, URL, ``host:port``); ``method``: the command, request or API call, in words an
    auditor can repeat; ``tool``: the library or program with its version; ``raw``: a short,
    redacted excerpt of what the target answered; ``measured_at``: UTC time.
    """

    probe: str
    subject: str
    method: str
    tool: str = ""
    raw: str = ""
    measured_at: str = dataclasses.field(default_factory=utcnow)
    duration_s: float | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What a probe returns: a value with its unit and evidence, or an error reason.

    ``value`` is machine-comparable (int, float, str, bool, list, dict); ``display`` is
    what a person reads (``"2 cores"``).  When ``error`` is set the value is meaningless
    and the check's status is ``error``.
    """

    value: Any
    display: str
    evidence: Evidence
    unit: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, reason: str, evidence: Evidence) -> Measurement:
        """A measurement that could not be taken (unreachable, timeout, unauthorised...)."""
        return cls(value=None, display="could not measure", evidence=evidence, error=reason)


VALUE_MAX_CHARS = 4000


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON data (dataclasses, enums, tuples and sets converted; anything
    else as text), or None when it is too large to keep beside its display text."""
    def conv(v: Any, depth: int) -> Any:
        if depth > 8:
            return str(v)
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, enum.Enum):
            return v.value
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return conv(dataclasses.asdict(v), depth + 1)
        if isinstance(v, dict):
            return {str(k): conv(x, depth + 1) for k, x in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):
            items = sorted(v, key=str) if isinstance(v, (set, frozenset)) else v
            return [conv(x, depth + 1) for x in items]
        return str(v)

    out = conv(value, _depth)
    try:
        if len(json.dumps(out, default=str)) > VALUE_MAX_CHARS:
            return None
    except (TypeError, ValueError):
        return None
    return out


@dataclasses.dataclass(frozen=True)
class Requirement:
    """A profile requirement as it applies to one check: the catalogue ids, the seed
    document(s) they come from, and the quote, for the report."""

    ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    # per threshold (profile field): "seed" (the quotes state it) or "golive: why golive chose it"
    basis: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "sources": list(self.sources), "quotes": list(self.quotes),
                "basis": dict(self.basis)}


@dataclasses.dataclass(frozen=True)
class Waiver:
    id: str
    reason: str
    approver: str
    expires: str
    matched: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One checklist item's outcome, the unit of every report."""

    id: str
    status: Status
    severity: Severity
    expected: str
    measured: str
    requirement: Requirement = Requirement()
    feature: str = ""
    scenario: str = ""
    reason: str = ""
    remediation: str = ""
    evidence: tuple[Evidence, ...] = ()
    nodeid: str = ""
    tags: tuple[str, ...] = ()
    started_at: str = dataclasses.field(default_factory=utcnow)
    finished_at: str = dataclasses.field(default_factory=utcnow)
    waiver: Waiver | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    value: Any = None  # the measured value as data (JSON-safe; see jsonable), None when not measured
    unit: str = ""
    attestation: dict[str, Any] | None = None  # the attestation that settled an unverifiable check

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "severity": self.severity.value,
            "expected": self.expected,
            "measured": self.measured,
            "measurement": {"value": self.value, "unit": self.unit, "display": self.measured},
            "requirement": self.requirement.to_dict(),
            "feature": self.feature,
            "scenario": self.scenario,
            "reason": self.reason,
            "remediation": self.remediation,
            "evidence": [e.to_dict() for e in self.evidence],
            "nodeid": self.nodeid,
            "tags": list(self.tags),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "waiver": self.waiver.to_dict() if self.waiver else None,
            "data": self.data,
            "attestation": self.attestation,
        }
