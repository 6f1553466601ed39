"""The ports family, declared: public entrypoints open, internal services unreachable from
the checking host and listening on loopback only on their own hosts.

Reads ``requirements.ports`` (which of the four checks the tier asks for) and the target's
``endpoints`` (public, http, public_ports, internal) and ``services`` (bind: loopback).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
from typing import Any

from pydantic import Field, field_validator

from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family, NotApplicable, when_flag
from golive.model import Evidence, Measurement, Severity


class PortsReq(Block):
    """Which port checks the tier requires (each on by default once the block is present)."""

    public_open: bool = True
    http_answers: bool = True
    internal_closed: bool = True
    internal_bind_loopback: bool = True
    listeners_declared: bool = True


_LISTENER = re.compile(r"^(?:(?P<addr>\*|\[[0-9A-Fa-f:.]+\]|[0-9.]+):)?(?P<port>\d{1,5})(?:/(?P<proto>tcp|udp))?$")


class PortsSpec(Strict):
    """The listeners a host may have on non-loopback addresses (target: ports).  An entry is
    ``ADDRESS:PORT[/tcp|/udp]`` or ``PORT[/proto]`` (any address); ADDRESS is an IPv4
    address, ``[IPv6]`` or ``*`` (every address); without ``/proto`` both TCP and UDP match.
    ``listeners`` holds for every host, ``host_listeners`` adds per host name."""

    listeners: list[str] = Field(default_factory=list, description="e.g. ['*:443/tcp', '[::]:443/tcp', '10.0.0.5:5432']")
    host_listeners: dict[str, list[str]] = Field(default_factory=dict, description="host name -> more listeners")

    @field_validator("listeners")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        for entry in v:
            m = _LISTENER.match(entry.strip())
            if not m or not 0 < int(m["port"]) < 65536:
                raise ValueError(f"'{entry}' is not a listener (ADDRESS:PORT[/tcp|/udp] or PORT, e.g. "
                                 "'*:443/tcp', '[::]:443', '10.0.0.5:5432/tcp')")
        return v

    @field_validator("host_listeners")
    @classmethod
    def _host_entries(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for entries in v.values():
            cls._entries(entries)
        return v


def _hostport(url_or_hp: str) -> tuple[str, int]:
    if "://" in url_or_hp:
        u = urllib.parse.urlsplit(url_or_hp)
        return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
    host, _, port = url_or_hp.rpartition(":")
    return host.strip("[]"), int(port)


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


def _declared(entries: list[str], proto: str, address: str, port: int) -> bool:
    """Whether one listener matches one of the declared entries."""
    for entry in entries:
        m = _LISTENER.match(entry.strip())
        if not m or int(m["port"]) != port or (m["proto"] and m["proto"] != proto):
            continue
        want = (m["addr"] or "*").strip("[]")
        if want == "*" or want == address or (address == "*" and want == "::"):
            return True
        try:
            if ipaddress.ip_address(want) == ipaddress.ip_address(address):
                return True
        except ValueError:
            pass
    return False


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:  # "*" and anything unparsable
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def undeclared_listeners(listeners: list[dict[str, Any]], entries: list[str]) -> list[dict[str, Any]]:
    """The listeners that are neither on a loopback address nor declared."""
    return [x for x in listeners if not _is_loopback(x["address"])
            and not _declared(entries, x["proto"], x["address"], x["port"])]


def _who(x: dict[str, Any]) -> str:
    return f"{x['process']}, pid {x['pid']}" if x["process"] else "process not visible (sudo: true shows it)"


def _listeners_of_hosts(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.ports import probes

    spec: PortsSpec | None = ctx.spec
    if spec is None or not (spec.listeners or spec.host_listeners):
        raise NotApplicable("the target declares no listeners (ports.listeners): nothing to account for")
    out: dict[str, Measurement] = {}
    for host in ctx.host_specs:
        m = ctx.on_host(host, probes.host_listeners)
        if not m.ok:
            out[host.name] = m
            continue
        entries = list(spec.listeners) + list(spec.host_listeners.get(host.name, []))
        stray = undeclared_listeners(m.value, entries)
        public = [x for x in m.value if not _is_loopback(x["address"])]
        value = {"undeclared": [f"{x['label']} ({_who(x)})" for x in stray],
                 "non_loopback": [x["label"] for x in public], "declared": entries}
        display = ("undeclared: " + "; ".join(value["undeclared"]) if stray else
                   f"every non-loopback listener declared ({', '.join(value['non_loopback']) or 'none'})")
        ev = dataclasses.replace(m.evidence, data={**m.evidence.data, **value})
        out[host.name] = Measurement(value, display, ev)
    return out


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
    target_block=PortsSpec,
    checks=(
        Check(
            id="ports.public_open",
            title="Public HTTPS entrypoint is open",
            severity=Severity.CRITICAL,
            refs=("DS-NET-02",),
            measures="TCP connect to endpoints.public and endpoints.public_ports from the checking host",
            applies=when_flag("public_open"),
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
            applies=when_flag("http_answers"),
            measure=_http,
            expected="an HTTP response (any status)",
            passes=lambda req, code: 100 <= code < 600,
            remediation="serve port 80 (it should redirect to HTTPS)",
        ),
        Check(
            id="ports.internal_closed",
            title="Internal ports are not reachable from outside",
            severity=Severity.CRITICAL,
            refs=("DS-NET-03", "DS-NET-04", "DS-NET-05", "AW-NET-01", "ST-NET-04"),
            measures="TCP connect to each endpoints.internal host:port from the checking host",
            applies=when_flag("internal_closed"),
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
            applies=when_flag("internal_bind_loopback"),
            measure=_listeners,
            empty="the target declares no loopback-only services (services[].bind)",
            expected="listening, on loopback addresses only (127.0.0.0/8, ::1)",
            passes=lambda req, addresses: all_loopback(addresses),
            remediation="configure the service to listen on 127.0.0.1 (not 0.0.0.0 or ::)",
        ),
        Check(
            id="ports.listeners_declared",
            title="Every listener on a host is accounted for",
            severity=Severity.HIGH,
            refs=("AW-NET-01", "AW-NET-05"),
            measures="every TCP and UDP listener (IPv4 and IPv6) on each target host with its owning process "
                     "(ss -H -l -t -u -n -p), against the target's ports.listeners",
            applies=when_flag("listeners_declared"),
            measure=_listeners_of_hosts,
            empty="the target has no hosts",
            expected="every listener on a non-loopback address is declared in ports.listeners",
            passes=lambda req, v: not v["undeclared"],
            remediation=lambda req, m: ("stop the undeclared services, bind them to 127.0.0.1, or declare them in "
                                        "ports.listeners if they are meant to be reachable"),
            verify_hint="make the host reachable (hosts[].connection); with sudo: true ss also names other users' "
                        "processes",
        ),
    ),
)
