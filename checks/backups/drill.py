"""The restore drill: restore the newest backup into a scratch database (PostgreSQL) or a
scratch folder (SQLite), time it, compare per-table row counts with the source, and remove
the scratch again -- on every exit path.

Safety (architecture.md, "restore what they changed on every exit path"):

- golive only removes what it created: a PostgreSQL scratch database that already exists is
  refused (the drill is an error, nothing is dropped); a SQLite drill works in a fresh
  ``golive-restore-*`` folder inside the scratch folder.
- Cleanup runs in ``finally``.  While the drill runs (main thread), SIGINT, SIGTERM and SIGHUP raise
  :class:`DrillInterrupted` (a KeyboardInterrupt) instead of killing the process; during the
  cleanup they are held back; afterwards the signal is delivered again to whatever handled
  it before, so Ctrl-C still stops the run and SIGTERM still terminates it -- after the
  scratch is gone.  Child tools are killed with their process group.
- Every step is bounded: ``backups[].restore_timeout_s`` for the restore, the location's
  ``timeout_s`` for commands on hosts.

The value of the measurement is ``{"restored", "duration_s", "tables", "mismatches",
"compared_with", "scratch", "scratch_removed", "problem", "stages"}``.  ``duration_s`` runs
from the first byte fetched to the restored database being usable (before row counting).
"""
from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from checks.backups import content
from checks.backups import postgres as pg
from checks.backups.inventory import Inventory, read_manifest
from checks.backups.location import Location, fetch, sh
from checks.connection import ProbeError, redact
from golive.model import Evidence, Measurement

Stage = Callable[[str], None]
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DrillInterrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived during a drill (raised so ``finally`` cleans up)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"restore drill interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def _interruptible(pending: list[int]) -> Iterator[None]:
    """While inside: SIGINT/SIGTERM raise DrillInterrupted.  On the way out: the previous
    handlers come back and any signal that arrived is delivered to them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_it(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)
        raise DrillInterrupted(signum)

    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, raise_it)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


@contextlib.contextmanager
def _deferred(pending: list[int]) -> Iterator[None]:
    """While inside (the cleanup): SIGINT/SIGTERM are only recorded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


class _Drill:
    """Shared bookkeeping: stages with timings, data, evidence."""

    def __init__(self, probe: str, subject: str, method: str, on_stage: Stage | None) -> None:
        self.started = time.monotonic()
        self.probe, self.subject, self.method = probe, subject, method
        self.on_stage = on_stage
        self.stages: list[dict[str, Any]] = []
        self.data: dict[str, Any] = {"restored": False, "duration_s": None, "tables": {}, "mismatches": [],
                                     "compared_with": None, "scratch": None, "scratch_removed": None,
                                     "problem": None, "stages": self.stages}

    def stage(self, name: str) -> None:
        self.stages.append({"stage": name, "at_s": round(time.monotonic() - self.started, 3)})
        if self.on_stage is not None:
            self.on_stage(name)

    def evidence(self) -> Evidence:
        return Evidence(probe=self.probe, subject=self.subject, method=self.method, tool=pg._psql_version(),
                        duration_s=round(time.monotonic() - self.started, 3), data=self.data)

    def compare(self, restored: dict[str, int], source: dict[str, int], basis: str) -> None:
        self.data["compared_with"] = basis
        self.data["tables"] = {t: [restored.get(t), source.get(t)] for t in sorted(set(restored) | set(source))}
        for t, (got, want) in self.data["tables"].items():
            if got != want:
                self.data["mismatches"].append(f"{t}: restored {'missing' if got is None else got}, "
                                               f"source {'missing' if want is None else want}")

    def result(self, what: str) -> Measurement:
        d = self.data
        removed = {True: "scratch removed", False: "scratch NOT removed", None: "no scratch made"}[d["scratch_removed"]]
        if not d["restored"]:
            return Measurement(d, f"{what}: restore failed: {d['problem']}; {removed}", self.evidence())
        rows = sum(v[0] or 0 for v in d["tables"].values())
        counts = (f"counts differ: {'; '.join(d['mismatches'])}" if d["mismatches"]
                  else f"per-table row counts equal the {d['compared_with']}")
        took = f"{d['duration_s']:.2f} s" if d["duration_s"] >= 1 else f"{d['duration_s'] * 1000:.0f} ms"
        return Measurement(d, f"{what} restored in {took}: {len(d['tables'])} tables, "
                              f"{rows} rows, {counts}; {removed}", self.evidence(), unit="s")


def _manifest_tables(inv: Inventory, name: str) -> dict[str, int] | None:
    if not inv.manifest:
        return None
    try:
        entry = read_manifest(inv.location, inv.manifest).get(name, {})
    except ProbeError:
        return None
    tables = entry.get("tables")
    if isinstance(tables, dict) and tables:
        return {str(k): int(v) for k, v in tables.items()}
    return None


def restore_postgres(inv: Inventory, scratch: str, *, on_stage: Stage | None = None,
                     work_root: str | None = None) -> Measurement:
    """Restore the newest backup of a postgres entry into the new database ``scratch`` on the
    same server (``createdb`` rights needed), then drop it."""
    spec = inv.spec
    newest = inv.newest()
    subject = inv.location.describe(newest.name if newest else None)
    drill = _Drill("backups.restore", subject, f"CREATE DATABASE {scratch}; pg_restore --no-owner --no-acl "
                   "--exit-on-error (or psql -f for plain dumps); count(*) per table; DROP DATABASE ... WITH (FORCE)",
                   on_stage)
    try:
        conn = pg.connection(spec)
        pg.quote_name(scratch)
        if scratch == conn.dbname:
            raise ValueError("the scratch database is the source database")
    except ValueError as exc:
        return Measurement.failed(str(exc), drill.evidence())
    if newest is None:
        drill.data["problem"] = "no backup to restore"
        return drill.result(inv.location.label)
    drill.data["scratch"] = scratch
    scratch_conn = conn.for_db(scratch)
    try:
        if pg.database_exists(conn, scratch):
            return Measurement.failed(f"scratch database {scratch} already exists: golive only drops what it "
                                      "creates; drop it or name another (backups[].scratch)", drill.evidence())
    except ProbeError as exc:
        return Measurement.failed(exc.reason, drill.evidence())

    pending: list[int] = []
    created = False
    tmp = Path(tempfile.mkdtemp(prefix="golive-restore-", dir=work_root))
    with _interruptible(pending):
        try:
            drill.stage("fetching")
            copy = tmp / "backup"
            fetch(inv.location, inv.location.join(newest.name), copy, newest.size, timeout_s=spec.restore_timeout_s)
            drill.stage("decrypting")
            plain, steps = content.unwrap(copy, tmp, spec.decrypt_command, timeout_s=spec.restore_timeout_s)
            if plain.stat().st_size == 0:
                raise content.ContentError("the backup holds 0 bytes once decrypted/decompressed (an empty dump)")
            with open(plain, "rb") as fh:
                fmt = content.sniff(fh.read(content.HEAD_BYTES)).format
            drill.data["unwrap"] = steps
            drill.stage("creating")
            created = True  # from here on, an interruption may leave it behind: drop IF EXISTS
            try:
                pg.psql(conn, f"CREATE DATABASE {pg.quote_name(scratch)};")
            except ProbeError:
                created = False  # not ours (it appeared meanwhile) or not made: never drop it
                raise
            drill.stage("restoring")
            if fmt == "pg-plain":
                argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", scratch_conn.uri, "-f", str(plain)]
            else:
                argv = ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "-d", scratch_conn.uri, str(plain)]
            rc, _, err = content.run_local(argv, timeout_s=spec.restore_timeout_s, env=conn.env())
            if rc != 0:
                drill.data["problem"] = f"{argv[0]}: {content.last_line(err) or f'exit {rc}'}"
            else:
                drill.data["restored"] = True
                drill.data["duration_s"] = round(time.monotonic() - drill.started, 6)
                drill.stage("counting")
                restored = pg.row_counts(scratch_conn, timeout_s=spec.restore_timeout_s)
                recorded = _manifest_tables(inv, newest.name)
                if recorded is not None:
                    drill.data["live_source"] = pg.row_counts(conn, timeout_s=spec.restore_timeout_s)
                    drill.compare(restored, recorded, "source at backup time (manifest)")
                else:
                    drill.compare(restored, pg.row_counts(conn, timeout_s=spec.restore_timeout_s), "live source")
        except content.ContentError as exc:
            drill.data["problem"] = str(exc)
        except content.NeedsKey as exc:
            return Measurement.failed(str(exc), drill.evidence())
        except (ProbeError, content.ToolError) as exc:
            return Measurement.failed(exc.reason if isinstance(exc, ProbeError) else str(exc), drill.evidence())
        finally:
            with _deferred(pending):
                if created:
                    drill.stage("dropping")
                    drill.data["scratch_removed"] = _drop(conn, scratch, drill)
                shutil.rmtree(tmp, ignore_errors=True)
    return drill.result(newest.name)


def _drop(conn: pg.PgConn, scratch: str, drill: _Drill) -> bool:
    """DROP the scratch database (terminating its sessions); True when it is gone."""
    try:
        pg.psql(conn, f"DROP DATABASE IF EXISTS {pg.quote_name(scratch)} WITH (FORCE);", timeout_s=60)
        return not pg.database_exists(conn, scratch)
    except ProbeError as exc:
        drill.data["drop_error"] = exc.reason
        return False


_SQLITE_COUNTS = (
    "import json, sqlite3, sys\n"
    "c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n"
    "t = [r[0] for r in c.execute(\"SELECT name FROM sqlite_master WHERE type = 'table' "
    "AND name NOT LIKE 'sqlite_%'\")]\n"
    "print(json.dumps({n: c.execute('SELECT count(*) FROM \"%s\"' % n.replace('\"', '\"\"')).fetchone()[0] "
    "for n in t}))\n"
)


def sqlite_counts(loc: Location, path: str, *, timeout_s: float = 60) -> dict[str, int]:
    """Row counts of every table of the SQLite file ``path`` on ``loc``'s host, opened
    read-only (here with Python's sqlite3 for a local file; elsewhere with the host's python3)."""
    if loc.is_local:
        try:
            return _local_counts(Path(path))
        except Exception as exc:
            raise ProbeError(f"could not read row counts of {path}: {exc}") from None
    out = sh(loc, f"python3 -c {shlex.quote(_SQLITE_COUNTS)} {shlex.quote(path)}", timeout_s=timeout_s)
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProbeError(f"could not read row counts of {loc.describe()}: {redact(out[-200:])}") from None
    return {str(k): int(v) for k, v in data.items()}


def restore_sqlite(inv: Inventory, scratch: Path, source: Location | None, *, on_stage: Stage | None = None
                   ) -> Measurement:
    """Restore the newest SQLite backup into a fresh folder inside ``scratch`` (on the
    checking host): copy, decrypt/decompress, open, ``PRAGMA integrity_check``; compare row
    counts with the live database (``source``) or the manifest; remove the folder."""
    spec = inv.spec
    newest = inv.newest()
    drill = _Drill("backups.restore", inv.location.describe(newest.name if newest else None),
                   f"copy into {scratch}/golive-restore-*; decrypt/decompress; sqlite3 open + PRAGMA "
                   "integrity_check; count(*) per table vs the source; remove the folder", on_stage)
    if newest is None:
        drill.data["problem"] = "no backup to restore"
        return drill.result(inv.location.label)
    pending: list[int] = []
    made_scratch = False
    work: Path | None = None
    with _interruptible(pending):
        try:
            if not scratch.exists():
                scratch.mkdir(parents=True)
                made_scratch = True
            work = Path(tempfile.mkdtemp(prefix="golive-restore-", dir=scratch))
            drill.data["scratch"] = str(work)
            drill.stage("fetching")
            copy = work / "backup"
            fetch(inv.location, inv.location.join(newest.name), copy, newest.size, timeout_s=spec.restore_timeout_s)
            drill.stage("decrypting")
            plain, steps = content.unwrap(copy, work, spec.decrypt_command, timeout_s=spec.restore_timeout_s)
            drill.data["unwrap"] = steps
            drill.stage("restoring")
            content.verify(plain, "sqlite", timeout_s=spec.restore_timeout_s)
            restored_db = work / "restored.sqlite3"
            plain.rename(restored_db)
            drill.data["restored"] = True
            drill.data["duration_s"] = round(time.monotonic() - drill.started, 6)
            drill.stage("counting")
            restored = _local_counts(restored_db)
            if source is not None:
                drill.compare(restored, sqlite_counts(source, source.path, timeout_s=spec.timeout_s), "live source")
            else:
                recorded = _manifest_tables(inv, newest.name)
                if recorded is None:
                    return Measurement.failed("nothing to compare the restored rows with: set backups[].database "
                                              "(the live SQLite file)", drill.evidence())
                drill.compare(restored, recorded, "source at backup time (manifest)")
        except content.ContentError as exc:
            drill.data["problem"] = str(exc)
        except content.NeedsKey as exc:
            return Measurement.failed(str(exc), drill.evidence())
        except (ProbeError, content.ToolError, OSError) as exc:
            reason = exc.reason if isinstance(exc, ProbeError) else str(exc)
            return Measurement.failed(reason, drill.evidence())
        finally:
            with _deferred(pending):
                if work is not None:
                    drill.stage("removing")
                    shutil.rmtree(work, ignore_errors=True)
                    if made_scratch:
                        shutil.rmtree(scratch, ignore_errors=True)
                    drill.data["scratch_removed"] = not work.exists()
    return drill.result(newest.name)


def _local_counts(path: Path) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {n: int(conn.execute(f'SELECT count(*) FROM "{n.replace(chr(34), chr(34) * 2)}"').fetchone()[0])
                for n in names}
    finally:
        conn.close()
