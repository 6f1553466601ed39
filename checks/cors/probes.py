"""CORS probes: what the server answers a browser's preflight and simple request from a
given Origin.

For one origin, :func:`probe_origin` sends the two requests a browser would send:

- the preflight: ``OPTIONS`` with ``Origin``, ``Access-Control-Request-Method`` (and
  ``Access-Control-Request-Headers`` when headers are named);
- a simple request: ``GET`` with ``Origin``;

and returns the ``Access-Control-Allow-*`` answers of both.  Judging (is this origin
allowed, is ``*`` combined with credentials, is the Origin reflected) is the step's job.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from checks.http.probes import TOOL, UNVERIFIED_NOTE, Exchange, HttpFailure, send_despite_trust
from golive.model import Evidence, Measurement
from golive.redact import redact

CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
                "access-control-allow-headers", "vary")


def _split(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def _answer(kind: str, ex: Exchange) -> dict[str, Any]:
    h = ex.headers
    return {
        "kind": kind,
        "status": ex.status,
        "allow_origin": h.get("access-control-allow-origin"),
        "allow_credentials": (h.get("access-control-allow-credentials") or "").strip().lower() == "true",
        "allow_methods": _split(h.get("access-control-allow-methods")),
        "allow_headers": _split(h.get("access-control-allow-headers")),
        "vary": h.get("vary"),
    }


def describe(answer: dict[str, Any]) -> str:
    """``preflight 204: ACAO https://a, credentials, methods GET, POST``."""
    acao = answer["allow_origin"]
    text = f"{answer['kind']} {answer['status']}: " + (f"Allow-Origin {acao}" if acao else "no Allow-Origin")
    if acao and answer["allow_credentials"]:
        text += " with credentials"
    if acao and answer["kind"] == "preflight" and answer["allow_methods"]:
        text += f", methods {', '.join(answer['allow_methods'])}"
    return text


def probe_origin(url: str, origin: str, *, method: str = "GET", request_headers: Sequence[str] = (),
                 ca_file: str | None = None, timeout_s: float = 5.0) -> Measurement:
    """Preflight and simple request from ``origin``.  Value: ``{"origin", "preflight":
    answer, "simple": answer}`` where an answer has ``status``, ``allow_origin`` (None when
    absent), ``allow_credentials`` (bool), ``allow_methods``, ``allow_headers``, ``vary``."""
    started = time.monotonic()
    pre_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        pre_headers["Access-Control-Request-Headers"] = ", ".join(request_headers).lower()
    how = (f"OPTIONS {redact(url)} with Origin: {origin}, Access-Control-Request-Method: {method}"
           + (f", Access-Control-Request-Headers: {', '.join(request_headers)}" if request_headers else "")
           + f"; then GET {redact(url)} with Origin: {origin} (no redirects, timeout {timeout_s:g} s each)")

    def evidence(raw: str = "", data: dict[str, Any] | None = None) -> Evidence:
        return Evidence(probe="cors.origin", subject=f"{redact(url)} from {origin}", method=how, tool=TOOL, raw=raw,
                        data=data or {}, duration_s=round(time.monotonic() - started, 3))

    try:
        pre = send_despite_trust(url, method="OPTIONS", headers=pre_headers, ca_file=ca_file, timeout_s=timeout_s)
        simple = send_despite_trust(url, method="GET", headers={"Origin": origin}, ca_file=ca_file,
                                    timeout_s=timeout_s)
    except HttpFailure as exc:
        return Measurement.failed(str(exc), evidence())
    value: dict[str, Any] = {"origin": origin, "preflight": _answer("preflight", pre),
                             "simple": _answer("simple", simple)}
    display = f"{describe(value['preflight'])}; {describe(value['simple'])}"
    if pre.unverified:
        display += UNVERIFIED_NOTE
    raw = pre.raw(CORS_HEADERS) + "\n\n" + simple.raw(CORS_HEADERS)
    return Measurement(value, display, evidence(raw, {**value, "tls_unverified": pre.unverified}))


def answers(value: dict[str, Any]) -> list[dict[str, Any]]:
    """The preflight and simple answers of a :func:`probe_origin` value."""
    return [value["preflight"], value["simple"]]
