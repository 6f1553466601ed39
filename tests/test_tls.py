"""The TLS family end to end: ONE golive run scans a "zoo" of real TLS servers at once --
the compliant lab, the broken TLS variants of the lab, a TLS server that honours
client-initiated renegotiation with an EC P-256 key, and a closed port -- and every check
must pass on the compliant endpoint, fail (with the measured value) on the endpoint built to
break it, and be ``error`` on the closed port.  Plus unit tests of the classification rules
the lab cannot exercise (OpenSSL 3 no longer serves RC4, EXPORT or 3DES suites).
"""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.tls import probes as tls
from conftest import PYTEST, ROOT, GoliveRun
from lab import certs
from lab.procs import free_port
from lab.run import RunningLab, start_lab

ZOO_VARIANTS = ("compliant", "legacy_tls", "weak_ciphers", "expired_cert", "wrong_hostname", "short_cert", "weak_dh")
CHECKS = ("protocols_forbidden", "min_version", "tls13", "weak_ciphers", "cert_trusted", "hostname",
          "cert_days_left", "key_size", "vulnerabilities", "key_exchange")

# poc plus everything the TLS family can ask for, and an EC floor the renegotiating server's P-256 key misses.
ZOO_PROFILE = f"""name: tls-zoo
extends: {ROOT}/profiles/poc.yaml
description: poc with TLS 1.3, AEAD and forward secrecy required and EC keys >= 384 bits
requirements:
  tls: {{require_tls13: true, require_aead: true, require_forward_secrecy: true, min_ec_bits: 384}}
"""


def run_golive(report_dir: Path, *args: str, timeout: float = 300) -> GoliveRun:
    cmd = [*PYTEST, "-p", "no:cacheprovider", f"--report-dir={report_dir}", *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return GoliveRun(proc, report_dir)


#: OpenSSL 3's SSL_OP_ALLOW_CLIENT_RENEGOTIATION (client renegotiation is refused by default).
OP_ALLOW_CLIENT_RENEGOTIATION = 0x100


class RenegServer:
    """A small threaded TLS server (Python's ssl, OpenSSL 3) with an EC P-256 certificate
    from its own CA, ECDHE+AEAD suites only, and client-initiated renegotiation allowed --
    the one weakness nginx cannot be configured to have."""

    def __init__(self, workdir: Path) -> None:
        self.files = certs.write_tls_files(workdir, ("localhost", "127.0.0.1"), key_type="ec")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.files.chain_file, self.files.key_file)
        ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
        ctx.options |= OP_ALLOW_CLIENT_RENEGOTIATION
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls_conn:
                while tls_conn.recv(4096):
                    tls_conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self.sock.close()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start the zoo, run golive once over all of it (-m tls), yield the run and the ports."""
    base = tmp_path_factory.mktemp("tls-zoo")
    labs: dict[str, RunningLab] = {}
    reneg: RenegServer | None = None
    try:
        for variant in ZOO_VARIANTS:
            labs[variant] = start_lab(base / variant, variant, instances=1)
        reneg = RenegServer(base / "reneg")
        closed = free_port()
        bundle = base / "ca-bundle.pem"
        bundle.write_text("".join(Path(lab.ca_file).read_text() for lab in labs.values())
                          + reneg.files.ca_file.read_text())
        ports = {v: lab.ports["https"] for v, lab in labs.items()} | {"reneg_ec": reneg.port, "closed": closed}
        others = [f'"localhost:{p}"' for v, p in ports.items() if v != "compliant"]
        target = base / "zoo.yaml"
        target.write_text(f"name: tls-zoo\nenvironment: lab\nendpoints:\n  public: https://localhost:{ports['compliant']}\n"
                          f"  ca_file: {bundle}\n  tls: [{', '.join(others)}]\n")
        profile = base / "tls-zoo.yaml"
        profile.write_text(ZOO_PROFILE)
        started = time.monotonic()
        run = run_golive(base / "reports", f"--profile={profile}", f"--target={target}", "-m", "tls")
        yield {"run": run, "ports": ports, "seconds": time.monotonic() - started}
    finally:
        if reneg is not None:
            reneg.stop()
        for lab in labs.values():
            lab.stop()


def result(zoo: dict[str, Any], check: str, endpoint: str) -> dict[str, Any]:
    run: GoliveRun = zoo["run"]
    return run.one(f"tls.{check}[localhost:{zoo['ports'][endpoint]}]")


def statuses(zoo: dict[str, Any], endpoint: str) -> dict[str, str]:
    return {c: result(zoo, c, endpoint)["status"] for c in CHECKS}


def test_the_zoo_is_one_run_with_every_check_for_every_endpoint(zoo: dict[str, Any]) -> None:
    run: GoliveRun = zoo["run"]
    assert run.report, run.out[-3000:]
    assert run.rc == 1 and run.report["verdict"]["decision"] == "NO-GO"
    measured = {rid: r for rid, r in run.results("tls.").items() if r["status"] != "skip"}
    assert len(measured) == len(CHECKS) * len(zoo["ports"])
    assert run.one("tls.mozilla")["status"] == "skip"  # the zoo's profile names no Mozilla configuration
    # one Scanner, one scan: every result of an endpoint quotes the same scan time
    for endpoint in zoo["ports"]:
        times = {result(zoo, c, endpoint)["evidence"][0]["measured_at"] for c in CHECKS}
        assert len(times) == 1, (endpoint, times)
    every = {r["evidence"][0]["measured_at"] for r in measured.values()}
    assert len(every) == 1
    assert result(zoo, "min_version", "compliant")["evidence"][0]["tool"].startswith("sslyze 6.")


def test_compliant_endpoint_passes_every_tls_check(zoo: dict[str, Any]) -> None:
    assert statuses(zoo, "compliant") == {c: "pass" for c in CHECKS}
    assert result(zoo, "tls13", "compliant")["measured"] == "TLS 1.3 offered"
    assert result(zoo, "min_version", "compliant")["measured"].startswith("lowest TLSv1.2")
    assert result(zoo, "key_size", "compliant")["measured"] == "RSA 2048 bits"
    days = result(zoo, "cert_days_left", "compliant")
    assert days["measured"].startswith("364.") or days["measured"].startswith("363.")
    ev = result(zoo, "cert_trusted", "compliant")["evidence"][0]
    assert "subject: CN=localhost,O=golive lab" in ev["raw"] and "notAfter:" in ev["raw"]
    assert ev["data"]["deployments"][0]["trusted_by"] == ["Supplied CA file"]


def test_legacy_tls_fails_protocols_min_version_tls13_and_aead(zoo: dict[str, Any]) -> None:
    forbidden = result(zoo, "protocols_forbidden", "legacy_tls")
    assert forbidden["status"] == "fail"
    assert forbidden["measured"].startswith("TLSv1.0, TLSv1.1 offered")
    assert forbidden["expected"] == "none of SSLv2, SSLv3, TLSv1.0, TLSv1.1 offered"
    low = result(zoo, "min_version", "legacy_tls")
    assert low["status"] == "fail" and low["measured"].startswith("lowest TLSv1.0")
    assert result(zoo, "tls13", "legacy_tls")["measured"] == "TLS 1.3 not offered"
    weak = result(zoo, "weak_ciphers", "legacy_tls")
    assert weak["status"] == "fail" and "not AEAD" in weak["measured"] and "no forward secrecy" in weak["measured"]
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in weak["evidence"][0]["raw"]
    s = statuses(zoo, "legacy_tls")
    assert [c for c, st in s.items() if st == "fail"] == ["protocols_forbidden", "min_version", "tls13",
                                                          "weak_ciphers"]


def test_weak_ciphers_variant_fails_only_the_cipher_check(zoo: dict[str, Any]) -> None:
    weak = result(zoo, "weak_ciphers", "weak_ciphers")
    assert weak["status"] == "fail"
    assert "TLS_RSA_WITH_NULL_SHA256 (NULL encryption" in weak["measured"]
    assert "TLS_ECDH_anon_WITH_AES_128_CBC_SHA (anonymous" in weak["measured"]
    assert [c for c, st in statuses(zoo, "weak_ciphers").items() if st != "pass"] == ["weak_ciphers"]


def test_expired_certificate_has_negative_days_and_is_still_a_trusted_chain(zoo: dict[str, Any]) -> None:
    days = result(zoo, "cert_days_left", "expired_cert")
    assert days["status"] == "fail" and days["measured"].startswith("-30.0 days (expired ")
    assert days["expected"] == ">= 14 days left"
    assert [c for c, st in statuses(zoo, "expired_cert").items() if st != "pass"] == ["cert_days_left"]


def test_wrong_hostname_fails_only_the_hostname_check(zoo: dict[str, Any]) -> None:
    host = result(zoo, "hostname", "wrong_hostname")
    assert host["status"] == "fail"
    assert host["measured"] == "localhost does not match the certificate (SAN other.golive.test)"
    assert "subjectAltName" in host["evidence"][0]["data"]["deployments"][0]["hostname_error"]
    assert [c for c, st in statuses(zoo, "wrong_hostname").items() if st != "pass"] == ["hostname"]


def test_short_certificate_has_five_days_left(zoo: dict[str, Any]) -> None:
    days = result(zoo, "cert_days_left", "short_cert")
    assert days["status"] == "fail" and days["measured"].startswith("5.0 days (expires ")
    assert [c for c, st in statuses(zoo, "short_cert").items() if st != "pass"] == ["cert_days_left"]


def test_client_renegotiation_and_a_small_ec_key_fail(zoo: dict[str, Any]) -> None:
    vuln = result(zoo, "vulnerabilities", "reneg_ec")
    assert vuln["status"] == "fail"
    assert vuln["measured"] == "vulnerable: client-initiated renegotiation accepted (DoS)"
    assert vuln["evidence"][0]["data"]["results"]["client_renegotiations_accepted"] > 0
    key = result(zoo, "key_size", "reneg_ec")
    assert key["status"] == "fail" and key["measured"] == "EC 256 bits (secp256r1)"
    assert key["expected"] == "RSA >= 2048 bits, EC >= 384 bits"
    assert [c for c, st in statuses(zoo, "reneg_ec").items() if st != "pass"] == ["key_size", "vulnerabilities"]


def test_a_1024_bit_dhe_group_fails_only_the_key_exchange(zoo: dict[str, Any]) -> None:
    kx = result(zoo, "key_exchange", "weak_dh")
    assert kx["status"] == "fail", kx
    assert kx["measured"].startswith("DHE 1024 bits (TLS_DHE_RSA_WITH_AES_128_GCM_SHA256)"), kx["measured"]
    assert kx["expected"] == "DHE groups >= 2048 bits, ECDHE curves >= 256 bits"
    assert kx["evidence"][0]["data"]["min_dh_bits"] == 1024
    assert [c for c, st in statuses(zoo, "weak_dh").items() if st != "pass"] == ["key_exchange"]
    ok = result(zoo, "key_exchange", "compliant")
    assert ok["status"] == "pass" and "ECDHE X25519 (256 bits)" in ok["measured"] and "DHE " not in \
        ok["measured"].replace("ECDHE", "")


def test_closed_port_is_error_for_every_check(zoo: dict[str, Any]) -> None:
    assert statuses(zoo, "closed") == {c: "error" for c in CHECKS}
    r = result(zoo, "cert_trusted", "closed")
    assert "no TLS connection" in r["reason"] and "rejected" in r["reason"]
    assert r["measured"] == "could not measure"


# ----------------------------------------------------------------------------- unit tests

def test_weakness_rules_cover_the_suites_openssl_3_no_longer_serves() -> None:
    from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuitesRepository
    from sslyze.server_connectivity import TlsVersionEnum

    suites = CipherSuitesRepository.get_all_cipher_suites(TlsVersionEnum.TLS_1_0)
    seen: set[str] = set()
    for cs in suites:
        why = tls.weakness({"name": cs.name, "anonymous": cs.is_anonymous, "key_size": cs.key_size,
                            "version": "TLSv1.0"})
        for marker, reason in (("RC4", "RC4"), ("EXPORT", "EXPORT"), ("3DES", "DES/3DES"), ("_anon_", "anonymous"),
                               ("WITH_NULL", "NULL encryption")):
            if marker in cs.name:
                assert reason in why, (cs.name, why)
                seen.add(reason)
    assert seen == {"RC4", "EXPORT", "DES/3DES", "anonymous", "NULL encryption"}
    modern = {"name": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "anonymous": False, "key_size": 128,
              "version": "TLSv1.2"}
    assert tls.weakness(modern, require_aead=True, require_forward_secrecy=True) == []
    assert tls.weakness({**modern, "name": "TLS_RSA_WITH_AES_128_GCM_SHA256"}, require_forward_secrecy=True) == [
        "no forward secrecy"]
    assert tls.weakness({"name": "TLS_AES_128_GCM_SHA256", "key_size": 128, "version": "TLSv1.3"},
                        require_aead=True, require_forward_secrecy=True) == []


def test_hostname_matching_follows_rfc_6125() -> None:
    assert tls.hostname_matches("api.example.com", ["*.example.com"])
    assert not tls.hostname_matches("a.b.example.com", ["*.example.com"])
    assert not tls.hostname_matches("example.com", ["*.example.com"])
    assert tls.hostname_matches("API.Example.com.", ["api.example.com"])
    assert tls.hostname_matches("127.0.0.1", ["localhost", "127.0.0.1"])
    assert not tls.hostname_matches("127.0.0.2", ["localhost", "127.0.0.1"])


def test_plain_http_public_endpoint_is_not_scanned_but_named() -> None:
    with pytest.raises(ValueError, match="not an https URL"):
        tls.endpoint_from("http://localhost:80")
    ep = tls.endpoint_from("https://[::1]:8443/x", server_name="api.example.com")
    assert ep.key == "[::1]:8443" and ep.server_name == "api.example.com"


def _cert(subject: str, issuer: str | None = None, *, key: Any = None, issuer_key: Any = None) -> tuple[Any, Any]:
    """A real X.509 certificate (cryptography); self-signed when ``issuer`` is None."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    iname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]) if issuer else name
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(iname).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(issuer_key or key, hashes.SHA256()))
    return cert, key


def test_trust_failures_are_named_the_way_an_operator_fixes_them() -> None:
    root, root_key = _cert("Corp Root")
    leaf, _ = _cert("api.example.com", "Corp Root", issuer_key=root_key)
    selfsigned, _ = _cert("api.example.com")
    from cryptography.hazmat.primitives import hashes

    class SignedWithSha1:  # this OpenSSL refuses to sign with SHA-1: the same leaf, reporting it
        signature_hash_algorithm = hashes.SHA1()

        def __getattr__(self, name: str) -> Any:
            return getattr(leaf, name)

    old = SignedWithSha1()
    assert tls.trust_failure([selfsigned]) == "self-signed leaf certificate (no CA vouches for it)"
    assert tls.trust_failure([leaf, root]) == "untrusted root CN=Corp Root (sent by the server, in no trust store)"
    assert tls.trust_failure([leaf]).startswith("incomplete chain: the issuer CN=Corp Root of CN=api.example.com "
                                                "was not sent")
    assert tls.trust_failure([old, root]).startswith("forbidden signature algorithm SHA1 on CN=api.example.com")
