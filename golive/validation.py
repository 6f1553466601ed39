"""Turn pydantic validation errors into one clear :class:`ConfigError` (file, line, fix)."""
from __future__ import annotations

import difflib
import typing
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from golive.yamlpos import ConfigError, PositionedYaml


def _loc_text(loc: tuple[object, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def _fix(err_type: str, msg: str, loc: tuple[object, ...]) -> str:
    if err_type == "extra_forbidden":
        return f"remove '{loc[-1]}' or correct its spelling; see docs/ for the allowed keys"
    if err_type == "missing":
        return f"add '{loc[-1]}'"
    if err_type.startswith(("int_", "float_")):
        return "write a plain number"
    if err_type.startswith("bool"):
        return "write true or false"
    if err_type in ("literal_error", "enum"):
        return msg.replace("Input should be", "use")
    if err_type == "string_pattern_mismatch":
        return "use lower-case letters, digits and dashes"
    return ""


def field_names(model: type[BaseModel]) -> set[str]:
    """Every key any model reachable from ``model`` accepts (for spelling suggestions)."""
    seen: set[type[BaseModel]] = set()
    names: set[str] = set()

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for name, f in tp.model_fields.items():
                names.add(name)
                walk(f.annotation)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    walk(model)
    return names


def raise_config_error(doc: PositionedYaml, exc: ValidationError, kind: str,
                       model: type[BaseModel] | None = None) -> NoReturn:
    """Raise a ConfigError for the first validation problem, naming the others' count; the
    others ride along as ``.more`` (a list of ConfigError), for ``golive check-config``."""
    errors = exc.errors(include_url=False)
    err = _one_error(doc, errors[0], len(errors) - 1, kind, model)
    err.more = [_one_error(doc, e, 0, kind, model) for e in errors[1:]]  # type: ignore[attr-defined]
    raise err


def _one_error(doc: PositionedYaml, first: Any, more: int, kind: str, model: type[BaseModel] | None) -> ConfigError:
    # pydantic puts union/validator names into loc; drop non-key parts it adds
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    line = doc.line_of(loc)
    msg = first["msg"].removeprefix("Value error, ")
    where = _loc_text(loc) or kind
    hint = ""
    if first["type"] == "value_error" and "; " in msg:
        msg, hint = msg.split("; ", 1)
    problem = f"{kind} key '{where}': {msg}"
    if first["type"] == "extra_forbidden":
        problem = f"unknown key '{where}' in {kind}"
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    fix = hint or _fix(first["type"], msg, loc)
    if first["type"] == "extra_forbidden" and model is not None:
        close = difflib.get_close_matches(str(loc[-1]), sorted(field_names(model)), n=1, cutoff=0.6)
        if close:
            fix = f"did you mean '{close[0]}'? Otherwise remove '{loc[-1]}'; docs/ lists the allowed keys"
    return ConfigError(doc.path, line, problem, fix)
