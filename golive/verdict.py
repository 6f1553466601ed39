"""The go-live decision.

* ``GO``: the complete profile ran and no result at or above ``--fail-on`` failed or
  could not be verified (``attested`` counts as compliant, ``waived`` as accepted).
* ``PASS-PARTIAL``: the same, but only part of the profile ran (``-k``, ``-m``, node ids,
  ``--hosts``/``--roles``, ...; see :mod:`golive.selection`).  Shown as
  ``PASS (partial: N of M checks)``; never GO.  Exit 0, or 1 with ``--require-complete``.
* ``NO-GO``: anything else -- a blocking failure or error (also in a partial run), no
  check ran, every check was skipped, or the run was interrupted.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from golive.model import CheckResult, Severity, Status

BLOCKING = (Status.FAIL, Status.ERROR)


@dataclasses.dataclass(frozen=True)
class Verdict:
    decision: str  # "GO" | "PASS-PARTIAL" | "NO-GO"
    fail_on: Severity
    blocking: tuple[str, ...]
    counts: dict[str, int]
    by_severity: dict[str, dict[str, int]]
    complete: bool
    reason: str
    partial: dict[str, Any] | None = None  # {"ran": N, "of": M, "reasons": [...]} when only part ran

    @property
    def go(self) -> bool:
        return self.decision == "GO"

    @property
    def passed(self) -> bool:
        """GO or PASS-PARTIAL: nothing gated failed in what ran."""
        return self.decision in ("GO", "PASS-PARTIAL")

    @property
    def label(self) -> str:
        return label(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fail_on"] = self.fail_on.value
        d["blocking"] = list(self.blocking)
        return d


def label(verdict: dict[str, Any]) -> str:
    """``GO``, ``NO-GO`` or ``PASS (partial: N of M checks)``, as the reports show it."""
    if verdict.get("decision") != "PASS-PARTIAL":
        return str(verdict.get("decision"))
    p = verdict.get("partial") or {}
    return f"PASS (partial: {p.get('ran', '?')} of {p.get('of', '?')} checks)"


def decide(results: list[CheckResult], fail_on: Severity, complete: bool = True,
           partial: dict[str, Any] | None = None) -> Verdict:
    counts = Counter(r.status.value for r in results)
    by_sev: dict[str, dict[str, int]] = {s.value: {} for s in Severity}
    for r in results:
        by_sev[r.severity.value][r.status.value] = by_sev[r.severity.value].get(r.status.value, 0) + 1
    blocking = tuple(r.id for r in results if r.status in BLOCKING and r.severity.rank >= fail_on.rank)
    verified = [r for r in results if r.status not in (Status.SKIP,)]
    if not results:
        decision, reason = "NO-GO", "no check ran: nothing was verified"
    elif not verified:
        decision, reason = "NO-GO", "every check was skipped: nothing was verified"
    elif not complete:
        decision, reason = "NO-GO", "the run was interrupted before every check ran"
    elif blocking:
        n_fail = sum(1 for r in results if r.id in blocking and r.status == Status.FAIL)
        n_err = len(blocking) - n_fail
        parts = []
        if n_fail:
            parts.append(f"{n_fail} failed")
        if n_err:
            parts.append(f"{n_err} could not be verified")
        decision, reason = "NO-GO", f"{' and '.join(parts)} at or above severity '{fail_on.value}'"
    elif partial:
        why = "; ".join(partial.get("reasons", [])) or "a selection"
        decision, reason = "PASS-PARTIAL", (f"only part of the profile ran ({why}); no failure or error at or above "
                                            f"severity '{fail_on.value}' in what ran")
    else:
        decision, reason = "GO", f"no failure or error at or above severity '{fail_on.value}'"
    return Verdict(decision, fail_on, blocking, dict(counts), by_sev, complete, reason, partial or None)


def decide_dicts(results: list[dict[str, Any]], fail_on: Severity, complete: bool = True,
                 partial: dict[str, Any] | None = None) -> Verdict:
    """:func:`decide` over results as written in report.json."""
    from golive.model import Requirement

    objs = [CheckResult(id=r["id"], status=Status(r["status"]), severity=Severity(r["severity"]),
                        expected=r.get("expected", ""), measured=r.get("measured", ""), requirement=Requirement())
            for r in results]
    return decide(objs, fail_on, complete, partial)
