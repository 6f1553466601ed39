"""The DocuSnap-Backend stand-in: a small WSGI application (standard library only) that
Debian's gunicorn serves, as the DocuSnap document's "Flask application + Gunicorn" layer.

It is copied into the lab's ``app/`` folder (the deployed checkout) and run there with
``gunicorn -w 2 -b 127.0.0.1:<port> docusnap_app:app``.  It reads its settings from the
environment, as the document's "configure environment variables" step says:

- ``DOCUSNAP_DB``: the SQLite database; ``DOCUSNAP_FILES``: the document store (a folder);
- ``DOCUSNAP_OCR_URL``: the internal OCR service; ``DOCUSNAP_VERSION``: the release;
- ``ZHIPU_API_KEY``: the LLM key (never used: no network exists in the lab; it must only be set);
- ``DOCUSNAP_CORS_ORIGIN``: unused by the app (nginx answers CORS).

Endpoints: ``GET /health``, ``GET /version``, ``GET /openapi.json``, ``POST /api/documents``
(JSON ``{"name": str, "content": str}``: stored in the files folder, OCR'd by the OCR
service, recorded in SQLite; 201 ``{"id", "name", "text"}``), ``GET /api/documents/{id}``.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
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
    try:
        text = _ocr(content)
    except OSError as exc:
        return _json(start_response, "502 Bad Gateway", {"error": f"OCR service unavailable: {exc.__class__.__name__}"})
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
    """The WSGI entry point gunicorn serves."""
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
    try:
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
    except Exception:  # noqa: BLE001 - a generic answer: no traceback leaves the service (debug off)
        return _json(start_response, "500 Internal Server Error", {"error": "internal error"})
