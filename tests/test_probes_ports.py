"""Self-tests of checks/ports.py and hosts.listening_sockets against real sockets.

Traffic goes to loopback only (127.0.0.0/8).
"""
from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.connection import get_host
from checks.hosts import probes as hosts
from checks.ports import probes as ports


def _listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.listen(8)
    return sock


@pytest.fixture
def on_loopback() -> Iterator[int]:
    with _listener("127.0.0.1") as sock:
        yield sock.getsockname()[1]


@pytest.fixture
def on_any() -> Iterator[int]:
    with _listener("0.0.0.0") as sock:
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with _listener("127.0.0.1") as sock:
        return int(sock.getsockname()[1])  # closed again when the with block ends


def test_loopback_listener_reachable_only_on_its_address(on_loopback: int) -> None:
    here = ports.tcp_reachable("127.0.0.1", on_loopback)
    assert here.ok and here.value is True
    assert here.evidence.data["resolved"] == ["127.0.0.1"]
    assert here.evidence.data["attempts"][0]["elapsed_ms"] >= 0
    other = ports.tcp_reachable("127.0.0.2", on_loopback)
    assert other.ok and other.value is False
    assert other.evidence.data["attempts"][0]["state"] == "closed"


def test_wildcard_listener_reachable_on_other_loopback_address(on_any: int) -> None:
    m = ports.tcp_reachable("127.0.0.2", on_any)
    assert m.ok and m.value is True


def test_closed_port_is_not_reachable_and_not_open(closed_port: int) -> None:
    reachable = ports.tcp_reachable("127.0.0.1", closed_port)
    assert reachable.ok and reachable.value is False
    is_open = ports.tcp_open("127.0.0.1", closed_port)
    assert is_open.ok and is_open.value is False
    assert "refused" in is_open.display


def test_tcp_open_true_for_listener(on_loopback: int) -> None:
    m = ports.tcp_open("127.0.0.1", on_loopback)
    assert m.ok and m.value is True and m.evidence.subject == f"127.0.0.1:{on_loopback}"


@pytest.mark.parametrize(("address", "port", "reason"), [
    ("256.1.1.1", 80, "invalid IP address"),
    ("127.0.0.1", 0, "invalid port"),
    ("127.0.0.1", 70000, "invalid port"),
    ("", 80, "empty address"),
])
def test_invalid_address_is_an_error(address: str, port: int, reason: str) -> None:
    for probe in (ports.tcp_reachable, ports.tcp_open):
        m = probe(address, port)
        assert not m.ok and reason in (m.error or "")


@pytest.mark.parametrize(("bind", "expected"), [("127.0.0.1", ["127.0.0.1"]),
                                                ("0.0.0.0", ["0.0.0.0"])])
def test_listening_sockets_reports_bind_address(bind: str, expected: list[str]) -> None:
    host = get_host("local://")
    with _listener(bind) as sock:
        port = sock.getsockname()[1]
        m = hosts.listening_sockets(host, port)
    assert m.ok and m.value == expected
    assert m.evidence.method == "ss -ltnH"
    after = hosts.listening_sockets(host, port)
    assert after.ok and after.value == []


def test_listening_sockets_ipv6_forms() -> None:
    host = get_host("local://")
    dual = socket.socket(socket.AF_INET6)
    v6only = socket.socket(socket.AF_INET6)
    v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    with dual, v6only:
        dual.bind(("::", 0))
        dual.listen()
        v6only.bind(("::1", 0))
        v6only.listen()
        assert hosts.listening_sockets(host, dual.getsockname()[1]).value == ["*"]
        assert hosts.listening_sockets(host, v6only.getsockname()[1]).value == ["::1"]


def test_proc_net_tcp_parser_agrees_with_ss(on_loopback: int, on_any: int) -> None:
    # The fallback for hosts without ss, checked against this kernel's real tables.
    text = "".join(Path(f"/proc/net/{name}").read_text() for name in ("tcp", "tcp6"))
    parsed = hosts.parse_proc_net_tcp(text)
    assert ("127.0.0.1", on_loopback) in parsed
    assert ("0.0.0.0", on_any) in parsed


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204 if self.path == "/empty" else 301)
        self.send_header("Location", "https://127.0.0.1/")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_answers_status_and_evidence(http_port: int) -> None:
    m = ports.http_answers(f"http://127.0.0.1:{http_port}/old", timeout_s=3)
    assert m.ok and m.value == 301
    assert m.evidence.data["server_addr"] == f"127.0.0.1:{http_port}"
    assert m.evidence.data["headers"]["location"] == "https://127.0.0.1/"
    assert ports.http_answers(f"http://127.0.0.1:{http_port}/empty").value == 204


def test_http_answers_errors(closed_port: int) -> None:
    refused = ports.http_answers(f"http://user:hunter2@127.0.0.1:{closed_port}/", timeout_s=2)
    assert not refused.ok and "refused" in (refused.error or "").lower()
    assert "hunter2" not in refused.evidence.subject + refused.evidence.method
    assert not ports.http_answers("ftp://127.0.0.1/").ok


def test_http_answers_timeout_is_bounded() -> None:
    with _listener("127.0.0.1") as sock:  # accepts (backlog) but never answers
        m = ports.http_answers(f"http://127.0.0.1:{sock.getsockname()[1]}/", timeout_s=0.5)
    assert not m.ok and "within the 0.5 s deadline" in (m.error or "")
    assert (m.evidence.duration_s or 0) < 3
