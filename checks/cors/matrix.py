"""The CORS bypass matrix: attack origins derived from an allowed origin, sent once each.

Servers that compare the Origin with a regular expression or a substring let through
origins that only *look* like an allowed one.  :func:`derive` builds, from one allowed
origin, the origins the usual scanners try (nuclei's ``cors-misconfig`` template,
CORScanner, ZAP's CORS rule): an arbitrary origin, ``null``, the allowed host as a prefix
of an attacker's domain, an attacker's host ending with it (suffix), a substring of it, each
dot unescaped (replaced by a letter or ``-``), any subdomain, the ``http://`` downgrade,
another port, special characters after the host, and third-party hosting origins anyone can
publish on.  Every name ends under ``.invalid`` or belongs to a hosting service: only the
Origin *header* carries them, no request goes there.

:func:`probe_matrix` sends each origin's preflight and simple request (one pass, no
retries) and :func:`grade` says what each answer means: the origin allowed (with or without
credentials), an allowed origin reflected without ``Vary: Origin`` (caches may serve one
origin's answer to another), and a preflight that reflects whatever method or header is
asked for, or answers ``*``.
"""
from __future__ import annotations

import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from golive.model import Evidence, Measurement

ATTACKER = "attacker.invalid"
#: Hosting services where anyone can publish a page (and so send requests with that Origin).
THIRD_PARTY = ("golive-attacker.github.io", "golive-attacker.herokuapp.com", "golive-attacker.netlify.app",
               "golive-attacker.vercel.app", "golive-attacker.pages.dev", "golive-attacker.web.app",
               "golive-attacker.azurewebsites.net", "golive-attacker.s3.amazonaws.com", "codepen.io", "jsfiddle.net")
#: Characters some browsers accept in a host name, after which a sloppy pattern stops matching.
SPECIAL = ("_", "-", "$", "~", "=", "+", "&", "*", "!", "'", "(", ")", ",", ";", "`", "%60")
CANARY_METHOD = "GOLIVECANARY"
CANARY_HEADER = "X-Golive-Canary"
MAX_ORIGINS = 80
DEADLINE_S = 90.0


def _split(origin: str) -> tuple[str, str, int | None]:
    u = urllib.parse.urlsplit(origin)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"'{origin}' is not an http(s) origin")
    return u.scheme, u.hostname, u.port


def _origin(scheme: str, host: str, port: int | None = None) -> str:
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def derive(allowed: str, extra: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(kind, origin) pairs to try against an allowlist that holds ``allowed``; ``extra``
    (the profile's own origins) are added as kind ``profile``.  Deduplicated, never the
    allowed origin itself, at most :data:`MAX_ORIGINS`."""
    scheme, host, port = _split(allowed)
    labels = host.split(".")
    parent = ".".join(labels[-2:]) if len(labels) > 2 else host  # no public-suffix list: the last two labels
    out: list[tuple[str, str]] = [
        ("arbitrary", _origin(scheme, "golive-attacker.invalid")),
        ("null", "null"),
        ("prefix", _origin(scheme, f"{host}.{ATTACKER}")),
        ("suffix", _origin(scheme, f"golive{host}")),
        ("suffix", _origin(scheme, f"golive{parent}")),
        ("substring", _origin(scheme, parent)),
        ("substring", _origin(scheme, host[:-1])),
        ("any subdomain", _origin(scheme, f"golive-attacker.{host}")),
        ("any subdomain", _origin(scheme, f"golive-attacker.{parent}")),
        ("localhost", _origin(scheme, f"localhost.{ATTACKER}")),
    ]
    for i, _ in enumerate(labels[:-1]):
        for repl in ("a", "-"):
            out.append(("unescaped dot", _origin(scheme, ".".join(labels[:i + 1]) + repl + ".".join(labels[i + 1:]),
                                                 port)))
    if scheme == "https":
        out.append(("http downgrade", _origin("http", host, port)))
    out.append(("other port", _origin(scheme, host, (port or (443 if scheme == "https" else 80)) + 1)))
    for c in SPECIAL:
        out.append(("special characters", _origin(scheme, f"{host}{c}.{ATTACKER}")))
    for h in THIRD_PARTY:
        out.append(("third-party hosting", _origin("https", h)))
    out.extend(("profile", o) for o in extra)
    seen = {allowed.rstrip("/")}
    unique = []
    for kind, o in out:
        if o not in seen:
            seen.add(o)
            unique.append((kind, o))
    return unique[:MAX_ORIGINS]


def _allows(answer: dict[str, Any], origin: str) -> bool:
    return answer["allow_origin"] in (origin, "*")


def _varies_on_origin(answer: dict[str, Any]) -> bool:
    return any(v.strip().lower() in ("origin", "*") for v in (answer.get("vary") or "").split(","))


def grade(allowed: str, rows: list[dict[str, Any]], canary: dict[str, Any] | None) -> list[dict[str, str]]:
    """Findings over the matrix: ``{"grade", "what", "origin"}``.  ``critical``: an attack
    origin allowed with credentials; ``high``: allowed without; ``medium``: the allowed
    origin reflected without ``Vary: Origin``, or the preflight reflecting the canary method
    or header, or answering ``*`` for them."""
    findings: list[dict[str, str]] = []
    for row in rows:
        if row["kind"] == "allowed":
            for a in (row["preflight"], row["simple"]):
                if a["allow_origin"] == allowed and not _varies_on_origin(a):
                    findings.append({"grade": "medium", "origin": allowed,
                                     "what": f"{a['kind']} reflects the allowed origin without Vary: Origin"})
            continue
        hits = [a for a in (row["preflight"], row["simple"]) if _allows(a, row["origin"])]
        if hits:
            creds = any(a["allow_credentials"] for a in hits)
            findings.append({"grade": "critical" if creds else "high", "origin": row["origin"],
                             "what": f"{row['kind']} origin allowed" + (" with credentials" if creds else "")})
    if canary is not None:
        pre = canary["preflight"]
        methods = [m.upper() for m in pre["allow_methods"]]
        headers = [h.lower() for h in pre["allow_headers"]]
        if CANARY_METHOD in methods or "*" in methods:
            findings.append({"grade": "medium", "origin": allowed,
                             "what": "Access-Control-Allow-Methods " + ("*" if "*" in methods else
                                                                         f"reflects the requested {CANARY_METHOD}")})
        if CANARY_HEADER.lower() in headers or "*" in headers:
            findings.append({"grade": "medium", "origin": allowed,
                             "what": "Access-Control-Allow-Headers " + ("*" if "*" in headers else
                                                                         f"reflects the requested {CANARY_HEADER}")})
    return findings


def _row(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    keep = ("status", "allow_origin", "allow_credentials", "allow_methods", "allow_headers", "vary")
    return {"kind": kind, "origin": value["origin"],
            "preflight": {"kind": "preflight", **{k: value["preflight"][k] for k in keep}},
            "simple": {"kind": "simple", **{k: value["simple"][k] for k in keep}}}


def _line(row: dict[str, Any]) -> str:
    def one(a: dict[str, Any]) -> str:
        acao = a["allow_origin"]
        return f"{a['status']} " + (f"ACAO {acao}" + (" +credentials" if a["allow_credentials"] else "")
                                    if acao else "no ACAO")
    return f"{row['kind']:<19} {row['origin']}: preflight {one(row['preflight'])}; simple {one(row['simple'])}"


def probe_matrix(url: str, allowed: str, *, method: str = "GET", request_headers: Sequence[str] = (),
                 extra: Sequence[str] = (), ca_file: str | None = None, timeout_s: float = 5.0,
                 deadline_s: float = DEADLINE_S) -> Measurement:
    """Every origin of :func:`derive` (and the allowed origin itself, and one canary
    preflight from it) sent once to ``url``.  Value: ``{"allowed", "tried": [rows],
    "findings": [...]}``; the evidence lists every origin tried and what came back."""
    from checks.cors import probes
    from checks.http.probes import TOOL, UNVERIFIED_NOTE

    started = time.monotonic()
    try:
        origins = derive(allowed, extra)
    except ValueError as exc:
        return Measurement.failed(str(exc), Evidence(probe="cors.matrix", subject=allowed, method="target file"))
    how = (f"from each of {len(origins)} origins derived from {allowed} (and {allowed} itself): OPTIONS {url} with "
           f"Origin and Access-Control-Request-Method: {method}, then GET {url} with Origin; one more preflight from "
           f"{allowed} asking for method {CANARY_METHOD} and header {CANARY_HEADER}; one pass, no retries, "
           f"timeout {timeout_s:g} s per request, {deadline_s:g} s in all")

    def evidence(raw: str, data: dict[str, Any]) -> Evidence:
        return Evidence(probe="cors.matrix", subject=f"{url} (allowlist entry {allowed})", method=how,
                        tool=TOOL, raw=raw, data=data, duration_s=round(time.monotonic() - started, 3))

    rows: list[dict[str, Any]] = []
    unverified: str | None = None
    for kind, origin in [("allowed", allowed), *origins]:
        if time.monotonic() - started > deadline_s:
            return Measurement.failed(f"the matrix did not finish within {deadline_s:g} s ({len(rows)} of "
                                      f"{len(origins) + 1} origins tried)", evidence("\n".join(map(_line, rows)),
                                                                                     {"tried": rows}))
        m = probes.probe_origin(url, origin, method=method, request_headers=request_headers, ca_file=ca_file,
                                timeout_s=timeout_s)
        if not m.ok:
            return Measurement.failed(f"{kind} origin {origin}: {m.error}",
                                      evidence("\n".join(map(_line, rows)), {"tried": rows}))
        rows.append(_row(kind, m.value))
        unverified = unverified or m.evidence.data.get("tls_unverified")
    canary_m = probes.probe_origin(url, allowed, method=CANARY_METHOD, request_headers=[CANARY_HEADER],
                                   ca_file=ca_file, timeout_s=timeout_s)
    if not canary_m.ok:
        return Measurement.failed(f"canary preflight: {canary_m.error}", evidence("\n".join(map(_line, rows)),
                                                                                  {"tried": rows}))
    canary = _row("canary", canary_m.value)
    findings = grade(allowed, rows, canary)
    tried = len(rows) - 1
    if findings:
        worst = sorted(findings, key=lambda f: ("critical", "high", "medium").index(f["grade"]))
        display = (f"{len(findings)} finding(s) over {tried} derived origins: "
                   + "; ".join(f"{f['origin']} ({f['what']}, {f['grade']})" for f in worst[:6])
                   + (f"; and {len(findings) - 6} more" if len(findings) > 6 else ""))
    else:
        display = (f"none of {tried} derived origins allowed; Vary: Origin on reflection; "
                   "requested methods and headers not reflected")
    raw = "\n".join(map(_line, [*rows, canary]))
    if unverified:
        display += UNVERIFIED_NOTE
        raw = f"! measured over an UNVERIFIED TLS connection ({unverified})\n{raw}"
    value = {"allowed": allowed, "tried": rows, "canary": canary, "findings": findings, "tls_unverified": unverified}
    return Measurement(value, display, evidence(raw, value))
