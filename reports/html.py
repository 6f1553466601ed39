"""report.html: one self-contained file an auditor can read, search and print.

Everything is in the file: CSS inline, charts as inline SVG drawn in :mod:`reports.charts`,
no fonts, images or scripts from anywhere (a Content-Security-Policy in the page forbids
loading any).  The one script is three lines that unfold evidence when printing in browsers
without ``::details-content``; it is allowed by its hash.

The renderer is deterministic: the same report.json gives byte-identical HTML (no render
time, no random ids), which the golden-file tests check.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from reports.charts import Chart, charts_for

# how items are ordered and which status a checklist shows: problems first, "not run" last
STATUS_ORDER = {"fail": 0, "error": 1, "waived": 2, "attested": 3, "pass": 4, "skip": 5}
STATUSES = ("pass", "attested", "fail", "error", "waived", "skip")
SEVERITIES = ("critical", "high", "medium", "low")
SEV_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
STATUS_WORDS = {"pass": "passed", "attested": "attested", "fail": "failed", "error": "could not be verified",
                "waived": "waived", "skip": "skipped"}
STATUS_MEANING = {
    "pass": "the requirement is met",
    "fail": "the requirement is not met",
    "error": "it could not be measured (unreachable, timeout, refused, unauthorised); never counted as compliant",
    "waived": "the requirement is not met, and a named approver accepted the risk until a date",
    "skip": "not applicable to this profile or target, or not allowed in this run (disruptive)",
    "attested": ("no probe could measure it; a named person attested the fact with evidence (a document's sha256 "
                 "or a URL) until a date. Counted as compliant, shown apart from measured results"),
}
CHART_KEYS = ("histogram_ms", "series", "timeline", "marks")
SELECTION_FLAGS = {"-m": "marker expression", "-k": "name expression", "--lf": "last failed only",
                   "--last-failed": "last failed only", "--deselect": "deselected checks", "-x": "stop at first failure",
                   "--exitfirst": "stop at first failure", "--maxfail": "stop after failures", "--sw": "stepwise",
                   "--stepwise": "stepwise"}
PRINT_SCRIPT = ("addEventListener('beforeprint',function(){"
                "document.querySelectorAll('details.evidence').forEach(function(d){d.setAttribute('open','')})});")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    env.filters["first_upper"] = lambda s: str(s)[:1].upper() + str(s)[1:]
    env.filters["plural"] = lambda n, word, many="": f"{n} {word if n == 1 else (many or word + 's')}"
    return env


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def selection(args: list[str]) -> list[str]:
    """What narrowed the run (``-m``, ``-k``, node ids, ...), in words; empty for a full run."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            flag, _, inline = a.partition("=")
        elif a[:2] in ("-m", "-k"):
            flag, inline = a[:2], a[2:]
        else:
            flag, inline = a, ""
        if flag in ("-m", "-k", "--deselect", "--maxfail"):
            value = inline
            if not value and i + 1 < len(args):
                i += 1
                value = args[i]
            out.append(f"{flag} {value!r} ({SELECTION_FLAGS[flag]})")
        elif flag in SELECTION_FLAGS:
            out.append(f"{flag} ({SELECTION_FLAGS[flag]})")
        elif not a.startswith("-") and ("::" in a or a.startswith("suites") or a.endswith(".py")):
            out.append(f"{a} (only this test location)")
        i += 1
    return out


def _counts(results: list[dict[str, Any]]) -> dict[str, int]:
    c = Counter(r["status"] for r in results)
    return {s: c.get(s, 0) for s in STATUSES}


def _worst(results: list[dict[str, Any]]) -> str:
    return min((r["status"] for r in results), key=lambda s: STATUS_ORDER.get(s, 9), default="pass")


def _matrix(results: list[dict[str, Any]], fail_on: str) -> dict[str, Any]:
    """Counts by severity (rows) and status (columns), with which cells block the gate."""
    cells: dict[str, dict[str, int]] = {sev: {s: 0 for s in STATUSES} for sev in SEVERITIES}
    for r in results:
        cells.setdefault(r["severity"], {s: 0 for s in STATUSES})
        cells[r["severity"]][r["status"]] = cells[r["severity"]].get(r["status"], 0) + 1
    gate = SEV_RANK.get(fail_on, 3)
    rows: list[dict[str, Any]] = []
    for sev, by in cells.items():
        blocking = SEV_RANK.get(sev, 0) >= gate
        rows.append({"severity": sev, "counts": by, "total": sum(by.values()), "gated": blocking})
    totals = {s: sum(row["counts"].get(s, 0) for row in rows) for s in STATUSES}
    return {"rows": rows, "totals": totals, "total": sum(totals.values())}


def _titles(results: list[dict[str, Any]]) -> dict[str, str]:
    """A title per check id that no other check shares: two checks whose scenarios have the
    same name ("Operating system") get their check name added."""
    bases: dict[str, set[str]] = {}
    for r in results:
        bases.setdefault(r.get("scenario") or r["id"], set()).add(r["id"].split("[", 1)[0])
    out = {}
    for r in results:
        title = r.get("scenario") or r["id"]
        if len(bases[title]) > 1:
            title = f"{title} ({r['id'].split('[', 1)[0]})"
        out[r["id"]] = title
    return out


def _basis(r: dict[str, Any]) -> list[dict[str, str]]:
    """Per threshold: stated by the seed (with the quote above) or chosen by golive (why)."""
    out = []
    for field, basis in sorted((r["requirement"].get("basis") or {}).items()):
        text = str(basis)
        if text.startswith("golive"):
            out.append({"field": field, "kind": "chosen by golive", "why": text.partition(":")[2].strip()})
        else:
            out.append({"field": field, "kind": "stated by the seed", "why": text.partition(":")[2].strip()})
    return out


def _item(r: dict[str, Any], anchor: str, blocking: set[str]) -> dict[str, Any]:
    charts, notes = charts_for(r, "ch-" + anchor)
    charted = bool(charts)
    evidence = []
    for ev in r.get("evidence") or []:
        data = dict(ev.get("data") or {})
        hidden = [k for k in CHART_KEYS if k in data] if charted else []
        for k in hidden:
            data.pop(k)
        evidence.append({**ev, "data_shown": data, "data_charted": hidden})
    data = dict(r.get("data") or {})
    data_charted = [k for k in CHART_KEYS if k in data] if charted else []
    for k in data_charted:
        data.pop(k)
    waiver = r.get("waiver")
    return {
        "r": r,
        "anchor": anchor,
        "blocking": r["id"] in blocking,
        "charts": charts,
        "chart_notes": notes,
        "evidence": evidence,
        "data_shown": data,
        "data_charted": data_charted,
        "waiver_expired": isinstance(waiver, dict) and not waiver.get("matched", True),
        "basis": _basis(r),
        "steps": [str(s) for s in r.get("steps") or []],
    }


def _chart_svg(chart: Chart) -> Markup:
    # built with html.escape on every text and attribute value in reports.charts
    return Markup(chart.svg)


def normalise(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with every optional block and field present, so that a report
    written by an older golive (or by hand) renders instead of failing on a missing key."""
    d: dict[str, Any] = json.loads(json.dumps(doc, default=str))
    d.setdefault("schema", "")
    d.setdefault("golive", {}).setdefault("version", "?")
    d["golive"].setdefault("git_sha", "unknown")
    run = d.setdefault("run", {})
    for k in ("started_at", "finished_at", "operator", "checking_host", "platform", "python", "pytest"):
        run.setdefault(k, "")
    run.setdefault("args", [])
    run.setdefault("allow_disruptive", False)
    prof = d.setdefault("profile", {})
    for k in ("name", "description", "sha256"):
        prof.setdefault(k, "")
    for k in ("files", "source", "notes"):
        prof.setdefault(k, [])
    tgt = d.setdefault("target", {})
    for k in ("name", "environment", "description", "file"):
        tgt.setdefault(k, "")
    ver = d.setdefault("verdict", {})
    ver.setdefault("decision", "NO-GO")
    ver.setdefault("reason", "")
    ver.setdefault("fail_on", "high")
    ver.setdefault("blocking", [])
    ver.setdefault("complete", True)
    ver.setdefault("partial", None)
    w = d.setdefault("waivers", {})
    if "unused" not in w:  # reports before golive 0.2 called them "unmatched"
        w["unused"] = w.pop("unmatched", [])
    for k in ("source", "applied", "expired", "unused"):
        w.setdefault(k, [])
    att = d.setdefault("attestations", {})
    for k in ("source", "applied", "expired", "unused"):
        att.setdefault(k, [])
    run.setdefault("selection", None)
    integ = d.setdefault("integrity", {})
    integ.setdefault("results_sha256", "")
    integ.setdefault("document_sha256", "")
    for r in d.setdefault("results", []):
        r.setdefault("status", "error")
        r.setdefault("severity", "medium")
        for k in ("expected", "measured", "feature", "scenario", "reason", "remediation", "nodeid",
                  "started_at", "finished_at"):
            r[k] = "" if r.get(k) is None else r[k]
        r.setdefault("tags", [])
        r.setdefault("evidence", [])
        r.setdefault("waiver", None)
        r.setdefault("data", {})
        r.setdefault("attestation", None)
        req = r.get("requirement") or {}
        r["requirement"] = {"ids": req.get("ids", []), "sources": req.get("sources", []), "quotes": req.get("quotes", []),
                            "basis": req.get("basis") or {}}
        for ev in r["evidence"]:
            for k in ("probe", "subject", "method", "tool", "raw", "measured_at"):
                ev.setdefault(k, "")
            ev.setdefault("duration_s", None)
            ev.setdefault("data", {})
    return d


def view(doc: dict[str, Any]) -> dict[str, Any]:
    """Everything the template shows, computed once (the template only lays it out)."""
    from golive.recorder import VERIFY_REMEDIATION
    from golive.verdict import label

    doc = normalise(doc)
    results: list[dict[str, Any]] = doc["results"]
    titles = _titles(results)
    for r in results:
        r["title"] = titles[r["id"]]
        if r["status"] == "error":  # what to do is make it verifiable, not the fix for a failure
            r["remediation"] = VERIFY_REMEDIATION
    verdict = doc["verdict"]
    fail_on = verdict.get("fail_on", "high")
    blocking_ids = list(verdict.get("blocking", []))
    blocking = set(blocking_ids)
    anchors: dict[int, str] = {}
    used: set[str] = set()

    def anchor_for(i: int, r: dict[str, Any]) -> str:
        base = "check-" + _slug(r["id"])
        a, n = base, 1
        while a in used:
            n += 1
            a = f"{base}-{n}"
        used.add(a)
        anchors[i] = a
        return a

    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, r in enumerate(results):
        grouped.setdefault(r.get("feature") or "Other checks", []).append((i, r))
    features = []
    first_anchor: dict[str, str] = {}
    for fi, name in enumerate(sorted(grouped)):
        rows = sorted(grouped[name], key=lambda p: (STATUS_ORDER.get(p[1]["status"], 9), p[1]["id"], p[0]))
        items = []
        for i, r in rows:
            a = anchor_for(i, r)
            first_anchor.setdefault(r["id"], a)
            items.append(_item(r, a, blocking))
        rs = [r for _, r in rows]
        features.append({"name": name, "anchor": f"feature-{fi + 1}", "entries": items, "counts": _counts(rs),
                         "worst": _worst(rs), "total": len(rs)})
    by_id = {r["id"]: r for r in results}
    blocking_rows = [{"r": by_id[b], "anchor": first_anchor.get(b, "")}
                     for b in sorted(blocking_ids, key=lambda b: (-SEV_RANK.get(by_id.get(b, {}).get("severity", ""), 0), b))
                     if b in by_id]
    below = [{"r": r, "anchor": first_anchor.get(r["id"], "")} for r in sorted(results, key=lambda r: (-SEV_RANK.get(r["severity"], 0), r["id"]))
             if r["status"] in ("fail", "error") and r["id"] not in blocking]
    waived = [{"r": r, "anchor": first_anchor.get(r["id"], "")} for r in results if r["status"] == "waived"]
    attested = [{"r": r, "anchor": first_anchor.get(r["id"], "")} for r in results if r["status"] == "attested"]
    expired_hits = [{"r": r, "anchor": first_anchor.get(r["id"], "")} for r in results
                    if r.get("waiver") and not r["waiver"].get("matched", True)]
    run = doc.get("run", {})
    comparison = doc.get("comparison")
    sel = run.get("selection")
    skipped = sum(1 for r in results if r["status"] == "skip")
    return {
        "doc": doc,
        "go": verdict.get("decision") == "GO",
        "partial": verdict.get("decision") == "PASS-PARTIAL",
        "label": label(verdict),
        "ran": len(results) - skipped,
        "skipped": skipped,
        "attested": attested,
        "fail_on": fail_on,
        "matrix": _matrix(results, fail_on),
        "blocking": blocking_rows,
        "below": below,
        "waived": waived,
        "expired_hits": expired_hits,
        "features": features,
        "selection": (sel.get("reasons") if isinstance(sel, dict) and "reasons" in sel
                      else selection([str(a) for a in run.get("args", [])])),
        "comparison": comparison,
        "cmp_anchor": first_anchor,
        "statuses": STATUSES,
        "status_words": STATUS_WORDS,
        "status_meaning": STATUS_MEANING,
        "chart_svg": _chart_svg,
        "total": len(results),
    }


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'; "
            "base-uri 'none'; form-action 'none'")


def render_html(doc: dict[str, Any]) -> str:
    template = resources.files("reports").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    css = resources.files("reports").joinpath("templates/report.css").read_text(encoding="utf-8")
    return _env().from_string(template).render(css=Markup(css), script=Markup(PRINT_SCRIPT), csp=_csp(PRINT_SCRIPT),
                                               **view(doc))
