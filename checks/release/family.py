"""The release family, declared: the deployed version is the intended one, every documented
endpoint answers, bad input gets 4xx (never 5xx), errors show no stack trace, stored uploads
are not served anonymously, and the declared smoke sequence passes.

Reads ``requirements.release`` (which checks the tier asks for) and the target's
``release:`` section (the service's base URL, its OpenAPI document, the version endpoint or
the git checkout, the upload paths, the smoke steps).  The intended version comes from the
target (``intended_version``, usually ``${GOLIVE_RELEASE_VERSION}``) or, when the target sets
none, from the environment of the run: ``GOLIVE_RELEASE_VERSION``, else a CI system's commit
variable (``CI_COMMIT_SHA``, ``GITHUB_SHA``).

Operations that write (POST, PUT, PATCH, DELETE with valid samples; the bad-input probe; the
smoke sequence) run only with ``--allow-disruptive``.
"""
from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator

from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family, Judged, NotApplicable, Skipped, when_flag
from golive.model import Evidence, Measurement, Severity

CI_VERSION_VARIABLES = ("GOLIVE_RELEASE_VERSION", "CI_COMMIT_SHA", "GITHUB_SHA")


# The manual checklist items no probe can read: settled only by an attestation (docs/attestations.md).
MANUAL_ITEMS: dict[str, tuple[str, str]] = {
    "security_test_report": ("DS-OPS-07", "a security test report for this release"),
    "rollback_plan": ("DS-OPS-09", "a documented rollback plan, the previous artefact restorable"),
    "dr_test_evidence": ("AW-BAK-06", "evidence of a database restore, file recovery and DR test"),
    "staging_pass": ("AW-OPS-03", "the same version passed staging"),
    "release_docs": ("AW-OPS-04", "deployment docs, rollback procedures and the change record updated"),
}
ManualItem = Literal["security_test_report", "rollback_plan", "dr_test_evidence", "staging_pass", "release_docs"]


class ReleaseReq(Block):
    """Which release checks the tier requires (each on once the block is present), and the
    manual items it requires attested."""

    manual: list[ManualItem] = Field(default_factory=list, description="manual items that need an attestation "
                                     "(the profile must list release.manual in attestable)")
    version: bool = True
    endpoints: bool = True
    input_validation: bool = True
    debug_off: bool = True
    uploads_private: bool = True
    smoke: bool = True


class VersionSource(Strict):
    path: str = Field(default="/version", description="version endpoint (path under base_url, or a URL)")
    field: str = Field(default="version", description="JSON field (dotted) holding the version")


class GitSource(Strict):
    host: str = Field(description="target host holding the checkout")
    path: str = Field(description="the checkout's folder on that host")


class ErrorTrigger(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str
    body: str | None = None


class SmokeStepSpec(Strict):
    name: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str
    json_body: Any = Field(default=None, alias="json")
    expect_status: int = Field(default=200, ge=100, le=599)
    expect: dict[str, Any] = Field(default_factory=dict, description="dotted JSON field -> value (null: present)")
    save: dict[str, str] = Field(default_factory=dict, description="variable -> dotted JSON field, for later steps")


class ReleaseSpec(Strict):
    """The release under test."""

    base_url: str = Field(description="the service's base URL, e.g. https://api.example.com")
    openapi: str | None = Field(default="/openapi.json", description="its OpenAPI document (path or URL)")
    ca_file: str | None = None
    token: str | None = Field(default=None, description="bearer token for authenticated calls (${ENV})")
    token_file: str | None = None
    intended_version: str | None = Field(default=None, description="the version that should be deployed")
    version: VersionSource | None = None
    git: GitSource | None = None
    uploads: list[str] = Field(default_factory=list, description="paths of stored uploads (must not be anonymous)")
    error_triggers: list[ErrorTrigger] = Field(default_factory=list)
    smoke: list[SmokeStepSpec] = Field(default_factory=list, max_length=20)
    timeout_s: float = Field(default=10, gt=0, le=120, description="per request")
    deadline_s: float = Field(default=90, gt=0, le=900, description="per probe, everything included")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        import urllib.parse

        u = urllib.parse.urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"'{v}' is not an http(s) URL with a host")
        return v


def _url(spec: ReleaseSpec, path_or_url: str) -> str:
    return path_or_url if "://" in path_or_url else spec.base_url.rstrip("/") + "/" + path_or_url.lstrip("/")


def _headers(spec: ReleaseSpec) -> dict[str, str]:
    token = spec.token
    if token is None and spec.token_file:
        with open(os.path.expanduser(spec.token_file), encoding="utf-8") as fh:
            token = fh.read().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


# A target without a release section is measured anyway, as an error: the tier requires it.
def _no_section() -> Measurement:
    return Measurement.failed("the target has no release: section (base_url, openapi, ...): nothing to verify",
                              Evidence(probe="release", subject="target", method="the target's release section"))


def intended(spec: ReleaseSpec) -> tuple[str | None, str]:
    """The intended version and where it came from."""
    if spec.intended_version:
        return spec.intended_version, "the target's release.intended_version"
    for var in CI_VERSION_VARIABLES:
        if os.environ.get(var):
            return os.environ[var], f"${var}"
    return None, ""


def _version(ctx: CheckContext) -> Measurement | dict[str, Any]:
    from checks.release import probes

    spec: ReleaseSpec | None = ctx.spec
    if spec is None:
        return _no_section()
    want, origin = intended(spec)
    ev = Evidence(probe="release.version", subject=spec.base_url, method="the intended version")
    if want is None:
        return Measurement.failed("no intended version given: set GOLIVE_RELEASE_VERSION (or the target's "
                                  "release.intended_version)", ev)
    if spec.version is None and spec.git is None:
        return Measurement.failed("the target names no version source (release.version or release.git)", ev)
    out: dict[str, Any] = {}
    if spec.version is not None:
        m = probes.version_endpoint(_url(spec, spec.version.path), spec.version.field, ca_file=spec.ca_file,
                                    headers=_headers(spec), timeout_s=spec.timeout_s,
                                    deadline_s=min(spec.deadline_s, 30))
        out["endpoint"] = Judged(m, ctx.req, f"{want} (from {origin})", passes=lambda v: v == want)
    if spec.git is not None:
        m = ctx.on_host(spec.git.host, probes.git_revision, spec.git.path)
        out[f"git@{spec.git.host}"] = Judged(
            m, ctx.req, f"{want} (from {origin}): the revision or one of its tags",
            passes=lambda v: v["revision"].startswith(want) or want in v["tags"])
    return out


def _endpoints(ctx: CheckContext) -> Measurement | dict[str, Any]:
    from checks.release import probes

    spec: ReleaseSpec | None = ctx.spec
    if spec is None:
        return _no_section()
    if not spec.openapi:
        raise NotApplicable("the target names no OpenAPI document (release.openapi)")
    got = probes.exercise_endpoints(spec.base_url, _url(spec, spec.openapi), allow_writes=ctx.allow_disruptive,
                                    ca_file=spec.ca_file, headers=_headers(spec), timeout_s=spec.timeout_s,
                                    deadline_s=spec.deadline_s)
    if isinstance(got, Measurement):
        return got
    return {k: Skipped(v) if isinstance(v, str) else v for k, v in got.items()}


def _input(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.release import probes

    spec: ReleaseSpec | None = ctx.spec
    if spec is None:
        return _no_section()
    if not spec.openapi:
        raise NotApplicable("the target names no OpenAPI document (release.openapi)")
    return probes.input_validation(spec.base_url, _url(spec, spec.openapi), ca_file=spec.ca_file,
                                   headers=_headers(spec), timeout_s=spec.timeout_s, deadline_s=spec.deadline_s)


def _debug(ctx: CheckContext) -> Measurement:
    from checks.release import probes

    spec: ReleaseSpec | None = ctx.spec
    if spec is None:
        return _no_section()
    extra = [(t.method, t.path, t.body.encode() if t.body is not None else None) for t in spec.error_triggers]
    return probes.debug_exposure(spec.base_url, _url(spec, spec.openapi) if spec.openapi else None, extra,
                                 ca_file=spec.ca_file, headers=_headers(spec), timeout_s=spec.timeout_s,
                                 deadline_s=spec.deadline_s)


def _uploads(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.release import probes

    spec: ReleaseSpec | None = ctx.spec
    if spec is None:
        return _no_section()
    return probes.anonymous_access([_url(spec, p) for p in spec.uploads], ca_file=spec.ca_file,
                                   timeout_s=spec.timeout_s, deadline_s=spec.deadline_s)


def _smoke(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    from checks.release import probes

    spec: ReleaseSpec | None = ctx.spec
    if spec is None:
        return _no_section()
    if not spec.smoke:
        return Measurement.failed("the target declares no smoke steps (release.smoke)",
                                  Evidence(probe="release.smoke", subject=spec.base_url, method="the target"))
    steps = [probes.SmokeStep(s.name, s.method, s.path, s.json_body, s.expect_status, tuple(s.expect.items()),
                              tuple(s.save.items())) for s in spec.smoke]
    return probes.smoke(spec.base_url, steps, ca_file=spec.ca_file, headers=_headers(spec),
                        timeout_s=spec.timeout_s, deadline_s=spec.deadline_s)


def _manual(ctx: CheckContext) -> dict[str, Any]:
    """Each manual item the tier requires: no probe can read it, so it is could-not-verify
    (error) until an attestation with its evidence settles it."""
    req: ReleaseReq = ctx.req
    if not req.manual:
        raise NotApplicable("the profile requires no manual release items (release.manual)")
    out: dict[str, Any] = {}
    for item in req.manual:
        ref, what = MANUAL_ITEMS[item]
        ev = Evidence(probe="release.manual", subject=item, method="manual checklist item: attested, not measured")
        m = Measurement.failed(f"manual item ({what}): no probe can read it; attest it with its evidence "
                               f"(attestations.yaml, check release.manual[{item}])", ev)
        out[item] = Judged(m, Block(ref=[ref]), what, passes=lambda v: False)
    return out


def all_4xx(statuses: dict[str, Any]) -> bool:
    return bool(statuses) and all(isinstance(s, int) and 400 <= s < 500 for s in statuses.values())


FAMILY = Family(
    name="release",
    title="the deployed release: version, endpoints, input validation, debug pages, uploads, smoke test",
    feature="release.feature",
    profile_block=ReleaseReq,
    target_block=ReleaseSpec,
    checks=(
        Check(id="release.version", title="The intended release is deployed", severity=Severity.HIGH,
              refs=("DS-OPS-01", "AW-OPS-01"), applies=when_flag("version"),
              measures="the version the service reports (version endpoint) and the checkout's git revision, "
                       "against the intended version (target or GOLIVE_RELEASE_VERSION / CI variable)",
              measure=_version, expected="the intended version",
              remediation=lambda req, m: f"deploy the intended release (found {m.display})",
              verify_hint="set GOLIVE_RELEASE_VERSION to the release you mean to deploy and name a version source"),
        Check(id="release.endpoints", title="Every documented endpoint answers a valid request",
              severity=Severity.HIGH, refs=("ST-OPS-01", "VO-SW-02"), applies=when_flag("endpoints"),
              measures="each OpenAPI operation called once with a valid sample built from its schema (writes only "
                       "with --allow-disruptive)",
              measure=_endpoints, expected="not a 5xx", passes=lambda req, status: status < 500,
              remediation=lambda req, m: f"fix the server error behind {m.evidence.subject} (see the evidence)",
              verify_hint="publish the OpenAPI document (release.openapi) and make the service reachable"),
        Check(id="release.input_validation", title="Bad input is rejected with 4xx, never 5xx",
              severity=Severity.HIGH, refs=("ST-HTTP-01",), disruptive=True,
              applies=when_flag("input_validation"),
              measures="malformed JSON, wrong types, a missing field, a 2 MiB body and wrong-type path parameters "
                       "sent to each OpenAPI operation",
              measure=_input, empty="no documented operation takes a body or path parameters",
              expected="4xx for every bad input (400/404/413/422), never 5xx or 2xx", passes=lambda req, v: all_4xx(v),
              remediation=lambda req, m: f"validate input on {m.evidence.subject} and answer 4xx (e.g. 422 with "
                                         "the field in error); never let bad input raise"),
        Check(id="release.debug_off", title="Errors show no stack trace or debug page", severity=Severity.HIGH,
              refs=("AW-HTTP-02",), applies=when_flag("debug_off"),
              measures="error-forcing requests (unknown path, malformed bodies, wrong-type parameters, the target's "
                       "triggers); the answers searched for stack traces and framework debug pages",
              measure=_debug, expected="no stack trace or debug page", passes=lambda req, found: not found,
              remediation="turn debug mode off in production (DEBUG=False, FLASK_DEBUG=0, no --reload) and answer "
                          "errors with a generic body"),
        Check(id="release.uploads_private", title="Stored uploads are not served anonymously",
              severity=Severity.CRITICAL, refs=("AW-HTTP-01",), applies=when_flag("uploads_private"),
              measures="GET each declared upload path without credentials",
              measure=_uploads, empty="the target names no upload paths (release.uploads)",
              expected="401, 403 or 404", passes=lambda req, status: status in (401, 403, 404),
              remediation=lambda req, m: f"require authentication for {m.evidence.subject} (or stop serving it)"),
        Check(id="release.manual", title="Manual release items are attested", severity=Severity.HIGH,
              refs=tuple(ref for ref, _ in MANUAL_ITEMS.values()),
              measures="nothing: each manual item the tier requires needs an attestation (fact, evidence sha256 "
                       "or URL, attester, date, expiry)",
              measure=_manual, expected="an attestation",
              remediation="attest the item with its evidence in attestations.yaml (docs/attestations.md)",
              verify_hint="attest the item with its evidence in attestations.yaml (docs/attestations.md); the "
                          "profile must list release.manual in attestable"),
        Check(id="release.smoke", title="The declared smoke test passes", severity=Severity.HIGH,
              refs=("DS-OPS-06", "AW-OPS-05"), disruptive=True, applies=when_flag("smoke"),
              measures="the target's smoke sequence, step by step, statuses and JSON fields checked, values "
                       "carried to later steps",
              measure=_smoke, expected="each step answers its status with the expected fields",
              passes=lambda req, v: not v["problems"],
              remediation=lambda req, m: f"fix step {m.evidence.subject}: {m.display}"),
    ),
)
