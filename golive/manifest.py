"""One integrity scope for a run folder: ``manifest.json`` (and ``manifest.json.sig``).

The manifest lists the SHA-256 of every file of the run (report.json, report.html,
junit.xml, report.json.sig when signed) with the golive version, the profile digest, the
target's identity, the time and the signer's key id.  With ``--sign-key`` it is signed
(Ed25519, :mod:`golive.signing`), so one signature covers the whole folder.

:func:`verify_run` is ``golive verify``: it checks report.json's own digests and verdict,
every file against the manifest, the manifest against report.json, and -- given the public
key -- the signature.  What that proves, and what it cannot, is in docs/reports.md
("What golive verify proves"): in short, without the signer's public key anyone who alters
a file can recompute every digest, so only a valid signature by a key you trust proves
who wrote the folder and that nothing changed since.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from golive.report import ReportError, atomic_write, load, verify

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "golive-manifest/1"
COVERED = ("report.json", "report.html", "junit.xml")  # every run folder has these
OPTIONAL = ("report.json.sig",)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_manifest(run_dir: Path, doc: dict[str, Any], sign_key: Ed25519PrivateKey | None = None) -> dict[str, Any]:
    files = {name: sha256_file(run_dir / name) for name in COVERED + OPTIONAL if (run_dir / name).exists()}
    signer = None
    if sign_key is not None:
        from golive.signing import public_key_fingerprint

        signer = {"algorithm": "ed25519", "public_key_sha256": public_key_fingerprint(sign_key.public_key()),
                  "signature_file": MANIFEST + ".sig"}
    return {
        "schema": MANIFEST_SCHEMA,
        "golive_version": doc.get("golive", {}).get("version"),
        "golive_git_sha": doc.get("golive", {}).get("git_sha"),
        "created_at": doc.get("run", {}).get("finished_at"),
        "profile": {"name": doc.get("profile", {}).get("name"), "sha256": doc.get("profile", {}).get("sha256")},
        "target": {k: doc.get("target", {}).get(k) for k in ("name", "environment", "file")},
        "decision": doc.get("verdict", {}).get("decision"),
        "report_document_sha256": doc.get("integrity", {}).get("document_sha256"),
        "files": files,
        "signer": signer,
    }


def write_manifest(run_dir: Path, doc: dict[str, Any], sign_key: Ed25519PrivateKey | None = None) -> Path:
    """Write manifest.json (and manifest.json.sig with ``sign_key``) over the finished folder."""
    text = json.dumps(build_manifest(run_dir, doc, sign_key), indent=2, sort_keys=True) + "\n"
    path = run_dir / MANIFEST
    atomic_write(path, text)
    if sign_key is not None:
        from golive.signing import sig_path_for, sign_bytes

        atomic_write(sig_path_for(path), sign_bytes(text.encode("utf-8"), sign_key, MANIFEST))
    return path


def report_path(path: Path) -> Path:
    """A run folder or its report.json -> the report.json."""
    return path / "report.json" if path.is_dir() else path


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(m, dict) or m.get("schema") != MANIFEST_SCHEMA or not isinstance(m.get("files"), dict):
        raise ReportError(f"{path}: not a {MANIFEST_SCHEMA} manifest")
    return m


def check_input(path: Path) -> dict[str, Any]:
    """The report document at ``path`` (a run folder or a report.json), for ``render``,
    ``summary``, ``diff`` and ``--compare``: :class:`ReportError` when it is unreadable, its
    digests or verdict do not add up, or a manifest next to it disagrees with it."""
    rpath = report_path(path)
    doc = load(rpath)
    ok, msg = verify(doc)
    if not ok:
        raise ReportError(f"{rpath}: {msg}; refusing to use an altered report (golive verify {rpath} says more)")
    mpath = rpath.parent / MANIFEST
    if mpath.exists():
        m = _load_manifest(mpath)
        want = m["files"].get(rpath.name)
        if want is not None and want != sha256_file(rpath):
            raise ReportError(f"{rpath}: ALTERED: its sha256 differs from the one in {mpath}; "
                              "refusing to use an altered report")
    return doc


def verify_run(path: Path, pubkey: Ed25519PublicKey | None = None,
               require_signature: bool = False) -> tuple[bool, list[str]]:
    """(ok, lines) for a whole run folder; :class:`ReportError` when report.json is unreadable."""
    from golive.signing import public_key_fingerprint, sig_path_for, verify_signature

    rpath = report_path(path)
    folder = rpath.parent
    doc = load(rpath)
    lines: list[str] = []
    ok, msg = verify(doc)
    lines.append(f"{rpath}: {msg}")
    mpath = folder / MANIFEST
    m: dict[str, Any] | None = None
    if not mpath.exists():
        ok = False
        lines.append(f"{mpath}: MISSING: report.html and junit.xml are not covered (a run of golive "
                     "writes a manifest; this folder was changed or written by an older golive)")
    else:
        try:
            m = _load_manifest(mpath)
        except ReportError as exc:
            ok = False
            lines.append(f"ALTERED: {exc}")
    if m is not None:
        ok = _check_files(folder, m, doc, lines) and ok
    signed = "signature" in doc or (m is not None and m.get("signer") is not None)
    sig = sig_path_for(mpath)
    if m is not None and signed and not sig.exists():
        ok = False
        lines.append(f"{sig}: MISSING: the run was signed, the signature is gone")
    if m is not None and signed and m.get("signer") is None:
        ok = False
        lines.append(f"{MANIFEST}: ALTERED: report.json says the run was signed, the manifest names no signer")
    rsig = sig_path_for(rpath)
    if pubkey is None:
        present = [p.name for p in (sig, rsig) if p.exists()]
        if present:
            lines.append(f"{', '.join(present)}: signature present, not checked (give --pubkey PUB.pem: without it, "
                         "anyone who changes the files can recompute every digest)")
        else:
            lines.append("not signed: the digests show the files agree with each other, not who wrote them")
        if require_signature:
            ok = False
            lines.append("--require-signature: a signature checked with --pubkey is required")
        return ok, lines
    fp = public_key_fingerprint(pubkey)
    if rsig.exists() or m is None:
        r_ok, r_msg = verify_signature(rpath, pubkey, rsig)
        lines.append(f"{rsig}: {r_msg}")
        ok = ok and r_ok
    if m is not None:
        if not sig.exists():
            lines.append(f"{sig}: NOT SIGNED")
            return False, lines
        sig_ok, sig_msg = verify_signature(mpath, pubkey, sig)
        if sig_ok and (m.get("signer") or {}).get("public_key_sha256") != fp:
            sig_ok, sig_msg = False, "BAD SIGNATURE: the manifest names another signer key"
        lines.append(f"{sig}: {sig_msg.replace('report.json', MANIFEST)}")
        ok = ok and sig_ok
    return ok, lines


def _check_files(folder: Path, m: dict[str, Any], doc: dict[str, Any], lines: list[str]) -> bool:
    """Every file against the manifest, and the manifest against report.json."""
    ok = True
    for name in COVERED:
        if name not in m["files"]:
            ok = False
            lines.append(f"{name}: NOT COVERED: the manifest does not list it")
    for name, want in sorted(m["files"].items()):
        f = folder / name
        if "/" in name or name.startswith("."):
            ok = False
            lines.append(f"{name}: INVALID: the manifest names a file outside the run folder")
        elif not f.exists():
            ok = False
            lines.append(f"{name}: MISSING: listed in the manifest, not in the folder")
        elif sha256_file(f) != want:
            ok = False
            lines.append(f"{name}: ALTERED: sha256 {sha256_file(f)} is not the manifest's {want}")
        else:
            lines.append(f"{name}: intact (sha256 {want[:16]}...)")
    same = {"profile sha256": (m.get("profile", {}).get("sha256"), doc.get("profile", {}).get("sha256")),
            "target": (m.get("target", {}).get("name"), doc.get("target", {}).get("name")),
            "golive version": (m.get("golive_version"), doc.get("golive", {}).get("version")),
            "decision": (m.get("decision"), doc.get("verdict", {}).get("decision")),
            "document sha256": (m.get("report_document_sha256"), doc.get("integrity", {}).get("document_sha256"))}
    for what, (a, b) in same.items():
        if a != b:
            ok = False
            lines.append(f"{MANIFEST}: INCONSISTENT: {what} {a!r} differs from report.json's {b!r}")
    return ok
