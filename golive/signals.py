"""SIGTERM and SIGHUP end a run the way Ctrl-C does.

CI cancels a job with SIGTERM; a closed terminal sends SIGHUP.  Python's default for both
is to die on the spot: no ``finally``, no restore of disruptive work, no report, the lab's
temporary folder (with its TLS private key) left behind.  While a golive run is active,
both raise :class:`Interrupted` -- a ``KeyboardInterrupt``, so pytest, the HA and restore
drills and every ``finally`` treat them exactly like SIGINT: restore, write the NO-GO report
marked interrupted, clean up, exit 2.

A second SIGTERM/SIGHUP while the run is already ending is noted on stderr and ignored, so
the clean-up and the report are not cut short (SIGKILL still ends everything).
"""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived (a KeyboardInterrupt, so it unwinds like Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")


_previous: dict[int, Any] = {}
_received: list[int] = []


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:
        print(f"golive: {signal.Signals(signum).name} received again; finishing the clean-up and the report",
              file=sys.stderr, flush=True)
        return
    _received.append(signum)
    raise Interrupted(signum)


def install() -> bool:
    """Handle SIGTERM and SIGHUP like SIGINT (main thread only; False elsewhere)."""
    if threading.current_thread() is not threading.main_thread() or _previous:
        return False
    _received.clear()
    for sig in HANDLED:
        _previous[sig] = signal.getsignal(sig)
        signal.signal(sig, _handler)
    return True


def uninstall() -> None:
    """Put back the handlers :func:`install` replaced."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, handler in _previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    _previous.clear()


def received() -> str | None:
    """The name of the signal that interrupted the run (None: none did)."""
    return signal.Signals(_received[0]).name if _received else None


def describe(exc: BaseException) -> str:
    """``interrupted (SIGTERM)``, ``interrupted (SIGINT)`` for a KeyboardInterrupt."""
    name = getattr(exc, "name", None) or received()
    if name is None and isinstance(exc, KeyboardInterrupt):
        name = (getattr(exc, "signum", None) and signal.Signals(exc.signum).name) or "SIGINT"  # type: ignore[attr-defined]
    return f"interrupted ({name})"
