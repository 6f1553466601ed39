"""Release probes: which version is deployed, whether every documented endpoint works,
rejects bad input without crashing, hides its debug pages and its uploads, and whether the
declared smoke sequence passes.

Every HTTP exchange is bounded twice: a per-request timeout and an overall deadline per
probe, enforced while the body streams in (a server that dribbles bytes cannot hold a probe
past its deadline).  Bodies are read up to ``BODY_LIMIT`` bytes.  Nothing here judges: each
probe returns what it saw (statuses, fields, markers) as a :class:`Measurement`.
"""
from __future__ import annotations

import dataclasses
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from checks.connection import ProbeError, redact, run
from golive.deadline import http_client
from golive.model import Evidence, Measurement

BODY_LIMIT = 256 * 1024
OVERSIZED_BYTES = 2 * 1024 * 1024  # bigger than any sane JSON API accepts; bounded
MAX_OPERATIONS = 50
TOOL = f"httpx {httpx.__version__}"
METHODS = ("get", "head", "post", "put", "patch", "delete")
SAFE = ("get", "head")
# What a stack trace or a framework debug page looks like in a response body.
DEBUG_MARKERS = {
    "python traceback": re.compile(r"Traceback \(most recent call last\)"),
    "python frame": re.compile(r'File "[^"]+", line \d+'),
    "werkzeug debugger": re.compile(r"Werkzeug Debugger|__debugger__"),
    "django debug page": re.compile(r"You're seeing this error because you have <code>DEBUG = True"),
    "java stack trace": re.compile(r"\n\s+at [\w$.]+\([\w$]+\.java:\d+\)"),
    "node stack trace": re.compile(r"\n\s+at .+ \(/[^)]+\.js:\d+:\d+\)"),
    "php error": re.compile(r"<b>(Fatal error|Warning)</b>:.+ on line <b>\d+</b>"),
}


class DeadlineExceeded(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Answer:
    """One HTTP exchange as seen: status, the first bytes of the body, the time it took."""

    method: str
    url: str
    status: int | None
    body: bytes = b""
    error: str | None = None
    elapsed_s: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    def line(self) -> str:
        shown = redact(self.url)
        return f"{self.method} {shown} -> {self.status if self.status is not None else self.error}"


class Session:
    """An httpx client with one overall deadline for everything a probe sends."""

    def __init__(self, *, deadline_s: float, timeout_s: float, ca_file: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + deadline_s
        self.deadline_s = deadline_s
        self.timeout_s = timeout_s
        # golive.deadline: every socket operation gets at most the time left, and a watchdog
        # shuts the sockets down at the deadline (a server dribbling headers cannot hold us)
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self.client = http_client(deadline_s, verify=verify, timeout_s=timeout_s)
        self.client.headers.update(dict(headers or {}))
        self.log: list[Answer] = []

    def close(self) -> None:
        self.client.close()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def send(self, method: str, url: str, *, content: bytes | None = None, headers: Mapping[str, str] | None = None,
             auth: bool = True) -> Answer:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"deadline of {self.deadline_s:g} s exceeded after {self.elapsed():.1f} s")
        started = time.monotonic()
        hdrs = dict(headers or {})
        try:
            req = self.client.build_request(method, url, content=content, headers=hdrs,
                                            timeout=httpx.Timeout(min(self.timeout_s, left)))
            if not auth:
                req.headers.pop("Authorization", None)
            resp = self.client.send(req, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if time.monotonic() > self.deadline:
                        raise DeadlineExceeded(f"deadline of {self.deadline_s:g} s exceeded while reading "
                                               f"{method} {redact(url)} after {self.elapsed():.1f} s")
                    if size >= BODY_LIMIT:
                        break
                answer = Answer(method, url, resp.status_code, b"".join(chunks)[:BODY_LIMIT],
                                elapsed_s=time.monotonic() - started)
            finally:
                resp.close()
        except httpx.HTTPError as exc:
            if time.monotonic() >= self.deadline:
                raise DeadlineExceeded(f"deadline of {self.deadline_s:g} s exceeded during {method} {redact(url)} "
                                       f"after {self.elapsed():.1f} s") from None
            answer = Answer(method, url, None, error=redact(f"{type(exc).__name__}: {exc}")[:200],
                            elapsed_s=time.monotonic() - started)
        self.log.append(answer)
        return answer


@contextmanager
def session(**kw: Any) -> Iterator[Session]:
    s = Session(**kw)
    try:
        yield s
    finally:
        s.close()


def _evidence(probe: str, subject: str, method: str, s: Session | None = None, raw: str = "",
              data: dict[str, Any] | None = None) -> Evidence:
    log = "\n".join(a.line() for a in (s.log if s else [])[-40:])
    return Evidence(probe=f"release.{probe}", subject=redact(subject), method=method, tool=TOOL,
                    raw=raw or log, duration_s=round(s.elapsed(), 3) if s else None, data=data or {})


# ----------------------------------------------------------------------------- version

def field_at(doc: Any, dotted: str) -> Any:
    """``doc["a"]["b"]`` for ``a.b``; KeyError when a part is missing."""
    for part in dotted.split("."):
        if isinstance(doc, list) and part.isdigit():
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def version_endpoint(url: str, field: str, *, ca_file: str | None = None, headers: Mapping[str, str] | None = None,
                     timeout_s: float = 5, deadline_s: float = 15) -> Measurement:
    """The version a running service reports: GET ``url``, the JSON ``field`` (dotted)."""
    with session(deadline_s=deadline_s, timeout_s=timeout_s, ca_file=ca_file, headers=headers) as s:
        how = f"GET {redact(url)}, JSON field '{field}'"
        try:
            a = s.send("GET", url)
        except DeadlineExceeded as exc:
            return Measurement.failed(str(exc), _evidence("version", url, how, s))
        if a.status is None:
            return Measurement.failed(f"no answer: {a.error}", _evidence("version", url, how, s))
        if a.status != 200:
            return Measurement.failed(f"the version endpoint answered HTTP {a.status}", _evidence("version", url, how, s))
        try:
            value = str(field_at(a.json(), field))
        except (ValueError, KeyError) as exc:
            return Measurement.failed(f"no field '{field}' in the JSON answer ({type(exc).__name__}: {exc})",
                                      _evidence("version", url, how, s, raw=a.body[:300].decode(errors="replace")))
        return Measurement(value, value, _evidence("version", url, how, s, raw=a.body[:300].decode(errors="replace")),
                           unit="version")


def git_revision(host: Any, path: str, *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """The revision checked out in ``path`` on a host: ``git rev-parse HEAD`` and the tags
    pointing at it, over the host's connection."""
    import shlex

    cmd = f"git -C {shlex.quote(path)} rev-parse HEAD && git -C {shlex.quote(path)} tag --points-at HEAD"
    ev = Evidence(probe="release.git_revision", subject=subject or "host", method=cmd, tool="git over testinfra")
    try:
        res = run(host, cmd, timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    if res.rc != 0:
        return Measurement.failed(f"git exited {res.rc}: {res.stderr.strip()[:200]}", ev)
    lines = [x.strip() for x in res.stdout.splitlines() if x.strip()]
    rev, tags = lines[0], lines[1:]
    ev = dataclasses.replace(ev, raw=res.stdout[:500])
    return Measurement({"revision": rev, "tags": tags}, rev[:12] + (f" ({', '.join(tags)})" if tags else ""), ev,
                       unit="git revision")


# ----------------------------------------------------------------------------- OpenAPI

@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str
    body_schema: dict[str, Any] | None
    path_params: tuple[tuple[str, dict[str, Any]], ...]

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def safe(self) -> bool:
        return self.method in SAFE


def _resolve(schema: Any, doc: dict[str, Any], depth: int = 0) -> Any:
    """``$ref`` to ``#/components/...`` resolved (bounded depth: recursive schemas end)."""
    if depth > 8 or not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        try:
            return _resolve(field_at(doc, ref[2:].replace("/", ".")), doc, depth + 1)
        except KeyError:
            return {}
    return {k: (_resolve(v, doc, depth + 1) if isinstance(v, dict) else
                [_resolve(x, doc, depth + 1) for x in v] if isinstance(v, list) else v) for k, v in schema.items()}


def operations(doc: dict[str, Any]) -> list[Operation]:
    """The operations of an OpenAPI 3 document (paths x methods), at most MAX_OPERATIONS."""
    out: list[Operation] = []
    for path, item in sorted((doc.get("paths") or {}).items()):
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params = [_resolve(p, doc) for p in [*shared, *(op.get("parameters") or [])]]
            path_params = tuple((p.get("name", ""), p.get("schema") or {}) for p in params
                                if isinstance(p, dict) and p.get("in") == "path")
            body = None
            content = ((_resolve(op.get("requestBody") or {}, doc)).get("content") or {})
            if "application/json" in content:
                body = _resolve(content["application/json"].get("schema") or {}, doc)
            out.append(Operation(method, path, body, path_params))
    return out[:MAX_OPERATIONS]


def sample(schema: dict[str, Any] | None, depth: int = 0) -> Any:
    """A minimal valid instance of a JSON schema: the example or default when given, else
    required properties only, with values inside the schema's bounds."""
    schema = schema or {}
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("oneOf", "anyOf", "allOf"):
        if schema.get(key):
            return sample(schema[key][0], depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if kind == "object":
        if depth > 5:
            return {}
        props = schema.get("properties") or {}
        return {k: sample(props.get(k) or {}, depth + 1) for k in schema.get("required", [])}
    if kind == "array":
        return [sample(schema.get("items") or {}, depth + 1)] * max(1, int(schema.get("minItems", 1)))
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1) if "maximum" not in schema else int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    text = "golive"
    if schema.get("format") == "email":
        text = "golive@example.invalid"
    min_len = int(schema.get("minLength", 0))
    return (text * (1 + min_len // len(text)))[: max(min_len, min(len(text), int(schema.get("maxLength", 64))))]


def wrong_type(schema: dict[str, Any] | None) -> Any:
    """A body of the wrong type for ``schema``: each required property given a value of
    another JSON type (a string where a number is expected, a number where a string is)."""
    schema = schema or {}
    if schema.get("type", "object") != "object":
        return {"golive": "wrong type"}
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for k in schema.get("required", []) or list(props)[:1]:
        t = (props.get(k) or {}).get("type", "string")
        out[k] = "not-a-number" if t in ("integer", "number", "boolean") else [1, 2, 3] if t == "string" else "x"
    return out or {"golive": 1}


def _url(base: str, op: Operation, value_for: Any = None) -> str:
    path = op.path
    for name, schema in op.path_params:
        v = value_for(name, schema) if value_for else sample(schema)
        path = path.replace("{" + name + "}", urllib.parse.quote(str(v), safe=""))
    return base.rstrip("/") + path


def load_openapi(url: str, s: Session) -> tuple[dict[str, Any] | None, str | None]:
    try:
        a = s.send("GET", url)
    except DeadlineExceeded as exc:
        return None, str(exc)
    if a.status != 200:
        return None, f"the OpenAPI document answered {a.status if a.status is not None else a.error}"
    try:
        doc = a.json()
    except ValueError:
        return None, "the OpenAPI document is not JSON"
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        return None, "not an OpenAPI document (no paths)"
    return doc, None


def exercise_endpoints(base: str, openapi_url: str, *, allow_writes: bool, ca_file: str | None = None,
                       headers: Mapping[str, str] | None = None, timeout_s: float = 10,
                       deadline_s: float = 60) -> dict[str, Measurement | str] | Measurement:
    """Every documented operation called once with a valid sample (path parameters and JSON
    body from the schema).  Value: the status.  Operations that write (POST, PUT, PATCH,
    DELETE) are only called with ``allow_writes``; otherwise their entry is the reason (str)."""
    with session(deadline_s=deadline_s, timeout_s=timeout_s, ca_file=ca_file, headers=headers) as s:
        doc, why = load_openapi(openapi_url, s)
        if doc is None:
            return Measurement.failed(why or "no document", _evidence("endpoints", openapi_url, f"GET {openapi_url}", s))
        out: dict[str, Measurement | str] = {}
        for op in operations(doc):
            if not op.safe and not allow_writes:
                out[op.key] = "writes to the target: disruptive, not allowed"
                continue
            body = json.dumps(sample(op.body_schema)).encode() if op.body_schema is not None else None
            how = f"{op.method.upper()} {_url(base, op)} with a valid sample" + (
                f" body {body[:200].decode()}" if body else "")
            try:
                a = s.send(op.method.upper(), _url(base, op), content=body,
                           headers={"Content-Type": "application/json"} if body else None)
            except DeadlineExceeded as exc:
                out[op.key] = Measurement.failed(str(exc), _evidence("endpoints", op.key, how))
                continue
            ev = _evidence("endpoints", op.key, how, raw=a.line() + "\n" + a.body[:300].decode(errors="replace"))
            out[op.key] = (Measurement(a.status, f"HTTP {a.status}", ev, unit="HTTP status") if a.status is not None
                           else Measurement.failed(f"no answer: {a.error}", ev))
        return out


def input_validation(base: str, openapi_url: str, *, ca_file: str | None = None,
                     headers: Mapping[str, str] | None = None, timeout_s: float = 10,
                     deadline_s: float = 90) -> dict[str, Measurement] | Measurement:
    """Bad input to every documented operation that takes a JSON body or path parameters:
    malformed JSON, the wrong types, a missing required field, an oversized body (2 MiB), and
    path parameters of the wrong type.  Value per operation: {case: status}."""
    with session(deadline_s=deadline_s, timeout_s=timeout_s, ca_file=ca_file, headers=headers) as s:
        doc, why = load_openapi(openapi_url, s)
        if doc is None:
            return Measurement.failed(why or "no document", _evidence("input", openapi_url, f"GET {openapi_url}", s))
        out: dict[str, Measurement] = {}
        for op in operations(doc):
            cases: list[tuple[str, str, bytes | None]] = []
            good = _url(base, op)
            if op.body_schema is not None:
                cases += [("malformed JSON", good, b'{"golive": '),
                          ("wrong types", good, json.dumps(wrong_type(op.body_schema)).encode()),
                          ("missing required field", good, b"{}"),
                          ("oversized body", good, b'{"pad": "' + b"x" * OVERSIZED_BYTES + b'"}')]
            if op.path_params:
                bad = _url(base, op, lambda n, sch: "golive'\"<>" if sch.get("type") in ("integer", "number")
                           else "x" * 5000)
                cases.append(("path parameter of the wrong type", bad, None))
            if not cases:
                continue
            statuses: dict[str, int | str] = {}
            lines = []
            try:
                for name, url, body in cases:
                    a = s.send(op.method.upper(), url, content=body,
                               headers={"Content-Type": "application/json"} if body is not None else None)
                    statuses[name] = a.status if a.status is not None else f"no answer ({a.error})"
                    lines.append(f"{name}: {a.line()}")
            except DeadlineExceeded as exc:
                out[op.key] = Measurement.failed(str(exc), _evidence("input", op.key, "bad input", raw="\n".join(lines)))
                continue
            shown = ", ".join(f"{k} -> {v}" for k, v in statuses.items())
            out[op.key] = Measurement(statuses, shown, _evidence("input", op.key, f"{len(cases)} bad inputs to "
                                                                 f"{op.method.upper()} {op.path}", raw="\n".join(lines)))
        return out


def error_requests(doc: dict[str, Any] | None, extra: Sequence[tuple[str, str, bytes | None]] = ()
                   ) -> list[tuple[str, str, bytes | None]]:
    """Requests meant to make a service fail: an unknown path, malformed JSON to each
    operation that takes a body, a wrong-type path parameter to each that takes one (at
    most five of each), and the target's own triggers."""
    reqs: list[tuple[str, str, bytes | None]] = [("GET", "/golive-no-such-path-7f3a", None)]
    ops = operations(doc) if doc else []
    for op in [o for o in ops if o.body_schema is not None][:5]:
        reqs.append((op.method.upper(), _url("", op), b'{"golive": '))
    for op in [o for o in ops if o.path_params][:5]:
        reqs.append((op.method.upper(), _url("", op, lambda n, sch: "golive'\"<>"), None))
    return [*reqs, *extra]


def debug_exposure(base: str, openapi_url: str | None, extra: Sequence[tuple[str, str, bytes | None]] = (), *,
                   ca_file: str | None = None, headers: Mapping[str, str] | None = None, timeout_s: float = 10,
                   deadline_s: float = 30) -> Measurement:
    """Requests meant to make the service fail (:func:`error_requests`), and any stack
    trace or debug page in what comes back.  Value: the markers found, with the request
    that showed each ([] when none)."""
    with session(deadline_s=deadline_s, timeout_s=timeout_s, ca_file=ca_file, headers=headers) as s:
        doc = load_openapi(openapi_url, s)[0] if openapi_url else None
        requests = error_requests(doc, extra)
        found: list[str] = []
        answered = 0
        try:
            for method, path, body in requests:
                a = s.send(method, base.rstrip("/") + path, content=body,
                           headers={"Content-Type": "application/json"} if body is not None else None)
                if a.status is None:
                    continue
                answered += 1
                text = a.body.decode(errors="replace")
                found += [f"{name} ({method} {path} -> {a.status})" for name, rx in DEBUG_MARKERS.items()
                          if rx.search(text)]
        except DeadlineExceeded as exc:
            return Measurement.failed(str(exc), _evidence("debug", base, "error-forcing requests", s))
        ev = _evidence("debug", base, f"{len(requests)} error-forcing requests; bodies searched for "
                                      f"{', '.join(DEBUG_MARKERS)}", s)
        if not answered:
            return Measurement.failed("no request was answered", ev)
        return Measurement(found, "; ".join(found) or f"no stack trace or debug page in {answered} answers", ev)


def anonymous_access(urls: Sequence[str], *, ca_file: str | None = None, timeout_s: float = 10,
                     deadline_s: float = 30) -> dict[str, Measurement]:
    """GET each URL without credentials.  Value: the status."""
    out: dict[str, Measurement] = {}
    with session(deadline_s=deadline_s, timeout_s=timeout_s, ca_file=ca_file) as s:
        for url in urls:
            how = f"GET {redact(url)} without credentials"
            try:
                a = s.send("GET", url, auth=False)
            except DeadlineExceeded as exc:
                out[url] = Measurement.failed(str(exc), _evidence("uploads", url, how))
                continue
            ev = _evidence("uploads", url, how, raw=a.line())
            out[url] = (Measurement(a.status, f"HTTP {a.status}", ev, unit="HTTP status") if a.status is not None
                        else Measurement.failed(f"no answer: {a.error}", ev))
    return out


# ----------------------------------------------------------------------------- smoke

@dataclasses.dataclass(frozen=True)
class SmokeStep:
    name: str
    method: str
    path: str
    json_body: Any = None
    expect_status: int = 200
    expect: tuple[tuple[str, Any], ...] = ()  # (dotted field, value; None = present)
    save: tuple[tuple[str, str], ...] = ()  # (variable, dotted field)


def _fill(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = re.fullmatch(r"\{(\w+)\}", value)
        if whole and whole.group(1) in variables:  # "{item}" alone keeps the saved value's type
            return variables[whole.group(1)]
        return re.sub(r"\{(\w+)\}", lambda m: str(variables.get(m.group(1), m.group(0))), value)
    if isinstance(value, dict):
        return {k: _fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, variables) for v in value]
    return value


def smoke(base: str, steps: Sequence[SmokeStep], *, ca_file: str | None = None,
          headers: Mapping[str, str] | None = None, timeout_s: float = 30,
          deadline_s: float = 120) -> dict[str, Measurement]:
    """The declared sequence, in order, each step's fields saved for the next ones
    (``{id}`` in a later path or body).  Value per step: {status, problems}; a step after a
    failed one is not run (error: "an earlier step failed")."""
    out: dict[str, Measurement] = {}
    variables: dict[str, Any] = {}
    broken: str | None = None
    with session(deadline_s=deadline_s, timeout_s=timeout_s, ca_file=ca_file, headers=headers) as s:
        for i, step in enumerate(steps, 1):
            key = f"{i} {step.name}"
            path = _fill(step.path, variables)
            body = json.dumps(_fill(step.json_body, variables)).encode() if step.json_body is not None else None
            how = f"{step.method} {path}" + (f" {body[:200].decode()}" if body else "")
            if broken:
                out[key] = Measurement.failed(f"not run: step '{broken}' failed", _evidence("smoke", key, how))
                continue
            try:
                a = s.send(step.method, base.rstrip("/") + path, content=body,
                           headers={"Content-Type": "application/json"} if body else None)
            except DeadlineExceeded as exc:
                out[key] = Measurement.failed(str(exc), _evidence("smoke", key, how))
                broken = key
                continue
            ev = _evidence("smoke", key, how, raw=a.line() + "\n" + a.body[:300].decode(errors="replace"))
            if a.status is None:
                out[key] = Measurement.failed(f"no answer: {a.error}", ev)
                broken = key
                continue
            problems = [] if a.status == step.expect_status else [f"HTTP {a.status}, expected {step.expect_status}"]
            doc: Any = None
            if step.expect or step.save:
                try:
                    doc = a.json()
                except ValueError:
                    problems.append("the answer is not JSON")
            for field, want in step.expect if doc is not None else ():
                try:
                    got = field_at(doc, field)
                except KeyError:
                    problems.append(f"no field '{field}'")
                    continue
                if want is not None and got != _fill(want, variables):
                    problems.append(f"{field} = {got!r}, expected {want!r}")
            for var, field in step.save if doc is not None else ():
                try:
                    variables[var] = field_at(doc, field)
                except KeyError:
                    problems.append(f"no field '{field}' to save as {var}")
            if problems:
                broken = key
            out[key] = Measurement({"status": a.status, "problems": problems},
                                   f"HTTP {a.status}" + (f": {'; '.join(problems)}" if problems else ", as expected"), ev)
    return out
