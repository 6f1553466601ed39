"""Authentication and rate-limit probes.

- :func:`anonymous` sends one request without any credentials and reports the status.
- :func:`burst` sends a bounded burst (``count`` requests, at most ``concurrency`` in
  flight, an overall deadline) and counts the statuses; it is disruptive (it loads the
  target and may lock the checking host out of the API for a moment), so the step runs it
  only with ``--allow-disruptive``.
- :func:`credentials` reads the bearer token the target references (``${ENV}`` already
  expanded, or ``token_file``) and registers it for redaction; the token never appears in
  evidence.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from checks.http.probes import TOOL, HttpFailure, failure_reason, route, send, ssl_context
from golive.model import Evidence, Measurement
from golive.redact import redact, register_secret

MAX_BURST = 10000
MAX_CONCURRENCY = 32


class CredentialError(Exception):
    """The target's token could not be read."""


def credentials(token: str | None, token_file: str | None, scheme: str = "Bearer") -> dict[str, str]:
    """``{"Authorization": "<scheme> <token>"}`` from the target's auth section ({} when it
    names no token); the token is registered as a secret."""
    value = token
    if value is None and token_file:
        try:
            value = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CredentialError(f"cannot read token_file {token_file}: {exc.strerror}") from None
    if not value:
        return {}
    register_secret(value)
    return {"Authorization": f"{scheme} {value}"}


def split_path(entry: str) -> tuple[str, str]:
    """``"POST /v1/x"`` -> ("POST", "/v1/x"); ``"/v1/x"`` -> ("GET", "/v1/x")."""
    parts = entry.split(None, 1)
    if len(parts) == 2 and parts[0].isalpha() and parts[0].isupper():
        return parts[0], parts[1].strip()
    return "GET", entry.strip()


def anonymous(url: str, *, method: str = "GET", ca_file: str | None = None, timeout_s: float = 5.0) -> Measurement:
    """Status of one request with no Authorization header and no cookie."""
    started = time.monotonic()

    def evidence(raw: str = "", data: dict[str, Any] | None = None) -> Evidence:
        return Evidence(probe="auth.anonymous", subject=redact(url), tool=TOOL, raw=raw, data=data or {},
                        method=f"{method} {redact(url)} without credentials (no Authorization, no cookies; "
                               f"no redirects, timeout {timeout_s:g} s)",
                        duration_s=round(time.monotonic() - started, 3))

    try:
        ex = send(url, method=method, ca_file=ca_file, timeout_s=timeout_s)
    except HttpFailure as exc:
        return Measurement.failed(str(exc), evidence())
    served = " (served without credentials)" if 200 <= ex.status < 400 else ""
    return Measurement(ex.status, f"HTTP {ex.status}{served}",
                       evidence(ex.raw(["www-authenticate", "content-type"]), {"status": ex.status,
                                                                            "server_addr": ex.server_addr}))


def burst(url: str, *, count: int, method: str = "GET", headers: Mapping[str, str] | None = None,
          ca_file: str | None = None, concurrency: int = 8, timeout_s: float = 5.0,
          deadline_s: float = 60.0) -> Measurement:
    """Send ``count`` requests as fast as ``concurrency`` connections allow and count the
    answers.  Value: ``{"sent", "answered", "statuses": {"200": n, "429": m}, "errors",
    "elapsed_s", "first_limited_at"}`` (``first_limited_at``: 1-based index, in completion
    order, of the first 429).  Bounded: ``count`` <= 10000, ``concurrency`` <= 32, the whole
    burst is cancelled at ``deadline_s``."""
    count = max(1, min(int(count), MAX_BURST))
    concurrency = max(1, min(int(concurrency), MAX_CONCURRENCY, count))
    hdrs = dict(headers or {})
    shown = ", ".join(f"{k}: ***" for k in hdrs) or "no credentials"
    started = time.monotonic()

    def evidence(raw: str = "", data: dict[str, Any] | None = None) -> Evidence:
        return Evidence(probe="auth.burst", subject=redact(url), tool=TOOL, raw=raw, data=data or {},
                        method=(f"{count} x {method} {redact(url)} ({shown}), {concurrency} concurrent connections, "
                                f"timeout {timeout_s:g} s per request, whole burst bounded by {deadline_s:g} s"),
                        duration_s=round(time.monotonic() - started, 3))

    completion: list[int | str] = []
    target_url, target_headers, extensions, _address = route(url, hdrs)

    async def run() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(verify=ssl_context(ca_file), timeout=timeout_s, trust_env=False,
                                     follow_redirects=False, limits=limits) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with gate:
                    try:
                        # wait_for: httpx's timeout is per read; the whole request gets timeout_s
                        r = await asyncio.wait_for(client.request(method, target_url, headers=target_headers,
                                                                  extensions=extensions), timeout_s)
                        completion.append(r.status_code)
                    except TimeoutError:
                        completion.append(f"no complete answer within {timeout_s:g} s")
                    except (httpx.HTTPError, OSError) as exc:
                        completion.append(failure_reason(exc, timeout_s))

            await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout=deadline_s)

    with contextlib.suppress(TimeoutError):  # what completed is counted; the rest is reported as not answered
        asyncio.run(run())
    elapsed = round(time.monotonic() - started, 3)
    statuses = collections.Counter(str(c) for c in completion if isinstance(c, int))
    errors = [c for c in completion if isinstance(c, str)]
    limited = [i for i, c in enumerate(completion, 1) if c == 429]
    value = {"sent": count, "answered": sum(statuses.values()), "statuses": dict(sorted(statuses.items())),
             "errors": len(errors), "elapsed_s": elapsed, "first_limited_at": limited[0] if limited else None}
    raw = ", ".join(f"{n} x HTTP {s}" for s, n in sorted(statuses.items()))
    if errors:
        raw += f"; {len(errors)} without answer (first: {errors[0]})"
    if not statuses:
        return Measurement.failed(f"no request of the burst was answered ({errors[0] if errors else 'deadline'})",
                                  evidence(raw, value))
    display = f"{raw} in {elapsed:.2f} s" + (f" (first 429 at request {limited[0]})" if limited else "")
    return Measurement(value, display, evidence(raw, value))
