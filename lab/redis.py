"""Real ``redis-server`` instances for golive's datastores family (``features/datastores.feature``).

:func:`start_redis` starts one Debian ``redis-server`` (7.x) on a free loopback port in a
private folder, from a config file written there (0600): the password is in that file
(``requirepass``) and in ``<dir>/redis-password`` (0600) for golive's ``password_file`` --
never on a command line.  Options shape the deliberately broken variants:

- ``auth=False``: no ``requirepass`` (an unauthenticated PING is answered);
- ``bind``: the listening addresses (``"0.0.0.0"`` = every interface; the instance still
  requires a password and golive only ever talks to it over 127.0.0.1);
- ``appendonly`` / ``save``: AOF and RDB persistence (``save=""`` turns RDB snapshots off);
- ``cluster_slots``: ``cluster-enabled yes`` and these slot ranges assigned to the single
  node (``[(0, 16383)]`` = every slot, ``[(0, 8191)]`` = half uncovered); None = standalone.

:meth:`RunningRedis.stop` (idempotent; also at exit and on SIGINT/SIGTERM) stops the server
by its pid and removes the folder.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    free_port,
    pid_alive,
    port_in_use_error,
    register,
    spawn,
    stop_processes,
    unregister,
    wait_until,
)

INSTALL_HINT = "install it with `apt-get install redis-server` (Redis 7)"
PORT_ATTEMPTS = 3
ALL_SLOTS = ((0, 16383),)


class RunningRedis(StopsOnExit):
    """One started redis-server; ``address`` is ``127.0.0.1:<port>``."""

    def __init__(self, folder: Path, *, auth: bool, bind: str, appendonly: bool, save: str,
                 cluster_slots: tuple[tuple[int, int], ...] | None) -> None:
        self.dir = folder
        self.auth = auth
        self.bind = bind
        self.appendonly = appendonly
        self.save = save
        self.cluster_slots = cluster_slots
        self.port = 0
        self.bus_port = 0
        self.password_file = folder / "redis-password"
        self.proc: ManagedProcess | None = None
        self._stopped = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def password(self) -> str | None:
        return self.password_file.read_text().strip() if self.auth else None

    def command(self, *args: str, timeout_s: float = 5.0) -> str:
        """One command over RESP as the lab's admin (authenticated); the reply's first line."""
        parts = (["AUTH", self.password] if self.password else [])
        out = ""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s) as s:
            for cmd in ([parts] if parts else []) + [list(args)]:
                s.sendall(_resp(cmd))
                out = _read_reply(s)
        return out

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc is not None:
            stop_processes([self.proc])
        shutil.rmtree(self.dir, ignore_errors=True)
        unregister(self)

    def __repr__(self) -> str:
        return f"<RunningRedis {self.address} auth={self.auth} bind={self.bind} stopped={self._stopped}>"

    def _config(self) -> str:
        lines = [f"port {self.port}", f"bind {self.bind}", "protected-mode yes", "daemonize no",
                 f"dir {self.dir}", f"appendonly {'yes' if self.appendonly else 'no'}",
                 f"save \"{self.save}\"", "loglevel notice", "databases 2"]
        if self.auth:
            lines.append(f"requirepass {self.password_file.read_text().strip()}")
        if self.cluster_slots is not None:
            lines += ["cluster-enabled yes", f"cluster-config-file {self.dir / 'nodes.conf'}",
                      f"cluster-port {self.bus_port}"]
        return "\n".join(lines) + "\n"

    def _start(self, timeout_s: float) -> None:
        if shutil.which("redis-server") is None:
            raise LabError(f"redis-server not found: {INSTALL_HINT}")
        register(self)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
        conf = self.dir / "redis.conf"
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port("127.0.0.1")
            while self.cluster_slots is not None and self.port > 55535:  # a cluster node's port limit
                self.port = free_port("127.0.0.1")
            self.bus_port = free_port("127.0.0.1", exclude=(self.port,))
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self._config())
            self.proc = spawn("redis-server", ["redis-server", str(conf)], self.dir / "redis.log", cwd=self.dir)
            try:
                wait_until("redis-server", self._answers, timeout_s=timeout_s, proc=self.proc)
                break
            except LabError as exc:
                stop_processes([self.proc])
                if attempt == PORT_ATTEMPTS or not port_in_use_error(str(exc)):
                    raise
        if self.cluster_slots is not None:
            for lo, hi in self.cluster_slots:
                self.command("CLUSTER", "ADDSLOTSRANGE", str(lo), str(hi))
            deadline = time.monotonic() + timeout_s
            want = "ok" if self.cluster_slots == ALL_SLOTS else "fail"
            while f"cluster_state:{want}" not in self._cluster_info():
                if time.monotonic() > deadline:
                    raise LabError(f"redis cluster node never reached cluster_state:{want}")
                time.sleep(0.05)

    def _cluster_info(self) -> str:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            if self.password:
                s.sendall(_resp(["AUTH", self.password]))
                _read_reply(s)
            s.sendall(_resp(["CLUSTER", "INFO"]))
            return _read_reply(s)

    def _answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(_resp(["PING"]))
            reply = _read_reply(s)
        return reply in ("PONG",) or reply.startswith("NOAUTH")


def _resp(args: list[str]) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _read_reply(s: socket.socket) -> str:
    """A RESP reply as text: status/error lines as they are, a bulk string's content."""
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise LabError("redis closed the connection")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n")
    kind, body = head[:1], head[1:].decode()
    if kind in (b"+", b"-", b":"):
        return body
    if kind == b"$":
        size = int(body)
        if size < 0:
            return ""
        while len(rest) < size + 2:
            chunk = s.recv(65536)
            if not chunk:
                raise LabError("redis closed the connection")
            rest += chunk
        return rest[:size].decode()
    return head.decode()


def reap_stale_folders() -> list[Path]:
    """Remove ``/tmp/golive-redis-<pid>-*`` and ``/tmp/golive-ds-<pid>-*`` folders whose owner
    process is gone (a SIGKILLed run; its redis-servers died with it: parent-death signal)."""
    removed = []
    for folder in Path("/tmp").glob("golive-*-*"):
        m = re.fullmatch(r"golive-(?:redis|ds)-(\d+)-.*", folder.name)
        if m and folder.is_dir() and not pid_alive(int(m.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def start_redis(workdir: Path | None = None, *, auth: bool = True, bind: str = "127.0.0.1",
                appendonly: bool = True, save: str = "3600 1",
                cluster_slots: tuple[tuple[int, int], ...] | None = None,
                start_timeout_s: float = 15.0) -> RunningRedis:
    """Start a redis-server (see the module doc).  ``workdir`` is made if missing (a fresh
    ``/tmp/golive-redis-<pid>-*`` folder by default) and removed by ``stop()``.  On any
    failure everything already made is removed and :class:`LabError` says what failed."""
    reap_stale_folders()
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"golive-redis-{os.getpid()}-", dir="/tmp"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    r = RunningRedis(folder.resolve(), auth=auth, bind=bind, appendonly=appendonly, save=save,
                     cluster_slots=cluster_slots)
    try:
        r._start(start_timeout_s)
    except BaseException:
        r.stop()
        raise
    return r

