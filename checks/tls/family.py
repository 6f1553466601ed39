"""The TLS family, declared: protocol versions, cipher suites, the certificate and known
vulnerabilities of every TLS endpoint of the target.

Reads ``requirements.tls`` and the target's ``endpoints`` (public, health when it is https,
tls -- which may name STARTTLS services, ``postgres://db:5432`` --, server_name, ca_file).
Every endpoint is scanned once per run by one sslyze Scanner (``ctx.memo``): every check
reads that one scan.
"""
from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from golive.blocks import Block
from golive.checkdef import Check, CheckContext, Family, Skipped
from golive.model import Evidence, Measurement, Severity

if TYPE_CHECKING:
    from checks.tls.probes import TlsEndpoint, TlsScan


ProtocolVersion = Literal["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"]
OBSOLETE: list[ProtocolVersion] = ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"]


class TlsReq(Block):
    """What every TLS endpoint must offer and refuse: protocol versions, cipher suites,
    certificate validity and key size, known vulnerabilities (profile: requirements.tls)."""

    min_version: Literal["1.2", "1.3"] = "1.2"
    require_tls13: bool = False
    forbid: list[ProtocolVersion] = Field(default_factory=lambda: list(OBSOLETE))
    forbid_weak_ciphers: bool = True
    require_aead: bool = False
    require_forward_secrecy: bool = Field(default=False, description="TLS 1.2 and below: (EC)DHE key exchange only")
    cert_min_days_left: int = Field(default=14, ge=0, le=3650)
    min_rsa_bits: int = Field(default=2048, ge=512, le=16384)
    min_ec_bits: int = Field(default=256, ge=128, le=1024)
    vulnerabilities: bool = True
    min_dh_bits: int = Field(default=2048, ge=0, description="smallest finite-field DHE group offered")
    min_ecdh_bits: int = Field(default=256, ge=0, description="smallest ECDHE curve offered (X25519 counts as 256)")
    mozilla: Literal["modern", "intermediate", "old"] | None = Field(
        default=None, description="judge every endpoint against this Mozilla server-side TLS configuration "
                                  "(sslyze's checker, one result per rule)")


def tls_endpoints(target: Any) -> tuple[list[TlsEndpoint], dict[str, str]]:
    """The TLS endpoints of a target: ``endpoints.public``, ``endpoints.health`` (when it is
    https), and ``endpoints.tls`` (host:port, https URLs and STARTTLS services such as
    ``postgres://db:5432``); ``endpoints.server_name`` is the name validated for the public
    host.  Returns the endpoints and {value: reason} for unusable values."""
    from checks.tls import probes

    ep = target.endpoints
    ca = ep.ca_file
    public_host = urllib.parse.urlsplit(ep.public).hostname if ep.public else None
    found: dict[str, TlsEndpoint] = {}
    invalid: dict[str, str] = {}

    def add(value: str, server_name: str | None) -> None:
        try:
            e = probes.endpoint_from(value, ca_file=ca, server_name=server_name, resolve=ep.resolve)
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


def _scans(ctx: CheckContext) -> tuple[dict[str, TlsScan], dict[str, str]]:
    """The run's one scan of the target's TLS endpoints (shared by every TLS check)."""
    from checks.tls import probes

    endpoints, invalid = tls_endpoints(ctx.target)
    mozilla = ctx.req.mozilla if ctx.req is not None else None
    key = ("tls.scan", tuple(sorted(set(endpoints))), mozilla)
    scans: dict[str, TlsScan] = ctx.memo(key, lambda: probes.scan(endpoints, mozilla=mozilla))
    return scans, invalid


def _measure_scans(ctx: CheckContext, read: Callable[[str, TlsScan], dict[str, Measurement]]
                   ) -> Measurement | dict[str, Measurement | Skipped]:
    """``read(key, scan)`` over each endpoint's scan; an unusable endpoint value is an error
    of its own; no endpoint at all is one error.  A STARTTLS service that refused the upgrade
    has no TLS to judge: skipped here, it fails ``tls.starttls_offered``."""
    scans, invalid = _scans(ctx)
    if not scans and not invalid:
        return Measurement.failed("the target names no TLS endpoint (endpoints.public, endpoints.tls)",
                                  Evidence(probe="tls.scan", subject=ctx.target.name, method="target file"))
    out: dict[str, Measurement | Skipped] = {
        value: Measurement.failed(reason, Evidence(probe="tls.scan", subject=value, method="target file"))
        for value, reason in invalid.items()}
    for key, scan in sorted(scans.items()):
        if scan.facts.get("tls_offered") is False:
            out[key] = Skipped(f"no TLS to judge: {scan.facts['starttls_refusal']} (tls.starttls_offered fails)")
            continue
        out.update(read(key, scan))
    return out


def _starttls_applies(ctx: CheckContext) -> str | None:
    """Skip reason when the target names no STARTTLS endpoint (read from the target, no scan)."""
    endpoints, _ = tls_endpoints(ctx.target)
    if any(e.starttls for e in endpoints):
        return None
    return "the target names no STARTTLS service in endpoints.tls (postgres://, smtp://, ...)"


def _starttls(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    """Whether each STARTTLS endpoint of the target accepts the upgrade (the same scan)."""
    from checks.tls import probes

    scans, _ = _scans(ctx)
    return {key: probes.starttls_offered(scan) for key, scan in sorted(scans.items()) if scan.endpoint.starttls}


def _per_endpoint(read: Callable[[TlsScan, TlsReq], Measurement]) -> Callable[[CheckContext], Any]:
    """A measure function: ``read`` applied to each endpoint's scan (one result each)."""

    def measure(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
        return _measure_scans(ctx, lambda key, scan: {key: read(scan, ctx.req)})

    return measure


def _protocols(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.protocols_offered(s, r.forbid)


def _lowest(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.lowest_version(s)


def _min_version_ok(r: TlsReq, lowest: str) -> bool:
    from checks.tls import probes
    return probes.version_rank(lowest) >= probes.version_rank(r.min_version)


def _tls13(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.tls13_offered(s)


def _weak(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.weak_suites(s, require_aead=r.require_aead, require_forward_secrecy=r.require_forward_secrecy)


def _weak_expected(r: TlsReq) -> str:
    text = "no NULL, anonymous, EXPORT, RC4, RC2, DES/3DES or < 128-bit suites"
    if r.require_aead:
        text += "; AEAD suites only"
    if r.require_forward_secrecy:
        text += "; (EC)DHE key exchange only"
    return text


def _trusted(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.cert_trusted(s)


def _hostname(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.hostname_match(s)


def _days_left(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.cert_days_left(s)


def _key(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.key_size(s)


def _key_ok(r: TlsReq, key: dict[str, Any]) -> bool:
    if key["type"] in ("RSA", "DSA"):
        return int(key["bits"]) >= r.min_rsa_bits
    return int(key["bits"]) >= r.min_ec_bits


def _kx(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.key_exchange(s)


def _kx_ok(r: TlsReq, v: dict[str, Any]) -> bool:
    return ((v["min_dh_bits"] is None or v["min_dh_bits"] >= r.min_dh_bits)
            and (v["min_ecdh_bits"] is None or v["min_ecdh_bits"] >= r.min_ecdh_bits))


def _mozilla(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
    """sslyze's Mozilla checker, one result per endpoint and rule (``host:port/rule``)."""
    from checks.tls import probes

    return _measure_scans(ctx, lambda key, scan: {f"{key}/{rule}": m
                                                  for rule, m in probes.mozilla_rules(scan).items()})


def _vulns(s: TlsScan, r: TlsReq) -> Measurement:
    from checks.tls import probes
    return probes.vulnerabilities(s)


def _tls13_applies(ctx: CheckContext) -> str | None:
    r: TlsReq = ctx.req
    if r.require_tls13 or r.min_version == "1.3":
        return None
    return f"profile '{ctx.profile_name}' does not require TLS 1.3 (require_tls13)"


_VERIFY = "name the TLS endpoints in the target (endpoints.public, endpoints.tls) and make them reachable from " \
          "the checking host"

FAMILY = Family(
    name="tls",
    title="TLS protocol, cipher and certificate checks",
    feature="tls.feature",
    profile_block=TlsReq,
    checks=(
        Check(
            id="tls.starttls_offered",
            title="STARTTLS services offer TLS",
            severity=Severity.CRITICAL,
            refs=("AW-TLS-06",),
            measures="whether each STARTTLS endpoint of endpoints.tls (postgres://, smtp://, ...) accepts the upgrade "
                     "to TLS and completes a handshake (sslyze; PostgreSQL: the answer to an SSLRequest)",
            applies=_starttls_applies,
            measure=_starttls,
            expected="the service upgrades the connection to TLS",
            passes=lambda r, offered: offered is True,
            remediation="turn TLS on for the service (PostgreSQL: ssl = on with ssl_cert_file and ssl_key_file, "
                        "then reload) so that clients can encrypt their sessions",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.protocols_forbidden",
            title="Obsolete protocol versions are refused",
            severity=Severity.CRITICAL,
            refs=("DS-TLS-01",),
            measures="protocol versions each TLS endpoint accepts (sslyze cipher-suite scans, SSL 2.0 to TLS 1.3)",
            applies=lambda ctx: None if ctx.req.forbid else "the profile forbids no protocol version",
            measure=_per_endpoint(_protocols),
            expected=lambda r: f"none of {', '.join(r.forbid)} offered",
            passes=lambda r, offered: not offered,
            remediation="disable the listed versions (nginx: ssl_protocols TLSv1.2 TLSv1.3;)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.min_version",
            title="The oldest protocol version offered meets the minimum",
            severity=Severity.CRITICAL,
            refs=("DS-TLS-01",),
            measures="the lowest protocol version each TLS endpoint accepts (sslyze)",
            measure=_per_endpoint(_lowest),
            expected=lambda r: f"lowest version offered >= TLSv{r.min_version}",
            passes=_min_version_ok,
            remediation="refuse every version below the minimum (nginx ssl_protocols)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.tls13",
            title="TLS 1.3 is offered",
            severity=Severity.HIGH,
            refs=("AW-TLS-01",),
            measures="whether each TLS endpoint accepts a TLS 1.3 handshake (sslyze)",
            applies=_tls13_applies,
            measure=_per_endpoint(_tls13),
            expected="TLS 1.3 offered",
            passes=lambda r, offered: bool(offered),
            remediation="enable TLS 1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3; OpenSSL >= 1.1.1)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.weak_ciphers",
            title="No weak cipher suite is accepted",
            severity=Severity.HIGH,
            refs=("AW-TLS-02",),
            measures="cipher suites each TLS endpoint accepts, classified (NULL, anonymous, EXPORT, RC4, DES, "
                     "< 128-bit; optionally non-AEAD, no forward secrecy) (sslyze)",
            applies=lambda ctx: (None if ctx.req.forbid_weak_ciphers or ctx.req.require_aead
                                 or ctx.req.require_forward_secrecy else "the profile does not restrict cipher suites"),
            measure=_per_endpoint(_weak),
            expected=_weak_expected,
            passes=lambda r, weak: not weak,
            remediation="restrict ssl_ciphers to ECDHE with AES-GCM or CHACHA20-POLY1305 "
                        "(Mozilla 'intermediate' configuration)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.cert_trusted",
            title="The certificate chain is trusted",
            severity=Severity.CRITICAL,
            refs=("DS-TLS-01", "AW-TLS-03", "ST-TLS-01"),
            measures="path validation of each endpoint's certificate chain against the target's CA file (or the "
                     "system CA store) and sslyze's trust stores",
            measure=_per_endpoint(_trusted),
            expected="chain to a trusted root (endpoints.ca_file or the system CA store, or sslyze's trust stores)",
            passes=lambda r, trusted: bool(trusted),
            remediation="serve a certificate from a trusted CA with its full intermediate chain "
                        "(or name the private CA in endpoints.ca_file)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.hostname",
            title="The certificate matches the host name",
            severity=Severity.CRITICAL,
            refs=("DS-TLS-01", "ST-TLS-01"),
            measures="the leaf certificate's subjectAltName against the endpoint's name (RFC 6125 matching)",
            measure=_per_endpoint(_hostname),
            expected="the host name is in the certificate's subjectAltName",
            passes=lambda r, matches: bool(matches),
            remediation="issue the certificate for the host name clients use (subjectAltName)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.cert_days_left",
            title="The certificate is valid for long enough",
            severity=Severity.CRITICAL,
            refs=("DS-TLS-01", "AW-TLS-03", "ST-TLS-01"),
            measures="days until the leaf certificate's notAfter",
            measure=_per_endpoint(_days_left),
            expected=lambda r: f">= {r.cert_min_days_left} days left",
            passes=lambda r, days: days >= r.cert_min_days_left,
            remediation="renew the certificate (and check that automatic renewal runs)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.key_size",
            title="The certificate key is strong enough",
            severity=Severity.HIGH,
            refs=("AW-TLS-03", "ST-TLS-01"),
            measures="type and size of the leaf certificate's public key",
            measure=_per_endpoint(_key),
            expected=lambda r: f"RSA >= {r.min_rsa_bits} bits, EC >= {r.min_ec_bits} bits",
            passes=_key_ok,
            remediation="issue the certificate with a stronger key (RSA 2048+ or ECDSA P-256+)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.key_exchange",
            title="The ephemeral key exchange is strong enough",
            severity=Severity.HIGH,
            refs=("AW-TLS-02",),
            measures="the DHE group sizes and ECDHE curves of the keys each endpoint sends with its accepted suites "
                     "(sslyze)",
            measure=_per_endpoint(_kx),
            expected=lambda r: f"DHE groups >= {r.min_dh_bits} bits, ECDHE curves >= {r.min_ecdh_bits} bits",
            passes=_kx_ok,
            remediation="drop DHE suites or give nginx a 2048-bit+ group (ssl_dhparam, RFC 7919 ffdhe2048); "
                        "offer X25519, P-256 or P-384 only (ssl_ecdh_curve X25519:prime256v1:secp384r1)",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.mozilla",
            title="The endpoint follows the Mozilla server-side TLS configuration",
            severity=Severity.HIGH,
            refs=("AW-TLS-02",),
            measures="sslyze's Mozilla checker (versions, suites, curves, DH/ECDH sizes, certificate type, key, "
                     "signature and lifespan, vulnerabilities) against the profile's configuration, one result "
                     "per rule",
            applies=lambda ctx: None if ctx.req.mozilla else "the profile names no Mozilla configuration (mozilla)",
            measure=_mozilla,
            expected=lambda r: f"every rule of Mozilla's '{r.mozilla}' configuration holds",
            passes=lambda r, issue: issue is None,
            remediation=lambda r, m: f"configure the server as https://ssl-config.mozilla.org/ '{r.mozilla}' says "
                                     f"({m.display})",
            verify_hint=_VERIFY,
        ),
        Check(
            id="tls.vulnerabilities",
            title="No known TLS vulnerability",
            severity=Severity.CRITICAL,
            refs=("DS-TLS-01", "AW-TLS-02"),
            measures="sslyze's Heartbleed, ROBOT, CCS injection, renegotiation and compression tests",
            applies=lambda ctx: None if ctx.req.vulnerabilities else "the profile does not ask for vulnerability checks",
            measure=_per_endpoint(_vulns),
            expected="not vulnerable to Heartbleed, ROBOT, CCS injection, insecure or client-initiated "
                     "renegotiation, compression",
            passes=lambda r, found: not found,
            remediation="update OpenSSL and the TLS server; disable client-initiated renegotiation and compression",
            verify_hint=_VERIFY,
        ),
    ),
)
