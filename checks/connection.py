"""Reaching a host: testinfra hosts, bounded command runs, and readable failure reasons.

Probes never talk to a host directly: they take a ``testinfra.host.Host`` built here and
run commands through :func:`run`, which bounds every command in time (``timeout`` on the
host *and* a guard on this side) and turns every way of not getting an answer
(connection refused, key refused, hang, backend exception) into a :class:`ProbeError`
whose reason a person can read.  Probes turn that into ``Measurement.failed``.

The remote layer itself is testinfra's (``testinfra.get_host``); nothing here opens a
socket or spawns ssh on its own.
"""
from __future__ import annotations

import atexit
import hashlib
import math
import re
import shlex
import shutil
import tempfile
import threading
import time
import urllib.parse
from importlib import metadata
from typing import Any

import testinfra
from testinfra.backend.base import BaseBackend, CommandResult
from testinfra.host import Host

from golive.redact import redact  # the one redaction mechanism (registered secrets too)

__all__ = ["ProbeError", "describe", "get_host", "redact", "run", "tool"]

# Seconds the local guard waits beyond the command's own limit: the remote ``timeout``
# needs a moment to kill and report, and ssh a moment to carry the exit status back.
_GRACE_S = 3.0
_SSH_SCHEMES = frozenset({"ssh", "safe-ssh"})

_cache: dict[tuple[Any, ...], Host] = {}
_labels: dict[int, str] = {}
_lock = threading.Lock()
_control_dir: str | None = None


class ProbeError(Exception):
    """A command could not be run or gave no usable answer; ``reason`` is for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _control_path(key: tuple[Any, ...]) -> str:
    """A ControlMaster socket path in a private directory (one per golive process).

    ssh's ``%C`` covers user, host and port only; the prefix derived from the whole cache
    key keeps a host built with another key or config from riding on an existing master
    connection (which would hide, say, a refused key)."""
    global _control_dir
    if _control_dir is None:
        _control_dir = tempfile.mkdtemp(prefix="golive-ssh-")
        # Masters still running exit by themselves after ControlPersist (60 s idle).
        atexit.register(shutil.rmtree, _control_dir, ignore_errors=True)
    tag = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
    return f"{_control_dir}/{tag}-%C"


def get_host(
    connection: str,
    *,
    ssh_config: str | None = None,
    ssh_identity_file: str | None = None,
    sudo: bool = False,
    timeout_s: float = 10,
    multiplex: bool = True,
) -> Host:
    """A testinfra host for a connection URI (``local://``, ``ssh://user@host:port``,
    ``paramiko://``, ``docker://``...), cached per connection and options.

    A URI without a scheme is taken as ``ssh://``.  ssh hosts never prompt
    (``BatchMode=yes`` unless the URI carries a password for sshpass), give up connecting
    after ``timeout_s`` (``ConnectTimeout``), and share one connection per host
    (ControlMaster) unless ``multiplex`` is False -- turn it off for failover drills, where
    a master connection to a moved virtual IP hangs.  Nothing connects until the first
    command.  Raises :class:`ProbeError` for an unknown connection type.
    """
    uri = connection if "://" in connection else f"ssh://{connection}"
    key = (uri, ssh_config, ssh_identity_file, sudo, float(timeout_s), multiplex)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        scheme = uri.partition("://")[0]
        kwargs: dict[str, Any] = {"sudo": sudo}
        if scheme in _SSH_SCHEMES or scheme == "paramiko":
            kwargs["timeout"] = max(1, math.ceil(timeout_s))
            if ssh_config:
                kwargs["ssh_config"] = ssh_config
            if ssh_identity_file:
                kwargs["ssh_identity_file"] = ssh_identity_file
        if scheme in _SSH_SCHEMES:
            netloc = urllib.parse.urlsplit(uri).netloc
            extra = ["-o ServerAliveInterval=5", "-o ServerAliveCountMax=2"]
            if not BaseBackend.parse_hostspec(netloc).password:
                extra.insert(0, "-o BatchMode=yes")
            if multiplex:
                # Passed as an extra argument, not testinfra's ``controlpath``: testinfra
                # %-formats its command line and would choke on ssh's ``%C`` token there.
                extra.append(f"-o ControlPath={_control_path(key)}")
            else:
                kwargs["controlpersist"] = 0
            kwargs["ssh_extra_args"] = " ".join(extra)
        try:
            host = testinfra.get_host(uri, **kwargs)
        except Exception as exc:  # noqa: BLE001 - unknown backend, bad URI: a config problem
            raise ProbeError(redact(f"cannot use connection {uri}: {exc}")) from None
        _cache[key] = host
        _labels[id(host)] = redact(uri.split("?", 1)[0])
        return host


def describe(host: Host) -> str:
    """The host as evidence names it: its connection URI without secrets or options."""
    return _labels.get(id(host)) or host.backend.get_pytest_id()


def tool(host: Host) -> str:
    """``pytest-testinfra <version> (<backend> backend)`` for evidence."""
    try:
        version = metadata.version("pytest-testinfra")
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored testinfra
        version = "unknown"
    return f"pytest-testinfra {version} ({host.backend.get_connection_type()} backend)"


def _bounded(command: str, limit: int) -> str:
    """``command`` under the host's ``timeout`` where it has one (coreutils, busybox)."""
    inner = shlex.quote(command)
    return (
        "if command -v timeout >/dev/null 2>&1; "
        f"then exec timeout -k 2 {limit} sh -c {inner}; else exec sh -c {inner}; fi"
    )


def run(host: Host, command: str, timeout_s: float = 10) -> CommandResult:
    """Run a shell command on ``host`` and return its result, whatever its exit status,
    within ``timeout_s`` seconds.

    Raises :class:`ProbeError` when there is no answer: the connection failed (ssh exit
    255, a backend exception) or the command ran past its limit.  A command that is
    missing on the host is *not* an error here (exit status 127): probes decide what
    absence means.
    """
    limit = max(1, math.ceil(timeout_s))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = host.run(_bounded(command, limit))
        except BaseException as exc:  # noqa: BLE001 - carried to the caller's thread
            box["error"] = exc

    started = time.monotonic()
    # testinfra's run() blocks on the child with no timeout of its own, so it runs in a
    # daemon thread: if ssh hangs where ConnectTimeout does not reach (key exchange),
    # the probe still returns; the stray ssh exits when ConnectTimeout/ServerAlive fire.
    worker = threading.Thread(target=target, name="golive-run", daemon=True)
    worker.start()
    worker.join(limit + _GRACE_S)
    if worker.is_alive():
        raise ProbeError(f"timed out after {timeout_s:g} s")
    if "error" in box:
        raise ProbeError(_explain(host, box["error"]))
    result: CommandResult = box["result"]
    if result.rc in (124, 137) and time.monotonic() - started >= limit * 0.9:
        raise ProbeError(f"timed out after {timeout_s:g} s")
    if result.rc == 127 and "sshpass" in result.stderr:
        raise ProbeError("ssh: sshpass is not installed (needed for a password in the URI)")
    return result


_SSH_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"connect to host (\S+) port (\d+): (.+)", re.IGNORECASE), "{2} to {0}:{1}"),
    (re.compile(r"Permission denied \(([^)]*)\)", re.IGNORECASE), "permission denied ({0})"),
    (re.compile(r"Could not resolve hostname (\S+?):", re.IGNORECASE), "cannot resolve host name {0}"),
    (re.compile(r"Host key verification failed", re.IGNORECASE), "host key verification failed"),
    (re.compile(r"timed out during banner exchange", re.IGNORECASE),
     "timed out during banner exchange with {addr} (not an ssh server, or it hangs)"),
    (re.compile(r"Connection (?:closed|reset) by (?:\S+ )?(\S+) port (\d+)", re.IGNORECASE),
     "connection closed by {0}:{1} before login"),
)


def _address(host: Host) -> str:
    """``name:port`` of an ssh-like host as its URI gives it (port omitted if not given)."""
    spec = getattr(host.backend, "host", None)
    name = getattr(spec, "name", None) or host.backend.get_hostname()
    port = getattr(spec, "port", None)
    return f"{name}:{port}" if port else str(name)


def _explain(host: Host, exc: BaseException) -> str:
    """A one-line, secret-free reason for a failed run."""
    backend = host.backend.get_connection_type()
    detail = exc.args[0] if exc.args else None
    if isinstance(exc, RuntimeError) and isinstance(detail, CommandResult):
        stderr = detail.stderr.strip()
        for pattern, template in _SSH_PATTERNS:
            match = pattern.search(stderr)
            if match:
                reason = template.format(*match.groups(), addr=_address(host))
                return redact(f"{backend}: {reason[0].lower()}{reason[1:]}")
        lines = [line for line in stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {detail.rc} with no message"
        return redact(f"{backend}: {last}")
    return redact(f"{backend}: {type(exc).__name__}: {exc}".rstrip(": "))
