"""Attestations: verified evidence, supplied by a person, for what no probe can read.

Some facts cannot be measured from where golive runs: the storage media behind a virtio
disk, the link speed behind a virtio NIC, a signed-off manual release checklist item.  Such
a check ends ``error`` (could not verify), which is never compliant.  An attestation lets a
named person state the fact, point at the evidence (a document's SHA-256 and/or a URL),
and take responsibility for it until a date; the check's status becomes ``attested``.

Rules (docs/attestations.md):

* only for checks the profile lists under ``attestable:`` (a check id, or a base id such as
  ``hosts.storage`` for every host);
* only a result that *could not be verified* (``error``) becomes ``attested``: a measured
  ``fail`` stays failed, a ``pass`` stays passed (the measurement wins);
* an attestation dated in the future, or expired, does not count (the check stays ``error``
  and the report says why);
* ``attested`` counts as compliant in the verdict and is shown apart from measured results.

The file (``attestations.yaml`` next to the target file, or ``--attestations PATH``)::

    attestations:
      - check: hosts.storage[db-1]
        fact: "the data volume is SSD-backed (provider volume type gp3)"
        evidence: {sha256: "9f86d0...", url: "https://cmdb.example/volumes/db-1"}
        attester: "J. Doe, Platform team"
        date: 2026-11-30
        expires: 2027-02-28
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from golive.model import CheckResult, Status
from golive.validation import raise_config_error
from golive.yamlpos import ConfigError, load


def covers(pattern: str, check_id: str) -> bool:
    """``hosts.storage`` covers ``hosts.storage[db-1]``; an id covers itself."""
    return check_id == pattern or check_id.startswith(pattern + "[")


class EvidenceRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                               description="SHA-256 (64 lower-case hex digits) of the evidence document")
    url: str | None = Field(default=None, min_length=8, description="where the evidence can be read")

    @model_validator(mode="after")
    def _one(self) -> EvidenceRef:
        if not (self.sha256 or self.url):
            raise ValueError("evidence names a 'sha256' of the document or a 'url' (or both)")
        return self


class AttestationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    check: str = Field(description="check id (hosts.storage[db-1]) or base id (hosts.storage: every host)")
    fact: str = Field(min_length=3, description="what is attested, in words")
    evidence: EvidenceRef
    attester: str = Field(min_length=2, description="who attests it (name and role)")
    date: dt.date = Field(description="when it was attested (not in the future)")
    expires: dt.date = Field(description="last day the attestation counts")

    @field_validator("attester", "fact")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if len(v.strip()) < 2:
            raise ValueError("is blank; write who attests what")
        return v.strip()

    @model_validator(mode="after")
    def _dates(self) -> AttestationEntry:
        if self.expires < self.date:
            raise ValueError("'expires' is before 'date'")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class AttestationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    attestations: list[AttestationEntry] = Field(default_factory=list)


class Attestations:
    """Applies attestations to results and remembers which changed a result."""

    def __init__(self, entries: list[AttestationEntry] | None = None, today: dt.date | None = None,
                 source: str | None = None) -> None:
        self.entries = entries or []
        self.today = today or dt.datetime.now(dt.UTC).date()
        self.source = source
        self.used: set[int] = set()

    @classmethod
    def load(cls, path: Path | str, attestable: list[str] | None, profile_name: str = "the profile",
             today: dt.date | None = None) -> Attestations:
        """Read and validate an attestation file against the profile's ``attestable`` list
        (``None``: the profile is unknown, so that rule is not checked)."""
        doc = load(path)
        if not isinstance(doc.data, dict):
            raise ConfigError(doc.path, 1, "an attestation file is a mapping with 'attestations:'",
                              "write 'attestations:' followed by a list of entries (docs/attestations.md)")
        try:
            af = AttestationFile.model_validate(doc.data)
        except ValidationError as exc:
            raise_config_error(doc, exc, kind="attestation file", model=AttestationFile)
            raise
        today = today or dt.datetime.now(dt.UTC).date()
        for i, a in enumerate(af.attestations):
            if attestable is not None and not any(covers(p, a.check) for p in attestable):
                allowed = ", ".join(attestable) or "none"
                raise ConfigError(doc.path, doc.line_of(("attestations", i, "check")),
                                  f"check '{a.check}' is not attestable in profile {profile_name} "
                                  f"(attestable: {allowed})",
                                  "attest only checks the profile lists under 'attestable:'; a check a probe can "
                                  "measure must be measured")
            if a.date > today:
                raise ConfigError(doc.path, doc.line_of(("attestations", i, "date")),
                                  f"attestation of '{a.check}' is dated {a.date.isoformat()}, in the future",
                                  "write the day it was attested")
        return cls(list(af.attestations), today, str(path))

    def apply(self, result: CheckResult) -> CheckResult:
        """``result`` attested when it could not be verified and a valid attestation covers it."""
        if result.status != Status.ERROR:
            return result
        for i, a in enumerate(self.entries):
            if not covers(a.check, result.id):
                continue
            if a.expires < self.today:
                return dataclasses.replace(result, reason=(result.reason + "; " if result.reason else "")
                                           + f"attestation expired on {a.expires.isoformat()}")
            self.used.add(i)
            return dataclasses.replace(
                result, status=Status.ATTESTED, measured=f"attested: {a.fact}",
                reason=f"not measured ({result.reason or 'could not be verified'}); attested by {a.attester} "
                       f"on {a.date.isoformat()}, valid until {a.expires.isoformat()}",
                remediation="", attestation=a.to_dict())
        return result

    def summary(self) -> dict[str, Any]:
        """For report.json: ``applied``, ``expired`` and ``unused`` attestations."""
        rows = [a.to_dict() for a in self.entries]
        return {
            "source": [{"path": self.source}] if self.source else [],
            "applied": [rows[i] for i in sorted(self.used)],
            "expired": [rows[i] for i, a in enumerate(self.entries) if a.expires < self.today],
            "unused": [rows[i] for i, a in enumerate(self.entries) if i not in self.used and a.expires >= self.today],
        }
