"""The Oz Forensics API lab as its seed document (../shared/seeds/004_*.txt, "Small
Business or PoC" and "Medium Load") describes it: a Docker Compose project ("Type of
installation: Docker compose") on the lab's private Docker Engine (:mod:`lab.docker_engine`):

- ``nginx`` (the TLS front; the document's Nginx "serves static media files for external
  HTTP(s) requests"): HTTPS with TLS 1.2+ and HSTS, the plain-HTTP port answering 301, the
  static media under ``/media/``, everything else proxied to the API instance(s);
- ``app`` (APP, the API front app, :mod:`lab.systems.oz_api`): takes the analysis requests
  and hands each to its BIO; counts analyses in Redis; its health needs BIO and PostgreSQL;
- ``bio`` (Oz BIO / TFSS, the inference service, :mod:`lab.systems.oz_bio`): the reference
  lab's inference logic (:mod:`lab.analysis`), one analysis at a time, so the lab sets the
  APM it sustains;
- ``postgres`` (PostgreSQL 15, "External PostgreSQL is not required for PoC" -- bundled
  here) with its data on a named volume, published on 127.0.0.1 only (for golive's read-only
  role and the app hosts' reachability check);
- ``redis`` (the broker; standalone, password from .env, not published);

all on one user-defined network, restart ``always``, healthchecks, rotated json-file logs,
secrets (database and Redis passwords) only in a ``.env`` of mode 0600.  The Medium Load
layout (variant ``medium``) runs two API + BIO pairs behind nginx ("API HA requires precise
balancing": round robin with passive health checks and failover to the other instance);
the HA drill stops and starts an API container through the engine (``docker stop/start``).

Ports: the published ports are free loopback ports chosen at start; golive reaches "the
host from outside" at 127.0.0.2 (as in :mod:`lab.run`): a port published on 127.0.0.1
refuses it, one published on 0.0.0.0 accepts it.  Traffic: loopback only; containers sit in
the engine's 10.199.192.0/18 and are never addressed directly.

Each broken variant changes one thing the document's checklist names (:data:`VARIANTS`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lab import certs
from lab import nginx as lab_nginx
from lab.procs import LabError, StopsOnExit, free_ports, http_status, register, unregister, wait_until
from lab.systems import variant_key
from lab.variants import ALLOWED_ORIGIN, LAB_HOSTNAMES, MODERN_CIPHERS, MODERN_PROTOCOLS

DESCRIPTION = ("Oz Forensics API as a Docker Compose project: nginx (TLS) -> APP -> BIO (inference), "
               "PostgreSQL, Redis on one network; the Medium Load HA layout with two API/BIO instances")
HERE = Path(__file__).resolve().parent
LAB_DIR = HERE.parent
APP_UID = 10001
PG_UID = 999
API_VERSION = "6.5.0"  # >= 6.5.0: no Celery services expected (OZ-SW-04)
COST_MS = 50.0  # CPU per analysis: 1200 APM per BIO instance on an idle core
#: the document states no healthcheck; a 2 s interval lets the lab see health early, and
#: failures in the start period (a busy machine starting Python) do not count
HEALTH = {"interval": "2s", "timeout": "3s", "retries": 3, "start_period": "60s"}
ROTATED_LOGS = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
PG_DATA = "/var/lib/postgresql/data"
APP_ENV = ("OZ_BIO_URL", "OZ_DB_HOST", "OZ_DB_PORT", "OZ_REDIS_HOST", "OZ_REDIS_PORT", "OZ_REDIS_PASSWORD",
           "OZ_DB_PASSWORD")
PG_ENV = ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
SAMPLE_BODY: dict[str, Any] = {"analysis": "quality", "media": "shot-001.png"}
SECRET_ENV = "GOLIVE_LAB_OZ_SECRET"  # optional: the database password (a canary in the self-tests)
RO_ROLE = "golive"
DB = "oz"
#: the inference request's timeout (the drain of a load run waits this long at most)
ANALYSIS_TIMEOUT_S = 25.0
@dataclasses.dataclass(frozen=True)
class Knobs:
    """What one variant sets (defaults: the compliant PoC lab)."""

    description: str
    instances: int = 1  # API + BIO pairs behind nginx
    analysis_ms: float = 0.0  # wall time one analysis holds its BIO (0: only COST_MS of CPU)
    pg_bind: str = "127.0.0.1"


VARIANTS: dict[str, Knobs] = {
    "compliant": Knobs("Oz PoC as documented: one API + BIO, nginx, PostgreSQL, Redis in one Compose project; "
                       "every check passes but this machine's sizing"),
    "medium": Knobs("Oz Medium Load (HA layout): two API + BIO instances behind nginx, failover between them",
                    instances=2),
    "below_apm": Knobs("BIO needs 12 s per analysis: 5 APM, below the PoC tier's 6 APM",
                       analysis_ms=12000.0),
    "single_api_instance": Knobs("Medium Load with one API + BIO instance only (no second instance to fail over to)",
                                 instances=1),
    "postgres_all_interfaces": Knobs("PostgreSQL published on 0.0.0.0 (every interface) instead of 127.0.0.1",
                                     pg_bind="0.0.0.0"),
}


def instance_names(knobs: Knobs) -> list[tuple[str, str]]:
    """(API service, BIO service) of each instance: ``app``/``bio``, then ``app-2``/``bio-2``."""
    return [("app", "bio") if i == 1 else (f"app-{i}", f"bio-{i}") for i in range(1, knobs.instances + 1)]


def render_nginx(knobs: Knobs, *, https_port: int) -> str:
    """nginx.conf of the front container (runs as uid 10001: ports 8443/8080 inside)."""
    # passive health checks: an instance that failed is left out for 1 s, then tried again --
    # short, so an instance just restored takes requests again before the next one may stop
    # (with every instance marked failed nginx answers 502 "no live upstreams")
    upstreams = "".join(f"        server {app}:8000 max_fails=1 fail_timeout=1s;\n" for app, _ in instance_names(knobs))
    origin = f'"{ALLOWED_ORIGIN}"'
    headers = f'        add_header Strict-Transport-Security "{lab_nginx.HSTS_VALUE}" always;\n' + "".join(
        f'        add_header {name} "{value}" always;\n' for name, value in lab_nginx.SECURITY_HEADERS)
    cors = ("        add_header Access-Control-Allow-Origin $cors_origin always;\n"
            "        add_header Access-Control-Allow-Credentials $cors_credentials always;\n"
            "        add_header Access-Control-Allow-Methods $cors_methods always;\n"
            "        add_header Access-Control-Allow-Headers $cors_headers always;\n"
            '        add_header Vary "Origin" always;\n')
    proxy = ("            proxy_pass http://oz_app;\n"
             "            proxy_http_version 1.1;\n"
             '            proxy_set_header Connection "";\n'
             "            proxy_set_header Host $host;\n"
             "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
             "            proxy_set_header X-Forwarded-Proto $scheme;\n"
             "            proxy_connect_timeout 1s;\n"
             "            proxy_next_upstream error timeout http_502 http_503;\n")
    return f"""\
# golive Oz Compose lab nginx config (generated; variant: {knobs.description})
worker_processes 1;
daemon off;
pid /tmp/nginx.pid;
error_log stderr notice;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    server_tokens off;
    access_log /dev/stdout;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    client_max_body_size 2m;
    map $http_origin $cors_origin {{ default ""; {origin} "{ALLOWED_ORIGIN}"; }}
    map $http_origin $cors_credentials {{ default ""; {origin} "true"; }}
    map $http_origin $cors_methods {{ default ""; {origin} "{lab_nginx.CORS_METHODS}"; }}
    map $http_origin $cors_headers {{ default ""; {origin} "{lab_nginx.CORS_HEADERS}"; }}

    upstream oz_app {{
{upstreams}        keepalive 16;
    }}

    server {{
        listen 8443 ssl;
        server_name localhost;
        ssl_certificate /etc/oz/tls/server-chain.pem;
        ssl_certificate_key /etc/oz/tls/server.key;
        ssl_protocols {MODERN_PROTOCOLS};
        ssl_ciphers {MODERN_CIPHERS};
        ssl_ecdh_curve {lab_nginx.TLS_CURVES};
        ssl_session_tickets off;
{headers}{cors}
        if ($request_method = OPTIONS) {{
            return 204;
        }}
        location /media/ {{
            alias /srv/media/;
        }}
        location /ui/ {{
            alias /srv/ui/;
        }}
        location = /health {{
{proxy}            proxy_read_timeout 3s;
        }}
        location / {{
{proxy}            proxy_read_timeout {int(ANALYSIS_TIMEOUT_S) + 30}s;
        }}
    }}

    server {{
        listen 8080 default_server;
        server_name localhost;
        return 301 https://localhost:{https_port}$request_uri;
    }}
}}
"""


class RunningOzCompose(StopsOnExit):
    """A started Oz Compose lab.  ``ports``: ``https``, ``http``, ``postgres``, one per API
    instance (``app``, ``app-2``)."""

    def __init__(self, workdir: Path, variant: str, start_timeout_s: float) -> None:
        self.workdir = workdir
        self.variant = variant
        self.knobs = VARIANTS[variant]
        self.start_timeout_s = start_timeout_s
        self.project_dir = workdir / "compose"
        self.tls_dir = workdir / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.secrets_dir = workdir / "secrets"
        self.pg_password_file = self.secrets_dir / "golive_pg_password"
        self.ports: dict[str, int] = {}
        self.project = f"oz{secrets.token_hex(3)}"
        self.engine: Any = None
        self.own_engine = False
        self.start_duration_s = 0.0
        self._stopped = False

    # ------------------------------------------------------------------ public API

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.ports['https']}"

    def container(self, service: str) -> str:
        """The container name Compose 1.x gives ``service``'s first replica."""
        return f"{self.project}_{service}_1"

    def describe(self) -> dict[str, Any]:
        return {"lab_ports": dict(self.ports), "lab_project": self.project}

    def target_overrides(self) -> dict[str, Any]:
        p = self.ports
        apps = [app for app, _ in instance_names(self.knobs)]
        host = "oz-lab"
        docker = f"{shutil.which('docker') or '/usr/bin/docker'} -H {self.engine.host}"
        services: dict[str, dict[str, Any]] = {
            "nginx": {"ports": [f"127.0.0.1:{p['https']}:8443", f"127.0.0.1:{p['http']}:8080"]},
            "postgres": {"ports": [f"127.0.0.1:{p['postgres']}:5432"], "stateful": [PG_DATA], "env": list(PG_ENV)},
            "redis": {},
        }
        for app, bio in instance_names(self.knobs):
            services[app] = {"ports": [f"127.0.0.1:{p[app]}:8000"], "env": list(APP_ENV)}
            services[bio] = {}
        return {
            # one machine stands in for the document's nodes: every role on it
            "hosts": [{"name": host, "connection": "local://", "roles": ["app", "inference", "db"],
                       "data_path": str(self.workdir)}],
            "endpoints": {
                "public": self.https_url,
                "http": f"http://localhost:{p['http']}",
                "health": f"{self.https_url}/health",
                # the published internal ports, addressed "from outside" (see the module docstring)
                "internal": [f"127.0.0.2:{p['postgres']}", *(f"127.0.0.2:{p[a]}" for a in apps)],
                "ca_file": str(self.ca_file),
            },
            "cors": {"allowed_origins": [ALLOWED_ORIGIN]},
            "http": {"health_body": {"json_field": "status", "equals": "ok"},
                     "pages": lab_nginx.static_pages(self.https_url)},
            "inference": {
                "url": f"{self.https_url}/v1/analyze", "method": "POST", "body": dict(SAMPLE_BODY),
                "expect_status": 200, "success_field": "status", "success_value": "ok",
                "timeout_s": ANALYSIS_TIMEOUT_S,
                # a lab run is a demonstration: load runs of at most a minute (the PoC tier's
                # 6 APM needs that long: a handful of analyses, each one 1/6 of the measured rate)
                "max_duration_s": 60.0, "warmup_s": 1.0, "ramp_s": 1.0,
            },
            "ha": {
                "entrypoint": f"{self.https_url}/health", "ca_file": str(self.ca_file),
                "instances": [
                    {"name": app, "url": f"http://127.0.0.1:{p[app]}/health",
                     "stop": f"{docker} stop -t 2 {self.container(app)}",
                     "start": f"{docker} start {self.container(app)}"}
                    for app in apps],
            },
            "datastores": {"postgres": {
                "dsn": f"postgresql://{RO_ROLE}@127.0.0.1:{p['postgres']}/{DB}",
                "password_file": str(self.pg_password_file), "app_role": "oz", "sslmode": "disable",
                "app_hosts": [host]}},
            "containers": {"host": self.engine.host, "project": self.project,
                           "compose_file": str(self.project_dir / "docker-compose.yml"), "services": services},
        }

    def stop(self) -> None:
        """Remove the project with the engine (idempotent; also at exit and on signals)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.engine is not None and not self.own_engine:
                # someone else's engine: remove this project (containers, network, volume) only
                self.engine.compose(self.project_dir, self.project, "down", "-v", "-t", "1", "--remove-orphans",
                                    timeout=120, check=False)
            elif self.engine is not None:
                self.engine.stop()
        finally:
            unregister(self)

    def __repr__(self) -> str:
        return f"<RunningOzCompose {self.variant} in {self.workdir} ports={self.ports} stopped={self._stopped}>"

    # ------------------------------------------------------------------ build

    def _compose(self) -> dict[str, Any]:
        k, p = self.knobs, self.ports
        from lab.images import nginx_image, postgres_image, python_image, redis_image

        py, pg, rd, ngx = (python_image(self.engine), postgres_image(self.engine), redis_image(self.engine),
                           nginx_image(self.engine))
        common = {"restart": "always", "logging": dict(ROTATED_LOGS), "networks": ["oz"]}
        services: dict[str, Any] = {
            "postgres": {
                **common, "image": pg, "user": str(PG_UID),
                "environment": {"POSTGRES_USER": "oz", "POSTGRES_PASSWORD": "${OZ_DB_PASSWORD}", "POSTGRES_DB": DB},
                "volumes": ["pgdata:" + PG_DATA, "./initdb:/docker-entrypoint-initdb.d:ro"],
                "ports": [f"{k.pg_bind}:{p['postgres']}:5432"],
                "healthcheck": {"test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "oz", "-d", DB], **HEALTH},
            },
            "redis": {
                **common, "image": rd, "user": str(APP_UID),
                "command": ["sh", "-c", 'exec redis-server --requirepass "$$OZ_REDIS_PASSWORD" --save "" '
                            "--appendonly no --dir /tmp --protected-mode no"],
                "environment": {"OZ_REDIS_PASSWORD": "${OZ_REDIS_PASSWORD}"},
                "healthcheck": {"test": ["CMD-SHELL", 'redis-cli -a "$$OZ_REDIS_PASSWORD" --no-auth-warning ping '
                                         "| grep -q PONG"], **HEALTH},
            },
        }
        for app, bio in instance_names(k):
            services[bio] = {
                **common, "image": py, "user": str(APP_UID), "working_dir": "/app",
                "command": ["python3", "/app/oz_bio.py", "--port", "8080", "--name", bio, "--cost-ms", f"{COST_MS:g}",
                            "--analysis-ms", f"{k.analysis_ms:g}"],
                "volumes": ["./app:/app:ro"],
                "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                                **HEALTH},
            }
            services[app] = {
                **common, "image": py, "user": str(APP_UID), "working_dir": "/app",
                "command": ["python3", "/app/oz_api.py", "--port", "8000", "--name", app],
                "environment": {"OZ_BIO_URL": f"http://{bio}:8080", "OZ_DB_HOST": "postgres", "OZ_DB_PORT": "5432",
                                "OZ_REDIS_HOST": "redis", "OZ_REDIS_PORT": "6379",
                                "OZ_REDIS_PASSWORD": "${OZ_REDIS_PASSWORD}", "OZ_DB_PASSWORD": "${OZ_DB_PASSWORD}"},
                "volumes": ["./app:/app:ro"],
                "ports": [f"127.0.0.1:{p[app]}:8000"],
                "depends_on": {bio: {"condition": "service_healthy"}, "postgres": {"condition": "service_healthy"},
                               "redis": {"condition": "service_healthy"}},
                "healthcheck": {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/health"],
                                **HEALTH},
            }
        services["nginx"] = {
            **common, "image": ngx, "user": str(APP_UID),
            "command": ["nginx", "-c", "/etc/oz/nginx.conf"],
            "volumes": ["./nginx.conf:/etc/oz/nginx.conf:ro", "./tls:/etc/oz/tls:ro", "./media:/srv/media:ro",
                        "./ui:/srv/ui:ro"],
            "ports": [f"127.0.0.1:{p['https']}:8443", f"127.0.0.1:{p['http']}:8080"],
            "depends_on": {app: {"condition": "service_healthy"} for app, _ in instance_names(k)},
            # the TLS listener accepts (plain HTTP only redirects: busybox wget would follow it)
            "healthcheck": {"test": ["CMD-SHELL", "nc -w 2 127.0.0.1 8443 </dev/null"], **HEALTH},
        }
        return {"version": "2.4", "services": services, "networks": {"oz": {}}, "volumes": {"pgdata": {}}}

    def _write_files(self) -> str:
        """The project folder: app code, nginx config, TLS files, media, the init SQL of
        golive's read-only role, ``.env`` (0600).  Returns the database password."""
        d = self.project_dir
        for sub in ("app", "tls", "media", "initdb"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for name in ("oz_api.py", "oz_bio.py"):
            shutil.copy2(HERE / name, d / "app" / name)
        shutil.copy2(LAB_DIR / "analysis.py", d / "app" / "analysis.py")
        tls = certs.write_tls_files(self.tls_dir, LAB_HOSTNAMES)
        shutil.copy2(tls.chain_file, d / "tls" / "server-chain.pem")
        key = d / "tls" / "server.key"
        shutil.copy2(tls.key_file, key)
        key.chmod(0o600)
        (d / "media" / "shot-001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
        lab_nginx.write_static_site(d)  # ui/index.html (the Web UI's stand-in) and media/sample-001.png
        (d / "nginx.conf").write_text(render_nginx(self.knobs, https_port=self.ports["https"]))
        db_password = os.environ.get(SECRET_ENV) or secrets.token_urlsafe(18)
        ro_password = secrets.token_hex(16)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.pg_password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(ro_password + "\n")
        init = d / "initdb" / "10-golive-ro.sql"
        init.write_text(f"CREATE ROLE {RO_ROLE} LOGIN PASSWORD '{ro_password}';\n"
                        f"GRANT pg_monitor TO {RO_ROLE};\nGRANT CONNECT ON DATABASE {DB} TO {RO_ROLE};\n")
        init.chmod(0o600)
        env = d / ".env"
        fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"OZ_DB_PASSWORD={db_password}\nOZ_REDIS_PASSWORD={secrets.token_hex(16)}\n")
        if os.geteuid() == 0:  # the containers' users read their files
            os.chown(key, APP_UID, APP_UID)
            os.chown(init, PG_UID, PG_UID)
        return db_password

    def _start(self) -> None:
        from lab.compose_lab import wait_health
        from lab.docker_engine import lab_engine

        started = time.monotonic()
        register(self)
        names = ["https", "http", "postgres", *(app for app, _ in instance_names(self.knobs))]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self._write_files()
        self.engine, self.own_engine = lab_engine()
        compose = self._compose()
        (self.project_dir / "docker-compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
        self.engine.remember_bridges()
        try:
            self.engine.compose(self.project_dir, self.project, "up", "-d", "--no-build",
                                timeout=self.start_timeout_s + 60)
        finally:
            self.engine.remember_bridges()
        wait_health(self.engine, self.project, {s: "healthy" for s in compose["services"]},
                    timeout_s=self.start_timeout_s)
        p = self.ports
        wait_until(f"nginx ({self.https_url}/health)",
                   lambda: http_status("127.0.0.1", p["https"], "/health", tls=True, timeout=2.0) == 200,
                   timeout_s=self.start_timeout_s)
        self.start_duration_s = time.monotonic() - started


def start(workdir: Path, variant: str = "compliant", *, start_timeout_s: float = 90.0) -> RunningOzCompose:
    """Start the Oz Compose lab (``variant``: see :data:`VARIANTS`) in ``workdir`` (an empty
    or new folder).  On any failure everything already started is stopped and
    :class:`~lab.procs.LabError` says what."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise LabError(f"workdir {workdir} is not empty: the Oz Compose lab starts in an empty or new folder")
    lab = RunningOzCompose(workdir, variant_key("oz_compose", VARIANTS, variant), start_timeout_s)
    try:
        lab._start()
    except BaseException as exc:
        logs = ""
        if lab.engine is not None:
            with contextlib.suppress(Exception):
                logs = (lab.engine.cli("ps", "-a", "--format", "{{.Names}}: {{.Status}}", timeout=30,
                                       check=False).stdout
                        + lab.engine.compose(lab.project_dir, lab.project, "logs", "--no-color", "--tail", "20",
                                             timeout=30, check=False).stdout[-3000:])
        lab.stop()
        if isinstance(exc, LabError) and logs:
            raise LabError(f"{exc}\ncontainer logs (tail):\n{logs}") from exc
        raise
    sys.stderr.flush()
    return lab
