"""The STRV Similarity Search API stand-in (a real FastAPI app, served by uvicorn) for the
STRV lab (lab/systems/strv.py).  It runs in the lab's ``api`` container as ``main:app`` (the
file is mounted as ``/app/src/main.py``) with Debian's fastapi 0.92 / pydantic 1.x; it also
imports under pydantic 2.

At start it loads the feature store (``FEATURES_PATH``, HDF5: ``features`` N x dimension,
``image_paths``), as the document's API does.  Endpoints:

- ``GET /health`` (no credentials: the Compose healthcheck and load balancers use it);
- ``GET /api/stats``, ``GET /api/images/{index}``, ``POST /api/search`` (cosine top-k over
  the vectors): an API key is required (``X-API-Key`` or ``Authorization: Bearer``; 401
  without), and each key is rate limited (``RATE_LIMIT_RPS`` sustained, ``RATE_LIMIT_BURST``
  allowance; 429 with ``Retry-After`` above it) -- one token bucket per key shared by every
  uvicorn worker through a locked file;
- ``POST /api/extract`` (key, rate limit): the feature vector of a stored image (a seeded
  stand-in for the model: no model ships with the lab), timed as feature extraction;
- ``GET /metrics`` (no credentials; nginx keeps it off the public side): Prometheus text --
  requests by status and their duration, search latency, feature extraction time -- summed
  over the uvicorn workers (one JSON file per worker in ``METRICS_DIR``);
- ``GET /openapi.json`` (FastAPI's).

``STRV_AUTH=off`` turns the key check off (the lab's ``api_no_auth`` variant).  Logs go to
stdout and to ``LOG_DIR/api.log`` (refused keys and rate-limited clients also to
``LOG_DIR/security.log``), rotated by size (``RotatingFileHandler``, 10 MB x 5).  The API
key is never logged.
"""
from __future__ import annotations

import fcntl
import hmac
import json
import logging
import logging.handlers
import os
import time
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

VERSION = "1.0.0"
VECTOR_DIMENSION = int(os.environ.get("VECTOR_DIMENSION", "2048"))
FEATURES_PATH = os.environ.get("FEATURES_PATH", "/app/models/features.h5")
IMAGE_ROOT = os.environ.get("IMAGE_ROOT", "/app")
LOG_DIR = os.environ.get("LOG_DIR", "/app/logs")
AUTH_ON = os.environ.get("STRV_AUTH", "on") != "off"
RATE_RPS = float(os.environ.get("RATE_LIMIT_RPS", "5"))
RATE_BURST = int(os.environ.get("RATE_LIMIT_BURST", "10"))
BUCKETS = os.environ.get("RATE_LIMIT_FILE", "/tmp/strv-rate-limit.json")
METRICS_DIR = os.environ.get("METRICS_DIR", "/tmp/strv-metrics")
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _logger(name: str, filename: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.StreamHandler())
        try:
            os.makedirs(LOG_DIR, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(os.path.join(LOG_DIR, filename),
                                                           maxBytes=10 * 2**20, backupCount=5)
            handler.setFormatter(logging.Formatter(FORMAT))
            log.addHandler(handler)
        except OSError as exc:  # a read-only or missing logs mount: stdout only, said once
            log.warning("no log file in %s: %s", LOG_DIR, exc)
    return log


LOG = _logger("strv", "api.log")
SECURITY = _logger("strv.security", "security.log")

# ----------------------------------------------------------------------------- metrics
# One JSON file per worker process; /metrics sums them (what prometheus_client's
# multiprocess mode does, in a few lines: the image has no prometheus_client).
_COUNTS: dict[str, float] = {}


def _observe(name: str, value: float, labels: str = "") -> None:
    key = f"{name}{{{labels}}}" if labels else name
    _COUNTS[f"{key}|count"] = _COUNTS.get(f"{key}|count", 0.0) + 1
    _COUNTS[f"{key}|sum"] = _COUNTS.get(f"{key}|sum", 0.0) + value
    try:
        os.makedirs(METRICS_DIR, exist_ok=True)
        tmp = os.path.join(METRICS_DIR, f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(_COUNTS, fh)
        os.replace(tmp, os.path.join(METRICS_DIR, f"{os.getpid()}.json"))
    except OSError as exc:
        LOG.warning("metrics not written: %s", exc)


def render_metrics() -> str:
    total: dict[str, float] = {}
    try:
        names = [n for n in os.listdir(METRICS_DIR) if n.endswith(".json")]
    except OSError:
        names = []
    for name in names:
        try:
            with open(os.path.join(METRICS_DIR, name), encoding="utf-8") as fh:
                for k, v in json.load(fh).items():
                    total[k] = total.get(k, 0.0) + float(v)
        except (OSError, ValueError):
            continue
    # every family present from the start (zero), so its series exist before the first request
    for base in ("strv_search_latency_seconds", "strv_feature_extraction_seconds"):
        for part in ("count", "sum"):
            total.setdefault(f"{base}|{part}", 0.0)
    for code in ("200", "401", "429", "500"):
        for part in ("count", "sum"):
            total.setdefault(f'http_request_duration_seconds{{code="{code}"}}|{part}', 0.0)
    lines = ["# TYPE http_request_duration_seconds summary", "# TYPE http_requests_total counter",
             "# TYPE strv_search_latency_seconds summary", "# TYPE strv_feature_extraction_seconds summary"]
    for k in sorted(total):
        key, part = k.rsplit("|", 1)
        base, _, labels = key.partition("{")
        labels = "{" + labels if labels else ""
        lines.append(f"{base}_{part}{labels} {total[k]:g}")
        if base == "http_request_duration_seconds" and part == "count":
            lines.append(f"http_requests_total{labels} {total[k]:g}")
    return "\n".join(lines) + "\n"


def _load() -> dict[str, Any]:
    """The feature store as the API serves it; a file it cannot use leaves the API up with
    ``ok: False`` (health says why) -- the checks, not a crash loop, report it."""
    try:
        import h5py
        import numpy as np

        with h5py.File(FEATURES_PATH, "r") as f:
            vectors = np.asarray(f["features"][...], dtype=np.float32)
            paths = [p.decode() if isinstance(p, bytes) else str(p) for p in f["image_paths"][...]]
    except Exception as exc:  # any unreadable store: reported on /health, the API stays up
        LOG.error("feature store %s unusable: %s", FEATURES_PATH, exc)
        return {"ok": False, "error": str(exc), "vectors": None, "paths": [], "dimension": None}
    dim = int(vectors.shape[1]) if vectors.ndim == 2 else None
    if dim != VECTOR_DIMENSION:
        LOG.error("feature store dimension %s differs from VECTOR_DIMENSION %s", dim, VECTOR_DIMENSION)
    LOG.info("feature store loaded: %d images, dimension %s", len(paths), dim)
    return {"ok": dim == VECTOR_DIMENSION, "error": None if dim == VECTOR_DIMENSION else "dimension mismatch",
            "vectors": vectors, "paths": paths, "dimension": dim}


STORE = _load()
app = FastAPI(title="STRV Similarity Search API (golive lab stand-in)", version=VERSION)


@app.middleware("http")
async def measure(request: Request, call_next: Any) -> Any:
    started = time.perf_counter()
    response = await call_next(request)
    if request.url.path != "/metrics":
        _observe("http_request_duration_seconds", time.perf_counter() - started, f'code="{response.status_code}"')
    return response


def _key_of(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if key is None and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key


def _take_token(client: str) -> float:
    """Token bucket per client, shared by the workers (one locked JSON file).  Returns 0 when
    the request may go on, else the seconds until a token is back."""
    now = time.monotonic()
    with open(BUCKETS, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        try:
            state = json.loads(fh.read() or "{}")
        except ValueError:
            state = {}
        tokens, last = state.get(client, [RATE_BURST + 1.0, now])
        tokens = min(RATE_BURST + 1.0, tokens + (now - last) * RATE_RPS)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / RATE_RPS
        state[client] = [tokens, now]
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(state))
    return wait


def guarded(request: Request) -> None:
    """API key, then the client's rate limit (the key's, or the address's without auth)."""
    key = _key_of(request)
    if AUTH_ON:
        expected = os.environ.get("STRV_API_KEY", "")
        if not expected or key is None or not hmac.compare_digest(key.encode(), expected.encode()):
            SECURITY.warning("refused %s %s from %s: %s API key", request.method, request.url.path,
                             request.client.host if request.client else "?", "no" if key is None else "a wrong")
            raise HTTPException(status_code=401, detail="missing or invalid API key",
                                headers={"WWW-Authenticate": "Bearer"})
    client = "key" if AUTH_ON else (request.client.host if request.client else "?")
    wait = _take_token(client)
    if wait > 0:
        SECURITY.warning("rate limited %s %s (%s)", request.method, request.url.path, client)
        raise HTTPException(status_code=429, detail="rate limit exceeded",
                            headers={"Retry-After": str(max(1, round(wait)))})


class ExtractRequest(BaseModel):
    index: int = Field(..., ge=0, description="a stored image's index")


class SearchRequest(BaseModel):
    vector: list[float] = Field(..., description="a query vector of VECTOR_DIMENSION floats")
    top_k: int = Field(5, ge=1, le=50)


@app.get("/health")
def health() -> JSONResponse:
    body = {"status": "ok", "version": VERSION, "images": len(STORE["paths"]),
            "dimension": STORE["dimension"], "vector_dimension": VECTOR_DIMENSION}
    return JSONResponse(body)


@app.get("/metrics", include_in_schema=False)
def metrics() -> PlainTextResponse:
    return PlainTextResponse(render_metrics(), media_type="text/plain; version=0.0.4")


@app.get("/api/stats", dependencies=[Depends(guarded)])
def stats() -> dict[str, Any]:
    return {"images": len(STORE["paths"]), "dimension": STORE["dimension"], "store_ok": STORE["ok"]}


@app.get("/api/images/{index}", dependencies=[Depends(guarded)])
def image(index: int) -> dict[str, Any]:
    if not 0 <= index < len(STORE["paths"]):
        raise HTTPException(status_code=404, detail="no such image")
    path = STORE["paths"][index]
    full = path if os.path.isabs(path) else os.path.join(IMAGE_ROOT, path)
    return {"index": index, "path": path, "exists": os.path.isfile(full)}


@app.post("/api/search", dependencies=[Depends(guarded)])
def search(body: SearchRequest) -> dict[str, Any]:
    import numpy as np

    if not STORE["ok"]:
        raise HTTPException(status_code=503, detail=f"feature store unusable: {STORE['error']}")
    if len(body.vector) != VECTOR_DIMENSION:
        raise HTTPException(status_code=422, detail=f"vector must have {VECTOR_DIMENSION} values")
    started = time.perf_counter()
    q = np.asarray(body.vector, dtype=np.float32)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm == 0.0:
        raise HTTPException(status_code=422, detail="vector must be finite and non-zero")
    scores = STORE["vectors"] @ (q / norm)
    top = np.argsort(-scores)[: body.top_k]
    _observe("strv_search_latency_seconds", time.perf_counter() - started)
    return {"results": [{"index": int(i), "path": STORE["paths"][int(i)], "score": round(float(scores[i]), 6)}
                        for i in top]}


@app.post("/api/extract", dependencies=[Depends(guarded)])
def extract(body: ExtractRequest) -> dict[str, Any]:
    """The stored image's feature vector: read the file, derive a vector from its bytes (the
    lab has no model), timed as feature extraction."""
    import hashlib

    import numpy as np

    if body.index >= len(STORE["paths"]):
        raise HTTPException(status_code=404, detail="no such image")
    started = time.perf_counter()
    path = STORE["paths"][body.index]
    full = path if os.path.isabs(path) else os.path.join(IMAGE_ROOT, path)
    try:
        with open(full, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise HTTPException(status_code=404, detail=f"image not readable: {exc.strerror}") from None
    seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    vec = np.random.default_rng(seed).standard_normal(VECTOR_DIMENSION).astype(np.float32)
    vec /= np.linalg.norm(vec)
    _observe("strv_feature_extraction_seconds", time.perf_counter() - started)
    return {"index": body.index, "path": path, "dimension": VECTOR_DIMENSION, "vector_head": vec[:4].tolist()}
