"""What a backup location holds: the backup files with size, time and class (full or
incremental), read with one ``find`` on the location's host together with that host's clock,
so ages never depend on the checking host's clock.

Classification (docs/backups.md): files matching ``pattern`` (default ``*``) are backups,
except hidden files (``.name``: in-progress copies) and manifests/signatures.  A backup
matching ``incremental_pattern`` is incremental; otherwise, when ``full_pattern`` is unset or
matches, it is full; anything else is listed as ignored.  The backup *time* is the file's
mtime (when it was written), which is what both a copier and an auditor can see.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
import shlex
import time
from typing import TYPE_CHECKING, Any, Literal

from checks.backups.location import Location, sh
from checks.connection import ProbeError, describe, tool
from golive.model import Evidence, Measurement

if TYPE_CHECKING:
    from checks.backups.spec import BackupSpec

BackupClass = Literal["full", "incremental"]
MANIFEST_NAMES = ("manifest.json", "SHA256SUMS", "sha256sums.txt", "MANIFEST")
_SIDE_FILES = ("*.sha256", "*.sha256sum", "*.md5", "*.sig", "*.asc", "*.minisig", *MANIFEST_NAMES)
_LIST = "cd -- {dir} && date +%s.%N && find . -mindepth 1 -maxdepth 1 -type f -printf '%s\\t%T@\\t%f\\n'"


@dataclasses.dataclass(frozen=True)
class BackupFile:
    name: str
    size: int
    mtime: float
    cls: BackupClass

    def when(self) -> str:
        return dt.datetime.fromtimestamp(self.mtime, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Inventory:
    """The backups in one location, newest first, and the location host's clock."""

    location: Location
    spec: BackupSpec
    host_now: float
    backups: tuple[BackupFile, ...]
    ignored: tuple[str, ...] = ()
    manifest: str | None = None

    def newest(self, cls: BackupClass | None = None) -> BackupFile | None:
        for b in self.backups:
            if cls is None or b.cls == cls:
                return b
        return None

    def count(self, cls: BackupClass) -> int:
        return sum(1 for b in self.backups if b.cls == cls)

    def age(self, b: BackupFile) -> float:
        return self.host_now - b.mtime

    def summary(self) -> dict[str, Any]:
        return {"location": self.location.label, "host_now": self.host_now, "manifest": self.manifest,
                "backups": [dataclasses.asdict(b) | {"time": b.when()} for b in self.backups[:50]],
                "ignored": list(self.ignored[:50])}


def subject(spec: BackupSpec) -> str:
    """How a backup location is named in check ids: ``kind:location``."""
    from checks.connection import redact

    return f"{spec.kind}:{redact(spec.location)}"


def classify(spec: BackupSpec, name: str) -> BackupClass | None:
    if name.startswith(".") or any(fnmatch.fnmatch(name, p) for p in _SIDE_FILES):
        return None
    if spec.manifest and name == spec.manifest:
        return None
    if not fnmatch.fnmatch(name, spec.pattern):
        return None
    if spec.incremental_pattern and fnmatch.fnmatch(name, spec.incremental_pattern):
        return "incremental"
    if spec.full_pattern is None or fnmatch.fnmatch(name, spec.full_pattern):
        return "full"
    return None


def _evidence(loc: Location, started: float, raw: str, data: dict[str, Any]) -> Evidence:
    try:
        host_tool = tool(loc.host())
        where = describe(loc.host())
    except ProbeError:
        host_tool, where = "pytest-testinfra", loc.connection
    return Evidence(probe="backups.inventory", subject=loc.label,
                    method=f"on {where}: " + _LIST.format(dir=shlex.quote(loc.path)),
                    tool=host_tool, raw=raw[:600], duration_s=round(time.monotonic() - started, 3), data=data)


def list_location(loc: Location, spec: BackupSpec) -> Measurement:
    """The location's backups as an :class:`Inventory` (value), or an error when the
    location cannot be read (host unreachable, path missing, permission denied)."""
    started = time.monotonic()
    try:
        out = sh(loc, _LIST.format(dir=shlex.quote(loc.path)))
    except ProbeError as exc:
        reason = exc.reason
        if "can't cd" in reason or "No such file" in reason or "Not a directory" in reason:
            reason = f"location {loc.label} does not exist or is not a folder ({reason})"
        return Measurement.failed(reason, _evidence(loc, started, "", {}))
    lines = out.splitlines()
    try:
        host_now = float(lines[0])
    except (IndexError, ValueError):
        return Measurement.failed("the host's clock (date +%s) could not be read", _evidence(loc, started, out, {}))
    backups: list[BackupFile] = []
    ignored: list[str] = []
    names: set[str] = set()
    for line in lines[1:]:
        size, _, rest = line.partition("\t")
        mtime, _, name = rest.partition("\t")
        if not name or not size.isdigit():
            continue
        names.add(name)
        cls = classify(spec, name)
        if cls is None:
            ignored.append(name)
        else:
            backups.append(BackupFile(name, int(size), float(mtime), cls))
    backups.sort(key=lambda b: (b.mtime, b.name), reverse=True)
    manifest = spec.manifest if spec.manifest in names else next((m for m in MANIFEST_NAMES if m in names), None)
    inv = Inventory(loc, spec, host_now, tuple(backups), tuple(sorted(ignored)), manifest)
    ev = _evidence(loc, started, out, inv.summary())
    full, incr = inv.count("full"), inv.count("incremental")
    display = f"{len(backups)} backups ({full} full, {incr} incremental)"
    return Measurement(inv, display, ev)


def fmt_age(seconds: float) -> str:
    if seconds < 0:
        return f"{-seconds:.0f} s in the future (clock skew?)"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def newest_age(m: Measurement, cls: BackupClass | None) -> Measurement:
    """Age in seconds of the newest backup of ``cls`` (None: of any class, the newest
    restore point) in a listed location; value None when there is none."""
    if m.error is not None:
        return m
    inv: Inventory = m.value
    newest = inv.newest(cls)
    what = f"{cls} backup" if cls else "backup"
    if newest is None:
        hint = f" (full_pattern '{inv.spec.full_pattern}')" if cls == "full" and inv.spec.full_pattern else ""
        return Measurement(None, f"no {what} in {inv.location.label}{hint}", m.evidence)
    age = inv.age(newest)
    return Measurement(age, f"{fmt_age(age)} ({newest.name}, {newest.when()})", m.evidence, unit="s")


def full_count(m: Measurement) -> Measurement:
    if m.error is not None:
        return m
    inv: Inventory = m.value
    fulls = [b for b in inv.backups if b.cls == "full"]
    oldest = f", oldest {fmt_age(inv.age(fulls[-1]))} old" if fulls else ""
    return Measurement(len(fulls), f"{len(fulls)} full backup{'s' if len(fulls) != 1 else ''}{oldest}",
                       m.evidence, unit="backups")


def read_manifest(loc: Location, name: str) -> dict[str, dict[str, Any]]:
    """``{file name: {"sha256": ..., other fields}}`` from ``manifest.json`` (golive's and
    the lab's format: ``{"backups": {name: {"sha256": ...}}}``) or a ``sha256sum`` file."""
    text = sh(loc, f"cat -- {shlex.quote(loc.join(name))}")
    if name.endswith(".json") or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProbeError(f"manifest {name} is not valid JSON: {exc}") from None
        entries = data.get("backups", data) if isinstance(data, dict) else {}
        return {str(k): dict(v) for k, v in entries.items() if isinstance(v, dict) and "sha256" in v}
    found: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        digest, _, fname = line.strip().partition(" ")
        if len(digest) == 64:
            found[fname.strip().lstrip("*").removeprefix("./")] = {"sha256": digest.lower()}
    return found
