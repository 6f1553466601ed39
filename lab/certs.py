"""TLS material for the lab: a private CA and server certificates with chosen properties.

The CA comes from ``trustme`` (a throw-away root that is never installed system-wide).  Leaf
certificates are issued here with ``cryptography`` directly because trustme marks the
subjectAltName extension critical and sslyze 6 (cryptography's strict verifier) rejects such
leaves ("EE subjectAltName MUST NOT be critical").  Validity dates are parameters, so the
broken lab variants can serve an expired certificate, one expiring in a few days, or one for
the wrong host name -- each a real certificate signed by the lab CA.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["rsa", "ec"]

#: The names the compliant lab certificate covers (nginx listens on 127.0.0.1; 127.0.0.2
#: stands for the host's external address in the reachability checks).
DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "127.0.0.2")


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files written by :func:`write_tls_files`.

    ``ca_file``: the lab CA certificate (what a client trusts); ``chain_file``: the server
    certificate chain as nginx serves it (leaf first, then intermediates: none here);
    ``key_file``: the leaf's private key (mode 0600).  ``not_after`` is the leaf's expiry.
    """

    ca_file: Path
    chain_file: Path
    key_file: Path
    not_before: dt.datetime
    not_after: dt.datetime
    hostnames: tuple[str, ...]


def make_ca(organization: str = "golive lab CA") -> trustme.CA:
    """A fresh private root CA (in memory)."""
    return trustme.CA(organization_name=organization)


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_leaf(
    ca: trustme.CA,
    hostnames: Sequence[str],
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_type: KeyType = "rsa",
) -> tuple[bytes, bytes]:
    """Issue a server certificate signed by ``ca``; returns ``(cert_pem, key_pem)``.

    ``hostnames`` go into a *non-critical* subjectAltName (IP literals as IP entries, the
    rest as DNS names); the first one is also the subject CN.  Defaults: valid from one day
    ago for 365 days.  ``key_type``: RSA 2048 or EC P-256.
    """
    if not hostnames:
        raise ValueError("a leaf certificate needs at least one host name")
    now = dt.datetime.now(dt.UTC)
    not_before = not_before or now - dt.timedelta(days=1)
    not_after = not_after or not_before + dt.timedelta(days=366)
    if not_after <= not_before:
        raise ValueError("not_after must be later than not_before")

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        usage = x509.KeyUsage(
            digital_signature=True, key_encipherment=True, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False,
        )
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.KeyUsage(
            digital_signature=True, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False,
        )
    else:
        raise ValueError(f"unknown key type {key_type!r} (rsa or ec)")

    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "golive lab"),
        x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
    ])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san_entry(h) for h in hostnames]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def write_tls_files(
    directory: Path,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_type: KeyType = "rsa",
    ca: trustme.CA | None = None,
) -> TlsFiles:
    """Write ``ca.pem``, ``server-chain.pem`` and ``server.key`` into ``directory``.

    A new CA is made unless ``ca`` is given.  The key file is created with mode 0600.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = ca or make_ca()
    cert_pem, key_pem = issue_leaf(
        ca, hostnames, not_before=not_before, not_after=not_after, key_type=key_type
    )
    leaf = x509.load_pem_x509_certificate(cert_pem)
    ca_file = directory / "ca.pem"
    chain_file = directory / "server-chain.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca.cert_pem.bytes())
    chain_file.write_bytes(cert_pem)
    if key_file.exists():
        key_file.unlink()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    return TlsFiles(
        ca_file=ca_file,
        chain_file=chain_file,
        key_file=key_file,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        hostnames=tuple(hostnames),
    )


def validity_from_days(start_days: float, end_days: float) -> tuple[dt.datetime, dt.datetime]:
    """``(not_before, not_after)`` as offsets in days from now (negative = in the past)."""
    now = dt.datetime.now(dt.UTC)
    return now + dt.timedelta(days=start_days), now + dt.timedelta(days=end_days)
