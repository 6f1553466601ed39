"""APP of the Oz Compose lab: the API front app ("receives REST requests, performs
preprocessing, and creates tasks for other API components"), standard library only (it runs
on the lab image's Debian Python).

Run as ``python3 oz_api.py --port 8000 --name api-1`` with ``OZ_BIO_URL``, ``OZ_DB_HOST``,
``OZ_DB_PORT``, ``OZ_REDIS_HOST``, ``OZ_REDIS_PORT`` and ``OZ_REDIS_PASSWORD`` in the
environment (the Compose file passes the password as ``${OZ_REDIS_PASSWORD}`` from .env).

- ``POST /v1/analyze``: one analysis -- the task goes to BIO (``OZ_BIO_URL``/v1/analyze),
  its answer comes back with ``"api": NAME`` added; each completed analysis is counted in
  Redis (``INCR oz:analyses``, the task broker of the document).
- ``GET /health``: 200 ``{"status": "ok"}`` when BIO answers its health check and
  PostgreSQL accepts a TCP connection, else 503 naming what is down.
- ``GET /version``: the API version the lab deploys.

Nothing from requests, and no secret, is logged.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "6.5.0"


def redis_command(host: str, port: int, password: str, *args: str, timeout: float = 2.0) -> bytes:
    """One RESP command (after AUTH when a password is set); returns the raw reply line."""
    def encode(parts: tuple[str, ...]) -> bytes:
        out = f"*{len(parts)}\r\n".encode()
        for p in parts:
            b = p.encode()
            out += f"${len(b)}\r\n".encode() + b + b"\r\n"
        return out

    with socket.create_connection((host, port), timeout=timeout) as sock:
        stream = sock.makefile("rb")
        if password:
            sock.sendall(encode(("AUTH", password)))
            if not stream.readline().startswith(b"+OK"):
                raise OSError("redis refused AUTH")
        sock.sendall(encode(args))
        return stream.readline().strip()


class Api:
    def __init__(self, name: str) -> None:
        self.name = name
        self.bio_url = os.environ.get("OZ_BIO_URL", "http://bio:8080")
        self.db = (os.environ.get("OZ_DB_HOST", "postgres"), int(os.environ.get("OZ_DB_PORT", "5432")))
        self.redis = (os.environ.get("OZ_REDIS_HOST", "redis"), int(os.environ.get("OZ_REDIS_PORT", "6379")))
        self.redis_password = os.environ.get("OZ_REDIS_PASSWORD", "")

    def health(self) -> tuple[int, dict[str, Any]]:
        down = []
        try:
            with urllib.request.urlopen(f"{self.bio_url}/health", timeout=1.0) as resp:
                if resp.status != 200:
                    down.append("bio")
        except (OSError, urllib.error.URLError):
            down.append("bio")
        try:
            socket.create_connection(self.db, timeout=1.0).close()
        except OSError:
            down.append("postgres")
        if down:
            return 503, {"status": "error", "instance": self.name, "down": down}
        return 200, {"status": "ok", "instance": self.name, "version": VERSION}

    def analyze(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(f"{self.bio_url}/v1/analyze", data=raw or b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, body = resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            status, body = exc.code, {"status": "error", "error": f"bio answered {exc.code}"}
        except (OSError, ValueError) as exc:
            return 502, {"status": "error", "instance": self.name, "error": f"bio unreachable: {type(exc).__name__}"}
        if status == 200 and body.get("status") == "ok":
            try:
                redis_command(*self.redis, self.redis_password, "INCR", "oz:analyses")
            except OSError:
                return 503, {"status": "error", "instance": self.name, "error": "task broker (redis) unavailable"}
        return status, {**body, "api": self.name}


def handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "oz-api"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Instance", api.name)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(*api.health())
            elif self.path == "/version":
                self._json(200, {"version": VERSION})
            else:
                self._json(404, {"status": "error", "error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, 1024 * 1024)) if length else b""
            if self.path == "/v1/analyze":
                self._json(*api.analyze(raw))
            else:
                self._json(404, {"status": "error", "error": "not found"})

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oz_api.py", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default="api-1")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), handler(Api(args.name)))
    server.daemon_threads = True
    # PID 1 of its container: SIGTERM (docker stop) must end it at once
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"oz-api {args.name} {VERSION} on :{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
