"""Quantities with units, as written in profiles: sizes, link rates, durations.

Profiles must say their units ("32 GiB", "1 Gbps", "24h"): a bare number for a memory
size is ambiguous (the seeds mix GB and GiB), so it is rejected with the fix spelled out.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_RATE_UNITS = {"bps": 1e-6, "kbps": 1e-3, "mbps": 1.0, "gbps": 1e3, "tbps": 1e6}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
# upper bounds, in the parsed unit: a value above is a typo, not a requirement
_MAX = {"size": 2.0**70, "link rate": 1e9, "duration": 10 * 366 * 86400.0}
_QTY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*$")


def _parse(value: Any, units: Mapping[str, float], kind: str, example: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind} like '{example}', got a boolean")
    if isinstance(value, (int, float)):
        raise ValueError(f"the {kind} {value!r} has no unit; write it with one, e.g. '{value} {example.split()[-1]}'")
    if not isinstance(value, str):
        raise ValueError(f"expected a {kind} like '{example}'")
    m = _QTY.match(value)
    if not m:
        raise ValueError(f"cannot read {value!r} as a {kind}; write e.g. '{example}'")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit not in units:
        allowed = ", ".join(sorted({u for u in units}))
        raise ValueError(f"unknown {kind} unit '{m.group(2)}' in {value!r}; use one of: {allowed}")
    out = number * units[unit]
    if out <= 0:
        raise ValueError(f"the {kind} {value!r} is zero; write a positive {kind}, e.g. '{example}'")
    if out > _MAX[kind]:
        raise ValueError(f"the {kind} {value!r} is beyond any real deployment; write e.g. '{example}'")
    return out


def parse_size(value: Any) -> int:
    """'32 GiB' -> bytes."""
    return int(_parse(value, _SIZE_UNITS, "size", "32 GiB"))


def parse_rate(value: Any) -> float:
    """'1 Gbps' -> Mbit/s."""
    return _parse(value, _RATE_UNITS, "link rate", "1 Gbps")


def parse_duration(value: Any) -> float:
    """'24h' -> seconds."""
    return _parse(value, _DURATION_UNITS, "duration", "24 h")


def fmt_bytes(n: float | None, binary: bool = True) -> str:
    if n is None:
        return "unknown"
    if binary:
        for unit, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if n >= f:
                return f"{n / f:.1f} {unit}"
    else:
        for unit, f in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
            if n >= f:
                return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def fmt_rate(mbps: float | None) -> str:
    if mbps is None:
        return "unknown"
    if mbps >= 1000:
        return f"{mbps / 1000:g} Gbps"
    return f"{mbps:g} Mbps"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    for unit, f in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= f and seconds % f == 0:
            return f"{seconds / f:g} {unit}"
    return f"{seconds:g} s"


def _quantity_schema(units: dict[str, float], kind: str, examples: list[str]) -> dict[str, Any]:
    """The JSON Schema of a quantity as profiles write it: a number and a unit, as a string
    (a bare number is an error: see the module docstring)."""
    def any_case(unit: str) -> str:  # ECMA regexes (editors) have no inline (?i)
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in unit)

    alternation = "|".join(any_case(u) for u in sorted(units, key=len, reverse=True))
    return {"type": "string", "pattern": f"^\\s*[0-9]+(\\.[0-9]+)?\\s*({alternation})\\s*$",
            "description": f"a {kind} with its unit", "examples": examples}


# validation and serialisation both use the written form ("32 GiB"), so the published JSON
# Schema (docs/schema/) describes the files people write, not golive's internal numbers
Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(lambda v: fmt_bytes(v), return_type=str),
                 WithJsonSchema(_quantity_schema(_SIZE_UNITS, "size", ["32 GiB", "100 GB"]))]
Rate = Annotated[float, BeforeValidator(parse_rate), PlainSerializer(lambda v: fmt_rate(v), return_type=str),
                 WithJsonSchema(_quantity_schema(_RATE_UNITS, "link rate", ["1 Gbps", "100 Mbps"]))]
Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(lambda v: fmt_duration(v), return_type=str),
                     WithJsonSchema(_quantity_schema(_DURATION_UNITS, "duration", ["30 s", "24 h", "180 d"]))]
