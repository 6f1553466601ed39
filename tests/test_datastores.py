"""The datastores family against real servers: a PostgreSQL 15 primary with a real streaming
replica (lab/datastores.py), redis-server instances (lab/redis.py) and SQLite files on a
``local://`` host.

Every check PASSES on the compliant setup and FAILS on its broken twin with the measured
value that shows why; wrong password, unreachable server and permission denied are
``error`` with a reason that never carries the password (canary).  One primary+replica pair
serves the whole module: the broken PostgreSQL variants are roles and a database that live
beside the compliant ones (a superuser role, a CREATEROLE role owning another schema, a
database one release behind), or changes undone in the same test (a plaintext session, the
replica stopped, connections held open).  Judgement is golive.checkdef.evaluate -- the same
code the generic binding runs; one end-to-end run goes through ``pytest --profile --target
-m datastores``.
"""
from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from golive import registry
from golive.checkdef import CheckContext, evaluate
from golive.model import CheckResult
from golive.target import load_target

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the PostgreSQL lab needs root"),
    pytest.mark.skipif(shutil.which("pg_createcluster") is None or shutil.which("redis-server") is None,
                       reason="needs postgresql and redis-server (scripts/setup.sh)"),
]

SERVICE_USER = "nobody"


@dataclass
class Lab:
    pg: Any
    redis: dict[str, Any]
    sqlite: dict[str, Path]
    root: Path


def _closed_port() -> int:
    from lab.procs import free_port

    return free_port("127.0.0.1")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from lab.datastores import make_sqlite, start_pg_pair
    from lab.redis import ALL_SLOTS, start_redis

    root = tmp_path_factory.mktemp("datastores")
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(start_pg_pair(root / "pg"))
        redis = {
            "ok": start_redis(),
            "noauth": start_redis(auth=False),
            "wildcard": start_redis(bind="0.0.0.0"),  # still password-protected; golive only uses 127.0.0.1
            "volatile": start_redis(appendonly=False, save=""),
            "cluster": start_redis(cluster_slots=ALL_SLOTS),
            "cluster_half": start_redis(cluster_slots=((0, 8191),)),
        }
        for r in redis.values():
            stack.callback(r.stop)
        # SQLite files live where the service user can reach them (pytest's tmp is root-only)
        base = Path(tempfile.mkdtemp(prefix=f"golive-ds-{os.getpid()}-", dir="/tmp"))
        stack.callback(shutil.rmtree, base, True)
        base.chmod(0o711)
        sqlite = {
            "ok": make_sqlite(base / "ok" / "app.db", owner=SERVICE_USER),
            "world_readable": make_sqlite(base / "wr" / "app.db", owner=SERVICE_USER, mode=0o644),
            "corrupt": make_sqlite(base / "bad" / "app.db", owner=SERVICE_USER, corrupt=True),
            "read_only": make_sqlite(base / "ro" / "app.db", owner=SERVICE_USER, mode=0o440),
            "root_owned": make_sqlite(base / "root" / "app.db", owner="root", mode=0o600),
            "missing": base / "ok" / "nothing-here.db",
        }
        yield Lab(pg, redis, sqlite, root)
    # nothing left behind: both clusters dropped, every folder removed
    left = [p.name for p in Path("/etc/postgresql/15").iterdir() if p.name in (pg.primary, pg.replica)]
    assert not left, f"clusters left behind: {left}"
    assert pg.base is not None and not pg.base.exists()
    assert not any(r.dir.exists() for r in redis.values())
    assert not base.exists()


# ----------------------------------------------------------------------------- helpers


def _target(tmp_path: Path, datastores: dict[str, Any], *, hosts: list[dict[str, Any]] | None = None,
            env: dict[str, str] | None = None) -> Any:
    doc = {"name": "ds-lab", "environment": "lab",
           "hosts": hosts if hosts is not None else [{"name": "app1", "connection": "local://", "roles": ["app"]}],
           "datastores": datastores}
    path = tmp_path / f"target-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_target(str(path), env=env or {})


def _pg_spec(lab: Lab, **over: Any) -> dict[str, Any]:
    from lab.datastores import APP_ROLE, DB_NAME, HEAD_REVISION, OLD_DB, RO_ROLE, TABLES

    spec: dict[str, Any] = {
        "dsn": lab.pg.dsn(RO_ROLE), "password_file": str(lab.pg.password_file(RO_ROLE)), "app_role": APP_ROLE,
        "app_databases": [DB_NAME, OLD_DB], "tables": list(TABLES), "migrations": {"revision": HEAD_REVISION},
        "replicas": [lab.pg.dsn(RO_ROLE, replica=True)],
    }
    spec.update(over)
    return spec


def _redis_spec(r: Any, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"address": r.address}
    if r.auth:
        spec["password_file"] = str(r.password_file)
    spec.update(over)
    return spec


PG_ALL = {"version_min": "12", "reachable_from_app_hosts": True, "schema_tables": True, "migrations_at_head": True,
          "app_role_least_privilege": True, "app_connections_encrypted": True, "replicas_min": 1,
          "connections_below_max": True}
REDIS_ALL = {"auth_required": True, "bind_declared_only": True, "persistence": "aof_and_rdb"}
SQLITE_ALL = {"integrity": True, "writable": True}


def _judge(check: str, target: Any, req: dict[str, Any]) -> list[CheckResult]:
    from checks.datastores.family import DatastoresReq
    from suites.hostset import probe_host

    fam = registry.load("datastores")
    found = fam.by_id(f"datastores.{check}")
    assert found is not None, check
    ctx = CheckContext.for_test(req=DatastoresReq.model_validate(req), spec=target.datastores, target=target,
                                host_runner=probe_host)
    return evaluate(found, ctx)


def _one(check: str, target: Any, req: dict[str, Any]) -> CheckResult:
    results = _judge(check, target, req)
    assert len(results) == 1, [r.id for r in results]
    return results[0]


def _status(r: CheckResult) -> str:
    return str(r.status.value)


# ----------------------------------------------------------------------------- PostgreSQL


PG_CHECKS = ("pg_version", "pg_schema", "pg_migrations", "pg_app_role", "pg_app_ssl", "pg_replication",
             "pg_connections")


def test_postgres_compliant_lab_passes_every_check(lab: Lab, tmp_path: Path) -> None:
    from lab.datastores import HEAD_REVISION

    target = _target(tmp_path, {"postgres": _pg_spec(lab)})
    req = {"postgres": PG_ALL}
    got = {c: _one(c, target, req) for c in PG_CHECKS}
    assert {c: _status(r) for c, r in got.items()} == dict.fromkeys(PG_CHECKS, "pass"), \
        {c: (r.measured, r.reason) for c, r in got.items()}
    assert got["pg_version"].measured.startswith("PostgreSQL 15")
    assert got["pg_schema"].measured == "3 of 3 tables present"
    assert got["pg_migrations"].measured == HEAD_REVISION
    assert got["pg_app_role"].measured.startswith("golive_app: no elevated attributes")
    assert got["pg_app_ssl"].measured.startswith("1 of 1 TCP sessions of golive_app encrypted (TLSv1.")
    assert got["pg_replication"].measured.startswith("1 streaming replica(s)") and "in recovery" in \
        got["pg_replication"].measured
    assert "of max_connections 20 in use" in got["pg_connections"].measured
    reach = _judge("pg_reachable_from_app_hosts", target, req)
    assert [(r.id, _status(r)) for r in reach] == [("datastores.pg_reachable_from_app_hosts[app1]", "pass")]
    assert "accepting connections" in reach[0].measured


def test_version_below_the_minimum_fails(lab: Lab, tmp_path: Path) -> None:
    r = _one("pg_version", _target(tmp_path, {"postgres": _pg_spec(lab)}), {"postgres": {"version_min": "99"}})
    assert _status(r) == "fail" and r.measured.startswith("PostgreSQL 15") and r.expected == "PostgreSQL >= 99"


def test_database_unreachable_from_an_app_host_fails(lab: Lab, tmp_path: Path) -> None:
    target = _target(tmp_path, {"postgres": _pg_spec(lab, app_address=f"127.0.0.1:{_closed_port()}")},
                     hosts=[{"name": "app1", "connection": "local://", "roles": ["app"]},
                            {"name": "app2", "connection": "local://", "roles": ["app"]}])
    results = _judge("pg_reachable_from_app_hosts", target, {"postgres": {"reachable_from_app_hosts": True}})
    assert [(r.id, _status(r)) for r in results] == [
        ("datastores.pg_reachable_from_app_hosts[app1]", "fail"), ("datastores.pg_reachable_from_app_hosts[app2]",
                                                                    "fail")]
    assert all("NOT reachable" in r.measured and "no response" in r.measured for r in results)


def test_missing_table_and_migrations_behind_fail(lab: Lab, tmp_path: Path) -> None:
    from lab.datastores import OLD_DB, OLD_REVISION, RO_ROLE

    target = _target(tmp_path, {"postgres": _pg_spec(lab, dsn=lab.pg.dsn(RO_ROLE, OLD_DB))})
    schema = _one("pg_schema", target, {"postgres": {"schema_tables": True}})
    assert _status(schema) == "fail"
    assert schema.measured == "2 of 3 tables present; missing: analyses; empty: media"
    mig = _one("pg_migrations", target, {"postgres": {"migrations_at_head": True}})
    assert _status(mig) == "fail" and mig.measured == OLD_REVISION
    assert "expected 3f2a9c1d7b55" in mig.remediation


def test_superuser_or_overreaching_app_role_fails(lab: Lab, tmp_path: Path) -> None:
    from lab.datastores import SUPER_ROLE, WIDE_ROLE

    req = {"postgres": {"app_role_least_privilege": True}}
    sup = _one("pg_app_role", _target(tmp_path, {"postgres": _pg_spec(lab, app_role=SUPER_ROLE)}), req)
    assert _status(sup) == "fail" and sup.measured.startswith(f"{SUPER_ROLE}: SUPERUSER")
    wide = _one("pg_app_role", _target(tmp_path, {"postgres": _pg_spec(lab, app_role=WIDE_ROLE)}), req)
    assert _status(wide) == "fail"
    assert wide.measured == f"{WIDE_ROLE}: CREATEROLE, CREATEDB; owns schemas reporting; beyond its own: schema reporting"


def test_plaintext_app_session_fails(lab: Lab, tmp_path: Path) -> None:
    target = _target(tmp_path, {"postgres": _pg_spec(lab)})
    req = {"postgres": {"app_connections_encrypted": True}}
    session = lab.pg.add_app_session(ssl=False)
    try:
        r = _one("pg_app_ssl", target, req)
    finally:
        lab.pg.stop_session(session)
    assert _status(r) == "fail"
    assert r.measured.startswith("1 of 2 TCP sessions of golive_app encrypted") and "plaintext from 127.0.0.1" in \
        r.measured
    assert _status(_one("pg_app_ssl", target, req)) == "pass"  # restored


def test_no_replica_or_a_replica_that_is_no_standby_fails(lab: Lab, tmp_path: Path) -> None:
    from lab.datastores import RO_ROLE

    req = {"postgres": {"replicas_min": 1}}
    not_standby = _one("pg_replication", _target(tmp_path, {"postgres": _pg_spec(lab, replicas=[lab.pg.dsn(RO_ROLE)])}),
                       req)
    assert _status(not_standby) == "fail" and "NOT in recovery (not a standby)" in not_standby.measured
    two = _one("pg_replication", _target(tmp_path, {"postgres": _pg_spec(lab)}), {"postgres": {"replicas_min": 2}})
    assert _status(two) == "fail" and two.measured.startswith("1 streaming replica(s)")
    lab.pg.stop_replica()
    try:
        gone = _one("pg_replication", _target(tmp_path, {"postgres": _pg_spec(lab, replicas=[])}), req)
    finally:
        lab.pg.start_replica()
    assert _status(gone) == "fail" and gone.measured == "0 streaming replica(s)"


def test_connections_at_the_limit_fail(lab: Lab, tmp_path: Path) -> None:
    import psycopg

    from lab.datastores import APP_ROLE, DB_NAME, MAX_CONNECTIONS

    target = _target(tmp_path, {"postgres": _pg_spec(lab)})
    req = {"postgres": {"connections_below_max": True}}
    held: list[Any] = []
    try:
        # max 20 - 3 reserved = 17 usable: the app session + 15 more + golive's own = 17, no headroom left
        for _ in range(15):
            held.append(psycopg.connect(host="127.0.0.1", port=lab.pg.port, dbname=DB_NAME, user=APP_ROLE,
                                        password=lab.pg.password(APP_ROLE), connect_timeout=5))
        r = _one("pg_connections", target, req)
    finally:
        for c in held:
            c.close()
    assert _status(r) == "fail", r.measured
    assert r.measured == f"17 of max_connections {MAX_CONNECTIONS} in use (3 reserved for superusers)"
    ok = _one("pg_connections", target, {"postgres": {"connections_below_max": True, "max_used_ratio": 0.5}})
    assert _status(ok) == "pass"


# ----------------------------------------------------------------------------- could not verify: error, no secret


def test_wrong_password_unreachable_and_permission_denied_are_errors_without_the_secret(lab: Lab,
                                                                                        tmp_path: Path) -> None:
    from lab.datastores import NOBODY_ROLE, RO_ROLE

    canary = f"canary-{secrets.token_hex(8)}"
    port = lab.pg.port
    wrong = _target(tmp_path, {"postgres": _pg_spec(lab, dsn=f"postgresql://{RO_ROLE}:${{PGPW}}@127.0.0.1:{port}/golive_app",
                                                    password_file=None),
                               "redis": {"address": lab.redis["ok"].address, "password": "${REDISPW}"}},
                    env={"PGPW": canary, "REDISPW": canary})
    down = _target(tmp_path, {"postgres": _pg_spec(lab, dsn=f"postgresql://{RO_ROLE}@127.0.0.1:{_closed_port()}/x"),
                              "redis": {"address": f"127.0.0.1:{_closed_port()}"}})
    denied = _target(tmp_path, {"postgres": _pg_spec(lab, dsn=lab.pg.dsn(NOBODY_ROLE),
                                                     password_file=str(lab.pg.password_file(NOBODY_ROLE)))})
    pg_req = {"postgres": {"schema_tables": True}, "redis": {}}
    results = {
        "wrong_pg": _one("pg_version", wrong, pg_req), "wrong_redis": _one("redis_reachable", wrong, pg_req),
        "down_pg": _one("pg_version", down, pg_req), "down_redis": _one("redis_reachable", down, pg_req),
        "denied": _one("pg_schema", denied, pg_req),
    }
    assert {k: _status(r) for k, r in results.items()} == dict.fromkeys(results, "error")
    assert "password authentication failed" in results["wrong_pg"].reason
    assert "authentication failed" in results["wrong_redis"].reason
    assert "Connection refused" in results["down_pg"].reason and "Connection refused" in results["down_redis"].reason
    assert "permission denied for table tenants" in results["denied"].reason
    # without pg_monitor, golive's role cannot see other sessions' TLS state or the senders' state: error, saying so
    blind = {"postgres": {"app_connections_encrypted": True, "replicas_min": 1, "connections_below_max": True}}
    conns_blind = _one("pg_connections", denied, blind)
    assert _status(conns_blind) == "error" and "pg_monitor" in conns_blind.reason
    ssl_blind = _one("pg_app_ssl", denied, blind)
    repl_blind = _one("pg_replication", _target(tmp_path, {"postgres": _pg_spec(
        lab, dsn=lab.pg.dsn(NOBODY_ROLE), password_file=str(lab.pg.password_file(NOBODY_ROLE)), replicas=[])}), blind)
    assert _status(ssl_blind) == "error" and "pg_monitor" in ssl_blind.reason
    assert _status(repl_blind) == "error" and "pg_monitor" in repl_blind.reason
    dumped = json.dumps([r.to_dict() for r in results.values()])
    assert canary not in dumped
    for role in (RO_ROLE, NOBODY_ROLE):
        assert lab.pg.password(role) not in dumped


def test_missing_target_details_are_errors_not_passes(lab: Lab, tmp_path: Path) -> None:
    target = _target(tmp_path, {"postgres": _pg_spec(lab, tables=[], migrations=None)})
    req = {"postgres": {"schema_tables": True, "migrations_at_head": True}, "sqlite": {}}
    assert _status(_one("pg_schema", target, req)) == "error"
    assert "datastores.postgres.migrations.revision" in _one("pg_migrations", target, req).reason
    assert "datastores.sqlite" in _one("sqlite_file", target, req).reason


# ----------------------------------------------------------------------------- Redis


def test_stale_lab_folders_of_a_dead_run_are_reaped() -> None:
    import subprocess

    from lab.redis import reap_stale_folders

    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    left = Path(tempfile.mkdtemp(prefix=f"golive-redis-{dead}-", dir="/tmp"))
    (left / "redis.conf").write_text("requirepass x\n")
    mine = Path(tempfile.mkdtemp(prefix=f"golive-redis-{os.getpid()}-", dir="/tmp"))
    try:
        assert left in reap_stale_folders()
        assert not left.exists() and mine.exists()  # a live owner's folder is never touched
    finally:
        shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(mine, ignore_errors=True)


def test_redis_compliant_passes(lab: Lab, tmp_path: Path) -> None:
    target = _target(tmp_path, {"redis": _redis_spec(lab.redis["ok"])})
    req = {"redis": REDIS_ALL}
    got = {c: _one(c, target, req) for c in ("redis_reachable", "redis_auth", "redis_bind", "redis_persistence")}
    assert {c: _status(r) for c, r in got.items()} == dict.fromkeys(got, "pass"), {c: r.measured for c, r in got.items()}
    assert got["redis_reachable"].measured.startswith("PONG; Redis 7")
    assert got["redis_auth"].measured.startswith("refused without credentials: NOAUTH")
    assert got["redis_bind"].measured == "bind 127.0.0.1"
    assert got["redis_persistence"].measured == "AOF on, RDB save 3600 1"
    assert _status(_one("redis_cluster", target, {"redis": {"cluster": "standalone"}})) == "pass"


def test_redis_broken_variants_fail(lab: Lab, tmp_path: Path) -> None:
    noauth = _one("redis_auth", _target(tmp_path, {"redis": _redis_spec(lab.redis["noauth"])}), {"redis": REDIS_ALL})
    assert _status(noauth) == "fail" and noauth.measured == "an unauthenticated PING was answered PONG"
    wild = _one("redis_bind", _target(tmp_path, {"redis": _redis_spec(lab.redis["wildcard"])}), {"redis": REDIS_ALL})
    assert _status(wild) == "fail" and wild.measured == "bind 0.0.0.0 -- listens on every interface"
    volatile = _target(tmp_path, {"redis": _redis_spec(lab.redis["volatile"])})
    for want in ("aof", "rdb", "aof_or_rdb"):
        r = _one("redis_persistence", volatile, {"redis": {"persistence": want}})
        assert _status(r) == "fail" and r.measured == "AOF off, RDB off"
    ok = _target(tmp_path, {"redis": _redis_spec(lab.redis["ok"])})
    not_cluster = _one("redis_cluster", ok, {"redis": {"cluster": "required"}})
    assert _status(not_cluster) == "fail" and not_cluster.measured == "standalone (cluster_enabled:0)"
    # the declared addresses are the target's: 127.0.0.1 is not what this target declares
    elsewhere = _one("redis_bind", _target(tmp_path, {"redis": _redis_spec(lab.redis["ok"], listen=["10.199.0.5"])}),
                     {"redis": REDIS_ALL})
    assert _status(elsewhere) == "fail" and elsewhere.measured == "bind 127.0.0.1"
    # the host's listeners (ss -ltnH over the host's connection) instead of CONFIG GET bind
    on_host = {k: _one("redis_bind", _target(tmp_path, {"redis": _redis_spec(lab.redis[k], host="app1")}),
                       {"redis": REDIS_ALL}) for k in ("ok", "wildcard")}
    assert _status(on_host["ok"]) == "pass" and on_host["ok"].measured == f"127.0.0.1:{lab.redis['ok'].port}"
    assert _status(on_host["wildcard"]) == "fail"
    assert on_host["wildcard"].measured == f"0.0.0.0:{lab.redis['wildcard'].port}"


def test_redis_cluster_needs_every_slot(lab: Lab, tmp_path: Path) -> None:
    req = {"redis": {"cluster": "required"}}
    full = _one("redis_cluster", _target(tmp_path, {"redis": _redis_spec(lab.redis["cluster"])}), req)
    assert _status(full) == "pass" and "cluster_state:ok, 16384 of 16384 slots ok" in full.measured
    half = _one("redis_cluster", _target(tmp_path, {"redis": _redis_spec(lab.redis["cluster_half"])}), req)
    assert _status(half) == "fail" and "cluster_state:fail, 8192 of 16384 slots ok" in half.measured
    standalone = _one("redis_cluster", _target(tmp_path, {"redis": _redis_spec(lab.redis["cluster"])}),
                      {"redis": {"cluster": "standalone"}})
    assert _status(standalone) == "fail" and standalone.measured.startswith("cluster_enabled:1")


def test_optional_redis_absent_is_skipped(lab: Lab, tmp_path: Path) -> None:
    target = _target(tmp_path, {"postgres": _pg_spec(lab)})
    r = _one("redis_cluster", target, {"redis": {"required": False, "cluster": "standalone"}})
    assert _status(r) == "skip" and "optional" in r.reason
    required = _one("redis_cluster", target, {"redis": {"cluster": "standalone"}})
    assert _status(required) == "error" and "datastores.redis" in required.reason


# ----------------------------------------------------------------------------- SQLite (over the host's connection)


def _sqlite(tmp_path: Path, lab: Lab, which: str) -> Any:
    return _target(tmp_path, {"sqlite": {"path": str(lab.sqlite[which]), "user": SERVICE_USER}})


def test_sqlite_compliant_passes(lab: Lab, tmp_path: Path) -> None:
    target = _sqlite(tmp_path, lab, "ok")
    got = {c: _one(c, target, {"sqlite": SQLITE_ALL}) for c in ("sqlite_file", "sqlite_integrity", "sqlite_writable")}
    assert {c: _status(r) for c, r in got.items()} == dict.fromkeys(got, "pass"), {c: r.measured for c, r in got.items()}
    group = pwd.getpwnam(SERVICE_USER).pw_gid
    assert f"{SERVICE_USER}:" in got["sqlite_file"].measured and "mode 0640" in got["sqlite_file"].measured, group
    assert got["sqlite_integrity"].measured == "integrity_check: ok"
    assert got["sqlite_file"].evidence[0].subject == f"app1:{lab.sqlite['ok']}"


def test_sqlite_broken_variants_fail(lab: Lab, tmp_path: Path) -> None:
    req = {"sqlite": SQLITE_ALL}
    wr = _one("sqlite_file", _sqlite(tmp_path, lab, "world_readable"), req)
    assert _status(wr) == "fail" and "mode 0644" in wr.measured and "chmod 0640" in wr.remediation
    owner = _one("sqlite_file", _sqlite(tmp_path, lab, "root_owned"), req)
    assert _status(owner) == "fail" and "root:root, mode 0600" in owner.measured
    bad = _one("sqlite_integrity", _sqlite(tmp_path, lab, "corrupt"), req)
    assert _status(bad) == "fail" and "malformed" in bad.measured
    ro = _one("sqlite_writable", _sqlite(tmp_path, lab, "read_only"), req)
    assert _status(ro) == "fail" and ro.measured.startswith(f"{SERVICE_USER} can NOT write")
    missing = _sqlite(tmp_path, lab, "missing")
    gone = _one("sqlite_file", missing, req)
    assert _status(gone) == "fail" and gone.measured.endswith("does not exist")
    assert _status(_one("sqlite_integrity", missing, req)) == "error"  # nothing to open: could not verify


def test_unreachable_sqlite_host_is_an_error(lab: Lab, tmp_path: Path) -> None:
    target = _target(tmp_path, {"sqlite": {"path": str(lab.sqlite["ok"]), "user": SERVICE_USER}},
                     hosts=[{"name": "db1", "connection": f"ssh://golive@127.0.0.1:{_closed_port()}", "timeout_s": 3}])
    r = _one("sqlite_file", target, {"sqlite": {}})
    assert _status(r) == "error" and "unreachable" in r.reason


def test_checks_run_over_an_ssh_app_host(lab: Lab, tmp_path: Path) -> None:
    """The app host's vantage is its own connection: here a real sshd on loopback, logged in
    as an unprivileged user -- who can reach the database, but cannot act as the service user."""
    from lab.sshd import start_sshd

    with start_sshd(tmp_path / "sshd") as server:
        host = {"name": "app-ssh", "connection": server.uri, "roles": ["app"], "ssh_config": str(server.ssh_config),
                "ssh_identity_file": str(server.identity_file)}
        target = _target(tmp_path, {"postgres": _pg_spec(lab),
                                    "sqlite": {"path": str(lab.sqlite["ok"]), "user": SERVICE_USER}}, hosts=[host])
        reach = _judge("pg_reachable_from_app_hosts", target, {"postgres": {"reachable_from_app_hosts": True}})
        writable = _one("sqlite_writable", target, {"sqlite": SQLITE_ALL})
    assert [(r.id, _status(r)) for r in reach] == [("datastores.pg_reachable_from_app_hosts[app-ssh]", "pass")]
    assert reach[0].evidence[0].tool.endswith("(ssh backend)")
    assert _status(writable) == "error" and f"cannot act as {SERVICE_USER}" in writable.reason


# ----------------------------------------------------------------------------- one network database


def test_several_app_hosts_need_one_network_database(lab: Lab, tmp_path: Path) -> None:
    two = [{"name": "app1", "connection": "local://", "roles": ["app"]},
           {"name": "app2", "connection": "local://", "roles": ["app"]}]
    req = {"single_network_db": True}
    with_sqlite = _target(tmp_path, {"sqlite": {"path": str(lab.sqlite["ok"]), "user": SERVICE_USER, "host": "app1"}},
                          hosts=two)
    r = _one("single_network_db", with_sqlite, req)
    assert _status(r) == "fail" and r.measured.startswith("2 app host(s) (app1, app2); no network database declared")
    shared = _one("single_network_db", _target(tmp_path, {"postgres": _pg_spec(lab)}, hosts=two), req)
    assert _status(shared) == "pass" and "network database postgresql://golive_ro@127.0.0.1" in shared.measured
    single = _one("single_network_db", _sqlite(tmp_path, lab, "ok"), req)
    assert _status(single) == "pass"


# ----------------------------------------------------------------------------- end to end (generic binding)


def test_end_to_end_compliant_lab_is_go_and_reports_hold_no_password(lab: Lab, tmp_path: Path, golive_run: Any) -> None:
    from lab.datastores import RO_ROLE

    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "datastores-all", "description": "every datastores check (self-test)",
        "requirements": {"datastores": {"ref": ["AW-EN-DB-01", "AW-DB-05", "AW-TLS-06", "DS-AUTH-03"],
                                        "postgres": PG_ALL, "redis": {**REDIS_ALL, "cluster": "standalone"},
                                        "sqlite": SQLITE_ALL, "single_network_db": True}}}))
    pw = lab.pg.password(RO_ROLE)
    spec = _pg_spec(lab, dsn=f"postgresql://{RO_ROLE}:${{GOLIVE_TEST_PGPW}}@127.0.0.1:{lab.pg.port}/golive_app",
                    password_file=None)
    target = tmp_path / "target.yaml"
    target.write_text(yaml.safe_dump({
        "name": "ds-e2e", "environment": "lab",
        "hosts": [{"name": "app1", "connection": "local://", "roles": ["app"]}],
        "datastores": {"postgres": spec, "redis": _redis_spec(lab.redis["ok"]),
                       "sqlite": {"path": str(lab.sqlite["ok"]), "user": SERVICE_USER}}}, sort_keys=False))
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "datastores",
                     env={"GOLIVE_TEST_PGPW": pw}, timeout=300)
    results = _without_feature_store(run.results("datastores."))
    assert len(results) == 17, (sorted(results), run.out[-3000:])
    assert {k: v["status"] for k, v in results.items()} == dict.fromkeys(results, "pass"), \
        {k: (v["measured"], v["reason"]) for k, v in results.items() if v["status"] != "pass"}
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # -m: a part of the profile, never GO, run.report["verdict"]
    assert run.run_dir is not None
    secrets_used = [pw, lab.redis["ok"].password]
    for f in run.run_dir.rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert not any(s in text for s in secrets_used), f"a password leaked into {f}"
    assert not any(s in run.out for s in secrets_used)


# ----------------------------------------------------------------------------- the embedded lab (--target lab-datastores)

ALL_ON = {"ref": ["AW-EN-DB-01", "AW-EN-HA-04", "DS-AUTH-03"], "postgres": PG_ALL,
          "redis": {**REDIS_ALL, "cluster": "required"}, "sqlite": SQLITE_ALL, "single_network_db": True}


def test_embedded_lab_is_go_for_alwrity_enterprise(golive_run: Any) -> None:
    run = golive_run("--profile", "alwrity-enterprise", "--target", "lab-datastores", "-m", "datastores",
                     timeout=600)
    results = run.results("datastores.")
    ran = {k: v["status"] for k, v in results.items() if v["status"] != "skip"}
    assert ran == dict.fromkeys(ran, "pass"), \
        {k: (v["measured"], v["reason"]) for k, v in results.items() if v["status"] not in ("pass", "skip")}
    assert {"datastores.pg_replication", "datastores.pg_app_ssl", "datastores.redis_cluster",
            "datastores.pg_connections", "datastores.pg_migrations"} <= set(ran), sorted(ran)
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # -m: a part of the profile, never GO, run.report["verdict"]


def _without_feature_store(results: dict[str, Any]) -> dict[str, Any]:
    """The STRV feature-store checks skip on these targets (they name no features.h5: the
    feature store's own self-test is tests/test_feature_store.py); the rest is judged."""
    skipped = {k: v for k, v in results.items() if k.startswith("datastores.feature_store")}
    assert all(v["status"] == "skip" for v in skipped.values()), skipped
    return {k: v for k, v in results.items() if k not in skipped}


@pytest.mark.parametrize(("variant", "check", "measured"), [
    ("ds_missing_table", "datastores.pg_schema", "2 of 3 tables present; missing: analyses"),
    ("ds_no_replica", "datastores.pg_replication", "0 streaming replica(s)"),
])
def test_embedded_lab_variant_fails_exactly_its_check(variant: str, check: str, measured: str, tmp_path: Path,
                                                      golive_run: Any) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"name": "datastores-all", "description": "every datastores check",
                                       "requirements": {"datastores": ALL_ON}}))
    target = tmp_path / "target.yaml"
    target.write_text(yaml.safe_dump({"name": f"lab-{variant}", "environment": "lab",
                                      "lab": {"variant": variant, "cost_ms": 50}}))
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "datastores", timeout=600)
    results = _without_feature_store(run.results("datastores."))
    failed = {k: v["measured"] for k, v in results.items() if v["status"] != "pass"}
    assert list(failed) == [check], ({k: (v["status"], v["measured"], v["reason"]) for k, v in results.items()
                                      if v["status"] != "pass"}, run.out[-2000:])
    assert results[check]["status"] == "fail" and results[check]["measured"] == measured
    assert run.report["verdict"]["decision"] == "NO-GO"
