"""The ALwrity (AI-Writer) backend stand-in: a small FastAPI application that Debian's uvicorn
serves, as the ALwrity document's multi-user "Web server (Nginx/Apache) with WSGI/ASGI" layer
with "PostgreSQL database" and "Redis for caching".

It is copied into the lab's ``app/`` folder (the deployed checkout) and run there with
``/usr/bin/python3 -m uvicorn alwrity_app:app --host 127.0.0.1 --port <port>``.  It reads its
settings from the environment, as the document's "Environment Variables" say ("API keys and
credentials · Database connection strings · Service endpoints · Feature flags"):

- ``ALWRITY_DATABASE_URL``: ``postgresql://ROLE@host:port/db?sslmode=require`` and
  ``ALWRITY_DB_PASSWORD``: the app role's password;
- ``ALWRITY_REDIS_ADDR`` (``host:port``) and ``ALWRITY_REDIS_PASSWORD`` (empty: none);
- ``ALWRITY_VERSION``: the release; ``GEMINI_API_KEY``: the LLM key (never used: there is no
  network in the lab; it must only be set); ``ALWRITY_FILES_TOKEN``: the bearer token that
  reads generated files;
- ``ALWRITY_PIDFILE``: where the process writes its pid once it serves;
- ``ALWRITY_LOG_DIR``: JSON logs ``app.log`` (one line per request) and ``security.log``
  (start-up, refused file reads, rejected input).

Endpoints: ``GET /health`` (PostgreSQL ``SELECT 1`` and Redis ``PING``), ``GET /version``,
``GET /openapi.json`` (FastAPI's own), ``POST /api/content`` (JSON ``{"title", "body"}``:
stored in PostgreSQL, cached in Redis; 201 ``{"id", "title", "words"}``),
``GET /api/content/{id}`` (from Redis, else PostgreSQL), ``GET /files/{name}`` (generated
files: 401 without the bearer token), ``GET /metrics`` (Prometheus text: requests by status,
request duration, user activity and API usage -- the document's "Application Monitoring").

One PostgreSQL connection is held for the process's life (``sslmode=require``: the document's
"Encryption in transit"), guarded by a lock: FastAPI runs these sync handlers in threads.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2
import redis
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

VERSION = os.environ.get("ALWRITY_VERSION", "unknown")
app = FastAPI(title="ALwrity backend (golive lab)", version=VERSION, debug=False, docs_url=None, redoc_url=None)


class ContentIn(BaseModel):
    title: str = Field(..., min_length=1, max_length=200)
    body: str = Field(..., max_length=100_000)


class _Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {"200": 0}
        self.count = 0
        self.total = 0.0
        self.api_calls = 0
        self.users: set[str] = set()

    def observe(self, code: int, seconds: float, path: str, user: str) -> None:
        with self.lock:
            self.requests[str(code)] = self.requests.get(str(code), 0) + 1
            self.count += 1
            self.total += seconds
            if path.startswith("/api/"):
                self.api_calls += 1
                self.users.add(user)

    def render(self) -> str:
        with self.lock:
            lines = ["# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{code="{c}"}} {n}' for c, n in sorted(self.requests.items())]
            lines += ["# TYPE http_request_duration_seconds summary", f"http_request_duration_seconds_count {self.count}",
                      f"http_request_duration_seconds_sum {self.total:.6f}",
                      "# HELP alwrity_active_users distinct clients that called the API since start",
                      "# TYPE alwrity_active_users gauge", f"alwrity_active_users {len(self.users)}",
                      "# HELP alwrity_api_calls_total calls of /api/ endpoints",
                      "# TYPE alwrity_api_calls_total counter", f"alwrity_api_calls_total {self.api_calls}"]
        return "\n".join(lines) + "\n"


METRICS = _Metrics()
_DB_LOCK = threading.Lock()
_db: Any = None


def _log(kind: str, level: str, msg: str, **fields: Any) -> None:
    folder = os.environ.get("ALWRITY_LOG_DIR")
    if not folder:
        return
    line = json.dumps({"ts": round(time.time(), 3), "level": level, "logger": f"alwrity.{kind}", "msg": msg,
                       "pid": os.getpid(), **fields})
    with open(Path(folder) / f"{kind}.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _connect() -> Any:
    return psycopg2.connect(os.environ["ALWRITY_DATABASE_URL"], password=os.environ.get("ALWRITY_DB_PASSWORD", ""),
                            connect_timeout=5, application_name="alwrity-backend")


def _query(sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the held connection (reconnecting once if it broke)."""
    global _db
    with _DB_LOCK:
        for attempt in (1, 2):
            try:
                if _db is None or _db.closed:
                    _db = _connect()
                    _db.autocommit = True
                with _db.cursor() as cur:
                    cur.execute(sql, args)
                    return list(cur.fetchall()) if cur.description else []
            except psycopg2.OperationalError:
                _db = None
                if attempt == 2:
                    raise
    return []


def _redis() -> Any:
    host, _, port = os.environ["ALWRITY_REDIS_ADDR"].rpartition(":")
    return redis.Redis(host=host, port=int(port), password=os.environ.get("ALWRITY_REDIS_PASSWORD") or None,
                       socket_timeout=2, socket_connect_timeout=2)


@app.middleware("http")
async def _count(request: Request, call_next: Any) -> Response:
    started = time.monotonic()
    try:
        response: Response = await call_next(request)
    except Exception:  # debug off: no stack trace reaches the client
        _log("app", "error", "unhandled error", path=request.url.path)
        response = JSONResponse({"error": "internal error"}, status_code=500)
    path = request.url.path
    if path != "/metrics":
        elapsed = time.monotonic() - started
        client = request.headers.get("x-forwarded-for", request.client.host if request.client else "")
        METRICS.observe(response.status_code, elapsed, path, client)
        _log("app", "info", "request", method=request.method, path=path, status=response.status_code,
             duration_ms=round(elapsed * 1000, 3))
        if response.status_code in (400, 401, 403, 413, 422):
            _log("security", "warning", "refused request", method=request.method, path=path,
                 status=response.status_code, client=client)
    return response


@app.get("/health")
def health() -> dict[str, str]:
    try:
        _query("SELECT 1")
        _redis().ping()
    except (psycopg2.Error, redis.RedisError, OSError) as exc:
        raise HTTPException(status_code=503, detail=f"dependency unavailable: {exc.__class__.__name__}") from None
    return {"status": "ok"}


@app.get("/version")
def version() -> dict[str, str]:
    return {"version": VERSION}


@app.get("/metrics", include_in_schema=False)
def metrics() -> PlainTextResponse:
    return PlainTextResponse(METRICS.render(), media_type="text/plain; version=0.0.4")


@app.post("/api/content", status_code=201)
def create_content(item: ContentIn) -> dict[str, Any]:
    words = len(item.body.split())
    [(content_id,)] = _query("INSERT INTO content_items (title, body, words) VALUES (%s, %s, %s) RETURNING id",
                             (item.title, item.body, words))
    doc = {"id": int(content_id), "title": item.title, "words": words}
    with contextlib.suppress(redis.RedisError, OSError):  # the cache is optional: PostgreSQL holds the truth
        _redis().setex(f"content:{content_id}", 300, json.dumps(doc))
    return doc


@app.get("/api/content/{content_id}")
def read_content(content_id: int) -> dict[str, Any]:
    try:
        cached = _redis().get(f"content:{content_id}")
    except (redis.RedisError, OSError):
        cached = None
    if cached:
        return dict(json.loads(cached), cached=True)
    rows = _query("SELECT id, title, words FROM content_items WHERE id = %s", (content_id,))
    if not rows:
        raise HTTPException(status_code=404, detail="no such content")
    return {"id": rows[0][0], "title": rows[0][1], "words": rows[0][2], "cached": False}


@app.get("/files/{name}", include_in_schema=False)
def generated_file(name: str, authorization: str | None = Header(default=None)) -> PlainTextResponse:
    token = os.environ.get("ALWRITY_FILES_TOKEN", "")
    if not token or authorization != f"Bearer {token}":
        raise HTTPException(status_code=401, detail="authentication required")
    rows = _query("SELECT body FROM content_items WHERE title = %s ORDER BY id DESC LIMIT 1", (name,))
    if not rows:
        raise HTTPException(status_code=404, detail="no such file")
    return PlainTextResponse(rows[0][0])


@app.on_event("startup")
def _startup() -> None:
    _query("SELECT 1")  # hold the connection from the start (the document's app tier <-> PostgreSQL)
    pidfile = os.environ.get("ALWRITY_PIDFILE")
    if pidfile:
        Path(pidfile).write_text(f"{os.getpid()}\n")
    _log("security", "info", "started", llm_key_present=bool(os.environ.get("GEMINI_API_KEY")),
         host=socket.gethostname())
