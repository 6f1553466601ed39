"""Bindings for features/tls.feature: one sslyze scan of every TLS endpoint (checks.tls,
cached for the session), judged item by item against the profile's ``tls`` block."""
from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable
from typing import Any

from pytest_bdd import scenarios, then, when

from checks import tls as probe
from golive.model import Measurement
from golive.profile import TlsReq

scenarios("tls.feature")


@dataclasses.dataclass(frozen=True)
class TlsRun:
    """The scans of the target's TLS endpoints, and the endpoints that could not even be
    named (a plain http URL where TLS is expected)."""

    scans: dict[str, probe.TlsScan]
    invalid: dict[str, str]


def tls_endpoints(target: Any) -> tuple[list[probe.TlsEndpoint], dict[str, str]]:
    """The TLS endpoints of a target: ``endpoints.public``, ``endpoints.health`` (when it is
    https), and ``endpoints.tls``; ``endpoints.server_name`` is the name validated for the
    public host.  Returns the endpoints and {value: reason} for unusable values."""
    ep = target.endpoints
    ca = ep.ca_file
    public_host = urllib.parse.urlsplit(ep.public).hostname if ep.public else None
    found: dict[str, probe.TlsEndpoint] = {}
    invalid: dict[str, str] = {}

    def add(value: str, server_name: str | None) -> None:
        try:
            e = probe.endpoint_from(value, ca_file=ca, server_name=server_name)
        except ValueError as exc:
            invalid[value] = str(exc)
            return
        found.setdefault(e.key, e)

    if ep.public:
        add(ep.public, ep.server_name)
    if ep.health and ep.health.startswith("https://"):
        add(ep.health, ep.server_name if urllib.parse.urlsplit(ep.health).hostname == public_host else None)
    for value in ep.tls:
        add(value, None)
    return list(found.values()), invalid


@when("the TLS endpoints of the target are scanned", target_fixture="tls_run")
def scan_endpoints(golive: Any) -> TlsRun:
    endpoints, invalid = tls_endpoints(golive.target)
    return TlsRun(probe.scan(endpoints), invalid)


def _judge(golive: Any, run: TlsRun, check: str, *, expected: Callable[[TlsReq], str],
           measure: Callable[[probe.TlsScan, TlsReq], Measurement], ok: Callable[[TlsReq], Callable[[Any], bool]],
           remediation: str, applies: Callable[[TlsReq], str | None] = lambda r: None) -> None:
    req: TlsReq | None = golive.req.tls if golive.req else None
    if req is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' has no tls requirements")
        return
    not_applicable = applies(req)
    if not_applicable:
        golive.checks.skip(check, not_applicable, block=req)
        return
    want = expected(req)
    if not run.scans and not run.invalid:
        golive.checks.error(check, "the target names no TLS endpoint (endpoints.public, endpoints.tls)",
                            block=req, expected=want)
        return
    for value, reason in run.invalid.items():
        golive.checks.error(f"{check}[{value}]", reason, block=req, expected=want)
    for key, scan in sorted(run.scans.items()):
        golive.checks.record(f"{check}[{key}]", block=req, expected=want, measurement=measure(scan, req),
                             ok=ok(req), remediation=remediation)


@then("no forbidden protocol version is offered")
def judge_forbidden(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.protocols_forbidden",
           expected=lambda r: f"none of {', '.join(r.forbid)} offered",
           measure=lambda s, r: probe.protocols_offered(s, r.forbid),
           ok=lambda r: lambda offered: not offered,
           applies=lambda r: None if r.forbid else "the profile forbids no protocol version",
           remediation="disable the listed versions (nginx: ssl_protocols TLSv1.2 TLSv1.3;)")


@then("the lowest protocol version offered is at least the profile's minimum")
def judge_min_version(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.min_version",
           expected=lambda r: f"lowest version offered >= TLSv{r.min_version}",
           measure=lambda s, r: probe.lowest_version(s),
           ok=lambda r: lambda lowest: probe.version_rank(lowest) >= probe.version_rank(r.min_version),
           remediation="refuse every version below the minimum (nginx ssl_protocols)")


@then("TLS 1.3 is offered where the profile requires it")
def judge_tls13(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.tls13", expected=lambda r: "TLS 1.3 offered",
           measure=lambda s, r: probe.tls13_offered(s), ok=lambda r: bool,
           applies=lambda r: (None if r.require_tls13 or r.min_version == "1.3"
                              else f"profile '{golive.profile.name}' does not require TLS 1.3 (require_tls13)"),
           remediation="enable TLS 1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3; OpenSSL >= 1.1.1)")


def _weak_expected(r: TlsReq) -> str:
    text = "no NULL, anonymous, EXPORT, RC4, RC2, DES/3DES or < 128-bit suites"
    if r.require_aead:
        text += "; AEAD suites only"
    if r.require_forward_secrecy:
        text += "; (EC)DHE key exchange only"
    return text


@then("no weak cipher suite is accepted")
def judge_weak(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.weak_ciphers", expected=_weak_expected,
           measure=lambda s, r: probe.weak_suites(s, require_aead=r.require_aead,
                                                  require_forward_secrecy=r.require_forward_secrecy),
           ok=lambda r: lambda weak: not weak,
           applies=lambda r: (None if r.forbid_weak_ciphers or r.require_aead or r.require_forward_secrecy
                              else "the profile does not restrict cipher suites"),
           remediation="restrict ssl_ciphers to ECDHE with AES-GCM or CHACHA20-POLY1305 "
                       "(Mozilla 'intermediate' configuration)")


@then("each certificate chains to a trusted root")
def judge_trusted(golive: Any, tls_run: TlsRun) -> None:
    ca = golive.target.endpoints.ca_file
    _judge(golive, tls_run, "tls.cert_trusted",
           expected=lambda r: "chain to a trusted root (" + (f"CA file {ca}" if ca else "system CA store")
           + " or sslyze's trust stores)",
           measure=lambda s, r: probe.cert_trusted(s), ok=lambda r: bool,
           remediation="serve a certificate from a trusted CA with its full intermediate chain "
                       "(or name the private CA in endpoints.ca_file)")


@then("each certificate names the host it is served for")
def judge_hostname(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.hostname", expected=lambda r: "the host name is in the certificate's subjectAltName",
           measure=lambda s, r: probe.hostname_match(s), ok=lambda r: bool,
           remediation="issue the certificate for the host name clients use (subjectAltName)")


@then("each certificate has at least the required days left before it expires")
def judge_days_left(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.cert_days_left", expected=lambda r: f">= {r.cert_min_days_left} days left",
           measure=lambda s, r: probe.cert_days_left(s), ok=lambda r: lambda days: days >= r.cert_min_days_left,
           remediation="renew the certificate (and check that automatic renewal runs)")


def _key_ok(r: TlsReq) -> Callable[[Any], bool]:
    def ok(key: dict[str, Any]) -> bool:
        if key["type"] in ("RSA", "DSA"):
            return int(key["bits"]) >= r.min_rsa_bits
        return int(key["bits"]) >= r.min_ec_bits

    return ok


@then("each certificate key has at least the required size")
def judge_key_size(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.key_size",
           expected=lambda r: f"RSA >= {r.min_rsa_bits} bits, EC >= {r.min_ec_bits} bits",
           measure=lambda s, r: probe.key_size(s), ok=_key_ok,
           remediation="issue the certificate with a stronger key (RSA 2048+ or ECDSA P-256+)")


@then("no known TLS vulnerability is found")
def judge_vulnerabilities(golive: Any, tls_run: TlsRun) -> None:
    _judge(golive, tls_run, "tls.vulnerabilities",
           expected=lambda r: "not vulnerable to Heartbleed, ROBOT, CCS injection, insecure or client-initiated "
                              "renegotiation, compression",
           measure=lambda s, r: probe.vulnerabilities(s), ok=lambda r: lambda found: not found,
           applies=lambda r: None if r.vulnerabilities else "the profile does not ask for vulnerability checks",
           remediation="update OpenSSL and the TLS server; disable client-initiated renegotiation and compression")
