"""The containers family, declared: a Docker Compose deployment read through the Docker
Engine API (``docker`` SDK; ``unix://``, ``ssh://`` or ``tcp://`` engines).

Reads ``requirements.containers`` (which checks the tier asks for, with its numbers) and
the target's ``containers:`` fragment (engine, Compose project, the declared services with
their published ports, data paths, required variable names and GPU use).  Every check
shares one snapshot of the project per run (``ctx.memo``).
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family, NotApplicable, Skipped
from golive.model import Evidence, Measurement, Severity
from golive.units import Duration, fmt_duration


class HealthReq(Strict):
    """The healthcheck every service must define (longest allowed settings)."""

    interval: Duration = Field(description="longest allowed interval between checks")
    timeout: Duration = Field(description="longest allowed time for one check")
    retries: int = Field(ge=1, description="most failures allowed before the container is unhealthy")


class ContainersReq(Block):
    """Which container checks the tier asks for.  Everything is off unless the profile
    turns it on (each line cites the seed that asks for it)."""

    deployment_required: bool = Field(
        default=False, description="the tier deploys with Docker Compose: a target without containers: is an error")
    engine_min: str | None = Field(default=None, description="lowest Docker Engine version")
    compose_min: str | None = Field(default=None, description="lowest Docker Compose version")
    compose_project: bool = Field(default=True, description="services run as a Compose project (labels)")
    services_running: bool = Field(default=True, description="every declared service has a running container")
    healthcheck: HealthReq | None = None
    restart: list[str] | None = Field(default=None, description="allowed restart policies, e.g. [always]")
    published_ports: bool = False
    stateful_volumes: bool = False
    single_network: bool = False
    non_root: bool = False
    required_env: bool = False
    no_literal_secrets: bool = False
    env_file_mode_max: str = Field(default="0600", pattern=r"^0?[0-7]{3}$")
    image_pinned: bool = False
    image_matches_compose: bool = False
    log_rotation: bool = False
    logs_present: bool = False
    gpu: bool = False
    start_order: bool = Field(default=False, description=(
        "each service starts after the services the target names (depends_on in the Compose file)"))
    service_discovery: bool = Field(default=False, description=(
        "each declared connection variable names its target by Compose service name, on a shared network"))


class ServiceSpec(Strict):
    """What the target declares about one Compose service."""

    ports: list[str] = Field(default_factory=list,
                             description="published ports, ADDRESS:HOST_PORT:CONTAINER_PORT[/PROTO]; [] = none")
    stateful: list[str] = Field(default_factory=list, description="data paths inside the container")
    env: list[str] = Field(default_factory=list, description="names of variables that must be set")
    gpu: bool = False
    healthcheck: bool = Field(default=True, description=(
        "the service must define a healthcheck (false: the deployment's document gives it none, e.g. STRV's "
        "frontend; containers.healthcheck skips it, saying so)"))
    depends_on: list[str] = Field(default_factory=list, description=(
        "services this one must start after (its depends_on: in the Compose file must list them)"))
    connects_to: dict[str, str] = Field(default_factory=dict, description=(
        "environment variable NAME -> the Compose service it must reach by its service name, e.g. "
        "{DATABASE_URL: db}; only the host part of the value is read"))

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str]) -> list[str]:
        from checks.containers.probes import normalise_port

        return [normalise_port(p) for p in v]


class ContainersSpec(Strict):
    """The target's Compose deployment."""

    host: str = Field(default="unix:///var/run/docker.sock",
                      description="Docker Engine: unix:///path.sock, ssh://user@host or tcp://host:port")
    project: str = Field(min_length=1, description="Compose project name (label com.docker.compose.project)")
    compose_file: str | None = Field(default=None, description="the Compose file (default: where the labels say)")
    timeout: Duration = Field(default=10.0, description="per Engine API request")
    services: dict[str, ServiceSpec] = Field(min_length=1)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v.startswith(("unix://", "ssh://", "tcp://", "http://", "https://", "npipe://")):
            raise ValueError(f"host '{v}': expected unix:///path.sock, ssh://user@host or tcp://host:port")
        return v


# ----------------------------------------------------------------------------- bridging


def _spec(ctx: CheckContext) -> ContainersSpec:
    if ctx.spec is None:
        if ctx.req is not None and ctx.req.deployment_required:
            return _NoSpec.raise_for(ctx)
        raise NotApplicable("the target declares no Docker Compose deployment (containers:)")
    spec: ContainersSpec = ctx.spec
    return spec


class _NoSpec(Exception):
    """The tier deploys with Compose but the target names no deployment: could not verify."""

    @staticmethod
    def raise_for(ctx: CheckContext) -> ContainersSpec:
        raise _NoSpec(f"profile '{ctx.profile_name}' deploys with Docker Compose, but the target declares no "
                      "containers: deployment (engine host, project, services)")


def _snapshot(ctx: CheckContext) -> Measurement:
    from checks.containers import probes

    spec = _spec(ctx)
    key = ("containers.snapshot", spec.host, spec.project, spec.compose_file)
    result: Measurement = ctx.memo(key, lambda: probes.snapshot(
        spec.host, spec.project, compose_file=spec.compose_file, timeout_s=spec.timeout))
    return result


def _guarded(fn: Any) -> Any:
    """Run a measure function; a missing deployment the tier requires is an error result."""
    def measure(ctx: CheckContext) -> Any:
        try:
            return fn(ctx)
        except _NoSpec as exc:
            return Measurement.failed(str(exc), Evidence(probe="containers.target", subject="target",
                                                         method="the target file's containers: fragment"))
    return measure


def _per_service(check: str, method: str, probe_name: str) -> Any:
    @_guarded
    def measure(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
        from checks.containers import probes

        snap_m = _snapshot(ctx)
        if not snap_m.ok:
            return snap_m
        return probes.per_service(snap_m.value, list(_spec(ctx).services), check, method,
                                  getattr(probes, probe_name))
    return measure


def _required(flag: str) -> Any:
    def applies(ctx: CheckContext) -> str | None:
        on = getattr(ctx.req, flag)
        return None if on else f"profile '{ctx.profile_name}' does not require this (containers.{flag})"
    return applies


@_guarded
def _health(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
    """The healthcheck of each declared service that must have one (``healthcheck: true``,
    the default); the others are skipped with the target's reason."""
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    spec = _spec(ctx)
    out: dict[str, Measurement | Skipped] = {}
    measured = probes.per_service(snap_m.value, [n for n, s in spec.services.items() if s.healthcheck],
                                  "healthcheck", "GET /containers/ID/json: Config.Healthcheck, State.Health",
                                  probes.healthcheck)
    for name, s in spec.services.items():
        out[name] = measured[name] if s.healthcheck else Skipped(
            f"the target declares no healthcheck for {name} (containers.services.{name}.healthcheck: false)")
    return out


@_guarded
def _engine(ctx: CheckContext) -> Measurement:
    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    s = snap_m.value
    return Measurement(s.engine_version, f"Docker Engine {s.engine_version} (API {s.api_version})",
                       _ev(s, "engine_version", "GET /version"), unit="version")


@_guarded
def _compose_version(ctx: CheckContext) -> Measurement:
    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    s = snap_m.value
    versions = sorted({c.compose_version for c in s.containers if c.compose_version})
    from checks.hosts.probes import parse_version

    lowest = min(versions, key=parse_version) if versions else None
    display = (f"Docker Compose {', '.join(versions)}" if versions
               else "no container carries com.docker.compose.version (not deployed with Compose)")
    return Measurement(lowest, display, _ev(s, "compose_version", "label com.docker.compose.version of the "
                                            "project's containers (the Compose that created them)"), unit="version")


def _ev(snap: Any, check: str, method: str, data: dict[str, Any] | None = None) -> Evidence:
    return Evidence(probe=f"containers.{check}", subject=f"{snap.project} on {snap.host}", method=method,
                    tool=snap.tool, duration_s=snap.duration_s, data=data or {})


def _services_check(fn_name: str) -> Any:
    @_guarded
    def measure(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
        from checks.containers import probes

        snap_m = _snapshot(ctx)
        if not snap_m.ok:
            return snap_m
        fn = getattr(probes, fn_name)
        return {s: fn(snap_m.value, s) for s in _spec(ctx).services}
    return measure


@_guarded
def _ports(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    spec, snap = _spec(ctx), snap_m.value
    # declared services, and any other service of the project that publishes something
    names = list(spec.services) + sorted({c.service for c in snap.containers
                                          if c.published and c.service and c.service not in spec.services})
    out = probes.per_service(snap, names, "published_ports", "GET /containers/ID/json: NetworkSettings.Ports "
                             "(:: folded into 0.0.0.0: both mean every address)", probes.published_ports)
    result: dict[str, Measurement] = {}
    for name, m in out.items():
        declared = sorted(spec.services[name].ports) if name in spec.services else []
        if m.ok:
            value = {"published": sorted(m.value or []), "declared": declared}
            m = Measurement(value, m.display, m.evidence)
        result[name] = m
    return result


@_guarded
def _volumes(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    spec, snap = _spec(ctx), snap_m.value
    stateful = {n: s.stateful for n, s in spec.services.items() if s.stateful}

    def probe(snap: Any, service: str, c: Any) -> tuple[Any, str, dict[str, Any]]:
        where = probes.data_mounts(c, stateful[service])
        return where, "; ".join(f"{p}: {w}" for p, w in where.items()), {"data": where}
    return probes.per_service(snap, list(stateful), "stateful_volumes",
                              "GET /containers/ID/json: Mounts (type, name, destination) covering each data path",
                              probe)


@_guarded
def _env(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    spec, snap = _spec(ctx), snap_m.value
    required = {n: s.env for n, s in spec.services.items() if s.env}

    def probe(snap: Any, service: str, c: Any) -> tuple[Any, str, dict[str, Any]]:
        missing = [n for n in required[service] if n not in c.env_names]
        display = f"missing {', '.join(missing)}" if missing else f"all set: {', '.join(required[service])}"
        return {"missing": missing, "required": required[service]}, display, {"missing": missing}
    return probes.per_service(snap, list(required), "required_env",
                              "GET /containers/ID/json: Config.Env, variable NAMES only (values are not read "
                              "into golive)", probe)


@_guarded
def _secrets(ctx: CheckContext) -> Measurement:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    result: Measurement = probes.no_literal_secrets(snap_m.value, int(ctx.req.env_file_mode_max, 8))
    return result


@_guarded
def _network(ctx: CheckContext) -> Measurement:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    result: Measurement = probes.single_network(snap_m.value)
    return result


@_guarded
def _gpu(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    spec = _spec(ctx)
    gpus = [n for n, s in spec.services.items() if s.gpu]
    result: dict[str, Measurement] = probes.gpu_access(spec.host, snap_m.value, gpus, timeout_s=spec.timeout)
    return result


@_guarded
def _start_order(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    required = {n: s.depends_on for n, s in _spec(ctx).services.items() if s.depends_on}
    if not required:
        return {}
    result: dict[str, Measurement] = probes.start_order(snap_m.value, required)
    return result


@_guarded
def _discovery(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.containers import probes

    snap_m = _snapshot(ctx)
    if not snap_m.ok:
        return snap_m
    connects = {n: s.connects_to for n, s in _spec(ctx).services.items() if s.connects_to}
    if not connects:
        return {}
    result: dict[str, Measurement] = probes.service_discovery(snap_m.value, connects)
    return result


def _discovery_ok(v: dict[str, Any] | None) -> bool:
    return v is not None and bool(v["in_environment"] and v["host_ok"] and v["network_ok"])


def _discovery_fix(req: ContainersReq, m: Measurement) -> str:
    v = m.value or {}
    target = v.get("target", "the service")
    if not v.get("in_environment"):
        return f"set {v.get('variable', 'the variable')} in the service's environment: to reach {target} by name"
    if not v.get("host_ok"):
        return (f"write the service name {target} as the host of {v.get('variable')} (Compose's DNS resolves it "
                "on the project's network; an IP address changes when the container is recreated, localhost is "
                "the container itself)")
    return f"put both services on one user-defined network (networks: in the Compose file) where {target} answers"


def _version_ok(measured: str | None, minimum: str | None) -> bool:
    from checks.hosts.probes import version_at_least

    return bool(measured) and minimum is not None and version_at_least(str(measured), minimum)


def _health_ok(req: ContainersReq, v: dict[str, Any] | None) -> bool:
    h = req.healthcheck
    return bool(v and h and v.get("defined") and v["interval_s"] <= h.interval and v["timeout_s"] <= h.timeout
                and v["retries"] <= h.retries and v.get("status") == "healthy")


def _health_expected(req: ContainersReq) -> str:
    h = req.healthcheck
    if h is None:
        return "a healthcheck"
    return (f"a healthcheck with interval <= {fmt_duration(h.interval)}, timeout <= {fmt_duration(h.timeout)}, "
            f"retries <= {h.retries}; status healthy")


def _running_ok(v: dict[str, Any] | None) -> bool:
    return v is not None and v["containers"] >= 1 and v["running"] == v["containers"]


def _pinned(v: str | None) -> bool:
    from checks.containers.probes import pinned

    return bool(v) and pinned(str(v))


def _rotated(v: dict[str, Any] | None) -> bool:
    from checks.containers.probes import rotated

    return bool(v) and rotated(v or {})


def _not_root(v: dict[str, Any] | None) -> bool:
    from checks.containers.probes import is_root

    return v is not None and not is_root(v)


def _persistent(v: dict[str, str] | None) -> bool:
    from checks.containers.probes import persistent

    return bool(v) and all(persistent(w) for w in (v or {}).values())


def _matches(v: dict[str, Any] | None) -> bool:
    if not v:
        return False
    return bool(v["compose"] == v["running"] and v["compose_id"] == v["running_id"])


SERVICE_RUNNING_METHOD = "GET /containers/json?all=1 filtered by label com.docker.compose.project"

FAMILY = Family(
    name="containers",
    title="Docker Engine and Compose deployments",
    feature="containers.feature",
    profile_block=ContainersReq,
    target_block=ContainersSpec,
    checks=(
        Check(
            id="containers.engine_version",
            title="Docker Engine version is supported",
            severity=Severity.HIGH,
            refs=("DS-CT-SW-08", "OZ-SW-01", "VO-SW-01"),
            measures="Docker Engine version (Engine API GET /version)",
            applies=lambda ctx: None if ctx.req.engine_min else "the profile sets no engine_min",
            measure=_engine,
            expected=lambda req: f">= {req.engine_min}",
            passes=lambda req, v: _version_ok(v, req.engine_min),
            remediation=lambda req, m: f"upgrade Docker Engine to {req.engine_min} or later",
        ),
        Check(
            id="containers.compose_version",
            title="Docker Compose version is supported",
            severity=Severity.MEDIUM,
            refs=("DS-CT-SW-08", "VO-SW-01"),
            measures="the Compose version that created the project's containers (label com.docker.compose.version)",
            applies=lambda ctx: None if ctx.req.compose_min else "the profile sets no compose_min",
            measure=_compose_version,
            expected=lambda req: f">= {req.compose_min}",
            passes=lambda req, v: _version_ok(v, req.compose_min),
            remediation=lambda req, m: f"deploy with Docker Compose {req.compose_min} or later",
        ),
        Check(
            id="containers.compose_project",
            title="Services are installed as a Docker Compose project",
            severity=Severity.HIGH,
            refs=("OZ-CTR-02", "AW-MU-CTR-01", "OZ-OPS-02"),
            measures="com.docker.compose.project/service labels of each service's container; Swarm state (GET /info)",
            applies=_required("compose_project"),
            measure=_services_check("compose_project"),
            expected="each service's container created by Docker Compose for the project, on a plain Docker Engine",
            passes=lambda req, v: bool(v) and v["compose"] and v["swarm"] in ("inactive", ""),
            remediation="deploy the service with `docker compose up` from the project's Compose file "
                        "(not `docker run`)",
        ),
        Check(
            id="containers.services_running",
            title="Every declared service runs in its own container",
            severity=Severity.CRITICAL,
            refs=("VO-CTR-01", "VO-CTR-02", "DS-CT-CTR-01", "AW-MU-CTR-01", "VO-OPS-01"),
            measures="containers of each declared service and their state (Engine API, Compose labels)",
            applies=_required("services_running"),
            measure=_services_check("services_running"),
            expected="at least one container per service, all running",
            passes=lambda req, v: _running_ok(v),
            remediation="start the service (`docker compose up -d SERVICE`) and read its logs for why it stopped",
        ),
        Check(
            id="containers.healthcheck",
            title="Each service has a healthcheck and is healthy",
            severity=Severity.HIGH,
            refs=("ST-CTR-02",),
            measures="Config.Healthcheck (interval, timeout, retries; engine defaults applied) and State.Health.Status",
            applies=lambda ctx: None if ctx.req.healthcheck else "the profile sets no healthcheck",
            measure=_health,
            expected=_health_expected,
            passes=_health_ok,
            remediation=lambda req, m: ("add a healthcheck: block to the service" if not (m.value or {}).get("defined")
                                        else "fix the service or its healthcheck settings until the engine reports "
                                             "healthy within the profile's limits"),
        ),
        Check(
            id="containers.restart_policy",
            title="Restart policy is as required",
            severity=Severity.HIGH,
            refs=("ST-CTR-03",),
            measures="HostConfig.RestartPolicy.Name of each service's container",
            applies=lambda ctx: None if ctx.req.restart else "the profile sets no restart policy",
            measure=_per_service("restart_policy", "GET /containers/ID/json: HostConfig.RestartPolicy",
                                 "restart_policy"),
            expected=lambda req: " or ".join(req.restart or []),
            passes=lambda req, v: v in (req.restart or []),
            remediation=lambda req, m: f"set restart: {(req.restart or ['always'])[0]} on the service",
        ),
        Check(
            id="containers.published_ports",
            title="Published ports are exactly the declared ones",
            severity=Severity.CRITICAL,
            refs=("ST-CTR-01", "VO-NET-02", "DS-NET-03", "DS-NET-04"),
            measures="NetworkSettings.Ports of each service's container vs the target's declared ports",
            applies=_required("published_ports"),
            measure=_ports,
            expected="exactly the ports the target declares for the service, on the declared address; nothing else",
            passes=lambda req, v: bool(v) and v["published"] == v["declared"],
            remediation=lambda req, m: (f"publish only {', '.join((m.value or {}).get('declared') or []) or 'nothing'}"
                                        " (ports: in the Compose file; an address like 127.0.0.1: keeps it local)"),
        ),
        Check(
            id="containers.stateful_volumes",
            title="Stateful services keep their data on volumes",
            severity=Severity.CRITICAL,
            refs=("VO-CTR-03", "AW-MU-CTR-01"),
            measures="Mounts of each stateful service's container covering its declared data paths",
            applies=_required("stateful_volumes"),
            measure=_volumes,
            empty="the target declares no stateful service (services.*.stateful)",
            expected="every data path on a named volume or a bind mount",
            passes=lambda req, v: _persistent(v),
            remediation="mount a named volume (volumes: [NAME:/data/path]) or a host directory on the data path",
        ),
        Check(
            id="containers.single_network",
            title="All services share one user-defined network",
            severity=Severity.MEDIUM,
            refs=("VO-NET-01",),
            measures="NetworkSettings.Networks of every Compose container of the project",
            applies=_required("single_network"),
            measure=_network,
            expected="one user-defined network that every container is on",
            passes=lambda req, v: bool(v) and bool(v["common"]),
            remediation="put every service on the project's network (networks: in the Compose file)",
        ),
        Check(
            id="containers.non_root",
            title="Container processes do not run as root",
            severity=Severity.HIGH,
            refs=("ST-AUTH-03",),
            measures="uids of each container's processes (GET /containers/ID/top, ps -o uid) and Config.User",
            applies=_required("non_root"),
            measure=_per_service("non_root", "GET /containers/ID/top?ps_args=-o pid,uid,comm; Config.User",
                                 "non_root"),
            expected="no process with uid 0",
            passes=lambda req, v: _not_root(v),
            remediation="run the service as an unprivileged user (USER in the Dockerfile or user: in Compose)",
        ),
        Check(
            id="containers.required_env",
            title="Required environment variables are set",
            severity=Severity.HIGH,
            refs=("ST-AUTH-05", "ST-CTR-01", "VO-AUTH-01", "DS-AUTH-02"),
            measures="names in Config.Env of each service's container (values are never read into golive)",
            applies=_required("required_env"),
            measure=_env,
            empty="the target declares no required variables (services.*.env)",
            expected="every variable the target names for the service is set",
            passes=lambda req, v: bool(v) and not v["missing"],
            remediation=lambda req, m: f"set {', '.join((m.value or {}).get('missing') or [])} in the service's "
                                       "environment",
        ),
        Check(
            id="containers.no_literal_secrets",
            title="No literal secrets in the Compose deployment",
            severity=Severity.CRITICAL,
            refs=("VO-AUTH-01",),
            measures="secret-named environment variables with a literal value in the Compose file; mode and git "
                     "tracking of .env / env_file files",
            applies=_required("no_literal_secrets"),
            measure=_secrets,
            expected=lambda req: f"secrets as ${{VAR}} from .env or env_file; env files mode <= {req.env_file_mode_max}, "
                                 "not tracked by git",
            passes=lambda req, v: bool(v) and not v["problems"],
            remediation=lambda req, m: (f"move secret values to .env (chmod {req.env_file_mode_max}, in .gitignore) and "
                                        "reference them as ${VAR}; rotate any secret that was committed"),
        ),
        Check(
            id="containers.image_pinned",
            title="Images are pinned to a version",
            severity=Severity.MEDIUM,
            refs=("DS-CT-CTR-02",),
            measures="Config.Image of each service's container",
            applies=_required("image_pinned"),
            measure=_per_service("image_pinned", "GET /containers/ID/json: Config.Image", "image_pinned"),
            expected="a version tag other than latest, or a digest",
            passes=lambda req, v: _pinned(v),
            remediation="name a version tag (image: repo:1.2.3) or a digest in the Compose file",
        ),
        Check(
            id="containers.image_matches_compose",
            title="Running images are the ones the Compose file names",
            severity=Severity.MEDIUM,
            refs=("DS-CT-CTR-02",),
            measures="the Compose file's image per service (its id on the engine) vs the container's image and id",
            applies=_required("image_matches_compose"),
            measure=_per_service("image_matches_compose", "Compose file image: vs Config.Image and Image (id); "
                                 "GET /images/REF/json", "image_matches"),
            expected="the same image reference and image id as the Compose file",
            passes=lambda req, v: _matches(v),
            remediation="redeploy from the Compose file in the repository (`docker compose up -d`)",
        ),
        Check(
            id="containers.log_rotation",
            title="Container logs are rotated",
            severity=Severity.MEDIUM,
            refs=("DS-LOG-06",),
            measures="HostConfig.LogConfig (driver, max-size, max-file) of each service's container",
            applies=_required("log_rotation"),
            measure=_per_service("log_rotation", "GET /containers/ID/json: HostConfig.LogConfig", "log_rotation"),
            expected="json-file with max-size, or a driver that rotates or ships logs (local, journald, syslog...)",
            passes=lambda req, v: _rotated(v),
            remediation="set logging: {driver: json-file, options: {max-size: 10m, max-file: '3'}} or log-opts in "
                        "daemon.json",
        ),
        Check(
            id="containers.logs_present",
            title="Every service writes logs",
            severity=Severity.LOW,
            refs=("VO-MON-01", "VO-OPS-01"),
            measures="size of the last 50 log lines of each service's container (GET /containers/ID/logs); "
                     "the text is never kept",
            applies=_required("logs_present"),
            measure=_per_service("logs_present", "GET /containers/ID/logs?stdout=1&stderr=1&tail=50 (size only)",
                                 "logs_present"),
            expected="log output (> 0 bytes) through the engine",
            passes=lambda req, v: isinstance(v, int) and v > 0,
            remediation="log to stdout/stderr (docker compose logs shows nothing for this service)",
        ),
        Check(
            id="containers.gpu",
            title="GPU services have GPU access",
            severity=Severity.HIGH,
            refs=("ST-LG-GPU-02",),
            measures="HostConfig.DeviceRequests of each GPU service's container and `nvidia-smi -L` inside it",
            applies=_required("gpu"),
            measure=_gpu,
            empty="the target declares no GPU service (services.*.gpu)",
            expected="a GPU device request, and nvidia-smi inside the container lists a GPU",
            passes=lambda req, v: bool(v) and bool(v.get("requested")) and bool(v.get("gpus")),
            remediation="reserve the GPU (deploy.resources.reservations.devices: [{capabilities: [gpu]}]) and "
                        "install the NVIDIA Container Toolkit on the host",
        ),
        Check(
            id="containers.start_order",
            title="Services start after the services they depend on",
            severity=Severity.MEDIUM,
            refs=("ST-HA-05",),
            measures="depends_on of each service in the Compose file (list form, or mapping form with condition:)",
            applies=_required("start_order"),
            measure=_start_order,
            empty="the target declares no start order (services.*.depends_on)",
            expected=lambda req: "the Compose file's depends_on lists every service the target says this one "
                                 "starts after",
            passes=lambda req, v: bool(v) and not v["missing"],
            remediation=lambda req, m: (f"add depends_on: [{', '.join((m.value or {}).get('missing') or [])}] to the "
                                        "service in the Compose file (condition: service_healthy where the "
                                        "dependency has a healthcheck)"),
        ),
        Check(
            id="containers.service_discovery",
            title="Services reach each other by Compose service name",
            severity=Severity.HIGH,
            refs=("VO-NET-04", "DS-CT-HA-05", "ST-NET-03"),
            measures="host part of each declared connection variable in the Compose file's environment: (the value "
                     "is never kept) and NetworkSettings.Networks (Aliases, DNSNames) of both services' containers",
            applies=_required("service_discovery"),
            measure=_discovery,
            empty="the target declares no service connections (services.*.connects_to)",
            expected=lambda req: "the variable's host is the target's service name (or a declared alias), and both "
                                 "containers share a user-defined network on which the target answers to it",
            passes=lambda req, v: _discovery_ok(v),
            remediation=_discovery_fix,
        ),
    ),
)
