"""The CORS family, declared: what the public entrypoint answers a browser's preflight and
simple request from allowed, disallowed, random and ``null`` origins.

Reads ``requirements.cors`` (the methods and headers the allowed origins need, which
misconfigurations are forbidden) and the target's ``cors`` section (the allowlist, the path
probed, the origins that must not be allowed) and ``endpoints.public``.
"""
from __future__ import annotations

import dataclasses
import secrets
import urllib.parse
from typing import Any

from pydantic import Field

from checks.http.family import pinning
from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family, NotApplicable
from golive.model import Evidence, Measurement, Severity

DEFAULT_DISALLOWED = ["https://evil.golive.test"]


class CorsReq(Block):
    """Which CORS misconfigurations are forbidden, and the methods and headers the allowed
    origins need (profile: requirements.cors)."""

    forbid_wildcard_with_credentials: bool = True
    forbid_origin_reflection: bool = True
    forbid_null_origin: bool = True
    methods: list[str] = Field(default_factory=list)
    headers: list[str] = Field(default_factory=list)
    bypass_matrix: bool = Field(default=True, description="try the attack origins derived from each allowed origin")
    extra_origins: list[str] = Field(default_factory=list, description="more origins the matrix must see refused")


class CorsSpec(Strict):
    """The CORS policy the deployment declares: the allowed origins, the path probed and the
    origins that must not be allowed (target: cors)."""

    allowed_origins: list[str] = Field(default_factory=list)
    path: str = "/"
    disallowed_origins: list[str] = Field(default_factory=lambda: list(DEFAULT_DISALLOWED),
                                          description="origins that must NOT be allowed (probe origins)")


def _url(ctx: CheckContext) -> str | None:
    public: str | None = ctx.target.endpoints.public
    if public is None:
        return None
    path = ctx.spec.path if ctx.spec else "/"
    return urllib.parse.urljoin(public, str(path))


def _probe(ctx: CheckContext, origins: list[str]) -> dict[str, Measurement]:
    """Preflight and simple request from each origin (once per origin)."""
    from checks.cors import probes

    url = _url(ctx)
    assert url is not None
    req: CorsReq = ctx.req
    method = req.methods[0] if req.methods else "GET"
    return {o: probes.probe_origin(url, o, method=method, request_headers=req.headers,
                                   ca_file=ctx.target.endpoints.ca_file) for o in dict.fromkeys(origins)}


def _no_public(ctx: CheckContext) -> Measurement | None:
    if _url(ctx) is None:
        return Measurement.failed("the target names no public endpoint (endpoints.public)",
                                  Evidence(probe="cors.origin", subject=ctx.target.name, method="target file"))
    return None


def _answers(v: dict[str, Any]) -> list[dict[str, Any]]:
    return [v["preflight"], v["simple"]]


def _required(flag: str) -> Any:
    def applies(ctx: CheckContext) -> str | None:
        return None if getattr(ctx.req, flag) else f"the profile does not require this ({flag})"
    return applies


# ----------------------------------------------------------------------------- allowed origins

def _allowed(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    missing = _no_public(ctx)
    if missing is not None:
        return missing
    origins = list(ctx.spec.allowed_origins) if ctx.spec else []
    if not origins:
        raise NotApplicable("the target lists no allowed origins (cors.allowed_origins)")
    return _probe(ctx, origins)


def _allowed_expected(r: CorsReq) -> str:
    want_methods = {m.upper() for m in r.methods}
    want_headers = {h.lower() for h in r.headers}
    expected = "preflight and simple request allowed (Allow-Origin = the origin)"
    if want_methods:
        expected += f"; methods {', '.join(sorted(want_methods))}"
    if want_headers:
        expected += f"; headers {', '.join(sorted(want_headers))}"
    return expected


def _allowed_ok(r: CorsReq, v: dict[str, Any]) -> bool:
    pre = v["preflight"]
    if any(a["allow_origin"] not in (v["origin"], "*") for a in _answers(v)):
        return False
    methods = {m.upper() for m in pre["allow_methods"]}
    headers = {h.lower() for h in pre["allow_headers"]}
    want_methods = {m.upper() for m in r.methods}
    want_headers = {h.lower() for h in r.headers}
    return ("*" in methods or want_methods <= methods) and ("*" in headers or want_headers <= headers)


# ----------------------------------------------------------------------------- disallowed origins

def _disallowed(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    missing = _no_public(ctx)
    if missing is not None:
        return missing
    origins = list(ctx.spec.disallowed_origins) if ctx.spec else list(DEFAULT_DISALLOWED)
    allowed = set(ctx.spec.allowed_origins) if ctx.spec else set()
    measured = _probe(ctx, [o for o in origins if o not in allowed])
    if not measured:
        raise NotApplicable("no disallowed origin to try (cors.disallowed_origins)")
    # one origin: one result without a subject (the usual case: the default probe origin)
    return measured if len(measured) > 1 else next(iter(measured.values()))


def _not_allowed(r: CorsReq, v: dict[str, Any]) -> bool:
    return all(a["allow_origin"] not in (v["origin"], "*") for a in _answers(v))


# ----------------------------------------------------------------------------- * with credentials

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


def _wildcard(ctx: CheckContext) -> Measurement:
    missing = _no_public(ctx)
    if missing is not None:
        return missing
    spec = ctx.spec
    origins = (list(spec.allowed_origins[:1]) if spec else []) + \
        (list(spec.disallowed_origins[:1]) if spec and spec.disallowed_origins else list(DEFAULT_DISALLOWED))
    return _combine(_probe(ctx, origins))


def _no_wildcard_credentials(r: CorsReq, values: list[dict[str, Any]]) -> bool:
    return not any(a["allow_origin"] == "*" and a["allow_credentials"] for v in values for a in _answers(v))


# ----------------------------------------------------------------------------- reflection and null

def _random(ctx: CheckContext) -> Measurement:
    missing = _no_public(ctx)
    if missing is not None:
        return missing
    return next(iter(_probe(ctx, [f"https://golive-{secrets.token_hex(4)}.invalid"]).values()))


def _null(ctx: CheckContext) -> Measurement:
    missing = _no_public(ctx)
    if missing is not None:
        return missing
    return _probe(ctx, ["null"])["null"]


# ----------------------------------------------------------------------------- the bypass matrix

def _matrix(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    """The bypass matrix for each allowed origin (the public endpoint's own origin when the
    target lists none)."""
    from checks.cors import matrix

    missing = _no_public(ctx)
    if missing is not None:
        return missing
    url = _url(ctx)
    assert url is not None
    req: CorsReq = ctx.req
    bases = list(ctx.spec.allowed_origins) if ctx.spec and ctx.spec.allowed_origins else []
    if not bases:
        u = urllib.parse.urlsplit(ctx.target.endpoints.public)
        bases = [f"{u.scheme}://{u.netloc}"]
    return {b: matrix.probe_matrix(url, b, method=req.methods[0] if req.methods else "GET",
                                   request_headers=req.headers, extra=req.extra_origins,
                                   ca_file=ctx.target.endpoints.ca_file) for b in dict.fromkeys(bases)}



_VERIFY = "name the public endpoint (endpoints.public) and make it reachable from the checking host"

FAMILY = Family(
    name="cors",
    title="CORS policy checks",
    feature="cors.feature",
    profile_block=CorsReq,
    target_block=CorsSpec,
    checks=(
        Check(
            id="cors.allowed_origin",
            title="Allowed origins are allowed",
            severity=Severity.MEDIUM,
            refs=("DS-HTTP-01",),
            measures="Access-Control-Allow-* answers to a preflight (OPTIONS) and a simple GET from each of "
                     "cors.allowed_origins",
            measure=pinning(_allowed),
            expected=_allowed_expected,
            passes=_allowed_ok,
            remediation="answer the allowed origins' preflight and requests with Access-Control-Allow-Origin: <origin>",
            verify_hint=_VERIFY,
        ),
        Check(
            id="cors.disallowed_origin",
            title="A disallowed origin is refused",
            severity=Severity.HIGH,
            refs=("DS-HTTP-01",),
            measures="Access-Control-Allow-Origin of a preflight and a simple GET from each of "
                     "cors.disallowed_origins (default https://evil.golive.test)",
            measure=pinning(_disallowed),
            expected="no Access-Control-Allow-Origin matching the origin (neither the origin nor *)",
            passes=_not_allowed,
            remediation="allow only the origins of the allowlist (no *, no echo of the request's Origin)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="cors.wildcard_credentials",
            title="No wildcard origin together with credentials",
            severity=Severity.CRITICAL,
            refs=("DS-HTTP-01",),
            measures="Access-Control-Allow-Origin and -Credentials answered to an allowed and an unknown origin",
            applies=_required("forbid_wildcard_with_credentials"),
            measure=pinning(_wildcard),
            expected="never Access-Control-Allow-Origin: * together with Access-Control-Allow-Credentials: true",
            passes=_no_wildcard_credentials,
            remediation="never combine * with credentials: answer with the allowed origin itself",
            verify_hint=_VERIFY,
        ),
        Check(
            id="cors.reflection",
            title="The Origin header is not reflected",
            severity=Severity.CRITICAL,
            refs=("DS-HTTP-01",),
            measures="Access-Control-Allow-Origin answered to a random origin (https://golive-<random>.invalid)",
            applies=_required("forbid_origin_reflection"),
            measure=pinning(_random),
            expected="Access-Control-Allow-Origin never equals an arbitrary request Origin",
            passes=lambda r, v: all(a["allow_origin"] != v["origin"] for a in _answers(v)),
            remediation="compare the Origin with the allowlist instead of echoing it back",
            verify_hint=_VERIFY,
        ),
        Check(
            id="cors.null_origin",
            title="The null origin is not allowed",
            severity=Severity.HIGH,
            refs=("DS-HTTP-01",),
            measures="Access-Control-Allow-Origin answered to the opaque origin null",
            applies=_required("forbid_null_origin"),
            measure=pinning(_null),
            expected="no Access-Control-Allow-Origin: null",
            passes=lambda r, v: all(a["allow_origin"] != "null" for a in _answers(v)),
            remediation="remove 'null' from the allowed origins (sandboxed iframes and file:// pages send it)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="cors.bypass_matrix",
            title="Origins that only look allowed are refused",
            severity=Severity.CRITICAL,
            refs=("DS-HTTP-01",),
            measures="preflight and simple request from each attack origin derived from each allowed origin (null, "
                     "arbitrary, prefix, suffix, substring, unescaped dot, any subdomain, http downgrade, other port, "
                     "special characters, third-party hosting, the profile's extra_origins), plus Vary: Origin and a "
                     "canary method and header in a preflight from the allowed origin",
            applies=_required("bypass_matrix"),
            measure=pinning(_matrix),
            expected="no derived origin allowed (neither echoed nor *); the allowed origin's answers carry Vary: "
                     "Origin; the preflight neither reflects the requested method or header nor answers *",
            passes=lambda r, v: not v["findings"],
            remediation="compare the Origin with the allowlist by exact string equality (no regular expression, "
                        "no substring or suffix test), send Vary: Origin, and answer fixed Allow-Methods and "
                        "Allow-Headers lists",
            verify_hint=_VERIFY,
        ),
    ),
)
