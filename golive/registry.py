"""The family registry: which check families exist, found without the core naming any.

A family is a folder ``checks/<name>/`` with a ``family.py`` that defines ``FAMILY`` (a
:class:`golive.checkdef.Family`).  Families outside this checkout are folders of the same
shape (``<name>/family.py``, their feature file beside it) in a directory named by
``GOLIVE_FAMILY_PATH`` (several joined with ``:``), or an installed package's object
registered under the ``golive.families`` entry-point group (``name = "package.module:FAMILY"``).  The
core imports them by name only when asked, so adding a family edits no core file.

Declarations are cheap to import (pydantic models and check objects); a family imports its
probes' heavy libraries (sslyze, aiohttp, the docker SDK...) inside its measure functions,
so a run pays only for the families it runs.
"""
from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
from pathlib import Path

from golive.checkdef import Check, Family

CHECKS_PACKAGE = "checks"
ENTRY_POINT_GROUP = "golive.families"
_lock = threading.Lock()


class RegistryError(Exception):
    """A family declaration that cannot be loaded or is inconsistent."""


def _checks_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec(CHECKS_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def family_modules() -> dict[str, str]:
    """name -> module of every declared family (folders with family.py, then entry points)."""
    base = _checks_dir()
    return dict(_family_modules(str(base) if base is not None else "", os.environ.get("GOLIVE_FAMILY_PATH", "")))


@functools.cache
def _family_modules(checks_dir: str, family_path: str) -> tuple[tuple[str, str], ...]:
    """Cached per (checks folder, GOLIVE_FAMILY_PATH): ``entry_points()`` reads every installed
    distribution's metadata, and collection asks for the families once per scenario (it
    was 1.3 s of a one-family run's start-up)."""
    found: dict[str, str] = {}
    base = Path(checks_dir) if checks_dir else None
    if base is not None:
        for decl in sorted(base.glob("*/family.py")):
            found[decl.parent.name] = f"{CHECKS_PACKAGE}.{decl.parent.name}.family"
    for extra in filter(None, family_path.split(os.pathsep)):
        root = Path(extra).resolve()
        for decl in sorted(root.glob("*/family.py")):
            if decl.parent.name not in found:
                if str(root) not in sys.path:
                    sys.path.append(str(root))  # the folder is a package named like the family
                found[decl.parent.name] = f"{decl.parent.name}.family"
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value.split(":", 1)[0])
    return tuple(found.items())


@functools.cache
def load(name: str) -> Family:
    """The family called ``name`` (imports its declaration module)."""
    modules = family_modules()
    if name not in modules:
        raise RegistryError(f"no check family '{name}' (known: {', '.join(sorted(modules)) or 'none'})")
    with _lock:
        module = importlib.import_module(modules[name])
    fam = getattr(module, "FAMILY", None)
    if not isinstance(fam, Family):
        raise RegistryError(f"{modules[name]} defines no FAMILY (a golive.checkdef.Family)")
    if fam.name != name:
        raise RegistryError(f"{modules[name]}: FAMILY.name is '{fam.name}', expected '{name}' (the folder's name)")
    return fam


def families() -> list[Family]:
    """Every declared family, in name order."""
    return [load(n) for n in sorted(family_modules())]


def feature_path(family: Family) -> Path:
    """The family's checklist: beside its declaration when it ships one there (families
    outside the checkout), else features/<feature> of this checkout."""
    module = sys.modules.get(family_modules().get(family.name, ""))
    here = Path(module.__file__).parent / family.feature if module is not None and module.__file__ else None
    if here is not None and here.is_file():
        return here
    return Path(__file__).resolve().parent.parent / "features" / family.feature


def family_for_feature(feature_file: str) -> Family | None:
    name = Path(feature_file).name
    return next((f for f in families() if f.feature == name), None)


def all_checks() -> list[Check]:
    return [c for f in families() for c in f.checks]


def check(check_id: str) -> Check | None:
    family = check_id.partition(".")[0]
    if family not in family_modules():
        return None
    return load(family).by_id(check_id.split("[", 1)[0])
