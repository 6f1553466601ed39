"""The HTTP family, declared: the plain-HTTP redirect to HTTPS, HSTS, the security headers,
the health endpoint and the pages the deployment must serve.

Reads ``requirements.http``, the target's ``endpoints`` (http, public, health, ca_file) and
its ``http`` block (health_body, pages).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator, model_validator

from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family, Judged, MeasureResult, NotApplicable
from golive.model import Evidence, Measurement, Severity
from golive.units import Duration, fmt_duration


class PageReq(Block):
    """A page the deployment must serve (profile: requirements.http.pages.<name>): the
    catalogue ids its result cites (``ref``) and, optionally, its own severity."""


class HttpReq(Block):
    """The HTTP->HTTPS redirect, HSTS, security headers and the health status the public
    entrypoint must give (profile: requirements.http)."""

    redirect_to_https: bool = True
    allow_temporary_redirect: bool = Field(default=False, description="accept 302/307 for the HTTP->HTTPS redirect")
    hsts_min_age: Duration | None = None
    hsts_include_subdomains: bool = False
    hsts_preload: bool = Field(default=False, description="the HSTS preload list's rules: max-age >= 1 year, "
                                                          "includeSubDomains and preload")
    security_headers: list[str] = Field(default_factory=list)
    health_status: int = Field(default=200, ge=100, le=599)
    pages: dict[str, PageReq] | list[str] = Field(default_factory=list, description=(
        "pages the deployment must serve, by name (a Web UI, a frontend, a media file), each with the catalogue "
        "ids it answers ({web_ui: {ref: OZ-NET-03}}) or as a list of names; the target says where each is and "
        "what it answers (http.pages.<name>); a name the target does not declare is error"))

    def page_reqs(self) -> dict[str, PageReq]:
        """The required pages by name (the list form: no ids of their own)."""
        return dict(self.pages) if isinstance(self.pages, dict) else {name: PageReq() for name in self.pages}


class HealthBody(Strict):
    """What a healthy answer's body holds: a JSON field (dotted path, e.g. ``status`` or
    ``checks.database``) equal to ``equals`` (truthy when ``equals`` is unset), and/or a
    regular expression found in the body text."""

    json_field: str | None = None
    equals: str | int | float | bool | None = None
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _something(self) -> HealthBody:
        if not self.json_field and not self.pattern:
            raise ValueError("health_body needs json_field (with or without equals) or pattern")
        if self.equals is not None and not self.json_field:
            raise ValueError("equals compares json_field; name the field")
        return self


class PageSpec(Strict):
    """Where one page is and what it answers (target: http.pages.<name>).  A status alone is
    what a catch-all answers too (an SPA fallback, a default page, a proxy's error page with
    200): name what only the real page holds -- a pattern, a JSON field, a Content-Type."""

    url: str = Field(description="http(s) URL, fetched with one GET, no redirect followed")
    status: int = Field(default=200, ge=100, le=599)
    body: HealthBody | None = Field(default=None, description="what the body holds (json_field/equals, pattern)")
    content_type: str | None = Field(default=None, description="what the Content-Type starts with (image/, text/html)")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        from golive.urls import http_url

        if "@" in urlsplit(v).netloc:  # refused before http_url, whose messages repeat the value
            raise ValueError("url must not carry credentials (user:password@)")
        return http_url(v)


class HttpSpec(Strict):
    """What the deployment's HTTP answers hold beyond status codes (target: http)."""

    health_body: HealthBody | None = Field(default=None, description="what a healthy health answer's body holds")
    pages: dict[str, PageSpec] = Field(default_factory=dict, description="the pages the deployment serves, by name")


def _no_public(ctx: CheckContext, probe: str) -> Measurement:
    return Measurement.failed("the target names no public endpoint (endpoints.public)",
                              Evidence(probe=probe, subject=ctx.target.name, method="target file"))


# ----------------------------------------------------------------------------- redirect

def _redirect_codes(r: HttpReq) -> list[int]:
    return [301, 308] + ([302, 307] if r.allow_temporary_redirect else [])


def _redirect(ctx: CheckContext) -> Measurement:
    from checks.http import probes

    url = ctx.target.endpoints.http
    if not url:
        raise NotApplicable("the target names no plain HTTP endpoint (endpoints.http)")
    return probes.redirect(url)


def _redirect_ok(r: HttpReq, v: dict[str, Any]) -> bool:
    return (v["location"] is not None and v["status"] in _redirect_codes(r) and v["scheme"] == "https"
            and bool(v["same_host"]))


# ----------------------------------------------------------------------------- HSTS

def _hsts_min(r: HttpReq) -> float:
    return r.hsts_min_age if r.hsts_min_age is not None else 1


def _hsts(ctx: CheckContext) -> Measurement:
    from checks.http import probes

    url = ctx.target.endpoints.public
    if url is None:
        return _no_public(ctx, "http.hsts")
    return probes.hsts(url, ca_file=ctx.target.endpoints.ca_file)


def _hsts_expected(r: HttpReq) -> str:
    min_age = _hsts_min(r)
    if r.hsts_preload:
        min_age = max(min_age, 31536000)
    return f"max-age >= {fmt_duration(min_age)} ({int(min_age)} s)" + \
        ("; includeSubDomains" if r.hsts_include_subdomains or r.hsts_preload else "") + \
        ("; preload (the preload list's rules)" if r.hsts_preload else "") + "; valid RFC 6797 syntax"


def _hsts_ok(r: HttpReq, v: dict[str, Any]) -> bool:
    min_age = max(_hsts_min(r), 31536000) if r.hsts_preload else _hsts_min(r)
    return (bool(v["present"]) and not v["problems"] and v["max_age"] is not None and v["max_age"] >= min_age
            and (v["include_subdomains"] or not (r.hsts_include_subdomains or r.hsts_preload))
            and (v["preload"] or not r.hsts_preload))


# ----------------------------------------------------------------------------- headers and health

def _headers(ctx: CheckContext) -> Measurement:
    from checks.http import probes

    url = ctx.target.endpoints.public
    if url is None:
        return _no_public(ctx, "http.headers")
    return probes.response_headers(url, ctx.req.security_headers, ca_file=ctx.target.endpoints.ca_file)


def _health(ctx: CheckContext) -> Measurement:
    from checks.http import probes

    url = ctx.target.endpoints.health
    if not url:
        raise NotApplicable("the target names no health endpoint (endpoints.health)")
    body: HealthBody | None = ctx.spec.health_body if ctx.spec else None
    if body is None:
        return probes.health(url, ca_file=ctx.target.endpoints.ca_file)
    return probes.health(url, ca_file=ctx.target.endpoints.ca_file, json_field=body.json_field, equals=body.equals,
                         pattern=body.pattern)


def _healthy(r: HttpReq, v: dict[str, Any]) -> bool:
    return bool(v["status"] == r.health_status and v["body_ok"] is not False)


# ----------------------------------------------------------------------------- pages

def _page_expected(page: PageSpec) -> str:
    extra = [f"Content-Type {page.content_type}*"] if page.content_type else []
    body = page.body
    if body is not None and body.json_field:
        extra.append(f"{body.json_field} = {body.equals!r}" if body.equals is not None else f"{body.json_field} truthy")
    if body is not None and body.pattern:
        extra.append(f"body matches /{body.pattern}/")
    return "; ".join([f"HTTP {page.status}", *extra])


def _pages(ctx: CheckContext) -> dict[str, Measurement | Judged]:
    """Every page the profile requires and every page the target declares: one GET each."""
    from checks.http import probes

    declared: dict[str, PageSpec] = ctx.spec.pages if ctx.spec else {}
    required = ctx.req.page_reqs()
    names = list(dict.fromkeys([*required, *declared]))
    if not names:
        raise NotApplicable("the profile requires no pages and the target declares none (http.pages)")
    out: dict[str, Measurement | Judged] = {}
    for name in names:
        # a page the profile cites ids for answers those ids (media: OZ-NET-02), not the block's all
        own = required.get(name)
        block = own if own is not None and (own.ref or own.severity) else ctx.req
        page = declared.get(name)
        if page is None:
            missing = Measurement.failed(
                f"the profile requires the page '{name}' and the target does not say where it is "
                f"(http.pages.{name}.url)", Evidence(probe="http.pages", subject=ctx.target.name, method="target file"))
            out[name] = Judged(missing, block, "the page answers as the target declares it")
            continue
        body = page.body
        m = probes.page(page.url, ca_file=ctx.target.endpoints.ca_file, content_type=page.content_type,
                        json_field=body.json_field if body else None, equals=body.equals if body else None,
                        pattern=body.pattern if body else None)
        out[name] = Judged(m, block, _page_expected(page), passes=functools.partial(_page_ok, page))
    return out


def _page_ok(page: PageSpec, v: dict[str, Any]) -> bool:
    return bool(v["status"] == page.status and v["body_ok"] is not False and v["content_type_ok"] is not False)


def pinning(measure: Callable[[CheckContext], MeasureResult]) -> Callable[[CheckContext], MeasureResult]:
    """``measure`` with the target's ``endpoints.resolve`` pins in force (name -> address);
    the CORS and auth families use it too."""

    def pinned_measure(ctx: CheckContext) -> MeasureResult:
        from checks.http.probes import pinned

        with pinned(ctx.target.endpoints.resolve):
            return measure(ctx)

    return pinned_measure


FAMILY = Family(
    name="http",
    title="HTTP redirect, HSTS and security header checks",
    feature="http.feature",
    profile_block=HttpReq,
    target_block=HttpSpec,
    checks=(
        Check(
            id="http.redirect",
            title="Plain HTTP redirects to HTTPS",
            severity=Severity.HIGH,
            refs=("DS-NET-01",),
            measures="status and Location of a GET to endpoints.http, no redirect followed",
            applies=lambda ctx: (None if ctx.req.redirect_to_https
                                 else "the profile does not require the HTTP->HTTPS redirect"),
            measure=pinning(_redirect),
            expected=lambda r: f"HTTP {'/'.join(map(str, _redirect_codes(r)))} to https:// on the same host",
            passes=_redirect_ok,
            remediation="answer every plain-HTTP request with 301 to https://<same host><same path> "
                        "(nginx: return 301 https://$host$request_uri;)",
            verify_hint="make endpoints.http reachable from the checking host",
        ),
        Check(
            id="http.hsts",
            title="HSTS is sent with a long enough max-age",
            severity=Severity.HIGH,
            refs=("AW-TLS-04",),
            measures="the first Strict-Transport-Security header of a GET to endpoints.public (RFC 6797 directives)",
            measure=pinning(_hsts),
            expected=_hsts_expected,
            passes=_hsts_ok,
            remediation='send Strict-Transport-Security on every HTTPS response (nginx: add_header '
                        'Strict-Transport-Security "max-age=31536000; includeSubDomains" always;)',
            verify_hint="name the public endpoint (endpoints.public) and make it reachable over a trusted chain",
        ),
        Check(
            id="http.security_headers",
            title="Security headers are present",
            severity=Severity.MEDIUM,
            measures="the profile's security headers in the response to a GET to endpoints.public",
            applies=lambda ctx: None if ctx.req.security_headers else "the profile lists no security headers",
            measure=pinning(_headers),
            expected=lambda r: f"present: {', '.join(r.security_headers)}",
            passes=lambda r, found: all(v is not None for v in found.values()),
            remediation="add the missing headers to every HTTPS response (nginx: add_header ... always;)",
            verify_hint="name the public endpoint (endpoints.public) and make it reachable over a trusted chain",
        ),
        Check(
            id="http.health",
            title="The health endpoint answers",
            severity=Severity.HIGH,
            refs=("ST-NET-01", "AW-OPS-05"),
            measures="the status code of a GET to endpoints.health, no redirect followed, and its body against "
                     "the target's http.health_body (a JSON field's value, a pattern) when it names one",
            measure=pinning(_health),
            expected=lambda r: f"HTTP {r.health_status} (and a healthy body where the target says what one holds)",
            passes=_healthy,
            remediation="make the health endpoint answer once the service is ready, and report its dependencies' "
                        "state honestly (a degraded service must not answer healthy)",
            verify_hint="make endpoints.health reachable from the checking host",
        ),
        Check(
            id="http.pages",
            title="Every page the deployment must serve answers",
            severity=Severity.HIGH,
            refs=("ST-NET-02", "OZ-NET-02", "OZ-NET-03"),
            measures="one GET per page (no redirect followed) of the pages the profile requires and the target "
                     "declares (http.pages.<name>.url): the status, and where the target says, the Content-Type "
                     "and what the body holds (a pattern, a JSON field)",
            measure=pinning(_pages),
            expected="each page answers as the target declares it (status, Content-Type, body)",
            remediation="serve the page at the declared URL (a redirect, an error page or a catch-all answer is "
                        "not the page), or correct http.pages in the target",
            verify_hint="declare the page's URL in the target (http.pages.<name>.url) and make it reachable from "
                        "the checking host",
        ),
    ),
)
