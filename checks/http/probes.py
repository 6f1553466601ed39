"""HTTP probes: the plain-HTTP redirect, HSTS, security headers and the health endpoint.

Every request goes straight to the URL's host (proxy variables are ignored), follows no
redirect, verifies TLS against the system store or the target's CA file, and is bounded by a
timeout.  Evidence records the request line, the status line and the response headers that
matter for the check (values redacted).  :func:`send` is shared with the CORS and auth
probes.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from golive.deadline import http_client
from golive.model import Evidence, Measurement
from golive.redact import redact

TOOL = f"httpx {httpx.__version__}"
BODY_MAX = 65536
_SENSITIVE_REQUEST_HEADERS = ("authorization", "cookie", "proxy-authorization")


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One HTTP request and its response (headers lower-cased; repeated headers joined
    with ", " except where noted)."""

    method: str
    url: str
    request_headers: dict[str, str]
    status: int
    reason: str
    http_version: str
    headers: dict[str, str]
    header_lists: dict[str, list[str]]
    elapsed_ms: float
    server_addr: str | None
    body: bytes = b""  # the first BODY_MAX bytes of the response body
    unverified: str | None = None  # why the certificate was not trusted, when it was read anyway
    pinned: str | None = None  # the address connected to instead of the name's DNS answer

    def status_line(self) -> str:
        return f"{self.http_version} {self.status} {self.reason}"

    def raw(self, names: Sequence[str] = ()) -> str:
        """Request line, status line and the named response headers (all when empty)."""
        req = ", ".join(f"{k}: {v}" for k, v in self.request_headers.items())
        lines = [f"> {self.method} {self.url}" + (f" ({req})" if req else ""), f"< {self.status_line()}"]
        if self.pinned:
            lines.insert(0, f"! connected to {self.pinned} (pinned in endpoints.resolve; name and SNI stay "
                            f"{urllib.parse.urlsplit(self.url).hostname})")
        if self.unverified:
            lines.insert(0, f"! measured over an UNVERIFIED TLS connection ({self.unverified})")
        wanted = [n.lower() for n in names] or list(self.header_lists)
        for name in wanted:
            for value in self.header_lists.get(name, []):
                lines.append(f"< {name}: {value}")
        return redact("\n".join(lines))


_PINNED: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("golive_pinned_addresses",
                                                                                  default=None)


@contextlib.contextmanager
def pinned(resolve: Mapping[str, str]) -> Iterator[None]:
    """Within the block, requests to a name in ``resolve`` connect to its address instead
    of asking DNS; the URL, the Host header, SNI and certificate validation keep the name
    (curl's --resolve).  The target's ``endpoints.resolve`` feeds it."""
    token = _PINNED.set({k.lower(): v for k, v in resolve.items()})
    try:
        yield
    finally:
        _PINNED.reset(token)


def route(url: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str], dict[str, Any], str | None]:
    """Where a request to ``url`` really goes: (URL to connect to, headers, httpx request
    extensions, pinned address or None)."""
    u = urllib.parse.urlsplit(url)
    address = (_PINNED.get() or {}).get((u.hostname or "").lower())
    hdrs = dict(headers)
    if address is None or not u.hostname:
        return url, hdrs, {}, None
    shown = f"[{address}]" if ":" in address else address
    netloc = shown + (f":{u.port}" if u.port else "")
    hdrs.setdefault("Host", u.netloc.rpartition("@")[2])
    ext: dict[str, Any] = {"sni_hostname": u.hostname} if u.scheme == "https" else {}
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment)), hdrs, ext, address


class HttpFailure(Exception):
    """No HTTP answer: refused, timeout, TLS failure, invalid URL."""


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification against the system store, or against ``ca_file`` when given."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def _shown_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in _SENSITIVE_REQUEST_HEADERS else v) for k, v in headers.items()}


def failure_reason(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout_s:g} s ({type(exc).__name__})"
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        return redact(f"{TRUST_FAILURE}: {text}")
    if isinstance(exc, FileNotFoundError):
        return f"CA file not found: {exc.filename}"
    return redact(f"{type(exc).__name__}: {text}")


def send(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None, ca_file: str | None = None,
         timeout_s: float = 5.0, verify: bool = True) -> Exchange:
    """One request, no redirects followed; :class:`HttpFailure` when nothing answered.
    ``verify=False`` skips certificate verification (see :func:`send_despite_trust`).

    ``timeout_s`` bounds the whole exchange -- connect, TLS handshake and the complete
    response -- not each read (a server that dribbles bytes cannot hold the probe)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise HttpFailure(f"not an http(s) URL: {redact(url)}")
    target_url, hdrs, extensions, address = route(url, headers or {})
    client = None
    try:
        client = http_client(timeout_s, verify=ssl_context(ca_file) if verify else False)
        with client, client.stream(method, target_url, headers=hdrs, extensions=extensions) as response:
            stream = response.extensions.get("network_stream")
            server = stream.get_extra_info("server_addr") if stream is not None else None
            response.read()
    except (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, OSError, ValueError) as exc:
        if client is not None and client.deadline.expired:
            raise HttpFailure(client.deadline.message()) from None
        raise HttpFailure(failure_reason(exc, timeout_s)) from None
    lists: dict[str, list[str]] = {}
    for k, v in response.headers.multi_items():
        lists.setdefault(k.lower(), []).append(v)
    return Exchange(method=method, url=redact(url), request_headers=_shown_headers(hdrs),
                    status=response.status_code, reason=response.reason_phrase, http_version=response.http_version,
                    headers={k: ", ".join(v) for k, v in lists.items()}, header_lists=lists,
                    elapsed_ms=round(response.elapsed.total_seconds() * 1000, 2),
                    server_addr=f"{server[0]}:{server[1]}" if server else None, body=response.content[:BODY_MAX],
                    pinned=address)


TRUST_FAILURE = "TLS certificate not trusted"
UNVERIFIED_NOTE = " (over an unverified TLS connection: the certificate is not trusted)"


def send_despite_trust(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                       ca_file: str | None = None, timeout_s: float = 5.0) -> Exchange:
    """:func:`send`; when the certificate is not trusted, the same request once more without
    verification, so HTTP-level facts (HSTS, headers, CORS, health) are still measured --
    the TLS family fails the trust itself.  The exchange says so (``unverified``, and the
    first line of :meth:`Exchange.raw`).  For requests that carry no credentials only."""
    try:
        return send(url, method=method, headers=headers, ca_file=ca_file, timeout_s=timeout_s)
    except HttpFailure as exc:
        if not str(exc).startswith(TRUST_FAILURE):
            raise
        reason = str(exc)
    ex = send(url, method=method, headers=headers, ca_file=ca_file, timeout_s=timeout_s, verify=False)
    return dataclasses.replace(ex, unverified=reason)


def _evidence(probe: str, url: str, method: str, timeout_s: float, raw: str = "",
              data: dict[str, Any] | None = None, started: float | None = None) -> Evidence:
    return Evidence(probe=probe, subject=redact(url), tool=TOOL, raw=raw, data=data or {},
                    method=f"{method} {redact(url)} (no redirects followed, timeout {timeout_s:g} s)",
                    duration_s=round(time.monotonic() - started, 3) if started is not None else None)


# ----------------------------------------------------------------------------- redirect

def redirect(http_url: str, *, timeout_s: float = 5.0) -> Measurement:
    """What the plain-HTTP URL answers.  Value: ``{"status", "location", "scheme",
    "host", "same_host"}`` (``location`` None when the answer is no redirect)."""
    started = time.monotonic()
    try:
        ex = send(http_url, timeout_s=timeout_s)
    except HttpFailure as exc:
        return Measurement.failed(str(exc), _evidence("http.redirect", http_url, "GET", timeout_s, started=started))
    location = ex.headers.get("location")
    src = urllib.parse.urlsplit(http_url)
    value: dict[str, Any] = {"status": ex.status, "location": location, "scheme": None, "host": None,
                             "same_host": None}
    if location is not None:
        dst = urllib.parse.urlsplit(urllib.parse.urljoin(http_url, location))
        value.update(scheme=dst.scheme, host=dst.hostname,
                     same_host=(dst.hostname or "").lower() == (src.hostname or "").lower())
    if location is None:
        display = f"HTTP {ex.status}, no redirect" + (" (content served over plain HTTP)" if ex.status < 300 else "")
    else:
        display = f"HTTP {ex.status} -> {redact(location)}"
        if value["scheme"] != "https":
            display += " (not https)"
        elif not value["same_host"]:
            display += f" (other host than {src.hostname})"
    ev = _evidence("http.redirect", http_url, "GET", timeout_s, ex.raw(["location", "server"]),
                   {"server_addr": ex.server_addr, **value}, started)
    return Measurement(value, display, ev)


# ----------------------------------------------------------------------------- HSTS and headers

_MAX_AGE = re.compile(r'^\s*max-age\s*=\s*"?(\d+)"?\s*$', re.IGNORECASE)


def parse_hsts(header: str) -> dict[str, Any]:
    """RFC 6797 directives of one Strict-Transport-Security value."""
    out: dict[str, Any] = {"max_age": None, "include_subdomains": False, "preload": False}
    for part in header.split(";"):
        m = _MAX_AGE.match(part)
        if m:
            out["max_age"] = int(m.group(1))
        elif part.strip().lower() == "includesubdomains":
            out["include_subdomains"] = True
        elif part.strip().lower() == "preload":
            out["preload"] = True
    return out


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_QUOTED = re.compile(r'^"(?:[^"\\]|\\.)*"$')
PRELOAD_MIN_AGE = 31536000  # hstspreload.org: at least one year


def hsts_problems(header: str) -> list[str]:
    """Why a browser would ignore this Strict-Transport-Security value (RFC 6797 section
    6.1): a directive that is not ``name[=token|quoted-string]``, a directive given twice,
    no ``max-age`` or one that is not a number of seconds; ``includeSubDomains`` and
    ``preload`` take no value.  Empty list: the header is valid."""
    problems: list[str] = []
    seen: set[str] = set()
    for part in header.split(";"):
        part = part.strip()
        if not part:
            continue  # the grammar allows empty directives
        name, eq, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if not _TOKEN.match(name):
            problems.append(f"'{part}' is not a directive (name[=value], separated by ';')")
            continue
        key = name.lower()
        if key in seen:
            problems.append(f"{name} appears twice")
        seen.add(key)
        if eq and not (_TOKEN.match(raw) or _QUOTED.match(raw)):
            problems.append(f"{name} has the value {raw!r}, neither a token nor a quoted string")
            continue
        value = raw[1:-1] if raw.startswith('"') else raw
        if key == "max-age" and not value.isdigit():
            problems.append(f"max-age {raw!r} is not a number of seconds")
        if key in ("includesubdomains", "preload") and eq:
            problems.append(f"{name} takes no value")
    if "max-age" not in seen:
        problems.append("no max-age directive (required)")
    return problems


def hsts(url: str, *, ca_file: str | None = None, timeout_s: float = 5.0) -> Measurement:
    """The Strict-Transport-Security header of an HTTPS response (the first one, as
    browsers do).  Value: ``{"present", "max_age", "include_subdomains", "preload",
    "header", "problems", "headers"}`` (``problems``: :func:`hsts_problems` of the first
    header; ``headers``: how many were sent)."""
    started = time.monotonic()
    try:
        ex = send_despite_trust(url, ca_file=ca_file, timeout_s=timeout_s)
    except HttpFailure as exc:
        return Measurement.failed(str(exc), _evidence("http.hsts", url, "GET", timeout_s, started=started))
    values = ex.header_lists.get("strict-transport-security", [])
    value: dict[str, Any] = {"present": bool(values), "header": values[0] if values else None,
                             "max_age": None, "include_subdomains": False, "preload": False,
                             "problems": [], "headers": len(values)}
    if values:
        value.update(parse_hsts(values[0]))
        value["problems"] = hsts_problems(values[0])
        age = value["max_age"]
        display = f"Strict-Transport-Security: {values[0]}" + ("" if age is None else f" ({age / 86400:g} d)")
        if value["problems"]:
            display += f"; invalid, browsers ignore it: {'; '.join(value['problems'])}"
        if len(values) > 1:
            display += f"; {len(values)} headers (browsers use the first)"
    else:
        display = f"no Strict-Transport-Security header (HTTP {ex.status})"
    display += UNVERIFIED_NOTE if ex.unverified else ""
    ev = _evidence("http.hsts", url, "GET", timeout_s, ex.raw(["strict-transport-security"]),
                   {"server_addr": ex.server_addr, "tls_unverified": ex.unverified, "status": ex.status, **value},
                   started)
    return Measurement(value, display, ev)


def response_headers(url: str, names: Sequence[str], *, ca_file: str | None = None,
                     timeout_s: float = 5.0) -> Measurement:
    """Values of the named response headers (None when absent).  Value: ``{name: value}``."""
    started = time.monotonic()
    try:
        ex = send_despite_trust(url, ca_file=ca_file, timeout_s=timeout_s)
    except HttpFailure as exc:
        return Measurement.failed(str(exc), _evidence("http.headers", url, "GET", timeout_s, started=started))
    found = {n: ex.headers.get(n.lower()) for n in names}
    missing = [n for n, v in found.items() if v is None]
    present = [f"{n}: {v}" for n, v in found.items() if v is not None]
    display = (f"missing {', '.join(missing)}" + (f"; present {'; '.join(present)}" if present else "")
               if missing else f"present: {'; '.join(present)}")
    display += UNVERIFIED_NOTE if ex.unverified else ""
    ev = _evidence("http.headers", url, "GET", timeout_s, ex.raw(list(names)),
                   {"server_addr": ex.server_addr, "tls_unverified": ex.unverified, "status": ex.status,
                    "headers": found}, started)
    return Measurement(found, display, ev)


def status(url: str, *, ca_file: str | None = None, timeout_s: float = 5.0, probe: str = "http.status",
           method: str = "GET", headers: Mapping[str, str] | None = None) -> Measurement:
    """The status code ``url`` answers with (no redirects followed)."""
    started = time.monotonic()
    try:
        ex = send(url, method=method, ca_file=ca_file, timeout_s=timeout_s, headers=headers)
    except HttpFailure as exc:
        return Measurement.failed(str(exc), _evidence(probe, url, method, timeout_s, started=started))
    ev = _evidence(probe, url, method, timeout_s, ex.raw(["content-type", "www-authenticate", "location"]),
                   {"server_addr": ex.server_addr, "status": ex.status, "elapsed_ms": ex.elapsed_ms}, started)
    return Measurement(ex.status, f"HTTP {ex.status}", ev)


# ----------------------------------------------------------------------------- health

def _field(doc: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of the dotted ``path`` in a JSON document (list items by index)."""
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return False, None
    return True, doc


def body_verdict(body: bytes, *, json_field: str | None = None, equals: Any = None,
                 pattern: str | None = None) -> dict[str, Any]:
    """Whether a response body says "healthy": the JSON field ``json_field`` (dotted path)
    equals ``equals`` (is truthy when ``equals`` is None), and ``pattern`` (a regular
    expression) is found in the body text.  Returns ``{"ok", "why", "field", "pattern"}``."""
    text = body.decode("utf-8", "replace")
    out: dict[str, Any] = {"ok": True, "why": [], "field": None, "pattern": None}
    if json_field:
        found, value = False, None
        if not text.strip():
            out["why"].append("empty body")
        else:
            try:
                found, value = _field(json.loads(text), json_field)
            except ValueError:
                out["why"].append("the body is not JSON")
        out["field"] = {"path": json_field, "found": found, "value": value}
        if not found:
            out["ok"] = False
            if not out["why"]:
                out["why"].append(f"no field {json_field}")
        elif (value != equals) if equals is not None else not value:
            out["ok"] = False
            out["why"].append(f"{json_field} = {json.dumps(value)}"
                              + (f", not {json.dumps(equals)}" if equals is not None else " (not truthy)"))
    if pattern:
        hit = re.search(pattern, text)
        out["pattern"] = {"regex": pattern, "found": hit is not None}
        if hit is None:
            out["ok"] = False
            out["why"].append(f"no match for /{pattern}/")
    return out


def health(url: str, *, ca_file: str | None = None, timeout_s: float = 5.0, json_field: str | None = None,
           equals: Any = None, pattern: str | None = None) -> Measurement:
    """The health endpoint's status and, when the target says what a healthy body holds (a
    JSON field, a pattern), whether the body says so.  Value: ``{"status", "body_ok"}``
    (``body_ok`` None when nothing is expected of the body) plus ``body`` (the verdict)."""
    return page(url, probe="http.health", ca_file=ca_file, timeout_s=timeout_s, json_field=json_field,
                equals=equals, pattern=pattern, body_words=("body healthy", "body unhealthy"))


def page(url: str, *, probe: str = "http.pages", ca_file: str | None = None, timeout_s: float = 5.0,
         json_field: str | None = None, equals: Any = None, pattern: str | None = None,
         content_type: str | None = None, body_words: tuple[str, str] = ("body as expected", "body not as expected"),
         ) -> Measurement:
    """One GET (no redirect followed): the status, and where the target says what the answer
    holds, whether the body does (a JSON field, a pattern: :func:`body_verdict`) and whether
    the Content-Type starts with ``content_type``.  Value: ``{"status", "body_ok",
    "content_type", "content_type_ok", "body"}`` (``*_ok`` None when nothing is expected)."""
    started = time.monotonic()
    try:
        ex = send_despite_trust(url, ca_file=ca_file, timeout_s=timeout_s)
    except HttpFailure as exc:
        return Measurement.failed(str(exc), _evidence(probe, url, "GET", timeout_s, started=started))
    excerpt = redact(ex.body[:400].decode("utf-8", "replace"))
    ctype = ex.headers.get("content-type")
    value: dict[str, Any] = {"status": ex.status, "body_ok": None, "body": None, "content_type": ctype,
                             "content_type_ok": None}
    display = f"HTTP {ex.status}"
    if content_type:
        value["content_type_ok"] = (ctype or "").lower().startswith(content_type.lower())
        display += f", {ctype or 'no Content-Type'}"
    if json_field or pattern:
        verdict = body_verdict(ex.body, json_field=json_field, equals=equals, pattern=pattern)
        value.update(body_ok=verdict["ok"], body=verdict)
        display += f", {body_words[0]}" if verdict["ok"] else f", {body_words[1]}: {'; '.join(verdict['why'])}"
    display += UNVERIFIED_NOTE if ex.unverified else ""
    shown = ["content-type", "location"] if 300 <= ex.status < 400 else ["content-type"]  # where a redirect goes
    raw = ex.raw(shown) + (f"\n\n{excerpt}" if excerpt else "")
    ev = _evidence(probe, url, "GET", timeout_s, raw,
                   {"server_addr": ex.server_addr, "tls_unverified": ex.unverified, "status": ex.status,
                    "elapsed_ms": ex.elapsed_ms, "content_type": ctype,
                    "body_excerpt": excerpt, "body": value["body"]}, started)
    return Measurement(value, display, ev)
