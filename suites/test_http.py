"""Bindings for features/http.feature: the plain-HTTP redirect, HSTS, security headers and
the health endpoint (checks.http), judged against the profile's ``http`` block."""
from __future__ import annotations

from typing import Any

from pytest_bdd import scenarios, then, when

from checks import http as probe
from golive.model import Measurement
from golive.profile import HttpReq
from golive.units import fmt_duration

scenarios("http.feature")


def _req(golive: Any) -> HttpReq | None:
    return golive.req.http if golive.req else None


def _no_profile(golive: Any, check: str) -> bool:
    if _req(golive) is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' has no http requirements")
        return True
    return False


def _public(golive: Any, check: str, expected: str) -> str | None:
    url: str | None = golive.target.endpoints.public
    if url is None:
        golive.checks.error(check, "the target names no public endpoint (endpoints.public)", block=_req(golive),
                            expected=expected)
    return url


@when("the plain HTTP endpoint is requested without following redirects", target_fixture="http_measured")
def request_plain(golive: Any) -> Measurement | None:
    url = golive.target.endpoints.http
    return probe.redirect(url) if url else None


@then("it answers with a permanent redirect to https on the same host")
def judge_redirect(golive: Any, http_measured: Measurement | None) -> None:
    req = _req(golive)
    if _no_profile(golive, "http.redirect"):
        return
    assert req is not None
    if not req.redirect_to_https:
        golive.checks.skip("http.redirect", "the profile does not require the HTTP->HTTPS redirect", block=req)
        return
    if http_measured is None:
        golive.checks.skip("http.redirect", "the target names no plain HTTP endpoint (endpoints.http)", block=req)
        return
    codes = [301, 308] + ([302, 307] if req.allow_temporary_redirect else [])

    def ok(v: dict[str, Any]) -> bool:
        return v["location"] is not None and v["status"] in codes and v["scheme"] == "https" and bool(v["same_host"])

    golive.checks.record("http.redirect", block=req, measurement=http_measured, ok=ok,
                         expected=f"HTTP {'/'.join(map(str, codes))} to https:// on the same host",
                         remediation="answer every plain-HTTP request with 301 to https://<same host><same path> "
                                     "(nginx: return 301 https://$host$request_uri;)")


@when("an HTTPS response of the public endpoint is read", target_fixture="http_measured")
def read_hsts(golive: Any) -> Measurement | None:
    url = golive.target.endpoints.public
    return probe.hsts(url, ca_file=golive.target.endpoints.ca_file) if url else None


@then("it carries Strict-Transport-Security with at least the required max-age")
def judge_hsts(golive: Any, http_measured: Measurement | None) -> None:
    req = _req(golive)
    if _no_profile(golive, "http.hsts"):
        return
    assert req is not None
    min_age = req.hsts_min_age if req.hsts_min_age is not None else 1
    expected = f"max-age >= {fmt_duration(min_age)} ({int(min_age)} s)" + \
        ("; includeSubDomains" if req.hsts_include_subdomains else "")
    if http_measured is None:
        _public(golive, "http.hsts", expected)
        return

    def ok(v: dict[str, Any]) -> bool:
        return (bool(v["present"]) and v["max_age"] is not None and v["max_age"] >= min_age
                and (v["include_subdomains"] or not req.hsts_include_subdomains))

    golive.checks.record("http.hsts", block=req, expected=expected, measurement=http_measured, ok=ok,
                         remediation='send Strict-Transport-Security on every HTTPS response (nginx: add_header '
                                     'Strict-Transport-Security "max-age=31536000; includeSubDomains" always;)')


@when("the security headers of the public endpoint are read", target_fixture="http_measured")
def read_headers(golive: Any) -> Measurement | None:
    req = _req(golive)
    url = golive.target.endpoints.public
    if req is None or not req.security_headers or url is None:
        return None
    return probe.response_headers(url, req.security_headers, ca_file=golive.target.endpoints.ca_file)


@then("every header the profile lists is present")
def judge_headers(golive: Any, http_measured: Measurement | None) -> None:
    req = _req(golive)
    if _no_profile(golive, "http.security_headers"):
        return
    assert req is not None
    if not req.security_headers:
        golive.checks.skip("http.security_headers", "the profile lists no security headers", block=req)
        return
    expected = f"present: {', '.join(req.security_headers)}"
    if http_measured is None:
        _public(golive, "http.security_headers", expected)
        return
    golive.checks.record("http.security_headers", block=req, expected=expected, measurement=http_measured,
                         ok=lambda found: all(v is not None for v in found.values()),
                         remediation="add the missing headers to every HTTPS response (nginx: add_header ... always;)")


@when("the health endpoint is requested", target_fixture="http_measured")
def request_health(golive: Any) -> Measurement | None:
    url = golive.target.endpoints.health
    return probe.status(url, ca_file=golive.target.endpoints.ca_file, probe="http.health") if url else None


@then("it answers with the expected status")
def judge_health(golive: Any, http_measured: Measurement | None) -> None:
    req = _req(golive)
    if _no_profile(golive, "http.health"):
        return
    assert req is not None
    if http_measured is None:
        golive.checks.skip("http.health", "the target names no health endpoint (endpoints.health)", block=req)
        return
    golive.checks.record("http.health", block=req, expected=f"HTTP {req.health_status}", measurement=http_measured,
                         ok=lambda code: code == req.health_status,
                         remediation="make the health endpoint answer once the service is ready")
