"""Network reachability as seen from the checking host: TCP connects and HTTP answers.

These probes run *here* (the vantage point is the machine running golive), not on a
target host: "is 10.0.0.11:5432 reachable from outside" is a question about the path, so
it is answered by trying it.  Evidence records the resolved address, each attempt's
outcome and its elapsed time.

Outcomes of one TCP connect, in nmap's words: **open** (accepted), **closed** (refused:
the host answered with a reset), **filtered** (no answer within the timeout, or no route).
"""
from __future__ import annotations

import errno
import ipaddress
import platform
import re
import socket
import ssl
import time
import urllib.parse
from typing import Any

import httpx

from checks.connection import redact
from golive.deadline import http_client
from golive.model import Evidence, Measurement

_TOOL = f"Python {platform.python_version()} socket"
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}


def _resolve(address: str, port: int) -> list[tuple[int, str]]:
    """(family, ip) for ``address``; ValueError with a reason for an invalid address or
    port, or a name that does not resolve.  Literal IPs never touch DNS."""
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port}")
    host = address.strip().strip("[]")
    if not host:
        raise ValueError("empty address")
    flags = 0
    if re.fullmatch(r"[\d.]+|[\da-fA-F:.%\w]*:[\da-fA-F:.%\w]*", host):
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"invalid IP address {address!r}") from None
        flags = socket.AI_NUMERICHOST
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {address}: {exc.strerror}") from None
    return list(dict.fromkeys((int(info[0]), str(info[4][0])) for info in infos))


def _connect(family: int, ip: str, port: int, timeout_s: float) -> dict[str, Any]:
    """One TCP connect; its state, detail and elapsed milliseconds."""
    started = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect((ip, port))
        state, detail = "open", "connection accepted"
    except ConnectionRefusedError:
        state, detail = "closed", "connection refused"
    except TimeoutError:
        state, detail = "filtered", f"no answer within {timeout_s:g} s"
    except OSError as exc:
        unreachable = exc.errno in _UNREACHABLE
        state, detail = ("filtered" if unreachable else "error"), exc.strerror or str(exc)
    finally:
        sock.close()
    elapsed = round((time.monotonic() - started) * 1000, 2)
    return {"address": ip, "state": state, "detail": detail, "elapsed_ms": elapsed}


def _probe_tcp(name: str, address: str, port: int, timeout_s: float,
               decide: Any) -> Measurement:
    started = time.monotonic()
    attempts: list[dict[str, Any]] = []

    def evidence() -> Evidence:
        return Evidence(
            probe=name, subject=f"{address}:{port}", tool=_TOOL,
            method=f"TCP connect to {address}:{port} from {socket.gethostname()} "
                   f"(timeout {timeout_s:g} s per address)",
            raw="; ".join(f"{a['address']}: {a['state']} ({a['detail']}, {a['elapsed_ms']} ms)"
                          for a in attempts),
            duration_s=round(time.monotonic() - started, 3),
            data={"resolved": [a["address"] for a in attempts], "attempts": attempts})

    try:
        targets = _resolve(address, port)
    except ValueError as exc:
        return Measurement.failed(str(exc), evidence())
    for family, ip in targets:
        attempts.append(_connect(family, ip, port, timeout_s))
        if attempts[-1]["state"] == "open":
            break
    states = {a["state"] for a in attempts}
    result: Measurement = decide(states, attempts, evidence())
    return result


def tcp_reachable(address: str, port: int, timeout_s: float = 3) -> Measurement:
    """Whether a TCP connection to ``address:port`` is accepted from here.

    True: some resolved address accepted.  False: every address refused, did not answer
    or had no route -- for a port that must be CLOSED, all of these mean "not reachable".
    Error: invalid address or port, a name that does not resolve, or a local failure
    that says nothing about the path (e.g. EADDRNOTAVAIL).
    """
    def decide(states: set[str], attempts: list[dict[str, Any]], ev: Evidence) -> Measurement:
        if "open" in states:
            return Measurement(True, "reachable", ev)
        if "error" in states:
            return Measurement.failed(_why(attempts), ev)
        return Measurement(False, f"not reachable ({'/'.join(sorted(states))})", ev)

    return _probe_tcp("ports.tcp_reachable", address, port, timeout_s, decide)


def tcp_open(address: str, port: int, timeout_s: float = 3) -> Measurement:
    """Whether ``address:port`` is open, for a port that must be OPEN.

    True: accepted.  False: refused (the host answered: the port is closed).  Error
    when no address answered at all (timeout, no route): that cannot tell open from
    closed -- a firewall drop and a host that is down look the same.
    """
    def decide(states: set[str], attempts: list[dict[str, Any]], ev: Evidence) -> Measurement:
        if "open" in states:
            return Measurement(True, "open", ev)
        if states == {"closed"}:
            return Measurement(False, "closed (connection refused)", ev)
        return Measurement.failed(_why(attempts) + ": cannot tell open from closed", ev)

    return _probe_tcp("ports.tcp_open", address, port, timeout_s, decide)


def _why(attempts: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['address']}: {a['detail']}" for a in attempts
                     if a["state"] != "closed") or "no attempt"


def http_answers(url: str, timeout_s: float = 5, ca_file: str | None = None, *,
                 method: str = "GET") -> Measurement:
    """The HTTP status code ``url`` answers with (redirects not followed).

    ``timeout_s`` bounds the whole request: connect, TLS handshake and the status line and
    headers (a server that sends bytes slowly cannot hold the probe past it).

    TLS is verified against the system store, or ``ca_file`` when given.  Error when
    there is no HTTP answer: refused, timeout, TLS failure, invalid URL.  Proxy settings
    from the environment are ignored: the request goes straight to the URL's host.
    Evidence: server address, HTTP version, elapsed time, a few response headers.
    """
    shown = redact(url)
    started = time.monotonic()
    data: dict[str, Any] = {"ca_file": ca_file}

    def evidence(raw: str = "") -> Evidence:
        return Evidence(probe="ports.http_answers", subject=shown,
                        method=f"{method} {shown} (no redirects, whole request bounded by {timeout_s:g} s)",
                        tool=f"httpx {httpx.__version__}", raw=raw,
                        duration_s=round(time.monotonic() - started, 3), data=data)

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return Measurement.failed(f"not an http(s) URL: {shown}", evidence())
    client = None
    try:
        verify = ssl.create_default_context(cafile=ca_file)
        client = http_client(timeout_s, verify=verify)
        # Streamed so the peer address can be read while the socket is still open.
        with client, client.stream(method, url) as response:
            stream = response.extensions.get("network_stream")
            server = stream.get_extra_info("server_addr") if stream is not None else None
    except (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, OSError) as exc:
        if client is not None and client.deadline.expired:
            return Measurement.failed(client.deadline.message(), evidence())
        if isinstance(exc, httpx.TimeoutException):
            return Measurement.failed(f"timed out after {timeout_s:g} s ({type(exc).__name__})", evidence())
        return Measurement.failed(redact(_http_reason(exc)), evidence())
    data.update(server_addr=f"{server[0]}:{server[1]}" if server else None,
                http_version=response.http_version,
                elapsed_ms=round(response.elapsed.total_seconds() * 1000, 2),
                headers={k: v for k, v in response.headers.items()
                         if k.lower() in ("server", "location", "content-type")})
    line = f"{response.http_version} {response.status_code} {response.reason_phrase}"
    return Measurement(response.status_code, f"HTTP {response.status_code}",
                       evidence(redact(line)))


def _http_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {text}"
    if isinstance(exc, FileNotFoundError):
        return f"CA file not found: {exc.filename}"
    return f"{type(exc).__name__}: {text}"


# ----------------------------------------------------------------------------- listeners on a host

LISTENERS_COMMAND = "ss -H -l -t -u -n -p"
_SS_LINE = re.compile(r"^(?P<proto>tcp|udp)\s+\S+\s+\d+\s+\d+\s+(?P<local>\S+)\s+\S+(?:\s+(?P<proc>users:\(.*\)))?\s*$")
_SS_USER = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')


def listener_label(proto: str, address: str, port: int) -> str:
    """``0.0.0.0:443/tcp``, ``[::]:53/udp`` (IPv6 in brackets; ss's ``*``, an IPv6 socket
    on every address that also takes IPv4, is shown as ``[::]`` too)."""
    address = "::" if address == "*" else address
    shown = f"[{address}]" if ":" in address else address
    return f"{shown}:{port}/{proto}"


def parse_ss_listeners(text: str) -> list[dict[str, Any]]:
    """Every listener of ``ss -H -l -t -u -n -p`` output: ``{"proto", "address", "port",
    "dual_stack", "process", "pid", "label"}`` (``process`` None when ss may not show it: another user's
    socket without sudo; ``dual_stack`` for ss's ``*``).  ``%iface`` scopes are dropped."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        m = _SS_LINE.match(line.strip())
        if not m:
            continue
        local = re.fullmatch(r"\[?(?P<addr>.+?)(?:%[\w.-]+)?\]?:(?P<port>\d+|\*)", m["local"])
        if not local or local["port"] == "*":
            continue
        procs = [(u["name"], int(u["pid"])) for u in _SS_USER.finditer(m["proc"] or "")]
        addr, port = local["addr"], int(local["port"])
        out.append({"proto": m["proto"], "address": addr, "port": port, "dual_stack": addr == "*",
                    "process": procs[0][0] if procs else None, "pid": procs[0][1] if procs else None,
                    "label": listener_label(m["proto"], addr, port)})
    return out


def host_listeners(host: Any, *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """Every TCP and UDP listener on a target host, IPv4 and IPv6, with its owning process
    (``ss -H -l -t -u -n -p`` over the host's connection; processes of other users show
    only with ``sudo: true``).  Value: the list of :func:`parse_ss_listeners` dicts."""
    from checks.connection import ProbeError, describe, run, tool

    started = time.monotonic()
    who = subject or describe(host)

    def evidence(raw: str = "", data: dict[str, Any] | None = None) -> Evidence:
        return Evidence(probe="ports.host_listeners", subject=who, method=LISTENERS_COMMAND, tool=tool(host),
                        raw=redact(raw)[:4000], data=data or {}, duration_s=round(time.monotonic() - started, 3))

    try:
        result = run(host, LISTENERS_COMMAND, timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, evidence())
    if result.rc != 0:
        why = "ss is not installed (iproute2)" if result.rc == 127 else \
            f"ss exited {result.rc}: {result.stderr.strip()[:200]}"
        return Measurement.failed(why, evidence(result.stdout + result.stderr))
    found = parse_ss_listeners(result.stdout)
    return Measurement(found, f"{len(found)} listeners", evidence(result.stdout, {"listeners": found}))
