"""Self-tests of the monitoring family against a real Prometheus, Alertmanager and
node-exporter (lab/monitoring.py): every check passes on the compliant lab and fails, with
its measured value, on the lab variant that breaks it; an unreachable, unauthorised or
silent Prometheus is ``error``.  One lab for the module; variants are config reloads or
signals, restored after each test.
"""
from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from checks.monitoring.family import FAMILY, MonitoringReq
from golive import checkdef
from golive.model import CheckResult, Status
from golive.target import load_target
from lab.monitoring import PASSWORD_ENV, PROM_PASSWORD, MonitoringLab, find_binary
from lab.procs import LabError, free_port
from suites.hostset import probe_host
from tests.conftest import write_target

ENV = {PASSWORD_ENV: PROM_PASSWORD}
REQ = MonitoringReq(freshness_intervals=3, delivery_max="10 s")


def _have_binaries() -> str | None:
    try:
        for b in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
            find_binary(b)
    except LabError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoringLab]:
    missing = _have_binaries()
    if missing:
        pytest.skip(missing)
    with MonitoringLab.start(tmp_path_factory.mktemp("monlab")) as running:
        yield running


def _target(lab: MonitoringLab, tmp_path: Path, **kw: Any) -> Any:
    return load_target(write_target(tmp_path, lab.target_yaml(**kw)), env=ENV)


def _run(check_id: str, target: Any, req: MonitoringReq = REQ, disruptive: bool = False) -> dict[str, CheckResult]:
    check = FAMILY.by_id(check_id)
    assert check is not None
    ctx = checkdef.CheckContext.for_test(req=req, spec=target.monitoring, target=target,
                                         allow_disruptive=disruptive, host_runner=probe_host)
    return {r.id: r for r in checkdef.evaluate(check, ctx)}


# ----------------------------------------------------------------------------- compliant


def test_compliant_lab_passes_every_read_only_check(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    results: dict[str, CheckResult] = {}
    for check in FAMILY.checks:
        if not check.disruptive and check.id != "monitoring.dashboard":
            results.update(_run(check.id, target))
    bad = {k: (r.status.value, r.measured, r.reason) for k, r in results.items() if r.status != Status.PASS}
    assert not bad, bad
    assert set(results) >= {
        "monitoring.scraped[host lab]", "monitoring.scraped[service app]",
        "monitoring.host_signals[lab cpu]", "monitoring.host_signals[lab disk_io]",
        "monitoring.service_signals[app queue_length]", "monitoring.service_signals[app processing_time]",
        "monitoring.alert_rules[unavailable]", "monitoring.alert_rules[error_rate]", "monitoring.alert_rules[resources]",
        "monitoring.alert_routing[unavailable]", "monitoring.logs_recent[lab application]",
        "monitoring.logs_structured[lab]", "monitoring.logs_rotated[lab]", "monitoring.log_level[lab]"}
    assert results["monitoring.scraped[host lab]"].value == 1.0
    assert results["monitoring.scraped[host lab]"].measured.startswith("up = 1")
    assert 0 <= results["monitoring.service_signals[app queue_length]"].value <= 3
    assert [r["health"] for r in results["monitoring.alert_rules[unavailable]"].value] == ["ok"]
    assert results["monitoring.logs_structured[lab]"].value["json"] == results["monitoring.logs_structured[lab]"].value[
        "lines"] > 0
    assert results["monitoring.log_level[lab]"].value == "info"
    assert "lab-webhook (webhook)" in results["monitoring.alert_routing[unavailable]"].measured
    assert "info" in results["monitoring.log_level[lab]"].measured


# ----------------------------------------------------------------------------- broken variants


def test_exporter_down_fails_scraped(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    with lab.variant("exporter_down"):
        r = _run("monitoring.scraped", target)["monitoring.scraped[host lab]"]
    assert r.status == Status.FAIL, r
    assert r.value == 0.0 and r.measured.startswith("up = 0"), r.measured
    assert "last scrape error" in r.measured


def test_host_without_scrape_target_fails(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path, extra="  hosts: {lab: {job: node, instance: '127.0.0.1:1'}}\n")
    r = _run("monitoring.scraped", target)["monitoring.scraped[host lab]"]
    assert r.status == Status.FAIL and r.value is None and r.measured.startswith("not a scrape target"), r


def test_missing_series_fails_service_signals(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    with lab.variant("missing_series"):
        results = _run("monitoring.service_signals", target)
    r = results["monitoring.service_signals[app processing_time]"]
    assert r.status == Status.FAIL and r.value is None and r.measured.startswith("missing"), r
    assert results["monitoring.service_signals[app latency]"].status == Status.PASS


def test_stale_series_fails_service_signals(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    with lab.variant("stale_series"):
        r = _run("monitoring.service_signals", target)["monitoring.service_signals[app queue_length]"]
    assert r.status == Status.FAIL, r
    assert r.value > 3 and r.unit == "scrape intervals", (r.value, r.measured)


def test_missing_rule_fails_alert_rules(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    with lab.variant("missing_rule"):
        results = _run("monitoring.alert_rules", target)
    r = results["monitoring.alert_rules[unavailable]"]
    assert r.status == Status.FAIL and r.value == [] and r.measured.startswith("no alerting rule for unavailable"), r
    assert results["monitoring.alert_rules[error_rate]"].status == Status.PASS


def test_rule_that_fails_to_evaluate_fails_alert_rules(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    with lab.variant("rule_eval_error"):
        r = _run("monitoring.alert_rules", target)["monitoring.alert_rules[error_rate]"]
    assert r.status == Status.FAIL, r
    assert "HighErrorRate: health err" in r.measured and "match" in r.measured, r.measured
    assert r.value[0]["health"] == "err" and "match" in r.value[0]["lastError"]


def test_no_receiver_fails_alert_routing(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    with lab.variant("no_receiver"):
        r = _run("monitoring.alert_routing", target)["monitoring.alert_routing[unavailable]"]
    assert r.status == Status.FAIL, r
    assert "InstanceDown -> blackhole (no integration" in r.measured, r.measured
    assert [(x["receiver"], x["integrations"]) for x in r.value] == [("blackhole", [])]


@pytest.mark.parametrize(("variant", "check", "measured"), [
    ("not_rotated", "monitoring.logs_rotated", "not rotated:"),
    ("debug_level", "monitoring.log_level", "level in the last 100 lines: debug"),
    ("unstructured", "monitoring.logs_structured", "0 of 100 lines"),
])
def test_log_variants_fail(lab: MonitoringLab, tmp_path: Path, variant: str, check: str, measured: str) -> None:
    paths = lab.log_variant(variant)
    target = _target(lab, tmp_path, logs=paths)
    req = REQ.model_copy(update={"structured_lines": 100})
    r = _run(check, target, req)[f"{check}[lab]"]
    assert r.status == Status.FAIL, r
    assert measured in r.measured, r.measured
    value = {"not_rotated": lambda v: None in v.values(), "debug_level": lambda v: v == "debug",
             "unstructured": lambda v: v["json"] == 0 and v["lines"] == 100}[variant]
    assert value(r.value), r.value


def test_log_not_written_for_days_fails_logs_recent(lab: MonitoringLab, tmp_path: Path) -> None:
    paths = lab.log_variant("not_rotated")
    three_days_ago = time.time() - 3 * 86400
    os.utime(paths["access"], (three_days_ago, three_days_ago))
    results = _run("monitoring.logs_recent", _target(lab, tmp_path, logs=paths))
    r = results["monitoring.logs_recent[lab access]"]
    assert r.status == Status.FAIL, r
    assert r.measured.startswith(f"{paths['access']} last written") and r.value >= 3 * 86400, r.measured
    assert results["monitoring.logs_recent[lab application]"].status == Status.PASS


def test_log_level_is_only_judged_in_production(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path, environment="staging", logs=lab.log_variant("debug_level"))
    (r,) = _run("monitoring.log_level", target).values()
    assert r.status == Status.SKIP and "production" in r.reason


# ----------------------------------------------------------------------------- could not verify


def test_wrong_password_is_error_and_never_shows_it(lab: MonitoringLab, tmp_path: Path) -> None:
    target = load_target(write_target(tmp_path, lab.target_yaml()), env={PASSWORD_ENV: "wrong-" + PROM_PASSWORD})
    results = _run("monitoring.scraped", target)
    r = results["monitoring.scraped[host lab]"]
    assert r.status == Status.ERROR and "HTTP 401" in r.reason, r
    assert PROM_PASSWORD not in json.dumps([x.to_dict() for x in results.values()])


def test_unreachable_prometheus_is_error(lab: MonitoringLab, tmp_path: Path) -> None:
    text = lab.target_yaml().replace(lab.prometheus_url, f"http://127.0.0.1:{free_port()}")
    target = load_target(write_target(tmp_path, text), env=ENV)
    for check_id in ("monitoring.scraped", "monitoring.host_signals", "monitoring.alert_rules"):
        results = _run(check_id, target)
        assert results and all(r.status == Status.ERROR and "connection refused" in r.reason
                               for r in results.values()), results


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: a Prometheus whose query hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


def test_query_that_does_not_answer_is_error_within_its_bound(lab: MonitoringLab, tmp_path: Path,
                                                              silent_server: int) -> None:
    text = lab.target_yaml().replace(lab.prometheus_url, f"http://127.0.0.1:{silent_server}").replace(
        "timeout_s: 3}", "timeout_s: 1}", 1)
    target = load_target(write_target(tmp_path, text), env=ENV)
    started = time.monotonic()
    results = _run("monitoring.alert_rules", target)
    assert time.monotonic() - started < 5
    assert all(r.status == Status.ERROR and "no answer in time" in r.reason for r in results.values()), results


def test_target_without_monitoring_or_logs_is_error_not_skip(lab: MonitoringLab, tmp_path: Path) -> None:
    """A profile that requires monitoring on a target that does not say where Prometheus or
    the logs are cannot be verified: error (a skip would let a GO through)."""
    bare = load_target(write_target(tmp_path, "name: bare\nhosts: [{name: lab, connection: 'local://'}]\n"), env=ENV)
    for check in FAMILY.checks:
        if check.id != "monitoring.dashboard":
            results = _run(check.id, bare, disruptive=True)
            assert [r.status for r in results.values()] == [Status.ERROR], (check.id, results)
    (r,) = _run("monitoring.host_signals", bare).values()
    assert "no monitoring: section" in r.reason
    text = lab.target_yaml()
    no_logs = text[:text.index("  logs:\n")] + text[text.index("  synthetic:\n"):]
    (r,) = _run("monitoring.logs_recent", load_target(write_target(tmp_path, no_logs, "nologs.yaml"), env=ENV)).values()
    assert r.status == Status.ERROR and "declares no logs" in r.reason


def test_literal_password_in_target_is_a_config_error(lab: MonitoringLab, tmp_path: Path) -> None:
    from golive.yamlpos import ConfigError

    text = lab.target_yaml().replace(f'"${{{PASSWORD_ENV}}}"', "hunter2-literal")
    with pytest.raises(ConfigError) as err:
        load_target(write_target(tmp_path, text), env=ENV)
    assert "'password' holds a literal secret" in str(err.value), str(err.value)


# ----------------------------------------------------------------------------- drills


def test_synthetic_alert_reaches_the_webhook_receiver(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    (r,) = _run("monitoring.alert_delivery", target, disruptive=True).values()
    assert r.status == Status.PASS, r
    assert r.measured.startswith("delivered to a receiver") and 0 < r.value <= 10, r.measured
    events = [e["event"] for e in r.evidence[0].data["timeline"]]
    assert any("routed to lab-webhook" in e for e in events) and events[-1].startswith("resolved"), events
    drill = r.evidence[0].data["labels"]["golive_drill"]
    assert any(drill in json.dumps(x["payload"]) for x in lab.received())


def test_synthetic_alert_delivery_from_alertmanager_counters(lab: MonitoringLab, tmp_path: Path) -> None:
    """Without a receiver_url, delivery is read from Alertmanager's own notification counters."""
    text = lab.target_yaml().replace(f'    receiver_url: "{lab.webhook.url if lab.webhook else ""}/received"\n', "")
    assert "receiver_url" not in text
    target = load_target(write_target(tmp_path, text), env=ENV)
    (r,) = _run("monitoring.alert_delivery", target, disruptive=True).values()
    assert r.status == Status.PASS, (r.measured, r.reason)
    after, before = (r.evidence[0].data["notifications"][k] for k in ("after", "before"))
    assert after[0] > before[0] and after[1] == before[1]


def test_synthetic_alert_without_receiver_fails(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    req = REQ.model_copy(update={"delivery_max": 3.0})
    with lab.variant("no_receiver"):
        (r,) = _run("monitoring.alert_delivery", target, req, disruptive=True).values()
    assert r.status == Status.FAIL and r.value is None and r.measured.startswith("not delivered"), r


def test_drills_are_skipped_without_allow_disruptive(lab: MonitoringLab, tmp_path: Path) -> None:
    (r,) = _run("monitoring.unavailability_alert", _target(lab, tmp_path)).values()
    assert r.status == Status.SKIP and r.reason.startswith(checkdef.DISRUPTIVE_NOT_ALLOWED), r.reason


def test_stopping_the_app_fires_instance_down_in_time_and_restores(lab: MonitoringLab, tmp_path: Path) -> None:
    target = _target(lab, tmp_path)
    (r,) = _run("monitoring.unavailability_alert", target, disruptive=True).values()
    assert r.status == Status.PASS, (r.measured, r.reason, r.evidence[0].raw)
    data = r.evidence[0].data
    assert r.value == data["result"] and data["result"]["alert"] == "InstanceDown"
    assert 0 < data["result"]["fired_after_s"] <= data["result"]["allowed_s"]
    events = [e["event"] for e in data["timeline"]]
    assert events[0].startswith("stopped app") and any("InstanceDown firing" in e for e in events)
    assert events[-1] == "app up again"
    assert r.data["timeline"] == data["timeline"]  # the report shows the timeline
    assert lab.query(f'up{{instance="{lab.app_instance}"}}')[0]["value"][1] == "1"


def test_unavailability_rule_not_covering_the_app_fails(lab: MonitoringLab, tmp_path: Path) -> None:
    text = lab.target_yaml().replace("    timeout_s: 30\n", "    timeout_s: 8\n")
    target = load_target(write_target(tmp_path, text, "short.yaml"), env=ENV)
    with lab.variant("unavailability_uncovered"):
        (r,) = _run("monitoring.unavailability_alert", target, disruptive=True).values()
    assert r.status == Status.FAIL, (r.measured, r.reason)
    assert r.measured.startswith("no unavailability alert fired for app"), r.measured
    assert r.value["fired_after_s"] is None
    assert r.evidence[0].data["timeline"][-1]["event"] == "app up again"


# ----------------------------------------------------------------------------- Grafana


class _FakeGrafana(http.server.BaseHTTPRequestHandler):
    dashboards: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer grafana-canary-token":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(self.dashboards if self.path.startswith("/api/search") else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_grafana_dashboard_probe_against_a_stand_in(lab: MonitoringLab, tmp_path: Path) -> None:
    """Grafana is not installed here (no Debian package): the dashboard probe is tested
    against a tiny stand-in HTTP server that answers ``/api/search`` the way Grafana does
    (a JSON list of {title, type: dash-db...}) and refuses a wrong bearer token with 401."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        token_file = tmp_path / "grafana.token"
        token_file.write_text("grafana-canary-token\n")
        extra = f'  grafana: {{url: "http://127.0.0.1:{port}", token_file: "{token_file}"}}\n'
        target = _target(lab, tmp_path, extra=extra)
        _FakeGrafana.dashboards = [{"title": "Service overview", "type": "dash-db", "uid": "abc"}]
        (r,) = _run("monitoring.dashboard", target).values()
        assert r.status == Status.PASS and r.value == ["Service overview"], r
        _FakeGrafana.dashboards = []
        (r,) = _run("monitoring.dashboard", target).values()
        assert r.status == Status.FAIL and r.value == [] and r.measured == "no dashboard", r
        token_file.write_text("wrong-token\n")
        (r,) = _run("monitoring.dashboard", _target(lab, tmp_path, extra=extra)).values()
        assert r.status == Status.ERROR and "401" in r.reason, r
        assert "grafana-canary-token" not in json.dumps(r.to_dict())
    finally:
        server.shutdown()
        server.server_close()
    (r,) = _run("monitoring.dashboard", _target(lab, tmp_path)).values()
    assert r.status == Status.SKIP and "names no Grafana" in r.reason


# ----------------------------------------------------------------------------- end to end


def test_golive_run_through_the_generic_binding(lab: MonitoringLab, tmp_path: Path, golive_run: Any) -> None:
    """``pytest --profile P --target T -m monitoring --allow-disruptive``: every monitoring
    result passes, and the drill's timeline is in the report."""
    profile = tmp_path / "mon-profile.yaml"
    profile.write_text("name: mon-test\ndescription: monitoring self-test\n"
                       "requirements:\n  monitoring:\n    ref: [DS-MON-01, DS-MON-03, ST-MON-04]\n"
                       "    delivery_max: 10 s\n")
    target = write_target(tmp_path, lab.target_yaml())
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "monitoring", "--allow-disruptive",
                     env=ENV, timeout=240)
    results = run.results("monitoring.")
    assert results, run.out[-3000:]
    bad = {k: (r["status"], r["measured"], r.get("reason")) for k, r in results.items()
           if r["status"] not in ("pass", "skip")}
    assert not bad, bad
    for rid in ("monitoring.scraped[host lab]", "monitoring.service_signals[app queue_length]",
                "monitoring.alert_routing[unavailable]", "monitoring.alert_delivery", "monitoring.logs_rotated[lab]",
                "monitoring.log_level[lab]"):
        assert results[rid]["status"] == "pass", (rid, results.get(rid))
    assert results["monitoring.dashboard"]["status"] == "skip"
    drill = run.one("monitoring.unavailability_alert")
    assert drill["status"] == "pass"
    assert any("InstanceDown firing" in e["event"] for e in drill["data"]["timeline"]), drill["data"]
    assert PROM_PASSWORD not in json.dumps(run.report)


def _state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rfind(")") + 2:].split()[0]


def test_sigterm_during_the_drill_restores_the_instance_and_ends_the_run(lab: MonitoringLab, tmp_path: Path) -> None:
    """SIGTERM while the app is stopped: the drill starts it again, the result is error
    (interrupted), and the run ends as interrupted (NO-GO) with its report written."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    profile = tmp_path / "p.yaml"
    profile.write_text("name: mon-int\ndescription: x\nrequirements:\n  monitoring:\n    alert_delivery: false\n")
    target = write_target(tmp_path, lab.target_yaml())
    report_dir = tmp_path / "reports"
    app_pid = int(lab.app_pidfile.read_text())
    env = {**os.environ, **ENV}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--profile={profile}",
                             f"--target={target}", f"--report-dir={report_dir}", "-m", "monitoring and disruptive",
                             "--allow-disruptive"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while _state(app_pid) != "T" and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert _state(app_pid) == "T", "the drill never stopped the app"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.kill(app_pid, signal.SIGCONT)  # whatever happened, leave the lab running
    assert _state(app_pid) != "T", out[-3000:]
    doc = json.loads(next(report_dir.glob("*/report.json")).read_text())
    (r,) = [x for x in doc["results"] if x["id"] == "monitoring.unavailability_alert"]
    assert r["status"] == "error" and "interrupted by SIGTERM" in r["reason"], r
    events = [e["event"] for e in r["evidence"][0]["data"]["timeline"]]
    assert any(e.startswith("SIGTERM received") for e in events) and events[-1] == "app up again", events
    assert doc["verdict"]["decision"] == "NO-GO", doc["verdict"]
