"""The backups family, declared: backups exist where the target says, are recent and kept
long enough, hold everything the profile lists, read back completely, are encrypted and
copied off-site where required; PostgreSQL archives its WAL (PITR); and the newest backup
of each database really restores within the RTO (the disruptive restore drill).

Reads ``requirements.backups`` (:class:`BackupsReq`) and the target's ``backups:`` list
(:class:`BackupSpec`, one entry per location).  Results are per location
(``backups.integrity[postgres:/var/backups/pg]``), per content category
(``backups.completeness[config]``) or per database (``backups.pitr[postgresql://...]``).
The locations are listed once per run and shared by every check (``ctx.memo``); the probes
(:mod:`checks.backups.inventory`, ...) are imported only when a check measures.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from checks.backups.spec import BackupSpec, BackupsReq
from golive.checkdef import Check, CheckContext, Family, Judged, Skipped
from golive.model import Evidence, Measurement, Severity
from golive.units import fmt_duration

if TYPE_CHECKING:
    from checks.backups.inventory import Inventory
    from checks.backups.location import Location

_DEFAULT_CONTENTS: dict[str, list[str]] = {"postgres": ["database"], "sqlite": ["database"], "files": []}
NO_LOCATIONS = "the target declares no backup locations (backups:)"
VERIFY_HINT = ("make the backup location readable from the checking host (path, ssh:// URI or HOST:/path in the "
               "target's backups:, with credentials that may list and read it) and run golive again")


# ----------------------------------------------------------------------------- listing (shared by every check)

@dataclasses.dataclass(frozen=True)
class Listed:
    """One backup entry of the target, listed: its subject (``kind:location``), the parsed
    location (None when it does not parse) and the listing (an Inventory, or an error)."""

    spec: BackupSpec
    subject: str
    location: Location | None
    measurement: Measurement

    @property
    def inventory(self) -> Inventory | None:
        return self.measurement.value if self.measurement.error is None else None

    def contents(self) -> list[str]:
        return list(self.spec.contents) if self.spec.contents is not None else _DEFAULT_CONTENTS[self.spec.kind]


def _parse(ctx: CheckContext, spec: BackupSpec, text: str) -> Location:
    """A location of this entry (ValueError with the reason when it does not parse); target
    host names (``HOST:/path``) resolve with the host's connection options."""
    from checks.backups.location import HostConn, parse_location

    hosts = [HostConn(h.name, h.connection, h.ssh_config, h.ssh_identity_file, h.sudo, h.timeout_s,
                      h.known_hosts if not isinstance(h.known_hosts, list) else tuple(h.known_hosts))
             for h in ctx.host_specs]
    return parse_location(text, hosts=hosts, ssh_config=spec.ssh_config, ssh_identity_file=spec.ssh_identity_file,
                          timeout_s=spec.timeout_s)


def _failed(subject: str, probe: str, reason: str) -> Measurement:
    return Measurement.failed(reason, Evidence(probe=probe, subject=subject, method="target configuration"))


def _list_all(ctx: CheckContext) -> list[Listed]:
    from checks.backups.inventory import list_location, subject

    out = []
    for spec in ctx.spec or []:
        name = subject(spec)
        try:
            loc = _parse(ctx, spec, spec.location)
        except ValueError as exc:
            out.append(Listed(spec, name, None, _failed(name, "backups.inventory", str(exc))))
            continue
        out.append(Listed(spec, name, loc, list_location(loc, spec)))
    return out


def listed(ctx: CheckContext) -> list[Listed]:
    """Every backup location of the target, listed once per run."""
    result: list[Listed] = ctx.memo("backups.listed", lambda: _list_all(ctx))
    return result


def _per_location(fn: Callable[[CheckContext, Listed], Measurement | Skipped]
                  ) -> Callable[[CheckContext], Measurement | dict[str, Measurement | Skipped]]:
    """A measure with one result per location, or one error when the target has none."""
    def measure(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
        items = listed(ctx)
        if not items:
            return _failed(ctx.target.name if ctx.target is not None else "target", "backups.inventory", NO_LOCATIONS)
        return {item.subject: fn(ctx, item) for item in items}
    return measure


def _profile_sets(attr: str, what: str) -> Callable[[CheckContext], str | None]:
    def applies(ctx: CheckContext) -> str | None:
        value: Any = ctx.req
        for part in attr.split("."):
            value = getattr(value, part, None) if value is not None else None
        return None if value else f"profile '{ctx.profile_name}' {what}"
    return applies


# ----------------------------------------------------------------------------- age, retention

def _age(which: Literal["full", "incremental"]) -> Callable[[CheckContext, Listed], Measurement]:
    def measure(ctx: CheckContext, item: Listed) -> Measurement:
        from checks.backups.inventory import newest_age

        return newest_age(item.measurement, "full" if which == "full" else None)
    return measure


def _age_expected(which: Literal["full", "incremental"]) -> Callable[[BackupsReq], str]:
    def expected(req: BackupsReq) -> str:
        what = "full backup" if which == "full" else "restore point (full or incremental)"
        # a profile without max_age (STRV: "regular" backups, no period) skips the check; its
        # skip result still states what would be expected
        limit = getattr(req.max_age, which, None) if req.max_age is not None else None
        if limit is None:
            return f"newest {what} within the owner's period (the profile sets no max_age.{which})"
        return f"newest {what} <= {fmt_duration(limit)} old"
    return expected


def _age_ok(which: Literal["full", "incremental"]) -> Callable[[BackupsReq, Any], bool]:
    def passes(req: BackupsReq, age: float | None) -> bool:
        limit = getattr(req.max_age, which)
        return age is not None and age <= limit
    return passes


def _age_fix(which: Literal["full", "incremental"]) -> Callable[[BackupsReq, Measurement], str]:
    def remediation(req: BackupsReq, m: Measurement) -> str:
        limit = getattr(req.max_age, which)
        return f"run the {which} backup job (at least every {fmt_duration(limit)}) and check its schedule and logs"
    return remediation


def _retention(ctx: CheckContext, item: Listed) -> Measurement:
    from checks.backups.inventory import full_count

    return full_count(item.measurement)


# ----------------------------------------------------------------------------- completeness

def _sources(ctx: CheckContext) -> dict[str, Measurement]:
    """mtimes of the files each location covers (``backups[].sources``), once per run."""
    def read() -> dict[str, Measurement]:
        from checks.backups.probes import source_times

        out: dict[str, Measurement] = {}
        for item in listed(ctx):
            if not item.spec.sources:
                continue
            try:
                locs = [_parse(ctx, item.spec, s) for s in item.spec.sources]
            except ValueError as exc:
                out[item.subject] = _failed(item.subject, "backups.sources", str(exc))
                continue
            out[item.subject] = source_times(locs, item.spec.timeout_s)
        return out

    result: dict[str, Measurement] = ctx.memo("backups.sources", read)
    return result


def _completeness(ctx: CheckContext) -> dict[str, Judged]:
    from checks.backups.probes import completeness

    items, sources = listed(ctx), _sources(ctx)
    out = {}
    for category in ctx.req.contents:
        declaring = [i for i in items if category in i.contents()]
        holders = [(i.inventory, sources.get(i.subject)) for i in declaring if i.inventory is not None]
        errors = [f"{i.subject}: {i.measurement.error}" for i in declaring if i.measurement.error is not None]
        out[category] = Judged(completeness(category, holders, errors), ctx.req,
                               f"{category} backed up; every covered file unchanged since the newest backup")
    return out


def _subjects(ctx: CheckContext) -> list[str]:
    """The locations a skipped drill names (one skip per location, as when it runs)."""
    from checks.backups.inventory import subject

    return [subject(spec) for spec in ctx.spec or []]


# ----------------------------------------------------------------------------- integrity, encryption, off-site

def _integrity(ctx: CheckContext, item: Listed) -> Measurement:
    from checks.backups.probes import integrity

    return integrity(item.inventory) if item.inventory is not None else item.measurement


def _encryption(ctx: CheckContext, item: Listed) -> Measurement:
    from checks.backups.probes import encryption

    return encryption(item.inventory) if item.inventory is not None else item.measurement


def _offsite(ctx: CheckContext, item: Listed) -> Measurement:
    from checks.backups.probes import offsite

    if item.inventory is None:
        return item.measurement
    if item.spec.offsite is None:
        return Measurement({"copy": None, "same_endpoint": False, "declared": False},
                           "no off-site location declared (backups[].offsite)",
                           Evidence(probe="backups.offsite", subject=item.subject, method="target configuration"))
    try:
        off = _parse(ctx, item.spec, item.spec.offsite)
    except ValueError as exc:
        return _failed(item.subject, "backups.offsite", str(exc))
    return offsite(item.inventory, off)


# ----------------------------------------------------------------------------- PITR

def _pitr(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.backups.inventory import subject
    from checks.backups.postgres import archiver, connection

    out: dict[str, Measurement] = {}
    for spec in ctx.spec or []:
        if spec.kind != "postgres":
            continue
        try:
            conn = connection(spec)
            wal = _parse(ctx, spec, spec.wal_archive) if spec.wal_archive else None
        except ValueError as exc:
            out[subject(spec)] = _failed(subject(spec), "backups.pitr", str(exc))
            continue
        out[conn.label] = archiver(conn, wal)
    if not out:
        return _failed(ctx.target.name if ctx.target is not None else "target", "backups.pitr",
                       "the target declares no PostgreSQL backup (backups[].kind: postgres)")
    return out


def _pitr_expected(req: BackupsReq) -> str:
    return "archive_mode on; WAL archived; last attempt not failed; segment in the archive" + \
        (f"; last archive <= {fmt_duration(req.rpo)} old" if req.rpo is not None else "")


def _pitr_ok(req: BackupsReq, v: dict[str, Any]) -> bool:
    rpo = req.rpo
    recent = rpo is None or (v["last_archived_age_s"] is not None and v["last_archived_age_s"] <= rpo)
    return bool(v["archive_mode"] in ("on", "always") and v["archived_count"] > 0 and not v["failing"]
                and v["in_archive"] is not False and recent)


# ----------------------------------------------------------------------------- restore drill

def _restore(ctx: CheckContext, item: Listed) -> Measurement | Skipped:
    """The drill for one location; the drill functions clean their scratch up on every exit
    path (errors, timeouts, SIGINT/SIGTERM: checks.backups.drill).  File backups and entries
    without a scratch space are skipped one by one."""
    from checks.backups.drill import restore_postgres, restore_sqlite

    if item.spec.kind == "files":
        return Skipped("the restore drill covers databases (postgres, sqlite), not file backups")
    if not item.spec.scratch:
        return Skipped("the target names no scratch database/folder (backups[].scratch)")
    if item.inventory is None:
        return item.measurement
    if item.spec.kind == "postgres":
        return restore_postgres(item.inventory, item.spec.scratch)
    try:
        source = _parse(ctx, item.spec, item.spec.database) if item.spec.database else None
    except ValueError as exc:
        return _failed(item.subject, "backups.restore", str(exc))
    return restore_sqlite(item.inventory, Path(item.spec.scratch), source)


def _restore_expected(req: BackupsReq) -> str:
    return "restores; per-table row counts equal the source; scratch removed" + \
        (f"; within {fmt_duration(req.rto)} (RTO)" if req.rto is not None else "")


def _restore_ok(req: BackupsReq, v: dict[str, Any]) -> bool:
    return bool(v["restored"]) and not v["mismatches"] and v["scratch_removed"] is not False \
        and (req.rto is None or v["duration_s"] <= req.rto)


FAMILY = Family(
    name="backups",
    title="backup freshness, integrity and restore checks",
    feature="backups.feature",
    profile_block=BackupsReq,
    target_block=BackupSpec,
    target_many=True,
    checks=(
        Check(
            id="backups.age.full",
            title="The newest backups are recent enough",
            severity=Severity.HIGH,
            refs=("DS-BAK-01", "AW-BAK-01", "AW-BAK-05", "VO-BAK-01", "ST-BAK-01"),
            measures="age of the newest full backup in each location (its mtime against the location host's "
                     "clock, listed with find over testinfra)",
            applies=_profile_sets("max_age.full", "sets no max_age.full"),
            measure=_per_location(_age("full")),
            expected=_age_expected("full"),
            passes=_age_ok("full"),
            remediation=_age_fix("full"),
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="backups.age.incremental",
            title="The newest backups are recent enough",
            severity=Severity.HIGH,
            refs=("DS-BAK-01", "AW-BAK-01", "AW-BAK-05", "VO-BAK-01", "ST-BAK-01"),
            measures="age of the newest backup of any class (full or incremental) in each location",
            applies=_profile_sets("max_age.incremental", "sets no max_age.incremental"),
            measure=_per_location(_age("incremental")),
            expected=_age_expected("incremental"),
            passes=_age_ok("incremental"),
            remediation=_age_fix("incremental"),
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="backups.retention",
            title="Enough full backups are retained",
            severity=Severity.MEDIUM,
            refs=("DS-BAK-01", "AW-BAK-01"),
            measures="number of full backups kept in each location",
            applies=_profile_sets("retention_full_min", "sets no retention_full_min"),
            measure=_per_location(_retention),
            expected=lambda req: f">= {req.retention_full_min} full backups kept",
            passes=lambda req, n: n is not None and n >= req.retention_full_min,
            remediation=lambda req, m: f"keep at least {req.retention_full_min} full backups (retention policy "
                                       "of the backup job)",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="backups.completeness",
            title="The backup set is complete and current",
            severity=Severity.HIGH,
            refs=("DS-BAK-02", "DS-BAK-03", "DS-BAK-04", "AW-BAK-07", "ST-BAK-01"),
            measures="per content category the profile lists: a location declaring it holds backups, and every "
                     "covered file (backups[].sources, stat over testinfra) is older than that location's newest "
                     "backup",
            applies=_profile_sets("contents", "lists no backup contents"),
            measure=_completeness,
            expected="each listed content backed up; every covered file unchanged since the newest backup",
            passes=lambda req, v: bool(v["holders"]) and not v["unsaved"],
            remediation=lambda req, m: f"back up the {m.evidence.subject} (declare it in backups[].contents and "
                                       "its files in backups[].sources) and re-run the backup after every change",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="backups.integrity",
            title="The newest backups are intact",
            severity=Severity.CRITICAL,
            refs=("AW-BAK-03", "AW-BAK-07", "ST-BAK-02"),
            measures="the newest backup of each location, copied to the checking host: non-empty, sha256 as in "
                     "the location's manifest, decrypted/decompressed and read back completely",
            applies=_profile_sets("integrity", "does not require integrity checks"),
            measure=_per_location(_integrity),
            expected="non-empty; sha256 as in the manifest (if any); reads back completely",
            passes=lambda req, v: not v["problems"],
            remediation="the newest backup cannot be restored: check the backup job's log "
                        "(disk full, killed dump), re-run it and verify the result",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="backups.encryption",
            title="Backups are encrypted where required",
            severity=Severity.HIGH,
            refs=("AW-BAK-05",),
            measures="the first bytes of the newest backup in each location: an encryption header (age, "
                     "OpenPGP, OpenSSL) or random-looking bytes, not a plaintext format",
            applies=_profile_sets("encryption", "does not require encrypted backups"),
            measure=_per_location(_encryption),
            expected="encrypted (age/OpenPGP/OpenSSL header, or random-looking bytes)",
            passes=lambda req, encrypted: encrypted is True,
            remediation="encrypt backups before they are stored (e.g. pipe pg_dump through "
                        "age -r RECIPIENT or gpg --encrypt)",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="backups.offsite",
            title="A copy of the newest backup is kept off-site",
            severity=Severity.HIGH,
            refs=("AW-BAK-04",),
            measures="the off-site location of each entry (backups[].offsite) searched for a byte-identical "
                     "copy (sha256) of the newest backup, on a different host",
            applies=_profile_sets("offsite", "does not require off-site copies"),
            measure=_per_location(_offsite),
            expected="a byte-identical copy of the newest backup (sha256) on another host",
            passes=lambda req, v: bool(v["copy"]) and not v["same_endpoint"],
            remediation="copy every backup to a second site after it is written "
                        "(rsync/rclone to another host or bucket) and check the copy job",
            verify_hint=VERIFY_HINT,
        ),
        Check(
            id="backups.pitr",
            title="PostgreSQL point-in-time recovery is armed",
            severity=Severity.HIGH,
            refs=("AW-BAK-02",),
            measures="each PostgreSQL database's archive_mode and pg_stat_archiver (psql), and the last archived "
                     "WAL segment in the wal_archive location",
            applies=_profile_sets("pitr", "does not require point-in-time recovery"),
            measure=_pitr,
            expected=_pitr_expected,
            passes=_pitr_ok,
            remediation="set archive_mode = on and an archive_command that succeeds (see the server log for its "
                        "errors); check pg_stat_archiver.failed_count",
            verify_hint="give golive a database login that may read pg_stat_archiver (backups[].database) and "
                        "name a postgres entry in the target's backups:",
        ),
        Check(
            id="backups.restore",
            title="The newest backup restores within the recovery time objective",
            severity=Severity.HIGH,
            refs=("AW-BAK-03", "AW-BAK-06", "ST-BAK-02"),
            measures="the newest backup of each database restored into its scratch database/folder (pg_restore "
                     "or sqlite3), timed; per-table row counts compared with the source or the manifest; the "
                     "scratch is dropped on every exit path",
            disruptive=True,
            subjects=_subjects,
            measure=_per_location(_restore),
            expected=_restore_expected,
            passes=_restore_ok,
            remediation="fix the backup so that it restores (or the restore procedure so that it meets the RTO); "
                        "restore drills belong in the release checklist",
            verify_hint=VERIFY_HINT,
        ),
    ),
)
