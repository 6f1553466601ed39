"""PostgreSQL as deployed: version, schema, migrations, the app role's privileges, encrypted
app sessions, replication and connection headroom -- read from the server with the
read-only role the target names, plus reachability from each app host's own vantage.

Every query runs in a read-only transaction (``default_transaction_read_only``) under a
statement timeout, over one psycopg connection per probe, bounded by ``connect_timeout``.
The password comes from the target (``${ENV}`` in the URI or ``password_file``), is
registered for redaction and goes to libpq as a keyword -- never into a URI golive prints,
never onto a command line, never into evidence.  A connection or query that fails gives
``Measurement.failed`` with libpq's reason, redacted.
"""
from __future__ import annotations

import dataclasses
import functools
import shlex
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from checks.connection import ProbeError, describe, redact, run, tool
from golive.model import Evidence, Measurement
from golive.redact import register_secret


@dataclasses.dataclass(frozen=True)
class PgConn:
    """Where and as whom to connect.  ``label`` (``postgresql://user@host:port/db``) is what
    reports show; the password is only ever handed to libpq."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = dataclasses.field(default=None, repr=False)
    sslmode: str = "prefer"
    timeout_s: float = 10.0

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"postgresql://{self.user}@{host}:{self.port}/{self.dbname}"

    def with_dsn(self, dsn: str) -> PgConn:
        """The same credentials and options for another server (a replica's URI)."""
        other = parse_dsn(dsn, None, sslmode=self.sslmode, timeout_s=self.timeout_s)
        return dataclasses.replace(other, password=other.password or self.password)


def parse_dsn(dsn: str, password_file: str | None, *, sslmode: str = "prefer", timeout_s: float = 10.0) -> PgConn:
    """A :class:`PgConn` from ``postgresql://user[:password]@host[:port]/db`` (password
    already expanded from ``${ENV}``) or ``password_file``.  ValueError (without the
    password) when it is not such a URI or the file cannot be read."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"'{redact(dsn)}' is not a postgresql:// URI")
    if not parts.hostname:
        raise ValueError(f"'{redact(dsn)}' names no host (postgresql://user@host:5432/db)")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ValueError(f"'{redact(dsn)}' has an invalid port") from None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if password_file:
        try:
            password = Path(password_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read password_file {password_file}: {exc.strerror}") from None
    if password:
        register_secret(password)
    user = urllib.parse.unquote(parts.username or "postgres")
    dbname = urllib.parse.unquote(parts.path.lstrip("/")) or user
    return PgConn(parts.hostname, port, dbname, user, password, sslmode, timeout_s)


class _PgFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: BaseException) -> str:
    """libpq's words, first lines only, redacted (it never prints the password, but a
    server's message might quote a setting)."""
    lines: list[str] = []
    for line in str(exc).strip().splitlines():
        line = line.strip().removeprefix("connection failed: ")
        if line and line not in lines:  # libpq repeats itself per attempt (SSL, then plain)
            lines.append(line)
    return redact(" ".join(lines[:3])) or type(exc).__name__


@contextmanager
def _connect(conn: PgConn) -> Iterator[Any]:
    import psycopg  # lazily: start-up time matters

    options = (f"-c default_transaction_read_only=on -c statement_timeout={int(conn.timeout_s * 1000)} "
               "-c lock_timeout=2000")
    try:
        c = psycopg.connect(host=conn.host, port=conn.port, dbname=conn.dbname, user=conn.user,
                            password=conn.password or None, sslmode=conn.sslmode,
                            connect_timeout=max(1, int(conn.timeout_s)), application_name="golive",
                            options=options, autocommit=True)
    except psycopg.Error as exc:
        raise _PgFailure(f"cannot connect to {conn.label}: {_reason(exc)}") from None
    try:
        yield c
    except psycopg.Error as exc:
        raise _PgFailure(f"{conn.label}: {_reason(exc)}") from None
    finally:
        c.close()


@functools.cache
def _psycopg_tool() -> str:
    import psycopg

    return f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()})"


def _measure(probe: str, conn: PgConn, method: str,
             body: Callable[[Any, dict[str, Any]], tuple[Any, str, str]]) -> Measurement:
    """Run ``body(connection, data) -> (value, display, unit)`` and wrap it with evidence;
    any failure to connect or query becomes ``Measurement.failed``."""
    started = time.monotonic()
    data: dict[str, Any] = {}

    def ev() -> Evidence:
        return Evidence(probe=probe, subject=conn.label, method=method, tool=_psycopg_tool(),
                        duration_s=round(time.monotonic() - started, 3), data=data)

    try:
        with _connect(conn) as c:
            value, display, unit = body(c, data)
    except _PgFailure as exc:
        return Measurement.failed(exc.reason, ev())
    return Measurement(value, display, ev(), unit=unit)


def _version_text(num: int) -> str:
    return f"{num // 10000}.{num % 10000}" if num >= 100000 else f"{num // 10000}.{num // 100 % 100}"


def server_version(conn: PgConn) -> Measurement:
    """The server's version (``server_version_num``), e.g. value ``"15.14"``."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str, str]:
        num = int(c.execute("SELECT current_setting('server_version_num')").fetchone()[0])
        full = c.execute("SELECT current_setting('server_version')").fetchone()[0]
        data.update(server_version_num=num, server_version=full)
        text = _version_text(num)
        return text, f"PostgreSQL {full}", ""

    return _measure("datastores.pg_version", conn, "SELECT current_setting('server_version_num')", body)


def _split_table(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return schema or "public", table


def tables(conn: PgConn, expected: list[str]) -> Measurement:
    """For each expected table (``name`` or ``schema.name``): does it exist, does it hold at
    least one row (``SELECT EXISTS (SELECT 1 FROM t)`` -- bounded, no full count).

    Value: ``{table: {"exists": bool, "rows": bool | None}}``.  A table the role may not
    read makes the measurement fail (could not verify)."""
    from psycopg import sql

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str, str]:
        found: dict[str, dict[str, Any]] = {}
        for name in expected:
            schema, table = _split_table(name)
            exists = c.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
                               (schema, table)).fetchone()[0]
            rows = None
            if exists:
                q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(sql.Identifier(schema), sql.Identifier(table))
                rows = bool(c.execute(q).fetchone()[0])
            found[name] = {"exists": bool(exists), "rows": rows}
        missing = [t for t, v in found.items() if not v["exists"]]
        empty = [t for t, v in found.items() if v["exists"] and not v["rows"]]
        data.update(missing=missing, empty=empty)
        parts = [f"{len(expected) - len(missing)} of {len(expected)} tables present"]
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if empty:
            parts.append("empty: " + ", ".join(empty))
        return found, "; ".join(parts), ""

    return _measure("datastores.pg_schema", conn,
                    "to_regclass(table) IS NOT NULL; SELECT EXISTS (SELECT 1 FROM table) per expected table", body)


def migration_heads(conn: PgConn, table: str = "alembic_version", column: str = "version_num") -> Measurement:
    """The revision(s) recorded in the migrations table (Alembic: ``alembic_version``).

    Value: sorted list of revisions; ``[]`` when the table is missing or empty (display says which)."""
    from psycopg import sql

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str, str]:
        schema, name = _split_table(table)
        exists = c.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
                           (schema, name)).fetchone()[0]
        if not exists:
            data["table"] = "missing"
            return [], f"no {table} table (migrations never ran)", ""
        q = sql.SQL("SELECT {}::text FROM {}.{}").format(sql.Identifier(column), sql.Identifier(schema),
                                                         sql.Identifier(name))
        revs = sorted(r[0] for r in c.execute(q).fetchall())
        data["table"] = table
        return revs, ", ".join(revs) if revs else f"{table} is empty", ""

    return _measure("datastores.pg_migrations", conn, f"SELECT {column} FROM {table}", body)


_ROLE_SQL = """
SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
       ARRAY(SELECT nspname::text FROM pg_namespace WHERE nspowner = r.oid ORDER BY 1),
       ARRAY(SELECT datname::text FROM pg_database WHERE datdba = r.oid ORDER BY 1),
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1)
FROM pg_roles r WHERE rolname = %s
"""
ROLE_ATTRIBUTES = ("superuser", "createrole", "createdb", "replication", "bypassrls")


def role_privileges(conn: PgConn, role: str, allowed_schemas: list[str], allowed_databases: list[str]) -> Measurement:
    """The app role's powers: attributes (``pg_roles``), schemas it owns in the app
    database, databases it owns, roles it is a member of.

    Value: ``{"role", "attributes": [the ones it has of superuser, createrole, createdb,
    replication, bypassrls], "schemas", "databases", "member_of", "allowed_schemas",
    "allowed_databases"}`` (the last two from the target, so the judgement can name the excess)."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str, str]:
        row = c.execute(_ROLE_SQL, (role,)).fetchone()
        if row is None:
            raise _PgFailure(f"role {role} does not exist on {conn.label}")
        attrs = [name for name, on in zip(ROLE_ATTRIBUTES, row[:5], strict=True) if on]
        value = {"role": role, "attributes": attrs, "schemas": list(row[5]), "databases": list(row[6]),
                 "member_of": list(row[7]), "allowed_schemas": list(allowed_schemas),
                 "allowed_databases": list(allowed_databases)}
        data.update(value)
        extra_s = [s for s in value["schemas"] if s not in allowed_schemas]
        extra_d = [d for d in value["databases"] if d not in allowed_databases]
        parts = [f"{role}: " + (", ".join(a.upper() for a in attrs) if attrs else "no elevated attributes")]
        parts.append("owns schemas " + ", ".join(value["schemas"]) if value["schemas"] else "owns no schema")
        if extra_s or extra_d:
            parts.append("beyond its own: " + ", ".join([f"schema {s}" for s in extra_s] + [f"database {d}" for d in extra_d]))
        return value, "; ".join(parts), ""

    return _measure("datastores.pg_app_role", conn, "SELECT rol* FROM pg_roles; owners in pg_namespace, pg_database",
                    body)


# Without pg_read_all_stats, another role's rows show NULL for everything but pid, role and
# database (backend_type included): such rows are kept and reported as not visible.
_SSL_SQL = """
SELECT a.pid, coalesce(host(a.client_addr), 'local'), a.application_name, s.ssl, s.version,
       a.backend_type IS NULL
FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s USING (pid)
WHERE a.usename = %s AND (a.backend_type = 'client backend' OR a.backend_type IS NULL)
  AND a.pid <> pg_backend_pid()
ORDER BY a.pid
"""


def app_session_ssl(conn: PgConn, role: str) -> Measurement:
    """Whether the app role's current sessions are encrypted (``pg_stat_ssl.ssl`` joined
    with ``pg_stat_activity``; golive's own session left out).

    Value: ``{"sessions": n, "encrypted": n, "plaintext": ["addr app-name", ...], "local": n}``
    (``local`` = Unix-socket sessions: they cross no network and cannot use TLS).  Fails to
    measure when the role has no session, or golive's role may not see their TLS state
    (it needs ``pg_read_all_stats``, e.g. via ``pg_monitor``)."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str, str]:
        rows = c.execute(_SSL_SQL, (role,)).fetchall()
        if not rows:
            raise _PgFailure(f"no session of role {role} is connected to {conn.label} now: nothing to judge "
                             "(run the check while the application is up)")
        if any(r[5] or (r[3] is None and r[1] != "local") for r in rows):
            raise _PgFailure(f"cannot see the TLS state of {role}'s sessions: grant {conn.user} pg_monitor "
                             "(or pg_read_all_stats)")
        tcp = [r for r in rows if r[1] != "local"]
        plain = [f"{r[1]} {r[2]}".strip() for r in tcp if not r[3]]
        versions = sorted({str(r[4]) for r in tcp if r[3]})
        value = {"sessions": len(rows), "encrypted": len(tcp) - len(plain), "plaintext": plain,
                 "local": len(rows) - len(tcp), "tls_versions": versions}
        data.update(value)
        display = f"{value['encrypted']} of {len(tcp)} TCP sessions of {role} encrypted"
        if versions:
            display += f" ({', '.join(versions)})"
        if plain:
            display += "; plaintext from " + ", ".join(plain)
        if value["local"]:
            display += f"; {value['local']} over the Unix socket"
        return value, display, ""

    return _measure("datastores.pg_ssl", conn, "SELECT ... FROM pg_stat_activity JOIN pg_stat_ssl WHERE usename = role",
                    body)


_REPL_SQL = """
SELECT pg_is_in_recovery(), count(r.pid), count(r.pid) FILTER (WHERE r.state = 'streaming'),
       count(r.pid) FILTER (WHERE r.state IS NULL),
       coalesce(array_agg(coalesce(r.application_name, '') || ' ' || coalesce(host(r.client_addr), 'local')
                          || ' ' || coalesce(r.state, '?')) FILTER (WHERE r.pid IS NOT NULL), '{}')
FROM (SELECT 1) one LEFT JOIN pg_stat_replication r ON true
"""


def replication(conn: PgConn, replicas: list[PgConn]) -> Measurement:
    """The primary's streaming standbys (``pg_stat_replication``, state ``streaming``) and,
    for each replica the target declares, ``pg_is_in_recovery()`` on that replica.

    Value: ``{"primary_in_recovery": bool, "streaming": n, "senders": ["name addr state"],
    "replicas": {label: in_recovery}}``.  Fails to measure when golive's role may not see
    the senders' state, or a declared replica cannot be reached."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str, str]:
        row = c.execute(_REPL_SQL).fetchone()
        if row[3]:
            raise _PgFailure(f"cannot see pg_stat_replication's state: grant {conn.user} pg_monitor "
                             "(or pg_read_all_stats)")
        value: dict[str, Any] = {"primary_in_recovery": bool(row[0]), "streaming": int(row[2]),
                                 "senders": list(row[4]), "replicas": {}}
        for rep in replicas:
            with _connect(rep) as rc:
                value["replicas"][rep.label] = bool(rc.execute("SELECT pg_is_in_recovery()").fetchone()[0])
        data.update(value)
        parts = [f"{value['streaming']} streaming replica(s)"]
        if value["primary_in_recovery"]:
            parts.append("the 'primary' is itself in recovery")
        for label, rec in value["replicas"].items():
            parts.append(f"{label} {'in recovery' if rec else 'NOT in recovery (not a standby)'}")
        return value, "; ".join(parts), "replicas"

    return _measure("datastores.pg_replication", conn,
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'; "
                    "SELECT pg_is_in_recovery() on each replica", body)


def connections(conn: PgConn) -> Measurement:
    """Client connections in use (``pg_stat_activity``, client backends, golive's own
    included) against ``max_connections`` and ``superuser_reserved_connections``.

    Value: ``{"used": n, "max": n, "reserved": n}``."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str, str]:
        used, hidden, mx, reserved = c.execute(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), count(*) FILTER (WHERE backend_type IS NULL), "
            "current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int "
            "FROM pg_stat_activity").fetchone()
        if hidden:  # other roles' sessions without their type: the count would be short
            raise _PgFailure(f"cannot see {hidden} session(s) of other roles on {conn.label}: grant {conn.user} "
                             "pg_monitor (or pg_read_all_stats) to count connections")
        value = {"used": int(used), "max": int(mx), "reserved": int(reserved)}
        data.update(value)
        return value, f"{used} of max_connections {mx} in use ({reserved} reserved for superusers)", "connections"

    return _measure("datastores.pg_connections", conn,
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'; "
                    "SHOW max_connections, superuser_reserved_connections", body)


# ----------------------------------------------------------------------------- from an app host's vantage

_REACH_SCRIPT = """
if command -v pg_isready >/dev/null 2>&1; then
  out=$(pg_isready -h {h} -p {p} -t {t} 2>&1); rc=$?; echo "pg_isready rc=$rc $out"
elif command -v python3 >/dev/null 2>&1; then
  python3 -c 'import socket,sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close(); print("tcp rc=0 connected")
except OSError as e:
    print("tcp rc=2", e)' {h} {p} {t}
elif command -v bash >/dev/null 2>&1; then
  if timeout {t} bash -c 'exec 3<>/dev/tcp/$0/$1' {h} {p} 2>/dev/null; then echo "tcp rc=0 connected"; else echo "tcp rc=2 no connection"; fi
else
  echo "none rc=9 no pg_isready, python3 or bash on this host"
fi
"""


def reachable_from(host: Any, address: str, port: int, timeout_s: float = 5.0,
                   subject: str | None = None) -> Measurement:
    """Can this host reach PostgreSQL at ``address:port``?  Runs on the host (over its
    testinfra connection): ``pg_isready -h ADDRESS -p PORT`` where installed (it speaks
    the protocol: "accepting connections"), else a TCP connect (python3, or bash's
    /dev/tcp).  Value: ``True`` when the server accepts connections from there.  The host
    not answering is ``Measurement.failed``; the database not answering is ``False``."""
    started = time.monotonic()
    script = _REACH_SCRIPT.format(h=shlex.quote(address), p=int(port), t=max(1, int(timeout_s)))
    method = f"on the host: pg_isready -h {address} -p {port} (else a TCP connect)"
    where = subject or describe(host)
    subject = f"{where} -> {address}:{port}"
    data: dict[str, Any] = {}

    def ev(raw: str = "") -> Evidence:
        return Evidence(probe="datastores.pg_reachable", subject=subject, method=method, tool=tool(host),
                        raw=redact(raw[-400:]), duration_s=round(time.monotonic() - started, 3), data=data)

    try:
        res = run(host, script, timeout_s=timeout_s + 5)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev())
    line = (res.stdout.strip().splitlines() or [""])[-1]
    how, _, rest = line.partition(" rc=")
    code_text, _, answer = rest.partition(" ")
    if not code_text.isdigit() or code_text == "9":
        return Measurement.failed(f"could not test from the host: {line or res.stderr.strip()[-200:] or 'no output'}",
                                  ev(res.stdout + res.stderr))
    code = int(code_text)
    data.update(tool=how, exit_status=code, answer=answer)
    ok = code == 0
    # pg_isready: 0 accepting, 1 rejecting (starting up, too many clients), 2 no response, 3 bad options
    words = {0: "accepting connections", 1: "rejecting connections", 2: "no response"}.get(code, answer)
    display = f"{'reachable' if ok else 'NOT reachable'} from {where}: {words} ({how})"
    return Measurement(ok, display, ev(line))
