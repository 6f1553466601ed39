"""The ports family, declared: public entrypoints open, internal services unreachable from
the checking host and listening on loopback only on their own hosts.

Reads ``requirements.ports`` (which of the four checks the tier asks for) and the target's
``endpoints`` (public, http, public_ports, internal) and ``services`` (bind: loopback).
"""
from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

from golive.blocks import Block
from golive.checkdef import Check, CheckContext, Family
from golive.model import Evidence, Measurement, Severity


class PortsReq(Block):
    """Which port checks the tier requires (each on by default once the block is present)."""

    public_open: bool = True
    http_answers: bool = True
    internal_closed: bool = True
    internal_bind_loopback: bool = True


def _hostport(url_or_hp: str) -> tuple[str, int]:
    if "://" in url_or_hp:
        u = urllib.parse.urlsplit(url_or_hp)
        return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
    host, _, port = url_or_hp.rpartition(":")
    return host.strip("[]"), int(port)


def _required(flag: str) -> Any:
    def applies(ctx: CheckContext) -> str | None:
        return None if getattr(ctx.req, flag) else f"profile '{ctx.profile_name}' does not require this ({flag})"
    return applies


def _public(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.ports import probes

    ep = ctx.target.endpoints
    points = ([ep.public] if ep.public else []) + list(ep.public_ports)
    if not points:
        return Measurement.failed("the target names no public endpoint (endpoints.public)",
                                  Evidence(probe="ports.tcp_open", subject=ctx.target.name, method="target file"))
    return {f"{h}:{p}": probes.tcp_open(h, p) for h, p in (_hostport(x) for x in points)}


def _http(ctx: CheckContext) -> Measurement:
    from checks.ports import probes
    from golive.checkdef import NotApplicable

    if not ctx.target.endpoints.http:
        raise NotApplicable("the target names no plain HTTP endpoint (endpoints.http)")
    return probes.http_answers(ctx.target.endpoints.http)


def _internal(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.ports import probes

    return {hp: probes.tcp_reachable(*_hostport(hp)) for hp in ctx.target.endpoints.internal}


def _listeners(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.hosts import probes as host_probe

    return {f"{s.name}@{s.host}:{s.port}": ctx.on_host(s.host, host_probe.listening_sockets, s.port)
            for s in ctx.target.services if s.bind == "loopback"}


def all_loopback(addresses: list[str]) -> bool:
    """True when something listens and every listening address is a loopback address
    (``*``, ``0.0.0.0``, ``::`` and anything unparsable are not)."""
    if not addresses:
        return False
    for a in addresses:
        try:
            if not ipaddress.ip_address(a.split("%", 1)[0]).is_loopback:
                return False
        except ValueError:
            return False
    return True


FAMILY = Family(
    name="ports",
    title="open and closed ports, listen addresses",
    feature="ports.feature",
    profile_block=PortsReq,
    checks=(
        Check(
            id="ports.public_open",
            title="Public HTTPS entrypoint is open",
            severity=Severity.CRITICAL,
            refs=("DS-NET-02",),
            measures="TCP connect to endpoints.public and endpoints.public_ports from the checking host",
            applies=_required("public_open"),
            measure=_public,
            expected="open (TCP connect accepted)",
            passes=lambda req, open_: open_ is True,
            remediation=lambda req, m: f"start the service on {m.evidence.subject} or open it in the firewall",
            verify_hint="name the public endpoint in the target (endpoints.public) and make it reachable from "
                        "the checking host",
        ),
        Check(
            id="ports.http_answers",
            title="Plain HTTP port answers",
            severity=Severity.HIGH,
            refs=("DS-NET-01",),
            measures="an HTTP request to endpoints.http; any HTTP status counts as an answer",
            applies=_required("http_answers"),
            measure=_http,
            expected="an HTTP response (any status)",
            passes=lambda req, code: 100 <= code < 600,
            remediation="serve port 80 (it should redirect to HTTPS)",
        ),
        Check(
            id="ports.internal_closed",
            title="Internal ports are not reachable from outside",
            severity=Severity.CRITICAL,
            refs=("DS-NET-03", "DS-NET-04", "DS-NET-05", "AW-NET-01"),
            measures="TCP connect to each endpoints.internal host:port from the checking host",
            applies=_required("internal_closed"),
            measure=_internal,
            empty="the target names no internal ports (endpoints.internal)",
            expected="not reachable from the checking host",
            passes=lambda req, reachable: reachable is False,
            remediation=lambda req, m: f"bind the service behind {m.evidence.subject} to 127.0.0.1 or block "
                                       "the port in the firewall",
        ),
        Check(
            id="ports.internal_bind",
            title="Internal services listen on loopback only",
            severity=Severity.HIGH,
            refs=("DS-NET-03", "DS-NET-04"),
            measures="listening addresses of each loopback-only service's port on its host (ss -ltnH)",
            applies=_required("internal_bind_loopback"),
            measure=_listeners,
            empty="the target declares no loopback-only services (services[].bind)",
            expected="listening, on loopback addresses only (127.0.0.0/8, ::1)",
            passes=lambda req, addresses: all_loopback(addresses),
            remediation="configure the service to listen on 127.0.0.1 (not 0.0.0.0 or ::)",
        ),
    ),
)
