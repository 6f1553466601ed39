"""A real PostgreSQL 15 cluster with a backup job, WAL archiving and an off-site copy, for
golive's backups family (``features/backups.feature``).

Optional in the lab: only the ``postgres`` variant set (``postgres``, ``pg_*`` in
:mod:`lab.variants`) starts it, so the default lab run stays fast.  What it builds:

- a cluster ``golive-lab-<pid>-<hex>`` made with ``pg_createcluster`` on a free loopback port,
  its data directory and WAL archive in a private ``/tmp/golive-pg-*`` folder owned by the
  ``postgres`` user, started with ``pg_ctlcluster``; ``archive_mode = on`` and an
  ``archive_command`` that copies each segment into the archive (the ``archive_failing``
  mode copies into a folder that does not exist, so every attempt fails);
- a database ``golive_app`` owned by the role ``golive_app`` (LOGIN CREATEDB) whose random
  password is written to ``<dir>/secrets/db-password`` (0600) and given to golive only as
  ``password_file`` -- never literally, never on a command line;
- backups written by :func:`take_backup` (``pg_dump -Fc``, then ``openssl enc -aes-256-cbc
  -pbkdf2``; ``pg-<UTC stamp>-full.dump.enc``) plus a ``manifest.json`` with each file's
  sha256, size, creation time and the per-table row counts at dump time; older full dumps
  are seeded with past timestamps (name *and* mtime) so retention and age have history;
- a ``files`` backup of the "application" config and key (``etc/app.conf``,
  ``etc/jwt-signing.key``): weekly full and daily incremental encrypted tarballs;
- an off-site copy of every backup on a second "host": a real sshd on 127.0.0.1
  (:mod:`lab.sshd`) that golive reads as ``ssh://golive-probe@127.0.0.1:<port>/...``;
- a periodic backup job (``python -m lab.postgres job``) taking a fresh dump every
  ``interval_s`` seconds.

Modes (:data:`MODES`, one per ``pg_*`` variant) change one thing each: ``stale`` (newest full
dump 8 days old), ``truncated`` (newest dump cut in half, then encrypted and recorded, as
when pg_dump dies on a full disk), ``empty`` (newest dump holds 0 bytes, then encrypted),
``plaintext`` (dumps not encrypted), ``no_offsite`` (newest dump never shipped),
``archive_failing`` (archive_command copies into a missing folder), ``config_unsaved``
(app.conf changed after its newest backup), ``single_full`` (one full dump kept).  All but
``archive_failing`` only shape the files of a :class:`BackupSet`, so a test can lay several
sets side by side on one cluster (:meth:`RunningPostgres.add_backup_set`).

:meth:`RunningPostgres.stop` (idempotent; also at exit and on SIGINT/SIGTERM) stops the job,
``pg_dropcluster --stop``s the cluster and removes every folder it made.  What a SIGKILLed
lab leaves (owner pid gone) is removed by the next start (:func:`reap_stale_clusters`).
Needs root (runuser, chown).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, get_args

from lab.database import sha256_file
from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    free_port,
    pid_alive,
    python_env,
    register,
    spawn,
    stop_processes,
    unregister,
)
from lab.variants import PostgresMode

PG_VERSION = "15"
CLUSTER_PREFIX = "golive-lab-"
DB_NAME = "golive_app"
ROLE = "golive_app"
SCRATCH_DB = "golive_restore_scratch"
SOCKET_DIR = "/var/run/postgresql"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST = "manifest.json"
ENCRYPT = ["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-salt"]
MODES: tuple[str, ...] = tuple(m for m in get_args(PostgresMode) if m)
INSTALL_HINT = "install it with `apt-get install postgresql` (PostgreSQL 15)"
PORT_ATTEMPTS = 3
REPO_ROOT = Path(__file__).resolve().parent.parent

ROWS = {"tenants": 3, "media": 10, "analyses": 5000}
_SEED_SQL = """
CREATE TABLE tenants (id integer PRIMARY KEY, name text NOT NULL UNIQUE, tier text NOT NULL);
CREATE TABLE media (id integer PRIMARY KEY, tenant_id integer NOT NULL REFERENCES tenants(id),
                    name text NOT NULL, size_bytes bigint NOT NULL, sha256 text NOT NULL);
CREATE TABLE analyses (id bigserial PRIMARY KEY, media_id integer NOT NULL REFERENCES media(id),
                       kind text NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO tenants VALUES (1, 'acme', 'poc'), (2, 'globex', 'medium-load'), (3, 'initech', 'high-load');
INSERT INTO media SELECT i, 1 + i % 3, format('shot-%s.png', lpad(i::text, 3, '0')), 1000 * i,
                         encode(sha256(('media-' || i)::bytea), 'hex') FROM generate_series(1, 10) i;
INSERT INTO analyses (media_id, kind, status, created_at)
    SELECT 1 + i % 10, CASE WHEN i % 2 = 1 THEN 'quality' ELSE 'biometry' END, 'done',
           now() - i * interval '1 minute' FROM generate_series(0, 4999) i;
"""
_COUNT_SQL = """
SELECT n.nspname || '.' || c.relname,
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
                                             false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1;
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment for client tools: no inherited PG* variables."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


def _run(argv: list[str], what: str, *, stdin: str | None = None, env: dict[str, str] | None = None,
         timeout: float = 60) -> str:
    """stdout of ``argv``; LabError naming ``what`` when it fails (never echoes ``stdin``)."""
    try:
        res = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                             env=env if env is not None else _clean_env(), check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {argv[0]} not found ({INSTALL_HINT})") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: timed out after {timeout:g} s") from exc
    if res.returncode != 0:
        raise LabError(f"{what} failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()[-800:]}")
    return res.stdout


def stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime(STAMP_FORMAT)


def _set_time(path: Path, when: dt.datetime) -> None:
    ts = when.timestamp()
    os.utime(path, (ts, ts))


def _record(folder: Path, path: Path, when: dt.datetime, extra: dict[str, Any] | None = None) -> None:
    """Add ``path`` to ``folder``'s manifest.json (atomically replaced)."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest.get("backups"), dict):
        manifest["backups"] = {}
    entry: dict[str, Any] = {"sha256": sha256_file(path), "size": path.stat().st_size,
                             "created": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    entry.update(extra or {})
    manifest["backups"][path.name] = entry
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, manifest_path)


def _drop_cluster(name: str) -> None:
    """``pg_dropcluster --stop``, then the configuration folder (it keeps our conf.d file)."""
    if not name.startswith(CLUSTER_PREFIX):
        raise ValueError(f"refusing to drop cluster {name!r}: not made by the lab")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["pg_dropcluster", "--stop", PG_VERSION, name], capture_output=True, timeout=60, check=False)
    shutil.rmtree(f"/etc/postgresql/{PG_VERSION}/{name}", ignore_errors=True)


def reap_stale_clusters() -> list[str]:
    """Drop ``golive-lab-<pid>-*`` clusters, and remove ``/tmp/golive-pg-<pid>-*`` and
    ``/tmp/golive-offsite-<pid>-*`` folders, whose owner process is gone (a SIGKILLed lab:
    the one exit path ``stop()`` cannot cover).  Only names this module makes are
    considered; a live owner's cluster is never touched."""
    dropped: list[str] = []
    conf_root = Path(f"/etc/postgresql/{PG_VERSION}")
    if not conf_root.is_dir():
        return dropped
    for conf in conf_root.iterdir():
        m = re.fullmatch(re.escape(CLUSTER_PREFIX) + r"(\d+)-[0-9a-f]+", conf.name)
        if not m:
            continue
        leftover = not (conf / "postgresql.conf").exists() and time.time() - conf.stat().st_mtime > 600
        if pid_alive(int(m.group(1))) and not leftover:  # (a pid may be reused: old conf-only folders go)
            continue
        data_dir = None
        with contextlib.suppress(OSError):
            text = (conf / "postgresql.conf").read_text()
            found = re.search(r"^data_directory\s*=\s*'([^']+)'", text, re.MULTILINE)
            data_dir = Path(found.group(1)) if found else None
        _drop_cluster(conf.name)
        if data_dir is not None and data_dir.parent.name.startswith("golive-pg-"):
            shutil.rmtree(data_dir.parent, ignore_errors=True)
        dropped.append(conf.name)
    for folder in Path("/tmp").glob("golive-*-*"):  # golive-pg-<pid>-*, golive-offsite-<pid>-*
        m = re.fullmatch(r"golive-(?:pg|offsite)-(\d+)-.*", folder.name)
        if m and folder.is_dir() and not pid_alive(int(m.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
    return dropped


class BackupJob:
    """What one backup needs: connection, key, folders.  Shared by the lab's seeding and the
    periodic job process (``python -m lab.postgres job --state FILE``)."""

    def __init__(self, port: int, password_file: Path, key_file: Path, dump_dir: Path,
                 offsite_dir: Path | None, offsite_uid: int | None) -> None:
        self.port = port
        self.password_file = password_file
        self.key_file = key_file
        self.dump_dir = dump_dir
        self.offsite_dir = offsite_dir
        self.offsite_uid = offsite_uid

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "password_file": str(self.password_file), "key_file": str(self.key_file),
                "dump_dir": str(self.dump_dir), "offsite_dir": str(self.offsite_dir) if self.offsite_dir else None,
                "offsite_uid": self.offsite_uid}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackupJob:
        return cls(int(data["port"]), Path(data["password_file"]), Path(data["key_file"]), Path(data["dump_dir"]),
                   Path(data["offsite_dir"]) if data.get("offsite_dir") else None, data.get("offsite_uid"))

    def _app_env(self) -> dict[str, str]:
        return _clean_env(PGPASSWORD=self.password_file.read_text().strip(), PGCONNECT_TIMEOUT="5")

    def row_counts(self) -> dict[str, int]:
        out = _run(["psql", "-X", "-At", "-F", "\t", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, "-d", DB_NAME,
                    "-v", "ON_ERROR_STOP=1", "-c", _COUNT_SQL], "counting rows", env=self._app_env())
        return {name: int(n) for name, n in (line.split("\t") for line in out.splitlines() if "\t" in line)}

    def dump(self, out: Path) -> None:
        """``pg_dump -Fc`` of the lab database into ``out`` (as the app role, over TCP)."""
        _run(["pg_dump", "-Fc", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, "-d", DB_NAME, "-f", str(out)],
             "pg_dump", env=self._app_env(), timeout=120)

    def encrypt(self, plain: Path, out: Path) -> None:
        _run([*ENCRYPT, "-pass", f"file:{self.key_file}", "-in", str(plain), "-out", str(out)], "openssl enc")

    def ship(self, path: Path) -> None:
        """Copy ``path`` (mtime kept) to the off-site folder, owned by the off-site login user."""
        if self.offsite_dir is None:
            return
        dest = self.offsite_dir / path.name
        shutil.copy2(path, dest)
        if self.offsite_uid is not None:
            os.chown(dest, self.offsite_uid, -1)

    def write(self, plain: Path, when: dt.datetime, *, encrypt: bool = True, ship: bool = True,
              tables: dict[str, int] | None = None) -> Path:
        """Store the dump ``plain`` as the backup taken at ``when``: encrypted (or not),
        recorded in the manifest, shipped off-site."""
        name = f"pg-{stamp(when)}-full.dump" + (".enc" if encrypt else "")
        target = self.dump_dir / name
        tmp = self.dump_dir / f".{name}.tmp"
        if encrypt:
            self.encrypt(plain, tmp)
        else:
            shutil.copyfile(plain, tmp)
        os.replace(tmp, target)
        _set_time(target, when)
        _record(self.dump_dir, target, when, {"tables": tables or {}, "format": "pg_dump -Fc"})
        if ship:
            self.ship(target)
        return target

    def take(self, when: dt.datetime | None = None) -> Path:
        """One fresh, encrypted, recorded and shipped dump (what the periodic job does)."""
        when = when or dt.datetime.now(dt.UTC).replace(microsecond=0)
        with tempfile.TemporaryDirectory(prefix="golive-pgdump-") as tmp:
            plain = Path(tmp) / "dump"
            tables = self.row_counts()
            self.dump(plain)
            return self.write(plain, when, tables=tables)


class BackupSet:
    """One set of backups as a mode makes it: PostgreSQL dumps, the config/key files and
    their tarballs, and the off-site folders.  The lab has one (its mode's); tests add more
    to one cluster with :meth:`RunningPostgres.add_backup_set`."""

    def __init__(self, root: Path, offsite_root: Path, mode: str) -> None:
        self.mode = mode
        self.dump_dir = root / "backups" / "postgres"
        self.files_dir = root / "backups" / "files"
        self.etc_dir = root / "etc"
        self.config_file = self.etc_dir / "app.conf"
        self.app_key_file = self.etc_dir / "jwt-signing.key"
        self.offsite_root = offsite_root
        self.offsite_pg = offsite_root / "postgres"
        self.offsite_files = offsite_root / "files"


def require_postgres(*tools: str) -> pwd.struct_passwd:
    """Root, the PostgreSQL tools (the common ones and ``tools``) and the postgres account,
    or a LabError that says what to install."""
    if os.geteuid() != 0:
        raise LabError("the PostgreSQL lab needs root (pg_createcluster, runuser, chown)")
    for tool in ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster", "psql", "openssl", *tools):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: {INSTALL_HINT} and openssl")
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise LabError(f"no 'postgres' user: {INSTALL_HINT}") from exc


class RunningPostgres(StopsOnExit):
    """A started PostgreSQL lab.  ``port``, ``cluster``, ``dsn``, ``password_file``,
    ``key_file``, ``wal_archive``, ``offsite`` (the sshd), ``backups`` (the mode's
    :class:`BackupSet`: ``dump_dir``, ``files_dir``, ``config_file`` ...), ``mode``.
    ``stop()`` is idempotent."""

    def __init__(self, workdir: Path, mode: str, interval_s: float, *, archive: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown postgres lab mode {mode!r}; modes: {', '.join(MODES)}")
        self.dir = workdir
        self.mode = mode
        self.archive = archive
        self.interval_s = interval_s
        self.cluster = f"{CLUSTER_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.port = 0
        self.base: Path | None = None  # /tmp/golive-pg-*: data + WAL archive, owned by postgres
        self.secrets_dir = workdir / "secrets"
        self.password_file = self.secrets_dir / "db-password"
        self.key_file = self.secrets_dir / "backup-passphrase"
        self.offsite: Any = None  # lab.sshd.RunningSshd
        self.offsite_root: Path | None = None  # /tmp/golive-offsite-*, owned by the ssh login user
        self.offsite_uid: int | None = None
        self.backups: BackupSet | None = None
        self.job: ManagedProcess | None = None
        self.created = False
        self.start_duration_s = 0.0
        self._stopped = False

    # ---------------------------------------------------------------- public API

    @property
    def wal_archive(self) -> Path:
        assert self.base is not None
        return self.base / "wal_archive"

    @property
    def dsn(self) -> str:
        """The connection URI without a password (golive reads it from ``password_file``)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def decrypt_command(self) -> str:
        return f"openssl enc -d -aes-256-cbc -pbkdf2 -pass file:{self.key_file}"

    def target_backups(self, backup_set: BackupSet | None = None) -> list[dict[str, Any]]:
        """``backups:`` entries of the target that describes this lab (or one backup set)."""
        bs = backup_set or self.backups
        assert self.offsite is not None and bs is not None
        ssh = {"ssh_config": str(self.offsite.ssh_config), "ssh_identity_file": str(self.offsite.identity_file)}
        return [
            {"kind": "postgres", "location": str(bs.dump_dir), "database": self.dsn,
             "password_file": str(self.password_file), "full_pattern": "pg-*-full.*",
             "wal_archive": str(self.wal_archive), "decrypt_command": self.decrypt_command,
             "offsite": f"{self.offsite.uri}{bs.offsite_pg}", "scratch": SCRATCH_DB, **ssh},
            {"kind": "files", "location": str(bs.files_dir), "contents": ["config", "keys"],
             "sources": [str(bs.config_file), str(bs.app_key_file)],
             "full_pattern": "files-*-full.*", "incremental_pattern": "files-*-incr.*",
             "decrypt_command": self.decrypt_command, "offsite": f"{self.offsite.uri}{bs.offsite_files}", **ssh},
        ]

    def add_backup_set(self, name: str, mode: str) -> BackupSet:
        """Write another set of backups in ``mode`` (a file-level mode: everything but
        ``archive_failing``, which is the cluster's) under ``<dir>/sets/<name>``."""
        if mode not in MODES:
            raise ValueError(f"unknown postgres lab mode {mode!r}; modes: {', '.join(MODES)}")
        if not re.fullmatch(r"[a-z0-9_-]+", name):
            raise ValueError(f"backup set name {name!r}: use a-z, 0-9, _ and -")
        assert self.offsite_root is not None
        bs = BackupSet(self.dir / "sets" / name, self.offsite_root / "sets" / name, mode)
        self._write_set(bs)
        return bs

    def psql_admin(self, sql: str, *, timeout: float = 30) -> str:
        """Run SQL as the ``postgres`` superuser over the Unix socket (peer auth)."""
        return _run(["runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-h", SOCKET_DIR, "-p", str(self.port),
                     "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", "-"], "psql (postgres)", stdin=sql,
                    timeout=timeout)

    def database_exists(self, name: str) -> bool:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        return self.psql_admin(f"SELECT 1 FROM pg_database WHERE datname = '{name}';").strip() == "1"

    def log_tail(self, lines: int = 20) -> str:
        path = self.base / "postgresql.log" if self.base else None
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path else ""
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the job, drop the cluster, stop the off-site sshd, remove the folders."""
        if self._stopped:
            return
        self._stopped = True
        if self.job is not None:
            stop_processes([self.job])
        if self.created:
            _drop_cluster(self.cluster)
        if self.offsite is not None:
            self.offsite.stop()
        for folder in (self.base, self.offsite_root):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        if self.offsite_uid is not None:
            from lab.sshd import USER, release_user

            self.offsite_uid = None
            release_user(USER)
        unregister(self)

    def __repr__(self) -> str:
        return f"<RunningPostgres {self.cluster} {self.mode} port={self.port} stopped={self._stopped}>"

    # ---------------------------------------------------------------- internals

    def _archive_command(self) -> str:
        archive = self.wal_archive if self.mode != "archive_failing" else self.wal_archive / "missing"
        return f"test ! -f {archive}/%f && cp %p {archive}/%f"

    def _create_cluster(self) -> None:
        assert self.base is not None
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port("127.0.0.1")
            _run(["pg_createcluster", "-p", str(self.port), "-d", str(self.base / "data"),
                  "-l", str(self.base / "postgresql.log"), PG_VERSION, self.cluster, "--",
                  "--no-sync", "--auth-local=peer", "--auth-host=scram-sha-256"],
                 f"pg_createcluster {self.cluster}", timeout=120)
            self.created = True
            conf = Path(f"/etc/postgresql/{PG_VERSION}/{self.cluster}/conf.d/golive-lab.conf")
            conf.write_text(
                "listen_addresses = '127.0.0.1'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "wal_level = replica\n"
                + ("archive_mode = on\narchive_timeout = 60\n" f"archive_command = '{self._archive_command()}'\n"
                   if self.archive else "archive_mode = off\n")
                + "max_connections = 30\nshared_buffers = 32MB\n")
            try:
                _run(["pg_ctlcluster", PG_VERSION, self.cluster, "start"], f"starting cluster {self.cluster}",
                     timeout=60)
                return
            except LabError as exc:
                collided = "already in use" in self.log_tail(40) or "already in use" in str(exc)
                _drop_cluster(self.cluster)
                self.created = False
                if not collided or attempt == PORT_ATTEMPTS:
                    raise LabError(f"{exc}\n{self.log_tail()}") from exc

    def _wait_archiver(self, timeout_s: float) -> None:
        """Force a WAL switch and wait until the archiver archived it (or, in the
        ``archive_failing`` mode, failed at least once)."""
        self.psql_admin("SELECT pg_switch_wal();")
        column = "failed_count" if self.mode == "archive_failing" else "archived_count"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if int(self.psql_admin(f"SELECT {column} FROM pg_stat_archiver;").strip() or 0) > 0:
                return
            time.sleep(0.1)
        raise LabError(f"WAL archiver: {column} still 0 after {timeout_s:g} s\n{self.log_tail()}")

    def _write_secrets(self) -> None:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        for path in (self.password_file, self.key_file):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24) + "\n")

    def _seed(self) -> None:
        password = self.password_file.read_text().strip()
        self.psql_admin(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{password}';\n"
                        f"CREATE DATABASE {DB_NAME} OWNER {ROLE};\n")
        _run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, "-d", DB_NAME,
              "-v", "ON_ERROR_STOP=1", "-f", "-"], "seeding the lab database", stdin=_SEED_SQL,
             env=_clean_env(PGPASSWORD=password))

    def _start_offsite(self, timeout_s: float) -> None:
        from lab.sshd import USER, ensure_user, start_sshd

        self.offsite_uid = ensure_user(USER).pw_uid
        self.offsite_root = Path(tempfile.mkdtemp(prefix=f"golive-offsite-{os.getpid()}-", dir="/tmp"))
        os.chown(self.offsite_root, self.offsite_uid, -1)
        self.offsite_root.chmod(0o700)
        self.offsite = start_sshd(self.dir / "offsite-sshd", start_timeout_s=timeout_s)

    def _offsite_dirs(self, bs: BackupSet) -> None:
        assert self.offsite_root is not None and self.offsite_uid is not None
        for folder in (bs.offsite_root, bs.offsite_pg, bs.offsite_files):
            folder.mkdir(parents=True, exist_ok=True)
            cur = folder
            while cur != self.offsite_root.parent:  # every level readable by the login user only
                os.chown(cur, self.offsite_uid, -1)
                cur.chmod(0o700)
                cur = cur.parent

    def _files_backups(self, bs: BackupSet, now: dt.datetime) -> None:
        """Config and key, and their encrypted tarballs: full 9 and 2 days ago, incremental
        1 hour ago (the config last changed 3 days ago, the key 20 days ago)."""
        bs.etc_dir.mkdir(parents=True, exist_ok=True)
        bs.config_file.write_text(f"# golive lab application config\ndatabase_url = {self.dsn}\n"
                                  "password_file = ../secrets/db-password\nworkers = 4\n")
        bs.app_key_file.write_bytes(secrets.token_bytes(32))
        bs.app_key_file.chmod(0o600)
        _set_time(bs.config_file, now - dt.timedelta(days=3))
        _set_time(bs.app_key_file, now - dt.timedelta(days=20))
        bs.files_dir.mkdir(parents=True, exist_ok=True)
        job = BackupJob(self.port, self.password_file, self.key_file, bs.files_dir, bs.offsite_files,
                        self.offsite_uid)
        with tempfile.TemporaryDirectory(prefix="golive-files-") as tmp:
            for when, kind in ((now - dt.timedelta(days=9), "full"), (now - dt.timedelta(days=2), "full"),
                               (now - dt.timedelta(hours=1), "incr")):
                plain = Path(tmp) / f"{kind}.tar.gz"
                with tarfile.open(plain, "w:gz") as tar:
                    for src in (bs.config_file, bs.app_key_file):
                        tar.add(src, arcname=f"etc/{src.name}")
                name = f"files-{stamp(when)}-{kind}.tar.gz.enc"
                job.encrypt(plain, bs.files_dir / name)
                _set_time(bs.files_dir / name, when)
                _record(bs.files_dir, bs.files_dir / name, when, {"format": "tar.gz"})
                job.ship(bs.files_dir / name)
        if bs.mode == "config_unsaved":  # changed after the newest backup, not backed up since
            with open(bs.config_file, "a") as fh:
                fh.write("workers = 8\n")

    def _pg_backups(self, bs: BackupSet, now: dt.datetime) -> BackupJob:
        bs.dump_dir.mkdir(parents=True, exist_ok=True)
        job = BackupJob(self.port, self.password_file, self.key_file, bs.dump_dir, bs.offsite_pg, self.offsite_uid)
        ages = {"stale": (20, 13, 8), "single_full": (0,)}.get(bs.mode, (13, 6, 0))
        with tempfile.TemporaryDirectory(prefix="golive-pgdump-") as tmp:
            plain = Path(tmp) / "dump"
            tables = job.row_counts()
            job.dump(plain)
            for i, days in enumerate(ages):
                newest = i == len(ages) - 1
                when = now - dt.timedelta(days=days, minutes=1 if newest else 0)
                source = plain
                if newest and bs.mode == "truncated":  # pg_dump died half-way (disk full)
                    source = Path(tmp) / "truncated"
                    data = plain.read_bytes()
                    source.write_bytes(data[: len(data) // 2])
                elif newest and bs.mode == "empty":  # pg_dump wrote nothing
                    source = Path(tmp) / "empty"
                    source.write_bytes(b"")
                job.write(source, when, encrypt=bs.mode != "plaintext",
                          ship=not (newest and bs.mode == "no_offsite"), tables=tables)
        return job

    def _write_set(self, bs: BackupSet) -> BackupJob:
        self._offsite_dirs(bs)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        job = self._pg_backups(bs, now)
        self._files_backups(bs, now)
        return job

    def _start_job(self, job: BackupJob) -> None:
        state = self.dir / "backup-job.json"
        state.write_text(json.dumps(job.to_json(), indent=2) + "\n")
        self.job = spawn("pg-backup-job", [sys.executable, "-m", "lab.postgres", "job", "--state", str(state),
                                           "--interval-s", f"{self.interval_s:g}"],
                         self.dir / "backup-job.log", cwd=self.dir, env=python_env(REPO_ROOT))

    def _start(self, timeout_s: float) -> None:
        started = time.monotonic()
        pg = require_postgres("pg_dump")
        reap_stale_clusters()
        self.dir.mkdir(parents=True, exist_ok=True)
        register(self)
        self.base = Path(tempfile.mkdtemp(prefix=f"golive-pg-{os.getpid()}-", dir="/tmp"))
        (self.base / "wal_archive").mkdir()
        for folder in (self.base, self.base / "wal_archive"):
            os.chown(folder, pg.pw_uid, pg.pw_gid)
            folder.chmod(0o700)
        self._write_secrets()
        self._create_cluster()
        self._seed()
        if self.archive:
            self._wait_archiver(timeout_s)
        self._start_offsite(timeout_s)
        assert self.offsite_root is not None
        self.backups = BackupSet(self.dir, self.offsite_root, self.mode)
        self._start_job(self._write_set(self.backups))
        self.start_duration_s = time.monotonic() - started


def start_postgres(workdir: Path, mode: str = "compliant", *, interval_s: float = 3600,
                   start_timeout_s: float = 20.0, archive: bool = True) -> RunningPostgres:
    """Start the PostgreSQL lab in ``workdir`` (see the module doc); ``mode`` is one of
    :data:`MODES`; ``archive=False`` runs the cluster with ``archive_mode = off`` (no WAL
    archiving at all, as a deployment that never set up PITR).  On any failure everything
    already made is removed and :class:`LabError` says what failed."""
    pg = RunningPostgres(Path(workdir).resolve(), mode, interval_s, archive=archive)
    try:
        pg._start(start_timeout_s)
    except BaseException:
        pg.stop()
        raise
    return pg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.postgres", description="the PostgreSQL lab's backup job")
    sub = parser.add_subparsers(dest="cmd", required=True)
    job = sub.add_parser("job", help="take an encrypted pg_dump every --interval-s seconds until SIGTERM")
    job.add_argument("--state", type=Path, required=True)
    job.add_argument("--interval-s", type=float, default=3600.0)
    args = parser.parse_args(argv)
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    backup = BackupJob.from_json(json.loads(args.state.read_text()))
    sys.stderr.write(f"pg backup job: every {args.interval_s:g} s into {backup.dump_dir}\n")
    while not stop.wait(args.interval_s):
        try:
            sys.stderr.write(f"backup written: {backup.take().name}\n")
        except (OSError, LabError) as exc:
            sys.stderr.write(f"backup failed: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
