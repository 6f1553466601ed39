"""Every network probe ends within its bound, whatever the peer does (issue #14, item 1).

Two hostile servers, started here on loopback:

- **slow-byte**: accepts and sends one byte per second, for ever -- an HTTP status line and
  headers that never end, or a TLS record header announcing 16 KiB that never completes.
  Each byte comes well inside a per-read timeout, so only an overall deadline stops it.
- **silent**: accepts and never says anything.

Each probe family must come back as ``error`` (never pass, never hang) within its
``timeout_s`` plus a small slack, and the reason names the deadline and the elapsed time.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from checks.auth import probes as auth
from checks.cors import probes as cors
from checks.ha import probes as ha
from checks.http import probes as http
from checks.ports import probes as ports
from checks.tls import probes as tls_probe
from golive.model import Measurement

TIMEOUT_S = 3.0
SLACK_S = 2.5  # scheduling under load; without the deadline these probes never end
HTTP_DRIBBLE = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100000
# a TLS handshake record announcing 16384 bytes (a ServerHello that never completes)
TLS_DRIBBLE = b"\x16\x03\x03\x40\x00" + b"\x02" + b"\x00" * 100000


class HostileServer:
    """Loopback TCP server: ``payload`` sent one byte per ``interval_s`` (or nothing when
    ``payload`` is empty), to every connection, until stopped."""

    def __init__(self, payload: bytes, interval_s: float = 1.0) -> None:
        self.payload = payload
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.payload:
                threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _dribble(self, conn: socket.socket) -> None:
        for i in range(len(self.payload)):
            if self.stop_event.wait(self.interval_s if i else 0.05):
                return
            try:
                conn.sendall(self.payload[i:i + 1])
            except OSError:
                return

    def close(self) -> None:
        self.stop_event.set()
        self.srv.close()
        for c in self.conns:
            c.close()


@pytest.fixture(params=["slow-byte", "silent"])
def hostile(request: pytest.FixtureRequest) -> Iterator[tuple[str, HostileServer, HostileServer]]:
    """(kind, server for http:// URLs, server for https:// URLs)."""
    if request.param == "silent":
        plain, tls = HostileServer(b""), HostileServer(b"")
    else:
        plain, tls = HostileServer(HTTP_DRIBBLE), HostileServer(TLS_DRIBBLE)
    yield request.param, plain, tls
    plain.close()
    tls.close()


def _bounded(call: Callable[[], Measurement], bound_s: float) -> tuple[Measurement, float]:
    started = time.monotonic()
    m = call()
    elapsed = time.monotonic() - started
    assert m.error is not None, f"a hostile server must give error, got {m.value!r} ({m.display})"
    assert elapsed < bound_s + SLACK_S, f"took {elapsed:.1f} s, bound {bound_s:g} s: {m.error}"
    return m, elapsed


FAMILIES: dict[str, Callable[[str, str], Measurement]] = {
    "ports.http_answers": lambda u, s: ports.http_answers(u, timeout_s=TIMEOUT_S),
    "http.redirect": lambda u, s: http.redirect(u, timeout_s=TIMEOUT_S),
    "http.hsts": lambda u, s: http.hsts(s, timeout_s=TIMEOUT_S),
    "http.headers": lambda u, s: http.response_headers(u, ["x-frame-options"], timeout_s=TIMEOUT_S),
    "http.status (health)": lambda u, s: http.status(s, timeout_s=TIMEOUT_S),
    "cors.probe_origin": lambda u, s: cors.probe_origin(u, "https://evil.golive.test", timeout_s=TIMEOUT_S),
    "auth.anonymous": lambda u, s: auth.anonymous(s, timeout_s=TIMEOUT_S),
    "ha.instance_health": lambda u, s: ha.instance_health(u, timeout_s=TIMEOUT_S),
    "ha.instance_health https": lambda u, s: ha.instance_health(s, timeout_s=TIMEOUT_S),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_http_probe_families_end_within_their_deadline(
        family: str, hostile: tuple[str, HostileServer, HostileServer]) -> None:
    kind, plain, tls = hostile
    url, surl = f"http://127.0.0.1:{plain.port}/", f"https://127.0.0.1:{tls.port}/"
    # the CORS probe sends two requests, each bounded
    bound = TIMEOUT_S * (2 if family.startswith("cors") else 1)
    m, _elapsed = _bounded(lambda: FAMILIES[family](url, surl), bound)
    if kind == "slow-byte":
        # the server kept sending: only the overall deadline can have stopped the probe
        assert "deadline" in (m.error or ""), m.error
        assert "gave up after" in (m.error or "")
    assert m.evidence.duration_s is not None and m.evidence.duration_s < bound + SLACK_S


def test_a_rate_limit_burst_is_bounded_per_request(hostile: tuple[str, HostileServer, HostileServer]) -> None:
    _kind, plain, _ = hostile
    m, _ = _bounded(lambda: auth.burst(f"http://127.0.0.1:{plain.port}/", count=4, concurrency=4,
                                       timeout_s=TIMEOUT_S, deadline_s=30), TIMEOUT_S)
    assert "no request of the burst was answered" in (m.error or "")


def test_sslyze_scan_is_killed_at_its_deadline(hostile: tuple[str, HostileServer, HostileServer]) -> None:
    kind, _, tls = hostile
    ep = tls_probe.endpoint_from(f"127.0.0.1:{tls.port}")
    deadline = 8.0
    started = time.monotonic()
    scans = tls_probe._scan_bounded((ep,), 5, deadline)
    elapsed = time.monotonic() - started
    s = scans[ep.key]
    assert s.error is not None
    assert elapsed < deadline + SLACK_S + 2, f"{elapsed:.1f} s"
    if kind == "slow-byte":
        assert f"did not finish within the {deadline:g} s deadline" in s.error
        assert "gave up after" in s.error
    # every TLS check built on the scan is an error, never a pass
    m = tls_probe.protocols_offered(s, ["TLS 1.0"])
    assert m.error is not None


def test_a_healthy_server_still_answers_inside_the_deadline() -> None:
    """The bound does not break the ordinary case: a quick server answers normally."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        m = ports.http_answers(f"http://127.0.0.1:{port}/", timeout_s=TIMEOUT_S)
    finally:
        srv.close()
    assert m.error is None and m.value == 204
