"""Process plumbing shared by the lab and the test sshd: spawning, waiting, stopping.

Why this exists: the lab starts real servers (nginx, sshd, Python services) and the
self-tests must never leak them, even when a test fails or the run is interrupted.  Every
child is started in its own session (``start_new_session=True``) so it and everything it
forks (nginx workers) form one process group that can be signalled as a whole; it also gets
``PR_SET_PDEATHSIG`` so it receives SIGTERM if the Python process that started it dies
without cleaning up (``kill -9``).  Stopping is SIGTERM to the group, a bounded wait, then
SIGKILL.  A process-wide registry stops whatever is still running at interpreter exit and on
SIGINT/SIGTERM (chaining to the handlers that were installed before).

Only loopback addresses are ever used by helpers here (free ports are found on 127.0.0.1, below
the ephemeral range and reserved across processes: :func:`free_port`).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import http.client
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol, Self

_PR_SET_PDEATHSIG = 1


class LabError(RuntimeError):
    """A lab component could not be started or used; the message says which and why."""


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child when its parent thread dies (Linux only)."""
    # No libc.so.6 (not glibc): no parent-death signal; atexit and signal handlers remain.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def log_tail(path: Path | None, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


@dataclass
class ManagedProcess:
    """One child process (and its process group) the lab started.

    ``name`` is the component name used in messages (``nginx``, ``app-1``); ``log`` is the
    file its stdout and stderr go to.
    """

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        """True while the group leader has not exited."""
        return self.popen.poll() is None

    def describe_exit(self) -> str:
        """Exit code as words, for error messages."""
        rc = self.popen.poll()
        if rc is None:
            return "still running"
        if rc < 0:
            return f"killed by signal {-rc}"
        return f"exited with status {rc}"

    def tail(self, lines: int = 25) -> str:
        return log_tail(self.log, lines)


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session with output appended to ``log``.

    Raises :class:`LabError` (not ``FileNotFoundError``) when the program is missing, so the
    caller's message can say what to install.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(cwd) if cwd else None,
                env=env,
                start_new_session=True,
                # Only prctl() runs between fork and exec (async-signal-safe in practice).
                preexec_fn=_set_pdeathsig,
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise LabError(f"{name}: program not found: {argv[0]} ({exc})") from exc
    return ManagedProcess(name=name, argv=list(argv), log=log, popen=popen)


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of ``pid`` from /proc, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    rest = raw[raw.rfind(")") + 2 :].split()
    try:
        return rest[0], int(rest[1]), int(rest[2])
    except (IndexError, ValueError):
        return None


def _all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``.

    Zombies are ignored: orphaned nginx workers are reparented to PID 1, which on some
    machines reaps slowly, and a zombie holds no port and runs no code.
    """
    members = []
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st and st[2] == pgid and st[0] != "Z":
            members.append(pid)
    return members


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (any session), found through /proc parent links."""
    children: dict[int, list[int]] = {}
    for p in _all_pids():
        st = _proc_stat(p)
        if st and st[0] != "Z":
            children.setdefault(st[1], []).append(p)
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    st = _proc_stat(pid)
    return st is not None and st[0] != "Z"


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop_processes(
    procs: Iterable[ManagedProcess],
    *,
    extra_pids: Iterable[int] = (),
    grace_s: float = 3.0,
) -> list[str]:
    """SIGTERM every process group (and ``extra_pids``), wait up to ``grace_s``, SIGKILL
    what is left, reap.  Returns the names of components that needed SIGKILL.

    All groups are signalled at once so stopping N components takes one grace period, not N.
    """
    procs = list(procs)
    extras = list(extra_pids)
    for p in procs:
        _signal_group(p.pid, signal.SIGTERM)
    for pid in extras:
        _signal_pid(pid, signal.SIGTERM)

    def pending() -> tuple[list[ManagedProcess], list[int]]:
        for p in procs:
            p.popen.poll()  # reap the leader so it is not counted as a zombie-in-waiting
        left = [p for p in procs if p.popen.poll() is None or group_members(p.pid)]
        return left, [pid for pid in extras if pid_alive(pid)]

    deadline = time.monotonic() + grace_s
    left, left_extra = pending()
    while (left or left_extra) and time.monotonic() < deadline:
        time.sleep(0.02)
        left, left_extra = pending()
    killed = []
    for p in left:
        killed.append(p.name)
        _signal_group(p.pid, signal.SIGKILL)
    for pid in left_extra:
        _signal_pid(pid, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.popen.wait(timeout=2.0)
    # Group members other than the leader are reaped by PID 1; wait briefly until gone.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(group_members(p.pid) for p in procs):
        time.sleep(0.02)
    return killed


# --------------------------------------------------------------------------- ports


#: how long a handed-out port stays reserved for the server it was picked for (it binds it
#: within seconds; afterwards the bind itself keeps every other picker off it)
PORT_LEASE_S = 180.0
_leases: dict[int, tuple[float, socket.socket]] = {}
_leases_lock = threading.Lock()


def _lab_port_range() -> range:
    """Where lab ports are picked: the 12,000 ports just below the kernel's ephemeral range
    (``net.ipv4.ip_local_port_range``), which outgoing connections never take -- a port from
    ``bind(0)`` is in that range, and a busy lab's own connections (Prometheus scrapes, load)
    could take it between the pick and the server's bind.  Empty where the range starts too low."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(10000, low - 12000), low) if low > 11024 else range(0)


def _reserve(port: int) -> socket.socket | None:
    """Reserve ``port`` against every other process on this machine that picks lab ports: an
    abstract-namespace Unix socket named after it (exclusive per network namespace, gone when
    closed or when the process dies: no file is left behind).  None: someone holds it."""
    lease = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lease.bind(f"\0golive-lab-port-{port}")
    except OSError:
        lease.close()
        return None
    return lease


def free_port(host: str = "127.0.0.1", exclude: Iterable[int] = ()) -> int:
    """A TCP port that is free on ``host`` and reserved for the caller for :data:`PORT_LEASE_S`.

    Picked at random below the ephemeral range (:func:`_lab_port_range`), bound once to prove
    it free, and reserved (:func:`_reserve`) so that labs started at the same time in other
    processes never pick it too.  Nothing outside golive's own pickers is kept off it: callers
    that can retry the whole start on "address already in use" still do.
    """
    import random

    if not host.startswith("127."):
        raise ValueError(f"free_port only probes loopback addresses, not {host!r}")
    excluded = set(exclude)
    candidates = _lab_port_range()
    now = time.monotonic()
    with _leases_lock:
        for port, (since, held) in list(_leases.items()):
            if now - since > PORT_LEASE_S:
                held.close()
                del _leases[port]
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, random.choice(candidates) if candidates else 0))
                except OSError:
                    continue
                port = int(s.getsockname()[1])
            if port in excluded or port in _leases:
                continue
            lease = _reserve(port)
            if lease is not None:
                _leases[port] = (now, lease)
                return port
    raise LabError("could not find a free TCP port on loopback")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports on ``host``."""
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(host, exclude=ports))
    return ports


def reap_stale_tmp(prefixes: Sequence[str]) -> list[Path]:
    """Remove ``/tmp/<prefix><pid>-*`` folders whose owner process is gone (a SIGKILLed run
    cannot remove its scratch folders: the next start does); returns what was removed.
    Folders without an owner pid in their name (older versions) are removed once they are an
    hour old.  Nothing else is touched."""
    import shutil

    removed = []
    for prefix in prefixes:
        for path in Path("/tmp").glob(f"{prefix}*"):
            rest = path.name[len(prefix):]
            owner = rest.split("-", 1)[0]
            if owner.isdigit() and "-" in rest:
                stale = not pid_alive(int(owner))
            else:
                try:
                    stale = time.time() - path.stat().st_mtime > 3600
                except OSError:
                    continue
            if stale and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` is accepted (loopback only)."""
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise ValueError(f"lab helpers only connect to loopback, not {host!r}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_in_use_error(text: str) -> bool:
    """Does a log excerpt say a port was already taken (so a retry with new ports helps)?"""
    lowered = text.lower()
    return "address already in use" in lowered or f"errno {errno.EADDRINUSE}" in lowered


def http_status(host: str, port: int, path: str, *, tls: bool = False, timeout: float = 1.0) -> int:
    """Status code of ``GET path`` (Host: localhost) on a lab component's address, for
    readiness polls (:func:`wait_until`); TLS is not verified: readiness only."""
    conn: http.client.HTTPConnection
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "localhost"})
        return conn.getresponse().status
    finally:
        conn.close()


def wait_until(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    proc: ManagedProcess | None = None,
    interval_s: float = 0.02,
) -> None:
    """Poll ``ready()`` until it is true; fail fast if ``proc`` exits, else after timeout.

    The error names the component, how its process ended and the tail of its log.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and not proc.alive():
            # One last look: a process may exit right after becoming ready (it should not).
            raise LabError(
                f"{what} did not start: {proc.name} {proc.describe_exit()}\n"
                f"command: {' '.join(proc.argv)}\nlog {proc.log} (tail):\n{proc.tail()}"
            )
        # Not answering yet (refused, reset, TLS not ready, half a response) is normal.
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            if ready():
                return
        if time.monotonic() >= deadline:
            detail = ""
            if proc is not None:
                detail = (
                    f"\ncommand: {' '.join(proc.argv)}\nlog {proc.log} (tail):\n{proc.tail()}"
                )
            raise LabError(f"{what} not ready after {timeout_s:.0f} s{detail}")
        time.sleep(interval_s)


# --------------------------------------------------------------------------- registry


class Stoppable(Protocol):
    def stop(self) -> None: ...


class StopsOnExit:
    """Mixin: a started component used as a context manager stops when the block ends,
    however it ends.  Subclasses define ``stop()`` (idempotent)."""

    def stop(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# Strong references on purpose: a lab whose owner dropped it must still be stopped at exit.
_live: set[Any] = set()
_registry_lock = threading.Lock()
_installed = False
_previous: dict[int, Any] = {}


def _stop_all() -> None:
    for obj in list(_live):
        with contextlib.suppress(Exception):
            obj.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Stop every live lab component, then behave as the previous handler would have."""
    _stop_all()
    prev = _previous.get(signum, signal.SIG_DFL)
    if callable(prev):
        prev(signum, frame)
    elif prev == signal.SIG_IGN:
        return
    else:  # SIG_DFL: restore it and re-deliver, so the exit status says "killed by signal"
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def register(obj: Stoppable) -> None:
    """Make ``obj.stop()`` run at interpreter exit and on SIGINT/SIGTERM.

    Signal handlers can only be installed from the main thread; elsewhere only atexit and
    the children's parent-death signal protect against leaks.  A signal the process ignores
    stays ignored.
    """
    global _installed
    with _registry_lock:
        _live.add(obj)
        if _installed:
            return
        _installed = True
        atexit.register(_stop_all)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, OSError):
                    prev = signal.getsignal(sig)
                    if prev == signal.SIG_IGN:
                        continue  # the process ignores it (e.g. a background job): so do we
                    _previous[sig] = prev
                    signal.signal(sig, _on_signal)


def unregister(obj: Stoppable) -> None:
    """Forget ``obj`` (after it stopped)."""
    with _registry_lock:
        _live.discard(obj)


def python_env(extra_path: Path) -> dict[str, str]:
    """Environment for Python children: ``extra_path`` (the repo root) first on PYTHONPATH
    so ``python -m lab.*`` works from any working directory."""
    env = dict(os.environ)
    parts = [str(extra_path)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    return env
