"""Secret handling: every secret value golive reads is registered here, and everything
golive writes (reports, logs, evidence, terminal) passes through :func:`redact`."""
from __future__ import annotations

import re
import threading
import urllib.parse

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"
# user:password@ -- in a URI, or bare as ssh and libpq print it
_URI_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)?(?P<user>[^\s:/@'\"]+):(?P<pw>[^\s@/'\"]+)@")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|token|secret|api[_-]?key)\b(\s*[=:]\s*)(\S+)")


def register_secret(value: str) -> None:
    """Remember a secret so that it is masked wherever it would be written -- as given and
    as it reads inside a URL (percent-encoded), where libraries and reports show it."""
    if value and len(value) >= 3:
        forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote(value),
                 urllib.parse.quote_plus(value)}
        with _lock:
            _secrets.update(forms)


def redact(text: str) -> str:
    """Mask registered secrets, passwords in URIs and ``password=...`` style pairs."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, MASK)
    text = _URI_PASSWORD.sub(lambda m: f"{m.group('scheme') or ''}{m.group('user')}:{MASK}@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return text


def redact_obj(obj: object) -> object:
    """Redact every string inside nested dicts/lists."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj
