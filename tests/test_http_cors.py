"""The HTTP, CORS and auth families end to end against the real lab and its broken
variants: each check passes on the compliant lab (or the auth reference variant) and fails on
the variant built to break it, with the measured value asserted; an unreachable target is
``error``.  The golive runs are independent subprocesses, so they run a few at a time."""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import PYTEST, ROOT, GoliveRun
from lab.procs import free_port

POC = f"{ROOT}/profiles/poc.yaml"
PROFILES = {
    # everything the lab offers, spelled out, plus auth: all must pass on the api_auth variant
    "strict": f"""name: edge-strict
extends: {POC}
description: poc with HSTS includeSubDomains, three security headers, CORS methods and headers, auth
requirements:
  http: {{hsts_include_subdomains: true, security_headers: [X-Content-Type-Options, X-Frame-Options, Referrer-Policy]}}
  cors: {{methods: [GET, POST], headers: [Content-Type, Authorization]}}
  auth: {{ref: [ST-AUTH-01, ST-AUTH-02], rate_limit: {{burst: 40}}}}
""",
    # expectations the lab does not meet (a header it does not send, a health status it does not give)
    "unmet": f"""name: edge-unmet
extends: {POC}
description: poc asking for a Content-Security-Policy header and health status 204
requirements:
  http: {{security_headers: [X-Content-Type-Options, Content-Security-Policy], health_status: 204}}
  auth: {{rate_limit: {{burst: 40}}}}
""",
    "moz": f"""name: edge-mozilla
extends: {POC}
description: poc judged against Mozilla's intermediate server-side TLS configuration
requirements:
  tls: {{mozilla: intermediate}}
""",
    "preload": f"""name: edge-preload
extends: {POC}
description: poc whose HSTS must qualify for the browsers' preload list
requirements:
  http: {{hsts_preload: true}}
""",
    "cors-put": f"""name: edge-cors-put
extends: {POC}
description: poc whose CORS policy must allow PUT
requirements:
  cors: {{methods: [GET, PUT]}}
""",
    "auth": f"""name: edge-auth
extends: {POC}
description: poc plus authentication on the API and a rate limit (burst of 40)
requirements:
  auth: {{ref: [ST-AUTH-01, ST-AUTH-02], rate_limit: {{burst: 40}}}}
""",
}


def lab_target(base: Path, variant: str) -> str:
    p = base / f"lab-{variant}.yaml"
    p.write_text(f"name: lab-{variant}\nenvironment: lab\nlab:\n  variant: {variant}\n  instances: 1\n")
    return str(p)


def dead_target(base: Path) -> str:
    https, http = free_port(), free_port()
    p = base / "dead.yaml"
    p.write_text(f"""name: dead-edge
endpoints:
  public: https://localhost:{https}
  http: http://localhost:{http}
  health: https://localhost:{https}/health
cors: {{allowed_origins: ["https://app.golive.test"]}}
auth:
  protected_paths: [/v1/stats]
  rate_limit: {{path: /v1/stats, requests_per_s: 5, burst: 5}}
""")
    return str(p)


# name -> (profile, target, markers, extra args)
RUNS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "compliant_poc": ("poc", "lab", "tls or http or cors", ()),
    # api_auth is the compliant lab plus auth and rate limiting on /v1/
    "strict_api_auth": ("strict", "api_auth", "http or cors or auth", ("--allow-disruptive",)),
    # without --allow-disruptive the burst is skipped
    "no_hsts": ("unmet", "no_hsts", "http or (auth and disruptive)", ()),
    "plain_http": ("poc", "plain_http", "http", ()),
    "redirect_to_http": ("poc", "redirect_to_http", "http", ()),
    "degraded_health": ("poc", "degraded_health", "http", ()),
    "untrusted_cert": ("poc", "untrusted_cert", "tls or http or cors", ()),
    "hsts_invalid": ("poc", "hsts_invalid", "http", ()),
    "preload": ("preload", "lab", "http", ()),
    "moz_compliant": ("moz", "compliant", "tls", ()),
    "moz_legacy": ("moz", "legacy_tls", "tls", ()),
    "cors_wildcard_credentials": ("poc", "cors_wildcard_credentials", "cors", ()),
    "cors_reflect": ("poc", "cors_reflect", "cors", ()),
    "cors_null_origin": ("cors-put", "cors_null_origin", "cors", ()),
    "cors_regex": ("poc", "cors_regex", "cors", ()),
    "cors_no_vary": ("poc", "cors_no_vary", "cors", ()),
    "cors_reflect_preflight": ("poc", "cors_reflect_preflight", "cors", ()),
    "no_auth": ("auth", "no_auth", "auth", ("--allow-disruptive",)),
    "dead": ("auth", "dead", "tls or http or cors or auth", ("--allow-disruptive",)),
}


def _run(base: Path, name: str) -> GoliveRun:
    profile, target, markers, extra = RUNS[name]
    if profile in PROFILES:
        ppath = base / f"{profile}.yaml"
        profile = str(ppath)
    if target == "dead":
        target = dead_target(base / name)
    elif target != "lab":
        target = lab_target(base / name, target)
    report_dir = base / name / "reports"
    cmd = [*PYTEST, "-p", "no:cacheprovider", f"--report-dir={report_dir}", f"--profile={profile}",
           f"--target={target}", "-m", markers, *extra]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    return GoliveRun(proc, report_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GoliveRun]]:
    base = tmp_path_factory.mktemp("edge-runs")
    for name, text in PROFILES.items():
        (base / f"{name}.yaml").write_text(text)
    for name in RUNS:
        (base / name).mkdir()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, base, name) for name in RUNS}
        yield {name: f.result() for name, f in futures.items()}


def _statuses(run: GoliveRun, prefix: str) -> dict[str, str]:
    return {rid: r["status"] for rid, r in run.results(prefix).items()}


# ----------------------------------------------------------------------------- compliant

def test_compliant_lab_is_go_for_tls_http_and_cors_with_poc(runs: dict[str, GoliveRun]) -> None:
    run = runs["compliant_poc"]
    assert run.rc == 0, run.out[-3000:]
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # GO needs the whole profile; -m ran a part
    st = {r["status"] for r in run.report["results"]}
    assert st <= {"pass", "skip"}, run.report["results"]
    assert {rid.split("[")[0] for rid, s in _statuses(run, "").items() if s == "skip"} == {
        "tls.tls13", "tls.mozilla", "tls.starttls_offered"}  # the lab names no STARTTLS service
    assert run.one("http.redirect")["measured"].startswith("HTTP 301 -> https://localhost:")


def test_reference_lab_passes_every_http_cors_and_auth_check_when_all_are_asked_for(
        runs: dict[str, GoliveRun]) -> None:
    run = runs["strict_api_auth"]
    assert run.rc == 0, run.out[-3000:]
    assert set(_statuses(run, "").values()) == {"pass"}, _statuses(run, "")
    # OZ-NET-02/03: the media file and the Web UI nginx serves (poc requires both)
    assert set(run.results()) == {"http.pages[media]", "http.pages[web_ui]", "http.redirect", "http.hsts", "http.security_headers", "http.health",
                                  "cors.allowed_origin[https://app.golive.test]", "cors.disallowed_origin",
                                  "cors.wildcard_credentials", "cors.reflection", "cors.null_origin",
                                  "cors.bypass_matrix[https://app.golive.test]",
                                  "auth.anonymous_refused[/v1/stats]", "auth.rate_limit"}
    hsts = run.one("http.hsts")
    assert hsts["measured"] == "Strict-Transport-Security: max-age=31536000; includeSubDomains (365 d)"
    assert hsts["expected"] == "max-age >= 180 d (15552000 s); includeSubDomains; valid RFC 6797 syntax"
    assert run.one("http.health")["measured"] == "HTTP 200, body healthy"
    allowed = run.one("cors.allowed_origin[")
    assert "preflight 204: Allow-Origin https://app.golive.test with credentials, methods GET, POST" in \
        allowed["measured"]
    assert allowed["expected"].endswith("methods GET, POST; headers authorization, content-type")
    assert run.one("cors.disallowed_origin")["measured"] == "preflight 204: no Allow-Origin; simple 404: no Allow-Origin"
    ev = run.one("cors.disallowed_origin")["evidence"][0]
    assert ev["method"].startswith("OPTIONS https://localhost:") and "Origin: https://evil.golive.test" in ev["method"]
    anon = run.one("auth.anonymous_refused[/v1/stats]")
    assert anon["measured"] == "HTTP 401"
    rate = run.one("auth.rate_limit")
    value = rate["evidence"][0]["data"]
    assert value["sent"] == 40 and value["statuses"].get("429", 0) > 0 and value["statuses"].get("200", 0) >= 1
    assert rate["expected"] == "HTTP 429 within a burst of 40 requests (above the target's declared limit)"
    assert value["declared"] == {"requests_per_s": 5, "burst": 5}
    assert "(Authorization: ***)" in rate["evidence"][0]["method"]
    assert "Bearer " not in json.dumps(run.report)  # the token never reaches the report


# ----------------------------------------------------------------------------- HTTP failures

def test_no_hsts_missing_header_and_wrong_health_status_fail(runs: dict[str, GoliveRun]) -> None:
    run = runs["no_hsts"]
    assert run.rc == 1
    hsts = run.one("http.hsts")
    assert hsts["status"] == "fail" and hsts["measured"].startswith("no Strict-Transport-Security header")
    headers = run.one("http.security_headers")
    assert headers["status"] == "fail"
    assert headers["measured"] == "missing Content-Security-Policy; present X-Content-Type-Options: nosniff"
    health = run.one("http.health")
    assert health["status"] == "fail" and health["measured"] == "HTTP 200, body healthy"
    assert health["expected"].startswith("HTTP 204")
    assert run.one("http.redirect")["status"] == "pass"


def test_plain_http_serving_content_fails_the_redirect(runs: dict[str, GoliveRun]) -> None:
    r = runs["plain_http"].one("http.redirect")
    assert r["status"] == "fail"
    assert r["measured"] == "HTTP 404, no redirect" or r["measured"].startswith("HTTP 200, no redirect")
    assert "< HTTP/1.1" in r["evidence"][0]["raw"]


def test_redirect_to_http_fails_the_redirect(runs: dict[str, GoliveRun]) -> None:
    r = runs["redirect_to_http"].one("http.redirect")
    assert r["status"] == "fail"
    assert r["measured"].startswith("HTTP 301 -> http://127.0.0.1:") and r["measured"].endswith("(not https)")
    assert r["evidence"][0]["data"]["scheme"] == "http"


# ----------------------------------------------------------------------------- CORS failures

def test_wildcard_with_credentials_fails(runs: dict[str, GoliveRun]) -> None:
    run = runs["cors_wildcard_credentials"]
    r = run.one("cors.wildcard_credentials")
    assert r["status"] == "fail"
    assert "Allow-Origin * with credentials" in r["measured"]
    assert run.one("cors.disallowed_origin")["status"] == "fail"  # * allows the evil origin too
    assert run.one("cors.reflection")["status"] == "pass"  # * is not a reflection


def test_reflected_origin_fails(runs: dict[str, GoliveRun]) -> None:
    run = runs["cors_reflect"]
    r = run.one("cors.reflection")
    assert r["status"] == "fail"
    origin = r["evidence"][0]["data"]["origin"]
    assert origin.startswith("https://golive-") and origin.endswith(".invalid")
    assert f"preflight 204: Allow-Origin {origin} with credentials" in r["measured"]
    evil = run.one("cors.disallowed_origin")
    assert evil["status"] == "fail" and "Allow-Origin https://evil.golive.test" in evil["measured"]
    assert run.one("cors.wildcard_credentials")["status"] == "pass"


def test_null_origin_fails_and_a_missing_method_fails_the_allowed_origin(runs: dict[str, GoliveRun]) -> None:
    run = runs["cors_null_origin"]
    r = run.one("cors.null_origin")
    assert r["status"] == "fail" and r["measured"].startswith("preflight 204: Allow-Origin null with credentials")
    allowed = run.one("cors.allowed_origin[https://app.golive.test]")
    assert allowed["status"] == "fail" and "methods GET, POST, OPTIONS" in allowed["measured"]
    assert allowed["expected"].endswith("methods GET, PUT")
    assert {k: v for k, v in _statuses(run, "cors.").items() if v != "pass"} == {
        "cors.null_origin": "fail", "cors.allowed_origin[https://app.golive.test]": "fail",
        "cors.bypass_matrix[https://app.golive.test]": "fail"}  # null is one of the derived origins
    matrix = run.one("cors.bypass_matrix[")
    assert matrix["measured"].startswith("1 finding(s) over 42 derived origins: null (null origin allowed with "
                                         "credentials, critical)"), matrix["measured"]


def _only_the_matrix_fails(run: GoliveRun) -> dict[str, object]:
    assert {k: v for k, v in _statuses(run, "cors.").items() if v != "pass"} == {
        "cors.bypass_matrix[https://app.golive.test]": "fail"}, run.out[-3000:]
    return run.one("cors.bypass_matrix[")


def test_regex_allowlist_is_caught_by_the_bypass_matrix_alone(runs: dict[str, GoliveRun]) -> None:
    r = _only_the_matrix_fails(runs["cors_regex"])
    findings = {f["origin"]: (f["what"], f["grade"]) for f in r["evidence"][0]["data"]["findings"]}
    crit = "origin allowed with credentials", "critical"
    assert findings["https://app.golive.test.attacker.invalid"] == ("prefix " + crit[0], crit[1])
    assert findings["https://appagolive.test"] == ("unescaped dot " + crit[0], crit[1])
    assert findings["https://golive-attacker.app.golive.test"] == ("any subdomain " + crit[0], crit[1])
    assert findings["http://app.golive.test"] == ("http downgrade " + crit[0], crit[1])
    assert findings["https://app.golive.test:444"] == ("other port " + crit[0], crit[1])
    assert "https://golive-attacker.github.io" not in findings and "null" not in findings
    assert r["measured"].startswith(f"{len(findings)} finding(s) over 42 derived origins: "
                                    "https://app.golive.test.attacker.invalid (prefix origin allowed with credentials")
    # the evidence lists every origin tried and what came back
    tried = r["evidence"][0]["data"]["tried"]
    assert len(tried) == 43 and tried[0]["kind"] == "allowed"
    assert {t["kind"] for t in tried} >= {"arbitrary", "null", "prefix", "suffix", "substring", "unescaped dot",
                                         "any subdomain", "http downgrade", "other port", "special characters",
                                         "third-party hosting"}
    assert "prefix              https://app.golive.test.attacker.invalid: preflight 204 ACAO " \
           "https://app.golive.test.attacker.invalid +credentials" in r["evidence"][0]["raw"]


def test_reflection_without_vary_origin_is_caught(runs: dict[str, GoliveRun]) -> None:
    r = _only_the_matrix_fails(runs["cors_no_vary"])
    assert r["measured"] == ("2 finding(s) over 42 derived origins: https://app.golive.test (preflight reflects the "
                             "allowed origin without Vary: Origin, medium); https://app.golive.test (simple reflects "
                             "the allowed origin without Vary: Origin, medium)")


def test_preflight_reflecting_methods_and_headers_is_caught(runs: dict[str, GoliveRun]) -> None:
    r = _only_the_matrix_fails(runs["cors_reflect_preflight"])
    assert r["measured"] == ("2 finding(s) over 42 derived origins: https://app.golive.test (Access-Control-Allow-"
                             "Methods reflects the requested GOLIVECANARY, medium); https://app.golive.test "
                             "(Access-Control-Allow-Headers reflects the requested X-Golive-Canary, medium)")


def test_derived_origins() -> None:
    from checks.cors.matrix import derive

    got = derive("https://api.example.com:8443", extra=["https://partner.example.net"])
    origins = {o: k for k, o in got}
    assert origins["https://api.example.com.attacker.invalid"] == "prefix"
    assert origins["https://goliveapi.example.com"] == "suffix"
    assert origins["https://apiaexample.com:8443"] == "unescaped dot"
    assert origins["https://api.example-com:8443"] == "unescaped dot"
    assert origins["http://api.example.com:8443"] == "http downgrade"
    assert origins["https://api.example.com:8444"] == "other port"
    assert origins["https://partner.example.net"] == "profile"
    assert "https://api.example.com:8443" not in origins and len(got) == len(origins)


# ----------------------------------------------------------------------------- auth

def test_rate_limit_burst_needs_allow_disruptive(runs: dict[str, GoliveRun]) -> None:
    rate = runs["no_hsts"].one("auth.rate_limit")
    assert rate["status"] == "skip" and rate["reason"].startswith("disruptive, not allowed")


def test_no_auth_serves_anonymous_requests_and_never_limits(runs: dict[str, GoliveRun]) -> None:
    run = runs["no_auth"]
    assert run.rc == 1
    anon = run.one("auth.anonymous_refused[/v1/stats]")
    assert anon["status"] == "fail" and anon["measured"] == "HTTP 200 (served without credentials)"
    rate = run.one("auth.rate_limit")
    assert rate["status"] == "fail" and rate["measured"].startswith("40 x HTTP 200 in ")


# ----------------------------------------------------------------------------- unreachable

def test_unreachable_target_is_error_everywhere(runs: dict[str, GoliveRun]) -> None:
    run = runs["dead"]
    assert run.rc == 1 and run.report["verdict"]["decision"] == "NO-GO"
    st = _statuses(run, "")
    assert st and {v for k, v in st.items() if not k.startswith(("tls.tls13", "tls.mozilla", "tls.starttls_offered"))} == {"error"}, st
    assert {rid.split("[")[0] for rid in st} >= {
        "tls.protocols_forbidden", "tls.cert_trusted", "http.redirect", "http.hsts", "http.health",
        "cors.allowed_origin", "cors.disallowed_origin", "cors.reflection", "auth.anonymous_refused",
        "auth.rate_limit"}
    assert "ConnectError" in run.one("http.hsts")["reason"]
    assert "no request of the burst was answered" in run.one("auth.rate_limit")["reason"]


def test_health_answering_200_with_a_degraded_body_fails(runs: dict[str, GoliveRun]) -> None:
    run = runs["degraded_health"]
    health = run.one("http.health")
    assert health["status"] == "fail", run.out[-3000:]
    assert health["measured"] == 'HTTP 200, body unhealthy: status = "degraded", not "ok"'
    assert '"database": "unreachable"' in health["evidence"][0]["data"]["body_excerpt"]
    # everything else of the family still passes: only the body gives it away
    assert {rid: r["status"] for rid, r in run.results("http.").items() if rid != "http.health"} == {
        "http.redirect": "pass", "http.hsts": "pass", "http.security_headers": "pass",
        "http.pages[media]": "pass", "http.pages[web_ui]": "pass"}


def test_an_untrusted_chain_fails_trust_and_the_http_checks_still_measure(runs: dict[str, GoliveRun]) -> None:
    run = runs["untrusted_cert"]
    st = _statuses(run, "")
    trust = run.one("tls.cert_trusted[")
    assert trust["status"] == "fail", run.out[-3000:]
    assert trust["measured"].startswith("not trusted: incomplete chain: the issuer OU=Testing CA #"), trust["measured"]
    assert "golive lab CA of CN=localhost,O=golive lab was not sent and is in no trust store" in trust["measured"]
    assert {k for k, v in st.items() if v not in ("pass", "skip")} == {run.one("tls.cert_trusted[")["id"]}, st
    for rid in ("http.hsts", "http.security_headers", "http.health", "cors.reflection", "cors.null_origin",
                "cors.bypass_matrix[https://app.golive.test]"):
        r = run.one(rid)
        assert r["measured"].endswith("(over an unverified TLS connection: the certificate is not trusted)"), r
        assert r["evidence"][0]["raw"].startswith("! measured over an UNVERIFIED TLS connection (TLS certificate "
                                                  "not trusted"), r["evidence"][0]["raw"][:200]
    assert run.one("http.hsts")["measured"].startswith("Strict-Transport-Security: max-age=31536000")
    assert run.one("http.hsts")["evidence"][0]["data"]["tls_unverified"].startswith("TLS certificate not trusted")


def test_an_hsts_header_browsers_ignore_fails(runs: dict[str, GoliveRun]) -> None:
    r = runs["hsts_invalid"].one("http.hsts")
    assert r["status"] == "fail", r
    assert r["measured"] == ("Strict-Transport-Security: max-age=31536000; includeSubDomains; includeSubDomains "
                             "(365 d); invalid, browsers ignore it: includeSubDomains appears twice")


def test_the_compliant_lab_does_not_qualify_for_preload(runs: dict[str, GoliveRun]) -> None:
    r = runs["preload"].one("http.hsts")
    assert r["status"] == "fail" and r["measured"].startswith("Strict-Transport-Security: max-age=31536000; "
                                                              "includeSubDomains (365 d)"), r
    assert r["expected"] == ("max-age >= 365 d (31536000 s); includeSubDomains; preload (the preload list's rules); "
                             "valid RFC 6797 syntax")
    assert r["evidence"][0]["data"]["preload"] is False


def test_hsts_syntax_rules() -> None:
    from checks.http.probes import hsts_problems

    assert hsts_problems("max-age=31536000; includeSubDomains; preload") == []
    assert hsts_problems('max-age="600";; preload') == []
    assert hsts_problems("max-age=31536000, includeSubDomains") == [
        "max-age has the value '31536000, includeSubDomains', neither a token nor a quoted string"]
    assert hsts_problems("includeSubDomains") == ["no max-age directive (required)"]
    assert hsts_problems("max-age=1y") == ["max-age '1y' is not a number of seconds"]
    assert hsts_problems("max-age=10; MAX-AGE=20") == ["MAX-AGE appears twice"]
    assert hsts_problems("max-age=10; preload=yes") == ["preload takes no value"]


def test_mozilla_intermediate_one_result_per_rule(runs: dict[str, GoliveRun]) -> None:
    from checks.tls.probes import MOZILLA_RULES

    ok = runs["moz_compliant"].results("tls.mozilla[")
    assert len(ok) == len(MOZILLA_RULES) and {r["status"] for r in ok.values()} == {"pass"}, ok
    assert next(r for rid, r in ok.items() if rid.endswith("/tls_versions]"))["measured"] == \
        "tls_versions: as Mozilla 'intermediate' asks"
    bad = runs["moz_legacy"].results("tls.mozilla[")
    failed = {rid.split("/", 1)[1].rstrip("]"): r for rid, r in bad.items() if r["status"] == "fail"}
    assert set(failed) >= {"tls_versions", "ciphers"}, {k: r["status"] for k, r in bad.items()}
    versions = failed["tls_versions"]["measured"]
    assert versions.startswith("tls_versions: TLS versions {") and "'TLSv1'" in versions and "'TLSv1.1'" in versions
    assert versions.endswith("are supported, but should be rejected.")
    assert failed["tls_versions"]["expected"] == "every rule of Mozilla's 'intermediate' configuration holds"


def test_health_body_rules() -> None:
    from checks.http.probes import body_verdict

    assert body_verdict(b'{"status": "ok"}', json_field="status", equals="ok")["ok"]
    assert body_verdict(b'{"checks": {"db": true}}', json_field="checks.db")["ok"]
    bad = body_verdict(b'{"checks": {"db": false}}', json_field="checks.db")
    assert not bad["ok"] and bad["why"] == ["checks.db = false (not truthy)"]
    assert body_verdict(b"<html>down</html>", json_field="status")["why"] == ["the body is not JSON"]
    assert body_verdict(b"", json_field="status")["why"] == ["empty body"]
    assert body_verdict(b"UP 3/3", pattern=r"^UP \d+/\d+$")["ok"]
    assert body_verdict(b"DOWN", pattern="^UP")["why"] == ["no match for /^UP/"]


def test_probe_parsers() -> None:
    from checks.auth.probes import split_path
    from checks.http.probes import parse_hsts

    assert parse_hsts('max-age="600"; includeSubDomains; preload') == {
        "max_age": 600, "include_subdomains": True, "preload": True}
    assert parse_hsts("includeSubDomains")["max_age"] is None
    assert split_path("POST /v1/analyze") == ("POST", "/v1/analyze")
    assert split_path("/v1/stats") == ("GET", "/v1/stats")
