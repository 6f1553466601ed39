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
- ``GET /openapi.json`` (FastAPI's).

``STRV_AUTH=off`` turns the key check off (the lab's ``api_no_auth`` variant).  Logs go to
stdout and to ``LOG_DIR/api.log``, rotated by size (``RotatingFileHandler``, 10 MB x 5).
The API key is never logged.
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
from fastapi.responses import JSONResponse
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


def _logger() -> logging.Logger:
    log = logging.getLogger("strv")
    log.setLevel(logging.INFO)
    if not log.handlers:
        log.addHandler(logging.StreamHandler())
        try:
            os.makedirs(LOG_DIR, exist_ok=True)
            log.addHandler(logging.handlers.RotatingFileHandler(os.path.join(LOG_DIR, "api.log"),
                                                                maxBytes=10 * 2**20, backupCount=5))
        except OSError as exc:  # a read-only or missing logs mount: stdout only, said once
            log.warning("no log file in %s: %s", LOG_DIR, exc)
    return log


LOG = _logger()


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
            raise HTTPException(status_code=401, detail="missing or invalid API key",
                                headers={"WWW-Authenticate": "Bearer"})
    client = "key" if AUTH_ON else (request.client.host if request.client else "?")
    wait = _take_token(client)
    if wait > 0:
        raise HTTPException(status_code=429, detail="rate limit exceeded",
                            headers={"Retry-After": str(max(1, round(wait)))})


class SearchRequest(BaseModel):
    vector: list[float] = Field(..., description="a query vector of VECTOR_DIMENSION floats")
    top_k: int = Field(5, ge=1, le=50)


@app.get("/health")
def health() -> JSONResponse:
    body = {"status": "ok", "version": VERSION, "images": len(STORE["paths"]),
            "dimension": STORE["dimension"], "vector_dimension": VECTOR_DIMENSION}
    return JSONResponse(body)


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
    q = np.asarray(body.vector, dtype=np.float32)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm == 0.0:
        raise HTTPException(status_code=422, detail="vector must be finite and non-zero")
    scores = STORE["vectors"] @ (q / norm)
    top = np.argsort(-scores)[: body.top_k]
    return {"results": [{"index": int(i), "path": STORE["paths"][int(i)], "score": round(float(scores[i]), 6)}
                        for i in top]}
