"""TLS probes: protocol versions, cipher suites, certificate and known vulnerabilities.

Every TLS endpoint of the target is scanned by ONE sslyze :class:`~sslyze.Scanner` (the
servers are scanned concurrently), once per process: :func:`scan` caches the result by the
set of endpoints, so the TLS checks of a run share a single scan.  The scan runs these
sslyze commands: the six per-version cipher-suite scans (SSL 2.0 to TLS 1.3),
``certificate_info`` (with the target's CA file, or the system CA bundle, as an extra trust
store next to sslyze's own), ``heartbleed``, ``robot``, ``openssl_ccs_injection``,
``session_renegotiation`` and ``tls_compression``.  A STARTTLS endpoint (``postgres://``,
``smtp://``, ...) is scanned the same way, sslyze performing the protocol's upgrade before
every handshake; a service that answers the upgrade with "no" is recorded as such
(``facts["tls_offered"] = False``), not as an unreachable endpoint.

The measurement helpers (:func:`protocols_offered`, :func:`lowest_version`, ...) turn one
endpoint's scan into a :class:`~golive.model.Measurement`; they never judge.  A scan that
could not connect, or a command that failed, gives ``Measurement.failed`` with the reason.

Certificate facts are separated the way an auditor asks about them: sslyze's path
validation mixes trust, host name and validity period into one answer, so the chain is
validated again (with sslyze's own trust stores) for a name the leaf does carry and at a
time inside the certificates' validity: that answers "is the chain trusted" alone.  The host
name is then checked against the subjectAltName, and the days left are computed from the
leaf's notAfter.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from golive.model import Evidence, Measurement, utcnow

#: sslyze's attempt field -> protocol version label (ordered, oldest first).
VERSIONS: dict[str, str] = {
    "ssl_2_0_cipher_suites": "SSLv2",
    "ssl_3_0_cipher_suites": "SSLv3",
    "tls_1_0_cipher_suites": "TLSv1.0",
    "tls_1_1_cipher_suites": "TLSv1.1",
    "tls_1_2_cipher_suites": "TLSv1.2",
    "tls_1_3_cipher_suites": "TLSv1.3",
}
VERSION_ORDER: tuple[str, ...] = tuple(VERSIONS.values())
VULN_COMMANDS: tuple[str, ...] = ("heartbleed", "robot", "openssl_ccs_injection", "session_renegotiation",
                                  "tls_compression")
VULN_LABELS: dict[str, str] = {
    "heartbleed": "Heartbleed (CVE-2014-0160)",
    "robot": "ROBOT (RSA padding oracle)",
    "ccs_injection": "OpenSSL CCS injection (CVE-2014-0224)",
    "insecure_renegotiation": "insecure renegotiation (no RFC 5746 secure renegotiation)",
    "client_renegotiation": "client-initiated renegotiation accepted (DoS)",
    "compression": "TLS compression (CRIME)",
}
_ROBOT_OK = ("NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED")
_ROBOT_BAD = ("VULNERABLE_STRONG_ORACLE", "VULNERABLE_WEAK_ORACLE")


def version_rank(label: str) -> int:
    """Position of a version label (``TLSv1.2``) or profile value (``1.2``) in VERSION_ORDER."""
    if label[:1].isdigit():
        label = f"TLSv{label}"
    return VERSION_ORDER.index(label)


def _tool() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from sslyze.__version__ import __version__ as sslyze_version

    try:
        nassl = version("nassl")
    except PackageNotFoundError:  # pragma: no cover - metadata missing
        nassl = "?"
    return f"sslyze {sslyze_version} (nassl {nassl})"


# ----------------------------------------------------------------------------- endpoints

@dataclasses.dataclass(frozen=True, order=True)
class TlsEndpoint:
    """One TLS endpoint: where to connect and which name the certificate must carry.

    ``host``/``port``: from the URL; ``server_name``: SNI and the name validated against the
    certificate (the URL's host unless the target sets ``endpoints.server_name``);
    ``ca_file``: an extra trust anchor file ("" = the system CA bundle); ``starttls``: the
    plaintext protocol upgraded to TLS before the handshake (``postgres``, ``smtp``, ...;
    "" = TLS from the first byte).
    """

    host: str
    port: int
    server_name: str
    ca_file: str = ""
    address: str = ""  # pinned (endpoints.resolve): connect here instead of resolving host
    starttls: str = ""

    @property
    def key(self) -> str:
        hostport = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return f"{self.starttls}://{hostport}" if self.starttls else hostport


#: STARTTLS protocol (the target's URL scheme) -> what the scan sends before the handshake, for the evidence.
STARTTLS_UPGRADE: dict[str, str] = {
    "postgres": "PostgreSQL SSLRequest", "smtp": "SMTP EHLO + STARTTLS", "imap": "IMAP STARTTLS",
    "pop3": "POP3 STLS", "ftp": "FTP AUTH TLS", "ldap": "LDAP StartTLS extended operation",
    "xmpp": "XMPP <starttls/> (client stream)", "xmpp-server": "XMPP <starttls/> (server stream)",
    "rdp": "RDP negotiation request (PROTOCOL_SSL)",
}


def endpoint_from(url_or_hostport: str, *, ca_file: str | None = None,
                  server_name: str | None = None, resolve: Mapping[str, str] | None = None) -> TlsEndpoint:
    """A :class:`TlsEndpoint` from ``https://host[:port]/...``, ``host:port`` or a STARTTLS
    service ``postgres://host[:port]`` (smtp://, imap://, ...: golive.urls.STARTTLS_PORTS);
    ValueError for a plain http URL or a malformed value."""
    from golive.urls import starttls_url

    starttls = ""
    if "://" in url_or_hostport and not url_or_hostport.lower().startswith(("https://", "http://")):
        starttls, host, port = starttls_url(url_or_hostport)
    elif "://" in url_or_hostport:
        u = urllib.parse.urlsplit(url_or_hostport)
        if u.scheme != "https":
            raise ValueError(f"{url_or_hostport} is not an https URL: no TLS to scan")
        host, port = u.hostname or "", u.port or 443
    else:
        h, _, p = url_or_hostport.rpartition(":")
        if not h or not p.isdigit():
            raise ValueError(f"'{url_or_hostport}' is not host:port")
        host, port = h.strip("[]"), int(p)
    if not host:
        raise ValueError(f"no host in '{url_or_hostport}'")
    return TlsEndpoint(host=host, port=port, server_name=server_name or host, ca_file=ca_file or "",
                       address=(resolve or {}).get(host.lower(), ""), starttls=starttls)


def system_ca_file() -> str:
    """The system CA bundle OpenSSL uses (``""`` when there is none)."""
    paths = ssl.get_default_verify_paths()
    for cand in (paths.cafile, paths.openssl_cafile):
        if cand and Path(cand).is_file():
            return cand
    return ""


# ----------------------------------------------------------------------------- scan results

@dataclasses.dataclass(frozen=True)
class TlsScan:
    """What one sslyze scan found on one endpoint (plain data, JSON-able ``facts``).

    ``error``: the endpoint could not be scanned at all (unresolvable, refused, no TLS).
    ``facts`` keys: ``address``, ``accepted`` (version -> suite names), ``suites`` (list of
    dicts), ``command_errors`` (command -> reason), ``certificates`` (one dict per
    certificate deployment), ``vulnerabilities``.
    """

    endpoint: TlsEndpoint
    error: str | None
    facts: dict[str, Any]
    started_at: str
    duration_s: float
    tool: str
    commands: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.endpoint.key

    def evidence(self, probe: str, raw: str, data: dict[str, Any]) -> Evidence:
        ep = self.endpoint
        address = self.facts.get("address") or "unresolved"
        if ep.address:
            address += " pinned in endpoints.resolve"
        ca = ep.ca_file or "system CA bundle"
        upgrade = f"STARTTLS: {STARTTLS_UPGRADE[ep.starttls]}, then TLS; " if ep.starttls else ""
        return Evidence(
            probe=probe, subject=ep.key, tool=self.tool, raw=raw, measured_at=self.started_at,
            duration_s=self.duration_s, data=data,
            method=(f"sslyze scan of {ep.key} ({upgrade}address {address}, SNI {ep.server_name}; extra trust anchors: {ca}); "
                    f"commands: {', '.join(self.commands)}; one scan shared by every TLS check of the run"))


_CACHE: dict[tuple[tuple[TlsEndpoint, ...], str | None], dict[str, TlsScan]] = {}
_CACHE_LOCK = threading.Lock()
SCAN_STATS: dict[str, int] = {"scans": 0}


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


MOZILLA_RULES: tuple[str, ...] = (
    "certificate_path_validation", "certificate_types", "certificate_curves", "certificate_signatures",
    "rsa_key_size", "maximum_certificate_lifespan", "tls_versions", "ciphersuites", "ciphers", "ecdh_param_size",
    "dh_param_size", "tls_curves", "tls_vulnerability_compression", "tls_vulnerability_ccs_injection",
    "tls_vulnerability_fallback_scsv", "tls_vulnerability_heartbleed", "tls_vulnerability_robot",
    "tls_vulnerability_renegotiation", "tls_vulnerability_extended_master_secret")

#: bound on one whole scan (every endpoint, every command): sslyze's own timeout is per
#: network operation, and a server that dribbles bytes keeps a scan going for minutes.
SCAN_DEADLINE_S = 120.0


def scan(endpoints: Sequence[TlsEndpoint], *, timeout_s: int = 5, mozilla: str | None = None,
         deadline_s: float = SCAN_DEADLINE_S) -> dict[str, TlsScan]:
    """Scan every endpoint with one sslyze Scanner; cached per set of endpoints.

    Returns ``{endpoint.key: TlsScan}``.  Never raises for an endpoint that cannot be
    scanned: its ``TlsScan.error`` says why.  ``timeout_s`` bounds each network operation
    (sslyze retries a failed connection once); ``deadline_s`` bounds the whole scan: it runs
    in a child process that is killed at the deadline (sslyze's threads cannot be
    interrupted), and an endpoint whose result had not come by then is an error that says
    so with the elapsed time.
    """
    key = tuple(sorted(set(endpoints)))
    if not key:
        return {}
    with _CACHE_LOCK:
        if (key, mozilla) not in _CACHE:
            _CACHE[(key, mozilla)] = _scan_bounded(key, timeout_s, deadline_s, mozilla)
            SCAN_STATS["scans"] += 1
        return _CACHE[(key, mozilla)]


def _scan_to_json(s: TlsScan) -> str:
    d = dataclasses.asdict(s)
    d["commands"] = list(s.commands)
    return json.dumps(d, default=str)


def _scan_from_json(line: str) -> TlsScan:
    d = json.loads(line)
    return TlsScan(TlsEndpoint(**d["endpoint"]), d["error"], d["facts"], d["started_at"], d["duration_s"],
                   d["tool"], tuple(d["commands"]))


def _scan_bounded(endpoints: tuple[TlsEndpoint, ...], timeout_s: int, deadline_s: float,
                  mozilla: str | None = None) -> dict[str, TlsScan]:
    """:func:`_scan_uncached` in a child process (``python -m checks.tls.probes``) that streams one
    JSON line per finished endpoint and is killed at ``deadline_s``."""
    import selectors
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])  # the checkout: checks/tls/probes.py
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    started_at, started = utcnow(), time.monotonic()
    request = json.dumps({"timeout_s": timeout_s, "mozilla": mozilla,
                          "endpoints": [dataclasses.asdict(e) for e in endpoints]})
    proc = subprocess.Popen([sys.executable, "-m", "checks.tls.probes"], cwd=root, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    out: dict[str, TlsScan] = {}
    buf = b""
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request.encode())
        proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(out) < len(endpoints):
            left = deadline_s - (time.monotonic() - started)
            if left <= 0 or not sel.select(timeout=left):
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    s = _scan_from_json(line.decode())
                    out[s.key] = s
        sel.close()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    elapsed = round(time.monotonic() - started, 3)
    names = tuple(sorted(_COMMANDS))
    for ep in endpoints:
        if ep.key in out:
            continue
        if elapsed >= deadline_s:
            reason = (f"sslyze scan of {ep.key} did not finish within the {deadline_s:g} s deadline "
                      f"(gave up after {elapsed:.2f} s)")
        else:
            reason = f"sslyze scan of {ep.key} ended without a result: {stderr.strip()[-300:] or 'no output'}"
        out[ep.key] = TlsScan(ep, reason, {"address": None}, started_at, elapsed, _tool(), names)
    return out


_COMMANDS = ("certificate_info", "heartbleed", "openssl_ccs_injection", "robot", "session_renegotiation",
             "ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites",
             "tls_1_2_cipher_suites", "tls_1_3_cipher_suites", "tls_compression")


def _worker_main() -> None:
    """The child side of :func:`_scan_bounded`: request on stdin, one JSON line per result."""
    import sys

    req = json.loads(sys.stdin.read())
    endpoints = tuple(TlsEndpoint(**e) for e in req["endpoints"])

    def emit(s: TlsScan) -> None:
        sys.stdout.write(_scan_to_json(s) + "\n")
        sys.stdout.flush()

    _scan_uncached(endpoints, int(req["timeout_s"]), req.get("mozilla"), emit)


def _resolve(host: str, port: int) -> str:
    """One address for ``host`` (IPv4 preferred, like sslyze); ValueError when it does not
    resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host}: {exc.strerror}") from None
    v4 = [i for i in infos if i[0] == socket.AF_INET]
    return str((v4 or infos)[0][4][0])


def _trace_text(trace: Any) -> str:
    if trace is None:
        return "unknown error"
    exc_type = getattr(trace, "exc_type", None)
    name = getattr(exc_type, "__name__", None) or str(getattr(trace, "exc_type_str", "")).rsplit(".", 1)[-1]
    return f"{name}: {trace}"[:500] if name else str(trace)[:500]


def _scan_uncached(endpoints: tuple[TlsEndpoint, ...], timeout_s: int,
                   mozilla: str | None = None,
                   emit: Callable[[TlsScan], None] | None = None) -> dict[str, TlsScan]:
    """One sslyze Scanner over ``endpoints``; ``emit`` gets each result as it is known."""
    from sslyze.connection_helpers.opportunistic_tls_helpers import ProtocolWithOpportunisticTlsEnum
    from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
    from sslyze.plugins.scan_commands import ScanCommand
    from sslyze.scanner.models import ScanCommandsExtraArguments, ServerConnectivityStatusEnum, ServerScanRequest
    from sslyze.scanner.scanner import Scanner
    from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

    commands = {ScanCommand.CERTIFICATE_INFO, ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES,
                ScanCommand.TLS_1_0_CIPHER_SUITES, ScanCommand.TLS_1_1_CIPHER_SUITES,
                ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES, ScanCommand.HEARTBLEED,
                ScanCommand.ROBOT, ScanCommand.OPENSSL_CCS_INJECTION, ScanCommand.SESSION_RENEGOTIATION,
                ScanCommand.TLS_COMPRESSION}
    if mozilla:  # what sslyze's Mozilla checker needs besides
        commands |= {ScanCommand.ELLIPTIC_CURVES, ScanCommand.TLS_FALLBACK_SCSV, ScanCommand.TLS_EXTENDED_MASTER_SECRET}
    names = tuple(sorted(c.value for c in commands))
    tool = _tool()
    started_at, started = utcnow(), time.monotonic()
    out: dict[str, TlsScan] = {}
    requests: dict[Any, tuple[TlsEndpoint, str]] = {}
    to_queue: list[Any] = []

    def failed(ep: TlsEndpoint, reason: str, address: str | None = None) -> TlsScan:
        return TlsScan(ep, reason, {"address": address}, started_at, round(time.monotonic() - started, 3),
                       tool, names)

    for ep in endpoints:
        try:
            address = ep.address or _resolve(ep.host, ep.port)
        except ValueError as exc:
            out[ep.key] = failed(ep, str(exc))
            continue
        ca = ep.ca_file or system_ca_file()
        try:
            extra = ScanCommandsExtraArguments(
                certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca))) if ca \
                else ScanCommandsExtraArguments()
            request = ServerScanRequest(
                server_location=ServerNetworkLocation(hostname=ep.server_name, port=ep.port, ip_address=address),
                network_configuration=ServerNetworkConfiguration(
                    tls_server_name_indication=ep.server_name, network_timeout=timeout_s, network_max_retries=1,
                    tls_opportunistic_encryption=(ProtocolWithOpportunisticTlsEnum(ep.starttls.upper().replace("-", "_"))
                                                  if ep.starttls else None)),
                scan_commands=commands, scan_commands_extra_arguments=extra)
        except ValueError as exc:  # CA file missing or unreadable
            out[ep.key] = failed(ep, f"cannot set up the scan: {exc}", address)
            continue
        requests[request.uuid] = (ep, address)
        to_queue.append(request)

    if emit is not None:  # the endpoints that could not even be set up
        for failed_scan in list(out.values()):
            emit(failed_scan)
    if requests:
        scanner = Scanner()
        with warnings.catch_warnings():
            # sslyze's bundled trust stores hold a root with a negative serial number.
            warnings.filterwarnings("ignore", message=".*serial number which wasn't positive.*")
            scanner.queue_scans(to_queue)
            for result in scanner.get_results():
                elapsed = round(time.monotonic() - started, 3)
                ep, address = requests[result.uuid]
                if result.connectivity_status == ServerConnectivityStatusEnum.ERROR or result.scan_result is None:
                    reason = _trace_text(result.connectivity_error_trace)
                    refusal = _starttls_refusal(ep, address, reason, timeout_s)
                    facts: dict[str, Any] = {"address": address}
                    if refusal:  # a measured answer: this service does not offer TLS
                        facts |= {"tls_offered": False, "starttls_refusal": refusal}
                    out[ep.key] = TlsScan(ep, f"no TLS connection to {ep.key} ({address}): {refusal or reason}",
                                          facts, started_at, elapsed, tool, names)
                else:
                    facts = _facts(result.scan_result, ep)
                    facts |= {"address": address, "tls_offered": True}
                    if mozilla:
                        facts["mozilla"] = _mozilla(result, mozilla)
                    out[ep.key] = TlsScan(ep, None, facts, started_at, elapsed, tool, names)
                if emit is not None:
                    emit(out[ep.key])
    return out


#: The PostgreSQL SSLRequest (protocol code 80877103): the server answers one byte, 'S' or 'N'.
PG_SSLREQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


def postgres_ssl_answer(address: str, port: int, timeout_s: float) -> bytes:
    """The byte a PostgreSQL server answers to an SSLRequest (``b"S"``: TLS follows,
    ``b"N"``: the server does not accept TLS, ``b""``: it closed the connection); OSError
    when it cannot be asked."""
    with socket.create_connection((address, port), timeout=timeout_s) as sock:
        sock.sendall(PG_SSLREQUEST)
        return sock.recv(1)


def _starttls_refusal(ep: TlsEndpoint, address: str, reason: str, timeout_s: int) -> str:
    """Why a STARTTLS service does not offer TLS, when sslyze's failure is the service's own
    "no" to the upgrade (its ServerRejectedOpportunisticTlsNegotiation); "" otherwise (a
    refused connection, a timeout, a failed handshake: could not measure).  For PostgreSQL
    the answer is confirmed with an SSLRequest of our own: only an 'N' is a refusal (sslyze
    also says "rejected" when the server just closed the connection)."""
    if not ep.starttls or not reason.startswith("ServerRejectedOpportunisticTlsNegotiation"):
        return ""
    said = reason.split(": ", 1)[-1]
    if ep.starttls != "postgres":
        if said.startswith(("Unexpected error", "Error opening", "SMTP EHLO was rejected")):
            return ""  # the conversation failed before the upgrade was asked for
        return f"the server refused the {STARTTLS_UPGRADE[ep.starttls]} (sslyze: {said[:200]})"
    try:
        answer = postgres_ssl_answer(address, ep.port, timeout_s)
    except OSError:
        return ""
    if answer != b"N":
        return ""
    return "the server answered 'N' to the PostgreSQL SSLRequest: it does not accept TLS (ssl = off)"


def _mozilla(result: Any, config: str) -> dict[str, Any]:
    """sslyze's own Mozilla checker over one server's scan: ``{"config", "issues": {rule:
    text}}`` or ``{"config", "error"}`` when the scan lacks what it needs."""
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        ServerScanResultIncomplete,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    try:
        check_server_against_tls_configuration(result, MozillaTlsConfiguration.get(TlsConfigurationEnum(config)))
    except ServerNotCompliantWithTlsConfiguration as exc:
        return {"config": config, "issues": dict(exc.issues)}
    except ServerScanResultIncomplete as exc:
        return {"config": config, "error": str(exc)}
    return {"config": config, "issues": {}}


def _facts(result: Any, ep: TlsEndpoint) -> dict[str, Any]:
    """Plain facts from sslyze's AllScanCommandsAttempts."""
    from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum

    completed = ScanCommandAttemptStatusEnum.COMPLETED
    errors: dict[str, str] = {}
    accepted: dict[str, list[str]] = {}
    suites: list[dict[str, Any]] = []
    for field, label in VERSIONS.items():
        attempt = getattr(result, field)
        if attempt.status != completed or attempt.result is None:
            errors[label] = f"{attempt.error_reason.value if attempt.error_reason else attempt.status.value}: " \
                            f"{_trace_text(attempt.error_trace)}"
            continue
        names = []
        for acc in attempt.result.accepted_cipher_suites:
            cs = acc.cipher_suite
            names.append(cs.name)
            suites.append({"version": label, "name": cs.name, "openssl_name": cs.openssl_name,
                           "anonymous": bool(cs.is_anonymous), "key_size": int(cs.key_size),
                           "kx": _kx_facts(acc.ephemeral_key)})
        if names:
            accepted[label] = names

    certificates: list[dict[str, Any]] = []
    cert_attempt = result.certificate_info
    if cert_attempt.status != completed or cert_attempt.result is None:
        errors["certificate_info"] = _trace_text(cert_attempt.error_trace)
    else:
        for deployment in cert_attempt.result.certificate_deployments:
            certificates.append(_analyze_deployment(deployment, ep))

    vulns: dict[str, Any] = {}
    for command in VULN_COMMANDS:
        attempt = getattr(result, command)
        if attempt.status != completed or attempt.result is None:
            errors[command] = _trace_text(attempt.error_trace)
            continue
        r = attempt.result
        if command == "heartbleed":
            vulns["heartbleed"] = bool(r.is_vulnerable_to_heartbleed)
        elif command == "openssl_ccs_injection":
            vulns["ccs_injection"] = bool(r.is_vulnerable_to_ccs_injection)
        elif command == "robot":
            vulns["robot"] = r.robot_result.value
        elif command == "session_renegotiation":
            vulns["insecure_renegotiation"] = not bool(r.supports_secure_renegotiation)
            vulns["client_renegotiation"] = bool(r.is_vulnerable_to_client_renegotiation_dos)
            vulns["client_renegotiations_accepted"] = int(r.client_renegotiations_success_count)
        elif command == "tls_compression":
            vulns["compression"] = bool(r.supports_compression)
    return {"accepted": accepted, "suites": suites, "command_errors": errors, "certificates": certificates,
            "vulnerabilities": vulns}


def _kx_facts(key: Any) -> dict[str, Any] | None:
    """The ephemeral key the server sent for one accepted suite: ``{"type": "DH"|"ECDH",
    "bits", "curve"}`` (None: no ephemeral key exchange, e.g. RSA key transport)."""
    if key is None:
        return None
    curve = getattr(key, "curve_name", None)
    return {"type": "ECDH" if curve else "DH", "bits": int(key.size), "curve": curve}


# ----------------------------------------------------------------------------- certificates

def _name_entries(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName), *(str(a) for a in san.get_values_for_type(x509.IPAddress))]


def _subject_for(name: str) -> Any:
    from cryptography.x509 import DNSName, IPAddress

    try:
        return IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return DNSName(name)


def hostname_matches(name: str, san: Sequence[str]) -> bool:
    """RFC 6125 matching of ``name`` against subjectAltName entries: IP literals match IP
    entries exactly; DNS names match case-insensitively, a ``*`` covering exactly the
    leftmost label."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        for entry in san:
            try:
                if ipaddress.ip_address(entry) == ip:
                    return True
            except ValueError:
                continue
        return False
    want = name.lower().rstrip(".").split(".")
    for entry in san:
        got = entry.lower().rstrip(".").split(".")
        if got == want:
            return True
        if got[0] == "*" and len(got) == len(want) and len(got) >= 3 and got[1:] == want[1:]:
            return True
    return False


def _key_facts(cert: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return {"type": "RSA", "bits": key.key_size}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"type": "EC", "bits": key.curve.key_size, "curve": key.curve.name}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"type": "Ed25519", "bits": 256}
    if isinstance(key, ed448.Ed448PublicKey):
        return {"type": "Ed448", "bits": 456}
    if isinstance(key, dsa.DSAPublicKey):
        return {"type": "DSA", "bits": key.key_size}
    return {"type": type(key).__name__, "bits": 0}


def trust_failure(chain: Sequence[Any]) -> str:
    """Why a chain that no trust store accepts fails, named as an operator fixes it: a
    forbidden signature algorithm (MD5 or SHA-1 below the root), a self-signed leaf, a root
    the server sends but nobody trusts, or an incomplete chain (the top certificate's issuer
    was not sent: a missing intermediate, or a private CA the client was not given)."""
    below_root = [c for c in chain if c.subject != c.issuer] or list(chain[:1])
    for c in below_root:
        algo = c.signature_hash_algorithm
        if algo is not None and algo.name in ("md5", "sha1"):
            return (f"forbidden signature algorithm {algo.name.upper()} on {c.subject.rfc4514_string()} "
                    "(browsers refuse MD5 and SHA-1 signatures)")
    top = chain[-1]
    if top.subject == top.issuer:
        if len(chain) == 1:
            return "self-signed leaf certificate (no CA vouches for it)"
        return f"untrusted root {top.subject.rfc4514_string()} (sent by the server, in no trust store)"
    return (f"incomplete chain: the issuer {top.issuer.rfc4514_string()} of {top.subject.rfc4514_string()} was "
            "not sent and is in no trust store (a missing intermediate, or a private CA the client does not have)")


def _analyze_deployment(deployment: Any, ep: TlsEndpoint) -> dict[str, Any]:
    from cryptography.hazmat.primitives import hashes

    chain = list(deployment.received_certificate_chain)
    chain_pem = list(deployment.received_certificate_chain_as_pem)
    leaf = chain[0]
    now = dt.datetime.now(dt.UTC)
    san = _name_entries(leaf)
    # A moment inside every received certificate's validity (or the leaf's midpoint).
    start = max(c.not_valid_before_utc for c in chain)
    end = min(c.not_valid_after_utc for c in chain)
    if start >= end:
        start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    valid_time = start + (end - start) / 2
    stores = [r.trust_store for r in deployment.path_validation_results]
    sslyze_validation = {r.trust_store.name: (r.validation_error or "ok") for r in deployment.path_validation_results}
    own_name = san[0] if san else ep.server_name
    trusted_by: list[str] = []
    chain_errors: dict[str, str] = {}
    hostname_error: str | None = None
    for store in stores:
        res = store.verify_certificate_chain(chain_pem, _subject_for(own_name), valid_time)
        if res.was_validation_successful:
            trusted_by.append(store.name)
            if hostname_error is None:
                named = store.verify_certificate_chain(chain_pem, _subject_for(ep.server_name), valid_time)
                hostname_error = "" if named.was_validation_successful else str(named.validation_error)
        else:
            chain_errors[store.name] = str(res.validation_error)
    matches = hostname_matches(ep.server_name, san)
    if hostname_error:  # cryptography's verifier is the authority when the chain is trusted
        matches = False
    days_left = (leaf.not_valid_after_utc - now).total_seconds() / 86400
    return {
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "serial": format(leaf.serial_number, "x"),
        "sha256": leaf.fingerprint(hashes.SHA256()).hex(),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "days_left": round(days_left, 2),
        "san": san,
        "key": _key_facts(leaf),
        "chain": [{"subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(), **_key_facts(c)}
                  for c in chain],
        "trusted_by": trusted_by,
        "trust_failure": "" if trusted_by else trust_failure(chain),
        "chain_errors": {k: v for k, v in chain_errors.items() if k == "Supplied CA file"}
        | ({"other stores": f"{len(chain_errors)} stores do not trust it"} if chain_errors else {}),
        "sslyze_path_validation": {k: v for k, v in sslyze_validation.items()
                                   if k == "Supplied CA file" or v == "ok"},
        "hostname": ep.server_name,
        "hostname_matches": matches,
        "hostname_error": hostname_error or "",
    }


# ----------------------------------------------------------------------------- measurements

def _check_error(s: TlsScan, probe: str, *needs: str) -> Measurement | None:
    """A failed measurement when the endpoint or a needed command could not be scanned."""
    if s.error is not None:
        return Measurement.failed(s.error, s.evidence(probe, s.error, {}))
    errs = {k: v for k, v in s.facts.get("command_errors", {}).items() if k in needs}
    if errs:
        reason = "; ".join(f"{k} scan failed: {v}" for k, v in errs.items())
        return Measurement.failed(reason, s.evidence(probe, reason, {"command_errors": errs}))
    return None


def starttls_offered(s: TlsScan) -> Measurement:
    """Whether a STARTTLS service accepts the upgrade to TLS and completes a handshake.
    Value: True, or False when the service itself said no (PostgreSQL answered 'N' to the
    SSLRequest, an SMTP server lists no STARTTLS, ...); any other failure (refused
    connection, timeout, failed handshake) could not measure it: an error."""
    upgrade = STARTTLS_UPGRADE.get(s.endpoint.starttls, "no STARTTLS")
    refusal = s.facts.get("starttls_refusal")
    if refusal:
        return Measurement(False, f"TLS not offered: {refusal}",
                           s.evidence("tls.starttls", refusal, {"tls_offered": False, "upgrade": upgrade}))
    if s.error is not None:
        return Measurement.failed(s.error, s.evidence("tls.starttls", s.error, {"upgrade": upgrade}))
    offered = offered_versions(s)
    display = f"TLS offered after the {upgrade} ({', '.join(offered) or 'no version accepted a suite'})"
    return Measurement(True, display, s.evidence("tls.starttls", f"{upgrade}: accepted; offers {', '.join(offered)}",
                                                 {"tls_offered": True, "upgrade": upgrade, "offered": offered}))


def offered_versions(s: TlsScan) -> list[str]:
    return [v for v in VERSION_ORDER if s.facts.get("accepted", {}).get(v)]


def protocols_offered(s: TlsScan, among: Sequence[str]) -> Measurement:
    """Which of ``among`` (e.g. the profile's forbidden versions) the endpoint accepts.
    Value: the accepted ones, oldest first."""
    bad = _check_error(s, "tls.protocols", *among)
    if bad:
        return bad
    offered = offered_versions(s)
    hit = [v for v in VERSION_ORDER if v in among and v in offered]
    display = (f"{', '.join(hit)} offered" if hit else f"none of {', '.join(among)} offered") + \
        f" (offers {', '.join(offered) or 'nothing'})"
    raw = "; ".join(f"{v}: {len(s.facts['accepted'].get(v, []))} suites accepted" for v in VERSION_ORDER)
    return Measurement(hit, display, s.evidence("tls.protocols", raw, {"offered": offered, "checked": list(among)}))


def lowest_version(s: TlsScan) -> Measurement:
    """The oldest protocol version the endpoint accepts (``TLSv1.2``)."""
    bad = _check_error(s, "tls.protocols", *VERSION_ORDER)
    if bad:
        return bad
    offered = offered_versions(s)
    ev = s.evidence("tls.protocols", f"offers {', '.join(offered) or 'nothing'}", {"offered": offered})
    if not offered:
        return Measurement.failed("no protocol version accepted any cipher suite", ev)
    return Measurement(offered[0], f"lowest {offered[0]} (offers {', '.join(offered)})", ev)


def tls13_offered(s: TlsScan) -> Measurement:
    bad = _check_error(s, "tls.protocols", "TLSv1.3")
    if bad:
        return bad
    suites = s.facts.get("accepted", {}).get("TLSv1.3", [])
    ev = s.evidence("tls.protocols", f"TLSv1.3: {', '.join(suites) or 'handshake refused'}", {"tls13_suites": suites})
    return Measurement(bool(suites), "TLS 1.3 offered" if suites else "TLS 1.3 not offered", ev)


_AEAD = ("_GCM_", "CHACHA20_POLY1305", "_CCM")


def weakness(suite: dict[str, Any], *, require_aead: bool = False, require_forward_secrecy: bool = False) -> list[str]:
    """Why a cipher suite is weak (empty list: it is not).  Always: NULL encryption,
    anonymous key exchange, EXPORT, RC4, RC2, DES/3DES, keys under 128 bits; with the
    flags also non-AEAD encryption and key exchange without forward secrecy (TLS 1.3 suites
    are AEAD with forward secrecy by definition)."""
    name = str(suite["name"]).upper()
    reasons: list[str] = []
    if "WITH_NULL" in name or "NULL_WITH" in name or suite.get("key_size") == 0:
        reasons.append("NULL encryption")
    if suite.get("anonymous") or "_ANON_" in name:
        reasons.append("anonymous")
    if "EXPORT" in name:
        reasons.append("EXPORT")
    if "RC4" in name:
        reasons.append("RC4")
    if "RC2" in name:
        reasons.append("RC2")
    if "3DES" in name or "_DES_" in name or "DES40" in name or "DES_192" in name or "DES_64" in name:
        reasons.append("DES/3DES")
    if 0 < int(suite.get("key_size", 128)) < 128:
        reasons.append(f"{suite['key_size']}-bit key")
    tls13 = suite.get("version") == "TLSv1.3"
    if require_aead and not tls13 and not any(a in name for a in _AEAD):
        reasons.append("not AEAD")
    if require_forward_secrecy and not tls13 and not name.startswith(("TLS_ECDHE_", "TLS_DHE_")):
        reasons.append("no forward secrecy")
    return reasons


def weak_suites(s: TlsScan, *, require_aead: bool = False, require_forward_secrecy: bool = False) -> Measurement:
    """Accepted cipher suites with a weakness; value: ``[{version, name, reasons}]``."""
    bad = _check_error(s, "tls.cipher_suites", *VERSION_ORDER)
    if bad:
        return bad
    suites = s.facts.get("suites", [])
    weak = []
    for suite in suites:
        why = weakness(suite, require_aead=require_aead, require_forward_secrecy=require_forward_secrecy)
        if why:
            weak.append({"version": suite["version"], "name": suite["name"], "reasons": why})
    names = sorted({w["name"] for w in weak})
    if weak:
        shown = ", ".join(f"{n} ({', '.join(next(w['reasons'] for w in weak if w['name'] == n))})" for n in names[:6])
        more = f" and {len(names) - 6} more" if len(names) > 6 else ""
        display = f"{len(names)} weak suite{'s' if len(names) != 1 else ''}: {shown}{more}"
    else:
        display = f"none ({len({x['name'] for x in suites})} suites accepted)"
    raw = "\n".join(f"{v}: {', '.join(n)}" for v, n in s.facts.get("accepted", {}).items())
    return Measurement(weak, display, s.evidence("tls.cipher_suites", raw, {"accepted": s.facts.get("accepted", {}),
                                                                          "weak": weak}))


def _certs(s: TlsScan, probe: str) -> tuple[list[dict[str, Any]], Measurement | None]:
    bad = _check_error(s, probe, "certificate_info")
    if bad:
        return [], bad
    certs = s.facts.get("certificates", [])
    if not certs:
        reason = "the server sent no certificate"
        return [], Measurement.failed(reason, s.evidence(probe, reason, {}))
    return certs, None


def _cert_raw(c: dict[str, Any]) -> str:
    return (f"subject: {c['subject']}\nissuer: {c['issuer']}\nnotBefore: {c['not_before']}\n"
            f"notAfter: {c['not_after']}\nsubjectAltName: {', '.join(c['san']) or '(none)'}\n"
            f"key: {c['key']['type']} {c['key']['bits']} bits\nsha256: {c['sha256']}")


def _cert_data(c: dict[str, Any]) -> dict[str, Any]:
    keep = ("subject", "issuer", "not_before", "not_after", "days_left", "san", "key", "sha256", "serial")
    return {k: c[k] for k in keep}


def cert_trusted(s: TlsScan) -> Measurement:
    """Whether the certificate chain leads to a trusted root (sslyze's trust stores plus
    the target's CA file or the system bundle), judged apart from host name and dates."""
    certs, bad = _certs(s, "tls.certificate")
    if bad:
        return bad
    trusted = all(c["trusted_by"] for c in certs)
    parts = []
    for c in certs:
        if c["trusted_by"]:
            parts.append(f"trusted by {', '.join(c['trusted_by'][:3])} (issuer {c['issuer']})")
        else:
            why = c.get("trust_failure") or c["chain_errors"].get("Supplied CA file") \
                or next(iter(c["chain_errors"].values()), "")
            parts.append(f"not trusted: {why}")
    data = {"deployments": [{**_cert_data(c), "trusted_by": c["trusted_by"], "chain": c["chain"],
                             "trust_failure": c.get("trust_failure", ""),
                             "chain_errors": c["chain_errors"], "sslyze_path_validation": c["sslyze_path_validation"]}
                            for c in certs]}
    return Measurement(trusted, "; ".join(parts), s.evidence("tls.certificate", _cert_raw(certs[0]), data))


def hostname_match(s: TlsScan) -> Measurement:
    """Whether the certificate covers the endpoint's name (subjectAltName, RFC 6125)."""
    certs, bad = _certs(s, "tls.certificate")
    if bad:
        return bad
    ok = all(c["hostname_matches"] for c in certs)
    name = s.endpoint.server_name
    sans = sorted({x for c in certs for x in c["san"]})
    display = (f"{name} matches the certificate (SAN {', '.join(sans)})" if ok
               else f"{name} does not match the certificate (SAN {', '.join(sans) or 'none'})")
    data = {"hostname": name, "deployments": [{**_cert_data(c), "hostname_error": c["hostname_error"]} for c in certs]}
    return Measurement(ok, display, s.evidence("tls.certificate", _cert_raw(certs[0]), data))


def cert_days_left(s: TlsScan) -> Measurement:
    """Days until the leaf certificate expires (negative: expired); the smallest over the
    endpoint's certificate deployments."""
    certs, bad = _certs(s, "tls.certificate")
    if bad:
        return bad
    c = min(certs, key=lambda x: float(x["days_left"]))
    days = round(float(c["days_left"]), 1)
    when = c["not_after"][:19].replace("T", " ") + " UTC"
    display = f"{days:.1f} days (expired {when})" if days < 0 else f"{days:.1f} days (expires {when})"
    return Measurement(days, display, s.evidence("tls.certificate", _cert_raw(c), {"deployments": [
        _cert_data(x) for x in certs]}), unit="days")


def key_size(s: TlsScan) -> Measurement:
    """The leaf public key: value ``{"type": "RSA"|"EC"|..., "bits": N}`` (the weakest
    over deployments)."""
    certs, bad = _certs(s, "tls.certificate")
    if bad:
        return bad
    c = min(certs, key=lambda x: int(x["key"]["bits"]))
    k = c["key"]
    display = f"{k['type']} {k['bits']} bits" + (f" ({k['curve']})" if k.get("curve") else "")
    return Measurement(dict(k), display, s.evidence("tls.certificate", _cert_raw(c), {"keys": [
        {"subject": x["subject"], **x["key"]} for x in certs], "chain": c["chain"]}))


#: Security-equivalent size of curves whose OpenSSL key size understates it (X25519: 253 bits).
CURVE_BITS = {"X25519": 256, "X448": 448}


def key_exchange(s: TlsScan) -> Measurement:
    """The ephemeral key exchanges the server offers, from the key it sent with each accepted
    suite: finite-field DH group sizes and ECDH curves.  Value: ``{"dh_bits": [...],
    "curves": {name: bits}, "min_dh_bits", "min_ecdh_bits"}`` (None where that kind is not
    offered; curve bits security-equivalent, X25519 counted as 256)."""
    err = _check_error(s, "tls.key_exchange", *VERSION_ORDER)
    if err is not None:
        return err
    dh: dict[int, list[str]] = {}
    curves: dict[str, int] = {}
    for suite in s.facts["suites"]:
        kx = suite.get("kx")
        if kx is None:
            continue
        if kx["type"] == "DH":
            dh.setdefault(int(kx["bits"]), []).append(suite["name"])
        else:
            name = kx["curve"] or "unknown curve"
            curves[name] = CURVE_BITS.get(name, int(kx["bits"]))
    value = {"dh_bits": sorted(dh), "curves": dict(sorted(curves.items())),
             "min_dh_bits": min(dh) if dh else None, "min_ecdh_bits": min(curves.values()) if curves else None}
    parts = [f"DHE {bits} bits ({', '.join(names)})" for bits, names in sorted(dh.items())]
    parts += [f"ECDHE {name} ({bits} bits)" for name, bits in sorted(curves.items())]
    display = "; ".join(parts) or "no ephemeral key exchange offered"
    raw = "\n".join(f"{x['version']} {x['name']}: {x['kx']}" for x in s.facts["suites"] if x.get("kx"))
    return Measurement(value, display, s.evidence("tls.key_exchange", raw, value))


def mozilla_rules(s: TlsScan) -> dict[str, Measurement]:
    """One measurement per rule of sslyze's Mozilla checker (the scan ran it with the
    profile's configuration): value None when the rule holds, else sslyze's finding."""
    if s.error is not None:
        return {rule: Measurement.failed(s.error, s.evidence("tls.mozilla", s.error, {})) for rule in MOZILLA_RULES}
    moz = s.facts.get("mozilla") or {}
    if "error" in moz or "issues" not in moz:
        why = f"sslyze's Mozilla checker could not run: {moz.get('error', 'not part of this scan')}"
        return {rule: Measurement.failed(why, s.evidence("tls.mozilla", why, {})) for rule in MOZILLA_RULES}
    out = {}
    for rule in MOZILLA_RULES:
        issue = moz["issues"].get(rule)
        display = f"{rule}: {issue}" if issue else f"{rule}: as Mozilla '{moz['config']}' asks"
        out[rule] = Measurement(issue, display, s.evidence("tls.mozilla", issue or "", {"config": moz["config"],
                                                                                         "rule": rule,
                                                                                         "issue": issue}))
    return out


def vulnerabilities(s: TlsScan) -> Measurement:
    """Known TLS weaknesses found: value is the list of findings (labels of VULN_LABELS).
    A finding is reported even when another command failed; with no finding, any failed
    or inconclusive command makes the measurement an error (cannot tell "not vulnerable")."""
    if s.error is not None:
        return Measurement.failed(s.error, s.evidence("tls.vulnerabilities", s.error, {}))
    v = s.facts.get("vulnerabilities", {})
    found = [k for k in ("heartbleed", "ccs_injection", "insecure_renegotiation", "client_renegotiation",
                         "compression") if v.get(k) is True]
    if v.get("robot") in _ROBOT_BAD:
        found.insert(1, "robot")
    labels = [VULN_LABELS[k] for k in found]
    raw = "; ".join(f"{k}: {val}" for k, val in v.items())
    errs = {k: e for k, e in s.facts.get("command_errors", {}).items() if k in VULN_COMMANDS}
    inconclusive = v.get("robot") not in (*_ROBOT_OK, *_ROBOT_BAD) and "robot" in v
    ev = s.evidence("tls.vulnerabilities", raw, {"results": v, "findings": found, "command_errors": errs})
    if not found and (errs or inconclusive):
        why = "; ".join(f"{k}: {e}" for k, e in errs.items()) or f"ROBOT result {v.get('robot')}"
        return Measurement.failed(f"could not complete the vulnerability scans ({why})", ev)
    if found:
        display = f"vulnerable: {', '.join(labels)}"
    else:
        display = ("none found (Heartbleed, ROBOT, CCS injection, insecure and client-initiated renegotiation, "
                   "compression)")
    return Measurement(labels, display, ev)


if __name__ == "__main__":
    _worker_main()
