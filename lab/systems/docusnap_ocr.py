"""The DocuSnap lab's OCR service (the document's "CnOCR service", port 5001, internal only):
``POST /ocr`` with the document's bytes answers ``{"text": ...}`` -- the "recognised" text
is the printable content upper-cased, which is enough to show the request went through;
``GET /health``; ``GET /metrics`` (Prometheus text: requests by status and their duration,
OCR tasks waiting and their processing time).  Run as ``python -m lab.systems.docusnap_ocr --host H --port P --pidfile F``.
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[int, int] = {200: 0}
        self.duration = [0, 0.0]
        self.queue = 0
        self.tasks = [0, 0.0]

    def render(self) -> str:
        with self.lock:
            lines = ["# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{code="{c}"}} {n}' for c, n in sorted(self.requests.items())]
            lines += ["# TYPE http_request_duration_seconds summary",
                      f"http_request_duration_seconds_count {self.duration[0]}",
                      f"http_request_duration_seconds_sum {self.duration[1]:.6f}",
                      "# TYPE task_queue_length gauge", f"task_queue_length {self.queue}",
                      "# TYPE task_processing_seconds summary", f"task_processing_seconds_count {self.tasks[0]}",
                      f"task_processing_seconds_sum {self.tasks[1]:.6f}"]
        return "\n".join(lines) + "\n"


COUNTERS = Counters()


class Handler(BaseHTTPRequestHandler):
    server_version = "docusnap-ocr/1"

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        if self.path != "/metrics":
            with COUNTERS.lock:
                COUNTERS.requests[code] = COUNTERS.requests.get(code, 0) + 1
                COUNTERS.duration[0] += 1
                COUNTERS.duration[1] += time.monotonic() - getattr(self, "_started", time.monotonic())

    def parse_request(self) -> bool:
        self._started = time.monotonic()
        return super().parse_request()

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            data = COUNTERS.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/ocr":
            self._json(404, {"error": "not found"})
            return
        with COUNTERS.lock:
            COUNTERS.queue += 1
        started = time.monotonic()
        length = min(int(self.headers.get("Content-Length") or 0), 1024 * 1024)
        raw = self.rfile.read(length)
        text = "".join(c for c in raw.decode(errors="replace") if c.isprintable()).upper()
        with COUNTERS.lock:
            COUNTERS.queue -= 1
            COUNTERS.tasks[0] += 1
            COUNTERS.tasks[1] += time.monotonic() - started
        self._json(200, {"text": text[:2000]})

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.systems.docusnap_ocr")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    if args.pidfile:
        Path(args.pidfile).write_text(f"{os.getpid()}\n")

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
