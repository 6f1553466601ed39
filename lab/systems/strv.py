"""The STRV Similarity Search lab, "Docker Deployment (Recommended)" of the seed document
(../shared/seeds/003_*.txt: "Docker Compose Setup", "Storage Configuration", "Security
Considerations", "Monitoring and Maintenance"), as a Docker Compose project on the lab's
private Docker Engine (:mod:`lab.docker_engine`, image :func:`lab.images.python_image`):

- ``api``: the API stand-in (:mod:`lab.systems.strv_api`, FastAPI served by uvicorn with
  ``--workers $NUM_WORKERS``), container port 8000, with the document's environment
  (``API_HOST=0.0.0.0``, ``API_PORT=8000``, ``NUM_WORKERS=4``, ``VECTOR_DIMENSION=2048``),
  mounts ``./models:/app/models`` (the feature store ``features.h5``) and ``./logs:/app/logs``
  (rotated by the app), ``restart: always``, and the document's healthcheck on ``/health``
  (interval 30 s, timeout 10 s, 3 retries); an API key (from ``.env``, mode 0600) and a rate
  limit per key (429 above it) guard ``/api/*`` (the document's "Security Considerations");
- ``frontend``: the Streamlit app's stand-in (:mod:`lab.systems.strv_frontend`), container
  port 8501, ``API_URL=http://api:8000``, ``depends_on: [api]``, ``restart: always``;
- ``models/features.h5``: HDF5, 200 vectors of dimension 2048 and their image paths
  (relative, under ``images/``, every one present), owned by the containers' user (uid
  10001), mode 0640 (:mod:`lab.feature_store`);
- nginx (Debian's, on the host) in front of the API: the document's "Use HTTPS with proper
  certificates" and "Use a reverse proxy like Nginx" (80 -> 443, TLS 1.2+, HSTS), the same
  front as the DocuSnap lab's (:func:`lab.systems.docusnap.render_nginx`);
- ``backups/``: a copy of the feature store taken at start, with its sha256 in
  ``manifest.json`` (the document's "Create regular backups of the H5 file");
- monitoring ("Monitoring Setup"): the API's ``/metrics`` (response time, search latency,
  feature extraction time), node-exporter (memory), Prometheus with alert rules, Alertmanager
  routing to a webhook receiver in this process, a logrotate configuration for the logs.

Both containers run as uid 10001, log through json-file rotated at 10 MB x 3, and publish
their ports on 127.0.0.1 only (free ports chosen at start; the document's 8000 and 8501 are
the container ports).  Traffic: loopback only -- the containers' addresses
(10.199.192.0/18) are never contacted.

Waiting for health: Docker Engine 20.10 has no ``start_interval``, so the first probe of a
30 s healthcheck runs 30 s after the container starts.  The lab starts the Compose project
first, does everything else (nginx, backups, the waits for the published ports) while that
clock runs, then polls the container's health every 0.25 s -- about 30 s per start, not
more.  ``GOLIVE_LAB_DOCKER_HOST`` (``unix:///tmp/gld-.../s.sock``, a private lab engine
someone else started, e.g. the self-tests' session engine) makes the lab use that engine
instead of starting its own; it then removes only its own project.

Each broken variant changes one thing the document's checklist names (:data:`VARIANTS`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

from lab import certs, nginx
from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    free_ports,
    http_status,
    register,
    spawn,
    stop_processes,
    unregister,
    wait_until,
)
from lab.systems import variant_key
from lab.variants import LAB_HOSTNAMES

DESCRIPTION = ("STRV Similarity Search (Docker Compose): API on 8000 (FastAPI, /health healthcheck 30s/10s/3, "
               "API key + rate limit, restart always), frontend on 8501, features.h5 (HDF5, 2048-d), nginx TLS front")
REPO_ROOT = Path(__file__).resolve().parents[2]
APP_UID = 10001  # the containers' user (lab.images: 'app')
DIMENSION = 2048
IMAGES = 200
NUM_WORKERS = 4
RATE_RPS = 5
RATE_BURST = 10
HEALTHCHECK = {"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost:8000/health"],
               "interval": "30s", "timeout": "10s", "retries": 3}
ROTATED_LOGS = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
API_ENV = ("API_HOST", "API_PORT", "NUM_WORKERS", "VECTOR_DIMENSION")
FRONTEND_ENV = ("API_URL",)
KEY_ENV = "GOLIVE_LAB_STRV_KEY"  # optional: the API key's value (the self-test's canary)
STAMP = "%Y%m%dT%H%M%SZ"
#: the first health probe comes one interval (30 s) after start; then up to one probe's timeout
HEALTH_WAIT_S = 75.0


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What one variant sets (defaults: the compliant lab)."""

    description: str
    healthcheck: bool = True
    auth: bool = True
    dimension: int = DIMENSION  # of the vectors in features.h5 (VECTOR_DIMENSION stays 2048)
    gpu_extractor: bool = False  # the target declares the API as the GPU feature extractor


VARIANTS: dict[str, Knobs] = {
    "compliant": Knobs("STRV Docker deployment as documented: every check passes but this machine's sizing"),
    "no_healthcheck": Knobs("api service without its /health healthcheck", healthcheck=False),
    "api_no_auth": Knobs("API answers /api/* without an API key (authentication off)", auth=False),
    "wrong_dimension": Knobs("features.h5 holds 512-dimensional vectors while VECTOR_DIMENSION=2048",
                             dimension=512),
    "gpu_required_absent": Knobs("large-dataset mode: the API extracts features on a GPU (declared), "
                                 "this machine has none", gpu_extractor=True),
}


class RunningStrv(StopsOnExit):
    """A started STRV lab.  ``ports``: ``api``, ``frontend`` (published on 127.0.0.1),
    ``https``, ``http`` (nginx), ``nginx_status``."""

    def __init__(self, workdir: Path, variant: str, start_timeout_s: float) -> None:
        self.workdir = workdir
        self.variant = variant
        self.knobs = VARIANTS[variant]
        self.start_timeout_s = start_timeout_s
        self.project = f"strv{secrets.token_hex(3)}"
        self.ports: dict[str, int] = {}
        self.compose_dir = workdir / "deploy"
        self.app_dir = self.compose_dir / "app"
        self.models_dir = self.compose_dir / "models"
        self.features = self.models_dir / "features.h5"
        self.images_dir = self.compose_dir / "images"
        self.logs_dir = self.compose_dir / "logs"
        self.key_file = workdir / "secrets" / "api_key"
        self.backup_dir = workdir / "backups"
        self.lab_logs = workdir / "lab-logs"
        self.tls_dir = workdir / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.nginx_layout = nginx.NginxLayout(workdir / "nginx")
        self.monitoring_dir = workdir / "monitoring"
        self.logrotate_conf = workdir / "config" / "logrotate.conf"
        self.webhook: Any = None
        self.engine: Any = None
        self.own_engine = False
        self.health_wait_s = 0.0
        self.start_duration_s = 0.0
        self._tls: certs.TlsFiles | None = None
        self._procs: dict[str, ManagedProcess] = {}
        self._up = False
        self._stopped = False

    # ------------------------------------------------------------------ public API

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.ports['https']}"

    @property
    def compose_file(self) -> Path:
        return self.compose_dir / "docker-compose.yml"

    def describe(self) -> dict[str, Any]:
        return {"lab_ports": dict(self.ports), "lab_health_wait_s": round(self.health_wait_s, 1)}

    def target_overrides(self) -> dict[str, Any]:
        p = self.ports
        host = "strv"
        return {
            "hosts": [{"name": host, "connection": "local://", "roles": ["api", "frontend", "app"],
                       "data_path": str(self.models_dir)}],
            "endpoints": {
                "public": self.https_url,
                "http": f"http://localhost:{p['http']}",
                "health": f"{self.https_url}/health",
                # the published container ports, addressed "from outside" (127.0.0.1 only: closed there)
                "internal": [f"127.0.0.2:{p['api']}", f"127.0.0.2:{p['frontend']}"],
                "ca_file": str(self.ca_file),
            },
            "containers": {
                "host": self.engine.host, "project": self.project, "compose_file": str(self.compose_file),
                "services": {
                    "api": {"ports": [f"127.0.0.1:{p['api']}:8000"], "env": list(API_ENV),
                            "gpu": self.knobs.gpu_extractor},
                    # the document gives the frontend no healthcheck (only the api has one)
                    "frontend": {"ports": [f"127.0.0.1:{p['frontend']}:8501"], "env": list(FRONTEND_ENV),
                                 "healthcheck": False,
                                 # ST-HA-05: starts after the API; ST-NET-03: reaches it as http://api:8000
                                 "depends_on": ["api"], "connects_to": {"API_URL": "api"}},
                },
            },
            # ST-NET-02: the frontend's own page (a catch-all 200 would not carry its title)
            "http": {"pages": {"frontend": {"url": f"http://127.0.0.1:{p['frontend']}/", "content_type": "text/html",
                                            "body": {"pattern": "<title>STRV Similarity Search</title>"}}}},
            "auth": {
                "protected_paths": ["/api/stats", "/api/images/0", "POST /api/search"],
                "token_file": str(self.key_file), "scheme": "Bearer",
                "rate_limit": {"path": "/api/stats", "requests_per_s": RATE_RPS, "burst": RATE_BURST},
            },
            "datastores": {"feature_store": {
                "path": str(self.features), "user": str(APP_UID), "host": host,
                # stored paths are relative to the API's working directory (/app = deploy/ here)
                "image_root": str(self.compose_dir), "python": "/usr/bin/python3"}},
            "backups": [{
                "kind": "files", "location": str(self.backup_dir), "pattern": "strv-features-*",
                "contents": ["features"], "sources": [str(self.features)],
            }],
            "release": {"base_url": self.https_url, "ca_file": str(self.ca_file), "openapi": "/openapi.json"},
            "monitoring": self._monitoring_overrides(host),
            # the API's processes as the host sees them (uid 10001 has no account on the host); the
            # frontend is judged as a container only (it is no metrics source: the document monitors
            # the API's response time, search latency and feature extraction time)
            "services": [
                {"name": "api", "host": host, "port": p["api"], "bind": "loopback", "user": str(APP_UID),
                 "process": "uvicorn main:app --app-dir /app/src", "env": list(API_ENV),
                 "files": [str(self.features)]},
            ],
        }

    def stop(self) -> None:
        """Remove the Compose project, stop nginx and (when the lab started it) the engine.
        Idempotent; also at exit and on SIGINT/SIGTERM."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.engine is not None and self._up:
                with contextlib.suppress(Exception):
                    self.engine.compose(self.compose_dir, self.project, "down", "-v", "-t", "2",
                                        "--remove-orphans", timeout=120, check=False)
            stop_processes(list(self._procs.values()))
            if self.webhook is not None:
                self.webhook.stop()
            if self.engine is not None and self.own_engine:
                self.engine.stop()
        finally:
            unregister(self)

    def __repr__(self) -> str:
        return f"<RunningStrv {self.variant} in {self.workdir} ports={self.ports} stopped={self._stopped}>"

    # ------------------------------------------------------------------ files

    def _prepare_files(self) -> None:
        from lab.feature_store import make_feature_store, write_images

        for d in (self.app_dir, self.models_dir, self.logs_dir, self.key_file.parent, self.backup_dir,
                  self.lab_logs, self.monitoring_dir, self.logrotate_conf.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.compose_dir.chmod(0o755)
        self._tls = certs.write_tls_files(self.tls_dir, LAB_HOSTNAMES)
        here = Path(__file__).parent
        shutil.copy2(here / "strv_api.py", self.app_dir / "main.py")
        shutil.copy2(here / "strv_frontend.py", self.app_dir / "frontend.py")
        for f in self.app_dir.iterdir():
            f.chmod(0o644)
        names = write_images(self.images_dir, IMAGES)
        make_feature_store(self.features, [f"images/{n}" for n in names], dimension=self.knobs.dimension,
                           owner=APP_UID if os.geteuid() == 0 else None, mode=0o640)
        built = time.time() - 3600  # extracted an hour ago; the backup below is newer
        os.utime(self.features, (built, built))
        # the key: random, or a canary the self-tests give to prove it never leaks
        key = os.environ.get(KEY_ENV) or secrets.token_urlsafe(24)
        self.key_file.write_text(key + "\n")
        self.key_file.chmod(0o600)
        env = self.compose_dir / ".env"
        env.write_text(f"STRV_API_KEY={key}\n")
        env.chmod(0o600)
        if os.geteuid() == 0:
            for d in (self.models_dir, self.logs_dir):
                os.chown(d, APP_UID, APP_UID)
            self.models_dir.chmod(0o750)
            self.logs_dir.chmod(0o750)
        self._backup()

    def _backup(self) -> Path:
        """The feature store's backup (tar.gz), recorded with its sha256 in manifest.json."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        name = f"strv-features-{now.strftime(STAMP)}.tar.gz"
        path = self.backup_dir / name
        with tarfile.open(path, "w:gz") as tar:
            tar.add(self.features, arcname="features/features.h5")
        (self.backup_dir / "manifest.json").write_text(json.dumps({"backups": {name: {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "kind": "full", "time": now.isoformat()}}},
            indent=2) + "\n")
        return path

    def compose(self) -> dict[str, Any]:
        """The Compose file: the document's, with images from this machine and loopback ports."""
        from lab.images import PYTHON_IMAGE

        p = self.ports
        api: dict[str, Any] = {
            "image": PYTHON_IMAGE,
            "working_dir": "/app",
            # $$: Compose's escape; the shell expands the container's own variables
            "command": ["sh", "-c", 'exec python3 -m uvicorn main:app --app-dir /app/src --host "$$API_HOST" '
                                    '--port "$$API_PORT" --workers "$$NUM_WORKERS"'],
            "user": str(APP_UID),
            "ports": [f"127.0.0.1:{p['api']}:8000"],
            "volumes": ["./app:/app/src:ro", "./models:/app/models", "./logs:/app/logs", "./images:/app/images:ro"],
            "environment": {
                "API_HOST": "0.0.0.0", "API_PORT": "8000", "NUM_WORKERS": str(NUM_WORKERS),
                "VECTOR_DIMENSION": str(DIMENSION), "FEATURES_PATH": "/app/models/features.h5",
                "LOG_DIR": "/app/logs", "STRV_API_KEY": "${STRV_API_KEY}",
                "STRV_AUTH": "on" if self.knobs.auth else "off",
                "RATE_LIMIT_RPS": str(RATE_RPS), "RATE_LIMIT_BURST": str(RATE_BURST),
                "METRICS_DIR": "/tmp/strv-metrics",
            },
            "restart": "always",
            "logging": dict(ROTATED_LOGS),
        }
        if self.knobs.healthcheck:
            api["healthcheck"] = dict(HEALTHCHECK)
        frontend = {
            "image": PYTHON_IMAGE,
            "command": ["python3", "/app/src/frontend.py"],
            "user": str(APP_UID),
            "ports": [f"127.0.0.1:{p['frontend']}:8501"],
            "volumes": ["./app:/app/src:ro"],
            "environment": {"API_URL": "http://api:8000"},
            "depends_on": ["api"],
            "restart": "always",
            "logging": dict(ROTATED_LOGS),
        }
        return {"version": "3", "services": {"api": api, "frontend": frontend}}

    # ------------------------------------------------------------------ start

    def _engine(self) -> None:
        from lab.docker_engine import lab_engine
        from lab.images import python_image

        self.engine, self.own_engine = lab_engine()
        python_image(self.engine)

    def _health(self) -> str:
        client = self.engine.client()
        for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={self.project}"}):
            if c.labels.get("com.docker.compose.service") == "api":
                state = c.attrs.get("State") or {}
                if not state.get("Running"):
                    raise LabError(f"the api container stopped: {state.get('Status')} (exit {state.get('ExitCode')})"
                                   f"\n{c.logs(tail=30).decode(errors='replace')}")
                return str((state.get("Health") or {}).get("Status", "none"))
        return "missing"

    def _wait_healthy(self) -> None:
        """The api container's health: the first probe runs one interval after start (Engine
        20.10 has no start_interval); poll the engine until it says healthy, bounded."""
        started = time.monotonic()
        deadline = started + HEALTH_WAIT_S
        status = "missing"
        while time.monotonic() < deadline:
            status = self._health()
            if status == "healthy":
                self.health_wait_s = time.monotonic() - started
                return
            if status == "unhealthy":
                break
            time.sleep(0.25)
        raise LabError(f"api container not healthy after {time.monotonic() - started:.0f} s: {status}")

    def _start(self) -> None:
        started = time.monotonic()
        nginx.find_nginx()
        self._prepare_files()
        register(self)
        self._engine()
        names = ["api", "frontend", "https", "http", "nginx_status", "node_exporter", "prometheus", "alertmanager",
                 "webhook"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.compose_file.write_text(yaml.safe_dump(self.compose(), sort_keys=False))
        self.engine.remember_bridges()
        self._up = True
        try:
            self.engine.compose(self.compose_dir, self.project, "up", "-d", "--no-build", timeout=180)
        finally:
            self.engine.remember_bridges()
        compose_up = time.monotonic()
        # while the healthcheck's first interval runs: nginx, then the published ports
        self._start_nginx()
        t, p = self.start_timeout_s, self.ports
        wait_until(f"API (127.0.0.1:{p['api']}/health)",
                   lambda: http_status("127.0.0.1", p["api"], "/health", timeout=2.0) == 200,
                   timeout_s=max(t, 60), interval_s=0.2)
        wait_until(f"frontend (127.0.0.1:{p['frontend']}/)",
                   lambda: http_status("127.0.0.1", p["frontend"], "/", timeout=2.0) == 200,
                   timeout_s=t, interval_s=0.2)
        wait_until(f"nginx ({self.https_url}/health)",
                   lambda: http_status("127.0.0.1", p["https"], "/health", tls=True, timeout=2.0) == 200,
                   timeout_s=t, proc=self._procs["nginx"], interval_s=0.1)
        self._start_monitoring()
        if self.knobs.healthcheck:
            self._wait_healthy()
            self.health_wait_s = time.monotonic() - compose_up
        self.start_duration_s = time.monotonic() - started

    def log_files(self) -> dict[str, Path]:
        """The logs the deployment writes, by kind (monitoring.logs)."""
        return {"application": self.logs_dir / "api.log", "security": self.logs_dir / "security.log",
                "access": self.nginx_layout.access_log, "error": self.nginx_layout.error_log}

    def _start_monitoring(self) -> None:
        """The document's "Monitoring Setup": node-exporter (memory usage), Prometheus scraping
        it and the API's /metrics (response time, search latency, feature extraction time)
        every second with the alert rules (error rate, API unavailable, resources),
        Alertmanager routing to a webhook receiver in this process; logrotate for the logs."""
        from lab import monitoring as mon

        p, t, mdir = self.ports, self.start_timeout_s, self.monitoring_dir
        self.webhook = mon.WebhookReceiver(p["webhook"])
        rules = mdir / "rules.yml"
        rules.write_text(mon.rules_yaml())
        prom_conf = mdir / "prometheus.yml"
        scrape = {"node": f"127.0.0.1:{p['node_exporter']}", "api": f"127.0.0.1:{p['api']}"}
        prom_conf.write_text(mon.prometheus_config(alertmanager=p["alertmanager"], rules=rules, targets=scrape))
        am_conf = mdir / "alertmanager.yml"
        am_conf.write_text(mon.alertmanager_config(webhook=p["webhook"]))
        self.logrotate_conf.write_text(mon.logrotate_conf(list(self.log_files().values())))
        self._procs["node-exporter"] = spawn("node-exporter", [
            mon.find_binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{p['node_exporter']}",
            "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.diskstats",
            "--collector.netdev", "--collector.filesystem"], self.lab_logs / "node-exporter.log")
        self._procs["alertmanager"] = spawn("alertmanager", [
            mon.find_binary("prometheus-alertmanager"), f"--config.file={am_conf}",
            f"--storage.path={mdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{p['alertmanager']}",
            "--cluster.listen-address="], self.lab_logs / "alertmanager.log")
        self._procs["prometheus"] = spawn("prometheus", [
            mon.find_binary("prometheus"), f"--config.file={prom_conf}", f"--storage.tsdb.path={mdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{p['prometheus']}", "--storage.tsdb.retention.time=1h"],
            self.lab_logs / "prometheus.log")
        wait_until("prometheus (/-/ready)",
                   lambda: http_status("127.0.0.1", p["prometheus"], "/-/ready", timeout=2.0) == 200, timeout_s=t,
                   proc=self._procs["prometheus"], interval_s=0.1)
        wait_until("alertmanager (/-/ready)",
                   lambda: http_status("127.0.0.1", p["alertmanager"], "/-/ready", timeout=2.0) == 200, timeout_s=t,
                   proc=self._procs["alertmanager"], interval_s=0.1)
        wait_until("prometheus scraping node and api", self._all_up, timeout_s=max(t, 30),
                   proc=self._procs["prometheus"], interval_s=0.2)

    def _all_up(self) -> bool:
        import urllib.parse
        import urllib.request

        url = f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": "up"})
        with urllib.request.urlopen(url, timeout=2) as resp:
            result = json.load(resp)["data"]["result"]
        return len(result) == 2 and all(r["value"][1] == "1" for r in result)

    def _monitoring_overrides(self, host: str) -> dict[str, Any]:
        """Prometheus and Alertmanager, the API found by its job with its search latency and
        feature extraction time, the alert names, the logs, the synthetic alert's receiver,
        and the unavailability drill: the api container paused (``docker pause``: every
        uvicorn process frozen, the published port stops answering) and unpaused."""
        logs = self.log_files()
        docker = f"DOCKER_HOST={self.engine.host} /usr/bin/docker"
        container = f"{self.project}_api_1"
        return {
            "prometheus": {"url": f"http://127.0.0.1:{self.ports['prometheus']}", "timeout_s": 3},
            "alertmanager": {"url": f"http://127.0.0.1:{self.ports['alertmanager']}", "timeout_s": 3},
            "services": {"api": {"labels": {"job": "api"}, "signals": {
                "search_latency": "strv_search_latency_seconds_count{$selector}",
                "feature_extraction_time": "strv_feature_extraction_seconds_count{$selector}"}}},
            "alerts": {"unavailable": ["InstanceDown"], "error_rate": ["HighErrorRate"],
                       "resources": ["HostMemoryExhausted", "HostDiskFull"]},
            "logs": {host: {"application": [str(logs["application"])], "access": [str(logs["access"])],
                            "error": [str(logs["error"])], "security": [str(logs["security"])],
                            "logrotate": [str(self.logrotate_conf)],
                            "rotation": "RotatingFileHandler maxBytes=10MB backupCount=5 (api.log, security.log)"}},
            "synthetic": {"receiver_url": f"http://127.0.0.1:{self.ports['webhook']}/received", "timeout_s": 20},
            "drill": {"service": "api", "stop": {"command": f"{docker} pause {container}"},
                      "start": {"command": f"{docker} unpause {container}"},
                      "timeout_s": 30, "restore_timeout_s": 20},
        }

    def _start_nginx(self) -> None:
        from lab.systems.docusnap import Knobs as FrontKnobs
        from lab.systems.docusnap import render_nginx

        layout = self.nginx_layout
        nginx.prepare(layout)
        assert self._tls is not None
        # the DocuSnap lab's front (TLS 1.2+, HSTS, headers, CORS allowlist, 80 -> 443), here to the API
        layout.conf.write_text(render_nginx(layout, https_port=self.ports["https"], http_port=self.ports["http"],
                                            app_port=self.ports["api"], status_port=self.ports["nginx_status"],
                                            chain_file=self._tls.chain_file, key_file=self._tls.key_file,
                                            knobs=FrontKnobs("strv front")))
        self._procs["nginx"] = spawn("nginx", nginx.argv(nginx.find_nginx(), layout), layout.error_log,
                                     cwd=layout.run_dir)


def start(workdir: Path, variant: str = "compliant", *, start_timeout_s: float = 30.0) -> RunningStrv:
    """Start the STRV lab (``variant``: see :data:`VARIANTS`) in ``workdir`` (an empty or new
    folder).  On any failure everything already started is removed and
    :class:`~lab.procs.LabError` names the component."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise LabError(f"workdir {workdir} is not empty: the STRV lab starts in an empty or new folder")
    lab = RunningStrv(workdir, variant_key("strv", VARIANTS, variant), start_timeout_s)
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    if sys.stderr.isatty():
        sys.stderr.write(f"lab strv: up in {lab.start_duration_s:.0f} s (health {lab.health_wait_s:.0f} s)\n")
    return lab
