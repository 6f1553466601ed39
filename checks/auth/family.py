"""The auth family, declared: protected paths refuse anonymous requests, and a bounded burst
above the declared rate limit is limited.

Reads ``requirements.auth`` (protected paths, the burst to send and the status that means
"limited") and the target's ``auth`` section (more protected paths, the bearer token golive
may use for the burst, the declared rate limit) and ``endpoints.public``.
"""
from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any, Literal

from pydantic import Field

from checks.http.family import pinning
from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family
from golive.model import Evidence, Measurement, Severity

REFUSED = (401, 403)


class RateLimitReq(Strict):
    """profile: requirements.auth.rate_limit -- the burst golive sends and the status that
    says "limited"."""

    burst: int = Field(ge=1, le=10000)
    expect_status: int = 429


class AuthReq(Block):
    """Paths that must refuse anonymous requests, and the rate limit a burst must hit
    (profile: requirements.auth)."""

    protected_paths: list[str] = Field(default_factory=list)
    rate_limit: RateLimitReq | None = None


class RateLimitSpec(Strict):
    """The rate limit the deployment declares for one path: ``requests_per_s`` sustained,
    plus ``burst`` requests of allowance (nginx ``limit_req rate=... burst=...``)."""

    path: str
    method: Literal["GET", "POST", "HEAD"] = "GET"
    requests_per_s: float = Field(gt=0)
    burst: int = Field(default=0, ge=0)


class AuthSpec(Strict):
    """target: auth -- how the API authenticates: paths that must refuse anonymous
    requests, the bearer token golive may use (``${ENV}`` or ``token_file``; never literal)
    and the declared rate limit."""

    protected_paths: list[str] = Field(default_factory=list, description="'/v1/x' or 'POST /v1/x'")
    token: str | None = None
    token_file: str | None = None
    scheme: str = "Bearer"
    rate_limit: RateLimitSpec | None = None


def _failed(ctx: CheckContext, probe: str, reason: str) -> Measurement:
    return Measurement.failed(reason, Evidence(probe=probe, subject=ctx.target.name, method="target file"))


# ----------------------------------------------------------------------------- anonymous requests

def _paths(ctx: CheckContext) -> list[str]:
    req: AuthReq = ctx.req
    spec: AuthSpec | None = ctx.spec
    paths = list(req.protected_paths) + list(spec.protected_paths if spec else [])
    return list(dict.fromkeys(paths))


def _anonymous(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.auth import probes

    public = ctx.target.endpoints.public
    if public is None:
        return _failed(ctx, "auth.anonymous", "the target names no public endpoint (endpoints.public)")
    paths = _paths(ctx)
    if not paths:
        return _failed(ctx, "auth.anonymous", "neither the profile (auth.protected_paths) nor the target "
                                              "(auth.protected_paths) names a protected path")
    out = {}
    for entry in paths:
        method, path = probes.split_path(entry)
        out[entry] = probes.anonymous(urllib.parse.urljoin(public, path), method=method,
                                      ca_file=ctx.target.endpoints.ca_file)
    return out


# ----------------------------------------------------------------------------- rate limit

def _burst(ctx: CheckContext) -> Measurement:
    """A burst of the profile's size above the target's declared limit; inconclusive (error)
    when the answers stay within what the declared limit allows anyway."""
    from checks.auth import probes

    req: AuthReq = ctx.req
    assert req.rate_limit is not None
    count = req.rate_limit.burst
    spec: AuthSpec | None = ctx.spec
    declared = spec.rate_limit if spec else None
    public = ctx.target.endpoints.public
    if declared is None or public is None:
        what = "a rate limit (auth.rate_limit)" if declared is None else "a public endpoint (endpoints.public)"
        return _failed(ctx, "auth.burst", f"the target declares no {what}: nothing to exceed")
    if count <= declared.burst + 1:
        return _failed(ctx, "auth.burst", f"the profile's burst ({count}) does not exceed the declared allowance "
                                          f"(burst {declared.burst} + 1): raise auth.rate_limit.burst")
    try:
        headers = probes.credentials(spec.token if spec else None, spec.token_file if spec else None,
                                     spec.scheme if spec else "Bearer")
    except probes.CredentialError as exc:
        return _failed(ctx, "auth.burst", str(exc))
    m = probes.burst(urllib.parse.urljoin(public, declared.path), count=count, method=declared.method,
                     headers=headers, ca_file=ctx.target.endpoints.ca_file)
    m = dataclasses.replace(m, evidence=dataclasses.replace(m.evidence, data={
        **m.evidence.data, "declared": {"requests_per_s": declared.requests_per_s, "burst": declared.burst}}))
    if m.ok and not m.value["statuses"].get(str(req.rate_limit.expect_status)):
        allowance = declared.burst + 1 + declared.requests_per_s * float(m.value["elapsed_s"])
        if m.value["answered"] <= allowance:
            m = dataclasses.replace(m, error=(
                f"inconclusive: {m.value['answered']} answers in {m.value['elapsed_s']:.2f} s stay within the "
                f"declared limit (about {allowance:.0f} allowed in that time); send a larger burst"))
    return m


def _burst_expected(r: AuthReq) -> str:
    rl = r.rate_limit
    if rl is None:
        return "n/a"
    return f"HTTP {rl.expect_status} within a burst of {rl.burst} requests (above the target's declared limit)"


def _limited(r: AuthReq, v: dict[str, Any]) -> bool:
    assert r.rate_limit is not None
    return int(v["statuses"].get(str(r.rate_limit.expect_status), 0)) > 0



FAMILY = Family(
    name="auth",
    title="authentication and rate limiting checks",
    feature="auth.feature",
    profile_block=AuthReq,
    target_block=AuthSpec,
    checks=(
        Check(
            id="auth.anonymous_refused",
            title="Protected paths refuse anonymous requests",
            severity=Severity.CRITICAL,
            refs=("ST-AUTH-01", "AW-AUTH-08"),
            measures="the status of one request without credentials to each protected path (profile and target)",
            measure=pinning(_anonymous),
            expected="HTTP 401 or 403 without credentials",
            passes=lambda r, code: code in REFUSED,
            remediation="require credentials on this path (e.g. a bearer token checked by the API gateway or the "
                        "application) and answer 401 without them",
            verify_hint="name the public endpoint (endpoints.public) and the protected paths (auth.protected_paths)",
        ),
        Check(
            id="auth.rate_limit",
            title="A burst above the declared rate limit is limited",
            severity=Severity.HIGH,
            refs=("ST-AUTH-02", "AW-AUTH-06"),
            measures="statuses of a bounded burst (the profile's size, at most 32 in flight, 60 s overall) to the "
                     "target's rate-limited path",
            disruptive=True,
            applies=lambda ctx: (None if ctx.req.rate_limit is not None
                                 else "the profile does not require rate limiting (auth.rate_limit)"),
            measure=pinning(_burst),
            expected=_burst_expected,
            passes=_limited,
            remediation="limit the request rate per client at the edge (nginx: limit_req_zone + "
                        "limit_req ... nodelay; limit_req_status 429;)",
            verify_hint="declare the rate limit in the target (auth.rate_limit) with a profile burst above it",
        ),
    ),
)
