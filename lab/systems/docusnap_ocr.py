"""The DocuSnap lab's OCR service (the document's "CnOCR service", port 5001, internal only):
``POST /ocr`` with the document's bytes answers ``{"text": ...}`` -- the "recognised" text
is the printable content upper-cased, which is enough to show the request went through;
``GET /health``.  Run as ``python -m lab.systems.docusnap_ocr --host H --port P --pidfile F``.
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Handler(BaseHTTPRequestHandler):
    server_version = "docusnap-ocr/1"

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/ocr":
            self._json(404, {"error": "not found"})
            return
        length = min(int(self.headers.get("Content-Length") or 0), 1024 * 1024)
        raw = self.rfile.read(length)
        text = "".join(c for c in raw.decode(errors="replace") if c.isprintable()).upper()
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
