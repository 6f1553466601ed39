"""The DocuSnap-Backend stand-in: a small WSGI application (standard library only) that
Debian's gunicorn serves, as the DocuSnap document's "Flask application + Gunicorn" layer.

It is copied into the lab's ``app/`` folder (the deployed checkout) and run there with
``gunicorn -w 2 -b 127.0.0.1:<port> docusnap_app:app``.  It reads its settings from the
environment, as the document's "configure environment variables" step says:

- ``DOCUSNAP_DB``: the SQLite database; ``DOCUSNAP_FILES``: the document store (a folder);
- ``DOCUSNAP_OCR_URL``: the internal OCR service; ``DOCUSNAP_VERSION``: the release;
- ``ZHIPU_API_KEY``: the LLM key (never used: no network exists in the lab; it must only be set);
- ``DOCUSNAP_METRICS_DIR``: each worker's counters (one JSON file per worker pid, summed by
  ``GET /metrics`` -- what prometheus_client's multiprocess mode does for gunicorn);
- ``DOCUSNAP_LOG_DIR``: JSON logs ``app.log`` (one line per request) and ``security.log``
  (start-up with the key's presence, rejected input).

Endpoints: ``GET /health``, ``GET /version``, ``GET /openapi.json``, ``POST /api/documents``
(JSON ``{"name": str, "content": str}``: stored in the files folder, OCR'd by the OCR
service, recorded in SQLite; 201 ``{"id", "name", "text"}``), ``GET /api/documents/{id}``,
``GET /metrics`` (Prometheus text: request count and duration by status, the OCR task queue
length and processing time -- the document's "application metrics").
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MAX_BODY = 1024 * 1024
OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "DocuSnap-Backend (golive lab)", "version": "0"},
    "paths": {
        "/health": {"get": {"responses": {"200": {"description": "healthy"}}}},
        "/version": {"get": {"responses": {"200": {"description": "the deployed version"}}}},
        "/api/documents": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["name", "content"],
                "properties": {"name": {"type": "string", "maxLength": 100}, "content": {"type": "string"}}}}}},
            "responses": {"201": {"description": "stored and recognised"}, "422": {"description": "invalid"}}}},
        "/api/documents/{doc_id}": {"get": {
            "parameters": [{"name": "doc_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "the document"}, "404": {"description": "unknown"}}}},
    },
}
_DOC = re.compile(r"^/api/documents/([^/]+)$")
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Metrics:
    """This worker's counters, written to ``<DOCUSNAP_METRICS_DIR>/<pid>.json`` after each
    change; :func:`render_metrics` sums every worker's file."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {"requests": {"200": 0}, "duration_count": 0, "duration_sum": 0.0,
                                     "queue": 0, "task_count": 0, "task_sum": 0.0}
        self.pid = -1

    def _save(self) -> None:
        folder = os.environ.get("DOCUSNAP_METRICS_DIR")
        if not folder:
            return
        self.pid = os.getpid()
        tmp = Path(folder) / f".{self.pid}.tmp"
        tmp.write_text(json.dumps(self.data))
        tmp.replace(Path(folder) / f"{self.pid}.json")

    def request(self, code: int, seconds: float) -> None:
        with self.lock:
            reqs = self.data["requests"]
            reqs[str(code)] = reqs.get(str(code), 0) + 1
            self.data["duration_count"] += 1
            self.data["duration_sum"] += seconds
            self._save()

    def task(self, delta_queue: int, seconds: float | None = None) -> None:
        with self.lock:
            self.data["queue"] += delta_queue
            if seconds is not None:
                self.data["task_count"] += 1
                self.data["task_sum"] += seconds
            self._save()

    def ensure_saved(self) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self._save()


METRICS = Metrics()


def render_metrics(folder: Path) -> str:
    """The Prometheus text exposition of every worker's counters, summed (the queue of a
    worker that is gone is not counted)."""
    reqs: dict[str, int] = {}
    count, total, queue, tasks, task_sum = 0, 0.0, 0, 0, 0.0
    for f in folder.glob("*.json"):
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        for code, n in d["requests"].items():
            reqs[code] = reqs.get(code, 0) + int(n)
        count += int(d["duration_count"])
        total += float(d["duration_sum"])
        tasks += int(d["task_count"])
        task_sum += float(d["task_sum"])
        if Path(f"/proc/{f.stem}").exists():
            queue += int(d["queue"])
    lines = ["# TYPE http_requests_total counter"]
    lines += [f'http_requests_total{{code="{c}"}} {n}' for c, n in sorted(reqs.items())]
    lines += ["# TYPE http_request_duration_seconds summary", f"http_request_duration_seconds_count {count}",
              f"http_request_duration_seconds_sum {total:.6f}", "# TYPE task_queue_length gauge",
              f"task_queue_length {queue}", "# TYPE task_processing_seconds summary",
              f"task_processing_seconds_count {tasks}", f"task_processing_seconds_sum {task_sum:.6f}"]
    return "\n".join(lines) + "\n"


def _log(kind: str, level: str, msg: str, **fields: Any) -> None:
    folder = os.environ.get("DOCUSNAP_LOG_DIR")
    if not folder:
        return
    line = json.dumps({"ts": round(time.time(), 3), "level": level, "logger": f"docusnap.{kind}", "msg": msg,
                       "pid": os.getpid(), **fields})
    with open(Path(folder) / f"{kind}.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _json(start_response: StartResponse, status: str, body: Any) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _db() -> sqlite3.Connection:
    conn = sqlite3.connect(os.environ["DOCUSNAP_DB"], timeout=5)
    conn.execute("CREATE TABLE IF NOT EXISTS documents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "path TEXT NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    return conn


def _ocr(content: bytes) -> str:
    req = urllib.request.Request(os.environ["DOCUSNAP_OCR_URL"].rstrip("/") + "/ocr", data=content, method="POST",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(json.load(resp)["text"])


def _create(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return _json(start_response, "413 Payload Too Large", {"error": "body too large"})
    try:
        doc = json.loads(environ["wsgi.input"].read(length) or b"null")
    except ValueError:
        return _json(start_response, "400 Bad Request", {"error": "body is not JSON"})
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("content"), str):
        return _json(start_response, "422 Unprocessable Entity", {"error": "name and content (strings) are required"})
    name = re.sub(r"[^A-Za-z0-9._-]", "_", doc["name"])[:100] or "document"
    content = doc["content"].encode()
    METRICS.task(+1)
    started = time.monotonic()
    try:
        text = _ocr(content)
    except OSError as exc:
        METRICS.task(-1)
        return _json(start_response, "502 Bad Gateway", {"error": f"OCR service unavailable: {exc.__class__.__name__}"})
    METRICS.task(-1, time.monotonic() - started)
    with _db() as conn:
        cur = conn.execute("INSERT INTO documents (name, path, text) VALUES (?, '', ?)", (name, text))
        doc_id = int(cur.lastrowid or 0)
        path = Path(os.environ["DOCUSNAP_FILES"]) / f"{doc_id:06d}-{name}"
        path.write_bytes(content)
        conn.execute("UPDATE documents SET path = ? WHERE id = ?", (str(path), doc_id))
    return _json(start_response, "201 Created", {"id": doc_id, "name": name, "text": text})


def _read(raw_id: str, start_response: StartResponse) -> Iterable[bytes]:
    if not raw_id.isdigit():
        return _json(start_response, "422 Unprocessable Entity", {"error": "doc_id must be an integer"})
    with _db() as conn:
        row = conn.execute("SELECT id, name, text FROM documents WHERE id = ?", (int(raw_id),)).fetchone()
    if row is None:
        return _json(start_response, "404 Not Found", {"error": "no such document"})
    return _json(start_response, "200 OK", {"id": row[0], "name": row[1], "text": row[2]})


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI entry point gunicorn serves: :func:`route`, counted and logged."""
    METRICS.ensure_saved()
    started = time.monotonic()
    status: list[str] = ["500"]

    def counting(s: str, headers: list[tuple[str, str]]) -> Any:
        status[0] = s.split(" ", 1)[0]
        return start_response(s, headers)

    body = route(environ, counting)
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
    if path != "/metrics":
        elapsed = time.monotonic() - started
        METRICS.request(int(status[0]), elapsed)
        _log("app", "info", "request", method=method, path=path, status=int(status[0]),
             duration_ms=round(elapsed * 1000, 3))
        if status[0] in ("400", "413", "422"):
            _log("security", "warning", "rejected input", method=method, path=path, status=int(status[0]),
                 client=environ.get("HTTP_X_FORWARDED_FOR", environ.get("REMOTE_ADDR", "")))
    return body


def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
    try:
        if path == "/metrics" and method == "GET" and os.environ.get("DOCUSNAP_METRICS_DIR"):
            data = render_metrics(Path(os.environ["DOCUSNAP_METRICS_DIR"])).encode()
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4"),
                                      ("Content-Length", str(len(data)))])
            return [data]
        if path == "/health" and method == "GET":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/version" and method == "GET":
            return _json(start_response, "200 OK", {"version": os.environ.get("DOCUSNAP_VERSION", "unknown")})
        if path == "/openapi.json" and method == "GET":
            doc = dict(OPENAPI, info={**OPENAPI["info"], "version": os.environ.get("DOCUSNAP_VERSION", "0")})
            return _json(start_response, "200 OK", doc)
        if path == "/api/documents" and method == "POST":
            return _create(environ, start_response)
        m = _DOC.match(path)
        if m and method == "GET":
            return _read(m.group(1), start_response)
        return _json(start_response, "404 Not Found", {"error": "not found"})
    except Exception:
        return _json(start_response, "500 Internal Server Error", {"error": "internal error"})

# gunicorn imports the app in each worker (no --preload): its zeroed counters exist from the
# start, and the security log records the start-up and whether the LLM key is present.
METRICS.ensure_saved()
_log("security", "info", "worker started", llm_key_present=bool(os.environ.get("ZHIPU_API_KEY")))
