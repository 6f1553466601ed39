"""Binding measurements to requirements: the one place a pass/fail is decided.

Step functions call :meth:`Checks.record` with a probe's :class:`Measurement`, the profile
block it is judged against, the expected value in words and a predicate.  A measurement
that could not be taken is ``error``; a predicate that returns False is ``fail``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from golive import catalogue
from golive.blocks import Block
from golive.model import CheckResult, Evidence, Measurement, Severity, Status, jsonable, utcnow
from golive.redact import redact, redact_obj
from golive.waivers import Waivers

if TYPE_CHECKING:
    from golive.attestations import Attestations

# "What to do" for a check that could not be verified: make it verifiable (the fix for a
# failure would answer a question nobody asked: nothing was measured)
VERIFY_REMEDIATION = ("make the item verifiable: check that golive can reach and log in to the subject "
                      "(address, port, credentials, sudo), that the tool it runs is installed there, and that "
                      "the time limit suffices; then run again. Where no probe can read it, and the profile "
                      "marks the check attestable, supply an attestation (docs/attestations.md)")


@dataclasses.dataclass
class ScenarioInfo:
    feature: str = ""
    feature_file: str = ""
    scenario: str = ""
    tags: tuple[str, ...] = ()
    nodeid: str = ""

    @property
    def severity(self) -> Severity:
        sev = [Severity(t) for t in self.tags if t in Severity._value2member_map_]
        return max(sev, key=lambda s: s.rank) if sev else Severity.MEDIUM


def _clean_evidence(ev: Evidence) -> Evidence:
    return dataclasses.replace(ev, subject=redact(ev.subject), method=redact(ev.method), raw=redact(ev.raw)[:4000],
                               data=redact_obj(ev.data))  # type: ignore[arg-type]


class Checks:
    """Records the results of one scenario."""

    def __init__(self, info: ScenarioInfo, waivers: Waivers, attestations: Attestations | None = None) -> None:
        self.info = info
        self.waivers = waivers
        self.attestations = attestations
        self.results: list[CheckResult] = []
        self.started_at = utcnow()

    def _finish(self, result: CheckResult) -> CheckResult:
        if result.status == Status.ERROR:  # the check's own hint where it has one, else the general advice
            result = dataclasses.replace(result, remediation=result.remediation or VERIFY_REMEDIATION)
        if self.attestations is not None:
            result = self.attestations.apply(result)
        result = self.waivers.apply(result)
        self.results.append(result)
        return result

    def _base(self, check_id: str, block: Block | None, severity: Severity | None,
              refs: Sequence[str] | None = None) -> dict[str, Any]:
        ids = list(refs) if refs is not None else (list(block.ref) if block is not None else [])
        sev = severity or (block.severity if block is not None and block.severity else None) or self.info.severity
        requirement = catalogue.requirement(ids)
        if block is not None and block.basis:
            requirement = dataclasses.replace(requirement, basis=tuple(sorted(block.basis.items())))
        return {"id": check_id, "requirement": requirement, "feature": self.info.feature,
                "scenario": self.info.scenario, "severity": sev, "nodeid": self.info.nodeid,
                "tags": self.info.tags, "started_at": self.started_at}

    def record(self, check_id: str, *, block: Block | None, expected: str, measurement: Measurement,
               ok: Callable[[Any], bool], remediation: str = "", severity: Severity | None = None,
               data: dict[str, Any] | None = None, refs: Sequence[str] | None = None,
               verify_hint: str = "") -> CheckResult:
        """Judge ``measurement`` with ``ok`` and record the result.  ``remediation`` is the
        fix for a failure; ``verify_hint`` what to do when the item could not be measured."""
        base = self._base(check_id, block, severity, refs)
        reason = ""
        if measurement.error is not None:
            status, reason = Status.ERROR, measurement.error
        else:
            try:
                status = Status.PASS if ok(measurement.value) else Status.FAIL
            except Exception as exc:
                status, reason = Status.ERROR, f"cannot compare measured value: {exc}"
        result = CheckResult(status=status, expected=expected, measured=redact(measurement.display),
                             reason=redact(reason), remediation=_remediation(status, remediation, verify_hint),
                             evidence=(_clean_evidence(measurement.evidence),), data=redact_obj(data or {}),  # type: ignore[arg-type]
                             value=redact_obj(jsonable(measurement.value)) if measurement.error is None else None,
                             unit=measurement.unit,
                             **base)
        return self._finish(result)

    def skip(self, check_id: str, reason: str, *, block: Block | None = None, expected: str = "",
             severity: Severity | None = None, refs: Sequence[str] | None = None) -> CheckResult:
        base = self._base(check_id, block, severity, refs)
        return self._finish(CheckResult(status=Status.SKIP, expected=expected or "n/a", measured="not measured",
                                        reason=reason, **base))

    def error(self, check_id: str, reason: str, *, block: Block | None = None, expected: str = "",
              evidence: Evidence | None = None, severity: Severity | None = None,
              refs: Sequence[str] | None = None, verify_hint: str = "") -> CheckResult:
        base = self._base(check_id, block, severity, refs)
        return self._finish(CheckResult(status=Status.ERROR, expected=expected or "n/a", measured="could not measure",
                                        reason=redact(reason), evidence=(evidence,) if evidence else (),
                                        remediation=verify_hint, **base))


def _remediation(status: Status, fix: str, verify_hint: str) -> str:
    """A failure gets the fix; an item that could not be verified gets what makes it
    verifiable (the fix for a failure would be the wrong advice); a pass gets nothing."""
    if status == Status.PASS:
        return ""
    if status == Status.ERROR:
        return verify_hint
    return fix
