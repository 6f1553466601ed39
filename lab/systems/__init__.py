"""System labs: one module per seed system, each building that system's deployment on
loopback as its seed document describes, with a compliant variant and broken twins.

A target selects one with ``lab: {system: NAME, variant: V}`` (``system`` defaults to
``oz``, the lab of :mod:`lab.run`).  A system module ``lab.systems.<NAME>`` provides:

- ``DESCRIPTION``: one line, what the lab builds;
- ``VARIANTS``: variant name -> its knobs, each with a one-line ``description`` (the
  variants are listed and parsed from it: :func:`describe_variants`, :func:`variant_key`);
  a module without it (``oz``, whose variants are :class:`lab.variants.Variant`) provides
  ``describe_variants()`` and ``parse_variant(name)`` itself;
- ``start(workdir, variant, **options)``: starts it and returns a running lab with
  ``workdir``, ``variant``, ``target_overrides()``, ``describe()`` and ``stop()``
  (idempotent; registered with :mod:`lab.procs` so it also stops at exit and on signals).

Imports stay lazy: ``import lab.systems`` loads no system module.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

#: The system labs, in the order of the seed documents' table (docs/seed-systems.md).
SYSTEMS: tuple[str, ...] = ("oz", "docusnap", "docusnap_compose", "alwrity", "vocabulo", "strv", "oz_compose")
DEFAULT_SYSTEM = "oz"


class RunningSystem(Protocol):
    """What :func:`start` returns (lab.run.RunningLab is one)."""

    workdir: Path
    variant: str

    def target_overrides(self) -> dict[str, Any]: ...

    def describe(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...


def parse_system(name: str) -> str:
    """The system's canonical name (``DocuSnap`` -> ``docusnap``); ``ValueError`` if unknown."""
    key = name.strip().lower().replace("-", "_")
    if key not in SYSTEMS:
        raise ValueError(f"unknown lab system '{name}'; known systems: {', '.join(SYSTEMS)}")
    return key


def module(system: str) -> ModuleType:
    """The system's module (``lab.systems.<system>``)."""
    return importlib.import_module(f"lab.systems.{parse_system(system)}")


def variant_key(system: str, variants: Mapping[str, Any], name: str) -> str:
    """``name``'s canonical form (``API-No-Auth`` -> ``api_no_auth``) if it is one of
    ``variants``; else ``ValueError`` naming the known ones."""
    key = name.strip().lower().replace("-", "_")
    if key not in variants:
        raise ValueError(f"unknown {system} lab variant {name!r}; known variants: {', '.join(variants)}")
    return key


def parse_variant(system: str, variant: str) -> str:
    """``variant``'s canonical name in ``system``; ``ValueError`` naming the known ones."""
    mod = module(system)
    variants = getattr(mod, "VARIANTS", None)
    if variants is None:
        return str(mod.parse_variant(variant))
    return variant_key(parse_system(system), variants, variant)


def describe_variants(system: str) -> list[tuple[str, str]]:
    """(variant, one-line description) of each of ``system``'s variants."""
    mod = module(system)
    variants = getattr(mod, "VARIANTS", None)
    if variants is None:
        return list(mod.describe_variants())
    return [(name, knobs.description) for name, knobs in variants.items()]


def start(system: str, workdir: Path, variant: str, **options: Any) -> RunningSystem:
    """Start ``system``'s lab (``variant``) in ``workdir``; raises lab.procs.LabError when
    a component does not start (everything already started is stopped)."""
    running: RunningSystem = module(system).start(workdir, variant, **options)
    return running
