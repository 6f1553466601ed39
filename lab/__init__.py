"""golive's lab: the reference deployment that ``--target lab`` validates, and its
deliberately broken variants used by the self-tests.

Public entry points: :func:`lab.run.start_lab` (the whole deployment),
:func:`lab.sshd.start_sshd` (a real OpenSSH server for host checks), :class:`lab.variants.Variant`,
:func:`lab.docker_engine.start_engine` and :mod:`lab.compose_lab` (a private Docker Engine
and the Compose projects of the containers family).
Imports are lazy so ``import lab`` stays cheap for the child processes it starts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.procs import LabError
    from lab.run import RunningLab, start_lab
    from lab.sshd import RunningSshd, start_sshd
    from lab.variants import Knobs, Variant

__all__ = ["Knobs", "LabError", "RunningLab", "RunningSshd", "Variant", "start_lab", "start_sshd"]

_WHERE = {
    "LabError": "lab.procs",
    "RunningLab": "lab.run",
    "start_lab": "lab.run",
    "RunningSshd": "lab.sshd",
    "start_sshd": "lab.sshd",
    "Knobs": "lab.variants",
    "Variant": "lab.variants",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'lab' has no attribute {name!r}")
