"""Bindings for features/ports.feature: TCP and HTTP from the checking host's vantage
(checks.ports) and listen addresses on the hosts (checks.hosts.listening_sockets)."""
from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

from pytest_bdd import scenarios, then, when

from checks import hosts as host_probe
from checks import ports as probe
from golive.model import Measurement
from suites.hostset import probe_host

scenarios("ports.feature")


def _req(golive: Any) -> Any:
    return golive.req.ports if golive.req else None


def _hostport(url_or_hp: str) -> tuple[str, int]:
    if "://" in url_or_hp:
        u = urllib.parse.urlsplit(url_or_hp)
        return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
    host, _, port = url_or_hp.rpartition(":")
    return host.strip("[]"), int(port)


def _skip_all(golive: Any, check: str, flag: str) -> bool:
    req = _req(golive)
    if req is None or not getattr(req, flag):
        golive.checks.skip(check, f"profile '{golive.profile.name}' does not require this ({flag})")
        return True
    return False


@when("the public entrypoints are probed over TCP", target_fixture="measured")
def probe_public(golive: Any) -> dict[str, Measurement]:
    ep = golive.target.endpoints
    points = ([ep.public] if ep.public else []) + list(ep.public_ports)
    return {f"{h}:{p}": probe.tcp_open(h, p) for h, p in (_hostport(x) for x in points)}


@then("every public entrypoint accepts connections")
def judge_public(golive: Any, measured: dict[str, Measurement]) -> None:
    if _skip_all(golive, "ports.public_open", "public_open"):
        return
    if not measured:
        golive.checks.error("ports.public_open", "the target names no public endpoint (endpoints.public)",
                            block=_req(golive), expected="open")
        return
    for hp, m in measured.items():
        golive.checks.record(f"ports.public_open[{hp}]", block=_req(golive), expected="open (TCP connect accepted)",
                             measurement=m, ok=bool, remediation=f"start the service on {hp} or open it in the firewall")


@when("the plain HTTP endpoint is requested", target_fixture="measured")
def request_http(golive: Any) -> Measurement | None:
    ep = golive.target.endpoints
    return probe.http_answers(ep.http) if ep.http else None


@then("it answers with an HTTP status")
def judge_http(golive: Any, measured: Measurement | None) -> None:
    if _skip_all(golive, "ports.http_answers", "http_answers"):
        return
    if measured is None:
        golive.checks.skip("ports.http_answers", "the target names no plain HTTP endpoint (endpoints.http)")
        return
    golive.checks.record("ports.http_answers", block=_req(golive), expected="an HTTP response (any status)",
                         measurement=measured, ok=lambda code: 100 <= code < 600,
                         remediation="serve port 80 (it should redirect to HTTPS)")


@when("the internal ports are probed over TCP from the checking host", target_fixture="measured")
def probe_internal(golive: Any) -> dict[str, Measurement]:
    return {hp: probe.tcp_reachable(*_hostport(hp)) for hp in golive.target.endpoints.internal}


@then("none of them accepts a connection")
def judge_internal(golive: Any, measured: dict[str, Measurement]) -> None:
    if _skip_all(golive, "ports.internal_closed", "internal_closed"):
        return
    if not measured:
        golive.checks.skip("ports.internal_closed", "the target names no internal ports (endpoints.internal)")
        return
    for hp, m in measured.items():
        golive.checks.record(f"ports.internal_closed[{hp}]", block=_req(golive),
                             expected="not reachable from the checking host", measurement=m, ok=lambda v: v is False,
                             remediation=f"bind the service behind {hp} to 127.0.0.1 or block the port in the firewall")


@when("the listening addresses of the internal services are read on their hosts", target_fixture="measured")
def read_listeners(golive: Any) -> dict[str, Measurement]:
    hosts = {h.name: h for h in golive.target.hosts}
    return {f"{s.name}@{s.host}:{s.port}": probe_host(hosts[s.host], host_probe.listening_sockets, s.port)
            for s in golive.target.services if s.bind == "loopback"}


def _all_loopback(addresses: list[str]) -> bool:
    if not addresses:
        return False
    for a in addresses:
        try:
            if not ipaddress.ip_address(a.split("%", 1)[0]).is_loopback:
                return False
        except ValueError:  # "*" (every address) and anything unparsable
            return False
    return True


@then("each internal service listens on loopback addresses only")
def judge_listeners(golive: Any, measured: dict[str, Measurement]) -> None:
    if _skip_all(golive, "ports.internal_bind", "internal_bind_loopback"):
        return
    if not measured:
        golive.checks.skip("ports.internal_bind", "the target declares no loopback-only services (services[].bind)")
        return
    for key, m in measured.items():
        golive.checks.record(f"ports.internal_bind[{key}]", block=_req(golive),
                             expected="listening, on loopback addresses only (127.0.0.0/8, ::1)", measurement=m,
                             ok=_all_loopback,
                             remediation="configure the service to listen on 127.0.0.1 (not 0.0.0.0 or ::)")
