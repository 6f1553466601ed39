"""A tiny internal admin API: the port that must NOT be reachable from outside the host.

Run as ``python -m lab.internal_api --host 127.0.0.1 --port P``.  The compliant lab binds it
to 127.0.0.1; the ``exposed_internal`` variant binds it to 0.0.0.0, which is the whole
difference a reachability check must detect (from 127.0.0.2, the stand-in for the host's
external address).  Endpoints: ``GET /admin/status`` (JSON), ``GET /health``; everything else
is 404.  Standard library only, so it starts in a few tens of milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STARTED = time.time()


class AdminHandler(BaseHTTPRequestHandler):
    """Answers the admin endpoints; logs method, path and status only."""

    server_version = "golive-lab-internal/1"

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        bound = str(self.server.server_address[0])  # type: ignore[index]
        if self.path == "/admin/status":
            self._json(200, {"status": "ok", "service": "internal-api", "bind": bound,
                             "pid": os.getpid(), "uptime_s": round(time.time() - STARTED, 1)})
        elif self.path == "/health":
            self._json(200, {"status": "ok", "service": "internal-api"})
        else:
            self._json(404, {"status": "error", "error": "not found"})

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line's method/path and status: no headers, no bodies.
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.internal_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (127.0.0.1, or 0.0.0.0 when exposed)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((args.host, args.port), AdminHandler)

    def _term(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _term)
    sys.stderr.write(f"internal-api listening on {args.host}:{args.port}\n")
    try:
        server.serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
