"""Compose projects for the containers family's self-tests, on the private engine of
:mod:`lab.docker_engine`.

:func:`start_compliant` brings up the reference deployment: an ``api`` (busybox ``httpd``
serving ``/health`` on 8000, published on 127.0.0.1 only) and a ``db`` (a shell loop that
keeps a heartbeat file in its data directory ``/var/lib/db``, on a named volume), both
running as uid 10001, with a healthcheck (interval 2 s, timeout 2 s, 3 retries), restart
``always``, json-file logs rotated (max-size 10m, max-file 3), on one user-defined network,
the database password given as ``${DB_PASSWORD}`` from a ``.env`` file of mode 0600.

:func:`start_broken` brings up ONE project in which every service is the compliant
``api`` or ``db`` with exactly one thing broken (:data:`BROKEN`): a port on 0.0.0.0, an
extra published port, no healthcheck, a failing healthcheck, restart ``no``, database data
not on a volume, running as root, ``:latest``, a literal password, no log rotation, no log
output, a second network, an image changed in the Compose file after ``up`` (drift), a
container that Compose did not create, no ``depends_on`` / one of two dependencies missing,
and a ``DATABASE_URL`` whose host is the database container's IP address or localhost (the
one on the second network names the database by its service name but cannot reach it).  One project keeps the test session short; each
check is judged per service, so each defect is caught by the check meant to catch it.

Both return a :class:`ComposeProject` with the target fragment golive needs
(:meth:`ComposeProject.target_fragment`).  Traffic: only the published 127.0.0.1 ports are
ever contacted (containers sit in 10.199.192.0/18 and are never addressed directly).
"""
from __future__ import annotations

import contextlib
import copy
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.docker_engine import APP_UID, BASE_IMAGE, BASE_TAG, DRIFT_TAG, DockerEngine
from lab.procs import LabError, free_ports

IMAGE = f"{BASE_IMAGE}:{BASE_TAG}"
ROTATED_LOGS = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
HEALTH_INTERVAL = "2s"
API_ENV_NAMES = ("API_HOST", "API_PORT", "NUM_WORKERS", "DB_PASSWORD")
DB_ENV_NAMES = ("POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD")
DB_DATA = "/var/lib/db"
#: how the api reaches the db: by its Compose service name; the password from .env
DATABASE_URL = "postgres://app:${DB_PASSWORD}@db:5432/app"

#: broken service -> what is broken (the check that must catch it)
BROKEN: dict[str, str] = {
    "public-port": "api published on 0.0.0.0 (published_ports)",
    "extra-port": "api publishes a second, undeclared port (published_ports)",
    "no-health": "no healthcheck (healthcheck)",
    "unhealthy": "healthcheck always fails (healthcheck)",
    "restart-no": "restart: 'no' (restart_policy)",
    "db-no-volume": "database data in the container layer (stateful_volumes)",
    "root": "no user: runs as root (non_root)",
    "latest": "image :latest (image_pinned)",
    "literal-secret": "literal DB_PASSWORD in the Compose file (no_literal_secrets)",
    "no-rotation": "json-file logs without max-size (log_rotation)",
    "silent": "writes no log output (logs_present)",
    "split-net": "on a second network (single_network)",
    "drift": "Compose file names another image than the running one (image_matches_compose)",
    "stopped": "its container was stopped (services_running)",
    "no-order": "no depends_on although it needs db (start_order)",
    "half-order": "depends_on db but not ok (start_order)",
    "sd-ip": "DATABASE_URL names the db container's IP address, with a literal password (service_discovery)",
    "sd-localhost": "DATABASE_URL names localhost (service_discovery)",
}
#: declared in the target, never deployed (services_running)
MISSING = "missing"
#: the container started with ``docker run``, not Compose (compose_project)
NOT_COMPOSE = "no-compose"


def _api(port: int | None, *, bind: str = "127.0.0.1") -> dict[str, Any]:
    svc: dict[str, Any] = {
        "image": IMAGE,
        "command": ["sh", "-c", "echo api listening on :8000; exec httpd -f -v -p 8000 -h /www"],
        "user": str(APP_UID),
        "restart": "always",
        "environment": {"API_HOST": "0.0.0.0", "API_PORT": "8000", "NUM_WORKERS": "4",
                        "DB_PASSWORD": "${DB_PASSWORD}"},
        "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/health"],
                        "interval": HEALTH_INTERVAL, "timeout": "2s", "retries": 3},
        "logging": copy.deepcopy(ROTATED_LOGS),
        "networks": ["app"],
    }
    if port is not None:
        svc["ports"] = [f"{bind}:{port}:8000"]
    return svc


# $$ escapes Compose's interpolation; `sleep & wait` lets the TERM trap run at once.
_DB_LOOP = f"trap 'exit 0' TERM; while :; do date > {DB_DATA}/heartbeat; sleep 2 & wait $$!; done"


def _db(volume: str | None, *, announce: bool = True) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "image": IMAGE,
        "command": ["sh", "-c", ("echo db ready; " if announce else "") + _DB_LOOP],
        "user": str(APP_UID),
        "restart": "always",
        "environment": {"POSTGRES_USER": "app", "POSTGRES_DB": "app", "POSTGRES_PASSWORD": "${DB_PASSWORD}"},
        "healthcheck": {"test": ["CMD", "test", "-f", f"{DB_DATA}/heartbeat"],
                        "interval": HEALTH_INTERVAL, "timeout": "2s", "retries": 3},
        "logging": copy.deepcopy(ROTATED_LOGS),
        "networks": ["app"],
    }
    if volume:
        svc["volumes"] = [f"{volume}:{DB_DATA}"]
    return svc


@dataclass
class ComposeProject:
    """A Compose project running on the lab engine."""

    engine: DockerEngine
    name: str
    directory: Path
    #: the target's ``services:`` declarations that match this deployment
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    secret: str = ""
    #: a password written literally into a DATABASE_URL (a canary: only its host may be reported)
    url_password: str = ""

    @property
    def compose_file(self) -> Path:
        return self.directory / "docker-compose.yml"

    def target_fragment(self, **services_override: dict[str, Any]) -> dict[str, Any]:
        """The target's ``containers:`` fragment for this project."""
        services = {**copy.deepcopy(self.services), **services_override}
        return {"host": self.engine.host, "project": self.name, "compose_file": str(self.compose_file),
                "services": services}

    def down(self) -> None:
        """Remove the project's containers, networks and volumes (and any non-Compose
        container named after it)."""
        with contextlib.suppress(Exception):
            self.engine.compose(self.directory, self.name, "down", "-v", "-t", "1", "--remove-orphans",
                                timeout=120, check=False)
        with contextlib.suppress(Exception):
            for c in self.engine.client().containers.list(all=True, filters={"name": self.name}):
                c.remove(force=True, v=True)


def _write(directory: Path, compose: dict[str, Any], secret: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "docker-compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    env = directory / ".env"
    env.write_text(f"DB_PASSWORD={secret}\n")
    env.chmod(0o600)


def _up(engine: DockerEngine, directory: Path, name: str) -> None:
    engine.remember_bridges()
    try:
        engine.compose(directory, name, "up", "-d", "--no-build", timeout=240)
    finally:
        engine.remember_bridges()


def wait_health(engine: DockerEngine, project: str, want: dict[str, str], timeout_s: float = 60.0) -> None:
    """Wait (bounded) until each service's container reports the wanted health status."""
    client = engine.client()
    deadline = time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    while True:
        seen = {}
        for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
            service = c.labels.get("com.docker.compose.service", "")
            seen[service] = ((c.attrs.get("State") or {}).get("Health") or {}).get("Status", "none")
        if all(seen.get(s) == status for s, status in want.items()):
            return
        if time.monotonic() > deadline:
            raise LabError(f"project {project}: health not as wanted after {timeout_s:.0f} s: "
                           f"want {want}, have {seen}")
        time.sleep(0.5)


def start_compliant(engine: DockerEngine, directory: Path, *, name: str | None = None) -> ComposeProject:
    """Bring up the compliant project and wait until both services are healthy."""
    name = name or f"glc{secrets.token_hex(3)}"
    (port,) = free_ports(1)
    secret = f"canary-{secrets.token_hex(8)}"
    api = _api(port)
    api["environment"]["DATABASE_URL"] = DATABASE_URL
    compose = {
        "version": "2.4",
        "services": {"api": {**api, "depends_on": ["db"]}, "db": _db("dbdata")},
        "networks": {"app": {}},
        "volumes": {"dbdata": {}},
    }
    _write(directory, compose, secret)
    project = ComposeProject(engine, name, directory, secret=secret, services={
        "api": {"ports": [f"127.0.0.1:{port}:8000"], "env": list(API_ENV_NAMES), "depends_on": ["db"],
                "connects_to": {"DATABASE_URL": "db"}},
        "db": {"stateful": [DB_DATA], "env": list(DB_ENV_NAMES)},
    })
    try:
        _up(engine, directory, name)
        wait_health(engine, name, {"api": "healthy", "db": "healthy"})
    except BaseException:
        project.down()
        raise
    return project


def start_broken(engine: DockerEngine, directory: Path, *, name: str | None = None) -> ComposeProject:
    """Bring up the one project whose services each break one rule (:data:`BROKEN`)."""
    name = name or f"glb{secrets.token_hex(3)}"
    p_public, p_extra, p_extra2, p_other = free_ports(4)
    secret = f"canary-{secrets.token_hex(8)}"
    literal = f"literal-{secrets.token_hex(8)}"
    url_password = f"urlpw-{secrets.token_hex(8)}"

    def with_url(svc: dict[str, Any], url: str = DATABASE_URL) -> dict[str, Any]:
        svc["environment"]["DATABASE_URL"] = url
        return svc
    services: dict[str, dict[str, Any]] = {
        "public-port": _api(p_public, bind="0.0.0.0"),
        "extra-port": {**_api(p_extra), "ports": [f"127.0.0.1:{p_extra}:8000", f"127.0.0.1:{p_extra2}:9000"]},
        "no-health": {k: v for k, v in _api(None).items() if k != "healthcheck"},
        "unhealthy": {**_api(None), "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null",
                                                             "http://127.0.0.1:8000/missing"],
                                                    "interval": "1s", "timeout": "1s", "retries": 1}},
        "restart-no": {**_api(None), "restart": "no"},
        "db-no-volume": _db(None),
        "root": {k: v for k, v in _api(None).items() if k != "user"},
        "latest": {**_api(None), "image": f"{BASE_IMAGE}:latest"},
        "literal-secret": {**_api(None), "environment": {**_api(None)["environment"], "DB_PASSWORD": literal}},
        "no-rotation": {**_api(None), "logging": {"driver": "json-file"}},
        "silent": _db("silentdata", announce=False),
        # names the db by its service name, but from the other network
        "split-net": {**with_url(_api(None)), "networks": ["other"]},
        "drift": _api(None),
        "stopped": _api(None),
        "ok": {**with_url(_api(p_other)), "depends_on": ["db"]},
        "db": _db("dbdata"),
        "no-order": _api(None),
        "half-order": {**_api(None), "depends_on": {"db": {"condition": "service_healthy"}}},
        # the db's address is known once it runs: the service is recreated with it after `up`
        "sd-ip": with_url(_api(None)),
        "sd-localhost": with_url(_api(None), "postgres://app:${DB_PASSWORD}@localhost:5432/app"),
    }
    compose = {"version": "2.4", "services": services, "networks": {"app": {}, "other": {}},
               "volumes": {"silentdata": {}, "dbdata": {}}}
    _write(directory, compose, secret)
    declared: dict[str, dict[str, Any]] = {s: {"env": list(API_ENV_NAMES)} for s in services}
    for s in ("db-no-volume", "silent", "db"):
        declared[s] = {"stateful": [DB_DATA], "env": list(DB_ENV_NAMES)}
    declared["public-port"]["ports"] = [f"127.0.0.1:{p_public}:8000"]
    declared["extra-port"]["ports"] = [f"127.0.0.1:{p_extra}:8000"]
    declared["ok"]["ports"] = [f"127.0.0.1:{p_other}:8000"]
    for s in ("ok", "no-order"):
        declared[s]["depends_on"] = ["db"]
    declared["half-order"]["depends_on"] = ["db", "ok"]
    for s in ("ok", "sd-ip", "sd-localhost", "split-net"):
        declared[s]["connects_to"] = {"DATABASE_URL": "db"}
    declared[NOT_COMPOSE] = {}
    declared[MISSING] = {}
    project = ComposeProject(engine, name, directory, secret=secret, services=declared, url_password=url_password)
    try:
        _up(engine, directory, name)
        # sd-ip: DATABASE_URL with the db container's address (and a literal password: a canary)
        db = engine.client().containers.get(f"{name}_db_1")
        ip = db.attrs["NetworkSettings"]["Networks"][f"{name}_app"]["IPAddress"]
        services["sd-ip"]["environment"]["DATABASE_URL"] = f"postgres://app:{url_password}@{ip}:5432/app"
        (directory / "docker-compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
        engine.compose(directory, name, "up", "-d", "--no-deps", "--no-build", "sd-ip", timeout=120)
        # drift: the Compose file now names another build than the one running
        services["drift"]["image"] = f"{BASE_IMAGE}:{DRIFT_TAG}"
        (directory / "docker-compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
        engine.client().containers.get(f"{name}_stopped_1").stop(timeout=1)
        # a container named like the project's but started without Compose (no labels)
        engine.client().containers.run(IMAGE, ["sh", "-c", "echo manual; exec sleep 3600"], detach=True,
                                       name=f"{name}_{NOT_COMPOSE}_1", user=str(APP_UID), init=True)
        wait_health(engine, name, {"ok": "healthy", "unhealthy": "unhealthy", "db-no-volume": "healthy",
                                   "silent": "healthy"})
    except BaseException:
        project.down()
        raise
    return project


def create_gpu_requesting(engine: DockerEngine, *, name: str | None = None) -> str:
    """A project whose one service's container requests all GPUs (``--gpus all``) and is
    created but not started: this engine has no NVIDIA runtime to start it with.  The
    labels are the ones Compose sets.  Returns the project name."""
    import docker

    name = name or f"glg{secrets.token_hex(3)}"
    labels = {"com.docker.compose.project": name, "com.docker.compose.service": "worker",
              "com.docker.compose.version": "1.29.2", "com.docker.compose.container-number": "1",
              "com.docker.compose.oneoff": "False"}
    engine.client().containers.create(
        IMAGE, ["sh", "-c", "exec sleep 3600"], name=f"{name}_worker_1", labels=labels, user=str(APP_UID),
        network_mode="none", device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])
    return name


def literal_in_compose(project: ComposeProject) -> str:
    """The literal password written into the broken Compose file (a canary for tests)."""
    doc = yaml.safe_load(project.compose_file.read_text())
    return str(doc["services"]["literal-secret"]["environment"]["DB_PASSWORD"])


def env_file_mode(project: ComposeProject) -> int:
    return os.stat(project.directory / ".env").st_mode & 0o777


def compose_text(project: ComposeProject) -> str:
    """The project's Compose file as written (for canary tests)."""
    return project.compose_file.read_text()
