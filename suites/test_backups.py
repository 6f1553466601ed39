"""Bindings for features/backups.feature: backup locations listed and read through testinfra
(checks.backups), judged against the profile's ``backups`` block.

Check ids: ``backups.age.full[kind:location]``, ``backups.age.incremental[...]``,
``backups.retention[...]``, ``backups.completeness[content]``, ``backups.integrity[...]``,
``backups.encryption[...]``, ``backups.offsite[...]``, ``backups.pitr[database]``,
``backups.restore[...]``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pytest_bdd import scenarios, then, when

from checks import backups as probe
from checks.backups.location import Location
from golive.model import Evidence, Measurement
from golive.profile import BackupsReq
from golive.target import BackupSpec
from golive.units import fmt_duration

scenarios("backups.feature")

NOT_ALLOWED = "disruptive, not allowed"
_DEFAULT_CONTENTS = {"postgres": ["database"], "sqlite": ["database"], "files": []}


@dataclasses.dataclass
class Listed:
    spec: BackupSpec
    subject: str
    location: Location | None
    measurement: Measurement

    @property
    def inventory(self) -> probe.Inventory | None:
        return self.measurement.value if self.measurement.error is None else None

    def contents(self) -> list[str]:
        return list(self.spec.contents) if self.spec.contents is not None else _DEFAULT_CONTENTS[self.spec.kind]


def _req(golive: Any) -> BackupsReq | None:
    return golive.req.backups if golive.req else None


def _no_profile(golive: Any, check: str) -> bool:
    if _req(golive) is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' sets no backup requirements")
        return True
    return False


def _no_locations(golive: Any, check: str, listed: list[Listed], expected: str) -> bool:
    if not listed:
        golive.checks.error(check, "the target declares no backup locations (backups:)", block=_req(golive),
                            expected=expected)
        return True
    return False


def _parse(golive: Any, spec: BackupSpec, text: str) -> Location:
    return probe.parse_location(text, hosts=golive.target.hosts, ssh_config=spec.ssh_config,
                                ssh_identity_file=spec.ssh_identity_file, timeout_s=spec.timeout_s)


def _failed(subject: str, probe_name: str, reason: str) -> Measurement:
    return Measurement.failed(reason, Evidence(probe=probe_name, subject=subject, method="target configuration"))


# ----------------------------------------------------------------------------- listing, age, retention

@when("the backup locations are listed", target_fixture="listed")
def list_locations(golive: Any) -> list[Listed]:
    if _req(golive) is None:
        return []
    out = []
    for spec in golive.target.backups:
        subject = probe.subject(spec)
        try:
            loc = _parse(golive, spec, spec.location)
        except ValueError as exc:
            out.append(Listed(spec, subject, None, _failed(subject, "backups.inventory", str(exc))))
            continue
        out.append(Listed(spec, subject, loc, probe.list_location(loc, spec)))
    return out


def _judge_age(golive: Any, listed: list[Listed], which: str) -> None:
    check = f"backups.age.{which}"
    if _no_profile(golive, check):
        return
    req = _req(golive)
    assert req is not None
    limit = getattr(req.max_age, which) if req.max_age else None
    if limit is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' sets no max_age.{which}")
        return
    expected = f"newest {'full backup' if which == 'full' else 'restore point (full or incremental)'} " \
               f"<= {fmt_duration(limit)} old"
    if _no_locations(golive, check, listed, expected):
        return
    for item in listed:
        m = probe.newest_age(item.measurement, "full" if which == "full" else None)
        golive.checks.record(f"{check}[{item.subject}]", block=req, expected=expected, measurement=m,
                             ok=lambda v, lim=limit: v is not None and v <= lim,
                             remediation=f"run the {which} backup job (at least every {fmt_duration(limit)}) "
                                         "and check its schedule and logs")


@then("the newest full backup in each location is younger than the profile's full-backup age")
def judge_full_age(golive: Any, listed: list[Listed]) -> None:
    _judge_age(golive, listed, "full")


@then("the newest restore point in each location is younger than the profile's incremental age")
def judge_incremental_age(golive: Any, listed: list[Listed]) -> None:
    _judge_age(golive, listed, "incremental")


@then("each location keeps at least the profile's minimum of full backups")
def judge_retention(golive: Any, listed: list[Listed]) -> None:
    check = "backups.retention"
    if _no_profile(golive, check):
        return
    req = _req(golive)
    assert req is not None
    if req.retention_full_min is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' sets no retention_full_min")
        return
    n = req.retention_full_min
    expected = f">= {n} full backups kept"
    if _no_locations(golive, check, listed, expected):
        return
    for item in listed:
        golive.checks.record(f"{check}[{item.subject}]", block=req, expected=expected,
                             measurement=probe.full_count(item.measurement), ok=lambda v: v is not None and v >= n,
                             remediation=f"keep at least {n} full backups (retention policy of the backup job)")


# ----------------------------------------------------------------------------- completeness

@when("the files the backups cover are inspected on their hosts", target_fixture="sources")
def inspect_sources(golive: Any, listed: list[Listed]) -> dict[str, Measurement]:
    out: dict[str, Measurement] = {}
    for item in listed:
        if not item.spec.sources:
            continue
        try:
            locs = [_parse(golive, item.spec, s) for s in item.spec.sources]
        except ValueError as exc:
            out[item.subject] = _failed(item.subject, "backups.sources", str(exc))
            continue
        out[item.subject] = probe.source_times(locs, item.spec.timeout_s)
    return out


@then("every kind of content the profile lists is backed up after its last change")
def judge_completeness(golive: Any, listed: list[Listed], sources: dict[str, Measurement]) -> None:
    check = "backups.completeness"
    if _no_profile(golive, check):
        return
    req = _req(golive)
    assert req is not None
    if not req.contents:
        golive.checks.skip(check, f"profile '{golive.profile.name}' lists no backup contents")
        return
    for category in req.contents:
        expected = f"{category} backed up; every covered file unchanged since the newest backup"
        declaring = [i for i in listed if category in i.contents()]
        holders = [(i.inventory, sources.get(i.subject)) for i in declaring if i.inventory is not None]
        errors = [f"{i.subject}: {i.measurement.error}" for i in declaring if i.measurement.error is not None]
        m = probe.completeness(category, holders, errors)
        golive.checks.record(f"{check}[{category}]", block=req, expected=expected, measurement=m,
                             ok=lambda v: bool(v["holders"]) and not v["unsaved"],
                             remediation=f"back up the {category} (declare it in backups[].contents and its files "
                                         "in backups[].sources) and re-run the backup after every change")


# ----------------------------------------------------------------------------- integrity, encryption

@when("the newest backup in each location is copied and read back", target_fixture="verified")
def verify_newest(golive: Any, listed: list[Listed]) -> dict[str, Measurement] | None:
    req = _req(golive)
    if req is None or not req.integrity:
        return None
    return {i.subject: probe.integrity(i.inventory) if i.inventory is not None else i.measurement for i in listed}


@then("each newest backup matches its manifest and reads back completely")
def judge_integrity(golive: Any, listed: list[Listed], verified: dict[str, Measurement] | None) -> None:
    check = "backups.integrity"
    if _no_profile(golive, check):
        return
    req = _req(golive)
    if verified is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' does not require integrity checks")
        return
    expected = "non-empty; sha256 as in the manifest (if any); reads back completely"
    if _no_locations(golive, check, listed, expected):
        return
    for subject, m in verified.items():
        golive.checks.record(f"{check}[{subject}]", block=req, expected=expected, measurement=m,
                             ok=lambda v: not v["problems"],
                             remediation="the newest backup cannot be restored: check the backup job's log "
                                         "(disk full, killed dump), re-run it and verify the result")


@when("the first bytes of the newest backup in each location are read", target_fixture="sniffed")
def read_heads(golive: Any, listed: list[Listed]) -> dict[str, Measurement] | None:
    req = _req(golive)
    if req is None or not req.encryption:
        return None
    return {i.subject: probe.encryption(i.inventory) if i.inventory is not None else i.measurement for i in listed}


@then("no newest backup is stored in plaintext")
def judge_encryption(golive: Any, listed: list[Listed], sniffed: dict[str, Measurement] | None) -> None:
    check = "backups.encryption"
    if _no_profile(golive, check):
        return
    if sniffed is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' does not require encrypted backups")
        return
    expected = "encrypted (age/OpenPGP/OpenSSL header, or random-looking bytes)"
    if _no_locations(golive, check, listed, expected):
        return
    for subject, m in sniffed.items():
        golive.checks.record(f"{check}[{subject}]", block=_req(golive), expected=expected, measurement=m,
                             ok=lambda v: v is True,
                             remediation="encrypt backups before they are stored (e.g. pipe pg_dump through "
                                         "age -r RECIPIENT or gpg --encrypt)")


# ----------------------------------------------------------------------------- off-site

@when("each off-site location is searched for the newest backup", target_fixture="copies")
def search_offsite(golive: Any, listed: list[Listed]) -> dict[str, Measurement] | None:
    req = _req(golive)
    if req is None or not req.offsite:
        return None
    out: dict[str, Measurement] = {}
    for item in listed:
        if item.inventory is None:
            out[item.subject] = item.measurement
        elif item.spec.offsite is None:
            out[item.subject] = Measurement({"copy": None, "same_endpoint": False, "declared": False},
                                            "no off-site location declared (backups[].offsite)",
                                            Evidence(probe="backups.offsite", subject=item.subject,
                                                     method="target configuration"))
        else:
            try:
                off = _parse(golive, item.spec, item.spec.offsite)
            except ValueError as exc:
                out[item.subject] = _failed(item.subject, "backups.offsite", str(exc))
                continue
            out[item.subject] = probe.offsite(item.inventory, off)
    return out


@then("every newest backup has an identical copy on another host")
def judge_offsite(golive: Any, listed: list[Listed], copies: dict[str, Measurement] | None) -> None:
    check = "backups.offsite"
    if _no_profile(golive, check):
        return
    if copies is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' does not require off-site copies")
        return
    expected = "a byte-identical copy of the newest backup (sha256) on another host"
    if _no_locations(golive, check, listed, expected):
        return
    for subject, m in copies.items():
        golive.checks.record(f"{check}[{subject}]", block=_req(golive), expected=expected, measurement=m,
                             ok=lambda v: bool(v["copy"]) and not v["same_endpoint"],
                             remediation="copy every backup to a second site after it is written "
                                         "(rsync/rclone to another host or bucket) and check the copy job")


# ----------------------------------------------------------------------------- PITR

@when("the WAL archiver of each PostgreSQL database is queried", target_fixture="archivers")
def query_archivers(golive: Any) -> dict[str, Measurement] | None:
    req = _req(golive)
    if req is None or not req.pitr:
        return None
    out: dict[str, Measurement] = {}
    for spec in golive.target.backups:
        if spec.kind != "postgres":
            continue
        try:
            conn = probe.connection(spec)
            wal = _parse(golive, spec, spec.wal_archive) if spec.wal_archive else None
        except ValueError as exc:
            out[probe.subject(spec)] = _failed(probe.subject(spec), "backups.pitr", str(exc))
            continue
        out[conn.label] = probe.archiver(conn, wal)
    return out


@then("archiving is on, not failing, and recent enough")
def judge_pitr(golive: Any, archivers: dict[str, Measurement] | None) -> None:
    check = "backups.pitr"
    if _no_profile(golive, check):
        return
    req = _req(golive)
    assert req is not None
    if archivers is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' does not require point-in-time recovery")
        return
    if not archivers:
        golive.checks.error(check, "the target declares no PostgreSQL backup (backups[].kind: postgres)",
                            block=req, expected="WAL archiving on")
        return
    rpo = req.rpo
    expected = "archive_mode on; WAL archived; last attempt not failed; segment in the archive" + \
        (f"; last archive <= {fmt_duration(rpo)} old" if rpo is not None else "")

    def ok(v: dict[str, Any]) -> bool:
        recent = rpo is None or (v["last_archived_age_s"] is not None and v["last_archived_age_s"] <= rpo)
        return (v["archive_mode"] in ("on", "always") and v["archived_count"] > 0 and not v["failing"]
                and v["in_archive"] is not False and recent)

    for db, m in archivers.items():
        golive.checks.record(f"{check}[{db}]", block=req, expected=expected, measurement=m, ok=ok,
                             remediation="set archive_mode = on and an archive_command that succeeds (see the "
                                         "server log for its errors); check pg_stat_archiver.failed_count")


# ----------------------------------------------------------------------------- restore drill

@when("the newest backup of each database is restored into its scratch space", target_fixture="drills")
def restore(golive: Any, listed: list[Listed]) -> dict[str, Measurement | str] | None:
    if _req(golive) is None:
        return None
    out: dict[str, Measurement | str] = {}
    for item in listed:
        if item.spec.kind == "files":
            out[item.subject] = "the restore drill covers databases (postgres, sqlite), not file backups"
        elif not golive.env.allow_disruptive:
            out[item.subject] = NOT_ALLOWED
        elif not item.spec.scratch:
            out[item.subject] = "the target names no scratch database/folder (backups[].scratch)"
        elif item.inventory is None:
            out[item.subject] = item.measurement
        elif item.spec.kind == "postgres":
            out[item.subject] = probe.restore_postgres(item.inventory, item.spec.scratch)
        else:
            try:
                source = _parse(golive, item.spec, item.spec.database) if item.spec.database else None
            except ValueError as exc:
                out[item.subject] = _failed(item.subject, "backups.restore", str(exc))
                continue
            out[item.subject] = probe.restore_sqlite(item.inventory, Path(item.spec.scratch), source)
    return out


@then("the restored tables hold the source's row counts within the profile's RTO")
def judge_restore(golive: Any, listed: list[Listed], drills: dict[str, Measurement | str] | None) -> None:
    check = "backups.restore"
    if _no_profile(golive, check) or drills is None:
        return
    req = _req(golive)
    assert req is not None
    rto = req.rto
    expected = "restores; per-table row counts equal the source; scratch removed" + \
        (f"; within {fmt_duration(rto)} (RTO)" if rto is not None else "")
    if _no_locations(golive, check, listed, expected):
        return
    for subject, m in drills.items():
        if isinstance(m, str):
            golive.checks.skip(f"{check}[{subject}]", m, block=req, expected=expected)
            continue
        golive.checks.record(
            f"{check}[{subject}]", block=req, expected=expected, measurement=m,
            ok=lambda v: bool(v["restored"]) and not v["mismatches"] and v["scratch_removed"] is not False
            and (rto is None or v["duration_s"] <= rto),
            remediation="fix the backup so that it restores (or the restore procedure so that it meets the RTO); "
                        "restore drills belong in the release checklist")
