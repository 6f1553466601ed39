"""Overall deadlines for network probes, enforced even when a library blocks.

A library's timeout is usually *per operation*: httpx's ``timeout=5`` bounds each read, so
a server that dribbles one byte per second keeps a request alive for ever.  A probe must
end within its bound, whatever the peer does (requirements: could-not-verify is ``error``
within a bounded time).  Two tools here:

- :func:`http_client` -- an ``httpx.Client`` whose every socket operation gets at most the
  time left to the deadline, and whose sockets are shut down by a watchdog timer when the
  deadline passes (that wakes a ``recv`` or a TLS handshake blocked inside the library).
- :class:`Deadline` -- the bound itself: elapsed and remaining time, and the error text
  ("no complete answer within 5 s (gave up after 5.01 s)").

Processes that cannot be interrupted from inside (sslyze's scanner) are bounded by running
them in a child process that is killed at the deadline (``checks/tls.py``).
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

import httpcore
import httpx


class Deadline:
    """A bound on the whole of one probe: connect, TLS handshake and the complete answer."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.started = time.monotonic()
        self.fired = False  # set by the watchdog when it shut the sockets down

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.seconds - self.elapsed

    @property
    def expired(self) -> bool:
        return self.fired or self.remaining() <= 0

    def message(self, what: str = "no complete answer") -> str:
        return f"{what} within the {self.seconds:g} s deadline (gave up after {self.elapsed:.2f} s)"


class _Watchdog:
    """Shuts down every socket it guards when the deadline passes, so a call blocked in
    ``recv``/``send``/a handshake returns at once."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(max(0.0, deadline.remaining()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def guard(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            late = self.deadline.fired
        if late:
            self._shutdown(sock)

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            if sock in self._socks:
                self._socks.remove(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            if sock.fileno() != -1:
                # the plain socket's shutdown(2), also for an SSLSocket (whose own
                # shutdown() would tear down the TLS object under the reading thread)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def _fire(self) -> None:
        with self._lock:
            self.deadline.fired = True
            for sock in self._socks:
                self._shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


class _Stream(httpcore.NetworkStream):
    """A network stream whose operations never wait past the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, watchdog: _Watchdog) -> None:
        self._inner = inner
        self._watchdog = watchdog
        self._sock: socket.socket | None = inner.get_extra_info("socket")
        if self._sock is not None:
            watchdog.guard(self._sock)

    def _left(self, timeout: float | None, exc: type[Exception]) -> float:
        left = self._watchdog.deadline.remaining()
        if left <= 0 or self._watchdog.deadline.fired:
            raise exc(self._watchdog.deadline.message())
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        if self._sock is not None:
            self._watchdog.forget(self._sock)
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        left = self._left(timeout, httpcore.ConnectTimeout)
        if self._sock is not None:
            self._watchdog.forget(self._sock)  # wrap_socket detaches it; the TLS socket is guarded next
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, left), self._watchdog)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, watchdog: _Watchdog) -> None:
        self._inner = httpcore.SyncBackend()
        self._watchdog = watchdog

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        left = self._watchdog.deadline.remaining()
        if left <= 0:
            raise httpcore.ConnectTimeout(self._watchdog.deadline.message())
        inner = self._inner.connect_tcp(host, port, left if timeout is None else min(timeout, left),
                                        local_address, socket_options)
        return _Stream(inner, self._watchdog)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options), self._watchdog)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineClient(httpx.Client):
    """An ``httpx.Client`` bounded as a whole by ``deadline`` (see the module docstring)."""

    def __init__(self, deadline: Deadline, **kwargs: Any) -> None:
        verify = kwargs.pop("verify", True)
        transport = httpx.HTTPTransport(verify=verify, trust_env=False)
        self.watchdog = _Watchdog(deadline)
        transport._pool._network_backend = _Backend(self.watchdog)
        self.deadline = deadline
        super().__init__(transport=transport, trust_env=False, **kwargs)

    def close(self) -> None:
        self.watchdog.cancel()
        super().close()


def http_client(deadline_s: float, *, verify: ssl.SSLContext | bool = True, timeout_s: float | None = None,
                follow_redirects: bool = False) -> DeadlineClient:
    """A client whose requests each end within ``deadline_s`` in total (one client per probe:
    the deadline starts now).  ``timeout_s`` still bounds each operation (default: the
    deadline)."""
    return DeadlineClient(Deadline(deadline_s), verify=verify, timeout=timeout_s or deadline_s,
                          follow_redirects=follow_redirects)
