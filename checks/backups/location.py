"""Where backups are: a path on some host, reached through testinfra.

A location is written as

- ``/var/backups/pg`` or ``local:///var/backups/pg``: on the checking host;
- ``ssh://user@host[:port]/var/backups/pg`` (or any testinfra scheme: ``paramiko://``,
  ``docker://name/path`` ...): the path on that host, with the backup entry's ssh options;
- ``HOST:/var/backups/pg`` where ``HOST`` is a name in the target's ``hosts:``: that host's
  connection and options.

Every command goes through :func:`checks.connection.run` (bounded in time); file bytes are
read with ``cat``/``head`` over the same connection, so an ssh location needs nothing but a
POSIX shell and coreutils on the far side.
"""
from __future__ import annotations

import dataclasses
import shlex
import shutil
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from testinfra.backend import BACKENDS
from testinfra.host import Host

from checks.connection import ProbeError, get_host, redact, run

#: The URI schemes a location may use: those testinfra connects with.
SCHEMES = frozenset(BACKENDS)

FETCH_MAX_BYTES = 4 * 1024**3  # bigger backups are verified where they are, not copied here


@dataclasses.dataclass(frozen=True)
class HostConn:
    """A target host that a location may name (``HOST:/path``): its name and how to reach
    it (a testinfra URI and the connection options of the target's ``hosts:`` entry)."""

    name: str
    connection: str
    ssh_config: str | None = None
    ssh_identity_file: str | None = None
    sudo: bool = False
    timeout_s: float = 10.0
    known_hosts: str | tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Location:
    """A parsed location.  ``label`` is what reports show (no secrets); ``endpoint`` names
    the machine as the connection reaches it (``local``, ``ssh://host:port``): two
    locations are on different hosts when their endpoints differ."""

    raw: str
    connection: str
    path: str
    label: str
    endpoint: str
    ssh_config: str | None = None
    ssh_identity_file: str | None = None
    sudo: bool = False
    timeout_s: float = 30.0
    known_hosts: str | tuple[str, ...] | None = None

    @property
    def is_local(self) -> bool:
        return self.connection == "local://"

    def host(self) -> Host:
        """The testinfra host (cached by checks.connection); ProbeError for a bad URI."""
        return get_host(self.connection, ssh_config=self.ssh_config, ssh_identity_file=self.ssh_identity_file,
                        sudo=self.sudo, timeout_s=min(self.timeout_s, 30.0), known_hosts=self.known_hosts)

    def join(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    def describe(self, name: str | None = None) -> str:
        """``label`` or ``label/name`` for evidence."""
        return self.label if name is None else f"{self.label.rstrip('/')}/{name}"


def parse_location(text: str, *, hosts: Sequence[HostConn] = (), ssh_config: str | None = None,
                   ssh_identity_file: str | None = None, timeout_s: float = 30.0) -> Location:
    """Parse a location string; ValueError with a reason a person can act on."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty location")
    if raw.startswith("/"):
        return Location(raw, "local://", raw, raw, "local", timeout_s=timeout_s)
    if "://" in raw:
        scheme = raw.split("://", 1)[0]
        if scheme not in SCHEMES:
            raise ValueError(f"location '{redact(raw)}' has an unknown scheme '{scheme}'; use a path, "
                             "ssh://user@host/path or HOST:/path")
        parts = urllib.parse.urlsplit(raw)
        path = urllib.parse.unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"location '{redact(raw)}' has no absolute path after the host")
        if scheme == "local":
            return Location(raw, "local://", path, path, "local", timeout_s=timeout_s)
        connection = f"{scheme}://{parts.netloc}"
        host = (parts.hostname or parts.netloc).lower()
        endpoint = f"{scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        return Location(raw, connection, path, redact(raw), endpoint, ssh_config, ssh_identity_file,
                        timeout_s=timeout_s)
    name, sep, path = raw.partition(":")
    if sep and path.startswith("/"):
        for spec in hosts:
            if spec.name == name:
                inner = parse_location(spec.connection.rstrip("/") + "/", timeout_s=spec.timeout_s) \
                    if "://" in spec.connection else None
                endpoint = inner.endpoint if inner else spec.connection
                return Location(raw, spec.connection, path, raw, endpoint, spec.ssh_config,
                                spec.ssh_identity_file, spec.sudo, max(timeout_s, spec.timeout_s), spec.known_hosts)
        known = ", ".join(h.name for h in hosts) or "none"
        raise ValueError(f"location '{raw}' names host '{name}', which is not in hosts (known: {known})")
    raise ValueError(f"location '{redact(raw)}' is not a path, a URI (ssh://user@host/path) or HOST:/path")


def sh(loc: Location, command: str, *, timeout_s: float | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """stdout of ``command`` on the location's host; ProbeError when it cannot run or exits
    with a status not in ``ok`` (the reason quotes its last stderr line)."""
    limit = timeout_s if timeout_s is not None else loc.timeout_s
    result = run(loc.host(), command, limit)
    if result.rc not in ok:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise ProbeError(redact(lines[-1] if lines else f"exit status {result.rc}"))
    return str(result.stdout)


def read_bytes(loc: Location, path: str, limit: int, *, timeout_s: float | None = None) -> bytes:
    """Up to ``limit`` first bytes of ``path`` on the location's host."""
    if loc.is_local:
        try:
            with open(path, "rb") as fh:
                return fh.read(limit)
        except OSError as exc:
            raise ProbeError(f"cannot read {path}: {exc.strerror}") from None
    result = run(loc.host(), f"head -c {int(limit)} -- {shlex.quote(path)}",
                 timeout_s if timeout_s is not None else loc.timeout_s)
    if result.rc != 0:
        raise ProbeError(redact(result.stderr.strip().splitlines()[-1] if result.stderr.strip()
                                else f"head exited {result.rc}"))
    return bytes(result.stdout_bytes)


def fetch(loc: Location, path: str, dest: Path, size: int, *, timeout_s: float) -> float:
    """Copy ``path`` from the location's host into the local file ``dest``; seconds taken.
    Local files are copied (so nothing ever opens the original); remote ones are read
    with ``cat`` over the connection, up to :data:`FETCH_MAX_BYTES`."""
    started = time.monotonic()
    if loc.is_local:
        try:
            shutil.copyfile(path, dest)
        except OSError as exc:
            raise ProbeError(f"cannot copy {path}: {exc.strerror}") from None
        return time.monotonic() - started
    if size > FETCH_MAX_BYTES:
        raise ProbeError(f"{loc.describe(Path(path).name)} is {size} bytes, more than golive copies "
                         f"({FETCH_MAX_BYTES} bytes); verify it on its host")
    result = run(loc.host(), f"cat -- {shlex.quote(path)}", timeout_s)
    if result.rc != 0:
        raise ProbeError(redact(result.stderr.strip() or f"cat exited {result.rc}"))
    dest.write_bytes(bytes(result.stdout_bytes))
    return time.monotonic() - started


def sha256(loc: Location, paths: Sequence[str], *, timeout_s: float | None = None) -> dict[str, str]:
    """sha256 of each path, computed on the location's host (``sha256sum``)."""
    if not paths:
        return {}
    out = sh(loc, "sha256sum -- " + " ".join(shlex.quote(p) for p in paths), timeout_s=timeout_s)
    found: dict[str, str] = {}
    for line in out.splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64:
            found[name.lstrip("*")] = digest
    return found
