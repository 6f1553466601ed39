"""What a backup file is, whether it is encrypted, and whether it reads back completely.

Everything here works on bytes already read or on *local copies* (``checks.backups.location
.fetch``): a backup's original is never opened by a tool that could change it.  External
tools (``pg_restore``, the target's ``decrypt_command``) run on the checking host through
:func:`run_local`, bounded in time and killed with their process group on timeout or Ctrl-C.
"""
from __future__ import annotations

import bz2
import contextlib
import dataclasses
import gzip
import lzma
import math
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import IO, Any

from checks.connection import redact

HEAD_BYTES = 64 * 1024
ENTROPY_ENCRYPTED = 7.5  # bits per byte; compressed or encrypted data is close to 8
ENTROPY_MIN_SAMPLE = 1024


class ContentError(Exception):
    """The backup's content is damaged or unreadable; ``str()`` says how (a finding)."""


class NeedsKey(Exception):
    """The backup is encrypted and the target gives no ``decrypt_command``: the content
    cannot be verified (could not measure, not a finding about the backup)."""


class ToolError(Exception):
    """A local tool is missing or could not run (could not measure)."""


@dataclasses.dataclass(frozen=True)
class Sniff:
    """``format``: sqlite, pg-custom, pg-plain, gzip, bzip2, xz, zstd, zip, tar, hdf5, text,
    age, openpgp, openssl, zip-encrypted, empty or unknown.  ``encrypted``: True for a known
    encryption header, False for a known plaintext format, None when the header says nothing."""

    format: str
    label: str
    encrypted: bool | None

    @property
    def compressed(self) -> bool:
        return self.format in ("gzip", "bzip2", "xz", "zstd")


_MAGIC: tuple[tuple[bytes, str, str, bool], ...] = (
    (b"SQLite format 3\x00", "sqlite", "SQLite database", False),
    (b"PGDMP", "pg-custom", "PostgreSQL custom-format dump (PGDMP)", False),
    (b"\x1f\x8b", "gzip", "gzip stream", False),
    (b"BZh", "bzip2", "bzip2 stream", False),
    (b"\xfd7zXZ\x00", "xz", "xz stream", False),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd stream", False),
    (b"\x89HDF\r\n\x1a\n", "hdf5", "HDF5 file", False),
    (b"age-encryption.org/v1", "age", "age encryption header", True),
    (b"-----BEGIN AGE ENCRYPTED FILE-----", "age", "age encryption header (armored)", True),
    (b"-----BEGIN PGP MESSAGE-----", "openpgp", "OpenPGP message (armored)", True),
    (b"Salted__", "openssl", "OpenSSL enc header 'Salted__'", True),
)


def _openpgp(head: bytes) -> bool:
    """A binary OpenPGP message starts with a public-key or symmetric-key encrypted session
    key packet (tag 1 or 3) whose version byte is 3-6."""
    if len(head) < 4:
        return False
    b = head[0]
    if b in (0x84, 0x8C):  # old format, 1-byte length
        return head[2] in (3, 4, 5, 6)
    if b in (0x85, 0x8D):  # old format, 2-byte length
        return head[3] in (3, 4, 5, 6)
    if b in (0xC1, 0xC3):  # new format
        return head[2] in (3, 4, 5, 6) if head[1] < 192 else head[3] in (3, 4, 5, 6)
    return False


def _mostly_text(head: bytes) -> bool:
    if not head:
        return False
    sample = head[:8192]
    printable = sum(1 for c in sample if 32 <= c < 127 or c in (9, 10, 13)) + sum(1 for c in sample if c >= 0x80) // 2
    return printable / len(sample) > 0.95 and b"\x00" not in sample


def sniff(head: bytes) -> Sniff:
    """Identify a backup from its first bytes (:data:`HEAD_BYTES` are plenty)."""
    if not head:
        return Sniff("empty", "empty file", None)
    for magic, fmt, label, encrypted in _MAGIC:
        if head.startswith(magic):
            return Sniff(fmt, label, encrypted)
    if head.startswith(b"PK\x03\x04"):
        flags = struct.unpack("<H", head[6:8])[0] if len(head) >= 8 else 0
        if flags & 0x1:
            return Sniff("zip-encrypted", "encrypted ZIP entries", True)
        return Sniff("zip", "ZIP archive", False)
    if len(head) > 262 and head[257:262] == b"ustar":
        return Sniff("tar", "tar archive", False)
    if _openpgp(head):
        return Sniff("openpgp", "OpenPGP encrypted message", True)
    if b"PostgreSQL database dump" in head[:400]:
        return Sniff("pg-plain", "PostgreSQL plain SQL dump", False)
    if _mostly_text(head):
        return Sniff("text", "text", False)
    return Sniff("unknown", "no known header", None)


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def encryption_verdict(head: bytes) -> tuple[bool, str, dict[str, Any]]:
    """(encrypted?, why, facts) for a backup's first bytes.

    A known encryption header (age, OpenPGP, OpenSSL ``Salted__``, encrypted ZIP) means
    encrypted; a known plaintext format (SQLite, pg_dump, gzip/xz/bzip2/zstd, tar, ZIP, HDF5,
    text) means plaintext -- compression is not encryption.  With no known header, bytes
    that look random (entropy >= 7.5 bits/byte over >= 1 KiB) count as encrypted."""
    s = sniff(head)
    facts: dict[str, Any] = {"format": s.format, "bytes_read": len(head)}
    if s.encrypted is True:
        return True, f"encrypted ({s.label})", facts
    if s.format == "empty":
        return False, "empty file: nothing is stored, encrypted or not", facts
    if s.encrypted is False:
        return False, f"plaintext ({s.label})", facts
    e = entropy(head)
    facts["entropy_bits_per_byte"] = round(e, 3)
    if len(head) < ENTROPY_MIN_SAMPLE:
        return False, f"no known header and too short to judge ({len(head)} bytes)", facts
    if e >= ENTROPY_ENCRYPTED:
        return True, f"encrypted (no known header; {e:.2f} bits/byte, random-looking)", facts
    return False, f"plaintext (no known header; {e:.2f} bits/byte, structured data)", facts


def run_local(argv: list[str] | str, *, timeout_s: float, stdin: Path | None = None, stdout: Path | None = None,
              env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run a tool on the checking host: (exit status, stdout, stderr).  A string runs under
    ``sh -c``.  ``env`` replaces the environment when given.  The child gets its own
    process group, killed on timeout or when this process is interrupted, so nothing
    outlives a Ctrl-C."""
    shell = isinstance(argv, str)
    full_env = dict(os.environ) if env is None else env
    with contextlib.ExitStack() as files:
        in_fh: IO[bytes] | int = files.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
        out_fh: IO[bytes] | int = files.enter_context(open(stdout, "wb")) if stdout else subprocess.PIPE
        try:
            proc = subprocess.Popen(argv, shell=shell, stdin=in_fh, stdout=out_fh, stderr=subprocess.PIPE,
                                    env=full_env, start_new_session=True)
        except FileNotFoundError as exc:
            raise ToolError(f"{exc.filename or argv} not found on the checking host") from None
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ToolError(f"{_name(argv)} timed out after {timeout_s:g} s") from None
        except BaseException:
            _kill_group(proc)
            raise
    return proc.returncode, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


def _name(argv: list[str] | str) -> str:
    return argv.split()[0] if isinstance(argv, str) else argv[0]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return redact(lines[-1]) if lines else ""


def _decompress(fmt: str, src: Path, dest: Path, timeout_s: float) -> None:
    if fmt == "zstd":
        rc, _, err = run_local(["zstd", "-dc", str(src)], timeout_s=timeout_s, stdout=dest)
        if rc != 0:
            raise ContentError(f"zstd: {last_line(err)}")
        return
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[fmt]
    try:
        with opener(src, "rb") as fin, open(dest, "wb") as fout:  # type: ignore[operator]
            shutil.copyfileobj(fin, fout, 1 << 20)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise ContentError(f"{fmt} stream is damaged: {exc}") from None


def unwrap(path: Path, work: Path, decrypt_command: str | None, *, timeout_s: float) -> tuple[Path, list[str]]:
    """Decrypt and decompress ``path`` (a local copy) until a plaintext format shows;
    returns that file and the steps taken.  NeedsKey when encrypted without a
    ``decrypt_command``; ContentError when decryption or decompression fails."""
    steps: list[str] = []
    current = path
    for layer in range(4):
        with open(current, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        s = sniff(head)
        encrypted = s.encrypted is True or (s.encrypted is None and encryption_verdict(head)[0])
        if encrypted:
            if not decrypt_command:
                raise NeedsKey(f"{s.label}: encrypted, and the target gives no decrypt_command "
                               "(backups[].decrypt_command) to read it")
            out = work / f"layer{layer}.decrypted"
            rc, _, err = run_local(decrypt_command, timeout_s=timeout_s, stdin=current, stdout=out)
            if rc != 0:
                raise ContentError(f"decryption failed (exit {rc}): {last_line(err) or 'no message'}")
            steps.append(f"decrypted ({s.label})")
            current = out
            continue
        if s.compressed:
            out = work / f"layer{layer}.{s.format}-decompressed"
            _decompress(s.format, current, out, timeout_s)
            steps.append(f"decompressed ({s.format})")
            current = out
            continue
        return current, steps
    raise ContentError("more than 4 layers of encryption/compression")


@dataclasses.dataclass(frozen=True)
class Verified:
    format: str
    facts: tuple[str, ...]


_KINDS = {"postgres": ("pg-custom", "pg-plain", "pg-tar"), "sqlite": ("sqlite",)}


def _format_of(path: Path) -> Sniff:
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    s = sniff(head)
    if s.format == "tar":
        try:
            with tarfile.open(path) as tar:
                if "toc.dat" in tar.getnames():
                    return Sniff("pg-tar", "PostgreSQL tar-format dump", False)
        except (tarfile.TarError, OSError, EOFError):
            pass
    return s


def verify(path: Path, kind: str, *, timeout_s: float) -> Verified:
    """Read a plaintext backup completely; ContentError with the reason when it is damaged
    or is not what the backup's kind says."""
    size = path.stat().st_size
    if size == 0:
        raise ContentError("the backup holds 0 bytes once decrypted/decompressed (an empty dump)")
    s = _format_of(path)
    allowed = _KINDS.get(kind)
    if allowed and s.format not in allowed:
        raise ContentError(f"not a {kind} backup: found {s.label}")
    if s.format in ("pg-custom", "pg-tar"):
        return _verify_pg_archive(path, s, timeout_s)
    if s.format == "pg-plain":
        return _verify_pg_plain(path)
    if s.format == "sqlite":
        return _verify_sqlite(path)
    if s.format == "tar":
        return _verify_tar(path)
    if s.format == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
                n = len(zf.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise ContentError(f"ZIP archive is damaged: {exc}") from None
        if bad:
            raise ContentError(f"ZIP member {bad} fails its CRC")
        return Verified("zip", (f"{n} members, CRCs ok",))
    if s.format == "hdf5":
        return _verify_hdf5(path, size)
    return Verified(s.format, (f"{s.label}, {size} bytes; content not parsed",))


def _verify_pg_archive(path: Path, s: Sniff, timeout_s: float) -> Verified:
    rc, out, err = run_local(["pg_restore", "--list", str(path)], timeout_s=timeout_s)
    if rc != 0:
        raise ContentError(f"pg_restore --list: {last_line(err) or f'exit {rc}'}")
    entries = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(";")]
    tables = sum(1 for ln in entries if " TABLE DATA " in ln)
    # --list reads only the table of contents; reading every data block catches truncation.
    rc, _, err = run_local(["pg_restore", "--file=/dev/null", str(path)], timeout_s=timeout_s)
    if rc != 0:
        raise ContentError(f"pg_restore (full read): {last_line(err) or f'exit {rc}'}")
    return Verified(s.format, (f"{len(entries)} TOC entries, {tables} tables with data", "every data block read"))


def _verify_pg_plain(path: Path) -> Verified:
    creates = copies = 0
    tail = b""
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b"CREATE TABLE "):
                creates += 1
            elif line.startswith(b"COPY "):
                copies += 1
            tail = (tail + line)[-4096:]
    if b"PostgreSQL database dump complete" not in tail:
        raise ContentError("plain dump ends without '-- PostgreSQL database dump complete' (truncated)")
    return Verified("pg-plain", (f"{creates} CREATE TABLE, {copies} COPY blocks", "footer present"))


def _verify_sqlite(path: Path) -> Verified:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ContentError(f"SQLite: {exc}") from None
    if rows != [("ok",)]:
        raise ContentError("PRAGMA integrity_check: " + "; ".join(str(r[0]) for r in rows[:5]))
    return Verified("sqlite", ("PRAGMA integrity_check: ok", f"{tables} tables"))


def _verify_tar(path: Path) -> Verified:
    n = 0
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                n += 1
                if member.isfile():
                    fh = tar.extractfile(member)
                    while fh is not None and fh.read(1 << 20):
                        pass
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ContentError(f"tar archive is damaged after {n} members: {exc}") from None
    if n == 0:
        raise ContentError("tar archive has no members")
    return Verified("tar", (f"{n} members, every one read",))


def _verify_hdf5(path: Path, size: int) -> Verified:
    """The superblock's end-of-file address must not lie beyond the file (truncation)."""
    with open(path, "rb") as fh:
        sb = fh.read(128)
    version = sb[8]
    try:
        if version in (0, 1):
            offsets = sb[13]
            base = 24 + (4 if version == 1 else 0)
            eof_at = base + 2 * offsets
        elif version in (2, 3):
            offsets = sb[9]
            eof_at = 12 + 2 * offsets
        else:
            return Verified("hdf5", (f"HDF5 superblock version {version}: not parsed",))
        fmt = {4: "<I", 8: "<Q"}[offsets]
        eof = struct.unpack(fmt, sb[eof_at:eof_at + offsets])[0]
    except (KeyError, struct.error, IndexError):
        raise ContentError("HDF5 superblock is damaged") from None
    if eof > size:
        raise ContentError(f"HDF5 file is truncated: superblock says {eof} bytes, file has {size}")
    return Verified("hdf5", (f"HDF5 superblock v{version}, end of file {eof} <= {size} bytes",))
