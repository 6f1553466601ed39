"""The one success rule for an inference request, applied by the one request spec
(``checks.throughput.load.RequestSpec.judge``) that the throughput generator and the HA
drill's request stream (``checks/ha/probes.py``: the same engine, ``load.Stream``) both send.

A response is a success when its HTTP status is ``expect_status`` (any 2xx when that is
None) and, when ``success_field`` is set, the JSON body holds that field (a dotted path,
``result.items.0.done``) equal to ``success_value`` -- or merely *truthy* when
``success_value`` is None.  So ``success_field: ok`` with a body ``{"ok": false}`` is a
failure in both families (issue #12 item 5: the HA drill used to count it as a success).
"""
from __future__ import annotations

import json
from typing import Any


def field_at(doc: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path in a decoded JSON document; list items by index."""
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return False, None
    return True, doc


def short_value(value: Any) -> str:
    """A JSON value shortened for an error kind (never the whole body)."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def judge(status: int, body: bytes, *, expect_status: int | None, success_field: str | None,
          success_value: Any = None) -> str | None:
    """None when the answer is a success, else the kind of failure (the status, or the
    success field's shortened value -- no other body content)."""
    if expect_status is None:
        if not 200 <= status < 300:
            return f"HTTP {status}"
    elif status != expect_status:
        return f"HTTP {status}"
    if not success_field:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return "body is not JSON"
    found, value = field_at(doc, success_field)
    if not found:
        return f"body has no {success_field}"
    if success_value is None:
        return None if value else f"body {success_field}={short_value(value)}"
    return None if value == success_value else f"body {success_field}={short_value(value)}"


def success_words(expect_status: int | None, success_field: str | None, success_value: Any = None) -> str:
    """The rule in words, for a check's expected text and evidence."""
    text = "HTTP 2xx" if expect_status is None else f"HTTP {expect_status}"
    if success_field:
        text += (f" and JSON {success_field} == {success_value!r}" if success_value is not None
                 else f" and JSON {success_field} present and true")
    return text
