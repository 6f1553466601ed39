"""Detached Ed25519 signatures of report.json, with a key the operator provides.

``pytest ... --sign-key KEY.pem`` signs the exact bytes of report.json and writes
``report.json.sig`` next to it; ``golive verify report.json --pubkey KEY.pub.pem`` checks
it.  The digests in report.json prove the document is self-consistent; the signature proves
*who* produced it (whoever holds the private key), which the digests alone cannot, since
anyone who alters a report can recompute them.

The signature file is a small JSON document.  Only the signature, the algorithm, the signed
file's SHA-256 and the SHA-256 fingerprint of the *public* key are written; the private key
is read into memory and nothing derived from it but the signature leaves this module.
An auditor can check it without golive::

    jq -r .signature report.json.sig | base64 -d > report.sig.bin
    openssl pkeyutl -verify -pubin -inkey KEY.pub.pem -rawin -in report.json -sigfile report.sig.bin

Keys: ``golive keygen KEY.pem`` (or ``openssl genpkey -algorithm ed25519 -out KEY.pem`` and
``openssl pkey -in KEY.pem -pubout -out KEY.pub.pem``).  An encrypted private key is read
with the passphrase in ``$GOLIVE_SIGN_KEY_PASSPHRASE``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_SCHEMA = "golive-signature/1"
PASSPHRASE_ENV = "GOLIVE_SIGN_KEY_PASSPHRASE"


class SigningError(Exception):
    """A key or signature file that cannot be used; the message says which and why."""


def sig_path_for(report: Path) -> Path:
    return report.with_name(report.name + ".sig")


def public_key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 over the DER SubjectPublicKeyInfo (same as ``openssl pkey -pubin -outform DER | sha256sum``)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SigningError(f"{p}: cannot read the signing key ({exc.strerror or exc})") from None
    env = os.environ.get(PASSPHRASE_ENV)
    password = env.encode("utf-8") if env else None
    try:
        key = serialization.load_pem_private_key(raw, password=password)
    except TypeError:
        raise SigningError(f"{p}: the key is encrypted; put its passphrase in ${PASSPHRASE_ENV}") from None
    except ValueError as exc:
        raise SigningError(f"{p}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{p}: an Ed25519 key is needed, this is {type(key).__name__.removeprefix('_')}; "
                           "make one with `golive keygen KEY.pem`")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SigningError(f"{p}: cannot read the public key ({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError as exc:
        raise SigningError(f"{p}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{p}: an Ed25519 public key is needed, this is {type(key).__name__.removeprefix('_')}")
    return key


def signature_info(key: Ed25519PrivateKey, file_name: str = "report.json") -> dict[str, str]:
    """What report.json says about its signature (written before signing, so it is signed too)."""
    return {"algorithm": "ed25519", "file": file_name + ".sig",
            "public_key_sha256": public_key_fingerprint(key.public_key())}


def sign_bytes(data: bytes, key: Ed25519PrivateKey, file_name: str = "report.json") -> str:
    """The signature file's text for ``data``."""
    doc = {
        "schema": SIG_SCHEMA,
        "algorithm": "ed25519",
        "signed_file": file_name,
        "signed_sha256": hashlib.sha256(data).hexdigest(),
        "public_key_sha256": public_key_fingerprint(key.public_key()),
        "signature": base64.b64encode(key.sign(data)).decode("ascii"),
    }
    return json.dumps(doc, indent=2) + "\n"


def verify_signature(report: Path, pubkey: Ed25519PublicKey, sig: Path | None = None) -> tuple[bool, str]:
    """(ok, message) for the detached signature of ``report``."""
    sig = sig or sig_path_for(report)
    try:
        data = report.read_bytes()
        sdoc: Any = json.loads(sig.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        return False, f"NOT SIGNED: {exc.filename} does not exist"
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return False, f"BAD SIGNATURE FILE: {sig}: {exc}"
    if not isinstance(sdoc, dict) or sdoc.get("schema") != SIG_SCHEMA or sdoc.get("algorithm") != "ed25519":
        return False, f"BAD SIGNATURE FILE: {sig} is not a {SIG_SCHEMA} ed25519 signature"
    fp = public_key_fingerprint(pubkey)
    try:
        raw_sig = base64.b64decode(str(sdoc.get("signature", "")), validate=True)
    except (binascii.Error, ValueError):
        return False, f"BAD SIGNATURE FILE: {sig}: the signature is not base64"
    try:
        pubkey.verify(raw_sig, data)
    except InvalidSignature:
        if sdoc.get("public_key_sha256") not in (None, fp):
            return False, (f"BAD SIGNATURE: signed with another key (fingerprint {sdoc.get('public_key_sha256')}, "
                           f"the given key is {fp})")
        return False, "BAD SIGNATURE: report.json was changed after it was signed"
    return True, f"signature valid: ed25519, key sha256 {fp}"


def generate(private_path: Path, public_path: Path | None = None) -> tuple[Path, Path]:
    """A new key pair: PEM private key (mode 0600, unencrypted) and its public key."""
    public_path = public_path or private_path.with_name(private_path.stem + ".pub.pem")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path
