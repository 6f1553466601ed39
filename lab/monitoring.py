"""The monitoring lab: a real Prometheus, Alertmanager and node-exporter on loopback.

What runs (all on 127.0.0.1, free ports, files in one run folder that is removed on stop):

- ``prometheus-node-exporter`` with the cpu, meminfo, diskstats, netdev and filesystem
  collectors (the host signals);
- the *app*: ``python -m lab.monitoring app`` -- a small service exposing prometheus-client
  metrics on ``/metrics`` (request latency histogram, requests by status code, a job queue
  length and a job processing-time histogram) and writing JSON application, access and
  error logs into the run folder.  It does its own work in a loop, so series move;
- ``prometheus`` (basic auth through ``--web.config.file``, ``--web.enable-lifecycle`` so
  variants are config reloads) scraping both every second and evaluating the lab's alert
  rules every second;
- ``prometheus-alertmanager`` (clustering off) routing every alert to a webhook receiver;
- the webhook receiver: an ``http.server`` thread in the lab's own process that records
  what Alertmanager posts (``GET /received`` lists it).

:meth:`MonitoringLab.variant` breaks one thing and restores it when the block ends:
``exporter_down`` (node-exporter SIGSTOPped: its scrape times out, ``up`` is 0),
``missing_series`` (the app stops exporting its job processing-time histogram, as a
build without that instrumentation would; Prometheus marks the series stale at once),
``stale_series`` (the app stops updating its queue length, which it exports with an
explicit timestamp, so Prometheus keeps the last sample and it ages), ``missing_rule``
(the InstanceDown rule removed), ``rule_eval_error`` (the error-rate rule becomes a
many-to-many vector match that fails at every evaluation), ``no_receiver`` (Alertmanager
routes everything to a receiver with no integration), ``unavailability_uncovered`` (the
InstanceDown rule watches the node job only, so a stopped app fires nothing).  The log variants are folders of
files the lab writes (:meth:`MonitoringLab.log_variant`): ``not_rotated``,
``debug_level``, ``unstructured``.

Everything stops on every exit path: the processes are registered with
:mod:`lab.procs` (atexit, SIGINT/SIGTERM, parent-death signal).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    free_ports,
    python_env,
    register,
    spawn,
    stop_processes,
    unregister,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = ("install it with `apt-get install --no-install-recommends prometheus prometheus-alertmanager "
                "prometheus-node-exporter` (Debian/Ubuntu)")
PROM_USER = "golive"
#: The lab's Prometheus password (a canary: it must never appear in golive's output) and its
#: bcrypt hash for ``--web.config.file`` (precomputed: Python's bcrypt is not a dependency).
PROM_PASSWORD = "golive-lab-canary-7Qx2"
PROM_PASSWORD_BCRYPT = "$2b$05$golivelabsaltgolivelaOdn7lMCDmjWTof5c9Sj/O8MYuIb3uDAu"
SCRAPE_INTERVAL_S = 1
EVALUATION_INTERVAL_S = 1
INSTANCE_DOWN_FOR = "2s"
VARIANTS = ("exporter_down", "missing_series", "stale_series", "missing_rule", "rule_eval_error", "no_receiver",
            "unavailability_uncovered")
PASSWORD_ENV = "GOLIVE_LAB_PROM_PASSWORD"
LOG_VARIANTS = ("not_rotated", "debug_level", "unstructured")


def find_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin:/usr/local/bin")
    if not found:
        raise LabError(f"{name} not found: {INSTALL_HINT}")
    return found


# ----------------------------------------------------------------------------- configs


def prometheus_config(*, alertmanager: int, rules: Path, targets: dict[str, str] | None = None,
                      node: int | None = None, app: int | None = None) -> str:
    """A lab's prometheus.yml: every target (job -> ``host:port``; default: node-exporter on
    ``node`` and the app on ``app``, both on 127.0.0.1) scraped every second, the alert
    rules in ``rules``, alerts to the Alertmanager on ``alertmanager``.  The system labs
    pass their own jobs."""
    if targets is None:
        targets = {"node": f"127.0.0.1:{node}", "app": f"127.0.0.1:{app}"}
    jobs = "".join(f'  - job_name: {job}\n    static_configs: [{{targets: ["{addr}"]}}]\n'
                   for job, addr in targets.items())
    return f"""global:
  scrape_interval: {SCRAPE_INTERVAL_S}s
  scrape_timeout: 800ms
  evaluation_interval: {EVALUATION_INTERVAL_S}s
rule_files: ["{rules}"]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["127.0.0.1:{alertmanager}"]}}]
scrape_configs:
""" + jobs


def rules_yaml(*, with_instance_down: bool = True, error_rate_breaks: bool = False, down_job: str | None = None
               ) -> str:
    """The lab's alert rules: instance unavailable, high error rate, resource exhaustion.

    ``error_rate_breaks``: the error-rate rule multiplies two multi-series vectors matched
    ``on()`` -- Prometheus refuses that many-to-many match at every evaluation.
    ``down_job``: the unavailability rule watches only that job (the app is not covered)."""
    error_rate = ('sum by (instance) (rate(http_requests_total{code=~"5.."}[30s])) '
                  "/ sum by (instance) (rate(http_requests_total[30s])) > 0.05")
    if error_rate_breaks:
        error_rate = "http_requests_total * on() up"
    instance_down = f"""      - alert: InstanceDown
        expr: up{{{f'job="{down_job}"' if down_job else ''}}} == 0
        for: {INSTANCE_DOWN_FOR}
        labels: {{severity: critical}}
        annotations: {{summary: "{{{{ $labels.instance }}}} of {{{{ $labels.job }}}} is down"}}
""" if with_instance_down else ""
    return f"""groups:
  - name: golive-lab
    interval: {EVALUATION_INTERVAL_S}s
    rules:
{instance_down}      - alert: HighErrorRate
        expr: {error_rate}
        for: 10s
        labels: {{severity: warning}}
      - alert: HostMemoryExhausted
        expr: node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.02
        for: 1m
        labels: {{severity: critical}}
      - alert: HostDiskFull
        expr: node_filesystem_avail_bytes{{fstype!~"tmpfs|overlay"}} / node_filesystem_size_bytes < 0.02
        for: 1m
        labels: {{severity: critical}}
"""


def alertmanager_config(*, webhook: int, routed: bool = True) -> str:
    """Every alert to the ``lab-webhook`` receiver (``routed``), or to ``blackhole`` (a
    receiver without integrations: the ``no_receiver`` variant)."""
    return f"""route:
  receiver: {"lab-webhook" if routed else "blackhole"}
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: lab-webhook
    webhook_configs:
      - url: http://127.0.0.1:{webhook}/alert
        send_resolved: true
  - name: blackhole
"""


def logrotate_conf(paths: list[Path]) -> str:
    return "".join(f"{p} {{\n  daily\n  rotate 7\n  compress\n  missingok\n  notifempty\n}}\n" for p in paths)


# ----------------------------------------------------------------------------- webhook receiver


class WebhookReceiver(StopsOnExit):
    """Records every POST body (Alertmanager's webhook JSON) with its arrival time;
    ``GET /received`` answers the list."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsed": body.decode(errors="replace")[:2000]}
                with receiver._lock:
                    receiver.received.append({"received_at": time.time(), "path": self.path, "payload": payload})
                self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:
                with receiver._lock:
                    data = json.dumps(receiver.received).encode()
                self.send_response(200 if self.path == "/received" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="lab-webhook", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------- the lab


class MonitoringLab(StopsOnExit):
    """Start with :meth:`start` (or ``with MonitoringLab.start() as lab``); see the module
    docstring for what runs."""

    def __init__(self, run_dir: Path, owns_dir: bool) -> None:
        self.run_dir = run_dir
        self._owns_dir = owns_dir
        self.procs: dict[str, ManagedProcess] = {}
        self.webhook: WebhookReceiver | None = None
        ports = free_ports(5)
        self.prom_port, self.am_port, self.node_port, self.app_port, self.webhook_port = ports
        self.log_dir = run_dir / "logs"
        self.rules = run_dir / "rules.yml"
        self.prom_conf = run_dir / "prometheus.yml"
        self.am_conf = run_dir / "alertmanager.yml"
        self.control = run_dir / "app-control.json"
        self.app_pidfile = run_dir / "app.pid"
        self.logrotate = run_dir / "logrotate.conf"
        self._stopped = False

    # -- addresses
    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.am_port}"

    @property
    def node_instance(self) -> str:
        return f"127.0.0.1:{self.node_port}"

    @property
    def app_instance(self) -> str:
        return f"127.0.0.1:{self.app_port}"

    def log_paths(self) -> dict[str, Path]:
        return {k: self.log_dir / f"{k}.log" for k in ("app", "access", "error")}

    @classmethod
    def start(cls, run_dir: Path | None = None, *, timeout_s: float = 60) -> MonitoringLab:
        owns = run_dir is None
        lab = cls(Path(tempfile.mkdtemp(prefix="golive-monlab-")) if run_dir is None else run_dir, owns)
        register(lab)
        try:
            lab._start(timeout_s)
        except BaseException:
            lab.stop()
            raise
        return lab

    def _start(self, timeout_s: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.control.write_text("{}")
        self.rules.write_text(rules_yaml())
        self.prom_conf.write_text(prometheus_config(node=self.node_port, app=self.app_port,
                                                    alertmanager=self.am_port, rules=self.rules))
        self.am_conf.write_text(alertmanager_config(webhook=self.webhook_port))
        web = self.run_dir / "web.yml"
        web.write_text(f"basic_auth_users:\n  {PROM_USER}: {PROM_PASSWORD_BCRYPT}\n")
        self.logrotate.write_text(logrotate_conf(list(self.log_paths().values())))
        self.webhook = WebhookReceiver(self.webhook_port)

        self.procs["node-exporter"] = spawn("node-exporter", [
            find_binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{self.node_port}",
            "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.diskstats",
            "--collector.netdev", "--collector.filesystem"], self.run_dir / "node-exporter.log")
        self.procs["app"] = spawn("app", [
            sys.executable, "-m", "lab.monitoring", "app", "--port", str(self.app_port),
            "--log-dir", str(self.log_dir), "--control", str(self.control), "--pidfile", str(self.app_pidfile)],
            self.run_dir / "app.out", env=python_env(ROOT))
        self.procs["alertmanager"] = spawn("alertmanager", [
            find_binary("prometheus-alertmanager"), f"--config.file={self.am_conf}",
            f"--storage.path={self.run_dir / 'am-data'}", f"--web.listen-address=127.0.0.1:{self.am_port}",
            "--cluster.listen-address="], self.run_dir / "alertmanager.log")
        self.procs["prometheus"] = spawn("prometheus", [
            find_binary("prometheus"), f"--config.file={self.prom_conf}",
            f"--storage.tsdb.path={self.run_dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.prom_port}",
            f"--web.config.file={web}", "--web.enable-lifecycle", "--storage.tsdb.retention.time=1h"],
            self.run_dir / "prometheus.log")
        for name, url in (("node-exporter", f"http://{self.node_instance}/metrics"),
                          ("app", f"http://{self.app_instance}/metrics"),
                          ("alertmanager", f"{self.alertmanager_url}/-/ready"),
                          ("prometheus", f"{self.prometheus_url}/-/ready")):
            wait_until(name, functools.partial(self._answers, url), timeout_s=timeout_s, proc=self.procs[name],
                       interval_s=0.1)
        # Ready for checks: both scrape targets up and the rate() windows hold two samples.
        wait_until("prometheus scraping the lab", self._all_up, timeout_s=timeout_s,
                   proc=self.procs["prometheus"], interval_s=0.2)

    # -- HTTP helpers (the lab's own plumbing; golive's probes use httpx)
    def _auth_header(self) -> dict[str, str]:
        token = base64.b64encode(f"{PROM_USER}:{PROM_PASSWORD}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _get(self, url: str) -> tuple[int, bytes]:
        req = urllib.request.Request(url, headers=self._auth_header() if url.startswith(self.prometheus_url) else {})
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(resp.status), resp.read()

    def _answers(self, url: str) -> bool:
        return self._get(url)[0] == 200

    def _post(self, url: str) -> int:
        req = urllib.request.Request(url, data=b"", method="POST",
                                     headers=self._auth_header() if url.startswith(self.prometheus_url) else {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        _status, body = self._get(url)
        return list(json.loads(body)["data"]["result"])

    def _all_up(self) -> bool:
        result = self.query("up")
        return len(result) == 2 and all(r["value"][1] == "1" for r in result) and bool(
            self.query("rate(http_requests_total[30s])"))

    def reload_prometheus(self) -> None:
        self._post(f"{self.prometheus_url}/-/reload")

    def reload_alertmanager(self) -> None:
        self._post(f"{self.alertmanager_url}/-/reload")

    def received(self) -> list[dict[str, Any]]:
        return list(self.webhook.received) if self.webhook else []

    # -- variants
    @contextlib.contextmanager
    def variant(self, name: str, *, settle_s: float = 10) -> Iterator[None]:
        """Break one thing (see the module docstring), wait until Prometheus shows it,
        restore it when the block ends (whatever happens inside)."""
        if name not in VARIANTS:
            raise ValueError(f"unknown monitoring lab variant {name!r}; one of {', '.join(VARIANTS)}")
        try:
            self._apply(name, settle_s)
            yield
        finally:
            self._restore(name, settle_s)

    def _apply(self, name: str, settle_s: float) -> None:
        if name == "exporter_down":
            os.kill(self.procs["node-exporter"].pid, signal.SIGSTOP)
            self._settle("node-exporter down", lambda: self.query(f'up{{instance="{self.node_instance}"}} == 0') != [],
                         settle_s)
        elif name == "missing_series":
            self.control.write_text(json.dumps({"no_job_metric": True}))
            self._settle("job series gone", lambda: self.query("lab_job_seconds_count") == [], settle_s)
        elif name == "stale_series":
            self.control.write_text(json.dumps({"frozen": True}))
            self._settle("queue series stale", lambda: self._queue_age() > 4 * SCRAPE_INTERVAL_S, settle_s)
        elif name in ("missing_rule", "rule_eval_error", "unavailability_uncovered"):
            self.rules.write_text(rules_yaml(with_instance_down=name != "missing_rule",
                                             error_rate_breaks=name == "rule_eval_error",
                                             down_job="node" if name == "unavailability_uncovered" else None))
            self.reload_prometheus()
            # reloaded rules are "unknown" until their group's next evaluation
            self._settle("rules evaluated", lambda: self._rule_health("HighErrorRate") == (
                "err" if name == "rule_eval_error" else "ok"), settle_s)
        elif name == "no_receiver":
            self.am_conf.write_text(alertmanager_config(webhook=self.webhook_port, routed=False))
            self.reload_alertmanager()

    def _restore(self, name: str, settle_s: float) -> None:
        if name == "exporter_down":
            os.kill(self.procs["node-exporter"].pid, signal.SIGCONT)
        elif name in ("missing_series", "stale_series"):
            self.control.write_text("{}")
        elif name in ("missing_rule", "rule_eval_error", "unavailability_uncovered"):
            self.rules.write_text(rules_yaml())
            self.reload_prometheus()
        elif name == "no_receiver":
            self.am_conf.write_text(alertmanager_config(webhook=self.webhook_port))
            self.reload_alertmanager()
        back: Callable[[], bool] = {"missing_series": lambda: self.query("lab_job_seconds_count") != [],
                "stale_series": lambda: self._queue_age() < 2 * SCRAPE_INTERVAL_S,
                "rule_eval_error": lambda: self._rule_health("HighErrorRate") == "ok",
                "missing_rule": lambda: self._rule_health("InstanceDown") == "ok",
                "unavailability_uncovered": lambda: self._rule_health("InstanceDown") == "ok"}.get(name, self._all_up)
        with contextlib.suppress(LabError):
            self._settle("compliant again", lambda: self._all_up() and back(), settle_s)

    def _settle(self, what: str, ready: Callable[[], bool], timeout_s: float) -> None:
        wait_until(f"monitoring lab: {what}", ready, timeout_s=timeout_s, interval_s=0.2)

    def _queue_age(self) -> float:
        r = self.query("time() - timestamp(lab_jobs_waiting)")
        return float(r[0]["value"][1]) if r else 0.0

    def _rule_health(self, alert: str) -> str:
        _, body = self._get(f"{self.prometheus_url}/api/v1/rules")
        for g in json.loads(body)["data"]["groups"]:
            for r in g["rules"]:
                if r.get("name") == alert:
                    return str(r.get("health"))
        return "absent"

    def target_yaml(self, *, name: str = "monitoring-lab", environment: str = "prod",
                    logs: dict[str, Path] | None = None, extra: str = "") -> str:
        """A golive target for this lab: the checking host is host ``lab`` (node-exporter
        found by address), the app is service ``app`` (by instance), the app's queue and job
        metrics mapped to their names, logs of ``logs`` (default: the app's own), the drill
        pausing the app with SIGSTOP (start: SIGCONT) through its pid file.  The Prometheus
        password comes from ``${GOLIVE_LAB_PROM_PASSWORD}``."""
        paths = logs or self.log_paths()
        return f"""name: {name}
environment: {environment}
hosts:
  - {{name: lab, connection: "local://"}}
services:
  - {{name: app, host: lab, port: {self.app_port}}}
monitoring:
  prometheus: {{url: "{self.prometheus_url}", username: {PROM_USER}, password: "${{{PASSWORD_ENV}}}", timeout_s: 3}}
  alertmanager: {{url: "{self.alertmanager_url}", timeout_s: 3}}
  services:
    app:
      signals:
        queue_length: "lab_jobs_waiting{{$selector}}"
        processing_time: "lab_job_seconds_count{{$selector}}"
  alerts:
    unavailable: [InstanceDown]
    error_rate: [HighErrorRate]
    resources: [HostMemoryExhausted, HostDiskFull]
  logs:
    lab:
      application: ["{paths['app']}"]
      access: ["{paths['access']}"]
      error: ["{paths['error']}"]
      logrotate: ["{self.logrotate}"]
  synthetic:
    receiver_url: "{self.webhook.url if self.webhook else ''}/received"
    timeout_s: 20
  drill:
    service: app
    stop: {{pidfile: "{self.app_pidfile}", signal: STOP}}
    start: {{pidfile: "{self.app_pidfile}", signal: CONT}}
    timeout_s: 30
    restore_timeout_s: 20
{extra}"""

    def log_variant(self, name: str, lines: int = 120) -> dict[str, Path]:
        """A folder of freshly written app/access/error logs broken one way (``not_rotated``:
        good logs no logrotate stanza covers; ``debug_level``: JSON at level debug;
        ``unstructured``: plain-text application lines).  Returns the paths by kind."""
        if name not in LOG_VARIANTS:
            raise ValueError(f"unknown log variant {name!r}; one of {', '.join(LOG_VARIANTS)}")
        folder = self.run_dir / "log-variants" / name
        folder.mkdir(parents=True, exist_ok=True)
        paths = {k: folder / f"{k}.log" for k in ("app", "access", "error")}
        level = "debug" if name == "debug_level" else "info"
        with open(paths["app"], "w") as f:
            for i in range(lines):
                if name == "unstructured":
                    f.write(f"2026-01-01 12:00:{i % 60:02d} INFO worker processed job {i}\n")
                else:
                    f.write(json.dumps({"ts": time.time(), "level": level, "msg": f"processed job {i}"}) + "\n")
        paths["access"].write_text('127.0.0.1 - - [01/Jan/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 2\n')
        paths["error"].write_text(json.dumps({"ts": time.time(), "level": "warning", "msg": "slow job"}) + "\n")
        if name != "not_rotated":
            with open(self.logrotate, "a") as f:
                f.write(logrotate_conf(list(paths.values())))
        return paths

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(ProcessLookupError, KeyError):
            os.kill(self.procs["node-exporter"].pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        with contextlib.suppress(ProcessLookupError, KeyError):
            os.kill(self.procs["app"].pid, signal.SIGCONT)
        stop_processes(list(self.procs.values()))
        if self.webhook is not None:
            self.webhook.stop()
        unregister(self)
        if self._owns_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- the app


def run_app(port: int, log_dir: Path, control: Path, pidfile: Path | None) -> None:  # pragma: no cover - subprocess
    """The lab's service: prometheus-client metrics on 127.0.0.1:``port`` and JSON logs.

    Every 0.1 s it "serves a request" (latency histogram, request counter by code; about
    1 % are 500s) and every 0.25 s "processes a job" (queue length, processing-time
    histogram).  The queue length is exported with an explicit timestamp (when it was last
    updated), so a frozen worker (``{"frozen": true}`` in ``control``) leaves a series whose
    newest sample ages -- what a stale series looks like in Prometheus.  ``{"no_job_metric":
    true}`` stops exporting the processing-time histogram."""
    from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    latency = Histogram("http_request_duration_seconds", "Request latency")
    requests = Counter("http_requests", "Requests by status code", ["code"])
    job_seconds = Histogram("lab_job_seconds", "Job processing time")
    state = {"queue": 0.0, "updated": time.time()}

    class QueueCollector(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            g = GaugeMetricFamily("lab_jobs_waiting", "Jobs waiting in the queue")
            g.add_metric([], state["queue"], timestamp=state["updated"])
            yield g

    REGISTRY.register(QueueCollector())
    requests.labels(code="200")
    requests.labels(code="500")
    start_http_server(port, addr="127.0.0.1")
    if pidfile is not None:
        pidfile.write_text(f"{os.getpid()}\n")
    log_dir.mkdir(parents=True, exist_ok=True)
    app_log = open(log_dir / "app.log", "a", buffering=1)  # noqa: SIM115 - open for the process's life
    access_log = open(log_dir / "access.log", "a", buffering=1)  # noqa: SIM115
    error_log = open(log_dir / "error.log", "a", buffering=1)  # noqa: SIM115
    rng = random.Random(1)
    tick = 0
    job_metric_exported = True
    while True:
        tick += 1
        try:
            ctl = json.loads(control.read_text() or "{}")
        except (OSError, ValueError):
            ctl = {}
        frozen = bool(ctl.get("frozen"))
        if bool(ctl.get("no_job_metric")) == job_metric_exported:
            job_metric_exported = not job_metric_exported
            (REGISTRY.unregister if not job_metric_exported else REGISTRY.register)(job_seconds)
        seconds = rng.uniform(0.005, 0.05)
        latency.observe(seconds)
        code = "500" if rng.random() < 0.01 else "200"
        requests.labels(code=code).inc()
        access_log.write(f'127.0.0.1 - - [{time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())}] '
                         f'"GET /work HTTP/1.1" {code} 2 {seconds:.3f}\n')
        if tick % 3 == 0 and not frozen:
            job_seconds.observe(rng.uniform(0.01, 0.2))
            state["queue"], state["updated"] = float(rng.randint(0, 5)), time.time()
            app_log.write(json.dumps({"ts": time.time(), "level": "info", "msg": "processed job",
                                      "queue": state["queue"]}) + "\n")
        if tick % 10 == 0:
            error_log.write(json.dumps({"ts": time.time(), "level": "warning", "msg": "slow upstream"}) + "\n")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.monitoring")
    sub = parser.add_subparsers(dest="cmd", required=True)
    app = sub.add_parser("app", help="run the lab's metrics-exposing service")
    app.add_argument("--port", type=int, required=True)
    app.add_argument("--log-dir", type=Path, required=True)
    app.add_argument("--control", type=Path, required=True)
    app.add_argument("--pidfile", type=Path)
    up = sub.add_parser("up", help="start the monitoring lab, print its addresses, run until Ctrl-C")
    up.add_argument("--seconds", type=float, default=3600)
    args = parser.parse_args(argv)
    if args.cmd == "app":
        run_app(args.port, args.log_dir, args.control, args.pidfile)
        return 0
    with MonitoringLab.start() as lab:
        print(json.dumps({"prometheus": lab.prometheus_url, "alertmanager": lab.alertmanager_url,
                          "node": lab.node_instance, "app": lab.app_instance, "webhook": lab.webhook.url if lab.webhook
                          else None, "run_dir": str(lab.run_dir)}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
