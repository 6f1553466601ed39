"""The datastores family, declared: PostgreSQL, Redis, SQLite and feature store files
(HDF5, STRV's ``features.h5``) as deployed.

Reads ``requirements.datastores`` (which checks the tier asks for, with the seeds'
thresholds) and the target's ``datastores`` (where the stores are, golive's read-only
credentials, what the application expects: tables, migration revision, app role, app
hosts, service user).  See docs/datastores.md.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family, NotApplicable
from golive.model import Evidence, Measurement, Severity

# ----------------------------------------------------------------------------- profile: requirements.datastores


class PostgresReq(Strict):
    """What the tier requires of PostgreSQL.  Every check is off unless set: a profile
    turns on only what its seeds state."""

    version_min: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?$",
                                    description="lowest PostgreSQL major(.minor), e.g. '12' (DS-DI-DB-02)")
    reachable_from_app_hosts: bool = Field(default=False, description="pg_isready/TCP from each app host (OZ-DB-01)")
    schema_tables: bool = Field(default=False, description="the target's expected tables exist and hold rows")
    migrations_at_head: bool = Field(default=False, description="migrations table holds the release's revision")
    app_role_least_privilege: bool = Field(default=False, description=(
        "app role: no SUPERUSER/CREATEROLE/CREATEDB/REPLICATION/BYPASSRLS, owns no schema or database "
        "beyond the target's"))
    app_connections_encrypted: bool = Field(default=False, description="pg_stat_ssl.ssl for the app role's sessions")
    replicas_min: int | None = Field(default=None, ge=1, description="streaming replicas the primary must have")
    connections_below_max: bool = Field(default=False, description=(
        "client connections < max_connections - superuser_reserved_connections"))
    max_used_ratio: float | None = Field(default=None, gt=0, le=1, description=(
        "owner threshold: connections in use / max_connections at most this (no seed states one)"))


class RedisReq(Strict):
    """What the tier requires of Redis (every check but reachability is off unless set)."""

    required: bool = Field(default=True, description=(
        "false: the checks run only when the target declares Redis (e.g. OZ-HL-DB-03 'C[Redis present]')"))
    auth_required: bool = Field(default=False, description="an unauthenticated PING is refused (NOAUTH)")
    bind_declared_only: bool = Field(default=False, description="listens only on the target's declared addresses")
    persistence: Literal["aof", "rdb", "aof_or_rdb", "aof_and_rdb"] | None = None
    cluster: Literal["required", "standalone"] | None = Field(default=None, description=(
        "required: cluster_enabled:1 and all 16384 slots ok (AW-EN-HA-04); standalone: cluster_enabled:0 "
        "(OZ-HL-DB-03)"))


class SqliteReq(Strict):
    """What the tier requires of an SQLite database file."""

    mode_max: str | None = Field(default="0640", pattern=r"^0?[0-7]{3}$", description=(
        "no permission bit beyond these (DS-AUTH-03: 0640); null: not checked"))
    owner_is_service_user: bool = Field(default=True, description="owned by the target's service user (DS-AUTH-03)")
    integrity: bool = False
    writable: bool = False


class FeatureStoreReq(Strict):
    """What the tier requires of a feature store file (STRV's ``features.h5``)."""

    dimension: int = Field(ge=1, le=1_000_000, description=(
        "the vectors' dimension the application is configured with (ST-DB-01: 2048 = VECTOR_DIMENSION)"))
    sample: int = Field(default=20, ge=1, le=10_000, description="stored image paths tested for existence (ST-DB-02)")
    mode_max: str | None = Field(default="0640", pattern=r"^0?[0-7]{3}$", description=(
        "no permission bit beyond these (ST-AUTH-04: not world-readable/writable); null: not checked"))
    owner_is_service_user: bool = Field(default=True, description="owned by the target's service user (ST-AUTH-04)")


class DatastoresReq(Block):
    """``requirements.datastores``: one sub-block per kind of store the tier uses."""

    postgres: PostgresReq | None = None
    redis: RedisReq | None = None
    sqlite: SqliteReq | None = None
    feature_store: FeatureStoreReq | None = None
    single_network_db: bool = Field(default=False, description=(
        "more than one app host => one network database, no SQLite (DS-DI-DB-02)"))


# ----------------------------------------------------------------------------- target: datastores


class MigrationsSpec(Strict):
    revision: str = Field(description="the release's migration head, e.g. Alembic's revision id")
    table: str = "alembic_version"
    column: str = "version_num"


class PostgresSpec(Strict):
    """Where PostgreSQL is and what the application expects of it."""

    dsn: str = Field(description="postgresql://ROLE@host:5432/db -- golive's read-only role; password as "
                                 "${ENV} in the URI or password_file")
    password_file: str | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    app_role: str | None = Field(default=None, description="the application's role (default: the DSN's role)")
    app_schemas: list[str] = Field(default_factory=lambda: ["public"],
                                   description="schemas the app role may own")
    app_databases: list[str] | None = Field(default=None, description=(
        "databases the app role may own (default: the DSN's database)"))
    tables: list[str] = Field(default_factory=list, description="tables the application needs, 'name' or "
                                                                 "'schema.name'")
    migrations: MigrationsSpec | None = None
    replicas: list[str] = Field(default_factory=list, description=(
        "replica URIs (postgresql://host:port/db; the DSN's role and password unless given)"))
    app_hosts: list[str] | None = Field(default=None, description=(
        "target hosts that run the application (default: hosts with the role 'app')"))
    app_address: str | None = Field(default=None, description=(
        "host:port as the app hosts reach the database (default: the DSN's)"))
    timeout_s: float = Field(default=10, gt=0, le=120)

    @field_validator("dsn", "replicas")
    @classmethod
    def _uri(cls, v: Any) -> Any:
        for uri in ([v] if isinstance(v, str) else v):
            if not re.match(r"^postgres(ql)?://", uri):
                raise ValueError(f"'{uri.split('@')[-1]}' is not a postgresql:// URI")
        return v

    @field_validator("app_address")
    @classmethod
    def _hostport(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r".+:\d{1,5}", v):
            raise ValueError(f"'{v}' is not host:port")
        return v


class RedisSpec(Strict):
    address: str = Field(description="host:port golive connects to")
    username: str | None = None
    password: str | None = Field(default=None, description="${ENV} only (or password_file)")
    password_file: str | None = None
    tls: bool = False
    listen: list[str] | None = Field(default=None, description=(
        "the addresses Redis is declared to listen on (default: the address's host)"))
    host: str | None = Field(default=None, description=(
        "target host Redis runs on: its listening sockets (ss -ltnH) are read there instead of CONFIG GET bind"))
    timeout_s: float = Field(default=5, gt=0, le=60)

    @field_validator("address")
    @classmethod
    def _hostport(cls, v: str) -> str:
        if not re.fullmatch(r".+:\d{1,5}", v):
            raise ValueError(f"'{v}' is not host:port (e.g. 127.0.0.1:6379)")
        return v


class SqliteSpec(Strict):
    path: str = Field(description="the database file on its host")
    user: str = Field(description="the service user that runs the application")
    host: str | None = Field(default=None, description=(
        "target host holding the file (default: the only host, else the only 'app' host)"))


class FeatureStoreSpec(Strict):
    """A feature store file: HDF5 with a 2-D dataset of vectors and a 1-D dataset of image paths."""

    path: str = Field(description="the file on its host, e.g. /opt/similarity-search/features.h5")
    user: str = Field(description="the account (name or uid) the application reads it as")
    host: str | None = Field(default=None, description=(
        "target host holding the file (default: the only host, else the only 'app' host)"))
    features: str = Field(default="features", description=(
        "the vectors' dataset (default 'features'; else the first 2-D numeric dataset)"))
    paths: str = Field(default="image_paths", description=(
        "the image paths' dataset (default 'image_paths'; else the first 1-D string dataset)"))
    image_root: str | None = Field(default=None, description=(
        "folder on the host that relative image paths resolve against (default: the file's folder)"))
    python: str = Field(default="python3", description="an interpreter with h5py on the host")
    timeout_s: float = Field(default=30, gt=0, le=600, description=(
        "per command on the host (at least the host's own timeout_s)"))


class DatastoresSpec(Strict):
    """``datastores:`` in a target."""

    postgres: PostgresSpec | None = None
    redis: RedisSpec | None = None
    sqlite: SqliteSpec | None = None
    feature_store: FeatureStoreSpec | None = None

    @model_validator(mode="after")
    def _declares_a_store(self) -> DatastoresSpec:
        if self.postgres is None and self.redis is None and self.sqlite is None and self.feature_store is None:
            raise ValueError("datastores: declare at least one of postgres, redis, sqlite, feature_store")
        return self


# ----------------------------------------------------------------------------- bridges: target -> probes


def _no_spec(ctx: CheckContext, what: str, fix: str) -> Measurement:
    return Measurement.failed(f"the target declares no {what}: {fix}",
                              Evidence(probe="datastores.target", subject=getattr(ctx.target, "name", "target"),
                                       method="target file"))


def _needs(kind: str, flag: str | None = None) -> Callable[[CheckContext], str | None]:
    """``applies``: the profile's ``requirements.datastores.<kind>`` is present (and the
    flag set); an optional store (``redis.required: false``) the target lacks is skipped."""

    def applies(ctx: CheckContext) -> str | None:
        sub = getattr(ctx.req, kind)
        if sub is None:
            return f"profile '{ctx.profile_name}' requires nothing of {kind} (no requirements.datastores.{kind})"
        if flag is not None and not getattr(sub, flag):
            return f"profile '{ctx.profile_name}' does not require this (datastores.{kind}.{flag})"
        if kind == "redis" and not sub.required and getattr(ctx.spec, "redis", None) is None:
            return "Redis is optional for this tier and the target declares none"
        return None

    return applies


def _pg(ctx: CheckContext) -> Any:
    """(the target's PostgresSpec, a PgConn for golive's role); :class:`_Unverifiable` (an
    ``error`` result saying what to add) when the target has no usable PostgreSQL entry."""
    from checks.datastores import postgres

    spec = getattr(ctx.spec, "postgres", None)
    if spec is None:
        raise _Unverifiable(_no_spec(ctx, "PostgreSQL (datastores.postgres.dsn)",
                                     "add datastores.postgres with the DSN of golive's read-only role"))
    try:
        conn = postgres.parse_dsn(spec.dsn, spec.password_file, sslmode=spec.sslmode, timeout_s=spec.timeout_s)
    except ValueError as exc:
        raise _Unverifiable(_no_spec(ctx, "usable PostgreSQL DSN", str(exc))) from None
    return spec, conn


class _Unverifiable(Exception):
    def __init__(self, m: Measurement) -> None:
        super().__init__(m.error)
        self.measurement = m


def _guard(fn: Callable[[CheckContext], Any]) -> Callable[[CheckContext], Any]:
    """A measure function whose missing target details become an ``error`` result."""

    def measure(ctx: CheckContext) -> Any:
        try:
            return fn(ctx)
        except _Unverifiable as exc:
            return exc.measurement

    measure.__doc__ = fn.__doc__
    return measure


def _app_hosts(ctx: CheckContext) -> list[str]:
    spec = getattr(ctx.spec, "postgres", None)
    if spec is not None and spec.app_hosts is not None:
        return list(spec.app_hosts)
    return [h.name for h in ctx.target.hosts_with_role("app")] if ctx.target is not None else []


@_guard
def _pg_version(ctx: CheckContext) -> Measurement:
    from checks.datastores import postgres

    _, conn = _pg(ctx)
    return ctx.memo(("datastores.pg_version", conn.label), lambda: postgres.server_version(conn))  # type: ignore[no-any-return]


@_guard
def _pg_reachable(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.datastores import postgres

    spec, conn = _pg(ctx)
    hosts = _app_hosts(ctx)
    if not hosts:
        raise NotApplicable("the target names no app hosts (hosts with role 'app', or datastores.postgres.app_hosts)")
    address, port = conn.host, conn.port
    if spec.app_address:
        address, _, p = spec.app_address.rpartition(":")
        address, port = address.strip("[]"), int(p)
    return {name: ctx.on_host(name, postgres.reachable_from, address, port) for name in hosts}


@_guard
def _pg_schema(ctx: CheckContext) -> Measurement:
    from checks.datastores import postgres

    spec, conn = _pg(ctx)
    if not spec.tables:
        raise _Unverifiable(_no_spec(ctx, "expected tables (datastores.postgres.tables)",
                                     "list the tables the application needs"))
    return postgres.tables(conn, list(spec.tables))


@_guard
def _pg_migrations(ctx: CheckContext) -> Measurement:
    from checks.datastores import postgres

    spec, conn = _pg(ctx)
    if spec.migrations is None:
        raise _Unverifiable(_no_spec(ctx, "migration head (datastores.postgres.migrations.revision)",
                                     "give the release's migration revision (alembic heads)"))
    m = postgres.migration_heads(conn, spec.migrations.table, spec.migrations.column)
    if m.ok:  # the expected revision travels with the value so the judgement can name both
        m = Measurement({"revisions": m.value, "expected": spec.migrations.revision}, m.display, m.evidence)
    return m


@_guard
def _pg_role(ctx: CheckContext) -> Measurement:
    from checks.datastores import postgres

    spec, conn = _pg(ctx)
    role = spec.app_role or conn.user
    dbs = spec.app_databases if spec.app_databases is not None else [conn.dbname]
    return postgres.role_privileges(conn, role, list(spec.app_schemas), list(dbs))


@_guard
def _pg_ssl(ctx: CheckContext) -> Measurement:
    from checks.datastores import postgres

    spec, conn = _pg(ctx)
    return postgres.app_session_ssl(conn, spec.app_role or conn.user)


@_guard
def _pg_replication(ctx: CheckContext) -> Measurement:
    from checks.datastores import postgres

    spec, conn = _pg(ctx)
    try:
        replicas = [conn.with_dsn(uri) for uri in spec.replicas]
    except ValueError as exc:
        raise _Unverifiable(_no_spec(ctx, "usable replica URI", str(exc))) from None
    return postgres.replication(conn, replicas)


@_guard
def _pg_connections(ctx: CheckContext) -> Measurement:
    from checks.datastores import postgres

    _, conn = _pg(ctx)
    return postgres.connections(conn)


def _redis(ctx: CheckContext) -> Any:
    from checks.datastores import redis

    spec = getattr(ctx.spec, "redis", None)
    if spec is None:
        raise _Unverifiable(_no_spec(ctx, "Redis (datastores.redis.address)", "add datastores.redis"))
    try:
        return spec, redis.redis_conn(spec.address, username=spec.username, password=spec.password,
                                      password_file=spec.password_file, tls=spec.tls, timeout_s=spec.timeout_s)
    except ValueError as exc:
        raise _Unverifiable(_no_spec(ctx, "usable Redis credentials", str(exc))) from None


def _redis_probe(name: str) -> Callable[[CheckContext], Any]:
    @_guard
    def measure(ctx: CheckContext) -> Measurement:
        from checks.datastores import redis

        spec, conn = _redis(ctx)
        if name == "bind" and spec.host:  # the host's own sockets: true even where CONFIG is disabled
            from checks.hosts import probes as host_probes

            m: Measurement = ctx.on_host(spec.host, host_probes.listening_sockets, conn.port)
        else:
            m = getattr(redis, name)(conn)
        if name == "bind" and m.ok:
            declared = spec.listen if spec.listen is not None else [conn.host]
            m = Measurement({"bind": m.value, "declared": list(declared)}, m.display, m.evidence)
        return m

    return measure


def _sqlite_host(ctx: CheckContext, spec: SqliteSpec | FeatureStoreSpec, what: str = "SQLite file",
                 key: str = "sqlite") -> str:
    if spec.host:
        return spec.host
    hosts = ctx.host_specs
    apps = [str(h.name) for h in hosts if "app" in h.roles]
    if len(hosts) == 1:
        return str(hosts[0].name)
    if len(apps) == 1:
        return apps[0]
    raise _Unverifiable(_no_spec(ctx, f"host for the {what} (datastores.{key}.host)",
                                 f"name the target host that holds the {what}"))


def _sqlite_probe(name: str) -> Callable[[CheckContext], Any]:
    @_guard
    def measure(ctx: CheckContext) -> Measurement:
        from checks.datastores import sqlite

        spec = getattr(ctx.spec, "sqlite", None)
        if spec is None:
            raise _Unverifiable(_no_spec(ctx, "SQLite file (datastores.sqlite.path, user)", "add datastores.sqlite"))
        host = _sqlite_host(ctx, spec)
        if name == "file_facts":
            m: Measurement = ctx.on_host(host, sqlite.file_facts, spec.path)
            if m.ok:
                m = Measurement({**m.value, "expected_owner": spec.user}, m.display, m.evidence)
            return m
        if name == "writable":
            return ctx.on_host(host, sqlite.writable, spec.path, spec.user)
        return ctx.on_host(host, sqlite.integrity, spec.path)

    return measure


def _feature_store(part: str) -> Callable[[CheckContext], Any]:
    """One probe run per file (ctx.memo), judged three ways: the file as HDF5 with its
    dimension (``file``), its owner, mode and readability (``access``), its image paths
    (``paths``).  Each part keeps the facts it judges and a display of its own."""

    @_guard
    def measure(ctx: CheckContext) -> Measurement:
        from checks.datastores import feature_store as fs

        spec = getattr(ctx.spec, "feature_store", None)
        if spec is None:
            raise _Unverifiable(_no_spec(ctx, "feature store file (datastores.feature_store.path, user)",
                                         "add datastores.feature_store"))
        req: FeatureStoreReq = ctx.req.feature_store
        host = _sqlite_host(ctx, spec, "feature store file", "feature_store")
        m: Measurement = ctx.memo(
            ("datastores.feature_store", host, spec.path, spec.user, spec.features, spec.paths, req.sample,
             spec.image_root, spec.python),
            lambda: ctx.on_host(host, fs.inspect, spec.path, spec.user, spec.features, spec.paths, req.sample,
                                spec.image_root, spec.python, spec.timeout_s))
        if not m.ok:
            return m
        v = m.value
        if part == "access" and v.get("exists"):
            value = {k: v.get(k) for k in ("path", "exists", "type", "owner", "uid", "group", "mode", "user",
                                            "readable_by_user")}
            display = (f"{v['path']}: {v['owner']} (uid {v['uid']}):{v['group']} mode {v['mode']}; {v['user']} "
                       f"{'can' if v.get('readable_by_user') else 'can NOT'} read it")
            return dataclasses.replace(m, value=value, display=display)
        if part == "paths" and v.get("exists") and v.get("hdf5"):
            value = {k: v.get(k) for k in ("path", "exists", "hdf5", "paths", "paths_count", "sampled",
                                            "missing_count", "missing", "image_root")}
            if not v.get("paths"):
                display = f"{v['path']}: no image paths dataset (looked for '{spec.paths}' or any 1-D string dataset)"
            else:
                display = (f"{v['missing_count']} of {v['sampled']} sampled image paths missing"
                           + (f" (e.g. {', '.join(v['missing'][:3])})" if v.get("missing") else "")
                           + f"; {v['paths_count']} paths in {v['paths']}, resolved against {v.get('image_root')}")
            return dataclasses.replace(m, value=value, display=display)
        return m

    return measure


def _feature_file_ok(req: DatastoresReq, v: dict[str, Any]) -> bool:
    want = req.feature_store.dimension if req.feature_store else None
    return bool(v.get("exists") and v.get("hdf5") and not v.get("error") and v.get("dimension") == want)


def _feature_access_ok(req: DatastoresReq, v: dict[str, Any]) -> bool:
    fs = req.feature_store or FeatureStoreReq(dimension=1)
    if not v.get("exists") or v.get("type") != "regular file":
        return False
    extra = int(v["mode"], 8) & ~int(fs.mode_max, 8) if fs.mode_max else 0
    owner_ok = not fs.owner_is_service_user or v["user"] in (v["owner"], str(v["uid"]))
    return extra == 0 and owner_ok and bool(v.get("readable_by_user"))


def _feature_access_expected(req: DatastoresReq) -> str:
    fs = req.feature_store or FeatureStoreReq(dimension=1)
    return ("a regular file" + (", owned by the service user" if fs.owner_is_service_user else "")
            + (f", mode <= {fs.mode_max}" if fs.mode_max else "") + ", readable by the service user")


def _feature_access_fix(req: DatastoresReq, m: Measurement) -> str:
    v = m.value or {}
    if not v.get("exists"):
        return "put the feature store file at the configured path (python prepare_features.py ...)"
    fs = req.feature_store or FeatureStoreReq(dimension=1)
    return f"chown {v.get('user', 'SERVICE_USER')} FILE; chmod {fs.mode_max or 'u+r'} FILE"


def _single_network_db(ctx: CheckContext) -> Measurement:
    """What the target declares: its app hosts and the databases they use."""
    hosts = _app_hosts(ctx)
    pg = getattr(ctx.spec, "postgres", None)
    lite = getattr(ctx.spec, "sqlite", None)
    label = None
    if pg is not None:
        from checks.datastores import postgres

        try:
            label = postgres.parse_dsn(pg.dsn, None).label
        except ValueError:
            label = "postgresql://(unparsable)"
    value = {"app_hosts": hosts, "network_db": label, "sqlite": lite.path if lite else None}
    parts = [f"{len(hosts)} app host(s)" + (f" ({', '.join(hosts)})" if hosts else "")]
    parts.append(f"network database {label}" if label else "no network database declared")
    if lite:
        parts.append(f"SQLite {lite.path} declared")
    return Measurement(value, "; ".join(parts), Evidence(
        probe="datastores.single_network_db", subject=getattr(ctx.target, "name", "target"),
        method="target file: hosts with role 'app' (or datastores.postgres.app_hosts), datastores.postgres/sqlite",
        data=value))


# ----------------------------------------------------------------------------- judgements


def _version_ok(req: DatastoresReq, value: str) -> bool:
    want = req.postgres.version_min if req.postgres else None
    if want is None:
        return True
    return tuple(int(x) for x in value.split(".")[:2]) >= tuple(int(x) for x in want.split("."))


def _role_ok(value: dict[str, Any]) -> bool:
    return (not value["attributes"] and all(s in value["allowed_schemas"] for s in value["schemas"])
            and all(d in value["allowed_databases"] for d in value["databases"]))


def _replication_ok(req: DatastoresReq, value: dict[str, Any]) -> bool:
    need = (req.postgres.replicas_min if req.postgres else None) or 1
    return (not value["primary_in_recovery"] and value["streaming"] >= need
            and all(value["replicas"].values()))


def _connections_ok(req: DatastoresReq, value: dict[str, Any]) -> bool:
    usable = value["max"] - value["reserved"]
    ratio = req.postgres.max_used_ratio if req.postgres else None
    return bool(value["used"] < usable and (ratio is None or value["used"] <= ratio * value["max"]))


def _bind_ok(value: dict[str, Any]) -> bool:
    declared = set(value["declared"])
    return bool(value["bind"]) and all(a in declared and a not in ("*", "0.0.0.0", "::") for a in value["bind"])


def _persistence_ok(req: DatastoresReq, value: dict[str, Any]) -> bool:
    want = req.redis.persistence if req.redis else None
    aof = bool(value["aof"]) and value["aof_last_write_status"] == "ok"
    rdb = bool(value["rdb"]) and value["rdb_last_bgsave_status"] == "ok"
    return {"aof": aof, "rdb": rdb, "aof_or_rdb": aof or rdb, "aof_and_rdb": aof and rdb, None: True}[want]


def _cluster_ok(req: DatastoresReq, value: dict[str, Any]) -> bool:
    from checks.datastores.redis import CLUSTER_SLOTS

    if req.redis is not None and req.redis.cluster == "standalone":
        return value["enabled"] is False
    return bool(value["enabled"] and value["state"] == "ok" and value["slots_ok"] == CLUSTER_SLOTS)


def _mode_ok(req: DatastoresReq, value: dict[str, Any]) -> bool:
    sq = req.sqlite or SqliteReq()
    if not value.get("exists") or value.get("type") != "regular file":
        return False
    extra = int(value["mode"], 8) & ~int(sq.mode_max, 8) if sq.mode_max else 0
    return extra == 0 and (not sq.owner_is_service_user or value["owner"] == value["expected_owner"])


def _single_db_ok(value: dict[str, Any]) -> bool:
    if len(value["app_hosts"]) <= 1:
        return True
    return bool(value["network_db"]) and not value["sqlite"]


def _pg_expected(req: DatastoresReq) -> str:
    want = req.postgres.version_min if req.postgres else None
    return f"PostgreSQL >= {want}" if want else "PostgreSQL answers a query"


def _sqlite_expected(req: DatastoresReq) -> str:
    sq = req.sqlite or SqliteReq()
    return ("a regular file" + (", owned by the service user" if sq.owner_is_service_user else "")
            + (f", mode <= {sq.mode_max}" if sq.mode_max else ""))


def _conn_expected(req: DatastoresReq) -> str:
    ratio = req.postgres.max_used_ratio if req.postgres else None
    base = "connections in use < max_connections - superuser_reserved_connections"
    return base + (f" and <= {ratio:.0%} of max_connections" if ratio else "")


FAMILY = Family(
    name="datastores",
    title="Data stores as deployed: PostgreSQL, Redis, SQLite, feature store files",
    feature="datastores.feature",
    profile_block=DatastoresReq,
    target_block=DatastoresSpec,
    checks=(
        Check(
            id="datastores.pg_version",
            title="PostgreSQL answers and its version is supported",
            severity=Severity.HIGH,
            refs=("DS-DI-DB-02", "DS-SW-07", "AW-MU-DB-01", "OZ-DB-01"),
            measures="server_version_num over a read-only session as the target's role (psycopg)",
            applies=_needs("postgres"),
            measure=_pg_version,
            expected=_pg_expected,
            passes=_version_ok,
            remediation=lambda req, m: f"upgrade PostgreSQL to {req.postgres.version_min} or later",
            verify_hint="give golive a read-only role in datastores.postgres.dsn (password as ${ENV} or "
                        "password_file) that can connect from the checking host",
        ),
        Check(
            id="datastores.pg_reachable_from_app_hosts",
            title="PostgreSQL is reachable from every app host",
            severity=Severity.CRITICAL,
            refs=("OZ-DB-01", "DS-DI-DB-02"),
            measures="pg_isready -h DB -p PORT (else a TCP connect) run on each app host over its own connection",
            applies=_needs("postgres", "reachable_from_app_hosts"),
            measure=_pg_reachable,
            empty="the target names no app hosts",
            expected="accepting connections from the app host",
            passes=lambda req, ok: ok is True,
            remediation=lambda req, m: f"open the network path {m.evidence.subject} (firewall, pg_hba.conf, "
                                       "listen_addresses)",
        ),
        Check(
            id="datastores.pg_schema",
            title="The expected tables exist and hold rows",
            severity=Severity.HIGH,
            refs=("DS-DB-01", "VO-DB-02"),
            measures="to_regclass(table) and SELECT EXISTS (SELECT 1 FROM table) for each of the target's tables",
            applies=_needs("postgres", "schema_tables"),
            measure=_pg_schema,
            expected="every expected table present with at least one row",
            passes=lambda req, v: all(t["exists"] and t["rows"] for t in v.values()),
            remediation="initialise the database (run the application's schema creation / load the dump) "
                        "and its seed data",
        ),
        Check(
            id="datastores.pg_migrations",
            title="Schema migrations are at the release's head",
            severity=Severity.HIGH,
            refs=("AW-DB-05",),
            measures="the revision(s) in the migrations table (alembic_version.version_num)",
            applies=_needs("postgres", "migrations_at_head"),
            measure=_pg_migrations,
            expected=lambda req: "the release's revision (datastores.postgres.migrations.revision), only that one",
            passes=lambda req, v: v["revisions"] == [v["expected"]],
            remediation=lambda req, m: "run the migrations to head (alembic upgrade head)"
            + (f"; expected {m.value['expected']}" if m.ok else ""),
        ),
        Check(
            id="datastores.pg_app_role",
            title="The app's database role has least privilege",
            severity=Severity.CRITICAL,
            refs=("DS-AUTH-03", "AW-AUTH-05"),
            measures="pg_roles attributes of the app role; schemas and databases it owns",
            applies=_needs("postgres", "app_role_least_privilege"),
            measure=_pg_role,
            expected="no SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS; owns only its own "
                     "schemas and databases",
            passes=lambda req, v: _role_ok(v),
            remediation="ALTER ROLE app NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS; "
                        "hand other schemas and databases to their owners (ALTER SCHEMA ... OWNER TO ...)",
        ),
        Check(
            id="datastores.pg_app_ssl",
            title="The app's connections to PostgreSQL are encrypted",
            severity=Severity.HIGH,
            refs=("AW-TLS-06",),
            measures="pg_stat_ssl.ssl of the app role's sessions (pg_stat_activity), golive's own left out",
            applies=_needs("postgres", "app_connections_encrypted"),
            measure=_pg_ssl,
            expected="every TCP session of the app role uses TLS",
            passes=lambda req, v: not v["plaintext"],
            remediation="turn ssl on in postgresql.conf, connect the app with sslmode=require (or verify-full) "
                        "and accept only hostssl lines in pg_hba.conf",
            verify_hint="run the check while the application is connected; grant golive's role pg_monitor",
        ),
        Check(
            id="datastores.pg_replication",
            title="PostgreSQL streams to its replicas",
            severity=Severity.HIGH,
            refs=("AW-EN-DB-01", "AW-MU-DB-02", "DS-DB-03"),
            measures="pg_stat_replication (state streaming) on the primary; pg_is_in_recovery() on each declared "
                     "replica",
            applies=lambda ctx: _needs("postgres")(ctx) or (
                None if ctx.req.postgres.replicas_min else
                f"profile '{ctx.profile_name}' requires no replica (datastores.postgres.replicas_min)"),
            measure=_pg_replication,
            expected=lambda req: f">= {(req.postgres.replicas_min if req.postgres else None) or 1} streaming "
                                 "replica(s); every declared replica in recovery",
            passes=_replication_ok,
            remediation="set up a streaming standby (pg_basebackup -R from the primary) and check "
                        "primary_conninfo, max_wal_senders and pg_hba.conf replication lines",
            verify_hint="grant golive's role pg_monitor so pg_stat_replication shows the senders' state",
        ),
        Check(
            id="datastores.pg_connections",
            title="PostgreSQL connections stay below max_connections",
            severity=Severity.MEDIUM,
            refs=("AW-EN-DB-02",),
            measures="client backends in pg_stat_activity vs max_connections and superuser_reserved_connections",
            applies=_needs("postgres", "connections_below_max"),
            measure=_pg_connections,
            expected=_conn_expected,
            passes=_connections_ok,
            remediation="pool connections (PgBouncer / the app's pool size) or raise max_connections",
        ),
        Check(
            id="datastores.redis_reachable",
            title="Redis answers with the target's credentials",
            severity=Severity.HIGH,
            refs=("AW-EN-HA-04", "OZ-HL-DB-03"),
            measures="PING and INFO server over an authenticated connection (redis-py)",
            applies=_needs("redis"),
            measure=_redis_probe("server"),
            expected="PONG",
            passes=lambda req, v: bool(v.get("version")),
            remediation="start Redis / open the path from the checking host / fix golive's credentials",
        ),
        Check(
            id="datastores.redis_auth",
            title="Redis refuses unauthenticated clients",
            severity=Severity.CRITICAL,
            refs=("AW-AUTH-05",),  # "Principle of least privilege": an open Redis grants every client everything
            measures="PING without AUTH",
            applies=_needs("redis", "auth_required"),
            measure=_redis_probe("unauthenticated_ping"),
            expected="NOAUTH (authentication required)",
            passes=lambda req, v: v["auth_required"] is True,
            remediation="set requirepass (or ACL users with passwords, default user off)",
        ),
        Check(
            id="datastores.redis_bind",
            title="Redis listens only on its declared addresses",
            severity=Severity.HIGH,
            refs=("AW-NET-02",),
            measures="CONFIG GET bind, or the listening sockets on Redis's host (ss -ltnH) when the target names it",
            applies=_needs("redis", "bind_declared_only"),
            measure=_redis_probe("bind"),
            expected="bind lists only the declared addresses (datastores.redis.listen), no wildcard",
            passes=lambda req, v: _bind_ok(v),
            remediation="set bind to the private/loopback addresses Redis must serve (never 0.0.0.0 or *)",
        ),
        Check(
            id="datastores.redis_persistence",
            title="Redis persists data as the tier requires",
            severity=Severity.MEDIUM,
            measures="CONFIG GET appendonly, CONFIG GET save; INFO persistence last write/bgsave status",
            applies=lambda ctx: _needs("redis")(ctx) or (
                None if ctx.req.redis.persistence else
                f"profile '{ctx.profile_name}' requires no persistence (datastores.redis.persistence)"),
            measure=_redis_probe("persistence"),
            expected=lambda req: {"aof": "AOF on and writing", "rdb": "RDB snapshots on and succeeding",
                                  "aof_or_rdb": "AOF or RDB on and working",
                                  "aof_and_rdb": "AOF and RDB both on and working"}.get(
                str(req.redis.persistence) if req.redis else "", "persistence as the tier requires"),
            passes=_persistence_ok,
            remediation="appendonly yes (AOF) and/or save <seconds> <changes> (RDB); check the disk if a "
                        "write/bgsave status is err",
        ),
        Check(
            id="datastores.redis_cluster",
            title="Redis cluster mode is as the tier requires",
            severity=Severity.HIGH,
            refs=("AW-EN-HA-04", "OZ-HL-DB-03"),
            measures="INFO cluster (cluster_enabled); CLUSTER INFO (cluster_state, cluster_slots_ok)",
            applies=lambda ctx: _needs("redis")(ctx) or (
                None if ctx.req.redis.cluster else
                f"profile '{ctx.profile_name}' states no cluster mode (datastores.redis.cluster)"),
            measure=_redis_probe("cluster"),
            expected=lambda req: ("cluster_enabled:1, cluster_state:ok, all 16384 slots ok"
                                  if req.redis is None or req.redis.cluster != "standalone"
                                  else "standalone (cluster_enabled:0)"),
            passes=_cluster_ok,
            remediation=lambda req, m: ("run Redis Cluster (cluster-enabled yes) with every slot assigned "
                                        "(redis-cli --cluster create / fix)" if req.redis.cluster == "required"
                                        else "use a standalone Redis (cluster-enabled no)"),
        ),
        Check(
            id="datastores.sqlite_file",
            title="The SQLite file belongs to the service user and is not readable by others",
            severity=Severity.HIGH,
            refs=("DS-AUTH-03", "AW-SU-DB-01"),
            measures="stat of the file on its host (owner, type, mode), over the host's connection",
            applies=_needs("sqlite"),
            measure=_sqlite_probe("file_facts"),
            expected=_sqlite_expected,
            passes=_mode_ok,
            remediation=lambda req, m: (f"chown {m.value.get('expected_owner', 'SERVICE_USER')} FILE; "
                                        f"chmod {req.sqlite.mode_max or 'u+rw'} FILE" if m.ok and m.value.get("exists")
                                        else "create/initialise the database at the configured path"),
        ),
        Check(
            id="datastores.sqlite_integrity",
            title="The SQLite database passes integrity_check",
            severity=Severity.HIGH,
            refs=("AW-SU-DB-01", "DS-DB-01"),
            measures="PRAGMA integrity_check on a read-only open, run on the host (sqlite3 CLI or python3)",
            applies=_needs("sqlite", "integrity"),
            measure=_sqlite_probe("integrity"),
            expected="ok",
            passes=lambda req, v: v == "ok",
            remediation="restore the database from the newest good backup",
        ),
        Check(
            id="datastores.sqlite_writable",
            title="The service user can write the SQLite database",
            severity=Severity.HIGH,
            refs=("AW-SU-DB-01",),
            measures="test -w on the file and its folder as the service user, on the host",
            applies=_needs("sqlite", "writable"),
            measure=_sqlite_probe("writable"),
            expected="the file and its folder writable by the service user",
            passes=lambda req, v: v["file"] is True and v["dir"] is True,
            remediation="give the service user write access to the file and its folder (journal files)",
        ),
        Check(
            id="datastores.feature_store",
            title="The feature store file opens as HDF5 with the configured vector dimension",
            severity=Severity.CRITICAL,
            refs=("ST-DB-01", "ST-OPS-02"),
            measures="the feature store file read on its host with the host's Python and h5py (read-only): "
                     "HDF5 signature, the vectors' dataset and its second axis",
            applies=_needs("feature_store"),
            measure=_feature_store("file"),
            expected=lambda req: ("an HDF5 file whose vectors have dimension "
                                  f"{req.feature_store.dimension if req.feature_store else '(not required)'}"),
            passes=_feature_file_ok,
            remediation=lambda req, m: (
                "create the feature store (extract the features of the image set) at the configured path"
                if not (m.value or {}).get("exists") else
                "rebuild the feature store with the model the API is configured for (VECTOR_DIMENSION "
                f"{req.feature_store.dimension}), or restore the last good copy"),
        ),
        Check(
            id="datastores.feature_store_access",
            title="The feature store file belongs to the service user and is not readable by others",
            severity=Severity.HIGH,
            refs=("ST-AUTH-04",),
            measures="stat of the file on its host (owner, uid, mode) and test -r as the service user",
            applies=_needs("feature_store"),
            measure=_feature_store("access"),
            expected=_feature_access_expected,
            passes=_feature_access_ok,
            remediation=_feature_access_fix,
        ),
        Check(
            id="datastores.feature_store_paths",
            title="Image paths stored in the feature store exist on storage",
            severity=Severity.HIGH,
            refs=("ST-DB-02", "ST-NET-07"),
            measures="a sample of the image paths stored in the file (evenly spread, first and last included), "
                     "each tested with os.path.isfile on the file's host",
            applies=_needs("feature_store"),
            measure=_feature_store("paths"),
            expected=lambda req: ("every one of up to "
                                  f"{req.feature_store.sample if req.feature_store else 20} sampled image paths exists"),
            passes=lambda req, v: bool(v.get("paths")) and int(v.get("sampled") or 0) > 0
            and v.get("missing_count") == 0,
            remediation="mount the image storage where the stored paths point (or fix image_root), or rebuild the "
                        "feature store from the images that exist",
        ),
        Check(
            id="datastores.single_network_db",
            title="Several app hosts share one network database",
            severity=Severity.HIGH,
            refs=("DS-DI-DB-02",),
            measures="the target's app hosts and declared databases (PostgreSQL DSN, SQLite path)",
            applies=lambda ctx: None if ctx.req.single_network_db else
            f"profile '{ctx.profile_name}' does not require this (datastores.single_network_db)",
            measure=_single_network_db,
            expected="one app host, or a network database (PostgreSQL) and no SQLite",
            passes=lambda req, v: _single_db_ok(v),
            remediation="move the application to PostgreSQL (SQLite does not support distributed deployment)",
        ),
    ),
)
