"""The lab's release under test: a small JSON API that publishes its OpenAPI document.

Run as ``python -m lab.release_app --port P [--version V] [--break FLAW ...]``.  Standard
library only (it starts in tens of milliseconds).  Endpoints:

- ``GET /openapi.json``: the OpenAPI 3 document of the endpoints below;
- ``GET /version``: ``{"version": V}``;
- ``GET /health``: ``{"status": "ok"}``;
- ``POST /v1/items`` (JSON ``{"name": str, "size": int}``, at most 64 KiB): 201 with
  ``{"id": N, "name": ..., "size": ...}``; 400 / 413 / 422 for malformed, oversized or
  wrong-type input;
- ``GET /v1/items/{item_id}``: the item, 404 when unknown, 422 for a non-integer id;
- ``GET /uploads/{name}``: a stored upload, only with ``Authorization: Bearer lab-upload-token``
  (401 otherwise).

The flaws the broken variants switch on (``--break``): ``crash_on_malformed`` (a body that is
not JSON, or a wrong type, raises: 500), ``debug_pages`` (a 500 shows the Python traceback),
``anonymous_uploads`` (uploads served without authentication), ``smoke_fails`` (a created item
cannot be read back: 404), ``crash_on_get`` (``GET /v1/items/{id}`` raises: 500).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 64 * 1024
UPLOAD_TOKEN = "lab-upload-token"  # a lab fixture, not a secret
FLAWS = ("crash_on_malformed", "debug_pages", "anonymous_uploads", "smoke_fails", "crash_on_get")

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "golive lab release", "version": "0"},
    "paths": {
        "/health": {"get": {"responses": {"200": {"description": "healthy"}}}},
        "/version": {"get": {"responses": {"200": {"description": "the deployed version"}}}},
        "/v1/items": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["name", "size"],
                "properties": {"name": {"type": "string", "maxLength": 100},
                               "size": {"type": "integer", "minimum": 0}}}}}},
            "responses": {"201": {"description": "created"}, "422": {"description": "invalid"}}}},
        "/v1/items/{item_id}": {"get": {
            "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "the item"}, "404": {"description": "unknown"}}}},
    },
}


class ReleaseState:
    def __init__(self, version: str, flaws: set[str]) -> None:
        self.version = version
        self.flaws = flaws
        self.items: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()
        OPENAPI["info"]["version"] = version


class Handler(BaseHTTPRequestHandler):
    server_version = "golive-lab-release/1"
    state: ReleaseState

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _crash(self, exc: BaseException) -> None:
        if "debug_pages" in self.state.flaws:
            page = "<html><title>Internal Server Error</title><pre>" + "".join(
                traceback.format_exception(exc)) + "</pre></html>"
            data = page.encode()
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json(500, {"error": "internal error"})

    def do_GET(self) -> None:
        try:
            self._get()
        except Exception as exc:
            self._crash(exc)

    def do_POST(self) -> None:
        try:
            self._post()
        except Exception as exc:
            self._crash(exc)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/openapi.json":
            self._json(200, OPENAPI)
        elif path == "/version":
            self._json(200, {"version": self.state.version})
        elif path == "/health":
            self._json(200, {"status": "ok"})
        elif path.startswith("/v1/items/"):
            raw = path.rsplit("/", 1)[1]
            if "crash_on_get" in self.state.flaws:
                raise RuntimeError(f"item lookup failed for {raw}")
            if not raw.isdigit():
                self._json(422, {"error": "item_id must be an integer"})
                return
            item = None if "smoke_fails" in self.state.flaws else self.state.items.get(int(raw))
            self._json(200, item) if item else self._json(404, {"error": "unknown item"})
        elif path.startswith("/uploads/"):
            auth = self.headers.get("Authorization", "")
            if "anonymous_uploads" not in self.state.flaws and auth != f"Bearer {UPLOAD_TOKEN}":
                self._json(401, {"error": "authentication required"})
                return
            self._json(200, {"name": path.rsplit("/", 1)[1], "content": "scanned document"})
        else:
            self._json(404, {"error": "not found"})

    def _post(self) -> None:
        if self.path.split("?", 1)[0] != "/v1/items":
            self._json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(413, {"error": f"body over {MAX_BODY} bytes"})
            self.close_connection = True
            return
        raw = self.rfile.read(length)
        crash = "crash_on_malformed" in self.state.flaws
        try:
            body = json.loads(raw)
        except ValueError:
            if crash:
                raise
            self._json(400, {"error": "body is not JSON"})
            return
        if crash:
            name, size = str(body["name"]), int(body["size"])  # KeyError / ValueError / TypeError: 500
        else:
            if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
                    or not isinstance(body.get("size"), int) or isinstance(body.get("size"), bool):
                self._json(422, {"error": "name (string) and size (integer) are required"})
                return
            name, size = body["name"], body["size"]
        with self.state.lock:
            item_id = len(self.state.items) + 1
            self.state.items[item_id] = {"id": item_id, "name": name, "size": size}
        self._json(201, self.state.items[item_id])

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.release_app", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--version", default="1.4.2")
    ap.add_argument("--break", dest="flaws", action="append", default=[], choices=FLAWS)
    args = ap.parse_args(argv)
    Handler.state = ReleaseState(args.version, set(args.flaws))
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
