"""Bounded, authenticated JSON requests to Prometheus, Alertmanager and Grafana.

Every request has a client-side timeout (connect, read, write, pool) and Prometheus
queries also carry the server-side ``timeout`` parameter, so a slow query ends on both
sides.  Every way of not getting a usable answer -- refused, timeout, 401/403, another
non-2xx status, a body that is not the expected JSON, Prometheus' ``status: error`` --
raises :class:`ApiError` with a reason a person can read (secrets redacted); probes turn
it into ``Measurement.failed`` (status ``error``, never pass).
"""
from __future__ import annotations

import dataclasses
import ssl
import time
import urllib.parse
from typing import Any

import httpx

from golive.redact import redact


class ApiError(Exception):
    """No usable answer; ``reason`` is for people, ``status`` the HTTP status if any."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where an HTTP API is and how to authenticate: basic auth (``username`` +
    ``password``) or a bearer ``token``; values already resolved from ``${ENV}``/``*_file``."""

    url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    ca_file: str | None = None
    timeout_s: float = 5.0

    @property
    def shown(self) -> str:
        return redact(self.url.rstrip("/"))

    @property
    def auth_words(self) -> str:
        if self.token:
            return "bearer token"
        if self.username:
            return f"basic auth as {self.username}"
        return "no authentication"


def tool() -> str:
    return f"httpx {httpx.__version__}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not trusted: {text}"
    return f"{type(exc).__name__}: {text}"


def request(ep: Endpoint, method: str, path: str, *, params: dict[str, str] | None = None,
            json_body: Any = None, timeout_s: float | None = None) -> tuple[Any, float]:
    """``method path`` on ``ep``; (decoded JSON body, seconds taken).  Raises :class:`ApiError`."""
    limit = timeout_s if timeout_s is not None else ep.timeout_s
    url = ep.url.rstrip("/") + path
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ApiError(f"not an http(s) URL: {redact(url)}")
    headers = {"Accept": "application/json"}
    auth: httpx.BasicAuth | None = None
    if ep.token:
        headers["Authorization"] = f"Bearer {ep.token}"
    elif ep.username is not None:
        auth = httpx.BasicAuth(ep.username, ep.password or "")
    verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=ep.ca_file) if ep.ca_file
                                     else ssl.create_default_context())
    started = time.monotonic()
    try:
        with httpx.Client(verify=verify, timeout=httpx.Timeout(limit), trust_env=False,
                          follow_redirects=False) as client:
            resp = client.request(method, url, params=params, json=json_body, headers=headers, auth=auth)
    except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
        raise ApiError(redact(f"{method} {ep.shown}{path}: {_reason(exc)}")[:300]) from None
    took = time.monotonic() - started
    where = f"{method} {ep.shown}{path}"
    if resp.status_code in (401, 403):
        raise ApiError(f"{where}: HTTP {resp.status_code} {resp.reason_phrase} -- not authorised "
                       f"({ep.auth_words}); check the credentials", resp.status_code)
    body: Any = None
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        body = None
    if not 200 <= resp.status_code < 300:
        detail = body.get("error") if isinstance(body, dict) else resp.text[:200]
        raise ApiError(redact(f"{where}: HTTP {resp.status_code} {resp.reason_phrase}: {detail}")[:400],
                       resp.status_code)
    if body is None and resp.content:
        raise ApiError(redact(f"{where}: answer is not JSON: {resp.text[:120]!r}"))
    return body, took


def prom_get(ep: Endpoint, path: str, params: dict[str, str] | None = None) -> Any:
    """``GET /api/v1/...`` on Prometheus; the ``data`` member.  Raises :class:`ApiError`
    (also on ``status: error``, e.g. a bad query or a server-side timeout)."""
    body, _ = request(ep, "GET", path, params=params)
    if not isinstance(body, dict) or body.get("status") != "success":
        err = body.get("error") if isinstance(body, dict) else body
        raise ApiError(redact(f"GET {ep.shown}{path}: Prometheus answered an error: {err}")[:400])
    return body.get("data")


def query(ep: Endpoint, promql: str) -> tuple[float, list[dict[str, Any]]]:
    """Instant query (``/api/v1/query``), bounded on the server (``timeout``) and here;
    (evaluation time, vector result).  A scalar result becomes one series without labels."""
    # The server gives up a little before the client, so its own "query timed out" arrives.
    data = prom_get(ep, "/api/v1/query", {"query": promql, "timeout": f"{max(1, int(ep.timeout_s * 800))}ms"})
    if not isinstance(data, dict):
        raise ApiError(f"query {promql!r}: unexpected answer {str(data)[:100]}")
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return float(result[0]), [{"metric": {}, "value": result}]
    if data.get("resultType") != "vector" or not isinstance(result, list):
        raise ApiError(f"query {promql!r}: expected an instant vector, got {data.get('resultType')}")
    at = float(result[0]["value"][0]) if result else time.time()
    return at, result
