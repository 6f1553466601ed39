"""Address pinning: the compliant lab validated under a name that does not resolve
(``api.golive.test``), with ``endpoints.resolve`` saying where it lives -- the way a
deployment is checked before DNS points at it.  TLS (SNI and the certificate's name), the
Host header, the redirect's same-host rule, CORS and health, the throughput run (the load
engine's connections) and the HA drill (its request stream and its entrypoint polls) all
use the name; connections go to the pinned address.  Without the pin the same target is
``error`` (the name does not resolve), never pass."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import GoliveRun, write_target
from lab.run import RunningLab, start_lab
from lab.variants import PINNED_NAME


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    # two instances: the HA drill stops one; 10 ms per analysis keeps the load run light
    running = start_lab(tmp_path_factory.mktemp("pinned-lab"), "compliant", instances=2, cost_ms=10)
    try:
        yield running
    finally:
        running.stop()


def _target(tmp_path: Path, lab: RunningLab, *, pin: bool) -> str:
    https, http = lab.ports["https"], lab.ports["http"]
    resolve = f"  resolve: {{{PINNED_NAME}: 127.0.0.1}}\n" if pin else ""
    return write_target(tmp_path, f"""name: pinned
environment: lab
endpoints:
  public: https://{PINNED_NAME}:{https}
  http: http://{PINNED_NAME}:{http}
  health: https://{PINNED_NAME}:{https}/health
  ca_file: {lab.ca_file}
{resolve}cors: {{allowed_origins: ["https://app.golive.test"]}}
http:
  health_body: {{json_field: status, equals: ok}}
  pages:
    media: {{url: "https://{PINNED_NAME}:{https}/media/sample-001.png", content_type: image/png}}
    web_ui: {{url: "https://{PINNED_NAME}:{https}/ui/", body: {{pattern: "<title>Oz Forensics Web UI</title>"}}}}
""", f"pinned-{pin}.yaml")


def test_the_name_does_not_resolve() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(PINNED_NAME, 443)


def test_a_pinned_name_validates_the_lab_before_dns_points_at_it(lab: RunningLab, tmp_path: Path,
                                                                 golive_run: Any) -> None:
    run: GoliveRun = golive_run("--profile=poc", f"--target={_target(tmp_path, lab, pin=True)}",
                                "-m", "tls or http or cors")
    assert run.rc == 0, run.out[-3000:]
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # -m: part of the profile, never GO
    statuses = {rid: r["status"] for rid, r in run.results().items()}
    assert set(statuses.values()) == {"pass", "skip"}, statuses
    https = lab.ports["https"]
    host = run.one("tls.hostname[")
    assert host["measured"].startswith(f"{PINNED_NAME} matches the certificate"), host
    assert f"address 127.0.0.1 pinned in endpoints.resolve, SNI {PINNED_NAME}" in host["evidence"][0]["method"]
    redirect = run.one("http.redirect")
    assert redirect["measured"] == f"HTTP 301 -> https://{PINNED_NAME}:{https}/", redirect
    for rid in ("http.hsts", "http.health", "cors.reflection", "http.pages[web_ui]"):
        raw = run.one(rid)["evidence"][0]["raw"]
        assert raw.startswith(f"! connected to 127.0.0.1 (pinned in endpoints.resolve; name and SNI stay "
                              f"{PINNED_NAME})"), (rid, raw[:200])


def test_without_the_pin_the_same_target_cannot_be_verified(lab: RunningLab, tmp_path: Path,
                                                            golive_run: Any) -> None:
    run: GoliveRun = golive_run("--profile=poc", f"--target={_target(tmp_path, lab, pin=False)}", "-m", "http")
    statuses = {rid: r["status"] for rid, r in run.results("http.").items()}
    assert set(statuses.values()) == {"error"}, statuses


def _load_target(tmp_path: Path, lab: RunningLab, *, pin: bool) -> str:
    """The lab's inference endpoint and HA entrypoint under the pinned name (the instances'
    own health URLs and their stop/start actions stay on loopback, as the lab has them)."""
    https = lab.ports["https"]
    over = lab.target_overrides()
    doc: dict[str, Any] = {
        "name": "pinned-load", "environment": "lab",
        "endpoints": {"ca_file": str(lab.ca_file), **({"resolve": {PINNED_NAME: "127.0.0.1"}} if pin else {})},
        "inference": {**over["inference"], "url": f"https://{PINNED_NAME}:{https}/v1/analyze",
                      "warmup_s": 0.5, "ramp_s": 0.5},
        "ha": {**over["ha"], "entrypoint": f"https://{PINNED_NAME}:{https}/health"},
    }
    return write_target(tmp_path, yaml.safe_dump(doc, sort_keys=False), f"pinned-load-{pin}.yaml")


def _load_profile(tmp_path: Path) -> str:
    return write_target(tmp_path, yaml.safe_dump({
        "name": "pinned-load", "description": "a short throughput run and a one-instance HA drill (self-test)",
        "requirements": {
            "throughput": {"ref": ["OZ-PERF-00"], "apm_min": 300, "error_rate_max": 0.01, "duration": "3 s"},
            "ha": {"rate": 20, "stable": "2 s", "steady": "1 s", "drill_instances": 1},
        }}, sort_keys=False), "pinned-load-profile.yaml")


def test_a_pinned_name_carries_the_throughput_run_and_the_ha_drill(lab: RunningLab, tmp_path: Path,
                                                                   golive_run: Any) -> None:
    run: GoliveRun = golive_run(f"--profile={_load_profile(tmp_path)}", f"--target={_load_target(tmp_path, lab, pin=True)}",
                                "--allow-disruptive", "-m", "throughput or ha")
    assert run.rc == 0, run.out[-3000:]
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # -m: part of the profile, never GO
    statuses = {rid: r["status"] for rid, r in run.results().items()}
    assert set(statuses.values()) == {"pass", "skip"}, statuses
    for rid in ("throughput.apm", "throughput.error_rate", "ha.steady_state[before]", "ha.failover[app-1]",
                "ha.error_rate[app-1]", "ha.restore[app-1]", "ha.steady_state[after]"):
        assert statuses[rid] == "pass", (rid, statuses)
    pinned = f"pinned in endpoints.resolve; Host and SNI stay {PINNED_NAME}"
    apm = run.one("throughput.apm")
    data = apm["evidence"][0]["data"]
    assert data["pinned"] == {PINNED_NAME: "127.0.0.1"} and data["requests"]["ok"] == data["requests"]["steady"] > 0
    assert f"connections to {PINNED_NAME} go to 127.0.0.1 ({pinned})" in apm["evidence"][0]["method"]
    failover = run.one("ha.failover[app-1]")
    assert f"connected to 127.0.0.1 ({pinned})" in failover["evidence"][0]["method"]
    assert failover["data"]["timeline"] and all(p["ok"] for p in failover["data"]["timeline"])
    before = run.one("ha.steady_state[before]")
    assert before["evidence"][0]["data"]["steady"]["entrypoint_ok"] is True


def test_without_the_pin_the_load_run_and_the_drill_cannot_be_verified(lab: RunningLab, tmp_path: Path,
                                                                       golive_run: Any) -> None:
    run: GoliveRun = golive_run(f"--profile={_load_profile(tmp_path)}",
                                f"--target={_load_target(tmp_path, lab, pin=False)}", "--allow-disruptive",
                                "-m", "throughput or ha")
    assert run.rc == 1, run.out[-3000:]
    apm = run.one("throughput.apm")
    assert apm["status"] == "error" and apm["reason"].startswith(f"no HTTP answer from https://{PINNED_NAME}"), apm
    assert run.one("throughput.error_rate")["status"] == "error"
    before = run.one("ha.steady_state[before]")
    assert before["status"] == "error" and "entrypoint unreachable" in before["reason"], before
    assert run.one("ha.failover[app-1]")["status"] == "error"
    assert run.report["verdict"]["decision"] == "NO-GO"
