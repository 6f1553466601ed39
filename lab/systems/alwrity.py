"""The ALwrity (AI-Writer) lab, multi-user model, built as the seed document
(../shared/seeds/001_*.txt, "Multi-User Deployment" / "Server Deployment", "Standard
Topology", "TLS Configuration", "Backup and Recovery", "Monitoring and Logging") describes,
on loopback, as host processes:

- nginx (Debian package), the "Web server (Nginx/Apache)": the HTTP listener answers 301 to
  HTTPS; HTTPS terminates TLS ("SSL termination") with TLS 1.3 and TLS 1.2 AEAD suites ("TLS
  1.3 support · Strong cipher suites"), ``Strict-Transport-Security`` ("HSTS
  implementation"), the usual security headers and a CORS allowlist
  (``https://app.golive.test``), and proxies everything to uvicorn;
- uvicorn (Debian's ``python3-uvicorn``, run as ``/usr/bin/python3 -m uvicorn`` by the
  service account :data:`SERVICE_USER`), the "ASGI" server: bound to 127.0.0.1, serving
  :mod:`lab.systems.alwrity_app` (a FastAPI stand-in for ALwrity's backend) copied into
  ``app/`` (the deployed checkout), with its settings, credentials and the ``GEMINI_API_KEY``
  in the environment;
- PostgreSQL 15 ("PostgreSQL database"), the cluster of :mod:`lab.postgres`: WAL archiving
  into an archive folder (``archive_mode = on``) and a base backup taken at start, i.e.
  "Point-in-time recovery"; ``ssl = on`` (the lab CA's certificate, TLS 1.2+ AEAD suites) and
  the app connects with ``sslmode=require``
  ("Encryption in transit"); the app role ``alwrity_app`` has LOGIN only and owns its tables
  (``content_items``, ``alembic_version`` at :data:`HEAD_REVISION`: "Initialize database");
  golive reads as ``golive_ro`` (``pg_monitor``, ``pg_read_all_data``); the backup operator
  ``golive_app`` takes encrypted ``pg_dump`` backups with a manifest, copied off-site to a
  second "host" (a real sshd), plus encrypted config/key backups (lab.postgres);
- Redis ("Redis for caching"), :mod:`lab.redis`: ``requirepass``, bound to 127.0.0.1; the
  app caches content there;
- monitoring: node-exporter, the app's ``/metrics`` (requests, latency, user activity, API
  usage), nginx's metrics (:mod:`lab.systems.docusnap_nginx_exporter`: its JSON access log
  and ``stub_status``), Prometheus with alert rules, Alertmanager routing to a webhook receiver in this
  process, JSON application/security logs, nginx's JSON access log, a logrotate configuration.

Ports are free loopback ports chosen at start (other labs share this machine).  golive
reaches "the host from outside" at 127.0.0.2, as in :mod:`lab.run`: a socket bound to
127.0.0.1 refuses it.

Each broken variant changes one thing the document names (see :data:`VARIANTS`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import pwd
import secrets
import shutil
import sys
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
from lab.variants import ALLOWED_ORIGIN, LAB_HOSTNAMES, MODERN_CIPHERS, MODERN_PROTOCOLS

DESCRIPTION = ("ALwrity multi-user: nginx 80->443 (TLS 1.3, HSTS) -> uvicorn + FastAPI app, PostgreSQL with "
               "PITR (WAL archive + base backup), Redis with auth, encrypted off-site backups, Prometheus")
REPO_ROOT = Path(__file__).resolve().parents[2]
APP_PYTHON = "/usr/bin/python3"  # Debian's interpreter, with python3-uvicorn/-fastapi/-psycopg2/-redis
APP_MODULES = ("uvicorn", "fastapi", "psycopg2", "redis")
VERSION = "2.4.0"  # the release the lab deploys (and declares intended)
HEAD_REVISION = "a1c3e5f7b9d2"  # the release's migration head (alembic)
APP_ROLE = "alwrity_app"
RO_ROLE = "golive_ro"
APP_ENV = ("ALWRITY_DATABASE_URL", "ALWRITY_DB_PASSWORD", "ALWRITY_REDIS_ADDR", "ALWRITY_REDIS_PASSWORD",
           "ALWRITY_VERSION", "GEMINI_API_KEY", "ALWRITY_FILES_TOKEN")
PORT_ATTEMPTS = 3
#: The account uvicorn runs as when the lab runs as root (created for the run, removed by
#: the last lab that holds it); otherwise the app runs as the invoking user.
SERVICE_USER = "golive-alwrity"
KEY_ENV = "GOLIVE_LAB_ALWRITY_KEY"  # optional: the value of the app's GEMINI_API_KEY
_APP_SQL = f"""
CREATE TABLE content_items (id bigserial PRIMARY KEY, title text NOT NULL, body text NOT NULL,
                            words integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO content_items (title, body, words)
    SELECT format('draft-%s', i), repeat('lorem ipsum ', 20), 40 FROM generate_series(1, 20) i;
INSERT INTO alembic_version VALUES ('{HEAD_REVISION}');
ALTER TABLE content_items OWNER TO {APP_ROLE};
ALTER TABLE alembic_version OWNER TO {APP_ROLE};
"""


@dataclasses.dataclass(frozen=True)
class Knobs:
    """What one variant sets (defaults: the compliant lab)."""

    description: str
    hsts: bool = True
    wal_archiving: bool = True
    redis_auth: bool = True


VARIANTS: dict[str, Knobs] = {
    "compliant": Knobs("ALwrity multi-user as documented: every check passes but this machine's sizing"),
    "hsts_missing": Knobs("nginx sends no Strict-Transport-Security header (no 'HSTS implementation')", hsts=False),
    "no_wal_archiving": Knobs("PostgreSQL runs with archive_mode = off: no WAL archive, no point-in-time recovery",
                              wal_archiving=False),
    "redis_no_auth": Knobs("Redis without requirepass: any client on the network may read and write the cache",
                           redis_auth=False),
}


def service_account() -> pwd.struct_passwd:
    """The app's account: ``golive-alwrity`` (a system account without login, created for
    this lab and released when it stops) as root, else the current user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid())
    from lab.sshd import ensure_user

    return ensure_user(SERVICE_USER, system=True)


def render_nginx(layout: nginx.NginxLayout, *, https_port: int, http_port: int, app_port: int, status_port: int,
                 chain_file: Path, key_file: Path, knobs: Knobs) -> str:
    """nginx.conf: 80 -> 301 https; 443 TLS 1.2/1.3 -> uvicorn, HSTS (unless the variant
    drops it), security headers, CORS allowlist; a JSON access log and stub_status on a
    loopback status port (for its metrics)."""
    return nginx.render_app_proxy(layout, lab="ALwrity", variant=knobs.description, https_port=https_port,
                                  http_port=http_port, status_port=status_port, upstream=f"127.0.0.1:{app_port}",
                                  chain_file=chain_file, key_file=key_file, protocols=MODERN_PROTOCOLS,
                                  ciphers=MODERN_CIPHERS, hsts=knobs.hsts)


class RunningAlwrity(StopsOnExit):
    """A started ALwrity lab.  ``ports``: ``https``, ``http``, ``app`` (uvicorn), ...;
    ``pg`` (lab.postgres.RunningPostgres), ``redis`` (lab.redis.RunningRedis)."""

    def __init__(self, workdir: Path, variant: str, start_timeout_s: float) -> None:
        self.workdir = workdir
        self.variant = variant
        self.knobs = VARIANTS[variant]
        self.start_timeout_s = start_timeout_s
        self.ports: dict[str, int] = {}
        self.tls_dir = workdir / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.app_dir = workdir / "app"
        self.secrets_dir = workdir / "secrets"
        self.key_file = self.secrets_dir / "gemini_api_key"
        self.run_dir = workdir / "run"
        self.logs_dir = workdir / "logs"
        self.base_backup_dir = workdir / "backups" / "pitr"
        self.nginx_layout = nginx.NginxLayout(workdir / "nginx")
        self.monitoring_dir = workdir / "monitoring"
        self.logrotate_conf = workdir / "config" / "logrotate.conf"
        self.account = pwd.getpwuid(os.getuid())
        self.pg: Any = None
        self.redis: Any = None
        self.webhook: Any = None
        self.start_duration_s = 0.0
        self._tls: certs.TlsFiles | None = None
        self._procs: dict[str, ManagedProcess] = {}
        self._held_user = False
        self._stopped = False

    # ------------------------------------------------------------------ public API

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.ports['https']}"

    @property
    def app_pidfile(self) -> Path:
        return self.run_dir / "uvicorn.pid"

    def password_file(self, role: str) -> Path:
        return self.secrets_dir / f"pg-{role}"

    def describe(self) -> dict[str, Any]:
        return {"lab_ports": dict(self.ports)}

    def target_overrides(self) -> dict[str, Any]:
        assert self.pg is not None and self.redis is not None
        app = self.ports["app"]
        host = "alwrity"
        redis_entry: dict[str, Any] = {"address": self.redis.address, "listen": ["127.0.0.1"]}
        if self.knobs.redis_auth:
            redis_entry["password_file"] = str(self.redis.password_file)
        return {
            "hosts": [{"name": host, "connection": "local://", "roles": ["web", "app", "db", "cache"]}],
            "endpoints": {
                "public": self.https_url,
                "http": f"http://localhost:{self.ports['http']}",
                "health": f"{self.https_url}/health",
                # the app tier, PostgreSQL and Redis, addressed "from outside" (see the module docstring)
                "internal": [f"127.0.0.2:{app}", f"127.0.0.2:{self.pg.port}", f"127.0.0.2:{self.redis.port}"],
                # PostgreSQL's TLS (STARTTLS), judged like the public endpoint's
                "tls": [f"postgres://127.0.0.1:{self.pg.port}"],
                "ca_file": str(self.ca_file),
            },
            "services": [
                {"name": "nginx", "host": host, "port": self.ports["https"], "bind": "any",
                 "pidfile": str(self.nginx_layout.pid_file), "config": str(self.nginx_layout.conf),
                 "config_prefix": f"{self.nginx_layout.run_dir}/", "proxy_to": [f"127.0.0.1:{app}"]},
                {"name": "uvicorn", "host": host, "port": app, "bind": "loopback", "user": self.account.pw_name,
                 "pidfile": str(self.app_pidfile), "env": list(APP_ENV), "python": APP_PYTHON},
            ],
            "cors": {"allowed_origins": [ALLOWED_ORIGIN]},
            "datastores": {
                "postgres": {"dsn": f"postgresql://{RO_ROLE}@127.0.0.1:{self.pg.port}/{self._db_name}",
                             "password_file": str(self.password_file(RO_ROLE)), "sslmode": "require",
                             "app_role": APP_ROLE, "app_databases": [], "tables": ["content_items"],
                             "migrations": {"revision": HEAD_REVISION}},
                "redis": redis_entry,
            },
            "backups": self.pg.target_backups(),
            "monitoring": self._monitoring_overrides(host),
            "release": {
                "base_url": self.https_url, "ca_file": str(self.ca_file), "openapi": "/openapi.json",
                "intended_version": VERSION, "version": {"path": "/version", "field": "version"},
                "uploads": ["/files/draft-1"],
                "smoke": [
                    {"name": "health", "path": "/health", "expect": {"status": "ok"}},
                    {"name": "write content", "method": "POST", "path": "/api/content",
                     "json": {"title": "launch post", "body": "golive checks the deployment"}, "expect_status": 201,
                     "expect": {"words": 4}, "save": {"id": "id"}},
                    {"name": "read it back", "path": "/api/content/{id}", "expect": {"title": "launch post"}},
                ],
            },
        }

    @property
    def _db_name(self) -> str:
        from lab.postgres import DB_NAME

        return DB_NAME

    def _monitoring_overrides(self, host: str) -> dict[str, Any]:
        """Prometheus and Alertmanager, the user-activity and API-usage series of the app
        and of nginx (the document's "User activity · API usage"), the alert names, the
        logs and the synthetic alert's receiver."""
        return {
            "prometheus": {"url": f"http://127.0.0.1:{self.ports['prometheus']}", "timeout_s": 3},
            "alertmanager": {"url": f"http://127.0.0.1:{self.ports['alertmanager']}", "timeout_s": 3},
            "services": {
                "uvicorn": {"labels": {"job": "alwrity"}, "signals": {
                    "user_activity": "alwrity_active_users{$selector}",
                    "api_usage": "alwrity_api_calls_total{$selector}"}},
                # the web tier's own view: clients connected now, requests it served
                "nginx": {"labels": {"job": "nginx"}, "signals": {
                    "user_activity": "nginx_connections_active{$selector}",
                    "api_usage": "http_requests_total{$selector}"}}},
            "alerts": {"unavailable": ["InstanceDown"], "error_rate": ["HighErrorRate"],
                       "resources": ["HostMemoryExhausted", "HostDiskFull"]},
            "logs": {host: {"application": [str(self.logs_dir / "app.log")],
                            "access": [str(self.nginx_layout.access_log)],
                            "error": [str(self.nginx_layout.error_log), str(self.logs_dir / "uvicorn.log")],
                            "security": [str(self.logs_dir / "security.log")],
                            "logrotate": [str(self.logrotate_conf)]}},
            "synthetic": {"receiver_url": f"http://127.0.0.1:{self.ports['webhook']}/received", "timeout_s": 20},
        }

    def stop(self) -> None:
        """Stop every component (idempotent; also at exit and on SIGINT/SIGTERM)."""
        if self._stopped:
            return
        self._stopped = True
        killed = stop_processes(list(self._procs.values()))
        if self.webhook is not None:
            self.webhook.stop()
        for part in (self.redis, self.pg):
            if part is not None:
                part.stop()
        if self._held_user:
            from lab.sshd import release_user

            release_user(SERVICE_USER)
        if killed:
            sys.stderr.write(f"lab alwrity: needed SIGKILL for {', '.join(killed)}\n")
        unregister(self)

    def __repr__(self) -> str:
        return f"<RunningAlwrity {self.variant} in {self.workdir} ports={self.ports} stopped={self._stopped}>"

    # ------------------------------------------------------------------ data stores

    def _start_datastores(self) -> None:
        """PostgreSQL (lab.postgres: WAL archive, dumps, off-site copy) made ALwrity's: TLS,
        the app and read-only roles, the app's tables, a fresh dump and a base backup;
        Redis (lab.redis) with or without a password."""
        from lab.postgres import start_postgres
        from lab.redis import start_redis

        self.pg = start_postgres(self.workdir / "pg", "compliant", archive=self.knobs.wal_archiving,
                                 start_timeout_s=self.start_timeout_s)
        self._pg_tls()
        for role in (APP_ROLE, RO_ROLE):
            fd = os.open(self.password_file(role), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(24) + "\n")
        pw = {role: self.password_file(role).read_text().strip() for role in (APP_ROLE, RO_ROLE)}
        self.pg.psql_admin(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{pw[APP_ROLE]}';\n"
                           f"CREATE ROLE {RO_ROLE} LOGIN PASSWORD '{pw[RO_ROLE]}' IN ROLE pg_monitor, pg_read_all_data;\n"
                           # the backup operator's pg_dump reads the app's tables too
                           "GRANT pg_read_all_data TO golive_app;\n")
        from lab.postgres import DB_NAME, _run

        _run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-h", "/var/run/postgresql", "-p",
              str(self.pg.port), "-d", DB_NAME, "-v", "ON_ERROR_STOP=1", "-f", "-"], "the app's schema",
             stdin=_APP_SQL)
        self._fresh_backups()
        self.redis = start_redis(self.workdir / "redis", auth=self.knobs.redis_auth, bind="127.0.0.1",
                                 start_timeout_s=self.start_timeout_s)

    def _pg_tls(self) -> None:
        """``ssl = on`` with the lab CA's certificate (the one nginx serves: its names include
        127.0.0.1) and nginx's TLS 1.2+ AEAD suites, applied with a reload (ssl settings need
        no restart)."""
        from lab.postgres import PG_VERSION

        assert self._tls is not None
        pg = pwd.getpwnam("postgres")
        base = self.pg.base
        crt, key = base / "server.crt", base / "server.key"
        shutil.copyfile(self._tls.chain_file, crt)
        shutil.copyfile(self._tls.key_file, key)
        for path in (crt, key):
            os.chown(path, pg.pw_uid, pg.pw_gid)
        key.chmod(0o600)
        conf = Path(f"/etc/postgresql/{PG_VERSION}/{self.pg.cluster}/conf.d/zz-alwrity.conf")
        conf.write_text(f"ssl = on\nssl_cert_file = '{crt}'\nssl_key_file = '{key}'\n"
                        f"ssl_min_protocol_version = 'TLSv1.2'\nssl_ciphers = '{MODERN_CIPHERS}'\n")
        self.pg.psql_admin("SELECT pg_reload_conf();")
        wait_until("PostgreSQL ssl = on", lambda: self.pg.psql_admin("SHOW ssl;").strip() == "on",
                   timeout_s=self.start_timeout_s)

    def _fresh_backups(self) -> None:
        """A dump that holds the app's tables (through the lab's backup job: encrypted,
        recorded, shipped off-site) and a base backup of the cluster (``pg_basebackup -Ft``,
        encrypted like the dumps) -- with the WAL archive, the point-in-time recovery set."""
        from lab.postgres import SOCKET_DIR, BackupJob, _run, stamp

        bs = self.pg.backups
        BackupJob(self.pg.port, self.pg.password_file, self.pg.key_file, bs.dump_dir, bs.offsite_pg,
                  self.pg.offsite_uid).take()
        self.base_backup_dir.mkdir(parents=True, exist_ok=True)
        pg = pwd.getpwnam("postgres")
        scratch = Path(tempfile.mkdtemp(prefix="golive-basebackup-", dir=self.pg.base))
        try:
            os.chown(scratch, pg.pw_uid, pg.pw_gid)
            _run(["runuser", "-u", "postgres", "--", "pg_basebackup", "-h", SOCKET_DIR, "-p", str(self.pg.port),
                  "-D", str(scratch / "base"), "-Ft", "-z", "-X", "fetch", "--no-sync", "-c", "fast"],
                 "pg_basebackup (base backup for PITR)", timeout=120)
            when = dt.datetime.now(dt.UTC).replace(microsecond=0)
            for part in sorted((scratch / "base").iterdir()):
                _run(["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-pass", f"file:{self.pg.key_file}",
                      "-in", str(part), "-out", str(self.base_backup_dir / f"base-{stamp(when)}-{part.name}.enc")],
                     "openssl enc (base backup)")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # ------------------------------------------------------------------ files

    def _prepare_files(self) -> None:
        for d in (self.app_dir, self.secrets_dir, self.run_dir, self.logs_dir, self.logrotate_conf.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        self._tls = certs.write_tls_files(self.tls_dir, LAB_HOSTNAMES)
        shutil.copy2(Path(__file__).with_name("alwrity_app.py"), self.app_dir / "alwrity_app.py")
        # the LLM key: random, or a canary the self-tests give to prove it never leaks
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write((os.environ.get(KEY_ENV) or secrets.token_urlsafe(24)) + "\n")
        self.account = service_account()
        self._held_user = os.geteuid() == 0
        uid, gid = self.account.pw_uid, self.account.pw_gid
        self.workdir.chmod(0o755)
        for log in ("app.log", "security.log"):
            (self.logs_dir / log).touch()
            os.chown(self.logs_dir / log, uid, gid)
        os.chown(self.run_dir, uid, gid)

    # ------------------------------------------------------------------ processes

    def _app_env(self) -> dict[str, str]:
        from lab.postgres import DB_NAME

        return {
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "ALWRITY_DATABASE_URL": f"postgresql://{APP_ROLE}@127.0.0.1:{self.pg.port}/{DB_NAME}?sslmode=require",
            "ALWRITY_DB_PASSWORD": self.password_file(APP_ROLE).read_text().strip(),
            "ALWRITY_REDIS_ADDR": self.redis.address, "ALWRITY_REDIS_PASSWORD": self.redis.password or "",
            "ALWRITY_VERSION": VERSION, "GEMINI_API_KEY": self.key_file.read_text().strip(),
            "ALWRITY_FILES_TOKEN": secrets.token_urlsafe(18), "ALWRITY_LOG_DIR": str(self.logs_dir),
            "ALWRITY_PIDFILE": str(self.app_pidfile),
        }

    def _start_ported(self) -> None:
        names = ["https", "http", "app", "nginx_status", "nginx_exporter", "node_exporter", "prometheus",
                 "alertmanager", "webhook"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"  # util-linux
        as_user = [runuser, "-u", self.account.pw_name, "--"] if os.geteuid() == 0 else []
        self._procs["uvicorn"] = spawn("uvicorn", [
            *as_user, APP_PYTHON, "-m", "uvicorn", "alwrity_app:app", "--host", "127.0.0.1",
            "--port", str(self.ports["app"]), "--app-dir", str(self.app_dir), "--no-access-log",
            "--log-level", "info", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"],
            # the environment, never the command line, carries the credentials (runuser -u keeps it)
            self.logs_dir / "uvicorn.log", cwd=self.app_dir, env=self._app_env())
        layout = self.nginx_layout
        nginx.prepare(layout)
        assert self._tls is not None
        layout.conf.write_text(render_nginx(layout, https_port=self.ports["https"], http_port=self.ports["http"],
                                            app_port=self.ports["app"], status_port=self.ports["nginx_status"],
                                            chain_file=self._tls.chain_file,
                                            key_file=self._tls.key_file, knobs=self.knobs))
        self._procs["nginx"] = spawn("nginx", nginx.argv(nginx.find_nginx(), layout), layout.error_log,
                                     cwd=layout.run_dir)
        t, p = self.start_timeout_s, self.ports
        wait_until(f"uvicorn (127.0.0.1:{p['app']}/health)",
                   lambda: http_status("127.0.0.1", p["app"], "/health", timeout=2.0) == 200,
                   timeout_s=t, proc=self._procs["uvicorn"])
        wait_until(f"nginx ({self.https_url}/health)",
                   lambda: http_status("127.0.0.1", p["https"], "/health", tls=True, timeout=2.0) == 200,
                   timeout_s=t, proc=self._procs["nginx"])
        wait_until(f"nginx plain-HTTP listener (127.0.0.1:{p['http']})",
                   lambda: http_status("127.0.0.1", p["http"], "/health", timeout=2.0) == 301, timeout_s=t,
                   proc=self._procs["nginx"])
        self._start_monitoring()

    def _start_monitoring(self) -> None:
        """node-exporter, Prometheus (scraping it and the app every second, with the alert
        rules), Alertmanager routing to a webhook receiver."""
        from lab import monitoring as mon

        p, t, mdir = self.ports, self.start_timeout_s, self.monitoring_dir
        mdir.mkdir(parents=True, exist_ok=True)
        self.webhook = mon.WebhookReceiver(p["webhook"])
        rules = mdir / "rules.yml"
        rules.write_text(mon.rules_yaml())
        prom_conf = mdir / "prometheus.yml"
        scrape = {"node": f"127.0.0.1:{p['node_exporter']}", "alwrity": f"127.0.0.1:{p['app']}",
                  "nginx": f"127.0.0.1:{p['nginx_exporter']}"}
        prom_conf.write_text(mon.prometheus_config(alertmanager=p["alertmanager"], rules=rules, targets=scrape))
        am_conf = mdir / "alertmanager.yml"
        am_conf.write_text(mon.alertmanager_config(webhook=p["webhook"]))
        logs = [self.logs_dir / "app.log", self.logs_dir / "security.log", self.logs_dir / "uvicorn.log",
                self.nginx_layout.access_log, self.nginx_layout.error_log]
        self.logrotate_conf.write_text(mon.logrotate_conf(logs))
        self._procs["node-exporter"] = spawn("node-exporter", [
            mon.find_binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{p['node_exporter']}",
            "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.diskstats",
            "--collector.netdev", "--collector.filesystem"], self.logs_dir / "node-exporter.log")
        # nginx's own metrics from its JSON access log and stub_status (the DocuSnap lab's exporter)
        self._procs["nginx-exporter"] = spawn("nginx-exporter", [
            sys.executable, "-m", "lab.systems.docusnap_nginx_exporter", "--log", str(self.nginx_layout.access_log),
            "--status", f"http://127.0.0.1:{p['nginx_status']}/nginx_status", "--port", str(p["nginx_exporter"])],
            self.logs_dir / "nginx-exporter.log", env=python_env(REPO_ROOT))
        self._procs["alertmanager"] = spawn("alertmanager", [
            mon.find_binary("prometheus-alertmanager"), f"--config.file={am_conf}",
            f"--storage.path={mdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{p['alertmanager']}",
            "--cluster.listen-address="], self.logs_dir / "alertmanager.log")
        self._procs["prometheus"] = spawn("prometheus", [
            mon.find_binary("prometheus"), f"--config.file={prom_conf}", f"--storage.tsdb.path={mdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{p['prometheus']}", "--storage.tsdb.retention.time=1h"],
            self.logs_dir / "prometheus.log")
        wait_until("prometheus (/-/ready)",
                   lambda: http_status("127.0.0.1", p["prometheus"], "/-/ready", timeout=2.0) == 200, timeout_s=t,
                   proc=self._procs["prometheus"])
        wait_until("alertmanager (/-/ready)",
                   lambda: http_status("127.0.0.1", p["alertmanager"], "/-/ready", timeout=2.0) == 200, timeout_s=t,
                   proc=self._procs["alertmanager"])
        wait_until("prometheus scraping node, nginx and the app", self._all_up, timeout_s=max(t, 30),
                   proc=self._procs["prometheus"], interval_s=0.2)

    def _all_up(self) -> bool:
        import urllib.parse
        import urllib.request

        url = f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": "up"})
        with urllib.request.urlopen(url, timeout=2) as resp:
            result = json.load(resp)["data"]["result"]
        return len(result) == 3 and all(r["value"][1] == "1" for r in result)

    def _start(self) -> None:
        started = time.monotonic()
        nginx.find_nginx()
        missing = [m for m in APP_MODULES
                   if not any((Path(d) / m).exists() for d in ("/usr/lib/python3/dist-packages",))]
        if not os.access(APP_PYTHON, os.X_OK) or missing:
            raise LabError(f"{APP_PYTHON} lacks {', '.join(missing) or 'itself'}: install python3-uvicorn "
                           "python3-fastapi python3-psycopg2 python3-redis (scripts/setup.sh)")
        register(self)
        self._prepare_files()
        self._start_datastores()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_ported()
                break
            except LabError as exc:
                procs = list(self._procs.values())
                collided = any(port_in_use_error(p.tail(50)) for p in procs)
                stop_processes(procs)
                self._procs.clear()
                if self.webhook is not None:
                    with contextlib.suppress(Exception):
                        self.webhook.stop()
                    self.webhook = None
                if not collided or attempt == PORT_ATTEMPTS:
                    raise
                sys.stderr.write(f"lab alwrity: port collision, retrying with new ports ({exc})\n")
        self.start_duration_s = time.monotonic() - started


def start(workdir: Path, variant: str = "compliant", *, start_timeout_s: float = 20.0) -> RunningAlwrity:
    """Start the ALwrity lab (``variant``: see :data:`VARIANTS`) in ``workdir`` (an empty or
    new folder).  On any failure everything already started is stopped and
    :class:`~lab.procs.LabError` names the component."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise LabError(f"workdir {workdir} is not empty: the ALwrity lab starts in an empty or new folder")
    lab = RunningAlwrity(workdir, variant_key("alwrity", VARIANTS, variant), start_timeout_s)
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    return lab
