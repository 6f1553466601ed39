"""Waivers: accepted risks, in the InSpec manner.

A waiver names a check id (glob patterns allowed: ``hosts.cpu_cores[*]``) or a catalogue
requirement id, with a justification, an approver and an expiry date.  A waived check still
runs and shows its measurement; only a *fail* can be waived (an ``error`` means nothing was
verified, so there is nothing to accept).  An expired waiver does not waive and is reported.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from golive.model import CheckResult, Status, Waiver
from golive.validation import raise_config_error
from golive.yamlpos import ConfigError, load


class WaiverEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    check: str | None = Field(default=None, description="check id or glob, e.g. hosts.cpu_cores[app-1]")
    requirement: str | None = Field(default=None, description="catalogue id, e.g. OZ-POC-HW-01")
    justification: str = Field(min_length=3)
    approver: str = Field(min_length=2)
    expires: dt.date

    @model_validator(mode="after")
    def _one_key(self) -> WaiverEntry:
        if not (self.check or self.requirement):
            raise ValueError("a waiver names 'check' (a check id) or 'requirement' (a catalogue id)")
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
        self.used: set[int] = set()
        self.expired_hits: set[int] = set()

    @classmethod
    def load(cls, path: Path | str, today: dt.date | None = None) -> Waivers:
        doc = load(path)
        if not isinstance(doc.data, dict):
            raise ConfigError(doc.path, 1, "a waiver file is a mapping with 'waivers:'",
                              "write 'waivers:' followed by a list of entries")
        try:
            wf = WaiverFile.model_validate(doc.data)
        except ValidationError as exc:
            raise_config_error(doc, exc, kind="waiver file", model=WaiverFile)
            raise
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
            self.used.add(i)
            if result.status == Status.FAIL:
                info = Waiver(w.key, w.justification, w.approver, w.expires.isoformat())
                return dataclasses.replace(result, status=Status.WAIVED, waiver=info)
        return result

    def summary(self) -> dict[str, list[dict[str, str]]]:
        def row(w: WaiverEntry) -> dict[str, str]:
            return {"key": w.key, "justification": w.justification, "approver": w.approver,
                    "expires": w.expires.isoformat()}
        return {
            "source": [{"path": self.source}] if self.source else [],
            "applied": [row(w) for i, w in enumerate(self.entries) if i in self.used and not w.expired(self.today)],
            "expired": [row(w) for w in self.entries if w.expired(self.today)],
            "unmatched": [row(w) for i, w in enumerate(self.entries) if i not in self.used and i not in self.expired_hits
                          and not w.expired(self.today)],
        }


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` are wildcards; everything else, brackets included, is literal
    (check ids contain ``[host]``, which fnmatch would read as a character class)."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))
