"""The open-loop generator's HTTP/1.1 client: one keep-alive connection per
:class:`Connection`, an asyncio ``Protocol`` with llhttp's C parser (``httptools``), each
template's request serialised once (:class:`Prepared`), and no future, task or timer per
request -- the answer arrives as a callback.

Why not aiohttp's client: the generator's goal (issue #16 item 7) is a CPU cost per request
at or below locust's, whose FastHttpUser parses in C.  aiohttp's client session builds a
request object, a response object, a timer context and a task wake-up for every request; at
1,000 req/s over TLS that made golive cost 1.5x locust's CPU per request (benchmarks/
bench_load.py, 2026-12-06).  What this client does per request: one ``transport.write`` of
the prepared bytes, llhttp's callbacks while the answer is parsed, one call back into the
engine.  The event loop is uvloop's when it is installed (its TLS and transports are C),
else asyncio's (:func:`run`).

What it implements, and what it refuses: HTTP/1.1 over TCP or TLS (the SSL context and SNI
name per origin; a pinned address, ``endpoints.resolve``, only changes where the TCP
connection goes), ``Content-Length``, chunked and read-until-close bodies, ``Connection:
close`` (the connection is reopened for the next request), interim 1xx answers (skipped),
HEAD (no body expected), gzip/deflate bodies (decoded when the success rule reads the
body).  No redirects are followed (a 3xx is an answer: the success rule judges it), no
cookies, no proxy from the environment, no pipelining (one request at a time per
connection).  Timeouts are the engine's: a :class:`Connection` carries its deadline and the
engine aborts it when that has passed (``expire``).
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import ssl
import urllib.parse
import zlib
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar, cast

import httptools

try:  # pragma: no cover - depends on the installation
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")

#: The body kept for the success rule: a longer answer is read to its end but only this much is kept.
MAX_KEPT_BODY = 16 * 1024 * 1024
USER_AGENT = "golive-load"


def loop_name() -> str:
    """The event loop :func:`run` uses, for the evidence's tool line."""
    if not use_uvloop():
        return "asyncio"
    from importlib import metadata
    return f"uvloop {metadata.version('uvloop')}"


def client_name() -> str:
    return f"httptools {httptools.__version__} (llhttp), {loop_name()}"


def use_uvloop() -> bool:
    """uvloop when installed, unless GOLIVE_EVENT_LOOP=asyncio (to compare the two)."""
    return uvloop is not None and os.environ.get("GOLIVE_EVENT_LOOP", "uvloop") != "asyncio"


def min_sleep_s(loop: asyncio.AbstractEventLoop) -> float:
    """The shortest sleep worth asking ``loop`` for.  uvloop's timers count whole
    milliseconds from a cached clock: a shorter sleep returns at once (a scheduler would
    spin -- measured: 54-144 wake-ups for one 0.2-0.4 ms wait) and a timer may fire up to
    1 ms early; asyncio's sleep is exact to its clock."""
    return 0.001 if type(loop).__module__.startswith("uvloop") else 0.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in a new event loop (uvloop's when installed), like :func:`asyncio.run`."""
    if use_uvloop():
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


# ----------------------------------------------------------------------------- requests


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a connection goes: scheme, the URL's host and port, the address to connect to
    (the host, or its pinned address) and the TLS context (None for plain HTTP)."""

    scheme: str
    host: str
    port: int
    connect_host: str
    tls: ssl.SSLContext | None = dataclasses.field(compare=False, default=None)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One request template serialised once: its origin, the bytes to write, whether the
    answer has a body (not for HEAD), whether the success rule needs the body, its timeout."""

    origin: Origin
    data: bytes
    timeout_s: float
    head: bool = False
    keep_body: bool = False


def ssl_context(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """The TLS context of an https URL (the system's trust store, or ``ca_file``'s), else None."""
    if urllib.parse.urlsplit(url).scheme != "https":
        return None
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def prepare(url: str, *, method: str = "GET", body: bytes | None = None, headers: Mapping[str, str] | None = None,
            timeout_s: float = 30.0, connect_to: str | None = None, tls: ssl.SSLContext | None = None,
            keep_body: bool = False) -> Prepared:
    """Serialise one request.  ``connect_to``: a pinned address for the URL's host (the Host
    header, SNI and the certificate check keep the name).  ``tls``: the context for https
    (default: :func:`ssl_context` without a CA file).  ValueError for a URL this client
    cannot send (not http/https, no host)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    port = u.port or (443 if u.scheme == "https" else 80)
    if u.scheme == "https" and tls is None:
        tls = ssl_context(url, None)
    origin = Origin(u.scheme, u.hostname, port, connect_to or u.hostname, tls if u.scheme == "https" else None)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    if u.port is not None and u.port != (443 if u.scheme == "https" else 80):
        host += f":{u.port}"
    given = {k.lower() for k in (headers or {})}
    lines = [f"{method.upper()} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in given:
        lines.append("Accept: */*")
    if (u.username or u.password) and "authorization" not in given:
        user = urllib.parse.unquote(u.username or "")
        password = urllib.parse.unquote(u.password or "")
        lines.append("Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    for name, value in (headers or {}).items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} holds a line break")
        if name.lower() != "content-length":
            lines.append(f"{name}: {value}")
    if body is not None or method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    return Prepared(origin, data, timeout_s, head=method.upper() == "HEAD", keep_body=keep_body)


# ----------------------------------------------------------------------------- failures


def connect_error(exc: BaseException) -> str:
    """The failure kind of a connection that could not be opened."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or exc}"
    return f"cannot connect: {type(exc).__name__}: {exc}"[:200]


DISCONNECTED = "server disconnected"


# ----------------------------------------------------------------------------- a connection


#: Called when a request ends: (connection, HTTP status or None, body kept, failure kind or None).
Answered = Callable[["Connection", "int | None", bytes, "str | None"], None]


class _Link(asyncio.Protocol):
    """One transport of a :class:`Connection`.  A connection that is reopened gets a new
    link, so the late ``connection_lost`` of a transport it dropped changes nothing."""

    __slots__ = ("conn", "transport")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        if self.conn.link is self:
            self.conn.feed(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn.link is self:
            self.conn.lost(exc)


class Connection:
    """One keep-alive connection slot; one request at a time.

    :meth:`send` writes a prepared request, opening (or reopening: the server closed it, or
    the request goes to another origin) the connection first when needed; the answer, or
    the failure, goes to ``answered`` exactly once per :meth:`send`.  ``deadline`` (the
    loop's clock) is when the request times out: the engine calls :meth:`expire` then.
    llhttp calls the ``on_*`` methods while :meth:`feed` parses."""

    __slots__ = (
        "answered",
        "busy",
        "chunks",
        "close_after",
        "deadline",
        "encoding",
        "framed",
        "kept",
        "link",
        "loop",
        "opened",
        "opening",
        "origin",
        "parser",
        "request",
        "status",
        "tag",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, answered: Answered) -> None:
        self.answered = answered
        self.loop = loop
        self.link: _Link | None = None
        self.origin: Origin | None = None  # where the open link goes
        self.parser: httptools.HttpResponseParser | None = None
        self.busy = False
        self.deadline = 0.0
        self.status: int | None = None
        self.chunks: list[bytes] = []
        self.kept = 0
        self.framed = False  # the answer has a Content-Length or is chunked
        self.encoding = b""
        self.close_after = False
        self.request: Prepared | None = None
        self.opening: asyncio.Task[None] | None = None
        self.opened = 0  # connections opened (TCP + TLS handshakes) over this object's life
        self.tag: Any = None  # the engine's: which arrival this request is

    # -- the engine's side ----------------------------------------------------

    def send(self, request: Prepared, tag: Any) -> None:
        self.busy = True
        self.tag = tag
        self.request = request
        self.deadline = self.loop.time() + request.timeout_s
        self.status = None
        self.chunks = []
        self.kept = 0
        self.framed = False
        self.encoding = b""
        self.close_after = False
        link = self.link
        if link is not None and link.transport is not None \
                and (self.origin is request.origin or self.origin == request.origin) \
                and not link.transport.is_closing():
            link.transport.write(request.data)
            return
        self._drop()
        self.opening = self.loop.create_task(self._open_and_send(request))

    async def _open_and_send(self, request: Prepared) -> None:
        o = request.origin
        link = self.link = _Link(self)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: link, o.connect_host, o.port, ssl=o.tls,
                                            server_hostname=o.host if o.tls is not None else None),
                timeout=max(0.001, self.deadline - self.loop.time()))
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self.link = None
            self._finish(None, f"timeout after {request.timeout_s:g} s")
            return
        except Exception as exc:
            self.link = None
            self._finish(None, connect_error(exc))
            return
        finally:
            # Only this attempt's own reference: an expired attempt's connection may already
            # be opening again for the next request.
            if self.opening is asyncio.current_task():
                self.opening = None
        self.opened += 1
        if self.link is not link or link.transport is None:  # lost during the handshake
            self._finish(None, DISCONNECTED)
            return
        self.origin = o
        self.parser = httptools.HttpResponseParser(self)
        link.transport.write(request.data)

    def expire(self) -> None:
        """The request's deadline has passed: abort the connection, report a timeout."""
        if not self.busy:
            return
        request = self.request
        if self.opening is not None:
            self.opening.cancel()
            self.opening = None
        self._drop()
        self._finish(None, f"timeout after {request.timeout_s:g} s" if request else "timeout")

    def abort(self) -> None:
        """Close at once, without an answer (the run is over)."""
        if self.opening is not None:
            self.opening.cancel()
            self.opening = None
        self.busy = False
        self._drop()

    def _drop(self) -> None:
        link = self.link
        self.link = None
        self.parser = None
        self.origin = None
        if link is not None and link.transport is not None:
            link.transport.abort()

    def _finish(self, status: int | None, error: str | None) -> None:
        if not self.busy:
            return
        self.busy = False
        body = b"".join(self.chunks) if self.chunks else b""
        self.chunks = []
        if error is None and self.loop.time() > self.deadline and self.request is not None:
            # Answered, but after the deadline: a client with this timeout had given up (the
            # engine's expiry pass runs only every few tens of milliseconds).
            status, error = None, f"timeout after {self.request.timeout_s:g} s"
        if error is None and self.encoding and body and self.request is not None and self.request.keep_body:
            try:
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS if self.encoding == b"gzip" else zlib.MAX_WBITS)
            except zlib.error:
                error = f"body not decodable ({self.encoding.decode('latin-1')})"
        if self.close_after:
            self._drop()
        self.answered(self, status, body, error)

    # -- the current link's events ---------------------------------------------

    def feed(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._drop()
            self._finish(None, f"invalid HTTP answer: {exc}"[:200])
            return
        if self.parser is None and self.link is not None:  # a HEAD answer ended at its headers
            self.parser = httptools.HttpResponseParser(self)

    def lost(self, exc: Exception | None) -> None:
        self.link = None
        self.parser = None
        self.origin = None
        if not self.busy or self.opening is not None:
            return
        if self.status is not None and not self.framed and exc is None:
            self._finish(self.status, None)  # an answer delimited by the end of the connection
        else:
            self._finish(None, DISCONNECTED)

    # -- llhttp's callbacks -------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n == b"content-length" or (n == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True
        elif n == b"content-encoding":
            v = value.strip().lower()
            self.encoding = b"gzip" if v in (b"gzip", b"x-gzip") else b"deflate" if v == b"deflate" else b""
        elif n == b"connection" and b"close" in value.lower():
            self.close_after = True

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.framed = False
            self.close_after = False
            return  # an interim answer: the real one follows
        self.status = status
        if not self.parser.should_keep_alive():
            self.close_after = True
        request = self.request
        if request is not None and request.head:
            self.parser = None  # feed starts a fresh parser for the next answer
            self._finish(status, None)

    def on_body(self, body: bytes) -> None:
        request = self.request
        if request is not None and request.keep_body and self.kept < MAX_KEPT_BODY:
            self.chunks.append(body)
            self.kept += len(body)

    def on_message_complete(self) -> None:
        if self.status is None:
            return  # the end of an interim 1xx answer
        self._finish(self.status, None)


# ----------------------------------------------------------------------------- one request


async def exchange(conn: Connection, request: Prepared) -> tuple[int | None, bytes, str | None]:
    """One request on ``conn``, awaited: (status, body kept, failure kind).  The
    connection's ``answered`` callback is lent to this request and given back; the
    connection stays open for its owner."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[int | None, bytes, str | None]] = loop.create_future()

    def answered(conn: Connection, status: int | None, body: bytes, error: str | None) -> None:
        if not done.done():
            done.set_result((status, body, error))

    owner, conn.answered = conn.answered, answered
    try:
        conn.send(request, None)
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout=request.timeout_s + 0.05)
        except TimeoutError:
            conn.expire()
            return await done
    finally:
        conn.answered = owner


async def fetch(request: Prepared) -> tuple[int | None, bytes, str | None]:
    """One request on a fresh connection, closed afterwards: (status, body kept, failure kind)."""
    conn = Connection(asyncio.get_running_loop(), lambda *_: None)
    try:
        return await exchange(conn, request)
    finally:
        conn.abort()
