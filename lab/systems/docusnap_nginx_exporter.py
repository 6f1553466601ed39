"""Prometheus metrics for the DocuSnap lab's nginx, from nginx itself: its JSON access log
(status, ``$request_time``, ``$upstream_response_time`` of each request) read incrementally
at each scrape, and ``stub_status`` (connections reading, writing, waiting) on a loopback
status port.  Run as ``python -m lab.systems.docusnap_nginx_exporter --log F --status URL
--port P``.  Standard library only.

Exported: ``http_requests_total{code}``, ``http_request_duration_seconds_count``/``_sum``,
``nginx_upstream_response_seconds_count``/``_sum`` (time the application took),
``nginx_connections_{active,reading,writing,waiting}``.
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class LogCounters:
    def __init__(self, log: Path, status_url: str) -> None:
        self.log = log
        self.status_url = status_url
        self.offset = 0
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {"200": 0}
        self.duration = [0, 0.0]
        self.upstream = [0, 0.0]

    def _read_log(self) -> None:
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # a half-written last line waits for the next scrape
        self.offset += end
        for raw in chunk[:end].splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            code = str(entry.get("status", "0"))
            self.requests[code] = self.requests.get(code, 0) + 1
            self.duration[0] += 1
            self.duration[1] += float(entry.get("request_time") or 0)
            upstream = str(entry.get("upstream_response_time") or "")
            if upstream and upstream != "-":
                self.upstream[0] += 1
                self.upstream[1] += sum(float(x) for x in re.split(r"[,:\s]+", upstream) if x and x != "-")

    def _stub_status(self) -> dict[str, int]:
        with urllib.request.urlopen(self.status_url, timeout=1) as resp:
            text = resp.read().decode()
        out = {"active": int(re.search(r"Active connections:\s*(\d+)", text).group(1))}  # type: ignore[union-attr]
        m = re.search(r"Reading:\s*(\d+)\s*Writing:\s*(\d+)\s*Waiting:\s*(\d+)", text)
        if m:
            out.update(reading=int(m.group(1)), writing=int(m.group(2)), waiting=int(m.group(3)))
        return out

    def render(self) -> str:
        with self.lock:
            self._read_log()
            lines = ["# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{code="{c}"}} {n}' for c, n in sorted(self.requests.items())]
            lines += ["# TYPE http_request_duration_seconds summary",
                      f"http_request_duration_seconds_count {self.duration[0]}",
                      f"http_request_duration_seconds_sum {self.duration[1]:.6f}",
                      "# TYPE nginx_upstream_response_seconds summary",
                      f"nginx_upstream_response_seconds_count {self.upstream[0]}",
                      f"nginx_upstream_response_seconds_sum {self.upstream[1]:.6f}"]
        for name, value in self._stub_status().items():  # an unreachable nginx fails the scrape
            lines += [f"# TYPE nginx_connections_{name} gauge", f"nginx_connections_{name} {value}"]
        return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.systems.docusnap_nginx_exporter")
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--status", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    counters = LogCounters(args.log, args.status)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            try:
                data = counters.render().encode()
            except OSError as exc:
                self.send_error(503, f"nginx stub_status unreachable: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

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
