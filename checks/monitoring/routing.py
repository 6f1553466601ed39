"""Alertmanager's routing tree, evaluated the way Alertmanager does it.

:func:`route` walks ``route:`` of the running configuration (``/api/v2/status`` ->
``config.original``, the YAML Alertmanager actually loaded) for one label set: a node's
children are tried in order; the first child whose matchers all match is entered, and the
walk continues with the next siblings only when that child says ``continue: true``; a node
no child matches is the answer.  Receivers are inherited from the parent.  Matchers:
``match`` (equality), ``match_re`` (fully anchored regular expression) and ``matchers``
(``a="b"``, ``a!="b"``, ``a=~"re"``, ``a!~"re"``); a missing label is the empty string.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*$')


class RoutingError(ValueError):
    """The configuration cannot be read (a matcher golive does not understand...)."""


def _matches(labels: Mapping[str, str], node: Mapping[str, Any]) -> bool:
    for k, v in (node.get("match") or {}).items():
        if labels.get(str(k), "") != str(v):
            return False
    for k, v in (node.get("match_re") or {}).items():
        if not re.fullmatch(str(v), labels.get(str(k), "")):
            return False
    for m in node.get("matchers") or []:
        for one in _split(str(m)):
            mm = _MATCHER.match(one)
            if not mm:
                raise RoutingError(f"cannot read the matcher {one!r}")
            name, op, quoted, bare = mm.groups()
            value = bytes(quoted, "utf-8").decode("unicode_escape") if quoted is not None else bare
            have = labels.get(name, "")
            ok = {"=": have == value, "!=": have != value,
                  "=~": bool(re.fullmatch(value, have)), "!~": not re.fullmatch(value, have)}[op]
            if not ok:
                return False
    return True


def _split(matcher: str) -> list[str]:
    """``{a="b", c=~"d"}`` (one string holding several) -> each matcher."""
    s = matcher.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    out, cur, quoted, escaped = [], "", False, False
    for ch in s:
        if escaped:
            cur, escaped = cur + ch, False
            continue
        if ch == "\\":
            cur, escaped = cur + ch, True
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur)
    return out


def route(config: Mapping[str, Any], labels: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """Receivers an alert with ``labels`` is delivered to: [(receiver, path of routes)]."""
    root = config.get("route")
    if not isinstance(root, Mapping):
        raise RoutingError("the configuration has no 'route:'")
    found: list[tuple[str, list[str]]] = []

    def walk(node: Mapping[str, Any], receiver: str, path: list[str]) -> None:
        receiver = str(node.get("receiver") or receiver)
        entered = False
        for i, child in enumerate(node.get("routes") or []):
            if not isinstance(child, Mapping) or not _matches(labels, child):
                continue
            entered = True
            walk(child, receiver, [*path, f"routes[{i}]"])
            if not child.get("continue"):
                break
        if not entered:
            found.append((receiver, path))

    walk(root, "", ["route"])
    return found


def integrations(config: Mapping[str, Any], receiver: str) -> list[str] | None:
    """The integrations (``webhook``, ``email``...) of ``receiver``; None when no receiver has
    that name.  An empty list is a receiver that delivers nothing (a "blackhole")."""
    for r in config.get("receivers") or []:
        if isinstance(r, Mapping) and r.get("name") == receiver:
            return sorted(str(k).removesuffix("_configs") for k, v in r.items()
                          if str(k).endswith("_configs") and v)
    return None
