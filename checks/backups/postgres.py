"""PostgreSQL from the checking host: connection details, ``psql`` queries, the WAL
archiver (point-in-time recovery) and per-table row counts.

The password comes from the target (``${ENV}`` in the URI, or ``password_file``), is
registered for redaction, and reaches ``psql``/``pg_restore`` only through ``PGPASSWORD`` in
the child's environment -- never on a command line, never in evidence.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checks.backups.content import ToolError, last_line, run_local
from checks.backups.location import Location, sh
from checks.connection import ProbeError, redact
from golive.model import Evidence, Measurement
from golive.redact import register_secret

if TYPE_CHECKING:
    from checks.backups.spec import BackupSpec

_CLEARED = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE", "PGOPTIONS")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
COUNT_SQL = """
SELECT n.nspname || '.' || c.relname,
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
                                             false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1;
"""
ARCHIVER_SQL = """
SELECT current_setting('archive_mode'), current_setting('wal_level'), archived_count,
       coalesce(last_archived_wal, ''), coalesce(extract(epoch FROM now() - last_archived_time)::text, ''),
       failed_count, coalesce(last_failed_wal, ''), coalesce(extract(epoch FROM now() - last_failed_time)::text, ''),
       coalesce((last_failed_time > coalesce(last_archived_time, '-infinity'))::text, 'false'),
       pg_is_in_recovery()::text
FROM pg_stat_archiver;
"""


@dataclasses.dataclass(frozen=True)
class PgConn:
    """A database to connect to: ``uri`` has no password; ``label`` is for reports."""

    uri: str
    password: str | None
    dbname: str
    label: str
    timeout_s: float = 30.0

    def for_db(self, dbname: str) -> PgConn:
        parts = urllib.parse.urlsplit(self.uri)
        uri = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + urllib.parse.quote(dbname),
                                       parts.query, ""))
        return dataclasses.replace(self, uri=uri, dbname=dbname, label=self.label.rsplit("/", 1)[0] + "/" + dbname)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update(PGCONNECT_TIMEOUT=str(int(min(self.timeout_s, 30))), PGAPPNAME="golive")
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def _encode_password(uri: str) -> str:
    """``uri`` with the password percent-encoded.  libpq reads ``user:pa/ss@host`` as a
    password holding '/', urllib as a host ``user`` with the port ``pa`` -- whose parse
    error would then quote a piece of the password.  The userinfo ends at the last '@'."""
    scheme, sep, rest = uri.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return uri
    user, _, password = userinfo.partition(":")
    return f"{scheme}://{user}:{urllib.parse.quote(urllib.parse.unquote(password), safe='')}@{hostpart}"


def connection(spec: BackupSpec) -> PgConn:
    """The database of a postgres backup entry; ValueError when it is missing or not a
    ``postgresql://`` URI, or the password file cannot be read."""
    if not spec.database:
        raise ValueError("the backup entry names no database (backups[].database: postgresql://user@host:port/db)")
    parts = urllib.parse.urlsplit(_encode_password(spec.database))
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"database '{redact(spec.database)}' is not a postgresql:// URI")
    try:
        parts.port  # noqa: B018 - urllib validates the port lazily; its message may quote the netloc
    except ValueError:
        raise ValueError(f"database '{redact(spec.database)}' has no valid host:port") from None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if spec.password_file:
        try:
            password = Path(spec.password_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read password_file {spec.password_file}: {exc.strerror}") from None
    if password:
        register_secret(password)
    host = parts.hostname or ""
    netloc = (urllib.parse.quote(urllib.parse.unquote(parts.username)) + "@" if parts.username else "") + \
        (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    uri = urllib.parse.urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))
    dbname = urllib.parse.unquote(parts.path.lstrip("/")) or (parts.username or "postgres")
    return PgConn(uri, password, dbname, redact(uri), spec.timeout_s)


def psql(conn: PgConn, sql: str, *, timeout_s: float | None = None) -> list[list[str]]:
    """Rows of ``sql`` (tab-separated fields); ProbeError with psql's message on failure."""
    argv = ["psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", conn.uri, "-c", sql]
    try:
        rc, out, err = run_local(argv, timeout_s=timeout_s or conn.timeout_s, env=conn.env())
    except ToolError as exc:
        raise ProbeError(str(exc)) from None
    if rc != 0:
        raise ProbeError(f"psql ({conn.label}): {last_line(err) or f'exit {rc}'}")
    return [line.split("\t") for line in out.splitlines() if line]


def quote_name(name: str) -> str:
    """A database name golive creates or drops: plain identifiers only (no quoting games)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a plain database name ([A-Za-z_][A-Za-z0-9_]*, at most 63)")
    return f'"{name}"'


def database_exists(conn: PgConn, name: str) -> bool:
    quote_name(name)
    return bool(psql(conn, f"SELECT 1 FROM pg_database WHERE datname = '{name}';"))


def row_counts(conn: PgConn, *, timeout_s: float | None = None) -> dict[str, int]:
    """Exact ``count(*)`` of every user table (``schema.table``), in one query."""
    return {r[0]: int(r[1]) for r in psql(conn, COUNT_SQL, timeout_s=timeout_s) if len(r) == 2 and r[1].isdigit()}


def _age(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def archiver(conn: PgConn, wal_archive: Location | None = None) -> Measurement:
    """The WAL archiver's state (``pg_stat_archiver``, ``archive_mode``) and, when the
    target names the archive location, whether the last archived segment is there.

    Value: ``archive_mode``, ``archived_count``, ``last_archived_wal``,
    ``last_archived_age_s``, ``failed_count``, ``last_failed_wal``, ``last_failed_age_s``,
    ``failing`` (the last attempt failed: ``last_failed_time`` after ``last_archived_time``),
    ``in_archive`` (True/False, None when not checked)."""
    started = time.monotonic()
    method = f"psql {conn.label}: SELECT archive_mode, pg_stat_archiver.*"
    data: dict[str, Any] = {}

    def ev() -> Evidence:
        return Evidence(probe="backups.pitr", subject=conn.label, method=method, tool=_psql_version(),
                        duration_s=round(time.monotonic() - started, 3), data=data)

    try:
        rows = psql(conn, ARCHIVER_SQL)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev())
    if not rows or len(rows[0]) < 10:
        return Measurement.failed("pg_stat_archiver returned nothing", ev())
    r = rows[0]
    data.update(archive_mode=r[0], wal_level=r[1], archived_count=int(r[2]), last_archived_wal=r[3] or None,
                last_archived_age_s=_age(r[4]), failed_count=int(r[5]), last_failed_wal=r[6] or None,
                last_failed_age_s=_age(r[7]), in_recovery=r[9] == "true", in_archive=None)
    data["failing"] = data["failed_count"] > 0 and (r[8] == "true" or data["archived_count"] == 0)
    if wal_archive is not None and data["last_archived_wal"]:
        method += f"; find {wal_archive.label} -name '<last_archived_wal>*'"
        try:
            found = sh(wal_archive, f"find {shlex.quote(wal_archive.path)} -maxdepth 1 -name "
                                    f"{shlex.quote(data['last_archived_wal'] + '*')} -print -quit").strip()
        except ProbeError as exc:
            return Measurement.failed(f"WAL archive {wal_archive.label}: {exc.reason}", ev())
        data["in_archive"] = bool(found)
    return Measurement(data, _describe_archiver(data, wal_archive), ev())


def _describe_archiver(d: dict[str, Any], wal_archive: Location | None) -> str:
    from checks.backups.inventory import fmt_age

    parts = [f"archive_mode={d['archive_mode']}"]
    if d["last_archived_wal"]:
        parts.append(f"last archived {d['last_archived_wal']} {fmt_age(d['last_archived_age_s'] or 0)} ago")
    else:
        parts.append("nothing archived yet")
    if d["failed_count"]:
        when = f", last {fmt_age(d['last_failed_age_s'] or 0)} ago" if d["last_failed_age_s"] is not None else ""
        parts.append(f"failed_count={d['failed_count']}{when}" + (" (failing now)" if d["failing"] else ""))
    else:
        parts.append("failed_count=0")
    if d["in_archive"] is not None and wal_archive is not None:
        parts.append(("segment present in " if d["in_archive"] else "segment MISSING from ") + wal_archive.label)
    return ", ".join(parts)


_version_cache: list[str] = []


def _psql_version() -> str:
    if not _version_cache:
        try:
            rc, out, _ = run_local(["psql", "--version"], timeout_s=10)
            _version_cache.append(out.strip() if rc == 0 else "psql")
        except ToolError:
            _version_cache.append("psql (not found)")
    return _version_cache[0]
