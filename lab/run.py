"""Start and stop a whole lab: certificates, database and backups, inference instances,
internal API, nginx -- configured by one variant.

    with start_lab(tmp_path, "legacy_tls") as lab:
        overrides = lab.target_overrides()     # what golive's target loader needs
        ...

:func:`start_lab` picks free loopback ports (retrying on a collision), starts every
component as a child process in its own process group, waits (bounded) until each answers,
and raises :class:`~lab.procs.LabError` naming the component and quoting its log when one
does not.  :meth:`RunningLab.stop` (idempotent; also at interpreter exit and on
SIGINT/SIGTERM) SIGTERMs every group, then SIGKILLs what is left.

Addresses: everything listens on 127.0.0.1.  The internal API is the one exception in the
``exposed_internal`` variant (0.0.0.0).  Checks reach "the host from outside" at 127.0.0.2:
a socket bound to 127.0.0.1 does not accept connections addressed to 127.0.0.2, one bound to
0.0.0.0 does -- so the reachability check is honest on a single machine.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from lab import certs, database, haproxy, nginx
from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    free_ports,
    group_members,
    http_status,
    port_in_use_error,
    python_env,
    reap_stale_tmp,
    register,
    spawn,
    stop_processes,
    unregister,
    wait_until,
)
from lab.variants import ALLOWED_ORIGIN, Knobs, Variant

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = ".golive-lab"
SAMPLE_BODY: dict[str, Any] = {"analysis": "quality", "media": "shot-001.png"}
PORT_ATTEMPTS = 3
RESTART_DELAY_S = 2.0  # the instances' restart policy delay (systemd RestartSec)
#: The account the inference instances and the internal API run as when the lab runs as root
#: (ST-AUTH-03, ST-SYS-04: services as their own unprivileged account).  Created for the run
#: through lab.sshd's account bookkeeping and removed by the last lab holding it.
SERVICE_USER = "golive-oz"
#: /tmp/<prefix><pid>-*: the static content nginx serves (a run killed with SIGKILL leaves it;
#: the next start removes it: lab.procs.reap_stale_tmp)
STATIC_PREFIX = "golive-lab-www-"
#: Debian's interpreter (python3-aiohttp: scripts/setup.sh): the service account can run it,
#: unlike a virtual environment under a private home
SERVICE_PYTHON = "/usr/bin/python3"

# What start_lab creates in a workdir (removed again when a workdir is reused).
_GENERATED = ("haproxy", "run", "tls", "nginx", "logs", "backups", "app.sqlite3", "app.sqlite3-journal", "lab.json", "secrets", "pg")


def _prepare_workdir(workdir: Path) -> None:
    """Create ``workdir`` or reuse one that a previous lab made; refuse anything else, so a
    mistyped path never gets its files deleted."""
    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / MARKER
    if not marker.exists() and any(workdir.iterdir()):
        raise LabError(
            f"workdir {workdir} is not empty and was not made by the lab "
            f"(no {MARKER} file): use an empty or new folder"
        )
    state = workdir / "lab.json"
    if state.exists():
        try:
            pids = json.loads(state.read_text()).get("pids", {})
        except (OSError, ValueError):
            pids = {}
        running = [name for name, pid in pids.items() if isinstance(pid, int) and group_members(pid)]
        if running:
            raise LabError(f"a lab is still running in {workdir} ({', '.join(sorted(running))}): stop it first")
    for name in _GENERATED:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    marker.write_text("made by golive lab.run.start_lab; safe to delete\n")


class RunningLab(StopsOnExit):
    """A started lab.  Attributes:

    ``workdir``, ``variant`` (name), ``knobs``, ``ports`` (``https``, ``http``, ``internal``,
    ``haproxy``, ``app-1``...), ``ca_file``, ``db_path``, ``backup_dir``, ``instance_names``,
    ``cost_ms`` (effective per-analysis cost), ``start_duration_s``.

    Traffic path: nginx (TLS) -> haproxy (active health checks, lab.haproxy) -> the instances,
    each under lab.supervisor (pid files in ``run_dir``, restart policy from the variant).
    """

    def __init__(self, workdir: Path, variant: Variant, cost_ms: float, instances: int,
                 backup_interval_s: float, start_timeout_s: float) -> None:
        self.workdir = workdir
        self.variant = variant.key
        self.knobs: Knobs = variant.knobs
        self.cost_ms = cost_ms * self.knobs.cost_factor
        self.instance_names = [f"app-{i}" for i in range(1, instances + 1)]
        self.backup_interval_s = backup_interval_s
        self.start_timeout_s = start_timeout_s
        self.ports: dict[str, int] = {}
        self.tls_dir = workdir / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self.db_path = workdir / "app.sqlite3"
        self.backup_dir = workdir / "backups"
        self.logs_dir = workdir / "logs"
        self.nginx_layout = nginx.NginxLayout(workdir / "nginx")
        self.haproxy_layout = haproxy.HaproxyLayout(workdir / "haproxy")
        self.run_dir = workdir / "run"  # pid files of the supervised instances
        #: the Web UI page and media nginx serves (nginx.write_static_site): a folder of its own
        #: under /tmp, world-traversable, because the lab folder may sit under a private one
        self.static_dir: Path | None = None
        self.api_token_file = workdir / "secrets" / "api_token"
        self.api_token: str | None = None
        self.tls: certs.TlsFiles | None = None
        self.pg: Any = None  # lab.postgres.RunningPostgres in the postgres variants
        self.ds: Any = None  # lab.datastores.RunningDatastores in the datastores variants
        self.start_duration_s = 0.0
        self.stop_duration_s = 0.0
        self._procs: dict[str, ManagedProcess] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._stopped = False
        self._env = python_env(REPO_ROOT)
        #: the services' account (None: they run as the invoking user) and, when the lab runs
        #: as root but its services cannot run as their own account, why
        self.account: pwd.struct_passwd | None = None
        self.account_note: str | None = None

    # ------------------------------------------------------------------ public API

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.ports['https']}"

    @property
    def http_url(self) -> str:
        return f"http://localhost:{self.ports['http']}"

    @property
    def capacity_apm(self) -> float:
        """Analyses per minute the lab can serve: instances x 60000 / cost_ms."""
        return len(self.instance_names) * 60000.0 / self.cost_ms

    def analyses_served(self) -> int:
        """Analyses the instances served so far, from their own counters (``GET /v1/stats``
        on loopback): the ground truth the load generator is checked against."""
        total = 0
        for name in self.instance_names:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/v1/stats", timeout=5) as r:
                total += int(json.load(r)["analyses"])
        return total

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the lab CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def target_overrides(self) -> dict[str, Any]:
        """The target description golive's loader needs to validate this lab."""
        https = self.ports["https"]
        return {
            "hosts": [{"name": "lab-host", "connection": "local://",
                       "roles": ["app", "inference", "db"], "data_path": str(self.workdir)}],
            "endpoints": {
                "public": f"https://localhost:{https}",
                "http": f"http://localhost:{self.ports['http']}",
                "health": f"https://localhost:{https}/health",
                "internal": [f"127.0.0.2:{self.ports['internal']}"],
                # untrusted_cert: the target does not name the lab's private CA (clients would not know it)
                **({"ca_file": str(self.ca_file)} if self.knobs.declare_ca else {}),
            },
            "services": self.service_overrides(),
            "cors": {"allowed_origins": [ALLOWED_ORIGIN]},
            "http": {"health_body": {"json_field": "status", "equals": "ok"},
                     "pages": nginx.static_pages(f"https://localhost:{https}")},
            **self._auth_overrides(),
            "inference": {
                "url": f"https://localhost:{https}/v1/analyze",
                "method": "POST",
                "body": dict(SAMPLE_BODY),
                "expect_status": 200,
                "success_field": "status",
                "success_value": "ok",
                "capacity_apm": round(self.capacity_apm, 3),
                # The embedded lab is a demonstration: its load runs are short (the profile's
                # duration capped, brief warm-up and ramp).  Lab knowledge lives in the lab.
                "max_duration_s": 60.0,
                "warmup_s": 1.0,
                "ramp_s": 1.0,
            },
            "backups": self._backup_overrides(),
            "ha": self.ha_overrides(),
            **({"datastores": self.ds.target_section()} if self.ds is not None else {}),
        }

    @property
    def service_user(self) -> str:
        """The account the lab's services run as (root when the lab runs as root and could
        not hand them to :data:`SERVICE_USER`: ``account_note`` says why)."""
        return (self.account or pwd.getpwuid(os.getuid())).pw_name

    def service_overrides(self) -> list[dict[str, Any]]:
        """The target's ``services``: the internal API first (the ports family's internal
        listener), then each inference instance -- each found by its supervisor's pid file,
        to run as the lab's service account."""
        user = self.service_user
        return [
            {"name": "internal-api", "host": "lab-host", "port": self.ports["internal"], "bind": "loopback",
             "pidfile": str(self.run_dir / "internal-api.pid"), "user": user},
            *({"name": n, "host": "lab-host", "port": self.ports[n], "bind": "loopback",
               "pidfile": str(self.instance_pidfile(n)), "user": user} for n in self.instance_names),
        ]

    def _backup_overrides(self) -> list[dict[str, Any]]:
        """The target's ``backups``: the SQLite backups (restore drill into a scratch folder),
        or -- in the ``postgres`` variants -- the PostgreSQL dumps and the config/key files."""
        if self.pg is not None:
            return list(self.pg.target_backups())
        return [{"kind": "sqlite", "location": str(self.backup_dir), "database": str(self.db_path),
                 "scratch": str(self.workdir / "restore-scratch")}]

    def _dhparam(self, folder: Path) -> Path | None:
        """Finite-field DH parameters of the ``dhparam_bits`` knob (``openssl dhparam``), or
        None when the variant offers no DHE suites."""
        if not self.knobs.dhparam_bits:
            return None
        out = folder / f"dhparam-{self.knobs.dhparam_bits}.pem"
        subprocess.run(["openssl", "dhparam", "-out", str(out), str(self.knobs.dhparam_bits)], check=True,
                       capture_output=True, timeout=120)
        return out

    def _auth_overrides(self) -> dict[str, Any]:
        """The target's ``auth`` section for variants that declare it: the protected path,
        the token *file* (never the value) and nginx's rate limit on /v1/."""
        if not self.knobs.declare_auth:
            return {}
        rate = float(self.knobs.rate_limit.removesuffix("r/s")) if self.knobs.rate_limit else 5.0
        return {"auth": {
            "protected_paths": ["/v1/stats"],
            "token_file": str(self.api_token_file),
            "rate_limit": {"path": "/v1/stats", "method": "GET", "requests_per_s": rate,
                           "burst": self.knobs.rate_limit_burst},
        }}

    def _write_api_token(self) -> None:
        """A fresh random bearer token in ``secrets/api_token`` (mode 0600)."""
        import os
        import secrets as _secrets

        self.api_token = _secrets.token_urlsafe(24)
        self.api_token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.api_token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.api_token + "\n")

    def instance_pidfile(self, name: str) -> Path:
        """The pid file of a running instance (written by its supervisor, like MainPID)."""
        return self.run_dir / f"{self._check_instance(name)}.pid"

    def supervisor_pidfile(self, name: str) -> Path:
        """The pid file of an instance's supervisor (SIGUSR1 to it = start the instance)."""
        return self.run_dir / f"{self._check_instance(name)}.supervisor.pid"

    def ha_overrides(self) -> dict[str, Any]:
        """The target's ``ha`` section: the public health URL as the entrypoint and, per
        instance, its health URL, a stop action (SIGTERM to the pid in its pid file) and a
        start command (SIGUSR1 to its supervisor: start it unless it runs) -- real actions,
        run by the drill exactly as on a real deployment."""
        return {
            "entrypoint": f"https://localhost:{self.ports['https']}/health",
            "ca_file": str(self.ca_file),
            "instances": [
                {"name": n, "url": f"http://127.0.0.1:{self.ports[n]}/health",
                 "stop": {"signal": "TERM", "pidfile": str(self.instance_pidfile(n))},
                 "start": f'kill -USR1 "$(cat {self.supervisor_pidfile(n)})"'}
                for n in self.instance_names],
        }

    def pids(self) -> dict[str, list[int]]:
        """Live processes per component (group leader and, for nginx, its workers)."""
        return {name: group_members(p.pid) for name, p in self._procs.items()}

    def stop_instance(self, name: str) -> None:
        """Stop one inference instance (for failover drills); nginx keeps running."""
        proc = self._procs.pop(self._check_instance(name), None)
        if proc is not None:
            stop_processes([proc])

    def start_instance(self, name: str) -> None:
        """(Re)start one inference instance on its original port and wait until it answers."""
        self._check_instance(name)
        if name in self._procs and self._procs[name].alive():
            # The supervisor runs; ask it to start the service (a no-op when it runs).  Its own
            # pid file: under runuser the group leader is runuser, not the supervisor.
            try:
                pid = int(self.supervisor_pidfile(name).read_text().strip())
            except (OSError, ValueError):
                pid = self._procs[name].pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
            self._wait_instance(name)
            return
        self._start_instance(name, self.ports[name])
        self._wait_instance(name)

    def stop(self) -> None:
        """Stop every component (idempotent; safe from signal handlers and atexit)."""
        if self._stopped or self._stopping:
            return
        self._stopping = True
        try:
            started = time.monotonic()
            procs = list(self._procs.values())
            killed = stop_processes(procs)
            if self.pg is not None:
                self.pg.stop()
            if self.ds is not None:
                self.ds.stop()
            if self.static_dir is not None:
                shutil.rmtree(self.static_dir, ignore_errors=True)
            if self.account is not None:
                from lab.sshd import release_user

                release_user(SERVICE_USER)
                self.account = None
            self.stop_duration_s = time.monotonic() - started
            if killed:
                sys.stderr.write(f"lab: needed SIGKILL for {', '.join(killed)}\n")
            self._stopped = True
            self._write_state()
            unregister(self)
        finally:
            self._stopping = False

    def __repr__(self) -> str:
        return f"<RunningLab {self.variant} in {self.workdir} ports={self.ports} stopped={self._stopped}>"

    # ------------------------------------------------------------------ internals

    def _check_instance(self, name: str) -> str:
        if name not in self.instance_names:
            raise KeyError(f"no inference instance {name!r}; instances: {self.instance_names}")
        return name

    def _python(self, name: str, module: str, *args: str) -> ManagedProcess:
        proc = spawn(name, [sys.executable, "-m", module, *args], self.logs_dir / f"{name}.log",
                     cwd=self.workdir, env=self._env)
        self._procs[name] = proc
        return proc

    def _service(self, name: str, module: str, *args: str, restart: str = "always") -> ManagedProcess:
        """A service of the deployment under lab.supervisor (a one-unit systemd: pid file,
        restart policy, SIGUSR1 = start), as the service account when there is one."""
        python = SERVICE_PYTHON if self.account is not None else sys.executable
        as_user = [_runuser(), "-u", self.account.pw_name, "--"] if self.account is not None else []
        argv = [*as_user, python, "-m", "lab.supervisor", "--name", name,
                "--pidfile", str(self.run_dir / f"{name}.pid"),
                "--control-pidfile", str(self.run_dir / f"{name}.supervisor.pid"),
                "--restart", restart, "--restart-delay", f"{RESTART_DELAY_S:g}", "--",
                python, "-m", module, *args]
        proc = spawn(name, argv, self.logs_dir / f"{name}.log", cwd=self.workdir, env=self._env)
        self._procs[name] = proc
        return proc

    def _start_instance(self, name: str, port: int) -> None:
        self._check_instance(name)
        self._service(name, "lab.inference", "--host", "127.0.0.1", "--port", str(port),
                      "--cost-ms", f"{self.cost_ms:g}", "--name", name, "--mode", self.knobs.inference_mode,
                      restart="always" if self.knobs.auto_restart else "no")

    def _take_account(self) -> None:
        """As root, hand the services to :data:`SERVICE_USER`: the run folder becomes its
        (the supervisors write their pid files there), the lab folder traversable.  When the
        account cannot reach the lab's code, folder or Debian's aiohttp (a lab folder under a
        private directory, python3-aiohttp missing), the services run as root and
        ``account_note`` says why (services.non_root then fails on it, as it should)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        from lab.sshd import ensure_user, release_user

        account = ensure_user(SERVICE_USER, system=True)
        self.workdir.chmod(0o755)
        os.chown(self.run_dir, account.pw_uid, account.pw_gid)
        run_dir, workdir = shlex.quote(str(self.run_dir)), shlex.quote(str(self.workdir))
        probe = (f"test -w {run_dir} || {{ echo 'cannot write {run_dir}: a parent folder is private' >&2; exit 1; }}; "
                 f"cd {workdir} && exec {SERVICE_PYTHON} -c "
                 "'import aiohttp, lab.supervisor, lab.inference, lab.internal_api'")
        try:
            res = subprocess.run([_runuser(), "-u", account.pw_name, "--", "sh", "-c", probe], env=self._env,
                                 capture_output=True, text=True, timeout=60, check=False)
            why = None if res.returncode == 0 else (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
        if why is None:
            self.account = account
            return
        os.chown(self.run_dir, 0, 0)
        release_user(SERVICE_USER)
        self.account_note = (f"the services run as root: {SERVICE_USER} cannot run them from {self.workdir} "
                             f"with {SERVICE_PYTHON} ({why[:200]})")
        sys.stderr.write(f"lab: {self.account_note}\n")

    def _wait_instance(self, name: str) -> None:
        port = self.ports[name]
        wait_until(f"inference instance {name} (http://127.0.0.1:{port}/health)",
                   lambda: http_status("127.0.0.1", port, "/health") == 200,
                   timeout_s=self.start_timeout_s, proc=self._procs[name])

    def _write_state(self) -> None:
        state = {
            "variant": self.variant,
            "ports": self.ports,
            "pids": {n: p.pid for n, p in self._procs.items() if not self._stopped and p.alive()},
            "stopped": self._stopped,
            "start_duration_s": round(self.start_duration_s, 3),
            "service_user": self.service_user,
            **({"service_user_note": self.account_note} if self.account_note else {}),
        }
        with contextlib.suppress(OSError):
            (self.workdir / "lab.json").write_text(json.dumps(state, indent=2) + "\n")

    def _prepare_files(self) -> None:
        """Certificates, database, seeded backups: everything that needs no port."""
        not_before, not_after = certs.validity_from_days(*self.knobs.cert_days)
        self.tls = certs.write_tls_files(self.tls_dir, self.knobs.cert_hostnames,
                                         not_before=not_before, not_after=not_after)
        database.create_database(self.db_path)
        if self.knobs.declare_auth or self.knobs.api_auth != "none":
            self._write_api_token()
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if self.knobs.backups == "stale":
            database.write_backup(self.db_path, self.backup_dir, now - dt.timedelta(days=4))
            database.write_backup(self.db_path, self.backup_dir, now - dt.timedelta(days=3))
        elif self.knobs.backups == "corrupt":
            database.write_backup(self.db_path, self.backup_dir, now - dt.timedelta(hours=2))
            newest = database.write_backup(self.db_path, self.backup_dir, now - dt.timedelta(minutes=1))
            database.truncate_backup(newest)
        else:
            self.backup_dir.mkdir(parents=True, exist_ok=True)

    def _start_ported(self) -> None:
        """Pick ports and start the port-bound components once; raises LabError."""
        names = [*self.instance_names, "internal", "https", "http", "haproxy"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=False))
        for name in self.instance_names:
            self._start_instance(name, self.ports[name])
        self._service("internal-api", "lab.internal_api", "--host", self.knobs.internal_bind,
                      "--port", str(self.ports["internal"]))
        # haproxy balances over the instances with active health checks; nginx proxies to it.
        hap = self.haproxy_layout
        hap.run_dir.mkdir(parents=True, exist_ok=True)
        hap.conf.write_text(haproxy.render_config(
            port=self.ports["haproxy"], servers=[(n, "127.0.0.1", self.ports[n]) for n in self.instance_names],
            health_checks=self.knobs.lb_health_check))
        self._procs["haproxy"] = spawn("haproxy", haproxy.argv(haproxy.find_haproxy(), hap), hap.log,
                                       cwd=hap.run_dir)
        layout = self.nginx_layout
        nginx.prepare(layout)
        assert self.tls is not None
        layout.conf.write_text(nginx.render_config(
            layout, https_port=self.ports["https"], http_port=self.ports["http"],
            upstreams=[("127.0.0.1", self.ports["haproxy"])],
            chain_file=self.tls.chain_file, key_file=self.tls.key_file, knobs=self.knobs,
            api_token=self.api_token, dhparam_file=self._dhparam(layout.run_dir), static_root=self.static_dir,
        ))
        nginx_bin = nginx.find_nginx()
        # nginx writes its own errors to error.log; its stdout/stderr go to the same file.
        self._procs["nginx"] = spawn("nginx", nginx.argv(nginx_bin, layout), layout.error_log,
                                     cwd=layout.run_dir)

        for name in self.instance_names:
            self._wait_instance(name)
        internal = self.ports["internal"]
        wait_until(f"internal API (http://127.0.0.1:{internal}/health)",
                   lambda: http_status("127.0.0.1", internal, "/health") == 200,
                   timeout_s=self.start_timeout_s, proc=self._procs["internal-api"])
        hap_port = self.ports["haproxy"]
        wait_until(f"haproxy (http://127.0.0.1:{hap_port}/health)",
                   lambda: http_status("127.0.0.1", hap_port, "/health") == 200,
                   timeout_s=self.start_timeout_s, proc=self._procs["haproxy"])
        https, http_port = self.ports["https"], self.ports["http"]
        wait_until(f"nginx (https://localhost:{https}/health through the proxy)",
                   lambda: http_status("127.0.0.1", https, "/health", tls=True) == 200,
                   timeout_s=self.start_timeout_s, proc=self._procs["nginx"])
        wait_until(f"nginx plain-HTTP listener (127.0.0.1:{http_port})",
                   lambda: http_status("127.0.0.1", http_port, "/health") in (200, 301),
                   timeout_s=self.start_timeout_s, proc=self._procs["nginx"])

    def _start(self) -> None:
        started = time.monotonic()
        nginx.find_nginx()  # fail before starting anything when nginx is not installed
        haproxy.find_haproxy()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_files()
        register(self)
        self._take_account()
        reap_stale_tmp((STATIC_PREFIX,))
        self.static_dir = Path(tempfile.mkdtemp(prefix=f"{STATIC_PREFIX}{os.getpid()}-", dir="/tmp"))
        self.static_dir.chmod(0o755)
        nginx.write_static_site(self.static_dir)
        if self.knobs.postgres:
            from lab.postgres import start_postgres

            self.pg = start_postgres(self.workdir / "pg", self.knobs.postgres,
                                     interval_s=self.backup_interval_s, start_timeout_s=self.start_timeout_s)
        if self.knobs.datastores:
            from lab.datastores import start_datastores

            self.ds = start_datastores(self.workdir / "datastores", self.knobs.datastores)
        if self.knobs.backups == "job":
            job = self._python("backup-job", "lab.database", "job", "--db", str(self.db_path),
                               "--dir", str(self.backup_dir),
                               "--interval-s", f"{self.backup_interval_s:g}")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_ported()
                break
            except LabError as exc:
                ported = [p for n, p in self._procs.items() if n != "backup-job"]
                collided = any(port_in_use_error(p.tail(50)) for p in ported)
                stop_processes(ported)
                for p in ported:
                    self._procs.pop(p.name, None)
                if not collided or attempt == PORT_ATTEMPTS:
                    raise
                sys.stderr.write(f"lab: port collision, retrying with new ports ({exc})\n")
        if self.knobs.backups == "job":
            wait_until(f"backup job (first backup in {self.backup_dir})",
                       lambda: bool(database.list_backups(self.backup_dir)),
                       timeout_s=self.start_timeout_s, proc=job)
        self.start_duration_s = time.monotonic() - started
        self._write_state()


def _runuser() -> str:
    return shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"  # util-linux


def start_lab(
    workdir: Path,
    variant: str | Variant = "compliant",
    *,
    cost_ms: float = 50,
    instances: int | None = None,
    backup_interval_s: float = 3600,
    start_timeout_s: float = 20.0,
) -> RunningLab:
    """Start the lab (``variant``, see ``python -m lab variants``) in ``workdir``.

    ``cost_ms``: CPU cost of one analysis (the variant's ``cost_factor`` multiplies it);
    ``instances``: inference instances (default: the variant's, 2 for compliant);
    ``backup_interval_s``: period of the backup job; ``start_timeout_s``: bound on each
    readiness wait.  Returns a :class:`RunningLab` (also a context manager).  On any failure
    everything already started is stopped and :class:`LabError` says which component failed
    and why.
    """
    chosen = Variant.parse(variant)
    count = instances if instances is not None else chosen.knobs.instances
    if count < 1:
        raise ValueError("instances must be at least 1")
    if cost_ms <= 0:
        raise ValueError("cost_ms must be positive")
    workdir = Path(workdir).resolve()
    _prepare_workdir(workdir)
    lab = RunningLab(workdir, chosen, float(cost_ms), count, float(backup_interval_s), start_timeout_s)
    try:
        lab._start()
    except BaseException:
        lab.stop()
        raise
    return lab
