"""The backups family end to end, against real PostgreSQL clusters (lab/postgres.py), real
SQLite backups (lab/database.py) and a real sshd as the off-site host.

Every check passes on the compliant backups and fails on the broken ones with the measured
value that shows why; unreachable locations are ``error``; the restore drill really restores,
is timed, and leaves no scratch behind even when SIGINT/SIGTERM arrive mid-drill; database
passwords appear nowhere in output or reports.

To keep this module fast, one compliant cluster holds the broken backup sets side by side
(:meth:`lab.postgres.RunningPostgres.add_backup_set`, the same builder the ``pg_*`` lab
variants use) and one run checks them all; only ``archive_failing`` needs its own cluster.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.backups import content
from checks.backups.location import SCHEMES, HostConn, parse_location
from conftest import ROOT, write_target
from golive.target import CONNECTION_SCHEMES
from lab import database
from lab.postgres import SCRATCH_DB, RunningPostgres, start_postgres
from lab.procs import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the PostgreSQL lab needs root")

ALL_CHECKS = """name: backups-all
description: every backups check (self-tests)
requirements:
  backups:
    ref: [AW-BAK-01, AW-BAK-02, AW-BAK-03, AW-BAK-04, AW-BAK-05]
    max_age: {incremental: 24 h, full: 7 d}
    retention_full_min: 2
    contents: %s
    integrity: true
    encryption: true
    offsite: true
    pitr: true
    rto: %s
"""
BROKEN_SETS = ("stale", "truncated", "empty", "plaintext", "no_offsite", "single_full", "config_unsaved")


class Labs:
    def __init__(self, root: Path, ok: RunningPostgres, failing: RunningPostgres) -> None:
        self.root, self.ok, self.failing = root, ok, failing
        self.sets = {name: ok.target_backups(ok.add_backup_set(name, name)) for name in BROKEN_SETS}
        self.sqlite = {name: _sqlite_set(root / f"sqlite-{name}", name) for name in ("good", "stale", "corrupt")}

    def passwords(self) -> list[str]:
        return [p.password_file.read_text().strip() for p in (self.ok, self.failing)]


def _sqlite_set(root: Path, kind: str) -> dict[str, Any]:
    """SQLite backups as the lab writes them (compliant job, stale_backup, corrupt_backup)."""
    db, backups = root / "app.sqlite3", root / "backups"
    database.create_database(db)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if kind == "stale":
        database.write_backup(db, backups, now - dt.timedelta(days=4))
        database.write_backup(db, backups, now - dt.timedelta(days=3))
    elif kind == "corrupt":
        database.write_backup(db, backups, now - dt.timedelta(hours=2))
        database.truncate_backup(database.write_backup(db, backups, now - dt.timedelta(minutes=1)))
    else:
        database.write_backup(db, backups, now - dt.timedelta(days=2))
        database.write_backup(db, backups, now - dt.timedelta(minutes=1))
    return {"kind": "sqlite", "location": str(backups), "database": str(db), "scratch": str(root / "scratch")}


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labs]:
    root = tmp_path_factory.mktemp("backups")
    # Two clusters at once (most of a start is waiting).  The second one's thread stays alive
    # until teardown: lab children get SIGTERM when the thread that started them ends.
    box: dict[str, Any] = {}
    ready, done = threading.Event(), threading.Event()

    def keeper() -> None:
        try:
            box["failing"] = start_postgres(root / "pg-failing", "archive_failing")
        except BaseException as exc:
            box["error"] = exc
        finally:
            ready.set()
        done.wait()
        if "failing" in box:
            box["failing"].stop()

    thread = threading.Thread(target=keeper, name="pg-failing", daemon=True)
    thread.start()
    try:
        ok = start_postgres(root / "pg")
        try:
            ready.wait(120)
            if "failing" not in box:
                raise box.get("error") or RuntimeError("the archive_failing cluster did not start")
            yield Labs(root, ok, box["failing"])
        finally:
            ok.stop()
    finally:
        done.set()
        thread.join(60)


def _target(tmp_path: Path, backups: list[dict[str, Any]], name: str = "backups") -> str:
    return write_target(tmp_path, yaml.safe_dump({"name": name, "backups": backups}, sort_keys=False), f"{name}.yaml")


def _profile(tmp_path: Path, rto: str = "1 h", contents: str = "[database, config]") -> str:
    p = tmp_path / "profile.yaml"
    p.write_text(ALL_CHECKS % (contents, rto))
    return str(p)


def _find(run: Any, check: str, where: str) -> dict[str, Any]:
    """The one result of ``check`` whose subject contains ``where``."""
    found = [r for rid, r in run.results(check + "[").items() if where in rid]
    assert len(found) == 1, f"{check} [{where}]: {sorted(run.results(check))}\n{run.out[-3000:]}"
    return found[0]


# ----------------------------------------------------------------------------- the lab variant, end to end

def test_postgres_lab_variant_passes_the_whole_family_with_a_timed_restore(tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    """The done criterion: alwrity-multi-user on the PostgreSQL lab, restore drill included."""
    run = golive_run("--profile", "alwrity-multi-user", "--target", "lab-backups", "-m", "backups",
                     "--allow-disruptive")
    results = run.results("backups.")
    assert run.rc == 0, run.out[-4000:]
    bad = {rid: (r["status"], r["measured"], r["reason"]) for rid, r in results.items()
           if r["status"] not in ("pass", "skip")}
    assert not bad, bad
    families = {rid.split("[")[0] for rid in results}
    assert families == {"backups.age.full", "backups.age.incremental", "backups.retention", "backups.completeness",
                        "backups.integrity", "backups.encryption", "backups.offsite", "backups.pitr",
                        "backups.restore"}, families
    drill = _find(run, "backups.restore", "postgres:")
    assert drill["status"] == "pass" and "restored in" in drill["measured"], drill
    data = drill["evidence"][0]["data"]
    assert 0 < data["duration_s"] < 3600 and data["scratch_removed"] is True
    assert data["tables"]["public.analyses"] == [5000, 5000], data["tables"]
    assert "within 1 h (RTO)" in drill["expected"]
    skipped = _find(run, "backups.restore", "files:")
    assert skipped["status"] == "skip" and "databases" in skipped["reason"]
    assert "Salted__" in _find(run, "backups.encryption", "postgres:")["measured"]
    assert _find(run, "backups.offsite", "postgres:")["measured"].startswith("identical copy of pg-")
    assert run.results("backups.completeness[config]")["backups.completeness[config]"]["status"] == "pass"


def test_default_lab_sqlite_restores_but_is_an_honest_no_go_for_multi_user(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "alwrity-multi-user", "--target", "lab", "-m", "backups", "--allow-disruptive")
    assert run.rc == 1
    drill = _find(run, "backups.restore", "sqlite:")
    assert drill["status"] == "pass", drill
    assert drill["evidence"][0]["data"]["compared_with"] == "live source"
    assert _find(run, "backups.integrity", "sqlite:")["status"] == "pass"
    enc = _find(run, "backups.encryption", "sqlite:")
    assert enc["status"] == "fail" and "plaintext (SQLite database)" in enc["measured"], enc
    off = _find(run, "backups.offsite", "sqlite:")
    assert off["status"] == "fail" and "no off-site location declared" in off["measured"]
    assert run.one("backups.pitr")["status"] == "error"


# ----------------------------------------------------------------------------- read-only checks, all variants

def test_read_only_checks_pass_on_compliant_and_fail_on_each_broken_set(tmp_path, golive_run, labs) -> None:  # type: ignore[no-untyped-def]
    dead = free_port()
    entries = [*labs.ok.target_backups(), *(e for name in BROKEN_SETS if name != "config_unsaved"
                                            for e in labs.sets[name] if e["kind"] == "postgres"),
               labs.failing.target_backups()[0], *labs.sqlite.values(),
               {"kind": "sqlite", "location": f"ssh://nobody@127.0.0.1:{dead}/var/backups", "timeout_s": 5},
               {"kind": "sqlite", "location": "/nonexistent/golive/backups"}]
    run = golive_run(f"--profile={_profile(tmp_path)}", f"--target={_target(tmp_path, entries)}", "-m", "backups")
    assert run.rc == 1

    def status(check: str, where: str) -> str:
        return str(_find(run, check, where)["status"])

    ok_pg, ok_files = labs.ok.backups.dump_dir, labs.ok.backups.files_dir  # type: ignore[union-attr]
    for check in ("backups.age.full", "backups.age.incremental", "backups.retention", "backups.integrity",
                  "backups.encryption", "backups.offsite"):
        for where in (f"postgres:{ok_pg}]", f"files:{ok_files}]"):
            assert status(check, where) == "pass", (check, _find(run, check, where))
    # stale: newest full dump 8 days old
    for check in ("backups.age.full", "backups.age.incremental"):
        r = _find(run, check, "sets/stale/")
        assert r["status"] == "fail" and r["measured"].startswith("8.0 d (pg-"), r
    # truncated: decrypts, but pg_restore cannot read every block
    r = _find(run, "backups.integrity", "sets/truncated/")
    assert r["status"] == "fail" and "end of file" in r["measured"] and "pg_restore (full read)" in r["measured"], r
    assert "sha256 matches manifest.json" in json.dumps(r["evidence"][0]["data"]["checks"])
    # empty: a valid encrypted file holding nothing
    r = _find(run, "backups.integrity", "sets/empty/")
    assert r["status"] == "fail" and "0 bytes once decrypted" in r["measured"], r
    assert status("backups.encryption", "sets/empty/") == "pass"
    # plaintext
    r = _find(run, "backups.encryption", "sets/plaintext/")
    assert r["status"] == "fail" and "plaintext (PostgreSQL custom-format dump (PGDMP))" in r["measured"], r
    assert status("backups.integrity", "sets/plaintext/") == "pass"  # readable without decrypt_command
    # no off-site copy of the newest dump (the older ones are there)
    r = _find(run, "backups.offsite", "sets/no_offsite/")
    assert r["status"] == "fail" and r["measured"].startswith("no copy of pg-") and "no file of that name" in r["measured"]
    assert r["evidence"][0]["data"]["offsite_files"] == 2
    # one full dump only
    r = _find(run, "backups.retention", "sets/single_full/")
    assert r["status"] == "fail" and r["measured"].startswith("1 full backup, oldest "), r
    # archiving fails: one result per database
    pitr = run.results("backups.pitr[")
    assert len(pitr) == 2, sorted(pitr)
    good = next(r for rid, r in pitr.items() if f":{labs.ok.port}/" in rid)
    assert good["status"] == "pass" and "segment present in" in good["measured"], good
    bad = next(r for rid, r in pitr.items() if f":{labs.failing.port}/" in rid)
    assert bad["status"] == "fail" and "nothing archived yet" in bad["measured"] and "failing now" in bad["measured"], bad
    assert bad["evidence"][0]["data"]["failed_count"] >= 1
    # SQLite: the compliant set passes, stale_backup and corrupt_backup fail
    good_sqlite = str(labs.root / "sqlite-good")
    for check in ("backups.age.full", "backups.retention", "backups.integrity"):
        assert status(check, good_sqlite) == "pass", _find(run, check, good_sqlite)
    assert status("backups.age.full", str(labs.root / "sqlite-stale")) == "pass"  # 3 days: within 7
    r = _find(run, "backups.age.incremental", str(labs.root / "sqlite-stale"))
    assert r["status"] == "fail" and r["measured"].startswith("3.0 d (app-"), r
    r = _find(run, "backups.integrity", str(labs.root / "sqlite-corrupt"))
    assert r["status"] == "fail" and "differs from the manifest" in r["measured"], r
    assert "SQLite:" in r["measured"] or "integrity_check" in r["measured"], r
    r = _find(run, "backups.encryption", good_sqlite)
    assert r["status"] == "fail" and "plaintext (SQLite database)" in r["measured"]
    # unreachable locations: error, never pass or fail
    for check in ("backups.age.full", "backups.retention", "backups.integrity", "backups.encryption",
                  "backups.offsite"):
        down = _find(run, check, f"127.0.0.1:{dead}")
        assert down["status"] == "error" and "refused" in down["reason"], down
        missing = _find(run, check, "/nonexistent/golive/backups")
        assert missing["status"] == "error" and "does not exist" in missing["reason"], missing
    # the drill is disruptive: skipped without --allow-disruptive
    r = _find(run, "backups.restore", f"postgres:{ok_pg}]")
    assert r["status"] == "skip" and r["reason"] == "disruptive, not allowed"


def test_unsaved_config_missing_key_and_a_too_short_rto_fail(tmp_path, golive_run, labs) -> None:  # type: ignore[no-untyped-def]
    """config: app.conf changed after its newest backup (the pg_config_unsaved set); keys: a
    declared key file that does not exist cannot be verified; restore: a good SQLite backup
    restores, but not within an RTO of 1 ms."""
    unsaved_pg, unsaved_files = labs.sets["config_unsaved"]
    keys = dict(labs.ok.target_backups()[1], contents=["keys"], sources=[str(tmp_path / "gone.key")])
    profile = _profile(tmp_path, rto="0.000001 s", contents="[database, config, keys]")
    target = _target(tmp_path, [dict(unsaved_pg, scratch=None), unsaved_files, keys, labs.sqlite["good"]])
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "backups", "-k", "complete or restores",
                     "--allow-disruptive")
    r = run.one("backups.completeness[config]")
    assert r["status"] == "fail", r
    assert "app.conf changed" in r["measured"] and "after the newest backup files-" in r["measured"], r
    r = run.one("backups.completeness[keys]")
    assert r["status"] == "error" and "gone.key does not exist" in r["reason"], r
    assert run.one("backups.completeness[database]")["status"] == "pass"
    r = _find(run, "backups.restore", str(labs.root / "sqlite-good"))
    assert r["status"] == "fail" and "within 1e-06 s (RTO)" in r["expected"], r
    # the restore itself worked (counts equal) and took longer than the 1 us RTO (a small
    # SQLite restore can take under a millisecond)
    assert r["evidence"][0]["data"]["duration_s"] > 0.000001 and "counts equal" in r["measured"]
    assert "scratch database" in _find(run, "backups.restore", "sets/config_unsaved/backups/postgres")["reason"]


# ----------------------------------------------------------------------------- the restore drill

def test_restore_drill_restores_good_backups_and_fails_damaged_ones_without_leaking_secrets(  # type: ignore[no-untyped-def]
        tmp_path, golive_run, labs) -> None:
    failing_pw, ok_pw = labs.failing.password_file.read_text().strip(), labs.ok.password_file.read_text().strip()
    canary = dict(labs.failing.target_backups()[0], password_file=None,
                  database=labs.failing.dsn.replace("golive_app@", "golive_app:${GOLIVE_TEST_PGPW}@"))
    canary.pop("password_file")
    entries = [labs.ok.target_backups()[0], labs.sets["truncated"][0], labs.sets["empty"][0], canary,
               labs.sqlite["good"], labs.sqlite["corrupt"]]
    run = golive_run(f"--profile={_profile(tmp_path)}", f"--target={_target(tmp_path, entries)}",
                     "-m", "backups and disruptive", "--allow-disruptive", env={"GOLIVE_TEST_PGPW": failing_pw})
    good = _find(run, "backups.restore", f"{labs.ok.backups.dump_dir}]")  # type: ignore[union-attr]
    assert good["status"] == "pass", good
    assert good["evidence"][0]["data"]["compared_with"] == "source at backup time (manifest)"
    assert good["evidence"][0]["data"]["live_source"]["public.tenants"] == 3
    assert _find(run, "backups.restore", labs.failing.backups.dump_dir.as_posix() + "]")["status"] == "pass"  # type: ignore[union-attr]
    for name, why in (("truncated", "pg_restore"), ("empty", "0 bytes once decrypted")):
        r = _find(run, "backups.restore", f"sets/{name}/")
        assert r["status"] == "fail" and "restore failed" in r["measured"] and why in r["measured"], r
    sqlite_ok = _find(run, "backups.restore", str(labs.root / "sqlite-good"))
    assert sqlite_ok["status"] == "pass" and sqlite_ok["evidence"][0]["data"]["tables"]["analyses"] == [50, 50]
    corrupt = _find(run, "backups.restore", str(labs.root / "sqlite-corrupt"))
    assert corrupt["status"] == "fail" and "restore failed" in corrupt["measured"], corrupt
    # nothing left behind: no scratch database on either cluster, no scratch folders
    assert not labs.ok.database_exists(SCRATCH_DB) and not labs.failing.database_exists(SCRATCH_DB)
    assert not (labs.root / "sqlite-good" / "scratch").exists()
    # the canary: neither password (one via ${ENV} in the URI, one via password_file) anywhere
    assert run.run_dir is not None
    written = [run.out] + [p.read_text(errors="replace") for p in run.run_dir.rglob("*") if p.is_file()]
    for secret in (failing_pw, ok_pw):
        assert not [i for i, text in enumerate(written) if secret in text], "a database password leaked"


def test_existing_scratch_database_is_refused_and_left_alone(tmp_path, labs) -> None:  # type: ignore[no-untyped-def]
    from checks.backups.drill import restore_postgres
    from checks.backups.inventory import list_location
    from checks.backups.spec import BackupSpec

    labs.ok.psql_admin(f"CREATE DATABASE {SCRATCH_DB};")
    try:
        spec = BackupSpec(**labs.ok.target_backups()[0])
        inv = list_location(parse_location(spec.location), spec).value
        m = restore_postgres(inv, SCRATCH_DB)
        assert m.error is not None and "already exists" in m.error, m
        assert labs.ok.database_exists(SCRATCH_DB)
    finally:
        labs.ok.psql_admin(f"DROP DATABASE IF EXISTS {SCRATCH_DB};")


_HARNESS = textwrap.dedent("""
    import sys, time, yaml
    from checks.backups.drill import restore_postgres
    from checks.backups.spec import BackupSpec
    from checks.backups.inventory import list_location
    from checks.backups.location import parse_location
    spec = BackupSpec(**yaml.safe_load(sys.argv[1]))
    inv = list_location(parse_location(spec.location), spec).value
    def stage(name):
        print("STAGE", name, flush=True)
        if name == "restoring":
            time.sleep(60)  # the signal arrives here, with the scratch database made
    print(restore_postgres(inv, spec.scratch, on_stage=stage).display, flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_drill_drops_the_scratch_database(labs, sig: signal.Signals) -> None:  # type: ignore[no-untyped-def]
    spec = yaml.safe_dump(labs.ok.target_backups()[0])
    proc = subprocess.Popen([sys.executable, "-c", _HARNESS, spec], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.strip() == "STAGE restoring":
                break
        assert labs.ok.database_exists(SCRATCH_DB), "".join(seen)
        proc.send_signal(sig)
        out = "".join(seen) + proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "STAGE dropping" in out, out
    assert not labs.ok.database_exists(SCRATCH_DB), out
    assert proc.returncode == -sig, (proc.returncode, out)  # Python re-raises an uncaught Ctrl-C
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in out


# ----------------------------------------------------------------------------- probe units (no lab)

_RNG = random.Random(20261123)  # fixed seed: xdist workers must collect identical parameters


def _noise(n: int) -> bytes:
    return bytes(_RNG.getrandbits(8) for _ in range(n))


@pytest.mark.parametrize(("head", "encrypted", "words"), [
    (b"age-encryption.org/v1\n-> X25519 abc\n", True, "age"),
    (b"-----BEGIN PGP MESSAGE-----\n", True, "OpenPGP"),
    (bytes([0x85, 0x01, 0x0C, 0x03]) + _noise(64), True, "OpenPGP"),
    (b"Salted__" + _noise(8), True, "Salted__"),
    (_noise(8192), True, "random-looking"),
    (b"SQLite format 3\x00" + bytes(100), False, "SQLite"),
    (b"PGDMP\x01\x0e\x00", False, "PGDMP"),
    (b"\x1f\x8b\x08\x00" + _noise(4000), False, "gzip"),
    (b"--\n-- PostgreSQL database dump\n--\n", False, "plain SQL dump"),
    (b"\x89HDF\r\n\x1a\n" + bytes(64), False, "HDF5"),
    (b"", False, "empty"),
    (b"\x00\x01" * 4000, False, "structured"),
])
def test_encryption_verdict(head: bytes, encrypted: bool, words: str) -> None:
    got, why, _ = content.encryption_verdict(head)
    assert got is encrypted and words in why, why


def test_truncated_hdf5_and_tar_are_caught(tmp_path: Path) -> None:
    import struct
    import tarfile

    h5 = tmp_path / "features.h5"  # superblock v2: end-of-file address says 4096 bytes
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes([2, 8, 8, 0]) + struct.pack("<QQQQ", 0, 0xFFFFFFFFFFFFFFFF, 4096, 48)
                   + bytes(60))
    with pytest.raises(content.ContentError, match="truncated"):
        content.verify(h5, "files", timeout_s=10)
    tgz = tmp_path / "etc.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        big = tmp_path / "big"
        big.write_bytes(os.urandom(200_000))
        tar.add(big, arcname="big")
    assert content.verify(tgz, "files", timeout_s=10).format == "gzip"  # compressed: unwrap first
    plain, steps = content.unwrap(tgz, tmp_path, None, timeout_s=10)
    assert steps == ["decompressed (gzip)"] and content.verify(plain, "files", timeout_s=10).format == "tar"
    tgz.write_bytes(tgz.read_bytes()[:50_000])
    with pytest.raises(content.ContentError, match="gzip stream is damaged"):
        content.unwrap(tgz, tmp_path, None, timeout_s=10)


def test_locations_parse_paths_uris_and_target_hosts() -> None:
    local = parse_location("/var/backups")
    assert local.is_local and local.endpoint == "local"
    ssh = parse_location("ssh://deploy@10.0.0.31:2222/var/backups/pg", ssh_config="/x")
    assert (ssh.connection, ssh.path, ssh.endpoint) == ("ssh://deploy@10.0.0.31:2222", "/var/backups/pg",
                                                        "ssh://10.0.0.31:2222")
    host = HostConn(name="db-1", connection="ssh://deploy@10.0.0.21", ssh_config="/etc/golive/ssh_config")
    named = parse_location("db-1:/srv/backups", hosts=[host])
    assert named.connection == "ssh://deploy@10.0.0.21" and named.ssh_config == "/etc/golive/ssh_config"
    assert named.endpoint == "ssh://10.0.0.21"
    for bad, why in (("ftp://x/y", "unknown scheme"), ("db-2:/x", "not in hosts"), ("relative/path", "not a path")):
        with pytest.raises(ValueError, match=why):
            parse_location(bad, hosts=[host])
    # every scheme a target host may use is a scheme a backup location may use
    assert set(CONNECTION_SCHEMES) <= SCHEMES


# ----------------------------------------------------------------------------- declared checks, no pytest-bdd

def test_the_drill_skips_file_backups_per_location_and_errors_without_locations(tmp_path: Path) -> None:
    from checks.backups.family import FAMILY, NO_LOCATIONS
    from checks.backups.spec import BackupSpec, BackupsReq
    from golive.checkdef import CheckContext, evaluate

    drill = FAMILY.by_id("backups.restore")
    assert drill is not None and drill.disruptive
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "site.tar").write_bytes(b"not restored")
    spec = [BackupSpec(kind="files", location=str(tmp_path / "files"))]
    [r] = evaluate(drill, CheckContext.for_test(req=BackupsReq(), spec=spec, allow_disruptive=True))
    assert r.id == f"backups.restore[files:{tmp_path / 'files'}]" and r.status.value == "skip"
    assert r.reason == "the restore drill covers databases (postgres, sqlite), not file backups"
    [r] = evaluate(drill, CheckContext.for_test(req=BackupsReq(), spec=[], allow_disruptive=True))
    assert (r.id, r.status.value, r.reason) == ("backups.restore", "error", NO_LOCATIONS)
    # without --allow-disruptive: skipped per location, nothing read
    [r] = evaluate(drill, CheckContext.for_test(req=BackupsReq(), spec=spec))
    assert (r.id, r.status.value, r.reason) == (f"backups.restore[files:{tmp_path / 'files'}]", "skip",
                                                "disruptive, not allowed")


def test_declaring_the_family_imports_no_probe_and_no_testinfra() -> None:
    code = ("import sys; from golive import registry; registry.families(); import checks.backups.family; "
            "print(sorted(m for m in sys.modules if m.startswith(('testinfra', 'checks.backups.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "['checks.backups.family', 'checks.backups.spec']", out.stdout


def test_a_killed_postgres_lab_is_reaped_by_the_next_start(tmp_path: Path) -> None:
    """SIGKILL is the one exit path stop() cannot run on: the next start drops what is left."""
    from lab.postgres import reap_stale_clusters

    script = ("import sys, time; from pathlib import Path; from lab.postgres import start_postgres; "
              "pg = start_postgres(Path(sys.argv[1])); print(pg.cluster, pg.base, pg.offsite_root, flush=True); "
              "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "pg")], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        cluster, base, offsite = proc.stdout.readline().split()
    finally:
        proc.kill()
        proc.wait()
    assert Path(f"/etc/postgresql/15/{cluster}").exists() and Path(base).exists()
    assert cluster in reap_stale_clusters()
    assert not Path(f"/etc/postgresql/15/{cluster}").exists()
    assert not Path(base).exists() and not Path(offsite).exists()
