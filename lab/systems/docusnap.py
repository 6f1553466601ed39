"""The DocuSnap-Backend lab, single-server mode, built as the seed document
(../shared/seeds/000_*.txt, "Single-Server Deployment", "Network Configuration",
"Backup Strategy") describes, on loopback:

- nginx (Debian package): the document's ports 80 and 443 -- the HTTP listener answers 301
  to HTTPS; HTTPS terminates TLS 1.2+ with HSTS (the baseline profile asks for it), the
  usual security headers and a CORS allowlist (``https://app.golive.test``), and proxies
  everything to gunicorn;
- gunicorn (Debian's ``/usr/bin/gunicorn``, master + 2 sync workers, pid file, run as the
  service account :data:`SERVICE_USER` that owns the database): the document's port 8000,
  bound to 127.0.0.1, serving :mod:`lab.systems.docusnap_app` (a
  stdlib WSGI stand-in for the Flask app) copied into ``app/`` (the deployed checkout), with
  its settings and the ``ZHIPU_API_KEY`` in the environment;
- the OCR service (:mod:`lab.systems.docusnap_ocr`): the document's port 5001, internal
  only, bound to 127.0.0.1;
- SQLite (``data/docusnap.sqlite3``) and the document store (``data/files/``);
- backups in ``backups/``: a weekly full (``docusnap-full-<UTC>.tar.gz``: database snapshot
  through SQLite's online backup API, every stored document, the config, the key file and
  the deployed code) and daily incrementals (``docusnap-incr-<UTC>.tar.gz``: a database
  snapshot and the documents added since the previous backup), each recorded with its
  sha256 in ``manifest.json``.  The lab stands in for a week of the schedule: at start it
  writes the last full backup and the daily incrementals since, each with the name and
  mtime of its day, then takes today's incremental;
- monitoring (the document's "Monitoring Metrics" and "Log Management"): node-exporter,
  metrics of gunicorn, the OCR service and nginx (:mod:`lab.systems.docusnap_nginx_exporter`),
  Prometheus with alert rules, Alertmanager routing to a webhook receiver in this process,
  JSON application/security logs and a logrotate configuration.

Ports: the document's 80/443/8000/5001 are free loopback ports chosen at start (other labs
and services share this machine).  As in :mod:`lab.run`, golive reaches "the host from
outside" at 127.0.0.2: a socket bound to 127.0.0.1 refuses it, one bound to 0.0.0.0 accepts.

Each broken variant changes one thing the document's checklist names (see :data:`VARIANTS`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import sqlite3
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from lab import certs, nginx
from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    free_ports,
    http_status,
    port_in_use_error,
    python_env,
    register,
    spawn,
    stop_processes,
    unregister,
    wait_until,
)
from lab.systems import variant_key
from lab.variants import ALLOWED_ORIGIN, LAB_HOSTNAMES, LEGACY_CIPHERS, MODERN_CIPHERS, MODERN_PROTOCOLS

DESCRIPTION = ("DocuSnap-Backend single-server: nginx 80->443 (TLS, HSTS) -> gunicorn on 8000 -> WSGI app, "
               "OCR service on 5001 (internal), SQLite + files, daily incremental / weekly full backups")
REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN = "/usr/bin/gunicorn"  # Debian's package (scripts/setup.sh); any account can run it
APP_PYTHON = "/usr/bin/python3"  # the interpreter of Debian's gunicorn, i.e. the app's
VERSION = "1.0.0"  # the release the lab deploys (and declares intended)
WORKERS = 2
APP_ENV = ("DOCUSNAP_DB", "DOCUSNAP_FILES", "DOCUSNAP_OCR_URL", "DOCUSNAP_VERSION", "ZHIPU_API_KEY")
BACKUP_FULL = "docusnap-full-"
BACKUP_INCR = "docusnap-incr-"
STAMP = "%Y%m%dT%H%M%SZ"
PORT_ATTEMPTS = 3
#: The account gunicorn runs as (DS-AUTH-03: the SQLite file belongs to the service user).
#: The app's account when the lab runs as root: created for the run (through lab.sshd's
#: account bookkeeping) and removed by the last lab that holds it; otherwise the app runs as
#: the invoking user.
SERVICE_USER = "golive-docusnap"
KEY_ENV = "GOLIVE_LAB_DOCUSNAP_KEY"  # optional: the value of the app's ZHIPU_API_KEY


def service_account() -> pwd.struct_passwd:
    """The app's account: ``golive-docusnap`` (a system account without login, created for
    this lab and removed when it stops) as root, else the current user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid())
    from lab.sshd import ensure_user

    return ensure_user(SERVICE_USER, system=True)


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What one variant sets (defaults: the compliant lab)."""

    description: str
    ocr_bind: str = "127.0.0.1"
    tls_protocols: str = MODERN_PROTOCOLS
    tls_ciphers: str = MODERN_CIPHERS
    cors: str = "allowlist"  # or "wildcard": Access-Control-Allow-Origin * for every origin
    full_age_days: float = 6.0  # the last weekly full backup; the incrementals are daily since


VARIANTS: dict[str, Knobs] = {
    "compliant": Knobs("DocuSnap single-server as documented: every check passes but this machine's sizing"),
    "ocr_exposed": Knobs("OCR service bound to 0.0.0.0 (reachable from outside) instead of 127.0.0.1",
                         ocr_bind="0.0.0.0"),
    "tls10": Knobs("nginx offers TLS 1.0 and 1.1 (SECLEVEL=0) besides TLS 1.2",
                   tls_protocols="TLSv1 TLSv1.1 TLSv1.2", tls_ciphers=LEGACY_CIPHERS),
    "no_weekly_full": Knobs("last full backup 9 days ago (the weekly full stopped); daily incrementals go on",
                            full_age_days=9.0),
    "cors_wildcard": Knobs("CORS: Access-Control-Allow-Origin * for every origin", cors="wildcard"),
}


def render_nginx(layout: nginx.NginxLayout, *, https_port: int, http_port: int, app_port: int, status_port: int,
                 chain_file: Path, key_file: Path, knobs: Knobs, listen: str = "127.0.0.1",
                 upstream: str | None = None) -> str:
    """nginx.conf: 80 -> 301 https, 443 TLS -> gunicorn, HSTS, security headers, CORS; a
    JSON access log and stub_status on a loopback status port (for its metrics).  ``listen``
    is the address nginx binds (0.0.0.0 inside a container, whose published ports are bound
    on the host's loopback); ``upstream`` the app's address (default 127.0.0.1:app_port)."""
    return nginx.render_app_proxy(layout, lab="DocuSnap", variant=knobs.description, https_port=https_port,
                                  http_port=http_port, status_port=status_port,
                                  upstream=upstream or f"127.0.0.1:{app_port}", chain_file=chain_file,
                                  key_file=key_file, protocols=knobs.tls_protocols, ciphers=knobs.tls_ciphers,
                                  cors_wildcard=knobs.cors == "wildcard", listen=listen,
                                  http_extra="    client_body_buffer_size 2m;\n    proxy_max_temp_file_size 0;\n")


class RunningDocuSnap(StopsOnExit):
    """A started DocuSnap lab.  ``ports``: ``https``, ``http``, ``app`` (gunicorn), ``ocr``."""

    def __init__(self, workdir: Path, variant: str, start_timeout_s: float) -> None:
        self.workdir = workdir
        self.variant = variant
        self.knobs = VARIANTS[variant]
        self.start_timeout_s = start_timeout_s
        self.ports: dict[str, int] = {}
        self.tls_dir = workdir / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.app_dir = workdir / "app"
        self.data_dir = workdir / "data"
        self.db_path = self.data_dir / "docusnap.sqlite3"
        self.files_dir = self.data_dir / "files"
        self.config_file = workdir / "config" / "docusnap.env"
        self.key_file = workdir / "secrets" / "zhipu_api_key"
        self.backup_dir = workdir / "backups"
        self.run_dir = workdir / "run"
        self.logs_dir = workdir / "logs"
        self.nginx_layout = nginx.NginxLayout(workdir / "nginx")
        self.metrics_dir = self.run_dir / "metrics"
        self.monitoring_dir = workdir / "monitoring"
        self.logrotate_conf = workdir / "config" / "logrotate.conf"
        self.webhook: Any = None
        self.account = pwd.getpwuid(os.getuid())
        self.start_duration_s = 0.0
        self._tls: certs.TlsFiles | None = None
        self._procs: dict[str, ManagedProcess] = {}
        self._stopped = False

    # ------------------------------------------------------------------ public API

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.ports['https']}"

    @property
    def app_pidfile(self) -> Path:
        return self.run_dir / "gunicorn.pid"

    @property
    def ocr_pidfile(self) -> Path:
        return self.run_dir / "ocr.pid"

    def describe(self) -> dict[str, Any]:
        return {"lab_ports": dict(self.ports)}

    def target_overrides(self) -> dict[str, Any]:
        https, app, ocr = self.ports["https"], self.ports["app"], self.ports["ocr"]
        host = "docusnap"
        return {
            "hosts": [{"name": host, "connection": "local://", "roles": ["app", "ocr", "db"],
                       "data_path": str(self.data_dir)}],
            "endpoints": {
                "public": self.https_url,
                "http": f"http://localhost:{self.ports['http']}",
                "health": f"{self.https_url}/health",
                # the document's internal ports, addressed "from outside" (see the module docstring)
                "internal": [f"127.0.0.2:{app}", f"127.0.0.2:{ocr}"],
                "ca_file": str(self.ca_file),
            },
            "services": [
                {"name": "nginx", "host": host, "port": https, "bind": "any",
                 "pidfile": str(self.nginx_layout.pid_file), "config": str(self.nginx_layout.conf),
                 "config_prefix": f"{self.nginx_layout.run_dir}/", "proxy_to": [f"127.0.0.1:{app}"]},
                {"name": "gunicorn", "host": host, "port": app, "bind": "loopback", "user": self.account.pw_name,
                 "pidfile": str(self.app_pidfile), "workers": WORKERS, "env": list(APP_ENV),
                 "files": [str(self.key_file)],
                 "python": APP_PYTHON},
                {"name": "ocr", "host": host, "port": ocr, "bind": "loopback", "pidfile": str(self.ocr_pidfile)},
            ],
            "cors": {"allowed_origins": [ALLOWED_ORIGIN]},
            "datastores": {"sqlite": {"path": str(self.db_path), "user": self.account.pw_name, "host": host}},
            "backups": [{
                "kind": "files", "location": str(self.backup_dir),
                "full_pattern": f"{BACKUP_FULL}*", "incremental_pattern": f"{BACKUP_INCR}*",
                "contents": ["database", "config", "keys", "code"],
                # the live database changes with every upload: it is covered by the snapshots,
                # not compared by mtime; config, key and code must not change after a backup
                "sources": [str(self.config_file), str(self.key_file), str(self.app_dir / "docusnap_app.py")],
            }],
            "monitoring": self._monitoring_overrides(host),
            "release": {
                "base_url": self.https_url, "ca_file": str(self.ca_file), "openapi": "/openapi.json",
                "intended_version": VERSION, "version": {"path": "/version", "field": "version"},
                "smoke": [
                    {"name": "health", "path": "/health", "expect": {"status": "ok"}},
                    {"name": "upload a document", "method": "POST", "path": "/api/documents",
                     "json": {"name": "receipt.txt", "content": "total 42 eur"}, "expect_status": 201,
                     "expect": {"text": "TOTAL 42 EUR"}, "save": {"id": "id"}},
                    {"name": "read it back", "path": "/api/documents/{id}", "expect": {"text": "TOTAL 42 EUR"}},
                ],
            },
        }

    def _monitoring_overrides(self, host: str) -> dict[str, Any]:
        """Prometheus and Alertmanager, nginx found by its exporter's job (its queue and
        processing time are nginx's own: requests being written, upstream response time),
        the alert names, the logs, the synthetic alert's receiver and the unavailability
        drill (the OCR service paused with SIGSTOP through its pid file, SIGCONT after)."""
        logs = self.log_files()
        return {
            "prometheus": {"url": f"http://127.0.0.1:{self.ports['prometheus']}", "timeout_s": 3},
            "alertmanager": {"url": f"http://127.0.0.1:{self.ports['alertmanager']}", "timeout_s": 3},
            "services": {"nginx": {"labels": {"job": "nginx"}, "signals": {
                "queue_length": "nginx_connections_writing{$selector}",
                "processing_time": "nginx_upstream_response_seconds_count{$selector}"}}},
            "alerts": {"unavailable": ["InstanceDown"], "error_rate": ["HighErrorRate"],
                       "resources": ["HostMemoryExhausted", "HostDiskFull"]},
            "logs": {host: {"application": [str(logs["application"])], "access": [str(logs["access"])],
                            "error": [str(logs["error"]), str(logs["gunicorn-error"])],
                            "security": [str(logs["security"])], "logrotate": [str(self.logrotate_conf)]}},
            "synthetic": {"receiver_url": f"http://127.0.0.1:{self.ports['webhook']}/received", "timeout_s": 20},
            "drill": {"service": "ocr", "stop": {"pidfile": str(self.ocr_pidfile), "signal": "STOP"},
                      "start": {"pidfile": str(self.ocr_pidfile), "signal": "CONT"},
                      "timeout_s": 30, "restore_timeout_s": 20},
        }

    def stop(self) -> None:
        """Stop every component (idempotent; also at exit and on SIGINT/SIGTERM)."""
        if self._stopped:
            return
        self._stopped = True
        for name in ("ocr", "node-exporter"):  # a process stopped by a drill (SIGSTOP) ignores SIGTERM
            proc = self._procs.get(name)
            if proc is not None:
                # the OCR service runs under its supervisor: continue the whole group
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)
        killed = stop_processes(list(self._procs.values()))
        if self.webhook is not None:
            self.webhook.stop()
        if getattr(self, "account", None) is not None and os.geteuid() == 0:
            from lab.sshd import release_user

            release_user(SERVICE_USER)
        if killed:
            sys.stderr.write(f"lab docusnap: needed SIGKILL for {', '.join(killed)}\n")
        unregister(self)

    def __repr__(self) -> str:
        return f"<RunningDocuSnap {self.variant} in {self.workdir} ports={self.ports} stopped={self._stopped}>"

    # ------------------------------------------------------------------ files

    def _prepare_files(self) -> None:
        for d in (self.app_dir, self.files_dir, self.config_file.parent, self.key_file.parent, self.backup_dir,
                  self.run_dir, self.logs_dir, self.metrics_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._tls = certs.write_tls_files(self.tls_dir, LAB_HOSTNAMES)
        shutil.copy2(Path(__file__).with_name("docusnap_app.py"), self.app_dir / "docusnap_app.py")
        # the LLM key: random, or a canary the self-tests give to prove it never leaks
        self.key_file.write_text((os.environ.get(KEY_ENV) or secrets.token_urlsafe(24)) + "\n")
        self.key_file.chmod(0o600)
        self.config_file.write_text(f"DOCUSNAP_DB={self.db_path}\nDOCUSNAP_FILES={self.files_dir}\n"
                                    f"DOCUSNAP_VERSION={VERSION}\nZHIPU_API_KEY_FILE={self.key_file}\n")
        self.account = service_account()
        conn = sqlite3.connect(self.db_path)
        with conn:
            conn.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL, "
                         "text TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
        conn.close()
        self._seed_backups()
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the app's data, logs, metrics and pid folder to its account: the database
        0640, its folder 0750 (SQLite writes its journal there); the lab folder traversable."""
        uid, gid = self.account.pw_uid, self.account.pw_gid
        self.workdir.chmod(0o755)
        for log in ("app.log", "security.log", "gunicorn-error.log", "gunicorn-access.log"):
            (self.logs_dir / log).touch()
            os.chown(self.logs_dir / log, uid, gid)
        for owned in (self.metrics_dir, self.run_dir, self.key_file):
            os.chown(owned, uid, gid)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, uid, gid)
        self.data_dir.chmod(0o750)
        self.db_path.chmod(0o640)

    def _add_document(self, doc_id: int, when: dt.datetime) -> None:
        """A stored document as the app writes them (file + row), dated ``when``."""
        name = f"scan-{doc_id:03d}.txt"
        path = self.files_dir / f"{doc_id:06d}-{name}"
        path.write_text(f"invoice {doc_id}\n")
        ts = when.timestamp()
        os.utime(path, (ts, ts))
        conn = sqlite3.connect(self.db_path)
        with conn:
            conn.execute("INSERT INTO documents (id, name, path, text, created_at) VALUES (?, ?, ?, ?, ?)",
                         (doc_id, name, str(path), f"INVOICE {doc_id}", when.strftime("%Y-%m-%d %H:%M:%S")))
        conn.close()

    def _seed_backups(self) -> None:
        """A week of the schedule: the last full, then one document and one incremental a
        day, then today's incremental -- each backup named and dated for its day."""
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        days = int(self.knobs.full_age_days)
        full_at = now - dt.timedelta(days=self.knobs.full_age_days)
        for i in range(1, 4):
            self._add_document(i, full_at - dt.timedelta(hours=4 - i))
        # config, key and code changed before the full backup (they were deployed then)
        for f in (self.config_file, self.key_file, self.app_dir / "docusnap_app.py"):
            os.utime(f, (full_at.timestamp() - 3600, full_at.timestamp() - 3600))
        write_backup(self, "full", full_at, since=None)
        previous = full_at
        for day in range(days - 1, 0, -1):
            when = now - dt.timedelta(days=day)
            self._add_document(10 + day, when - dt.timedelta(hours=1))
            write_backup(self, "incr", when, since=previous)
            previous = when
        write_backup(self, "incr", now, since=previous)

    # ------------------------------------------------------------------ processes

    def _start_ported(self) -> None:
        names = ["https", "http", "app", "ocr", "nginx_status", "nginx_exporter", "node_exporter", "prometheus",
                 "alertmanager", "webhook"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        env = python_env(REPO_ROOT)
        self._procs["ocr"] = spawn("ocr", self._supervised("ocr", [
            sys.executable, "-m", "lab.systems.docusnap_ocr", "--host", self.knobs.ocr_bind,
            "--port", str(self.ports["ocr"]), "--pidfile", str(self.ocr_pidfile)]),
            self.logs_dir / "ocr.log", cwd=self.workdir, env=env)
        app_env = {
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "DOCUSNAP_DB": str(self.db_path), "DOCUSNAP_FILES": str(self.files_dir),
            "DOCUSNAP_OCR_URL": f"http://127.0.0.1:{self.ports['ocr']}", "DOCUSNAP_VERSION": VERSION,
            "ZHIPU_API_KEY": self.key_file.read_text().strip(),
            "DOCUSNAP_METRICS_DIR": str(self.metrics_dir), "DOCUSNAP_LOG_DIR": str(self.logs_dir),
        }
        runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"  # util-linux
        as_user = [runuser, "-u", self.account.pw_name, "--"] if os.geteuid() == 0 else []
        # the supervisor needs the lab on PYTHONPATH, the app must not get it: env -u before runuser
        self._procs["gunicorn"] = spawn("gunicorn", self._supervised("gunicorn", [
            "env", "-u", "PYTHONPATH", *as_user, GUNICORN, "-w", str(WORKERS), "-b", f"127.0.0.1:{self.ports['app']}", "--pid", str(self.app_pidfile),
            "--chdir", str(self.app_dir), "--access-logfile", str(self.logs_dir / "gunicorn-access.log"),
            "--error-logfile", str(self.logs_dir / "gunicorn-error.log"), "docusnap_app:app"]),
            # the environment, never the command line, carries the key (runuser -u keeps it)
            self.logs_dir / "gunicorn.out", cwd=self.app_dir, env={**app_env, "PYTHONPATH": str(REPO_ROOT)})
        layout = self.nginx_layout
        nginx.prepare(layout)
        assert self._tls is not None
        layout.conf.write_text(render_nginx(layout, https_port=self.ports["https"], http_port=self.ports["http"],
                                            app_port=self.ports["app"], status_port=self.ports["nginx_status"],
                                            chain_file=self._tls.chain_file,
                                            key_file=self._tls.key_file, knobs=self.knobs))
        self._procs["nginx"] = spawn("nginx", self._supervised("nginx", nginx.argv(nginx.find_nginx(), layout)),
                                     layout.error_log, cwd=layout.run_dir, env=env)
        t = self.start_timeout_s
        p = self.ports
        wait_until(f"OCR service (127.0.0.1:{p['ocr']}/health)",
                   lambda: http_status("127.0.0.1", p["ocr"], "/health") == 200,
                   timeout_s=t, proc=self._procs["ocr"])
        wait_until(f"gunicorn (127.0.0.1:{p['app']}/health)",
                   lambda: http_status("127.0.0.1", p["app"], "/health") == 200,
                   timeout_s=t, proc=self._procs["gunicorn"])
        wait_until("gunicorn's pid file and workers", self._workers_up, timeout_s=t, proc=self._procs["gunicorn"])
        wait_until(f"nginx ({self.https_url}/health)",
                   lambda: http_status("127.0.0.1", p["https"], "/health", tls=True) == 200,
                   timeout_s=t, proc=self._procs["nginx"])
        wait_until(f"nginx plain-HTTP listener (127.0.0.1:{p['http']})",
                   lambda: http_status("127.0.0.1", p["http"], "/health") == 301, timeout_s=t,
                   proc=self._procs["nginx"])
        self._start_monitoring(env)

    # ------------------------------------------------------------------ monitoring

    def _start_monitoring(self, env: dict[str, str]) -> None:
        """node-exporter, nginx's exporter, Prometheus (scraping them, gunicorn and the OCR
        service every second, with the alert rules), Alertmanager routing to a webhook."""
        from lab import monitoring as mon

        p, t, mdir = self.ports, self.start_timeout_s, self.monitoring_dir
        mdir.mkdir(parents=True, exist_ok=True)
        self.webhook = mon.WebhookReceiver(p["webhook"])
        rules = mdir / "rules.yml"
        rules.write_text(mon.rules_yaml())
        prom_conf = mdir / "prometheus.yml"
        prom_conf.write_text(mon.prometheus_config(alertmanager=p["alertmanager"], rules=rules,
                                                   targets=self.scrape_targets()))
        am_conf = mdir / "alertmanager.yml"
        am_conf.write_text(mon.alertmanager_config(webhook=p["webhook"]))
        self.logrotate_conf.write_text(mon.logrotate_conf(list(self.log_files().values())))
        self._procs["node-exporter"] = spawn("node-exporter", [
            mon.find_binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{p['node_exporter']}",
            "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.diskstats",
            "--collector.netdev", "--collector.filesystem"], self.logs_dir / "node-exporter.log")
        self._procs["nginx-exporter"] = spawn("nginx-exporter", [
            sys.executable, "-m", "lab.systems.docusnap_nginx_exporter", "--log", str(self.nginx_layout.access_log),
            "--status", f"http://127.0.0.1:{p['nginx_status']}/nginx_status", "--port", str(p["nginx_exporter"])],
            self.logs_dir / "nginx-exporter.log", env=env)
        self._procs["alertmanager"] = spawn("alertmanager", [
            mon.find_binary("prometheus-alertmanager"), f"--config.file={am_conf}",
            f"--storage.path={mdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{p['alertmanager']}",
            "--cluster.listen-address="], self.logs_dir / "alertmanager.log")
        self._procs["prometheus"] = spawn("prometheus", [
            mon.find_binary("prometheus"), f"--config.file={prom_conf}", f"--storage.tsdb.path={mdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{p['prometheus']}", "--storage.tsdb.retention.time=1h"],
            self.logs_dir / "prometheus.log")
        wait_until("prometheus (/-/ready)",
                   lambda: http_status("127.0.0.1", p["prometheus"], "/-/ready") == 200, timeout_s=t,
                   proc=self._procs["prometheus"])
        wait_until("alertmanager (/-/ready)",
                   lambda: http_status("127.0.0.1", p["alertmanager"], "/-/ready") == 200, timeout_s=t,
                   proc=self._procs["alertmanager"])
        wait_until("prometheus scraping node, nginx, gunicorn and ocr", self._all_up, timeout_s=max(t, 30),
                   proc=self._procs["prometheus"], interval_s=0.2)

    def scrape_targets(self) -> dict[str, str]:
        """Prometheus's jobs and the address each scrapes."""
        p = self.ports
        return {"node": f"127.0.0.1:{p['node_exporter']}", "nginx": f"127.0.0.1:{p['nginx_exporter']}",
                "gunicorn": f"127.0.0.1:{p['app']}", "ocr": f"127.0.0.1:{p['ocr']}"}

    def _all_up(self) -> bool:
        import urllib.parse
        import urllib.request

        url = f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": "up"})
        with urllib.request.urlopen(url, timeout=2) as resp:
            result = json.load(resp)["data"]["result"]
        return len(result) == 4 and all(r["value"][1] == "1" for r in result)

    def log_files(self) -> dict[str, Path]:
        """The logs the lab writes, by kind (monitoring.logs)."""
        return {"application": self.logs_dir / "app.log", "security": self.logs_dir / "security.log",
                "access": self.nginx_layout.access_log, "error": self.nginx_layout.error_log,
                "gunicorn-error": self.logs_dir / "gunicorn-error.log"}

    def _supervised(self, name: str, argv: list[str]) -> list[str]:
        """``argv`` under lab.supervisor with restart policy ``always`` (DS-OPS-05: the
        services come back by themselves, as under systemd ``Restart=always``)."""
        return [sys.executable, "-m", "lab.supervisor", "--name", name,
                "--pidfile", str(self.run_dir / f"{name}.supervised.pid"), "--restart", "always", "--", *argv]

    def _workers_up(self) -> bool:
        from lab.procs import descendants

        try:
            pid = int(self.app_pidfile.read_text().strip())
        except (OSError, ValueError):
            return False
        return len(descendants(pid)) >= WORKERS

    def _start(self) -> None:
        started = time.monotonic()
        nginx.find_nginx()
        if not os.access(GUNICORN, os.X_OK):
            raise LabError(f"{GUNICORN} not found: install it with `apt-get install gunicorn` (scripts/setup.sh)")
        self._prepare_files()
        register(self)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_ported()
                break
            except LabError as exc:
                procs = list(self._procs.values())
                collided = any(port_in_use_error(p.tail(50)) for p in procs)
                stop_processes(procs)
                self._procs.clear()
                if not collided or attempt == PORT_ATTEMPTS:
                    raise
                sys.stderr.write(f"lab docusnap: port collision, retrying with new ports ({exc})\n")
        self.start_duration_s = time.monotonic() - started


def write_backup(lab: RunningDocuSnap, kind: str, when: dt.datetime, *, since: dt.datetime | None) -> Path:
    """One backup into ``lab.backup_dir``: ``full`` (database snapshot, every document,
    config, key, code) or ``incr`` (database snapshot and the documents changed after
    ``since``), named and dated ``when``, recorded in ``manifest.json``."""
    name = f"{BACKUP_FULL if kind == 'full' else BACKUP_INCR}{when.astimezone(dt.UTC).strftime(STAMP)}.tar.gz"
    path = lab.backup_dir / name
    with tempfile.TemporaryDirectory(prefix="docusnap-backup-") as tmp:
        snapshot = Path(tmp) / "docusnap.sqlite3"
        src, dst = sqlite3.connect(lab.db_path), sqlite3.connect(snapshot)
        try:
            src.backup(dst)  # SQLite's online backup API: a consistent copy of a live database
        finally:
            src.close()
            dst.close()
        with tarfile.open(path, "w:gz") as tar:
            tar.add(snapshot, arcname="database/docusnap.sqlite3")
            for doc in sorted(lab.files_dir.iterdir()):
                if since is None or doc.stat().st_mtime > since.timestamp():
                    tar.add(doc, arcname=f"files/{doc.name}")
            if kind == "full":
                tar.add(lab.config_file, arcname="config/docusnap.env")
                tar.add(lab.key_file, arcname="keys/zhipu_api_key")
                tar.add(lab.app_dir / "docusnap_app.py", arcname="code/docusnap_app.py")
            info = tarfile.TarInfo("BACKUP")
            meta = json.dumps({"kind": kind, "time": when.isoformat(), "since": since.isoformat() if since else None})
            info.size = len(meta)
            tar.addfile(info, io.BytesIO(meta.encode()))
    ts = when.timestamp()
    os.utime(path, (ts, ts))
    manifest = lab.backup_dir / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.exists() else {"backups": {}}
    data["backups"][name] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "kind": kind,
                             "time": when.isoformat()}
    manifest.write_text(json.dumps(data, indent=2) + "\n")
    return path


def start(workdir: Path, variant: str = "compliant", *, start_timeout_s: float = 20.0) -> RunningDocuSnap:
    """Start the DocuSnap lab (``variant``: see :data:`VARIANTS`) in ``workdir`` (an empty or
    new folder).  On any failure everything already started is stopped and
    :class:`~lab.procs.LabError` names the component."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise LabError(f"workdir {workdir} is not empty: the DocuSnap lab starts in an empty or new folder")
    lab = RunningDocuSnap(workdir, variant_key("docusnap", VARIANTS, variant), start_timeout_s)
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    return lab
