"""Data stores as deployed, for golive's datastores family (``features/datastores.feature``):
a PostgreSQL 15 primary with a real streaming replica, application sessions, and SQLite files.

:func:`start_pg_pair` builds, with the cluster tools :mod:`lab.postgres` uses:

- a primary ``golive-lab-<pid>-<hex>`` (``pg_createcluster`` on a free loopback port, data in
  a private ``/tmp/golive-pg-*`` folder owned by ``postgres``), with ``ssl = on`` (a
  self-signed certificate made with openssl), ``wal_level = replica`` and
  ``max_connections = 20``;
- a replica: a second cluster (also ``golive-lab-<pid>-<hex>``) whose data directory is ``pg_basebackup -R -X stream`` of the
  primary, started as a hot standby that streams from it (``pg_stat_replication`` shows it);
- the application database ``golive_app`` (tables ``tenants``, ``media``, ``analyses`` with
  rows; ``alembic_version`` at :data:`HEAD_REVISION`) owned by the app role ``golive_app``
  (LOGIN only: no SUPERUSER, CREATEROLE or CREATEDB);
- the read-only role golive uses, ``golive_ro`` (``pg_monitor`` + ``pg_read_all_data``);
- the broken twins, side by side so no test has to change and restore anything: the role
  ``golive_app_super`` (SUPERUSER), the role ``golive_app_wide`` (CREATEROLE CREATEDB, owns
  the schema ``reporting``), the database ``golive_app_old`` (the table ``analyses``
  missing, ``media`` empty, ``alembic_version`` at :data:`OLD_REVISION`), the role
  ``golive_nobody`` (may log in, may read nothing: permission denied);
- application sessions (:meth:`RunningPgPair.add_app_session`): a ``psql`` holding one
  connection as ``golive_app`` with ``sslmode=require`` (compliant) or ``sslmode=disable``
  (the plaintext variant).

Every password is random, written to ``<dir>/secrets/<role>`` (0600) and handed to clients
through the environment (``PGPASSWORD``) or golive's ``password_file`` -- never on a command
line.  :meth:`RunningPgPair.stop` (idempotent; also at exit and on SIGINT/SIGTERM) stops the
sessions, ``pg_dropcluster --stop``s both clusters and removes every folder it made; what a
SIGKILLed run leaves is removed by the next start (:func:`lab.postgres.reap_stale_clusters`).

:func:`make_sqlite` writes an SQLite database file with an owner and mode (the
world-readable variant is mode 0644).  Needs root (runuser, chown).
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.postgres import (
    CLUSTER_PREFIX,
    PG_VERSION,
    SOCKET_DIR,
    _clean_env,
    _drop_cluster,
    _run,
    reap_stale_clusters,
)
from lab.procs import LabError, ManagedProcess, StopsOnExit, free_port, register, spawn, stop_processes, unregister

DB_NAME = "golive_app"
OLD_DB = "golive_app_old"
APP_ROLE = "golive_app"
RO_ROLE = "golive_ro"
SUPER_ROLE = "golive_app_super"
WIDE_ROLE = "golive_app_wide"
NOBODY_ROLE = "golive_nobody"
ROLES = (APP_ROLE, RO_ROLE, SUPER_ROLE, WIDE_ROLE, NOBODY_ROLE)
TABLES = ("tenants", "media", "analyses")
HEAD_REVISION = "3f2a9c1d7b55"
OLD_REVISION = "1b7e04c2aa10"
MAX_CONNECTIONS = 20
PORT_ATTEMPTS = 3

_APP_SQL = f"""
CREATE TABLE tenants (id integer PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE media (id integer PRIMARY KEY, tenant_id integer NOT NULL REFERENCES tenants(id), name text NOT NULL);
CREATE TABLE analyses (id bigserial PRIMARY KEY, media_id integer NOT NULL REFERENCES media(id), kind text NOT NULL);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO tenants VALUES (1, 'acme'), (2, 'globex');
INSERT INTO media SELECT i, 1 + i % 2, format('shot-%s.png', i) FROM generate_series(1, 10) i;
INSERT INTO analyses (media_id, kind) SELECT 1 + i % 10, 'quality' FROM generate_series(0, 99) i;
INSERT INTO alembic_version VALUES ('{HEAD_REVISION}');
"""
# The same application one release earlier: no analyses table yet, no media rows, old revision.
_OLD_SQL = f"""
CREATE TABLE tenants (id integer PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE media (id integer PRIMARY KEY, tenant_id integer NOT NULL REFERENCES tenants(id), name text NOT NULL);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO tenants VALUES (1, 'acme');
INSERT INTO alembic_version VALUES ('{OLD_REVISION}');
"""


class RunningPgPair(StopsOnExit):
    """A primary with a streaming replica (see the module doc)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.primary = f"{CLUSTER_PREFIX}{tag}"
        # a name lab.postgres.reap_stale_clusters recognises (golive-lab-<pid>-<hex>), should this run be SIGKILLed
        self.replica = f"{CLUSTER_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.port = 0
        self.replica_port = 0
        self.base: Path | None = None
        self.secrets_dir = workdir / "secrets"
        self.created: list[str] = []
        self.sessions: list[ManagedProcess] = []
        self._stopped = False

    # ---------------------------------------------------------------- public API

    def password_file(self, role: str) -> Path:
        return self.secrets_dir / role

    def password(self, role: str) -> str:
        return self.password_file(role).read_text().strip()

    def dsn(self, role: str = RO_ROLE, db: str = DB_NAME, *, replica: bool = False) -> str:
        """A connection URI without a password (golive reads it from ``password_file``)."""
        return f"postgresql://{role}@127.0.0.1:{self.replica_port if replica else self.port}/{db}"

    def psql_admin(self, sql: str, *, db: str = "postgres", replica: bool = False, timeout: float = 30) -> str:
        """SQL as the ``postgres`` superuser over the Unix socket (peer auth)."""
        port = self.replica_port if replica else self.port
        return _run(["runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-h", SOCKET_DIR, "-p", str(port),
                     "-v", "ON_ERROR_STOP=1", "-d", db, "-f", "-"], "psql (postgres)", stdin=sql, timeout=timeout)

    def streaming_replicas(self) -> int:
        return int(self.psql_admin("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming';").strip())

    def wait_replicas(self, count: int, timeout_s: float = 30) -> None:
        """Wait until the primary shows exactly ``count`` streaming replicas."""
        deadline = time.monotonic() + timeout_s
        while self.streaming_replicas() != count:
            if time.monotonic() > deadline:
                raise LabError(f"pg_stat_replication: not {count} streaming replica(s) after {timeout_s:g} s\n"
                               f"{self.log_tail('replica')}")
            time.sleep(0.1)

    def stop_replica(self) -> None:
        """Stop the standby (the "no replica" variant); :meth:`start_replica` brings it back."""
        _run(["pg_ctlcluster", PG_VERSION, self.replica, "stop", "-m", "fast"], "stopping the replica", timeout=60)
        self.wait_replicas(0)

    def start_replica(self) -> None:
        _run(["pg_ctlcluster", PG_VERSION, self.replica, "start"], "starting the replica", timeout=60)
        self.wait_replicas(1)

    def add_app_session(self, *, ssl: bool = True, db: str = DB_NAME, role: str = APP_ROLE) -> ManagedProcess:
        """A client holding one connection as ``role`` (``sslmode=require`` or ``disable``),
        as an application server would; stopped by :meth:`stop_session` or :meth:`stop`."""
        n = len(self.sessions)
        conninfo = (f"host=127.0.0.1 port={self.port} dbname={db} user={role} "
                    f"sslmode={'require' if ssl else 'disable'} application_name=lab-app-{n}")
        env = _clean_env(PGPASSWORD=self.password(role), PGCONNECT_TIMEOUT="5")
        proc = spawn(f"lab-app-session-{n}", ["psql", "-X", "-q", "-d", conninfo, "-c", "SELECT pg_sleep(86400);"],
                     self.dir / f"app-session-{n}.log", cwd=self.dir, env=env)
        self.sessions.append(proc)
        deadline = time.monotonic() + 20
        sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lab-app-{n}';"
        while self.psql_admin(sql).strip() != "1":
            if not proc.alive() or time.monotonic() > deadline:
                raise LabError(f"app session {n} did not connect: {proc.describe_exit()}\n{proc.tail()}")
            time.sleep(0.05)
        return proc

    def stop_session(self, proc: ManagedProcess) -> None:
        stop_processes([proc])
        self.sessions.remove(proc)
        # the server notices a vanished client only when pg_sleep ends: end the backend too
        name = f"lab-app-{proc.name.rsplit('-', 1)[1]}"
        self.psql_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}';")
        deadline = time.monotonic() + 10
        sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}';"
        while self.psql_admin(sql).strip() != "0" and time.monotonic() < deadline:
            time.sleep(0.05)

    def log_tail(self, which: str = "primary", lines: int = 20) -> str:
        path = self.base / f"{which}.log" if self.base else None
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path else ""
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the sessions, drop both clusters, remove the folders."""
        if self._stopped:
            return
        self._stopped = True
        stop_processes(list(self.sessions))
        self.sessions.clear()
        for name in reversed(self.created):
            _drop_cluster(name)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.secrets_dir, ignore_errors=True)
        unregister(self)

    def __repr__(self) -> str:
        return f"<RunningPgPair {self.primary} port={self.port} replica={self.replica_port} stopped={self._stopped}>"

    # ---------------------------------------------------------------- internals

    def _conf(self, name: str) -> None:
        assert self.base is not None
        conf = Path(f"/etc/postgresql/{PG_VERSION}/{name}/conf.d/golive-lab.conf")
        conf.write_text(
            "listen_addresses = '127.0.0.1'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
            f"ssl = on\nssl_cert_file = '{self.base / 'server.crt'}'\nssl_key_file = '{self.base / 'server.key'}'\n"
            f"max_connections = {MAX_CONNECTIONS}\nshared_buffers = 16MB\n")

    def _create(self, name: str, data: Path, log: Path) -> int:
        """``pg_createcluster`` on a free port (retried when the port was taken meanwhile)."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = free_port("127.0.0.1", exclude=(self.port,))
            _run(["pg_createcluster", "-p", str(port), "-d", str(data), "-l", str(log), PG_VERSION, name, "--",
                  "--no-sync", "--auth-local=peer", "--auth-host=scram-sha-256"],
                 f"pg_createcluster {name}", timeout=120)
            self.created.append(name)
            self._conf(name)
            if name == self.replica:
                return port  # started after its data directory was replaced
            try:
                _run(["pg_ctlcluster", PG_VERSION, name, "start"], f"starting cluster {name}", timeout=60)
                return port
            except LabError as exc:
                collided = "already in use" in self.log_tail("primary", 40) or "already in use" in str(exc)
                _drop_cluster(name)
                self.created.remove(name)
                if not collided or attempt == PORT_ATTEMPTS:
                    raise LabError(f"{exc}\n{self.log_tail('primary')}") from exc
        raise LabError("unreachable")  # pragma: no cover

    def _certificate(self, pg: pwd.struct_passwd) -> None:
        assert self.base is not None
        crt, key = self.base / "server.crt", self.base / "server.key"
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
              "-keyout", str(key), "-out", str(crt)], "openssl req (server certificate)")
        for path in (crt, key):
            os.chown(path, pg.pw_uid, pg.pw_gid)
        key.chmod(0o600)

    def _write_secrets(self) -> None:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        for role in ROLES:
            fd = os.open(self.password_file(role), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24) + "\n")

    def _seed(self) -> None:
        pw = {role: self.password(role) for role in ROLES}
        self.psql_admin(
            f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{pw[APP_ROLE]}';\n"
            f"CREATE ROLE {RO_ROLE} LOGIN PASSWORD '{pw[RO_ROLE]}' IN ROLE pg_monitor, pg_read_all_data;\n"
            f"CREATE ROLE {SUPER_ROLE} LOGIN SUPERUSER PASSWORD '{pw[SUPER_ROLE]}';\n"
            f"CREATE ROLE {WIDE_ROLE} LOGIN CREATEROLE CREATEDB PASSWORD '{pw[WIDE_ROLE]}';\n"
            f"CREATE ROLE {NOBODY_ROLE} LOGIN PASSWORD '{pw[NOBODY_ROLE]}';\n"
            f"CREATE DATABASE {DB_NAME} OWNER {APP_ROLE};\n"
            f"CREATE DATABASE {OLD_DB} OWNER {APP_ROLE};\n")
        # the app's own objects, created as the app role (as its migrations would)
        self.psql_admin(f"SET ROLE {APP_ROLE};\n{_APP_SQL}", db=DB_NAME)
        self.psql_admin(f"SET ROLE {APP_ROLE};\n{_OLD_SQL}", db=OLD_DB)
        self.psql_admin(f"CREATE SCHEMA reporting AUTHORIZATION {WIDE_ROLE};\n"
                        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {NOBODY_ROLE};\n", db=DB_NAME)

    def _replica_from_basebackup(self) -> None:
        assert self.base is not None
        data = self.base / "replica"
        shutil.rmtree(data)
        _run(["runuser", "-u", "postgres", "--", "pg_basebackup", "-h", SOCKET_DIR, "-p", str(self.port),
              "-D", str(data), "-R", "-X", "stream", "--no-sync", "-c", "fast"], "pg_basebackup of the primary",
             timeout=120)
        _run(["pg_ctlcluster", PG_VERSION, self.replica, "start"], f"starting replica {self.replica}", timeout=60)

    def _start(self, *, replica: bool = True, app_ssl: bool = True, setup_sql: str = "") -> None:
        from lab.postgres import require_postgres

        pg = require_postgres("pg_basebackup")
        reap_stale_clusters()
        self.dir.mkdir(parents=True, exist_ok=True)
        register(self)
        self.base = Path(tempfile.mkdtemp(prefix=f"golive-pg-{os.getpid()}-", dir="/tmp"))
        os.chown(self.base, pg.pw_uid, pg.pw_gid)
        self.base.chmod(0o700)
        self._write_secrets()
        self._certificate(pg)
        self.port = self._create(self.primary, self.base / "primary", self.base / "primary.log")
        self._seed()
        if setup_sql:
            self.psql_admin(setup_sql, db=DB_NAME)
        if replica:
            self.replica_port = self._create(self.replica, self.base / "replica", self.base / "replica.log")
            self._replica_from_basebackup()
            self.wait_replicas(1)
        self.add_app_session(ssl=app_ssl)


def start_pg_pair(workdir: Path, *, replica: bool = True, app_ssl: bool = True, setup_sql: str = "") -> RunningPgPair:
    """Start the primary, its replica (unless ``replica=False``) and one app session (TLS
    unless ``app_ssl=False``); ``setup_sql`` runs as the superuser in the app database after
    seeding (the lab variants' one change).  On any failure everything already made is
    removed and :class:`LabError` says what failed."""
    pair = RunningPgPair(Path(workdir).resolve())
    try:
        pair._start(replica=replica, app_ssl=app_ssl, setup_sql=setup_sql)
    except BaseException:
        pair.stop()
        raise
    return pair


def make_sqlite(path: Path, *, owner: str, mode: int = 0o640, tables: tuple[str, ...] = TABLES,
                corrupt: bool = False) -> Path:
    """An SQLite database at ``path`` with ``tables`` (a few rows each), chowned to
    ``owner`` (user and its primary group) with ``mode``; the folder is made if missing and
    given to ``owner`` too (SQLite writes its journal beside the file).  ``corrupt``
    overwrites a page in the middle of the file, as a torn write would."""
    user = pwd.getpwnam(owner)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        for t in tables:
            conn.execute(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            conn.executemany(f"INSERT INTO {t} (body) VALUES (?)", [(f"{t}-{i}-" + "x" * 200,) for i in range(200)])
    conn.close()
    if corrupt:
        with open(path, "r+b") as fh:
            fh.seek(4096 * 2)
            fh.write(b"\xde\xad\xbe\xef" * 1024)
    os.chown(path.parent, user.pw_uid, user.pw_gid)
    path.parent.chmod(0o750)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


# ----------------------------------------------------------------------------- the embedded lab's data stores

#: The embedded lab's datastores modes (lab.variants: ``datastores`` and ``ds_*``); each
#: broken one changes exactly one thing of the compliant set.
MODE_CHANGES: dict[str, str] = {
    "compliant": "",
    "superuser_role": "the app role is SUPERUSER",
    "missing_table": "the table analyses was dropped",
    "migrations_behind": f"alembic_version is at {OLD_REVISION}, one revision behind",
    "no_replica": "no streaming replica",
    "plaintext_app": "the app connects with sslmode=disable",
    "redis_noauth": "Redis without requirepass",
    "redis_wildcard": "Redis bound to 0.0.0.0",
    "sqlite_world_readable": "the SQLite file is mode 0644",
}
_MODE_SQL = {
    "superuser_role": f"ALTER ROLE {APP_ROLE} SUPERUSER;",
    "missing_table": "DROP TABLE analyses;",
    "migrations_behind": f"UPDATE alembic_version SET version_num = '{OLD_REVISION}';",
}
SQLITE_USER = "nobody"


class RunningDatastores(StopsOnExit):
    """The data stores of the embedded lab: the PostgreSQL pair, a Redis Cluster node with
    every slot (password, bind 127.0.0.1, AOF + RDB) and an SQLite file owned by
    :data:`SQLITE_USER`; :meth:`target_section` is the target's ``datastores:``."""

    def __init__(self, workdir: Path, mode: str) -> None:
        if mode not in MODE_CHANGES:
            raise ValueError(f"unknown datastores mode {mode!r}; modes: {', '.join(MODE_CHANGES)}")
        self.dir = workdir
        self.mode = mode
        self.pg: RunningPgPair | None = None
        self.redis: Any = None
        self.sqlite_dir: Path | None = None
        self._stopped = False

    @property
    def sqlite_path(self) -> Path:
        assert self.sqlite_dir is not None
        return self.sqlite_dir / "app" / "app.db"

    def target_section(self) -> dict[str, Any]:
        assert self.pg is not None and self.redis is not None
        pg = self.pg
        return {
            "postgres": {"dsn": pg.dsn(RO_ROLE), "password_file": str(pg.password_file(RO_ROLE)),
                         "app_role": APP_ROLE, "app_databases": [DB_NAME, OLD_DB], "tables": list(TABLES),
                         "migrations": {"revision": HEAD_REVISION},
                         "replicas": [pg.dsn(RO_ROLE, replica=True)] if pg.replica_port else []},
            "redis": {"address": self.redis.address, "listen": ["127.0.0.1"],
                      **({"password_file": str(self.redis.password_file)} if self.redis.auth else {})},
            "sqlite": {"path": str(self.sqlite_path), "user": SQLITE_USER},
        }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for part in (self.redis, self.pg):
            if part is not None:
                part.stop()
        if self.sqlite_dir is not None:
            shutil.rmtree(self.sqlite_dir, ignore_errors=True)
        unregister(self)

    def _start(self) -> None:
        from lab.redis import ALL_SLOTS, start_redis

        register(self)
        self.pg = start_pg_pair(self.dir / "pg", replica=self.mode != "no_replica",
                                app_ssl=self.mode != "plaintext_app", setup_sql=_MODE_SQL.get(self.mode, ""))
        self.redis = start_redis(auth=self.mode != "redis_noauth",
                                 bind="0.0.0.0" if self.mode == "redis_wildcard" else "127.0.0.1",
                                 cluster_slots=ALL_SLOTS)
        # the service user must reach the file: a folder of its own under a traversable /tmp folder
        self.sqlite_dir = Path(tempfile.mkdtemp(prefix=f"golive-ds-{os.getpid()}-", dir="/tmp"))
        self.sqlite_dir.chmod(0o711)
        make_sqlite(self.sqlite_path, owner=SQLITE_USER,
                    mode=0o644 if self.mode == "sqlite_world_readable" else 0o640)


def start_datastores(workdir: Path, mode: str = "compliant") -> RunningDatastores:
    """Start the embedded lab's data stores in ``mode`` (:data:`MODE_CHANGES`); everything
    already started is stopped when a part fails."""
    ds = RunningDatastores(Path(workdir).resolve(), mode)
    try:
        ds._start()
    except BaseException:
        ds.stop()
        raise
    return ds
