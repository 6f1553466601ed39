"""Read-only backup probes: integrity, encryption, off-site copy, completeness.

Each takes a listed location (:func:`checks.backups.inventory.list_location`) and returns a
:class:`~golive.model.Measurement` whose value is the facts found (``problems`` lists what is
wrong); the step decides pass or fail.  An error measurement means the facts could not be
gathered (host unreachable, tool missing, timeout, no key to decrypt).
"""
from __future__ import annotations

import shlex
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from checks.backups import content
from checks.backups.inventory import Inventory, fmt_age, read_manifest
from checks.backups.location import Location, fetch, read_bytes, sh, sha256
from checks.connection import ProbeError, redact
from golive.model import Evidence, Measurement

_SHA_CANDIDATES = 10


def _ev(probe: str, subject: str, method: str, started: float, data: dict[str, Any], raw: str = "",
        tool: str = "") -> Evidence:
    return Evidence(probe=probe, subject=subject, method=method, tool=tool, raw=redact(raw)[:600],
                    duration_s=round(time.monotonic() - started, 3), data=data)


_versions: dict[str, str] = {}


def tool_version(name: str) -> str:
    """``name --version`` on the checking host (cached), for evidence."""
    if name not in _versions:
        try:
            rc, out, _ = content.run_local([name, "--version"], timeout_s=10)
            _versions[name] = out.strip().splitlines()[0] if rc == 0 and out.strip() else name
        except content.ToolError:
            _versions[name] = f"{name} (not found)"
    return _versions[name]


def _integrity_tools(kind: str) -> str:
    import sqlite3

    if kind == "postgres":
        return f"sha256sum; {tool_version('pg_restore')}"
    if kind == "sqlite":
        return f"sha256sum; SQLite {sqlite3.sqlite_version} (Python sqlite3)"
    return "sha256sum; Python tarfile/zipfile"


def integrity(inv: Inventory, *, work_root: str | None = None) -> Measurement:
    """Verify the newest backup: non-empty; its sha256 equals the manifest's (when the
    location has one); and a local copy, decrypted and decompressed, reads back completely
    (pg_restore --list + a full read, SQLite ``PRAGMA integrity_check``, plain-dump footer,
    tar/ZIP/HDF5 structure).  Value: ``{"file", "format", "checks": [...], "problems": [...]}``."""
    started = time.monotonic()
    loc, spec = inv.location, inv.spec
    newest = inv.newest()
    data: dict[str, Any] = {"file": newest.name if newest else None, "checks": [], "problems": []}
    method = ("sha256sum on the location's host vs the manifest; copy to the checking host; "
              "decrypt_command/decompress; pg_restore --list and --file=/dev/null | PRAGMA integrity_check "
              "| footer/structure check")
    subject = loc.describe(newest.name if newest else None)

    tools = _integrity_tools(spec.kind)

    def done(display: str) -> Measurement:
        return Measurement(data, display, _ev("backups.integrity", subject, method, started, data, tool=tools))

    if newest is None:
        data["problems"].append("no backup to verify")
        return done(f"no backup in {loc.label}")
    if newest.size == 0:
        data["problems"].append("the file is empty (0 bytes)")
        return done(f"{newest.name}: empty file (0 bytes)")
    try:
        if inv.manifest:
            listed = read_manifest(loc, inv.manifest)
            data["manifest"] = inv.manifest
            if newest.name not in listed:
                data["problems"].append(f"{newest.name} is not listed in {inv.manifest}")
            else:
                actual = sha256(loc, [loc.join(newest.name)], timeout_s=spec.timeout_s).get(loc.join(newest.name))
                expected = str(listed[newest.name].get("sha256", "")).lower()
                data["sha256"] = actual
                if actual != expected:
                    data["problems"].append(f"sha256 {str(actual)[:12]}... differs from the manifest's "
                                            f"{expected[:12]}... ({inv.manifest})")
                else:
                    data["checks"].append(f"sha256 matches {inv.manifest}")
        with tempfile.TemporaryDirectory(prefix="golive-verify-", dir=work_root) as tmp:
            work = Path(tmp)
            copy = work / "backup"
            fetch(loc, loc.join(newest.name), copy, newest.size, timeout_s=max(spec.timeout_s, 60))
            try:
                plain, steps = content.unwrap(copy, work, spec.decrypt_command, timeout_s=spec.restore_timeout_s)
                verified = content.verify(plain, spec.kind, timeout_s=spec.restore_timeout_s)
                data["format"] = verified.format
                data["checks"].extend([*steps, *verified.facts])
            except content.ContentError as exc:
                data["problems"].append(str(exc))
    except content.NeedsKey as exc:
        return Measurement.failed(str(exc), _ev("backups.integrity", subject, method, started, data, tool=tools))
    except (ProbeError, content.ToolError) as exc:
        reason = exc.reason if isinstance(exc, ProbeError) else str(exc)
        return Measurement.failed(reason, _ev("backups.integrity", subject, method, started, data, tool=tools))
    if data["problems"]:
        return done(f"{newest.name}: " + "; ".join(data["problems"]))
    return done(f"{newest.name}: ok (" + "; ".join(data["checks"]) + ")")


def encryption(inv: Inventory) -> Measurement:
    """Whether the newest backup is stored encrypted, judged from its first 64 KiB (see
    :func:`checks.backups.content.encryption_verdict`).  Value: True (encrypted) / False."""
    started = time.monotonic()
    loc = inv.location
    newest = inv.newest()
    subject = loc.describe(newest.name if newest else None)
    method = f"head -c {content.HEAD_BYTES} on the location's host: magic bytes, then Shannon entropy"
    if newest is None:
        return Measurement(False, f"no backup in {loc.label}", _ev("backups.encryption", subject, method, started, {}))
    try:
        head = read_bytes(loc, loc.join(newest.name), content.HEAD_BYTES)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("backups.encryption", subject, method, started, {}))
    encrypted, why, facts = content.encryption_verdict(head)
    facts["file"] = newest.name
    raw = head[:16].hex(" ")
    return Measurement(encrypted, f"{newest.name}: {why}",
                       _ev("backups.encryption", subject, method, started, facts, raw=f"first bytes: {raw}",
                           tool="head (coreutils) through pytest-testinfra; golive magic/entropy table"))


def _list_sizes(loc: Location, timeout_s: float) -> dict[str, int]:
    out = sh(loc, f"cd -- {shlex.quote(loc.path)} && find . -mindepth 1 -maxdepth 1 -type f -printf '%s\\t%f\\n'",
             timeout_s=timeout_s)
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        size, _, name = line.partition("\t")
        if name and size.isdigit():
            sizes[name] = int(size)
    return sizes


def _machine_id(loc: Location) -> str | None:
    try:
        return sh(loc, "cat /etc/machine-id", timeout_s=10).strip() or None
    except ProbeError:
        return None


def offsite(inv: Inventory, off: Location) -> Measurement:
    """Whether ``off`` (another host) holds a byte-identical copy of the newest backup:
    candidates of the same name or size there, compared by sha256 computed on each host.
    Value: ``{"copy": name or None, "same_endpoint": bool, ...}``."""
    started = time.monotonic()
    loc, spec = inv.location, inv.spec
    newest = inv.newest()
    data: dict[str, Any] = {"primary": loc.label, "offsite": off.label, "primary_endpoint": loc.endpoint,
                            "offsite_endpoint": off.endpoint, "same_endpoint": loc.endpoint == off.endpoint,
                            "copy": None}
    method = "sha256sum of the newest backup on its host; find + sha256sum of same-name/same-size files off-site"
    subject = f"{loc.label} -> {off.label}"
    if newest is None:
        return Measurement(data, f"no backup in {loc.label} to look for",
                           _ev("backups.offsite", subject, method, started, data))
    data["newest"] = newest.name
    try:
        digest = sha256(loc, [loc.join(newest.name)], timeout_s=spec.timeout_s).get(loc.join(newest.name))
        data["sha256"] = digest
        try:
            sizes = _list_sizes(off, spec.timeout_s)
        except ProbeError as exc:
            if "can't cd" in exc.reason or "No such file" in exc.reason:
                raise ProbeError(f"off-site location {off.label} does not exist ({exc.reason})") from None
            raise
        candidates = ([newest.name] if sizes.get(newest.name) == newest.size else []) + \
            [n for n, s in sizes.items() if s == newest.size and n != newest.name]
        candidates = candidates[:_SHA_CANDIDATES]
        sums = sha256(off, [off.join(n) for n in candidates], timeout_s=spec.timeout_s)
        data["offsite_files"] = len(sizes)
        for name in candidates:
            if sums.get(off.join(name)) == digest:
                data["copy"] = name
                break
        data["primary_machine_id"] = _machine_id(loc)
        data["offsite_machine_id"] = _machine_id(off)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("backups.offsite", subject, method, started, data))
    ev = _ev("backups.offsite", subject, method, started, data, tool="sha256sum, find through pytest-testinfra")
    where = f"{off.label} ({off.endpoint})"
    if data["copy"] is None:
        same_name = "a different file of that name" if newest.name in sizes else "no file of that name"
        return Measurement(data, f"no copy of {newest.name} on {where}: {same_name}, "
                                 f"{len(sizes)} files there", ev)
    note = " -- the SAME endpoint as the backups, not off-site" if data["same_endpoint"] else ""
    return Measurement(data, f"identical copy of {newest.name} on {where}{note}", ev)


def source_times(sources: Sequence[Location], timeout_s: float = 30) -> Measurement:
    """mtime (epoch seconds) of each source file on its host (``stat -c %Y``).
    Value: ``{label: mtime}``; an error when a file is missing or its host unreachable."""
    started = time.monotonic()
    times: dict[str, float] = {}
    method = "stat -c %Y on each file's host"
    for loc in sources:
        try:
            out = sh(loc, f"stat -c %Y -- {shlex.quote(loc.path)}", timeout_s=timeout_s)
            times[loc.label] = float(out.strip().splitlines()[-1])
        except ProbeError as exc:
            reason = exc.reason
            if "No such file" in reason:
                reason = f"backed-up file {loc.label} does not exist ({reason})"
            return Measurement.failed(reason, _ev("backups.sources", loc.label, method, started, {"mtimes": times}))
        except (ValueError, IndexError):
            return Measurement.failed(f"stat gave no time for {loc.label}",
                                      _ev("backups.sources", loc.label, method, started, {"mtimes": times}))
    return Measurement(times, f"{len(times)} files", _ev("backups.sources", "sources", method, started,
                                                         {"mtimes": times}))


def completeness(category: str, holders: Sequence[tuple[Inventory, Measurement | None]],
                 errors: Sequence[str]) -> Measurement:
    """Whether ``category`` (database, config, keys, code, features) is in the backup set:
    some location that declares it holds backups, and every file it declares (``sources``)
    last changed before that location's newest backup.  ``holders``: (inventory, source
    times) of each location declaring the category; ``errors``: locations that declare it
    but could not be read.  Value: ``{"holders": [...], "unsaved": [...], "empty": [...]}``."""
    started = time.monotonic()
    data: dict[str, Any] = {"category": category, "holders": [], "unsaved": [], "empty": [], "unreadable": list(errors)}
    method = "backup locations declaring this content: newest backup time vs each covered file's mtime"
    for inv, times in holders:
        newest = inv.newest()
        if newest is None:
            data["empty"].append(inv.location.label)
            continue
        if times is not None and times.error is not None:
            return Measurement.failed(times.error, _ev("backups.completeness", category, method, started, data))
        data["holders"].append(f"{inv.spec.kind}:{inv.location.label} (newest {newest.name}, {newest.when()})")
        for label, mtime in (times.value.items() if times is not None else ()):
            if mtime > newest.mtime:
                data["unsaved"].append(f"{label} changed {fmt_age(mtime - newest.mtime)} after the newest "
                                       f"backup {newest.name}")
    ev = _ev("backups.completeness", category, method, started, data)
    if not data["holders"] and errors:
        return Measurement.failed("; ".join(errors), ev)
    if not data["holders"]:
        where = f" ({', '.join(data['empty'])} holds no backup)" if data["empty"] else ""
        return Measurement(data, f"no backup location holds {category}{where}", ev)
    if data["unsaved"]:
        return Measurement(data, "; ".join(data["unsaved"]), ev)
    n = sum(len(t.value) for _, t in holders if t is not None and t.error is None)
    covered = f"; {n} covered file{'s' if n != 1 else ''} unchanged since" if n else ""
    return Measurement(data, f"{category} in {', '.join(data['holders'])}{covered}", ev)
