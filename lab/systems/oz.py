"""The Oz-shaped lab (:mod:`lab.run`) as a system lab: nginx (TLS) in front of two
inference instances behind haproxy, an internal API, SQLite with backups.  Its variants are
:class:`lab.variants.Variant`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

DESCRIPTION = "Oz-shaped: nginx TLS front, haproxy, two inference instances, internal API, SQLite backups"


def describe_variants() -> list[tuple[str, str]]:
    from lab.variants import describe_variants as variants

    return variants()


def parse_variant(name: str) -> str:
    from lab.variants import Variant

    return Variant.parse(name).key


def start(workdir: Path, variant: str, **options: Any) -> Any:
    """``lab.run.start_lab(workdir, variant, **options)`` (cost_ms, instances, ...)."""
    from lab.run import start_lab

    return start_lab(workdir, variant, **options)
