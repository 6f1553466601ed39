"""The lab's reference inference service: real CPU work with a known capacity.

Run as ``python -m lab.inference --host 127.0.0.1 --port P --cost-ms 50 --name app-1
[--mode ok|error-body|fail-5pct]``.

``POST /v1/analyze`` burns ``cost_ms`` of CPU time (a SHA-256 chain, measured with the
worker thread's own CPU clock so a busy machine makes requests slower, never cheaper) and
answers ``{"status": "ok", "instance": NAME, "result": HEX, "cost_ms": N}``.  Analyses run
one at a time per instance (one worker thread) so the capacity is exactly
``1000 / cost_ms`` analyses per second per instance on an otherwise idle core; the event loop
stays free, so ``GET /health`` answers while an analysis is running.

Modes (the broken lab variants): ``error-body`` answers 200 with ``{"status": "error"}``
(a service that "succeeds" at HTTP level but fails the analysis); ``fail-5pct`` answers 500
for every 20th analysis an instance handles (5 % overall, however nginx spreads the load).  Nothing from requests (bodies, headers) is logged.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import json
import logging
import sys
import time
from typing import Any

from aiohttp import web

from lab.analysis import burn_cpu

MODES = ("ok", "error-body", "fail-5pct")
FAIL_EVERY = 20  # fail-5pct: every 20th analysis is a 500

log = logging.getLogger("lab.inference")


class InferenceService:
    """State of one instance: its name, cost, mode, the serial worker and a counter."""

    def __init__(self, name: str, cost_ms: float, mode: str = "ok") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if cost_ms <= 0:
            raise ValueError("cost_ms must be positive")
        self.name = name
        self.cost_ms = cost_ms
        self.mode = mode
        self.started = time.time()
        self.analyses = 0
        # One worker thread = one analysis at a time: the capacity is known.
        self.worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"analyze-{name}"
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "instance": self.name}, headers={"X-Instance": self.name}
        )

    async def analyze(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if raw:
            try:
                payload: Any = json.loads(raw)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return web.json_response(
                    {"status": "error", "instance": self.name, "error": "body must be a JSON object"},
                    status=400,
                    headers={"X-Instance": self.name},
                )
        self.analyses += 1
        number = self.analyses
        seed = hashlib.sha256(raw + number.to_bytes(8, "big")).digest()
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        result = await loop.run_in_executor(self.worker, burn_cpu, seed, self.cost_ms)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        headers = {"X-Instance": self.name}
        if self.mode == "fail-5pct" and number % FAIL_EVERY == 0:
            return web.json_response(
                {"status": "error", "instance": self.name, "error": "internal error (injected)"},
                status=500,
                headers=headers,
            )
        if self.mode == "error-body":
            return web.json_response(
                {"status": "error", "instance": self.name, "error": "analysis failed (injected)",
                 "cost_ms": self.cost_ms},
                headers=headers,
            )
        return web.json_response(
            {"status": "ok", "instance": self.name, "result": result, "cost_ms": self.cost_ms,
             "elapsed_ms": round(elapsed_ms, 2)},
            headers=headers,
        )

    async def stats(self, request: web.Request) -> web.Response:
        """Counters for debugging (no request data)."""
        return web.json_response(
            {"instance": self.name, "analyses": self.analyses, "cost_ms": self.cost_ms,
             "mode": self.mode, "uptime_s": round(time.time() - self.started, 1)}
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_post("/v1/analyze", self.analyze)
        app.router.add_get("/v1/stats", self.stats)

        async def _shutdown(_: web.Application) -> None:
            self.worker.shutdown(wait=False, cancel_futures=True)

        app.on_shutdown.append(_shutdown)
        return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.inference", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cost-ms", type=float, default=50.0)
    parser.add_argument("--name", default="app-1")
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--access-log", action="store_true",
                        help="log one line per request (method, path, status; no bodies or headers)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    service = InferenceService(args.name, args.cost_ms, args.mode)
    log.info("instance %s on %s:%d cost_ms=%s mode=%s", args.name, args.host, args.port,
             args.cost_ms, args.mode)
    access_kwargs: dict[str, Any] = (
        {"access_log_format": '%a "%r" %s %b %Tf'} if args.access_log else {"access_log": None}
    )
    web.run_app(service.app(), host=args.host, port=args.port, print=None,
                shutdown_timeout=1.0, **access_kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
