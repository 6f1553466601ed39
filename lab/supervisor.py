"""A one-unit process manager for the lab's inference instances (a tiny systemd).

Run as::

    python -m lab.supervisor --name app-1 --pidfile RUN/app-1.pid \\
        --control-pidfile RUN/app-1.supervisor.pid --restart always --restart-delay 2 \\
        -- python -m lab.inference --port 8001 ...

Why it exists: a failover drill stops an instance the way an operator's tooling would -- a
signal to the pid in a pid file, then a start command -- and the ``auto_restart`` check
needs a restart policy to observe (systemd ``Restart=``, compose ``restart: always``).  The
lab keeps owning every process: the service runs in the supervisor's process group, so the
lab's group SIGTERM stops both and nothing leaks, whoever stopped or started the service.

Behaviour:

- ``--pidfile`` holds the service's pid while it runs (systemd's MainPID); it is removed
  when the service exits.  ``--control-pidfile`` holds the supervisor's own pid.
- When the service exits: ``--restart always`` starts it again after ``--restart-delay``
  seconds (whatever the exit status, like compose's ``restart: always``); ``--restart no``
  leaves it down until a start request.
- ``SIGUSR1`` to the supervisor is the start request (``systemctl start``): the service is
  started now if it is not running; if it runs, nothing happens -- unless it exits within
  5 s (it was on its way down when the request came), then it is started again.
- ``SIGTERM``/``SIGINT``/``SIGHUP``: stop the service (SIGTERM, then SIGKILL after 3 s),
  remove the pid files, exit 0.
- Start limit (systemd's ``StartLimitBurst``): when the *first* start fails (an error exit
  status within 2 s: a port already in use, a bad argument) or the service fails like that
  5 times in a row, the supervisor gives up and exits with that status, so the lab's
  readiness wait fails fast with the service's log.  A signal or exit status 0 is a stop,
  not a failure.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from lab.procs import _set_pdeathsig

QUICK_EXIT_S = 2.0
BURST = 5
STOP_GRACE_S = 3.0
START_PENDING_S = 5.0


def _log(name: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    sys.stderr.write(f"{stamp} supervisor[{name}] {message}\n")
    sys.stderr.flush()


def _write_pid(path: Path, pid: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)  # atomic: a reader never sees a half-written pid


def _describe(rc: int) -> str:
    return f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"


class Supervisor:
    def __init__(self, name: str, argv: list[str], pidfile: Path, control_pidfile: Path | None,
                 restart: str, restart_delay_s: float) -> None:
        self.name = name
        self.argv = argv
        self.pidfile = pidfile
        self.control_pidfile = control_pidfile
        self.restart = restart
        self.restart_delay_s = restart_delay_s
        self.child: subprocess.Popen[bytes] | None = None
        self.child_started = 0.0
        self.starts = 0
        self.quick_failures = 0
        self.restart_at: float | None = None
        self.start_requested = False
        self.start_pending_until = 0.0
        self.stop_requested = False

    # signal handlers only set flags; the loop acts on them
    def _on_start(self, signum: int, frame: FrameType | None) -> None:
        self.start_requested = True

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True

    def _start_child(self, why: str) -> None:
        # The service gets SIGTERM if the supervisor dies (kill -9): nothing outlives it.
        self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig)
        self.child_started = time.monotonic()
        self.starts += 1
        self.restart_at = None
        _write_pid(self.pidfile, self.child.pid)
        _log(self.name, f"started pid {self.child.pid} ({why})")

    def _stop_child(self) -> None:
        child = self.child
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait()
        self.child = None

    def run(self) -> int:
        signal.signal(signal.SIGUSR1, self._on_start)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_stop)
        if self.control_pidfile is not None:
            _write_pid(self.control_pidfile, os.getpid())
        _log(self.name, f"restart policy: {self.restart}"
             + (f" (delay {self.restart_delay_s:g} s)" if self.restart == "always" else ""))
        try:
            self._start_child("initial start")
            while not self.stop_requested:
                time.sleep(0.02)
                if self.child is not None:
                    rc = self.child.poll()
                    if rc is not None:
                        code = self._child_exited(rc)
                        if code is not None:
                            return code
                if self.start_requested:
                    self.start_requested = False
                    if self.child is None:
                        self._start_child("start requested (SIGUSR1)")
                    else:
                        # It may be on its way down (someone sent it SIGTERM): like a start
                        # job queued behind a stop job, start it again if it exits soon.
                        self.start_pending_until = time.monotonic() + START_PENDING_S
                        _log(self.name, f"start requested: already running (pid {self.child.pid})")
                if self.child is None and self.restart_at is not None and time.monotonic() >= self.restart_at:
                    self._start_child(f"restart policy 'always' after {self.restart_delay_s:g} s")
            _log(self.name, "stopping (signal)")
            return 0
        finally:
            self._stop_child()
            for path in (self.pidfile, self.control_pidfile):
                if path is not None:
                    path.unlink(missing_ok=True)

    def _child_exited(self, rc: int) -> int | None:
        """Handle an exit; an exit code for the supervisor when it gives up."""
        uptime = time.monotonic() - self.child_started
        self.child = None
        self.pidfile.unlink(missing_ok=True)
        _log(self.name, f"service {_describe(rc)} after {uptime:.2f} s")
        # A start failure is an error exit soon after starting; a signal or exit 0 is a stop.
        quick = rc > 0 and uptime < QUICK_EXIT_S and not self.stop_requested
        self.quick_failures = self.quick_failures + 1 if quick else 0
        if quick and (self.starts == 1 or self.quick_failures >= BURST):
            _log(self.name, "start limit hit: giving up")
            return rc
        if time.monotonic() < self.start_pending_until and not self.stop_requested:
            self.start_pending_until = 0.0
            self._start_child("start requested while it was stopping")
        elif self.restart == "always":
            self.restart_at = time.monotonic() + self.restart_delay_s
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--pidfile", required=True, type=Path)
    parser.add_argument("--control-pidfile", type=Path, default=None)
    parser.add_argument("--restart", choices=("always", "no"), default="always")
    parser.add_argument("--restart-delay", type=float, default=2.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the service's command after --")
    args.pidfile.parent.mkdir(parents=True, exist_ok=True)
    return Supervisor(args.name, command, args.pidfile, args.control_pidfile, args.restart,
                      args.restart_delay).run()


if __name__ == "__main__":
    sys.exit(main())
