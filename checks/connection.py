"""Reaching a host: testinfra hosts, bounded command runs, and readable failure reasons.

Probes never talk to a host directly: they take a ``testinfra.host.Host`` built here and
run commands through :func:`run`, which bounds every command in time (``timeout`` on the
host *and* a guard on this side) and turns every way of not getting an answer
(connection refused, key refused, hang, backend exception) into a :class:`ProbeError`
whose reason a person can read.  Probes turn that into ``Measurement.failed``.

Many hosts, few sessions: :func:`prefetch` runs a list of commands in *one* remote shell
(bounded as a whole, each command's stdout, stderr and exit status kept apart) and keeps the
answers; the next :func:`run` of exactly one of those commands on that host is answered from
there, once, instead of opening another ssh session.  A probe cannot tell the difference
except through :attr:`GatheredResult.session`, which evidence reports.  A prefetch that
fails leaves nothing behind: the probes then run their commands one by one as usual.

The remote layer itself is testinfra's (``testinfra.get_host``); nothing here opens a
socket or spawns ssh on its own.
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import functools
import hashlib
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
from importlib import metadata
from typing import Any

import testinfra
from testinfra.backend.base import BaseBackend, CommandResult
from testinfra.host import Host

from checks.hostkeys import KnownHosts, StrictParamikoBackend, known_hosts_file, ssh_options
from golive.model import utcnow
from golive.redact import redact  # the one redaction mechanism (registered secrets too)

__all__ = ["GatheredResult", "ProbeError", "Session", "close_masters", "describe", "forget_prefetched", "get_host",
           "prefetch", "redact", "run", "tool"]

# Seconds the local guard waits beyond the command's own limit: the remote ``timeout``
# needs a moment to kill and report, and ssh a moment to carry the exit status back.
_GRACE_S = 3.0
_SSH_SCHEMES = frozenset({"ssh", "safe-ssh"})

_cache: dict[tuple[Any, ...], Host] = {}
_labels: dict[int, str] = {}
_lock = threading.Lock()
_control_dir: str | None = None
# Answers kept by prefetch(): id(host) -> command -> answers not yet used (oldest first).
_kept: dict[int, dict[str, collections.deque[GatheredResult]]] = {}
# A kept answer older than this is dropped rather than served: it would no longer be "now".
KEEP_S = 300.0


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
    tag = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
    return f"{_private_dir()}/{tag}-%C"


def _private_dir() -> str:
    """This process's private folder (0700) for ssh control sockets and pinned host keys;
    removed at exit."""
    global _control_dir
    if _control_dir is None:
        _control_dir = tempfile.mkdtemp(prefix="golive-ssh-")
        atexit.register(shutil.rmtree, _control_dir, ignore_errors=True)
        atexit.register(close_masters)  # runs first (atexit is last in, first out)
    return _control_dir


def close_masters() -> int:
    """End this process's ControlMaster connections; returns how many were asked to.

    Without this they would stay logged in to every host for ControlPersist (60 s) after
    the run.  The masters are the ssh processes whose command line names this process's
    private control folder (found in /proc; elsewhere they simply time out)."""
    if _control_dir is None or not os.path.isdir("/proc"):
        return 0
    needle, ended = _control_dir.encode(), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                argv = fh.read()
        except OSError:
            continue
        first = argv.split(b"\0", 1)[0]  # a master retitles itself "ssh: PATH [mux]"
        if needle in argv and (first.startswith(b"ssh: ") or first.rsplit(b"/", 1)[-1] == b"ssh"):
            try:
                os.kill(int(entry.name), signal.SIGTERM)
                ended += 1
            except OSError:
                pass
    return ended


def get_host(
    connection: str,
    *,
    ssh_config: str | None = None,
    ssh_identity_file: str | None = None,
    sudo: bool = False,
    timeout_s: float = 10,
    multiplex: bool = True,
    known_hosts: KnownHosts = None,
) -> Host:
    """A testinfra host for a connection URI (``local://``, ``ssh://user@host:port``,
    ``paramiko://``, ``docker://``...), cached per connection and options.

    A URI without a scheme is taken as ``ssh://``.  ssh hosts never prompt
    (``BatchMode=yes`` unless the URI carries a password for sshpass), give up connecting
    after ``timeout_s`` (``ConnectTimeout``), and share one connection per host
    (ControlMaster) unless ``multiplex`` is False -- turn it off for failover drills, where
    a master connection to a moved virtual IP hangs.  Nothing connects until the first
    command.  ``known_hosts`` (a file, or pinned ``TYPE BASE64`` keys) is the only trust
    for ssh:// and paramiko:// host keys when given (:mod:`checks.hostkeys`); paramiko://
    rejects unknown keys in any case.  Raises :class:`ProbeError` for an unknown connection
    type.
    """
    uri = connection if "://" in connection else f"ssh://{connection}"
    known = known_hosts if known_hosts is None or isinstance(known_hosts, str) else tuple(known_hosts)
    key = (uri, ssh_config, ssh_identity_file, sudo, float(timeout_s), multiplex, known)
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
        try:
            if scheme in _SSH_SCHEMES:
                if known is not None:
                    u = urllib.parse.urlsplit(uri)
                    path = known_hosts_file(known, u.hostname or "", u.port, _private_dir())
                    extra.extend(ssh_options(path or ""))
                kwargs["ssh_extra_args"] = " ".join(extra)
            if scheme == "paramiko":
                hostspec = uri.split("://", 1)[1].split("?", 1)[0]
                host = Host(StrictParamikoBackend(hostspec, known_hosts=known, **kwargs))
            else:
                host = testinfra.get_host(uri, **kwargs)
        except Exception as exc:
            raise ProbeError(redact(f"cannot use connection {uri}: {exc}")) from None
        _cache[key] = host
        _labels[id(host)] = redact(uri.split("?", 1)[0])
        return host


def describe(host: Host) -> str:
    """The host as evidence names it: its connection URI without secrets or options."""
    return _labels.get(id(host)) or host.backend.get_pytest_id()


def tool(host: Host) -> str:
    """``pytest-testinfra <version> (<backend> backend)`` for evidence."""
    return f"pytest-testinfra {_testinfra_version()} ({host.backend.get_connection_type()} backend)"


@functools.cache
def _testinfra_version() -> str:
    try:
        return metadata.version("pytest-testinfra")
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored testinfra
        return "unknown"


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
    absence means.  A command :func:`prefetch` ran on this host moments ago is answered
    from there (once), exactly as it answered then.
    """
    limit = max(1, math.ceil(timeout_s))
    kept = _take_kept(host, command)
    if kept is not None:
        if kept.timed_out:
            raise ProbeError(f"timed out after {kept.limit_s:g} s")
        return kept
    started = time.monotonic()
    result = _run_bounded(host, command, limit, timeout_s)
    if _timed_out(result.rc, time.monotonic() - started, limit):
        raise ProbeError(f"timed out after {timeout_s:g} s")
    if result.rc == 127 and "sshpass" in result.stderr:
        raise ProbeError("ssh: sshpass is not installed (needed for a password in the URI)")
    return result


def _timed_out(rc: int, elapsed_s: float | None, limit: float) -> bool:
    """``timeout``'s exit status (124, or 137 after its KILL) after running for most of the
    limit: a command that exits 124 by itself at once did not time out.  An unknown run
    time counts as timed out."""
    return rc in (124, 137) and (elapsed_s is None or elapsed_s >= limit * 0.9)


def _run_bounded(host: Host, command: str, limit: int, timeout_s: float) -> CommandResult:
    """``command`` under the host's ``timeout`` with ``limit`` seconds, and a guard here;
    ProbeError only when no answer came back at all."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = host.run(_bounded(command, limit))
        except BaseException as exc:
            box["error"] = exc

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
    return result


@dataclasses.dataclass(frozen=True)
class Session:
    """One remote shell that ran several commands for :func:`prefetch`: when it started
    (UTC), how long it took seen from here, how many commands it carried, and -- where not
    every command was answered -- why; ``reached`` False when the host did not answer at all."""

    at: str
    duration_s: float
    commands: int
    ok: bool = True
    reason: str | None = None
    reached: bool = True  # the host's shell answered (False: connection failed, no answer)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class GatheredResult(CommandResult):  # type: ignore[misc]  # testinfra ships no types
    """A command's answer taken from a prefetch :class:`Session`: stdout, stderr and exit
    status as the command gave them there; ``elapsed_s`` its own run time on the host
    (from /proc/uptime, None where unreadable) under its own ``limit_s``."""

    session: Session | None = None
    elapsed_s: float | None = None
    limit_s: float = 0.0
    kept_at: float = 0.0  # time.monotonic() when it was received

    @property
    def timed_out(self) -> bool:
        return _timed_out(self.exit_status, self.elapsed_s, self.limit_s)


# The session script: one function call per command, in a subshell with stdin closed
# (``eval``: no process is started for the wrapper itself).  Before each command a start
# marker (S) with /proc/uptime; after it its stdout (O), exit status (C), stderr (E) and
# end time (T).  Marker lines start with a random token, so no output can pass for one;
# the ``printf x`` tails keep trailing newlines that $(...) would strip.  The whole script
# runs under one ``timeout``: a command that hangs is the one with a start marker and no
# answer, and the commands after it are left to run on their own.
_GATHER_SCRIPT = r"""exec 3>&1
_g() {
  _ga=; { read _ga _ </proc/uptime; } 2>/dev/null
  printf '%s S %s %s\n' "$_gT" "$1" "$_ga"
  _ge=$( { _go=$( (eval "$2") 2>&4 3>&- 4>&- </dev/null; printf x%s "$?"); _gc=${_go##*x}; _go=${_go%x*}
           printf '%s O %s\n%s\n%s C %s %s\n' "$_gT" "$1" "$_go" "$_gT" "$1" "$_gc" >&3; printf x; } 4>&1 )
  _gb=; { read _gb _ </proc/uptime; } 2>/dev/null
  printf '%s E %s\n%s\n%s T %s %s\n' "$_gT" "$1" "${_ge%x}" "$_gT" "$1" "$_gb"
}
_gs() { _gT=$1; _ga=; { read _ga _ </proc/uptime; } 2>/dev/null; printf '%s B %s\n' "$_gT" "$_ga"; }
"""


def prefetch(host: Host, commands: list[str] | tuple[str, ...], timeout_s: float = 10) -> Session:
    """Run ``commands`` on ``host`` in one shell session and keep each answer for the next
    :func:`run` of that exact command on that host (used once, for :data:`KEEP_S` seconds).

    The session is bounded by ``timeout_s`` as a whole (the host's ``timeout``, and a guard
    here).  A command still running when that limit strikes is kept as timed out when it
    had run for most of the limit itself (its :func:`run` then raises the same ``timed
    out`` error :func:`run` would); the commands after it, and any command that gave no
    complete answer, are kept nowhere and run on their own later.  Returns the
    :class:`Session`: ``ok`` False with the reason when not every command was answered.
    """
    unique = list(dict.fromkeys(commands))
    at, started = utcnow(), time.monotonic()
    if not unique:
        return Session(at=at, duration_s=0.0, commands=0)
    limit = max(1, math.ceil(timeout_s))
    token = "golive-" + secrets.token_hex(12)
    lines = [_GATHER_SCRIPT, f"_gs {token}"] + [f"_g {i} {shlex.quote(cmd)}" for i, cmd in enumerate(unique)]
    try:
        result = _run_bounded(host, "\n".join(lines) + "\n", limit, timeout_s)
    except ProbeError as exc:
        return Session(at=at, duration_s=round(time.monotonic() - started, 3), commands=len(unique), ok=False,
                       reason=exc.reason, reached=False)
    answers, hung = _parse_gathered(result.stdout, token, limit)
    missing, cut_off = len(unique) - len(answers), result.rc in (124, 137)
    reason = None
    if missing:
        reason = f"{missing} of {len(unique)} commands gave no answer in the session (exit status {result.rc})"
        if hung is not None and cut_off:
            reason += f"; `{unique[hung[0]]}` was still running when its {timeout_s:g} s ran out"
    session = Session(at=at, duration_s=round(time.monotonic() - started, 3), commands=len(unique),
                      ok=not missing, reason=redact(reason) if reason else None)
    now = time.monotonic()
    if hung is not None and cut_off and hung[1] is not None and hung[1] >= limit * 0.9:
        answers[hung[0]] = ("", "", 124, hung[1])
    with _lock:
        kept = _kept.setdefault(id(host), {})
        for i, (out, err, rc, elapsed) in answers.items():
            kept.setdefault(unique[i], collections.deque()).append(GatheredResult(
                host.backend, rc, unique[i].encode(), out, err, session=session, elapsed_s=elapsed, limit_s=limit,
                kept_at=now))
    return session


_Answer = tuple[str, str, int, float | None]


def _parse_gathered(stdout: str, token: str, limit: float) -> tuple[dict[int, _Answer], tuple[int, float | None] | None]:
    """index -> (stdout, stderr, exit status, elapsed) for each command whose parts all
    arrived; and the command that started without finishing, with how long it had run when
    the session's ``limit`` struck (None where /proc/uptime is unreadable)."""
    parts: dict[int, dict[str, Any]] = collections.defaultdict(dict)
    current: list[str] | None = None
    began: float | None = None
    for line in stdout.split("\n"):
        if not line.startswith(token + " "):
            if current is not None:
                current.append(line)
            continue
        fields = line[len(token) + 1:].split(" ", 2)
        kind, current = fields[0], None
        if kind == "B":
            began = _float(fields[1]) if len(fields) > 1 else None
            continue
        if len(fields) < 2 or not fields[1].isdigit():
            continue
        entry = parts[int(fields[1])]
        if kind in ("O", "E"):
            current = entry.setdefault(kind, [])
        else:
            entry[kind] = fields[2] if len(fields) > 2 else ""
    answers: dict[int, _Answer] = {}
    hung: tuple[int, float | None] | None = None
    for index, entry in parts.items():
        start = _float(entry.get("S", ""))
        if {"O", "E", "C", "T"} <= entry.keys() and entry["C"].strip().isdigit():
            end = _float(entry["T"])
            elapsed = round(end - start, 3) if start is not None and end is not None else None
            # Each block was printed as "%s\n": that line break ends the block's last line.
            answers[index] = ("\n".join(entry["O"]), "\n".join(entry["E"]), int(entry["C"]), elapsed)
        elif "S" in entry:
            hung = (index, round(limit - (start - began), 3) if start is not None and began is not None else None)
    return answers, hung


def _float(text: str | None) -> float | None:
    try:
        return float((text or "").strip())
    except ValueError:
        return None


def _take_kept(host: Host, command: str) -> GatheredResult | None:
    """The oldest unused answer prefetch kept for ``command`` on ``host``, if still fresh."""
    with _lock:
        queue = _kept.get(id(host), {}).get(command)
        while queue:
            answer = queue.popleft()
            if time.monotonic() - answer.kept_at <= KEEP_S:
                return answer
    return None


def forget_prefetched(host: Host | None = None) -> None:
    """Drop the answers kept for ``host`` (or for every host)."""
    with _lock:
        if host is None:
            _kept.clear()
        else:
            _kept.pop(id(host), None)


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
