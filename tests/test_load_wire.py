"""The open-loop generator's HTTP/1.1 client (checks/throughput/wire.py) against a real
TCP/TLS server on 127.0.0.1 that answers each path in one of the ways HTTP/1.1 allows --
and in the broken ways a failing service answers.  Each case asserts the status and the
failure kind the engine would record, so a client shortcut (a late answer counted as
a success, a cut body counted as complete) fails here.

The server is a scripted asyncio stream server, not nginx: nginx cannot be told to send a
1xx before its answer, cut a body short or answer garbage.  The engine-level tests
(test_load_generator.py, test_throughput.py, test_ha.py) run the same client against
nginx, haproxy and the lab's services.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from checks.throughput import load, wire

OK = b'{"status": "ok"}'


class ScriptedServer:
    """HTTP/1.1 on 127.0.0.1 (plain or TLS) in its own thread; remembers each request's
    head and the TLS SNI name, and how many connections it accepted."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.heads: list[bytes] = []
        self.sni: list[str | None] = []
        self.accepted = 0
        self.late_calls = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            server.close()
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(5)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.heads.append(head)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = next((int(v) for k, _, v in (x.partition(": ") for x in lines[1:])
                               if k.lower() == "content-length"), 0)
                if length:
                    await reader.readexactly(length)
                if not await self._answer(method, path, writer):
                    return
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, w: asyncio.StreamWriter) -> bool:
        """Write the answer; False: close the connection afterwards."""
        def plain(body: bytes, extra: str = "") -> bytes:
            return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body

        if path == "/ok":
            w.write(plain(OK))
        elif path == "/head" and method == "HEAD":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")  # no body follows a HEAD answer
        elif path == "/chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (OK[:5], OK[5:]):
                w.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            w.write(b"0\r\n\r\n")
        elif path == "/until-close":
            w.write(b"HTTP/1.1 200 OK\r\n\r\n" + OK)
            await w.drain()
            return False
        elif path == "/close":
            w.write(plain(OK, "Connection: close\r\n"))
            await w.drain()
            return False
        elif path == "/gzip":
            w.write(plain(gzip.compress(OK), "Content-Encoding: gzip\r\n"))
        elif path == "/continue":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + plain(OK))
        elif path == "/late" or (path == "/late-after-first" and self.late_calls > 0):
            await asyncio.sleep(0.35)
            w.write(plain(OK))
        elif path == "/late-after-first":  # the engine's preflight is answered at once
            self.late_calls += 1
            w.write(plain(OK))
        elif path == "/hang":
            await asyncio.sleep(5)
        elif path == "/cut":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + OK)
            await w.drain()
            return False
        elif path == "/garbage":
            w.write(b"SPDY/9 what\r\n\r\n")
        elif path == "/error-body":
            w.write(plain(b'{"status": "error"}'))
        elif path == "/503":
            w.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        else:
            w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        return True


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[ScriptedServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("inference.golive.test").configure_cert(ctx)
    s = ScriptedServer(ctx)
    yield s
    s.close()


def fetch(url: str, **kw: Any) -> tuple[int | None, bytes, str | None]:
    kw.setdefault("keep_body", True)
    kw.setdefault("timeout_s", 2.0)
    return wire.run(wire.fetch(wire.prepare(url, **kw)))


@pytest.mark.parametrize("path", ["/ok", "/chunked", "/until-close", "/close", "/gzip", "/continue"])
def test_every_way_of_framing_an_answer_is_read_whole(server: ScriptedServer, path: str) -> None:
    status, body, error = fetch(server.url(path))
    assert (status, body, error) == (200, OK, None)


def test_a_head_answer_ends_at_its_headers(server: ScriptedServer) -> None:
    assert fetch(server.url("/head"), method="HEAD") == (200, b"", None)


@pytest.mark.parametrize(("path", "kind"), [
    ("/cut", wire.DISCONNECTED),                 # a body shorter than its Content-Length
    ("/garbage", "invalid HTTP answer"),         # not HTTP at all
    ("/late", "timeout after 0.3 s"),            # answered, but after the deadline
    ("/hang", "timeout after 0.3 s"),            # never answered
])
def test_a_broken_answer_is_a_failure_with_its_kind(server: ScriptedServer, path: str, kind: str) -> None:
    status, _, error = fetch(server.url(path), timeout_s=0.3)
    assert status is None and error is not None and error.startswith(kind), error


def test_an_unreachable_port_cannot_connect() -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        status, _, error = fetch(f"http://127.0.0.1:{port}/")
    assert status is None and error is not None and error.startswith("cannot connect"), error


def test_the_request_carries_host_agent_length_and_the_given_headers(server: ScriptedServer) -> None:
    fetch(server.url("/ok"), method="POST", body=b'{"a": 1}', headers={"Content-Type": "application/json",
                                                                         "Authorization": "Bearer t"})
    head = server.heads[-1].decode()
    assert head.startswith("POST /ok HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head and "User-Agent: golive-load\r\n" in head
    assert "Content-Length: 8\r\n" in head and "Content-Type: application/json\r\n" in head
    assert "Authorization: Bearer t\r\n" in head


def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        wire.prepare("http://127.0.0.1/", headers={"X-A": "1\r\nX-Injected: 2"})


def test_pinned_tls_connects_to_the_address_and_keeps_the_name_for_sni_host_and_certificate(
        tls_server: ScriptedServer, ca: trustme.CA, tmp_path: Any) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = wire.ssl_context("https://x/", str(ca_file))
    url = tls_server.url("/ok", host="inference.golive.test")
    assert fetch(url, connect_to="127.0.0.1", tls=tls) == (200, OK, None)
    assert tls_server.sni[-1] == "inference.golive.test"
    assert f"Host: inference.golive.test:{tls_server.port}\r\n" in tls_server.heads[-1].decode()
    # the same connection without the CA: the certificate is not trusted, nothing is sent
    sent = len(tls_server.heads)
    status, _, error = fetch(url, connect_to="127.0.0.1")
    assert status is None and error is not None and error.startswith("TLS certificate not trusted"), error
    assert len(tls_server.heads) == sent


def test_the_engine_keeps_connections_alive_and_reopens_closed_ones(server: ScriptedServer) -> None:
    """40 requests at 100/s: on /ok a handful of connections carry them all; on /close
    (the server closes after each answer) every request opens its own and still succeeds."""
    plan = load.LoadPlan(rate=100, steady_s=0.4, warmup_s=0, ramp_s=0)
    kept = load.run_load(load.RequestSpec(url=server.url("/ok"), method="GET", success_field="status",
                                          success_value="ok"), plan)
    assert kept.error is None and kept.ok == kept.steady == 40, kept.errors
    assert kept.connections_opened <= 4
    closed = load.run_load(load.RequestSpec(url=server.url("/close"), method="GET"), plan)
    assert closed.error is None and closed.ok == closed.steady == 40, closed.errors
    assert closed.connections_opened >= 40


def test_the_engine_counts_late_answers_as_timeouts_not_successes(server: ScriptedServer) -> None:
    run = load.run_load(load.RequestSpec(url=server.url("/late-after-first"), method="GET", timeout_s=0.3),
                        load.LoadPlan(rate=20, steady_s=0.5, warmup_s=0, ramp_s=0, drain_s=1.0))
    assert run.error is None and run.steady == 10, run.error
    assert run.ok == 0 and run.errors == {"timeout after 0.3 s": 10}, run.errors


def test_the_engine_judges_status_and_body(server: ScriptedServer) -> None:
    plan = load.LoadPlan(rate=50, steady_s=0.2, warmup_s=0, ramp_s=0)
    bad = load.run_load(load.RequestSpec(url=server.url("/503"), method="GET"), plan)
    assert bad.error is None and bad.ok == 0 and bad.errors == {"HTTP 503": 10}
    body = load.run_load(load.RequestSpec(url=server.url("/error-body"), method="GET", success_field="status",
                                          success_value="ok"), plan)
    assert body.ok == 0 and body.errors == {"body status='error'": 10}
    assert json.loads(OK)["status"] == "ok"
