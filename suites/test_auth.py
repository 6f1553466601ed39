"""Bindings for features/auth.feature: anonymous requests to the protected paths and a
bounded burst above the declared rate limit (checks.auth), judged against the profile's
``auth`` block and the target's ``auth`` section."""
from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

from pytest_bdd import scenarios, then, when

from checks import auth as probe
from golive.model import Measurement
from golive.profile import AuthReq

scenarios("auth.feature")

REFUSED = (401, 403)


def _req(golive: Any) -> AuthReq | None:
    return golive.req.auth if golive.req else None


def _paths(golive: Any) -> list[str]:
    req = _req(golive)
    spec = golive.target.auth
    paths = list(req.protected_paths if req else []) + list(spec.protected_paths if spec else [])
    return list(dict.fromkeys(paths))


@when("the protected paths are requested without credentials", target_fixture="auth_measured")
def request_anonymous(golive: Any) -> dict[str, Measurement]:
    public = golive.target.endpoints.public
    if _req(golive) is None or public is None:
        return {}
    out = {}
    for entry in _paths(golive):
        method, path = probe.split_path(entry)
        out[entry] = probe.anonymous(urllib.parse.urljoin(public, path), method=method,
                                     ca_file=golive.target.endpoints.ca_file)
    return out


@then("each protected path refuses the request")
def judge_anonymous(golive: Any, auth_measured: dict[str, Measurement]) -> None:
    req = _req(golive)
    check = "auth.anonymous_refused"
    if req is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' has no auth requirements")
        return
    expected = "HTTP 401 or 403 without credentials"
    if golive.target.endpoints.public is None:
        golive.checks.error(check, "the target names no public endpoint (endpoints.public)", block=req,
                            expected=expected)
        return
    if not auth_measured:
        golive.checks.error(check, "neither the profile (auth.protected_paths) nor the target "
                                   "(auth.protected_paths) names a protected path", block=req, expected=expected)
        return
    for entry, m in auth_measured.items():
        golive.checks.record(f"{check}[{entry}]", block=req, expected=expected, measurement=m,
                             ok=lambda code: code in REFUSED,
                             remediation="require credentials on this path (e.g. a bearer token checked by the "
                                         "API gateway or the application) and answer 401 without them")


@dataclasses.dataclass(frozen=True)
class BurstOutcome:
    """What the burst step did: ``skip`` / ``error`` with a reason, or a measurement."""

    kind: str
    reason: str = ""
    expected: str = ""
    measurement: Measurement | None = None


@when("a bounded burst above the declared rate limit is sent", target_fixture="burst_outcome")
def send_burst(golive: Any) -> BurstOutcome:
    req = _req(golive)
    if req is None:
        return BurstOutcome("skip", f"profile '{golive.profile.name}' has no auth requirements")
    if req.rate_limit is None:
        return BurstOutcome("skip", "the profile does not require rate limiting (auth.rate_limit)")
    expect, count = req.rate_limit.expect_status, req.rate_limit.burst
    if not golive.env.allow_disruptive:
        return BurstOutcome("skip", "disruptive, not allowed")
    spec = golive.target.auth
    declared = spec.rate_limit if spec else None
    public = golive.target.endpoints.public
    if declared is None or public is None:
        what = "a rate limit (auth.rate_limit)" if declared is None else "a public endpoint (endpoints.public)"
        return BurstOutcome("error", f"the target declares no {what}: nothing to exceed",
                            f"HTTP {expect} within a burst of {count}")
    expected = (f"HTTP {expect} within a burst of {count} requests "
                f"(declared limit {declared.requests_per_s:g} r/s, burst {declared.burst})")
    if count <= declared.burst + 1:
        return BurstOutcome("error", f"the profile's burst ({count}) does not exceed the declared allowance "
                                     f"(burst {declared.burst} + 1): raise auth.rate_limit.burst", expected)
    try:
        headers = probe.credentials(spec.token if spec else None, spec.token_file if spec else None,
                                    spec.scheme if spec else "Bearer")
    except probe.CredentialError as exc:
        return BurstOutcome("error", str(exc), expected)
    m = probe.burst(urllib.parse.urljoin(public, declared.path), count=count, method=declared.method,
                    headers=headers, ca_file=golive.target.endpoints.ca_file)
    if m.ok and not m.value["statuses"].get(str(expect)):
        allowance = declared.burst + 1 + declared.requests_per_s * float(m.value["elapsed_s"])
        if m.value["answered"] <= allowance:
            m = dataclasses.replace(m, error=(
                f"inconclusive: {m.value['answered']} answers in {m.value['elapsed_s']:.2f} s stay within the "
                f"declared limit (about {allowance:.0f} allowed in that time); send a larger burst"))
    return BurstOutcome("measured", expected=expected, measurement=m)


@then("some requests of the burst are answered with the rate-limit status")
def judge_burst(golive: Any, burst_outcome: BurstOutcome) -> None:
    req = _req(golive)
    check = "auth.rate_limit"
    if burst_outcome.kind == "skip":
        golive.checks.skip(check, burst_outcome.reason, block=req)
        return
    if burst_outcome.kind == "error" or burst_outcome.measurement is None:
        golive.checks.error(check, burst_outcome.reason, block=req, expected=burst_outcome.expected)
        return
    assert req is not None and req.rate_limit is not None
    expect = str(req.rate_limit.expect_status)
    golive.checks.record(check, block=req, expected=burst_outcome.expected, measurement=burst_outcome.measurement,
                         ok=lambda v: v["statuses"].get(expect, 0) > 0,
                         remediation="limit the request rate per client at the edge (nginx: limit_req_zone + "
                                     "limit_req ... nodelay; limit_req_status 429;)")
