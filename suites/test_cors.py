"""Bindings for features/cors.feature: preflight and simple requests from chosen origins
(checks.cors), judged against the profile's ``cors`` block and the target's allowlist."""
from __future__ import annotations

import dataclasses
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any

from pytest_bdd import scenarios, then, when

from checks import cors as probe
from golive.model import Measurement
from golive.profile import CorsReq

scenarios("cors.feature")

DEFAULT_DISALLOWED = ["https://evil.golive.test"]


def _req(golive: Any) -> CorsReq | None:
    return golive.req.cors if golive.req else None


def _url(golive: Any) -> str | None:
    public: str | None = golive.target.endpoints.public
    if public is None:
        return None
    path = golive.target.cors.path if golive.target.cors else "/"
    return urllib.parse.urljoin(public, str(path))


def _probe(golive: Any, origins: list[str]) -> dict[str, Measurement]:
    url = _url(golive)
    req = _req(golive)
    if url is None or req is None:
        return {}
    method = req.methods[0] if req.methods else "GET"
    return {o: probe.probe_origin(url, o, method=method, request_headers=req.headers,
                                  ca_file=golive.target.endpoints.ca_file) for o in dict.fromkeys(origins)}


def _preamble(golive: Any, check: str, flag: str | None, expected: str) -> CorsReq | None:
    """The profile block when the check applies; otherwise records skip/error and None."""
    req = _req(golive)
    if req is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' has no cors requirements")
        return None
    if flag is not None and not getattr(req, flag):
        golive.checks.skip(check, f"the profile does not require this ({flag})", block=req)
        return None
    if _url(golive) is None:
        golive.checks.error(check, "the target names no public endpoint (endpoints.public)", block=req,
                            expected=expected)
        return None
    return req


def _record_each(golive: Any, check: str, req: CorsReq, measured: dict[str, Measurement], expected: str,
                 ok: Callable[[dict[str, Any]], bool], remediation: str, per_origin: bool) -> None:
    for origin, m in measured.items():
        cid = f"{check}[{origin}]" if per_origin else check
        golive.checks.record(cid, block=req, expected=expected, measurement=m, ok=ok, remediation=remediation)


# ----------------------------------------------------------------------------- allowed origins

@when("the allowed origins send a preflight and a simple request", target_fixture="cors_measured")
def probe_allowed(golive: Any) -> dict[str, Measurement]:
    cors = golive.target.cors
    return _probe(golive, list(cors.allowed_origins) if cors else [])


@then("each allowed origin is allowed with the required methods and headers")
def judge_allowed(golive: Any, cors_measured: dict[str, Measurement]) -> None:
    req = _preamble(golive, "cors.allowed_origin", None, "allowed")
    if req is None:
        return
    if not cors_measured:
        golive.checks.skip("cors.allowed_origin", "the target lists no allowed origins (cors.allowed_origins)",
                           block=req)
        return
    want_methods = {m.upper() for m in req.methods}
    want_headers = {h.lower() for h in req.headers}
    expected = "preflight and simple request allowed (Allow-Origin = the origin)"
    if want_methods:
        expected += f"; methods {', '.join(sorted(want_methods))}"
    if want_headers:
        expected += f"; headers {', '.join(sorted(want_headers))}"

    def ok(v: dict[str, Any]) -> bool:
        pre = v["preflight"]
        if any(a["allow_origin"] not in (v["origin"], "*") for a in probe.answers(v)):
            return False
        methods = {m.upper() for m in pre["allow_methods"]}
        headers = {h.lower() for h in pre["allow_headers"]}
        return ("*" in methods or want_methods <= methods) and ("*" in headers or want_headers <= headers)

    _record_each(golive, "cors.allowed_origin", req, cors_measured, expected, ok,
                 "answer the allowed origins' preflight and requests with Access-Control-Allow-Origin: <origin>",
                 per_origin=True)


# ----------------------------------------------------------------------------- disallowed origins

@when("the disallowed origins send a preflight and a simple request", target_fixture="cors_measured")
def probe_disallowed(golive: Any) -> dict[str, Measurement]:
    cors = golive.target.cors
    origins = list(cors.disallowed_origins) if cors else DEFAULT_DISALLOWED
    allowed = set(cors.allowed_origins) if cors else set()
    return _probe(golive, [o for o in origins if o not in allowed])


def _not_allowed(v: dict[str, Any]) -> bool:
    return all(a["allow_origin"] not in (v["origin"], "*") for a in probe.answers(v))


@then("no disallowed origin is allowed")
def judge_disallowed(golive: Any, cors_measured: dict[str, Measurement]) -> None:
    expected = "no Access-Control-Allow-Origin matching the origin (neither the origin nor *)"
    req = _preamble(golive, "cors.disallowed_origin", None, expected)
    if req is None:
        return
    if not cors_measured:
        golive.checks.skip("cors.disallowed_origin", "no disallowed origin to try (cors.disallowed_origins)", block=req)
        return
    _record_each(golive, "cors.disallowed_origin", req, cors_measured, expected, _not_allowed,
                 "allow only the origins of the allowlist (no *, no echo of the request's Origin)",
                 per_origin=len(cors_measured) > 1)


# ----------------------------------------------------------------------------- * with credentials

@when("an allowed and an unknown origin send a preflight and a simple request", target_fixture="cors_measured")
def probe_wildcard(golive: Any) -> dict[str, Measurement]:
    cors = golive.target.cors
    origins = (list(cors.allowed_origins[:1]) if cors else []) + \
        (list(cors.disallowed_origins[:1]) if cors and cors.disallowed_origins else DEFAULT_DISALLOWED)
    return _probe(golive, origins)


def _no_wildcard_credentials(values: list[dict[str, Any]]) -> bool:
    return not any(a["allow_origin"] == "*" and a["allow_credentials"] for v in values for a in probe.answers(v))


@then("no answer allows any origin together with credentials")
def judge_wildcard(golive: Any, cors_measured: dict[str, Measurement]) -> None:
    expected = "never Access-Control-Allow-Origin: * together with Access-Control-Allow-Credentials: true"
    req = _preamble(golive, "cors.wildcard_credentials", "forbid_wildcard_with_credentials", expected)
    if req is None:
        return
    if not cors_measured:
        golive.checks.error("cors.wildcard_credentials", "no origin to send requests from", block=req,
                            expected=expected)
        return
    m = _combine(cors_measured)
    golive.checks.record("cors.wildcard_credentials", block=req, expected=expected, measurement=m,
                         ok=_no_wildcard_credentials,
                         remediation="never combine * with credentials: answer with the allowed origin itself")


def _combine(measured: dict[str, Measurement]) -> Measurement:
    """One measurement over several origins (the first error wins)."""
    ms = list(measured.values())
    for m in ms:
        if not m.ok:
            return m
    value = [m.value for m in ms]
    display = " | ".join(f"from {m.value['origin']}: {m.display}" for m in ms)
    ev = ms[0].evidence
    ev = dataclasses.replace(ev, subject=ev.subject.rsplit(" from ", 1)[0] + " from " + ", ".join(measured),
                             raw="\n\n".join(m.evidence.raw for m in ms), data={"origins": value})
    return Measurement(value, display, ev)


# ----------------------------------------------------------------------------- reflection and null

@when("a random origin sends a preflight and a simple request", target_fixture="cors_measured")
def probe_random(golive: Any) -> dict[str, Measurement]:
    return _probe(golive, [f"https://golive-{secrets.token_hex(4)}.invalid"])


@then("the random origin is not echoed back as allowed")
def judge_reflection(golive: Any, cors_measured: dict[str, Measurement]) -> None:
    expected = "Access-Control-Allow-Origin never equals an arbitrary request Origin"
    req = _preamble(golive, "cors.reflection", "forbid_origin_reflection", expected)
    if req is None:
        return
    _record_each(golive, "cors.reflection", req, cors_measured, expected,
                 lambda v: all(a["allow_origin"] != v["origin"] for a in probe.answers(v)),
                 "compare the Origin with the allowlist instead of echoing it back", per_origin=False)


@when("the origin null sends a preflight and a simple request", target_fixture="cors_measured")
def probe_null(golive: Any) -> dict[str, Measurement]:
    return _probe(golive, ["null"])


@then("the null origin is not allowed")
def judge_null(golive: Any, cors_measured: dict[str, Measurement]) -> None:
    expected = "no Access-Control-Allow-Origin: null"
    req = _preamble(golive, "cors.null_origin", "forbid_null_origin", expected)
    if req is None:
        return
    _record_each(golive, "cors.null_origin", req, cors_measured, expected,
                 lambda v: all(a["allow_origin"] != "null" for a in probe.answers(v)),
                 "remove 'null' from the allowed origins (sandboxed iframes and file:// pages send it)",
                 per_origin=False)
