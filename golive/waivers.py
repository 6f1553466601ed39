"""Waivers: accepted risks, in the InSpec manner.

A waiver names a check id (glob patterns allowed *within one check family*:
``hosts.cpu_cores[*]``, ``tls.*``; never ``*`` or ``*.x``) or a catalogue requirement id, with
a justification, an approver (not blank, not the waiver's ``author`` where one is named) and
an expiry date at most the profile's ``waivers.max_days`` ahead.  A waived check still runs
and shows its measurement; only a *fail* can be waived (an ``error`` means nothing was
verified, so there is nothing to accept).  An expired waiver does not waive and is reported;
so is every waiver that changed no result ("unused").
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from golive.model import CheckResult, Status, Waiver
from golive.validation import raise_config_error
from golive.yamlpos import ConfigError, load

# the check families: the first part of every check id (``hosts.cpu_cores[app-1]``)
FAMILIES = ("hosts", "ports", "tls", "http", "cors", "auth", "throughput", "backups", "ha", "kubernetes")
DEFAULT_MAX_DAYS = 180
_FAMILY = re.compile(r"^([a-z][a-z0-9_]*)\.(.+)$")


def check_family_pattern(pattern: str) -> str:
    """The family a check pattern stays within; ValueError when it could reach beyond one
    (``*``, ``*.cpu``, ``h*.x``) or names no known family."""
    m = _FAMILY.match(pattern)
    if not m or any(c in m.group(1) for c in "*?"):
        raise ValueError(f"the pattern '{pattern}' is not limited to one check family; "
                         f"start it with a family and a dot, e.g. 'hosts.cpu_cores[*]' or 'tls.*' "
                         f"(families: {', '.join(FAMILIES)})")
    if m.group(1) not in FAMILIES:
        raise ValueError(f"unknown check family '{m.group(1)}' in '{pattern}'; use one of: {', '.join(FAMILIES)}")
    return m.group(1)


def _not_blank(v: str, what: str) -> str:
    v = v.strip()
    if len(v) < 2:
        raise ValueError(f"{what} is blank; name the person who accepts the risk, e.g. 'J. Doe, Head of Operations'")
    return v


class WaiverEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    check: str | None = Field(default=None, description="check id, or a glob within one family: hosts.cpu_cores[*]")
    requirement: str | None = Field(default=None, description="catalogue id, e.g. OZ-POC-HW-01")
    justification: str = Field(min_length=3)
    approver: str = Field(min_length=2, description="who accepts the risk (not blank, not the author)")
    author: str | None = Field(default=None, description="who wrote the waiver (optional; must differ from approver)")
    expires: dt.date = Field(description="last day the waiver applies; at most the profile's waivers.max_days ahead")

    @field_validator("approver")
    @classmethod
    def _approver(cls, v: str) -> str:
        return _not_blank(v, "the approver")

    @field_validator("justification")
    @classmethod
    def _justification(cls, v: str) -> str:
        if len(v.strip()) < 3:
            raise ValueError("the justification is blank; say why the risk is accepted (and a change or ticket id)")
        return v.strip()

    @field_validator("check")
    @classmethod
    def _one_family(cls, v: str | None) -> str | None:
        if v is not None:
            check_family_pattern(v.strip())
            return v.strip()
        return v

    @model_validator(mode="after")
    def _one_key(self) -> WaiverEntry:
        if not (self.check or self.requirement):
            raise ValueError("a waiver names 'check' (a check id) or 'requirement' (a catalogue id)")
        if self.author is not None and self.author.strip().casefold() == self.approver.casefold():
            raise ValueError("the approver is the waiver's author; a waiver is approved by someone else "
                             "than who wrote it")
        return self

    @property
    def key(self) -> str:
        return self.check or self.requirement or ""

    def matches(self, result: CheckResult) -> bool:
        if self.check and _glob(self.check).fullmatch(result.id):
            return True
        return bool(self.requirement and self.requirement in result.requirement.ids)

    def expired(self, today: dt.date) -> bool:
        return self.expires < today


class WaiverFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    waivers: list[WaiverEntry] = Field(default_factory=list)


class Waivers:
    """Applies waivers to results and remembers which ones matched or expired."""

    def __init__(self, entries: list[WaiverEntry] | None = None, today: dt.date | None = None,
                 source: str | None = None) -> None:
        self.entries = entries or []
        self.today = today or dt.datetime.now(dt.UTC).date()
        self.source = source
        self.used: set[int] = set()  # changed at least one result (fail -> waived)
        self.matched: set[int] = set()  # matched a check, whatever its status
        self.expired_hits: set[int] = set()

    @classmethod
    def load(cls, path: Path | str, today: dt.date | None = None, max_days: int = DEFAULT_MAX_DAYS) -> Waivers:
        """Read and validate a waiver file; ``max_days``: the profile's ``waivers.max_days``."""
        doc = load(path)
        if not isinstance(doc.data, dict):
            raise ConfigError(doc.path, 1, "a waiver file is a mapping with 'waivers:'",
                              "write 'waivers:' followed by a list of entries")
        try:
            wf = WaiverFile.model_validate(doc.data)
        except ValidationError as exc:
            raise_config_error(doc, exc, kind="waiver file", model=WaiverFile)
            raise
        today = today or dt.datetime.now(dt.UTC).date()
        limit = today + dt.timedelta(days=max_days)
        for i, w in enumerate(wf.waivers):
            if w.expires > limit:
                raise ConfigError(doc.path, doc.line_of(("waivers", i, "expires")),
                                  f"waiver '{w.key}' expires {w.expires.isoformat()}, more than {max_days} days ahead "
                                  f"(the profile's maximum waiver period)",
                                  f"set 'expires' to {limit.isoformat()} or earlier and review it then "
                                  "(or raise waivers.max_days in the profile)")
        return cls(list(wf.waivers), today, str(path))

    def apply(self, result: CheckResult) -> CheckResult:
        """Return ``result`` waived when a valid waiver covers its failure."""
        for i, w in enumerate(self.entries):
            if not w.matches(result):
                continue
            if w.expired(self.today):
                self.expired_hits.add(i)
                info = Waiver(w.key, w.justification, w.approver, w.expires.isoformat(), matched=False)
                if result.status == Status.FAIL:
                    return dataclasses.replace(result, waiver=info,
                                               reason=(result.reason + "; " if result.reason else "")
                                               + f"waiver expired on {w.expires.isoformat()}")
                continue
            self.matched.add(i)
            if result.status == Status.FAIL:  # only a failure can be accepted; errors and passes stay
                self.used.add(i)
                info = Waiver(w.key, w.justification, w.approver, w.expires.isoformat())
                return dataclasses.replace(result, status=Status.WAIVED, waiver=info)
        return result

    def summary(self) -> dict[str, list[dict[str, str]]]:
        """For report.json: ``applied`` (changed a result: fail -> waived), ``expired``,
        ``unused`` (valid, but changed no result in this run, with why)."""
        def row(w: WaiverEntry) -> dict[str, str]:
            out = {"key": w.key, "justification": w.justification, "approver": w.approver,
                   "expires": w.expires.isoformat()}
            if w.author:
                out["author"] = w.author
            return out
        unused = []
        for i, w in enumerate(self.entries):
            if i in self.used or w.expired(self.today):
                continue
            why = ("it matched only checks that passed or could not be verified (errors cannot be waived)"
                   if i in self.matched else "it matched no check in this run")
            unused.append({**row(w), "why": why})
        return {
            "source": [{"path": self.source}] if self.source else [],
            "applied": [row(w) for i, w in enumerate(self.entries) if i in self.used and not w.expired(self.today)],
            "expired": [row(w) for w in self.entries if w.expired(self.today)],
            "unused": unused,
        }


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` are wildcards; everything else, brackets included, is literal
    (check ids contain ``[host]``, which fnmatch would read as a character class)."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))
