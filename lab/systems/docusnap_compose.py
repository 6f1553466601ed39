"""The DocuSnap-Backend lab, containerized mode: the single-server deployment of
:mod:`lab.systems.docusnap` as a Docker Compose project, as the seed document
(../shared/seeds/000_*.txt, "Containerized Deployment": "Create Docker images (application
service, OCR service)", "Write Docker Compose ... configurations", "Configure service
discovery") describes, on the lab's private Docker Engine (:mod:`lab.docker_engine`):

- ``nginx`` (image ``golive-lab/nginx:1.22``, :mod:`lab.images`): the same configuration as
  the single-server lab (80 -> 301 HTTPS, TLS 1.2+, HSTS, CORS allowlist), proxying to
  ``app:8000`` by its Compose service name; its HTTPS, HTTP and stub_status ports are
  published on 127.0.0.1 only;
- ``app`` (image ``golive-lab/docusnap-app:1.0.0``, built FROM ``golive-lab/python:3.11``
  with :mod:`lab.systems.docusnap_app`): gunicorn, master + 2 workers, on 8000, published
  nowhere, run as the service account that owns the database; it reaches the OCR service
  as ``http://ocr:5001`` (Compose DNS: the document's service discovery); the LLM key comes
  from ``.env`` (mode 0600) through ``${ZHIPU_API_KEY}``, never written into the Compose file;
- ``ocr`` (image ``golive-lab/docusnap-ocr:1.0.0``, :mod:`lab.systems.docusnap_ocr`): on
  5001, internal only (published nowhere);
- SQLite and the document store on the named volume ``data`` (``/data`` in ``app``);
  backups as in the single-server lab (the lab stands in for the week's schedule), read
  from the volume;
- json-file logs rotated (max-size 10m, max-file 3); healthchecks on app and OCR;
  restart ``always``; one user-defined network.

Monitoring runs on the Docker host as in the single-server lab (node-exporter, nginx's
exporter on its published stub_status port, Prometheus, Alertmanager); Prometheus scrapes
gunicorn and the OCR service at their container addresses on the project's network (inside
10.199.192.0/18, checked with ``ip route get`` to leave through this engine's bridge).

Ports: the document's 80/443 are free loopback ports chosen at start, published with the
same number inside the container.  The document's internal 8000 and 5001 get a host port
each too, published by no compliant container: golive checks them closed "from outside"
(127.0.0.2) -- the ``ocr_exposed`` variant publishes the OCR service on exactly that port.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import ipaddress
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lab import certs, nginx
from lab.images import NGINX_IMAGE, nginx_image, python_image
from lab.procs import (
    LabError,
    free_ports,
    http_status,
    port_in_use_error,
    python_env,
    register,
    stop_processes,
    wait_until,
)
from lab.systems import docusnap, variant_key
from lab.systems.docusnap import APP_ENV, VERSION, WORKERS, RunningDocuSnap, render_nginx
from lab.variants import LAB_HOSTNAMES

DESCRIPTION = ("DocuSnap-Backend containerized: the single-server deployment as a Docker Compose project "
               "(nginx, app and OCR images, SQLite + files on a volume, backups) on the lab's Docker Engine")
APP_IMAGE = f"golive-lab/docusnap-app:{VERSION}"
OCR_IMAGE = f"golive-lab/docusnap-ocr:{VERSION}"
APP_PORT = 8000  # the document's ports, inside the containers
OCR_PORT = 5001
DATA = "/data"
ROTATED_LOGS = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
#: golive's choice (the document states no healthcheck): a short interval so the lab is
#: healthy soon after start; retries as Docker's default
HEALTH = {"interval": "5s", "timeout": "3s", "retries": 3}
NETWORK = "docusnap"


@dataclasses.dataclass(frozen=True)
class ComposeKnobs:
    """What one variant sets (defaults: the compliant lab)."""

    description: str
    ocr_published: bool = False  # the OCR's 5001 published on 0.0.0.0
    cors: str = "allowlist"
    log_rotation: bool = True


VARIANTS: dict[str, ComposeKnobs] = {
    "compliant": ComposeKnobs("DocuSnap containerized as documented: every check passes but this machine's sizing"),
    "ocr_exposed": ComposeKnobs("the OCR service's port 5001 published on 0.0.0.0 (reachable from outside)",
                                ocr_published=True),
    "cors_wildcard": ComposeKnobs("CORS: Access-Control-Allow-Origin * for every origin", cors="wildcard"),
    "no_log_rotation": ComposeKnobs("app and OCR containers log to json-file without max-size (never rotated)",
                                    log_rotation=False),
}


_DOCKERFILE = """FROM {base}
COPY {module} /app/{module}
WORKDIR /app
"""


class RunningDocuSnapCompose(RunningDocuSnap):
    """A started containerized DocuSnap lab: the single-server lab's files, backups and
    monitoring (inherited), its processes in Compose services.  ``ports``: ``https``,
    ``http``, ``nginx_status`` (published), ``app`` and ``ocr`` (the host ports standing
    for the document's 8000 and 5001, published by no compliant container), and the
    monitoring's."""

    def __init__(self, workdir: Path, variant: str, start_timeout_s: float) -> None:
        super().__init__(workdir, "compliant", start_timeout_s)
        self.variant = variant
        self.compose_knobs = VARIANTS[variant]
        self.knobs = docusnap.Knobs(self.compose_knobs.description, cors=self.compose_knobs.cors)
        self.project = f"docusnap{secrets.token_hex(3)}"
        self.compose_dir = workdir / "compose"
        self.engine: Any = None
        self.addresses: dict[str, str] = {}
        self._ocr_id = ""

    # ------------------------------------------------------------------ public API

    @property
    def compose_file(self) -> Path:
        return self.compose_dir / "docker-compose.yml"

    def describe(self) -> dict[str, Any]:
        return {"lab_ports": dict(self.ports), "lab_compose_project": self.project}

    def target_overrides(self) -> dict[str, Any]:
        out = super().target_overrides()
        # the services family reads host processes; here they are containers (the profile
        # judges them with the containers family)
        out.pop("services", None)
        # ... so Prometheus's jobs name them (their scrape targets are container addresses)
        out["monitoring"]["services"].update({"gunicorn": {"labels": {"job": "gunicorn"}},
                                              "ocr": {"labels": {"job": "ocr"}}})
        p = self.ports
        nginx_ports = [f"127.0.0.1:{p[k]}:{p[k]}" for k in ("https", "http", "nginx_status")]
        out["containers"] = {
            "host": self.engine.host, "project": self.project, "compose_file": str(self.compose_file),
            "timeout": "10 s",
            "services": {
                "nginx": {"ports": nginx_ports},
                # DS-CT-HA-05: the app reaches the OCR service by its Compose service name
                "app": {"stateful": [DATA], "env": list(APP_ENV), "connects_to": {"DOCUSNAP_OCR_URL": "ocr"}},
                "ocr": {},  # publishes nothing: the OCR service is internal
            },
        }
        return out

    def scrape_targets(self) -> dict[str, str]:
        return {**super().scrape_targets(), "gunicorn": f"{self.addresses['app']}:{APP_PORT}",
                "ocr": f"{self.addresses['ocr']}:{OCR_PORT}"}

    def stop(self) -> None:
        """Remove the project and the engine, then stop the host's monitoring (idempotent)."""
        if self._stopped:
            return
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            pid = int(self.ocr_pidfile.read_text().strip())
            # a drill may have paused it; only the OCR container's process (not a recycled pid)
            if self._ocr_id and self._ocr_id in Path(f"/proc/{pid}/cgroup").read_text():
                os.kill(pid, signal.SIGCONT)
        try:
            if self.engine is not None:
                self.engine.stop()  # every container, network and volume, then dockerd
        finally:
            super().stop()  # the service account goes after its containers

    def __repr__(self) -> str:
        return f"<RunningDocuSnapCompose {self.variant} {self.project} ports={self.ports} stopped={self._stopped}>"

    # ------------------------------------------------------------------ build

    def _compose(self) -> dict[str, Any]:
        p, k = self.ports, self.compose_knobs
        layout = self.nginx_layout
        uid_gid = f"{self.account.pw_uid}:{self.account.pw_gid}"
        logging = ROTATED_LOGS if k.log_rotation else {"driver": "json-file"}

        def health(url: str) -> dict[str, Any]:
            return {"test": ["CMD", "wget", "-q", "-O", "/dev/null", url], **HEALTH}

        ocr: dict[str, Any] = {
            "image": OCR_IMAGE, "user": uid_gid,
            "command": ["python3", "/app/docusnap_ocr.py", "--host", "0.0.0.0", "--port", str(OCR_PORT)],
            "expose": [str(OCR_PORT)], "restart": "always", "logging": copy.deepcopy(logging),
            "healthcheck": health(f"http://127.0.0.1:{OCR_PORT}/health"), "networks": [NETWORK],
        }
        if k.ocr_published:
            ocr["ports"] = [f"0.0.0.0:{p['ocr']}:{OCR_PORT}"]
        app = {
            "image": APP_IMAGE, "user": uid_gid,
            "command": ["python3", "-m", "gunicorn", "-w", str(WORKERS), "-b", f"0.0.0.0:{APP_PORT}", "--chdir",
                        "/app", "--access-logfile", str(self.logs_dir / "gunicorn-access.log"),
                        "--error-logfile", str(self.logs_dir / "gunicorn-error.log"), "docusnap_app:app"],
            "environment": {
                "DOCUSNAP_DB": f"{DATA}/docusnap.sqlite3", "DOCUSNAP_FILES": f"{DATA}/files",
                "DOCUSNAP_OCR_URL": f"http://ocr:{OCR_PORT}", "DOCUSNAP_VERSION": VERSION,
                "ZHIPU_API_KEY": "${ZHIPU_API_KEY}",  # from .env: the Compose file holds no secret
                "DOCUSNAP_METRICS_DIR": "/tmp", "DOCUSNAP_LOG_DIR": str(self.logs_dir),
            },
            "expose": [str(APP_PORT)],
            "volumes": [f"data:{DATA}", f"{self.logs_dir}:{self.logs_dir}"],
            "depends_on": ["ocr"], "restart": "always", "logging": copy.deepcopy(logging),
            "healthcheck": health(f"http://127.0.0.1:{APP_PORT}/health"), "networks": [NETWORK],
        }
        front = {
            "image": NGINX_IMAGE,
            "command": ["/usr/sbin/nginx", *nginx.argv("nginx", layout)[1:]],
            "ports": [f"127.0.0.1:{p[k]}:{p[k]}" for k in ("https", "http", "nginx_status")],
            # the configuration, its logs and the certificates at the host's paths: the
            # host's exporter and golive read the same files
            "volumes": [f"{layout.run_dir}:{layout.run_dir}", f"{self.tls_dir}:{self.tls_dir}:ro"],
            "depends_on": ["app"], "restart": "always", "logging": copy.deepcopy(ROTATED_LOGS),
            "networks": [NETWORK],
        }
        return {"version": "2.4", "services": {"nginx": front, "app": app, "ocr": ocr},
                "networks": {NETWORK: {}}, "volumes": {"data": {}}}

    def _build_images(self) -> None:
        """The application and OCR images (DS-CT-CTR-01: one each), FROM the lab's Python."""
        base = python_image(self.engine)
        nginx_image(self.engine)
        here = Path(__file__).parent
        for ref, module in ((APP_IMAGE, "docusnap_app.py"), (OCR_IMAGE, "docusnap_ocr.py")):
            ctx = self.workdir / "images" / module.removesuffix(".py")
            ctx.mkdir(parents=True, exist_ok=True)
            shutil.copy2(here / module, ctx / module)
            (ctx / "Dockerfile").write_text(_DOCKERFILE.format(base=base, module=module))
            try:
                self.engine.client().images.build(path=str(ctx), tag=ref, rm=True, forcerm=True, pull=False)
            except Exception as exc:  # docker.errors.BuildError / APIError: say which image
                raise LabError(f"building {ref} failed: {exc}") from exc

    def _prepare_files(self) -> None:
        """The single-server lab's files, with the database and documents on the ``data``
        volume (its mount point on this host) and the config naming container paths."""
        for d in (self.app_dir, self.files_dir, self.config_file.parent, self.key_file.parent, self.backup_dir,
                  self.run_dir, self.logs_dir, self.metrics_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._tls = certs.write_tls_files(self.tls_dir, LAB_HOSTNAMES)
        shutil.copy2(Path(__file__).with_name("docusnap_app.py"), self.app_dir / "docusnap_app.py")
        self.key_file.write_text((os.environ.get(docusnap.KEY_ENV) or secrets.token_urlsafe(24)) + "\n")
        self.key_file.chmod(0o600)
        self.config_file.write_text(f"DOCUSNAP_DB={DATA}/docusnap.sqlite3\nDOCUSNAP_FILES={DATA}/files\n"
                                    f"DOCUSNAP_VERSION={VERSION}\nZHIPU_API_KEY_FILE=.env\n")
        conn = sqlite3.connect(self.db_path)
        with conn:
            conn.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL, "
                         "text TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
        conn.close()
        self._seed_backups()
        self._hand_over()

    def _address(self, service: str) -> str:
        """The container's address on the project network, after checking the host routes
        it through this engine's bridge (the network rule: only networks the lab made)."""
        c = self.engine.client().containers.get(f"{self.project}_{service}_1")
        net = (c.attrs.get("NetworkSettings") or {}).get("Networks", {}).get(f"{self.project}_{NETWORK}") or {}
        ip, net_id = net.get("IPAddress") or "", net.get("NetworkID") or ""
        if not ip or ipaddress.ip_address(ip) not in ipaddress.ip_network("10.199.0.0/16"):
            raise LabError(f"{service}: container address {ip or '(none)'} is not inside 10.199.0.0/16")
        route = subprocess.run(["ip", "route", "get", ip], capture_output=True, text=True, timeout=10,
                               check=False).stdout
        if f"dev br-{net_id[:12]}" not in route:
            raise LabError(f"{service}: {ip} is not routed through this engine's bridge br-{net_id[:12]}: {route!r}")
        return ip

    def _choose_ports(self) -> None:
        names = ["https", "http", "app", "ocr", "nginx_status", "nginx_exporter", "node_exporter", "prometheus",
                 "alertmanager", "webhook"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.compose_file.write_text(yaml.safe_dump(self._compose(), sort_keys=False))

    def _start(self) -> None:
        from lab.docker_engine import start_engine

        started = time.monotonic()
        register(self)
        self.engine = start_engine()
        self.account = docusnap.service_account()  # the containers' user, before the Compose file
        self._build_images()
        self.compose_dir.mkdir(parents=True)
        self._choose_ports()
        # create the project (network, volume, containers) without starting it: the data
        # volume gets the database and the week's documents and backups first
        self.engine.remember_bridges()
        self.engine.compose(self.compose_dir, self.project, "up", "--no-start", "--no-build", timeout=120)
        self.engine.remember_bridges()
        volume = self.engine.client().volumes.get(f"{self.project}_data")
        self.data_dir = Path(volume.attrs["Mountpoint"])
        self.db_path = self.data_dir / "docusnap.sqlite3"
        self.files_dir = self.data_dir / "files"
        self._prepare_files()
        env_file = self.compose_dir / ".env"
        env_file.write_text(f"ZHIPU_API_KEY={self.key_file.read_text().strip()}\n")
        env_file.chmod(0o600)
        nginx.prepare(self.nginx_layout)
        for attempt in range(1, docusnap.PORT_ATTEMPTS + 1):
            try:
                self._start_ported()
                break
            except LabError as exc:
                # another program took a port between free_ports() and its bind (docker-proxy
                # or a monitoring process): new ports; Compose recreates what changed
                procs = list(self._procs.values())
                collided = port_in_use_error(str(exc)) or any(port_in_use_error(p.tail(50)) for p in procs)
                stop_processes(procs)
                self._procs.clear()
                if self.webhook is not None:
                    self.webhook.stop()
                    self.webhook = None
                if not collided or attempt == docusnap.PORT_ATTEMPTS:
                    raise
                sys.stderr.write(f"lab docusnap_compose: port collision, retrying with new ports ({exc})\n")
                self._choose_ports()
        self.start_duration_s = time.monotonic() - started

    def _start_ported(self) -> None:
        """Start the project on the chosen ports, wait until it serves, start the monitoring."""
        assert self._tls is not None
        p = self.ports
        self.nginx_layout.conf.write_text(render_nginx(
            self.nginx_layout, https_port=p["https"], http_port=p["http"], app_port=APP_PORT,
            status_port=p["nginx_status"], chain_file=self._tls.chain_file, key_file=self._tls.key_file,
            knobs=self.knobs, listen="0.0.0.0", upstream=f"app:{APP_PORT}"))
        self.engine.compose(self.compose_dir, self.project, "up", "-d", "--no-build", timeout=120)
        t = self.start_timeout_s
        for service in ("ocr", "app"):
            self.addresses[service] = self._address(service)
        wait_until(f"OCR service ({self.addresses['ocr']}:{OCR_PORT}/health)",
                   lambda: http_status(self.addresses["ocr"], OCR_PORT, "/health") == 200, timeout_s=t)
        wait_until(f"gunicorn ({self.addresses['app']}:{APP_PORT}/health)",
                   lambda: http_status(self.addresses["app"], APP_PORT, "/health") == 200, timeout_s=t)
        wait_until(f"nginx ({self.https_url}/health)",
                   lambda: http_status("127.0.0.1", p["https"], "/health", tls=True) == 200,
                   timeout_s=t)
        wait_until(f"nginx plain-HTTP listener (127.0.0.1:{p['http']})",
                   lambda: http_status("127.0.0.1", p["http"], "/health") == 301, timeout_s=t)
        # the OCR container's process, for the monitoring drill (SIGSTOP / SIGCONT by pid file)
        ocr = self.engine.client().containers.get(f"{self.project}_ocr_1")
        self._ocr_id = ocr.id
        self.ocr_pidfile.write_text(f"{ocr.attrs['State']['Pid']}\n")
        self._start_monitoring(python_env(docusnap.REPO_ROOT))

def start(workdir: Path, variant: str = "compliant", *, start_timeout_s: float = 30.0) -> RunningDocuSnapCompose:
    """Start the containerized DocuSnap lab (``variant``: see :data:`VARIANTS`) in
    ``workdir`` (an empty or new folder).  On any failure everything already started is
    stopped and :class:`~lab.procs.LabError` names the component."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise LabError(f"workdir {workdir} is not empty: the DocuSnap Compose lab starts in an empty or new folder")
    lab = RunningDocuSnapCompose(workdir, variant_key("docusnap_compose", VARIANTS, variant), start_timeout_s)
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    return lab
