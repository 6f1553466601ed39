"""The lab's database (SQLite) and its backup job.

:func:`create_database` writes ``app.sqlite3`` with a few tables and rows.  The backup job
(``python -m lab.database job --db DB --dir DIR --interval-s N``) takes a backup with
SQLite's online backup API at start and then every N seconds, named
``app-<UTC %Y%m%dT%H%M%SZ>.sqlite3``, and records each file's sha256 in ``manifest.json``.

The broken variants need backups that are old or damaged, so :func:`write_backup` takes the
timestamp to use (name *and* mtime) and :func:`truncate_backup` damages one after it was
recorded in the manifest -- as a disk-full or an interrupted copy would.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

BACKUP_PREFIX = "app-"
BACKUP_SUFFIX = ".sqlite3"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST = "manifest.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, tier TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL, size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS analyses (
    id INTEGER PRIMARY KEY, media_id INTEGER NOT NULL REFERENCES media(id),
    kind TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL
);
"""


def backup_name(when: dt.datetime) -> str:
    """``app-20250101T120000Z.sqlite3`` for ``when`` (converted to UTC)."""
    return f"{BACKUP_PREFIX}{when.astimezone(dt.UTC).strftime(STAMP_FORMAT)}{BACKUP_SUFFIX}"


def parse_backup_time(path: Path) -> dt.datetime | None:
    """The UTC time encoded in a backup's name, or None if the name does not match."""
    name = path.name
    if not (name.startswith(BACKUP_PREFIX) and name.endswith(BACKUP_SUFFIX)):
        return None
    stamp = name[len(BACKUP_PREFIX) : -len(BACKUP_SUFFIX)]
    try:
        return dt.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def create_database(path: Path, *, analyses: int = 50) -> None:
    """Create (or recreate) the lab database with tenants, media and ``analyses`` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    now = dt.datetime.now(dt.UTC)
    with sqlite3.connect(path) as conn:
        conn.executescript(_SCHEMA)
        conn.executemany(
            "INSERT INTO tenants (id, name, tier) VALUES (?, ?, ?)",
            [(1, "acme", "poc"), (2, "globex", "medium-load"), (3, "initech", "high-load")],
        )
        media = []
        for i in range(1, 11):
            blob = f"media-{i}".encode()
            media.append((i, 1 + i % 3, f"shot-{i:03d}.png", 1000 * i, hashlib.sha256(blob).hexdigest()))
        conn.executemany(
            "INSERT INTO media (id, tenant_id, name, size_bytes, sha256) VALUES (?, ?, ?, ?, ?)", media
        )
        conn.executemany(
            "INSERT INTO analyses (media_id, kind, status, created_at) VALUES (?, ?, ?, ?)",
            [
                (1 + i % 10, "quality" if i % 2 else "biometry", "done",
                 (now - dt.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"))
                for i in range(analyses)
            ],
        )
    conn.close()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_manifest_lock = threading.Lock()


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    """The manifest (``{"backups": {name: {"sha256", "size", "created"}}}``), empty if none."""
    try:
        data = json.loads((backup_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {"backups": {}}
    if not isinstance(data, dict) or not isinstance(data.get("backups"), dict):
        return {"backups": {}}
    return data


def _record(backup_dir: Path, path: Path, when: dt.datetime) -> None:
    with _manifest_lock:
        manifest = read_manifest(backup_dir)
        manifest["database"] = manifest.get("database", "app.sqlite3")
        manifest["backups"][path.name] = {
            "sha256": sha256_file(path),
            "size": path.stat().st_size,
            "created": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        tmp = backup_dir / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, backup_dir / MANIFEST)


def write_backup(db: Path, backup_dir: Path, when: dt.datetime | None = None) -> Path:
    """Back up ``db`` into ``backup_dir`` with SQLite's online backup API.

    ``when`` (default: now) sets the name's timestamp and the file's mtime, so a test can
    make a backup that looks three days old by both measures.  The copy is written to a
    hidden temporary file and renamed, so a reader never sees a half-written backup.
    """
    when = when or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        raise ValueError("when must be timezone-aware")
    backup_dir.mkdir(parents=True, exist_ok=True)
    target = backup_dir / backup_name(when)
    tmp = backup_dir / f".{target.name}.tmp"
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, target)
    ts = when.timestamp()
    os.utime(target, (ts, ts))
    _record(backup_dir, target, when)
    return target


def truncate_backup(path: Path, keep_fraction: float = 0.5) -> None:
    """Damage a backup by cutting it to ``keep_fraction`` of its size (mtime preserved).

    The manifest keeps the sha256 of the intact file, as it would after a real truncation.
    """
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.truncate(max(1, int(st.st_size * keep_fraction)))
    os.utime(path, (st.st_atime, st.st_mtime))


def list_backups(backup_dir: Path) -> list[Path]:
    """Backups in ``backup_dir``, oldest first (by the time in their names)."""
    found = [(parse_backup_time(p), p) for p in backup_dir.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}")]
    return [p for t, p in sorted((t, p) for t, p in found if t is not None)]


def integrity_ok(path: Path) -> bool:
    """``PRAGMA integrity_check`` says ``ok`` (a truncated file fails or raises)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False
    return rows == [("ok",)]


def run_job(db: Path, backup_dir: Path, interval_s: float, stop: threading.Event) -> None:
    """Back up at once, then every ``interval_s`` seconds until ``stop`` is set."""
    while True:
        try:
            path = write_backup(db, backup_dir)
            sys.stderr.write(f"backup written: {path.name}\n")
        except (OSError, sqlite3.Error) as exc:
            sys.stderr.write(f"backup failed: {exc}\n")
        if stop.wait(interval_s):
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.database", description="lab database tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    job = sub.add_parser("job", help="run the backup job until SIGTERM")
    job.add_argument("--db", type=Path, required=True)
    job.add_argument("--dir", type=Path, required=True)
    job.add_argument("--interval-s", type=float, default=3600.0)
    create = sub.add_parser("create", help="create the lab database")
    create.add_argument("--db", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "create":
        create_database(args.db)
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sys.stderr.write(f"backup job: {args.db} -> {args.dir} every {args.interval_s} s\n")
    run_job(args.db, args.dir, args.interval_s, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
