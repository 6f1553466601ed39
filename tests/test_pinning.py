"""Address pinning: the compliant lab validated under a name that does not resolve
(``api.golive.test``), with ``endpoints.resolve`` saying where it lives -- the way a
deployment is checked before DNS points at it.  TLS (SNI and the certificate's name), the
Host header, the redirect's same-host rule, CORS and health all use the name; connections go
to the pinned address.  Without the pin the same target is ``error`` (the name does not
resolve), never pass."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GoliveRun, write_target
from lab.run import RunningLab, start_lab
from lab.variants import PINNED_NAME


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    running = start_lab(tmp_path_factory.mktemp("pinned-lab"), "compliant", instances=1)
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
http: {{health_body: {{json_field: status, equals: ok}}}}
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
    for rid in ("http.hsts", "http.health", "cors.reflection"):
        raw = run.one(rid)["evidence"][0]["raw"]
        assert raw.startswith(f"! connected to 127.0.0.1 (pinned in endpoints.resolve; name and SNI stay "
                              f"{PINNED_NAME})"), (rid, raw[:200])


def test_without_the_pin_the_same_target_cannot_be_verified(lab: RunningLab, tmp_path: Path,
                                                            golive_run: Any) -> None:
    run: GoliveRun = golive_run("--profile=poc", f"--target={_target(tmp_path, lab, pin=False)}", "-m", "http")
    statuses = {rid: r["status"] for rid, r in run.results("http.").items()}
    assert set(statuses.values()) == {"error"}, statuses
