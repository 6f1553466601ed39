"""BIO of the Oz Compose lab: the inference service (Oz's TFSS) as a stand-in with a known
capacity, standard library only (it runs on the lab image's Debian Python).

Run as ``python3 oz_bio.py --port 8080 --name bio-1 --cost-ms 50 [--analysis-ms 0]``.

``POST /v1/analyze`` is one analysis: ``cost_ms`` of CPU burnt by :func:`lab.analysis.burn_cpu`
(the reference lab's inference logic, :mod:`lab.inference`), and -- when ``analysis_ms`` is
longer -- the rest of ``analysis_ms`` spent waiting, as a model waiting on its accelerator or
storage would.  Analyses run one at a time (one lock), so the capacity is exactly
``60000 / max(cost_ms, analysis_ms)`` APM per instance on an idle core: the lab sets the
APM it sustains.  ``GET /health`` answers while an analysis runs.  Nothing from requests
is logged.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:  # in the repository
    from lab.analysis import burn_cpu
except ImportError:  # in the container: lab/analysis.py is copied next to this file
    from analysis import burn_cpu  # type: ignore[no-redef]


class Bio:
    """One BIO instance: its name, the analysis cost and the one-at-a-time lock."""

    def __init__(self, name: str, cost_ms: float, analysis_ms: float = 0.0) -> None:
        if cost_ms <= 0 or analysis_ms < 0:
            raise ValueError("cost_ms must be positive and analysis_ms not negative")
        self.name = name
        self.cost_ms = cost_ms
        self.analysis_ms = analysis_ms
        self.analyses = 0
        self._lock = threading.Lock()

    def analyze(self, raw: bytes) -> dict[str, Any]:
        with self._lock:
            self.analyses += 1
            started = time.perf_counter()
            seed = hashlib.sha256(raw + self.analyses.to_bytes(8, "big")).digest()
            result = burn_cpu(seed, self.cost_ms)
            rest = self.analysis_ms / 1000.0 - (time.perf_counter() - started)
            if rest > 0:
                time.sleep(rest)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
        return {"status": "ok", "instance": self.name, "result": result, "cost_ms": self.cost_ms,
                "elapsed_ms": round(elapsed_ms, 2)}


def handler(bio: Bio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "oz-bio"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Instance", bio.name)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {"status": "ok", "instance": bio.name})
            elif self.path == "/v1/stats":
                self._json(200, {"instance": bio.name, "analyses": bio.analyses, "cost_ms": bio.cost_ms,
                                 "analysis_ms": bio.analysis_ms})
            else:
                self._json(404, {"status": "error", "error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, 1024 * 1024)) if length else b""
            if self.path != "/v1/analyze":
                self._json(404, {"status": "error", "error": "not found"})
                return
            if raw:
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                if not isinstance(payload, dict):
                    self._json(400, {"status": "error", "instance": bio.name, "error": "body must be a JSON object"})
                    return
            self._json(200, bio.analyze(raw))

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oz_bio.py", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--name", default="bio-1")
    parser.add_argument("--cost-ms", type=float, default=50.0)
    parser.add_argument("--analysis-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    bio = Bio(args.name, args.cost_ms, args.analysis_ms)
    server = ThreadingHTTPServer((args.host, args.port), handler(bio))
    server.daemon_threads = True
    # PID 1 of its container: SIGTERM (docker stop) must end it at once
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"oz-bio {args.name} on :{args.port} cost_ms={args.cost_ms} analysis_ms={args.analysis_ms}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
