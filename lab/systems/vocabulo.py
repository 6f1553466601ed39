"""The Vocabulo ML lab, built as its seed document (../shared/seeds/002_*.txt, "Deployment
Architecture", "Deployment Process", "Security Considerations") describes: a Docker Compose
project on the lab's private Docker Engine (:mod:`lab.docker_engine`):

- ``postgres``: PostgreSQL 15 (``golive-lab/postgres:15``, :mod:`lab.images`), one container
  shared by both APIs, its data directory on the named volume ``pgdata``; the tables come
  from ``lsf_app_dump.sql`` restored after ``up`` the way the document's step 5 does
  (``docker-compose exec -T postgres psql -U $POSTGRES_USER -d $POSTGRES_DB < lsf_app_dump.sql``);
- ``quiz-api`` and ``junior-api``: the two FastAPI services (:mod:`lab.systems.vocabulo_app`,
  uvicorn on 8000), built with ``docker-compose build`` from ``vocabulo_quizz_ml/`` and
  ``vocabulo_junior_ml/`` on the ``golive-lab/python:3.11`` image, running as uid 10001,
  reaching the database by its Compose service name ``postgres``;
- ``pgadmin``: the document's "pgAdmin picture", a stand-in web page (busybox ``httpd`` on
  80) that publishes nothing;
- all four on ONE user-defined network (``vocabulo``); the only published ports are the two
  APIs' 8000, each on 127.0.0.1 (the document gives both APIs http://localhost:8000 -- a
  conflict, C16 -- so each gets its own free loopback port);
- secrets (``POSTGRES_USER``, ``POSTGRES_PASSWORD``, ``POSTGRES_DB``, ``PGADMIN_PASSWORD``)
  in ``.env`` (mode 0600) beside the Compose file, referenced as ``${VAR}``;
- the manual backup the document asks for ("Regular database backups should be performed
  manually"): a ``pg_dump`` of the restored database in ``backups/`` with an operator log
  line, dated two days back (the operator's last manual backup).

golive reads the deployment through the engine's socket (containers family), calls the
Quiz API on its loopback port (ports, release), stats ``.env`` (services) and reads the
database with a read-only role ``golive_ro`` at the ``postgres`` container's address on the
Compose network (10.199.192.0/18, checked with ``ip route get`` to be on this engine's
bridge): PostgreSQL is not published, as the document wants.

The document's host ports (8000; 5432 where a broken variant publishes PostgreSQL) are free
loopback ports chosen at start.  Each broken variant changes one thing the document's
"Security Considerations" or "Verify Deployment" name (see :data:`VARIANTS`).
``GOLIVE_LAB_VOCABULO_TIMING=1`` prints how long each start and stop phase took.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lab.procs import LabError, StopsOnExit, free_ports, port_in_use_error, register, unregister
from lab.systems import variant_key

DESCRIPTION = ("Vocabulo ML: Docker Compose on the lab's engine - PostgreSQL (volume, lsf_app dump), Quiz and "
               "Junior FastAPI services, pgAdmin stand-in, one network, only the API ports on 127.0.0.1, "
               "secrets from .env")
HERE = Path(__file__).resolve().parent
VERSION = "1.0.0"
DB_USER = "vocabulo"
DB_NAME = "lsf_app"
RO_ROLE = "golive_ro"
PGDATA = "/var/lib/postgresql/data"
PG_BIN = "/usr/lib/postgresql/15/bin"  # the image's PostgreSQL tools, by path (whatever its PATH)
PG_SOCKET = "/tmp"  # golive-lab/postgres's unix socket folder (local connections: trust, like the official image)
API_PORT = 8000
DB_PORT = 5432
#: the tables of lsf_app_dump.sql (VO-DB-02)
TABLES = ("categorie", "mot", "quiz_reponse")
API_ENV = ("DB_HOST", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
DB_ENV = ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
#: healthcheck of the lab (the document sets none): short, so the lab knows quickly that it is up
HEALTH = {"interval": "2s", "timeout": "3s", "retries": 15}
#: the value of POSTGRES_PASSWORD (optional; the self-test gives a canary)
PASSWORD_ENV = "GOLIVE_LAB_VOCABULO_DB_PASSWORD"
BACKUP_PREFIX = "lsf_app-"
PORT_ATTEMPTS = 3
STAMP = "%Y%m%dT%H%M%SZ"
#: the APIs, as the document names their repositories: Compose service -> (build folder, app object)
APIS: dict[str, tuple[str, str]] = {
    "quiz-api": ("vocabulo_quizz_ml", "quiz_app"),
    "junior-api": ("vocabulo_junior_ml", "junior_app"),
}


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What one variant changes (defaults: the compliant lab)."""

    description: str
    db_published: bool = False  # postgres publishes 5432 on 0.0.0.0
    literal_password: bool = False  # POSTGRES_PASSWORD written into docker-compose.yml
    service_down: str | None = None  # a service stopped after the deployment


VARIANTS: dict[str, Knobs] = {
    "compliant": Knobs("Vocabulo ML as documented: every check passes but this machine's limits"),
    "db_port_published": Knobs("PostgreSQL's 5432 published on 0.0.0.0 (the database reachable from outside)",
                               db_published=True),
    "literal_password": Knobs("POSTGRES_PASSWORD written literally into docker-compose.yml instead of ${VAR} from "
                              ".env", literal_password=True),
    "service_down": Knobs("the Junior API's container stopped after the deployment (docker-compose ps: Exit)",
                          service_down="junior-api"),
}


def _dockerfile(image: str, app: str) -> str:
    return (f"FROM {image}\nWORKDIR /app\nCOPY vocabulo_app.py /app/vocabulo_app.py\nUSER 10001\nEXPOSE {API_PORT}\n"
            f'CMD ["python3", "-m", "uvicorn", "vocabulo_app:{app}", "--host", "0.0.0.0", "--port", "{API_PORT}"]\n')


def render_compose(knobs: Knobs, *, python_ref: str, postgres_ref: str, busybox_ref: str, ports: dict[str, int],
                   password: str) -> dict[str, Any]:
    """The project's docker-compose.yml (as a mapping)."""
    secret = password if knobs.literal_password else "${POSTGRES_PASSWORD}"
    db_env = {"POSTGRES_USER": "${POSTGRES_USER}", "POSTGRES_PASSWORD": secret, "POSTGRES_DB": "${POSTGRES_DB}"}
    services: dict[str, Any] = {
        "postgres": {
            "image": postgres_ref,
            "environment": dict(db_env),
            "volumes": [f"pgdata:{PGDATA}"],
            "networks": ["vocabulo"],
            "restart": "unless-stopped",
            "healthcheck": {"test": ["CMD", f"{PG_BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(DB_PORT)], **HEALTH},
        },
    }
    if knobs.db_published:
        services["postgres"]["ports"] = [f"0.0.0.0:{ports['db']}:{DB_PORT}"]
    for name, (folder, _app) in APIS.items():
        services[name] = {
            "build": {"context": f"./{folder}"},
            "image": f"vocabulo/{name}:{VERSION}",
            "environment": {"DB_HOST": "postgres", **db_env},
            "ports": [f"127.0.0.1:{ports[name]}:{API_PORT}"],
            "depends_on": ["postgres"],
            "networks": ["vocabulo"],
            "restart": "unless-stopped",
            "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{API_PORT}/health"],
                            **HEALTH},
        }
    services["pgadmin"] = {
        "image": busybox_ref,
        "command": ["sh", "-c", "echo pgadmin stand-in listening on :80; exec httpd -f -v -p 80 -h /www"],
        "user": "10001",
        "environment": {"PGADMIN_DEFAULT_EMAIL": "admin@vocabulo.invalid",
                        "PGADMIN_DEFAULT_PASSWORD": "${PGADMIN_PASSWORD}"},
        "depends_on": ["postgres"],
        "networks": ["vocabulo"],
        "restart": "unless-stopped",
    }
    return {"version": "2.4", "services": services, "networks": {"vocabulo": {}}, "volumes": {"pgdata": {}}}


class RunningVocabulo(StopsOnExit):
    """A started Vocabulo lab.  ``ports``: the host ports of ``quiz-api``, ``junior-api`` and
    ``db`` (where the db_port_published variant publishes PostgreSQL; closed otherwise)."""

    def __init__(self, workdir: Path, variant: str) -> None:
        self.workdir = workdir
        self.variant = variant
        self.knobs = VARIANTS[variant]
        self.project_dir = workdir / "vocabulo"
        self.backup_dir = workdir / "backups"
        self.ro_password_file = workdir / "secrets" / "golive_ro.password"
        self.project = f"vocabulo{secrets.token_hex(3)}"
        self.ports: dict[str, int] = {}
        self.db_address = ""
        #: the account that deploys (runs docker-compose): it owns .env
        self.operator = pwd.getpwuid(os.getuid()).pw_name
        self.engine: Any = None
        self.start_duration_s = 0.0
        self._stopped = False
        self._t0 = time.monotonic()
        self._marks: dict[str, float] = {}

    def _mark(self, name: str) -> None:
        self._marks[name] = round(time.monotonic() - self._t0, 1)

    # ------------------------------------------------------------------ public API

    @property
    def compose_file(self) -> Path:
        return self.project_dir / "docker-compose.yml"

    @property
    def env_file(self) -> Path:
        return self.project_dir / ".env"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def describe(self) -> dict[str, Any]:
        return {"lab_ports": dict(self.ports), "lab_compose_project": self.project}

    def target_overrides(self) -> dict[str, Any]:
        host = "vocabulo"
        quiz = self.url("quiz-api")
        return {
            "hosts": [{"name": host, "connection": "local://", "roles": ["app", "db"]}],
            "endpoints": {
                "public": quiz,
                "health": f"{quiz}/health",
                # PostgreSQL's host port, tried "from outside" (127.0.0.2, see lab.run): VO-NET-02
                "internal": [f"127.0.0.2:{self.ports['db']}"],
            },
            "services": [
                # the operator's .env beside the Compose file: the secrets' only home (VO-AUTH-01)
                {"name": "quiz-api", "host": host, "port": self.ports["quiz-api"], "bind": "loopback",
                 "user": self.operator, "files": [str(self.env_file)]},
                {"name": "junior-api", "host": host, "port": self.ports["junior-api"], "bind": "loopback"},
            ],
            "release": {"base_url": quiz, "openapi": "/openapi.json", "intended_version": VERSION},
            "datastores": {"postgres": {
                "dsn": f"postgresql://{RO_ROLE}@{self.db_address}:{DB_PORT}/{DB_NAME}",
                "password_file": str(self.ro_password_file), "sslmode": "disable",
                "app_role": DB_USER, "tables": list(TABLES), "timeout_s": 5}},
            "backups": [{"kind": "postgres", "location": str(self.backup_dir), "pattern": f"{BACKUP_PREFIX}*.sql"}],
            "containers": {
                "host": self.engine.host, "project": self.project, "compose_file": str(self.compose_file),
                "services": {
                    # published: nothing (VO-NET-02); data on a volume (VO-CTR-03)
                    "postgres": {"ports": [], "stateful": [PGDATA], "env": list(DB_ENV)},
                    # VO-NET-04: the APIs reach PostgreSQL by its Compose service name
                    "quiz-api": {"ports": [f"127.0.0.1:{self.ports['quiz-api']}:{API_PORT}"], "env": list(API_ENV),
                                 "connects_to": {"DB_HOST": "postgres"}},
                    "junior-api": {"ports": [f"127.0.0.1:{self.ports['junior-api']}:{API_PORT}"],
                                   "env": list(API_ENV), "connects_to": {"DB_HOST": "postgres"}},
                    "pgadmin": {},
                },
            },
        }

    def stop(self) -> None:
        """Take the project down (containers, network, volume) and stop the engine.  Idempotent;
        also at exit and on SIGINT/SIGTERM."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.engine is not None:
                with contextlib.suppress(Exception):
                    self.engine.compose(self.project_dir, self.project, "down", "-v", "-t", "2",
                                        "--remove-orphans", timeout=120, check=False)
                self._mark("down")
                self.engine.stop()
                self._mark("engine stopped")
                if os.environ.get("GOLIVE_LAB_VOCABULO_TIMING"):
                    sys.stderr.write(f"lab vocabulo timing: {self._marks}\n")
        finally:
            unregister(self)

    def __repr__(self) -> str:
        return f"<RunningVocabulo {self.variant} {self.project} ports={self.ports} stopped={self._stopped}>"

    # ------------------------------------------------------------------ start

    def _choose_ports(self) -> None:
        names = ["quiz-api", "junior-api", "db"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))

    def _write_compose(self, refs: dict[str, str], password: str) -> None:
        compose = render_compose(self.knobs, python_ref=refs["python"], postgres_ref=refs["postgres"],
                                 busybox_ref=refs["busybox"], ports=self.ports, password=password)
        self.compose_file.write_text(f"# Vocabulo ML (golive lab, variant {self.variant})\n"
                                     + yaml.safe_dump(compose, sort_keys=False))

    def _write_project(self, refs: dict[str, str], password: str) -> None:
        self.project_dir.mkdir(parents=True)
        for folder, app in APIS.values():
            ctx = self.project_dir / folder
            ctx.mkdir()
            shutil.copy2(HERE / "vocabulo_app.py", ctx / "vocabulo_app.py")
            (ctx / "Dockerfile").write_text(_dockerfile(refs["python"], app))
        shutil.copy2(HERE / "vocabulo_lsf_app_dump.sql", self.project_dir / "lsf_app_dump.sql")
        self._write_compose(refs, password)
        # the secrets' file: written private from the start (never world-readable, even briefly)
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"POSTGRES_USER={DB_USER}\nPOSTGRES_PASSWORD={password}\nPOSTGRES_DB={DB_NAME}\n"
                    f"PGADMIN_PASSWORD={secrets.token_urlsafe(18)}\n")

    def _exec(self, argv: list[str], *, stdin: str | None = None, stdout: Any = subprocess.PIPE,
              what: str) -> str:
        """``docker exec -i $(docker-compose ps -q postgres) ARGV`` (the document's step 5)."""
        from lab.docker_engine import DOCKER_CLI

        cid = self.engine.compose(self.project_dir, self.project, "ps", "-q", "postgres", timeout=60).stdout.strip()
        try:
            proc = subprocess.run([DOCKER_CLI, "exec", "-i", cid, *argv], input=stdin, stdout=stdout,
                                  stderr=subprocess.PIPE, env=self.engine.env(), text=True, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"vocabulo lab: {what}: did not finish within 60 s") from None
        if proc.returncode != 0:
            raise LabError(f"vocabulo lab: {what} failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
        return str(proc.stdout or "")

    def _psql(self, sql: str, *, what: str) -> None:
        """Feed ``sql`` to psql in the postgres container on stdin, as the document restores its dump."""
        self._exec([f"{PG_BIN}/psql", "-h", PG_SOCKET, "-v", "ON_ERROR_STOP=1", "-q", "-U", DB_USER, "-d", DB_NAME],
                   stdin=sql, what=what)

    def _db_address(self) -> str:
        """The postgres container's address on the project's network, after checking that the
        host routes it over this engine's bridge (never a gateway): the network rule."""
        c = self.engine.client().containers.get(f"{self.project}_postgres_1")
        nets = c.attrs["NetworkSettings"]["Networks"]
        address = str(nets[f"{self.project}_vocabulo"]["IPAddress"])
        from lab.docker_engine import ADDRESS_POOL

        if ipaddress.ip_address(address) not in ipaddress.ip_network(ADDRESS_POOL):
            raise LabError(f"vocabulo lab: postgres got {address}, outside the engine's pool {ADDRESS_POOL}")
        route = subprocess.run(["ip", "-j", "route", "get", address], capture_output=True, text=True, timeout=10,
                               check=False)
        try:
            hop = json.loads(route.stdout)[0]
        except (ValueError, IndexError):
            raise LabError(f"vocabulo lab: ip route get {address}: {route.stderr.strip()}") from None
        if hop.get("gateway") or not str(hop.get("dev", "")).startswith("br-"):
            raise LabError(f"vocabulo lab: {address} is not routed over the engine's bridge ({hop}): refusing to "
                           "connect to it")
        return address

    def _wait_health(self, want: dict[str, str], *, timeout_s: float) -> None:
        """Wait (bounded) for the services' health; on failure the error carries their logs."""
        from lab import compose_lab

        try:
            compose_lab.wait_health(self.engine, self.project, want, timeout_s=timeout_s)
        except LabError as exc:
            logs = self.engine.compose(self.project_dir, self.project, "logs", "--no-color", "--tail", "20",
                                       *want, timeout=60, check=False)
            raise LabError(f"vocabulo lab: {exc}\nlogs (tail):\n{logs.stdout[-3000:]}") from None

    def _manual_backup(self) -> None:
        """The operator's manual backup: a plain pg_dump of the restored database, dated two
        days back, with its line in the operator log."""
        self.backup_dir.mkdir(parents=True)
        when = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)
        path = self.backup_dir / f"{BACKUP_PREFIX}{when.strftime(STAMP)}.sql"
        with path.open("w") as out:
            self._exec([f"{PG_BIN}/pg_dump", "-h", PG_SOCKET, "-U", DB_USER, "-d", DB_NAME, "--no-owner"],
                       stdout=out, what="pg_dump (the manual backup)")
        if path.stat().st_size == 0:
            raise LabError(f"vocabulo lab: pg_dump wrote nothing to {path}")
        ts = when.timestamp()
        os.utime(path, (ts, ts))
        (self.backup_dir / "BACKUPS.log").write_text(
            f"{when.isoformat()} operator: manual pg_dump of {DB_NAME} -> {path.name}\n")

    def _start(self) -> None:
        from lab import images
        from lab.docker_engine import BASE_IMAGE, BASE_TAG, build_base_image, start_engine

        started = time.monotonic()
        if shutil.which("docker-compose") is None:
            raise LabError("docker-compose not found: apt-get install docker-compose (scripts/setup.sh does)")
        register(self)
        self.engine = start_engine()
        build_base_image(self.engine)
        self._mark("engine")
        refs = {"python": images.python_image(self.engine), "postgres": images.postgres_image(self.engine),
                "busybox": f"{BASE_IMAGE}:{BASE_TAG}"}
        self._mark("images")
        password = os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(18)
        self._choose_ports()
        self._write_project(refs, password)
        self.engine.remember_bridges()
        try:
            self.engine.compose(self.project_dir, self.project, "build", timeout=240)
            self._mark("build")
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    self.engine.compose(self.project_dir, self.project, "up", "-d", "--no-build", timeout=240)
                    break
                except LabError as exc:
                    # another program took a chosen port between free_ports() and docker-proxy's bind
                    if not port_in_use_error(str(exc)) or attempt == PORT_ATTEMPTS:
                        raise
                    sys.stderr.write(f"lab vocabulo: port collision, retrying with new ports ({exc})\n")
                    self._choose_ports()
                    self._write_compose(refs, password)
        finally:
            self.engine.remember_bridges()
        self._mark("up")
        self._wait_health({"postgres": "healthy"}, timeout_s=60)
        self._mark("db healthy")
        # step 5: rebuild with the dump; then golive's read-only role (its password in a 0600 file)
        self._psql((self.project_dir / "lsf_app_dump.sql").read_text(), what="restoring lsf_app_dump.sql")
        ro_password = secrets.token_urlsafe(18)
        self.ro_password_file.parent.mkdir(mode=0o700)
        fd = os.open(self.ro_password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(ro_password + "\n")
        self._psql(f"CREATE ROLE {RO_ROLE} LOGIN PASSWORD '{ro_password}';\n"
                   f"GRANT pg_read_all_data TO {RO_ROLE};\n", what=f"creating the read-only role {RO_ROLE}")
        self._wait_health({"postgres": "healthy", "quiz-api": "healthy", "junior-api": "healthy"}, timeout_s=90)
        self._mark("apis healthy")
        self.db_address = self._db_address()
        self._manual_backup()
        self._mark("backup")
        if self.knobs.service_down:
            self.engine.compose(self.project_dir, self.project, "stop", "-t", "2", self.knobs.service_down,
                                timeout=60)
        self.start_duration_s = time.monotonic() - started
        if os.environ.get("GOLIVE_LAB_VOCABULO_TIMING"):
            sys.stderr.write(f"lab vocabulo timing: {self._marks}\n")


def start(workdir: Path, variant: str = "compliant") -> RunningVocabulo:
    """Start the Vocabulo lab (``variant``: see :data:`VARIANTS`) in ``workdir`` (an empty or
    new folder).  On any failure everything already started is stopped and
    :class:`~lab.procs.LabError` says what failed."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise LabError(f"workdir {workdir} is not empty: the Vocabulo lab starts in an empty or new folder")
    lab = RunningVocabulo(workdir, variant_key("vocabulo", VARIANTS, variant))
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    if lab.start_duration_s > 60:
        sys.stderr.write(f"lab vocabulo: started in {lab.start_duration_s:.0f} s\n")
    return lab
