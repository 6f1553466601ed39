"""The run folder: claimed before any probe runs, exclusively, and proven writable.

Checking for a free name and creating it later lets two runs started in the same second
pick the same folder, one silently replacing the other's report; finding out at the end
that the folder cannot be written wastes the whole run (and used to end in a traceback
with the NO-GO exit code).  So the folder is made with ``os.mkdir`` -- which fails if the
name exists -- retrying with ``-2``, ``-3``..., and a file is written into it and removed
before the run starts.  Any problem is a :class:`RunDirError` with the reason (exit 4).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

MAX_TRIES = 1000


class RunDirError(Exception):
    """The run folder cannot be made or written; ``str()`` says why and how to fix it."""


def claim(root: Path, name: str) -> Path:
    """Create ``root/name`` (or ``root/name-N``) exclusively and check it is writable."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create the report folder {root}: {exc.strerror or exc}\n"
                          "  fix: give --report-dir a writable folder") from None
    if not root.is_dir():
        raise RunDirError(f"the report folder {root} is not a folder\n  fix: give --report-dir a writable folder")
    for n in range(1, MAX_TRIES + 1):
        path = root / (name if n == 1 else f"{name}-{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"cannot create the run folder {path}: {exc.strerror or exc}\n"
                              "  fix: give --report-dir a writable folder") from None
        probe = path / ".golive-write-test"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            release_if_empty(path)
            raise RunDirError(f"the run folder {path} is not writable: {exc.strerror or exc}\n"
                              "  fix: give --report-dir a writable folder") from None
        return path
    raise RunDirError(f"{MAX_TRIES} run folders named {name}* already exist in {root}\n"
                      "  fix: clean up the report folder")


def release_if_empty(path: Path | None) -> None:
    """Remove a claimed folder that holds nothing (a run that wrote no report)."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.rmdir()  # only succeeds when empty
