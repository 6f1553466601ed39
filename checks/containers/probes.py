"""Read-only probes of a Docker Compose deployment through the Docker Engine API.

:func:`snapshot` reads everything once per run (engine version, the project's containers,
their configuration, processes, log size, the Compose file) into a frozen
:class:`ProjectSnapshot`; the ``measure_*`` functions turn a snapshot into one
:class:`~golive.model.Measurement` per service (or per project) for one check.  Nothing is
changed on the engine; the only command run inside a container is ``nvidia-smi -L`` for a
service declared as a GPU service that requests a GPU.

Secrets: environment variables are read by NAME only (values are dropped as the container
configuration is parsed, and the Compose file's literal values are never kept); container
logs are measured by size, never quoted.

Bounded: every Engine API call has the client timeout; the whole snapshot gives up after
``budget_s``.  Could-not-verify (engine unreachable, permission denied on the socket, a
timeout, no such project) is ``Measurement.failed`` with the reason.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golive.model import Evidence, Measurement

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
VERSION_LABEL = "com.docker.compose.version"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"
FILES_LABEL = "com.docker.compose.project.config_files"
#: Engine defaults for a healthcheck that sets none of these (Docker Engine reference)
HEALTH_DEFAULTS = {"interval_s": 30.0, "timeout_s": 30.0, "retries": 3}
#: names that hold secrets (heuristic; *_FILE points at a file and is the good practice)
SECRET_NAME = re.compile(r"(?i)(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL)")
#: log drivers that rotate themselves or ship logs off the host (nothing grows unbounded)
SELF_ROTATING_DRIVERS = frozenset({"local", "journald", "syslog", "gelf", "fluentd", "awslogs", "splunk",
                                   "gcplogs", "logentries", "etwlogs"})
NON_USER_NETWORKS = frozenset({"bridge", "host", "none"})
_LOG_TAIL = 50


class ProbeFailed(Exception):
    """The engine could not be asked (the message is the reason)."""


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class HealthFacts:
    """The container's healthcheck as the engine runs it (defaults applied)."""

    kind: str                      # CMD / CMD-SHELL
    interval_s: float
    timeout_s: float
    retries: int
    start_period_s: float


@dataclass(frozen=True)
class MountFacts:
    type: str                      # volume / bind / tmpfs
    destination: str
    name: str = ""                 # volume name
    source: str = ""               # bind source on the engine host
    anonymous: bool = False        # a volume with a generated 64-hex name


@dataclass(frozen=True)
class NetworkFacts:
    """One network of a container: the names the engine's DNS answers for it there
    (``Aliases`` and, from Engine 25, ``DNSNames``) and its address on it."""

    names: tuple[str, ...]
    ip: str = ""


@dataclass(frozen=True)
class ContainerFacts:
    """What golive keeps of one container: no environment values, no log text."""

    name: str
    id: str
    service: str | None            # Compose service label (None: not created by Compose)
    compose_version: str | None
    state: str                     # running / exited / created / restarting ...
    health_status: str | None      # healthy / unhealthy / starting / None (no healthcheck)
    healthcheck: HealthFacts | None
    restart_policy: str
    published: tuple[str, ...]     # "127.0.0.1:8000:8000/tcp"
    mounts: tuple[MountFacts, ...]
    networks: tuple[str, ...]
    network_mode: str
    config_user: str
    uids: tuple[int, ...] | None   # of the container's processes (docker top); None: not running
    env_names: tuple[str, ...]
    image_ref: str                 # Config.Image, as the Compose file or docker run named it
    image_id: str
    log_driver: str
    log_options: Mapping[str, str]
    log_bytes: int | None          # of the last 50 lines; 0 with driver none; None: cannot be read back
    device_requests: tuple[Mapping[str, Any], ...]
    working_dir: str = ""
    config_files: str = ""
    network_facts: Mapping[str, NetworkFacts] = field(default_factory=dict)   # network -> names, address


@dataclass(frozen=True)
class ComposeFacts:
    """What golive keeps of the Compose file: images, which secret-named variables carry a
    literal value (names only), and the modes of the env files next to it."""

    path: str
    images: Mapping[str, str]                      # service -> image reference
    literal_secrets: tuple[str, ...]               # "NAME written literally (service SERVICE)"
    env_files: Mapping[str, int]                   # path -> mode
    env_files_tracked: tuple[str, ...] = ()        # env files tracked by git
    error: str | None = None
    #: service -> {dependency: condition} (the list form's condition is service_started)
    depends_on: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: service -> the aliases its networks: entries declare
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: service -> names of the variables its environment: sets (values are never kept)
    environment_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectSnapshot:
    host: str
    project: str
    engine_version: str
    api_version: str
    swarm_state: str
    containers: tuple[ContainerFacts, ...]         # labelled with the project
    unlabelled: tuple[ContainerFacts, ...]         # named after the project, not created by Compose
    compose: ComposeFacts | None
    image_ids: Mapping[str, str | None] = field(default_factory=dict)   # compose image ref -> id on the engine
    tool: str = ""
    taken_at: float = 0.0
    duration_s: float = 0.0

    def of_service(self, service: str) -> list[ContainerFacts]:
        """Containers of ``service``: Compose-labelled ones, else ones only named after it."""
        found = [c for c in self.containers if c.service == service]
        return found or [c for c in self.unlabelled if _name_service(c.name, self.project) == service]


def _name_service(name: str, project: str) -> str | None:
    """``proj_api_1`` / ``proj-api-1`` -> ``api`` (Compose v1 and v2 container names)."""
    for sep in ("_", "-"):
        prefix = project + sep
        if name.startswith(prefix):
            rest = name[len(prefix):]
            head, _, tail = rest.rpartition(sep)
            return head if tail.isdigit() and head else rest
    return None


# --------------------------------------------------------------------------- reading


def _ns(value: Any) -> float:
    return float(value or 0) / 1e9


def _health(cfg: Mapping[str, Any] | None) -> HealthFacts | None:
    if not cfg or not cfg.get("Test") or cfg["Test"][0] == "NONE":
        return None
    return HealthFacts(kind=str(cfg["Test"][0]),
                       interval_s=_ns(cfg.get("Interval")) or HEALTH_DEFAULTS["interval_s"],
                       timeout_s=_ns(cfg.get("Timeout")) or HEALTH_DEFAULTS["timeout_s"],
                       retries=int(cfg.get("Retries") or HEALTH_DEFAULTS["retries"]),
                       start_period_s=_ns(cfg.get("StartPeriod")))


def _published(ports: Mapping[str, Any] | None) -> tuple[str, ...]:
    out = set()
    for cport, bindings in (ports or {}).items():
        for b in bindings or ():
            ip = b.get("HostIp") or "0.0.0.0"
            ip = "0.0.0.0" if ip in ("::", "") else ip   # all addresses, whichever family
            number, _, proto = cport.partition("/")
            out.add(f"{ip}:{b.get('HostPort')}:{number}/{proto or 'tcp'}")
    return tuple(sorted(out))


def _mount(m: Mapping[str, Any]) -> MountFacts:
    name = str(m.get("Name") or "")
    return MountFacts(type=str(m.get("Type") or ""), destination=str(m.get("Destination") or ""), name=name,
                      source=str(m.get("Source") or "") if m.get("Type") == "bind" else "",
                      anonymous=bool(re.fullmatch(r"[0-9a-f]{64}", name)))


def _uids(client: Any, cid: str) -> tuple[int, ...]:
    top = client.api.top(cid, ps_args="-o pid,uid,comm")
    idx = [t.upper() for t in top.get("Titles", [])].index("UID")
    return tuple(sorted({int(row[idx]) for row in top.get("Processes") or []}))


def _container(client: Any, summary: Any, project: str) -> ContainerFacts:
    attrs: dict[str, Any] = client.api.inspect_container(summary.id)
    cfg = attrs.get("Config") or {}
    host_cfg = attrs.get("HostConfig") or {}
    state = attrs.get("State") or {}
    labels = cfg.get("Labels") or {}
    running = state.get("Status") == "running"
    uids: tuple[int, ...] | None = None
    if running:
        # a container may exit between listing and top: then its uids are unknown
        with contextlib.suppress(Exception):
            uids = _uids(client, summary.id)
    log_cfg = host_cfg.get("LogConfig") or {}
    log_bytes: int | None = None
    if log_cfg.get("Type") == "none":
        log_bytes = 0  # nothing is kept
    else:  # json-file, local, journald; others through the engine's dual-logging cache (20.10+)
        with contextlib.suppress(Exception):
            log_bytes = len(client.api.logs(summary.id, stdout=True, stderr=True, tail=_LOG_TAIL))
    own = labels.get(PROJECT_LABEL) == project
    return ContainerFacts(
        name=str(attrs.get("Name", "")).lstrip("/"),
        id=str(attrs.get("Id", ""))[:12],
        service=labels.get(SERVICE_LABEL) if own else None,
        compose_version=labels.get(VERSION_LABEL) if own else None,
        state=str(state.get("Status", "")),
        health_status=(state.get("Health") or {}).get("Status"),
        healthcheck=_health(cfg.get("Healthcheck")),
        restart_policy=str((host_cfg.get("RestartPolicy") or {}).get("Name") or "no"),
        published=_published((attrs.get("NetworkSettings") or {}).get("Ports")),
        mounts=tuple(_mount(m) for m in attrs.get("Mounts") or ()),
        networks=tuple(sorted(((attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        network_mode=str(host_cfg.get("NetworkMode") or ""),
        config_user=str(cfg.get("User") or ""),
        uids=uids,
        # names only: the value after '=' is never kept
        env_names=tuple(sorted(e.split("=", 1)[0] for e in cfg.get("Env") or ())),
        image_ref=str(cfg.get("Image") or ""),
        image_id=str(attrs.get("Image") or ""),
        log_driver=str(log_cfg.get("Type") or ""),
        log_options=dict(log_cfg.get("Config") or {}),
        log_bytes=log_bytes,
        device_requests=tuple({k: v for k, v in (d or {}).items() if k != "Options"}
                              for d in host_cfg.get("DeviceRequests") or ()),
        working_dir=str(labels.get(WORKDIR_LABEL, "")) if own else "",
        config_files=str(labels.get(FILES_LABEL, "")) if own else "",
        network_facts=_network_facts((attrs.get("NetworkSettings") or {}).get("Networks")),
    )


def _network_facts(networks: Mapping[str, Any] | None) -> dict[str, NetworkFacts]:
    out: dict[str, NetworkFacts] = {}
    for name, n in (networks or {}).items():
        n = n or {}
        names = [*(n.get("Aliases") or ()), *(n.get("DNSNames") or ())]
        out[str(name)] = NetworkFacts(names=tuple(dict.fromkeys(str(x) for x in names)),
                                      ip=str(n.get("IPAddress") or ""))
    return out


def _env_list(env: Any) -> list[tuple[str, str | None]]:
    """A Compose ``environment:`` (mapping or list) as (name, literal value or None)."""
    if isinstance(env, dict):
        return [(str(k), None if v is None else str(v)) for k, v in env.items()]
    out: list[tuple[str, str | None]] = []
    for item in env or ():
        name, eq, value = str(item).partition("=")
        out.append((name, value if eq else None))
    return out


#: Compose interpolation: ``$$`` (an escaped dollar: literal text), ``${VAR}``, ``${VAR:-default}``,
#: ``${VAR-default}``, ``${VAR:?error}``, ``${VAR:+replacement}`` (one level of nesting in the
#: argument), ``$VAR``
_REFERENCE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>(?:[^{}]|\{[^{}]*\})*))?\}"
                        r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")
#: ``scheme://user:password@host``: the userinfo of a connection URL
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<netloc>[^/?#\s]*)")


def _literal_part(value: str | None) -> str | None:
    """How much of ``value`` is text written into the Compose file rather than taken from the
    environment or .env: None (all of it comes from ``${VAR}``/``$VAR``), ``"literally"``,
    ``"partly literally"`` (text around a reference), or ``"as a literal default"`` (the text
    after ``:-``/``-``/``:+``/``+`` is in the file and is used whenever the variable is unset).
    ``${VAR:?message}``'s message is not a value."""
    if not value:
        return None
    defaulted, references = False, 0

    def drop(m: re.Match[str]) -> str:
        nonlocal defaulted, references
        if m.group(0) == "$$":
            return "$"
        references += 1
        op, arg = m.group("op") or "", m.group("arg") or ""
        if op and op[-1] in "-+" and _literal_part(arg) is not None:
            defaulted = True
        return ""

    rest = _REFERENCE.sub(drop, str(value))
    if not references:
        return "literally"
    if rest.strip():
        return "partly literally"
    return "as a literal default" if defaulted else None


def _url_password(value: str | None) -> str | None:
    """The password of a ``scheme://user:password@host/...`` value, or None (no URL, no password)."""
    m = _URL_USERINFO.match(value or "")
    if m is None or "@" not in m.group("netloc"):
        return None
    userinfo = m.group("netloc").rpartition("@")[0]
    return userinfo.partition(":")[2] if ":" in userinfo else None


def literal_secrets_of(service: str, environment: Any) -> list[str]:
    """One line per variable of a service's ``environment:`` that carries a secret written in
    the Compose file: a secret-named variable (:data:`SECRET_NAME`, not ``*_FILE``) whose value
    is not all ``${VAR}``, or any variable holding a URL whose password is (``DATABASE_URL=
    postgres://app:hunter2@db/app``).  Names only: the line never holds the value."""
    lines = []
    for var, value in _env_list(environment):
        how = _literal_part(value) if SECRET_NAME.search(var) and not var.endswith("_FILE") else None
        if how is not None:
            lines.append(f"{var} written {how} (service {service})")
            continue
        password = _url_password(value)
        how = _literal_part(password) if password else None
        if how is not None:
            lines.append(f"{var} holds a URL whose password is written {how} (service {service})")
    return lines


def _git_tracked(path: Path) -> bool:
    try:
        proc = subprocess.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch", path.name],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def read_compose_file(path: Path) -> ComposeFacts:
    """Parse a Compose file: images per service, secret-named variables with a literal value
    (names only), env files (``.env`` beside it, ``env_file:`` entries) with their modes."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return ComposeFacts(str(path), {}, (), {}, error=f"cannot read the Compose file {path}: {exc}")
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        return ComposeFacts(str(path), {}, (), {}, error=f"{path}: no 'services:' mapping (not a Compose file?)")
    images: dict[str, str] = {}
    literals: list[str] = []
    depends: dict[str, dict[str, str]] = {}
    aliases: dict[str, tuple[str, ...]] = {}
    env_names: dict[str, tuple[str, ...]] = {}
    env_paths = [path.parent / ".env"]
    for name, svc in doc["services"].items():
        svc = svc if isinstance(svc, dict) else {}
        if svc.get("image"):
            images[str(name)] = str(svc["image"])
        depends[str(name)] = _depends_on(svc.get("depends_on"))
        aliases[str(name)] = _aliases(svc.get("networks"))
        env_names[str(name)] = tuple(var for var, _ in _env_list(svc.get("environment")))
        literals += literal_secrets_of(str(name), svc.get("environment"))
        env_file = svc.get("env_file")
        for f in [env_file] if isinstance(env_file, str) else (env_file or ()):
            env_paths.append(path.parent / str(f))
    modes: dict[str, int] = {}
    tracked: list[str] = []
    for p in env_paths:
        with contextlib.suppress(OSError):
            modes[str(p)] = os.stat(p).st_mode & 0o777
            if _git_tracked(p):
                tracked.append(str(p))
    return ComposeFacts(str(path), images, tuple(literals), modes, tuple(tracked), depends_on=depends,
                        aliases=aliases, environment_names=env_names)


def _depends_on(value: Any) -> dict[str, str]:
    """A service's ``depends_on:``, list form (``[db]``: condition service_started) or
    mapping form (``{db: {condition: service_healthy}}``), as {dependency: condition}."""
    if isinstance(value, dict):
        return {str(k): str(v.get("condition") or "service_started") if isinstance(v, dict) else "service_started"
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return {str(k): "service_started" for k in value}
    return {}


def _aliases(value: Any) -> tuple[str, ...]:
    """Aliases a service's ``networks:`` mapping declares (the list form declares none)."""
    out: list[str] = []
    if isinstance(value, dict):
        for cfg in value.values():
            if isinstance(cfg, dict):
                out += [str(a) for a in cfg.get("aliases") or ()]
    return tuple(dict.fromkeys(out))


def _client(host: str, timeout_s: float) -> Any:
    import docker

    try:
        # ssh://: the ssh program, as `docker -H ssh://` uses it (~/.ssh/config, agent, known_hosts,
        # ProxyJump), not paramiko's own client.  It runs `docker system dial-stdio` on the remote host.
        return docker.DockerClient(base_url=host, timeout=max(1, round(timeout_s)),
                                   use_ssh_client=host.startswith("ssh://"))
    except Exception as exc:
        raise ProbeFailed(_reason(host, exc)) from exc


def _reason(host: str, exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if "permission denied" in low or isinstance(exc, PermissionError):
        return (f"permission denied on the Docker Engine at {host} (the checking user may not use the "
                f"engine's socket: add it to the 'docker' group or use an account that may): {text[:300]}")
    if "timed out" in low or "timeout" in low:
        return f"the Docker Engine at {host} did not answer in time: {text[:300]}"
    if "no such file" in low or "connection refused" in low or "connection aborted" in low:
        return f"the Docker Engine at {host} is unreachable: {text[:300]}"
    return f"the Docker Engine at {host} could not be asked: {type(exc).__name__}: {text[:300]}"


def _tool() -> str:
    try:
        from importlib.metadata import version

        return f"docker SDK {version('docker')}"
    except Exception:
        return "docker SDK"


def snapshot(host: str, project: str, *, compose_file: str | None = None, timeout_s: float = 10.0,
             budget_s: float = 60.0) -> Measurement:
    """Read project ``project`` from the engine at ``host`` (``unix://...``, ``ssh://user@host``,
    ``tcp://...``).  Value: a :class:`ProjectSnapshot`; error when the engine cannot be
    asked or no container of the project exists.

    Bounded: the read runs in a worker thread that gets ``budget_s`` plus one request
    timeout; after that the answer is an error, whatever the transport is stuck in (the SDK's
    SSH transport connects without a timeout of its own)."""
    box: list[Measurement] = []
    worker = threading.Thread(target=lambda: box.append(_snapshot(host, project, compose_file, timeout_s, budget_s)),
                              name=f"containers-snapshot-{project}", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(budget_s + timeout_s)
    if box:
        return box[0]
    return Measurement.failed(
        f"the Docker Engine at {host} did not answer within {budget_s + timeout_s:.0f} s",
        Evidence(probe="containers.snapshot", subject=f"{host} project {project}", method="Docker Engine API",
                 tool=_tool(), duration_s=round(time.monotonic() - started, 3)))


def _snapshot(host: str, project: str, compose_file: str | None, timeout_s: float, budget_s: float) -> Measurement:
    started = time.monotonic()
    method = (f"Docker Engine API at {host}: GET /version, /info, /containers/json?all=1 (label "
              f"{PROJECT_LABEL}={project}, and names starting with {project}), /containers/ID/json, "
              f"/containers/ID/top, /containers/ID/logs?tail={_LOG_TAIL} (size only); Compose file read with "
              "PyYAML (images, names of secret-like variables with literal values, env-file modes)")
    tool = _tool()

    def ev(data: dict[str, Any]) -> Evidence:
        return Evidence(probe="containers.snapshot", subject=f"{host} project {project}", method=method, tool=tool,
                        duration_s=round(time.monotonic() - started, 3), data=data)

    def over_budget() -> None:
        if time.monotonic() - started > budget_s:
            raise ProbeFailed(f"reading project {project} from {host} took longer than {budget_s:.0f} s")

    client = None
    try:
        client = _client(host, timeout_s)
        version = client.version()
        info = client.info()
        over_budget()
        labelled = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
        named = [c for c in client.containers.list(all=True, filters={"name": project})
                 if _name_service(c.name, project) is not None and c.id not in {x.id for x in labelled}]
        if not labelled and not named:
            raise ProbeFailed(f"project {project!r} not found on the Docker Engine at {host}: no container "
                              f"labelled {PROJECT_LABEL}={project} or named {project}_*")
        facts: list[ContainerFacts] = []
        for c in labelled + named:
            over_budget()
            facts.append(_container(client, c, project))
        compose = _compose_facts(compose_file, facts)
        image_ids: dict[str, str | None] = {}
        for ref in sorted(set((compose.images if compose else {}).values())):
            over_budget()
            try:
                image_ids[ref] = str(client.images.get(ref).id)
            except Exception:
                image_ids[ref] = None
    except ProbeFailed as exc:
        return Measurement.failed(str(exc), ev({}))
    except Exception as exc:
        return Measurement.failed(_reason(host, exc), ev({}))
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
    snap = ProjectSnapshot(
        host=host, project=project, engine_version=str(version.get("Version", "")),
        api_version=str(version.get("ApiVersion", "")),
        swarm_state=str((info.get("Swarm") or {}).get("LocalNodeState") or "inactive"),
        containers=tuple(f for f in facts if f.service is not None),
        unlabelled=tuple(f for f in facts if f.service is None),
        compose=compose, image_ids=image_ids, tool=f"{tool}; Docker Engine {version.get('Version', '?')} "
        f"(API {version.get('ApiVersion', '?')})", taken_at=time.time(),
        duration_s=round(time.monotonic() - started, 3))
    return Measurement(snap, f"{len(snap.containers)} Compose containers, {len(snap.unlabelled)} others",
                       ev({"containers": [c.name for c in facts]}))


def _compose_facts(compose_file: str | None, facts: Sequence[ContainerFacts]) -> ComposeFacts | None:
    if compose_file:
        return read_compose_file(Path(compose_file))
    # Compose records where its file was; readable when golive runs on the engine's host
    for f in facts:
        if f.working_dir and f.config_files:
            first = f.config_files.split(",")[0]
            path = Path(first) if os.path.isabs(first) else Path(f.working_dir) / first
            if path.exists():
                return read_compose_file(path)
            return ComposeFacts(str(path), {}, (), {}, error=(
                f"the Compose file {path} (from the containers' labels) is not readable here; set "
                "containers.compose_file in the target to a copy of it"))
    return None


# --------------------------------------------------------------------------- per check


def _evidence(snap: ProjectSnapshot, check: str, subject: str, method: str, data: dict[str, Any]) -> Evidence:
    return Evidence(probe=f"containers.{check}", subject=f"{snap.project}/{subject} on {snap.host}", method=method,
                    tool=snap.tool, duration_s=snap.duration_s, data=data)


ServiceProbe = Callable[[ProjectSnapshot, str, ContainerFacts], tuple[Any, str, dict[str, Any]]]


def per_service(snap: ProjectSnapshot, services: Sequence[str], check: str, method: str,
                probe: ServiceProbe) -> dict[str, Measurement]:
    """One measurement per declared service: ``probe(snapshot, service, container)`` on its
    (first) container; a service without a container is measured as such."""
    out: dict[str, Measurement] = {}
    for service in services:
        found = snap.of_service(service)
        if not found:
            value: Any = None
            display = f"no container for service {service}"
            data: dict[str, Any] = {"containers": []}
        else:
            try:
                value, display, data = probe(snap, service, found[0])
            except ProbeFailed as exc:
                out[service] = Measurement.failed(str(exc), _evidence(snap, check, service, method, {}))
                continue
            data = {"container": found[0].name, **data}
        out[service] = Measurement(value, display, _evidence(snap, check, service, method, data))
    return out


def services_running(snap: ProjectSnapshot, service: str) -> Measurement:
    """Containers of ``service`` and their states; value ``{"containers", "running", "states"}``."""
    found = snap.of_service(service)
    states = {c.name: c.state for c in found}
    running = sum(1 for c in found if c.state == "running")
    display = "no container" if not found else ", ".join(f"{n} {s}" for n, s in states.items())
    return Measurement({"containers": len(found), "running": running, "states": states}, display,
                       _evidence(snap, "services_running", service,
                                 "GET /containers/json?all=1 filtered by the Compose project and service labels",
                                 {"states": states}))


def compose_project(snap: ProjectSnapshot, service: str) -> Measurement:
    """Is the service's container created by Compose for this project (labels
    ``com.docker.compose.project``/``service``), on an engine that is not a Swarm node?
    Value ``{"compose": bool, "containers": [...], "swarm": state}``."""
    labelled = [c.name for c in snap.containers if c.service == service]
    others = [c.name for c in snap.unlabelled if _name_service(c.name, snap.project) == service]
    if labelled:
        display = f"Compose project {snap.project}, service {service} ({', '.join(labelled)})"
    elif others:
        display = f"{', '.join(others)} not created by Compose (no {PROJECT_LABEL}/{SERVICE_LABEL} labels)"
    else:
        display = "no container"
    if snap.swarm_state not in ("inactive", ""):
        display += f"; engine is a Swarm node ({snap.swarm_state})"
    value = {"compose": bool(labelled) and not others, "containers": labelled + others, "swarm": snap.swarm_state}
    return Measurement(value, display, _evidence(
        snap, "compose_project", service, "GET /containers/json: labels com.docker.compose.project and "
        ".service; GET /info: Swarm.LocalNodeState", {"labelled": labelled, "not_compose": others}))


def fmt_s(seconds: float) -> str:
    return f"{seconds:g} s"


def healthcheck(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    """Healthcheck settings (engine defaults applied) and the engine's health status."""
    h = c.healthcheck
    if h is None:
        return ({"defined": False, "status": c.health_status}, "no healthcheck defined",
                {"health": None})
    value = {"defined": True, "interval_s": h.interval_s, "timeout_s": h.timeout_s, "retries": h.retries,
             "status": c.health_status}
    display = (f"interval {fmt_s(h.interval_s)}, timeout {fmt_s(h.timeout_s)}, retries {h.retries}; "
               f"{c.health_status or 'no status'}")
    return value, display, {"health": value}


def restart_policy(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    return c.restart_policy, f"restart {c.restart_policy}", {}


def normalise_port(spec: str) -> str:
    """``"127.0.0.1:8000:8000"`` / ``"8000:8000"`` / ``"0.0.0.0:8000:8000/udp"`` ->
    ``"127.0.0.1:8000:8000/tcp"`` (no address = all addresses = 0.0.0.0)."""
    body, _, proto = spec.partition("/")
    parts = body.rsplit(":", 2)
    if len(parts) == 2:
        parts = ["0.0.0.0", *parts]
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"port {spec!r}: expected [ADDRESS:]HOST_PORT:CONTAINER_PORT[/PROTO]")
    ip = parts[0].strip("[]")
    ip = "0.0.0.0" if ip in ("", "::") else ip
    return f"{ip}:{parts[1]}:{parts[2]}/{proto or 'tcp'}"


def published_ports(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    return (list(c.published), ", ".join(c.published) if c.published else "nothing published",
            {"published": list(c.published)})


def _covering(mounts: Sequence[MountFacts], path: str) -> MountFacts | None:
    best: MountFacts | None = None
    for m in mounts:
        d = m.destination.rstrip("/") or "/"
        if (path == d or path.startswith(d + "/") or d == "/") and (best is None or len(d) > len(best.destination)):
            best = m
    return best


def data_mounts(c: ContainerFacts, paths: Sequence[str]) -> dict[str, str]:
    """Where each data path lives: ``volume NAME``, ``bind SOURCE``, ``anonymous volume``,
    ``tmpfs`` or ``container layer``."""
    out: dict[str, str] = {}
    for path in paths:
        m = _covering(c.mounts, path.rstrip("/") or "/")
        if m is None:
            out[path] = "container layer"
        elif m.type == "volume":
            out[path] = "anonymous volume" if m.anonymous else f"volume {m.name}"
        elif m.type == "bind":
            out[path] = f"bind {m.source}"
        else:
            out[path] = m.type
    return out


def persistent(where: str) -> bool:
    return where.startswith(("volume ", "bind "))


def non_root(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    """The configured user and the uids of the container's processes (``docker top``)."""
    user = c.config_user or "(image default: root unless the image sets USER)"
    value = {"config_user": c.config_user, "uids": list(c.uids) if c.uids is not None else None}
    if c.uids is not None:
        display = f"process uids {', '.join(map(str, c.uids)) or 'none'} (User {user})"
    else:
        display = f"not running; configured User {user}"
    return value, display, value


def is_root(value: Mapping[str, Any]) -> bool:
    """Any process with uid 0, or (not running) a configured user that is root."""
    uids = value.get("uids")
    if uids is not None:
        return 0 in uids
    user = str(value.get("config_user") or "").split(":")[0]
    return user in ("", "0", "root")


def env_names(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    return list(c.env_names), f"{len(c.env_names)} variables set", {"names": list(c.env_names)}


def image_pinned(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    return c.image_ref, c.image_ref or "(no image reference)", {"image": c.image_ref, "image_id": c.image_id}


def pinned(ref: str) -> bool:
    """A digest, or a tag other than ``latest`` (``repo`` alone means ``:latest``)."""
    if "@sha256:" in ref:
        return True
    last = ref.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def image_matches(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    """The Compose file's image for the service vs the running container's image (reference
    and id)."""
    if snap.compose is None or snap.compose.error:
        raise ProbeFailed(snap.compose.error if snap.compose else
                          "no Compose file known: set containers.compose_file in the target")
    want = snap.compose.images.get(service)
    want_id = snap.image_ids.get(want) if want else None
    value = {"compose": want, "compose_id": want_id, "running": c.image_ref, "running_id": c.image_id}
    if want is None:
        display = f"service {service} not in {snap.compose.path} (running {c.image_ref})"
    elif want == c.image_ref and want_id == c.image_id:
        display = f"{c.image_ref} ({c.image_id[7:19]}) as in the Compose file"
    elif want != c.image_ref:
        display = f"running {c.image_ref}, the Compose file says {want}"
    else:
        now = want_id[7:19] if want_id else "no image on this engine"
        display = f"running {c.image_ref} {c.image_id[7:19]}; the tag now names {now}"
    return value, display, value


def log_rotation(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    opts = {k: v for k, v in c.log_options.items() if k in ("max-size", "max-file")}
    value = {"driver": c.log_driver, **opts}
    if c.log_driver == "json-file":
        display = f"json-file, {', '.join(f'{k} {v}' for k, v in opts.items())}" if opts else \
            "json-file without max-size (grows without limit)"
    else:
        display = f"driver {c.log_driver}"
    return value, display, value


def rotated(value: Mapping[str, Any]) -> bool:
    driver = value.get("driver")
    if driver == "json-file":
        return bool(value.get("max-size"))
    return driver in SELF_ROTATING_DRIVERS


def logs_present(snap: ProjectSnapshot, service: str, c: ContainerFacts) -> tuple[Any, str, dict[str, Any]]:
    if c.log_bytes is None:  # syslog, fluentd...: the engine cannot read them back
        raise ProbeFailed(f"the logs of {c.name} are not readable through the engine (log driver {c.log_driver}); "
                          "check them where that driver sends them")
    if c.log_driver == "none":
        return 0, "log driver none: nothing is kept", {"bytes": 0}
    return c.log_bytes, f"{c.log_bytes} bytes in the last {_LOG_TAIL} log lines", {"bytes": c.log_bytes}


def no_literal_secrets(snap: ProjectSnapshot, env_mode_max: int) -> Measurement:
    """Secret-named variables with a literal value in the Compose file (names only); env
    files more open than ``env_mode_max`` or tracked by git.  Value ``{"problems": [...]}``."""
    method = ("Compose file parsed with PyYAML: environment variables named like "
              f"{SECRET_NAME.pattern} whose value is not all ${{VAR}} references (text, a :- default), and "
              "any variable holding a URL whose password is; stat of .env and "
              "env_file entries; git ls-files for those")
    compose = snap.compose
    if compose is None:
        return Measurement.failed("no Compose file known: set containers.compose_file in the target",
                                  _evidence(snap, "no_literal_secrets", "compose file", method, {}))
    if compose.error:
        return Measurement.failed(compose.error, _evidence(snap, "no_literal_secrets", compose.path, method, {}))
    problems = list(compose.literal_secrets)
    problems += [f"{Path(p).name} mode {mode:04o} (more than {env_mode_max:04o})"
                 for p, mode in compose.env_files.items() if mode & ~env_mode_max]
    problems += [f"{Path(p).name} is tracked by git" for p in compose.env_files_tracked]
    modes = {Path(p).name: f"{m:04o}" for p, m in compose.env_files.items()}
    display = "; ".join(problems) if problems else (
        "no literal secrets" + (f"; {', '.join(f'{n} {m}' for n, m in modes.items())}" if modes else ""))
    return Measurement({"problems": problems, "env_files": modes}, display,
                       _evidence(snap, "no_literal_secrets", compose.path, method,
                                 {"literal_secret_names": list(compose.literal_secrets), "env_files": modes}))


def single_network(snap: ProjectSnapshot) -> Measurement:
    """The networks of every Compose container of the project, and the user-defined ones all
    share.  Value ``{"networks": {container: [...]}, "common": [...]}``."""
    nets = {c.name: list(c.networks) for c in snap.containers}
    common: set[str] | None = None
    for c in snap.containers:
        user_defined = {n for n in c.networks if n not in NON_USER_NETWORKS}
        common = user_defined if common is None else common & user_defined
    shared = sorted(common or ())
    if shared:
        display = f"all {len(nets)} containers on {', '.join(shared)}"
    else:
        groups: dict[str, list[str]] = {}
        for name, n in nets.items():
            groups.setdefault(", ".join(n) or "no network", []).append(name)
        display = "no common user-defined network: " + "; ".join(
            f"{', '.join(sorted(v))} on {k}" for k, v in sorted(groups.items()))
    return Measurement({"networks": nets, "common": shared}, display, _evidence(
        snap, "single_network", "all services", "GET /containers/ID/json: NetworkSettings.Networks",
        {"networks": nets}))


_GPU_LINE = re.compile(r"^GPU (\d+): (.+?)(?: \(UUID: [^)]+\))?$")


def parse_nvidia_smi_l(text: str) -> list[str]:
    """``nvidia-smi -L`` output -> ``["GPU 0: NVIDIA H100 80GB HBM3", ...]``."""
    out = []
    for line in text.splitlines():
        m = _GPU_LINE.match(line.strip())
        if m:
            out.append(f"GPU {m.group(1)}: {m.group(2)}")
    return out


def _gpu_request(requests: Sequence[Mapping[str, Any]]) -> str | None:
    for r in requests:
        caps = [c for group in r.get("Capabilities") or () for c in group]
        if "gpu" in caps or r.get("Driver") == "nvidia":
            count = r.get("Count")
            ids = r.get("DeviceIDs")
            what = f"devices {','.join(ids)}" if ids else ("all GPUs" if count == -1 else f"{count} GPU(s)")
            return f"{r.get('Driver') or 'default'} driver, {what}"
    return None


def gpu_access(host: str, snap: ProjectSnapshot, services: Sequence[str], *, timeout_s: float = 20.0
               ) -> dict[str, Measurement]:
    """For each GPU service: the container's GPU device request and, when it runs, the GPUs
    ``nvidia-smi -L`` lists inside it.  Value ``{"requested", "gpus"}``."""
    method = ("GET /containers/ID/json: HostConfig.DeviceRequests (capability gpu / driver nvidia); "
              "then POST /containers/ID/exec `nvidia-smi -L` inside the running container")
    out: dict[str, Measurement] = {}
    for service in services:
        found = snap.of_service(service)
        if not found:
            out[service] = Measurement({"requested": None, "gpus": None}, "no container",
                                       _evidence(snap, "gpu", service, method, {}))
            continue
        c = found[0]
        request = _gpu_request(c.device_requests)
        data: dict[str, Any] = {"container": c.name, "device_requests": [dict(r) for r in c.device_requests]}
        if request is None:
            out[service] = Measurement({"requested": False, "gpus": None}, "no GPU device request",
                                       _evidence(snap, "gpu", service, method, data))
            continue
        if c.state != "running":
            out[service] = Measurement.failed(
                f"GPU requested ({request}) but the container is {c.state}: GPU access not verifiable",
                _evidence(snap, "gpu", service, method, data))
            continue
        try:
            client = _client(host, timeout_s)
            try:
                result = client.containers.get(c.id).exec_run(["nvidia-smi", "-L"])
                rc, output = result.exit_code, result.output
            finally:
                client.close()
        except Exception as exc:
            out[service] = Measurement.failed(_reason(host, exc), _evidence(snap, "gpu", service, method, data))
            continue
        text = (output or b"").decode(errors="replace") if isinstance(output, bytes) else str(output or "")
        gpus = parse_nvidia_smi_l(text) if rc == 0 else []
        data["nvidia_smi_exit"] = rc
        display = (f"GPU requested ({request}); nvidia-smi in the container: "
                   + (", ".join(gpus) if gpus else f"no GPU (exit {rc}: {text.strip()[:120]})"))
        out[service] = Measurement({"requested": True, "gpus": gpus}, display,
                                   _evidence(snap, "gpu", service, method, {**data, "gpus": gpus}))
    return out


# --------------------------------------------------------------------------- start order


def _compose_or_fail(snap: ProjectSnapshot, check: str, subject: str, method: str) -> ComposeFacts | Measurement:
    compose = snap.compose
    if compose is None:
        return Measurement.failed("no Compose file known: set containers.compose_file in the target",
                                  _evidence(snap, check, subject, method, {}))
    if compose.error:
        return Measurement.failed(compose.error, _evidence(snap, check, subject, method, {}))
    return compose


def start_order(snap: ProjectSnapshot, required: Mapping[str, Sequence[str]]) -> dict[str, Measurement]:
    """For each service the target says must start after others: its ``depends_on:`` in the
    Compose file (list or mapping form, with each dependency's condition).  Value
    ``{"depends_on": {dependency: condition}, "required": [...], "missing": [...]}``."""
    method = "Compose file parsed with PyYAML: services.SERVICE.depends_on (list form, or mapping with condition:)"
    out: dict[str, Measurement] = {}
    for service, needed in required.items():
        compose = _compose_or_fail(snap, "start_order", service, method)
        if isinstance(compose, Measurement):
            out[service] = compose
            continue
        present = service in compose.depends_on
        deps = dict(compose.depends_on.get(service) or {})
        missing = [d for d in needed if d not in deps]
        if not present:
            display = f"service {service} is not in {compose.path}"
        elif deps:
            display = "depends on " + ", ".join(f"{d} ({c})" for d, c in deps.items())
        else:
            display = "no depends_on"
        if missing and present:
            display += f"; missing {', '.join(missing)}"
        value = {"depends_on": deps, "required": list(needed), "missing": missing}
        out[service] = Measurement(value, display, _evidence(snap, "start_order", service, method,
                                                             {"compose_file": compose.path, **value}))
    return out


# --------------------------------------------------------------------------- service discovery


class HostUnparsable(ValueError):
    """The value is no URL or host[:port].  The message never quotes the value (it may hold
    a password)."""


class HostInterpolated(ValueError):
    """The host is a ``${VAR}`` Compose fills in at deploy time: not known from the file."""


_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
#: names that mean the Docker host, not a container (Docker Desktop, Engine's host-gateway)
DOCKER_HOST_NAMES = frozenset({"host.docker.internal", "gateway.docker.internal", "host-gateway"})


def host_of(value: str) -> str:
    """The host part of a connection string, and nothing else: ``postgres://u:p@db:5432/x``,
    ``http://api:8000``, ``db:5432``, ``db`` -> ``db``; ``[::1]:5432`` -> ``::1``.  The user
    information (a password) is dropped by taking what follows the last ``@`` of the
    authority, as RFC 3986 parses it.  Raises :class:`HostUnparsable` (no URL or
    host[:port]) or :class:`HostInterpolated` (``${VAR}`` in the host)."""
    import ipaddress

    text = value.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    authority = re.split(r"[/?#]", text, maxsplit=1)[0]
    hostport = authority.rpartition("@")[2]
    if "$" in hostport:
        raise HostInterpolated("the host is a ${VAR} that Compose fills in at deploy time: not known from the "
                               "Compose file")
    if hostport.startswith("["):
        host, close, rest = hostport[1:].partition("]")
        if not close or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            raise HostUnparsable("not a URL or host[:port] (unbalanced [IPv6] address)")
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            raise HostUnparsable("not a URL or host[:port] (no IPv6 address between [ ])") from None
    try:
        return str(ipaddress.ip_address(hostport))   # a bare address, IPv6 without brackets included
    except ValueError:
        pass
    host, colon, port = hostport.partition(":")
    if colon and not re.fullmatch(r"\d{1,5}", port):
        raise HostUnparsable("not a URL or host[:port] (the part after the host is no port number)")
    if not _HOSTNAME.match(host):
        raise HostUnparsable("not a URL or host[:port] (no host name in it)")
    return host.lower()


@dataclass(frozen=True)
class EnvHost:
    """What golive keeps of one variable of a service's ``environment:``: whether it is
    there and its host part (never the value)."""

    present: bool
    host: str | None = None
    problem: str | None = None       # unparsable: why (without the value)
    interpolated: bool = False


def read_env_hosts(path: Path, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], EnvHost]:
    """For each (service, variable) in ``wanted``: the host part of the variable's value in
    the Compose file's ``environment:`` (list or mapping form).  Only the named variables
    are parsed and only their host is kept: the values (a DATABASE_URL holds a password)
    leave this function in no form."""
    import yaml

    doc = yaml.safe_load(path.read_text())
    services = doc.get("services") if isinstance(doc, dict) else None
    services = services if isinstance(services, dict) else {}
    out: dict[tuple[str, str], EnvHost] = {}
    for service, names in wanted.items():
        svc = services.get(service)
        env = dict(_env_list(svc.get("environment"))) if isinstance(svc, dict) else {}
        for name in names:
            if name not in env:
                out[(service, name)] = EnvHost(present=False)
                continue
            value = env[name]
            try:
                if value is None:   # `- NAME` / `NAME:` alone: taken from the shell at deploy time
                    raise HostInterpolated("the value is taken from the deploying shell's environment: not "
                                           "known from the Compose file")
                out[(service, name)] = EnvHost(present=True, host=host_of(value))
            except HostInterpolated as exc:
                out[(service, name)] = EnvHost(present=True, problem=str(exc), interpolated=True)
            except HostUnparsable as exc:
                out[(service, name)] = EnvHost(present=True, problem=str(exc))
    return out


def _host_is(snap: ProjectSnapshot, host: str, client: str, target: str, aliases: Sequence[str]) -> tuple[bool, str]:
    """Is ``host`` the name Compose's DNS gives ``target`` (its service name or an alias the
    Compose file declares)?  Otherwise, what it is instead."""
    import ipaddress

    if host == target.lower():
        return True, f"the service name {target}"
    if host in (a.lower() for a in aliases):
        return True, f"an alias of {target} (networks: aliases:)"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is not None:
        if addr.is_loopback:
            return False, f"a loopback address: the {client} container itself, not the service {target}"
        owners = [f"{c.name} on {n}" for c in (*snap.containers, *snap.unlabelled)
                  for n, f in c.network_facts.items() if f.ip and ipaddress.ip_address(f.ip) == addr]
        whose = f" ({'; '.join(owners)}: it changes when the container is recreated)" if owners else ""
        return False, f"an IP address{whose}, not the service name {target}"
    if host == "localhost" or host.endswith(".localhost"):
        return False, f"localhost: the {client} container itself, not the service {target}"
    if host in DOCKER_HOST_NAMES:
        return False, f"the Docker host, not the service {target}"
    for c in (*snap.containers, *snap.unlabelled):
        if c.name.lower() == host:
            return False, f"the container name {c.name}, not the service name {c.service or target}"
    services = {c.service for c in snap.containers if c.service}
    if host in {s.lower() for s in services}:
        return False, f"the service {host}, not {target}"
    return False, f"not the service name {target} (nor an alias the Compose file declares for it)"


def _answers(client: ContainerFacts, targets: Sequence[ContainerFacts], name: str
             ) -> tuple[list[str], list[str], bool]:
    """User-defined networks the client shares with the target's containers, those on which
    every target container answers to ``name``, and whether each target container answers
    on at least one of them."""
    shared: set[str] = set()
    answering: set[str] = set()
    each = bool(targets)
    for t in targets:
        nets = [n for n in client.networks if n in t.networks and n not in NON_USER_NETWORKS]
        shared.update(nets)
        ok = [n for n in nets if name.lower() in (x.lower() for x in t.network_facts.get(n, NetworkFacts(())).names)]
        answering.update(ok)
        each = each and bool(ok)
    return sorted(shared), sorted(answering), each


def service_discovery(snap: ProjectSnapshot, connects: Mapping[str, Mapping[str, str]]) -> dict[str, Measurement]:
    """For each (service, variable -> target service) the target declares: (a) the host part
    of the variable in the Compose file's ``environment:`` (only the host is read out),
    (b) whether that host is the target's service name or a declared alias (not an IP
    address, localhost, the Docker host or a container name), (c) whether the two services'
    containers share a user-defined network on which the target's containers answer to that
    name (``NetworkSettings.Networks.*.Aliases`` / ``DNSNames``).  Subject ``SERVICE/VAR``."""
    method = ("Compose file parsed with PyYAML: services.SERVICE.environment.VAR, host part only (the value is "
              "never kept); GET /containers/ID/json: NetworkSettings.Networks (names, Aliases, DNSNames, IPAddress) "
              "of both services' containers")
    out: dict[str, Measurement] = {}
    subjects = [(s, var, t) for s, m in connects.items() for var, t in m.items()]
    compose = _compose_or_fail(snap, "service_discovery", "compose file", method)
    if isinstance(compose, Measurement):
        return {f"{s}/{var}": compose for s, var, _ in subjects}
    try:
        hosts = read_env_hosts(Path(compose.path), {s: list(m) for s, m in connects.items()})
    except Exception as exc:   # read again since the snapshot: gone or changed since
        failed = Measurement.failed(f"cannot read the Compose file {compose.path}: {type(exc).__name__}",
                                    _evidence(snap, "service_discovery", "compose file", method, {}))
        return {f"{s}/{var}": failed for s, var, _ in subjects}
    for service, var, target in subjects:
        subject = f"{service}/{var}"
        h = hosts[(service, var)]
        value: dict[str, Any] = {"service": service, "variable": var, "target": target,
                                 "in_environment": h.present, "host": h.host}
        if h.interpolated:
            out[subject] = Measurement.failed(f"{var} of {service}: {h.problem}; write the service name into the "
                                              "Compose file's environment: (only the password as ${VAR})",
                                              _evidence(snap, "service_discovery", subject, method, value))
            continue
        parts: list[str] = []
        host_ok = False
        if not h.present:
            parts.append(f"{var} is not in {service}'s environment: in the Compose file")
        elif h.host is None:
            parts.append(f"{var} of {service}: {h.problem}")
        else:
            host_ok, what = _host_is(snap, h.host, service, target, compose.aliases.get(target, ()))
            parts.append(f"{var} host {h.host} is {what}")
            value["host_is"] = what
        clients, targets = snap.of_service(service), snap.of_service(target)
        name = h.host if host_ok and h.host else target
        if not clients or not targets:
            missing = " and ".join(s for s, found in ((service, clients), (target, targets)) if not found)
            parts.append(f"no container for {missing}")
            shared, answering, network_ok = list[str](), list[str](), False
        else:
            shared, answering, network_ok = _answers(clients[0], targets, name)
            if network_ok:
                parts.append(f"{target} answers as {name} on {', '.join(answering)}")
            elif shared:
                parts.append(f"{target} does not answer as {name} on {', '.join(shared)} (no such alias)")
            else:
                parts.append(f"{service} and {target} share no user-defined network ({service}: "
                             f"{', '.join(clients[0].networks) or 'none'}; {target}: "
                             f"{', '.join(sorted({n for t in targets for n in t.networks})) or 'none'})")
        value.update({"host_ok": host_ok, "shared_networks": shared, "answers_on": answering,
                      "network_ok": network_ok})
        out[subject] = Measurement(value, "; ".join(parts), _evidence(snap, "service_discovery", subject, method,
                                                                      dict(value)))
    return out
