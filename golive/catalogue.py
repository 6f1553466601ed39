"""The requirements catalogue shipped with golive (generated from requirements.md).

Profiles cite catalogue ids; the report quotes the seed document and sentence behind each.
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from golive.model import Requirement


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, Any]]:
    text = resources.files("golive").joinpath("data/catalogue.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)["requirements"]
    return data


def known(req_id: str) -> bool:
    return req_id in catalogue()


def requirement(ids: list[str] | tuple[str, ...]) -> Requirement:
    """A :class:`Requirement` with seed files and quotes for the given ids."""
    cat = catalogue()
    sources: list[str] = []
    quotes: list[str] = []
    for rid in ids:
        row = cat.get(rid)
        if not row:
            continue
        for seed in row["seeds"]:
            if seed not in sources:
                sources.append(seed)
        quotes.append(f"{rid}: \u201c{row['quote']}\u201d")
    return Requirement(ids=tuple(ids), sources=tuple(sources), quotes=tuple(quotes))
