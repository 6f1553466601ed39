"""The one-screen summary printed at the end of a run (and by ``golive summary``).

GO or NO-GO first with the reason and the gate, then the counts, then what blocks (each
with required vs measured and what to do), then what does not block, waivers that need
attention, the comparison with a previous run, and where the report is.  At most about 30
lines whatever the number of checks: the report has the rest.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

Style = dict[str, bool]
Line = tuple[str, Style]

STATUSES = ("pass", "attested", "fail", "error", "waived", "skip")
SEV_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
MAX_BLOCKING = 6
MAX_OTHER = 3
WIDTH = 160


def _cut(text: str, width: int = WIDTH) -> str:
    """One line of at most ``width`` characters (line breaks in measured values become spaces)."""
    text = str(text).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _versus(r: dict[str, Any]) -> str:
    """``required X; measured Y; reason`` in the words that fit the status."""
    parts = [] if r.get("expected") in ("", "n/a", None) else [f"required {r['expected']}"]
    if r["status"] == "error":
        parts.append(f"could not verify: {r.get('reason') or 'no reason given'}")
    else:
        parts.append(f"measured {r['measured']}")
        if r.get("reason"):
            parts.append(r["reason"])
    return "; ".join(parts)


def summary_lines(verdict: dict[str, Any], results: list[dict[str, Any]], run_dir: Path | None,
                  doc: dict[str, Any] | None = None) -> list[Line]:
    """Lines with TerminalReporter markup (``green``/``red``/``yellow``/``bold``).

    ``doc`` (the report document) adds the profile, waivers, comparison and signature lines.
    """
    from golive.verdict import label

    go = verdict["decision"] == "GO"
    partial = verdict["decision"] == "PASS-PARTIAL"
    fail_on = verdict.get("fail_on", "high")
    out: list[Line] = []
    if go:
        head = "GO - may go live"
    elif partial:
        head = f"{label(verdict)} - not a go-live verdict, the whole profile did not run"
    else:
        head = "NO-GO - must not go live"
    style: Style = {"green": go, "red": not (go or partial), "bold": True}
    if partial:
        style["yellow"] = True
    out.append((f"{head}: {verdict['reason']}", style))
    if doc is not None:
        scope = (f"  {doc.get('profile', {}).get('name')} requirements on target {doc.get('target', {}).get('name')}; "
                 f"gate: --fail-on {fail_on} (a failed or unverifiable check of severity {fail_on}"
                 f"{'' if fail_on == 'critical' else ' or higher'} blocks)")
        out.append((scope, {}))
    else:
        out.append((f"  gate: --fail-on {fail_on}", {}))
    counts = {s: sum(1 for r in results if r["status"] == s) for s in STATUSES}
    words = {"pass": "passed", "attested": "attested", "fail": "failed", "error": "could not be verified",
             "waived": "waived", "skip": "skipped"}
    ran = len(results) - counts["skip"]
    out.append((f"  {ran} ran: " + ", ".join(f"{counts[s]} {words[s]}" for s in STATUSES
                                             if s != "skip" and (counts[s] or s != "attested"))
                + f"; {counts['skip']} skipped", {}))
    if not verdict.get("complete", True):
        out.append(("  the run was interrupted: not every check ran", {"red": True}))

    by_id = {r["id"]: r for r in results}
    blocking = sorted((by_id[b] for b in verdict.get("blocking", []) if b in by_id),
                      key=lambda r: (-SEV_RANK.get(r["severity"], 0), r["id"]))
    if blocking:
        out.append((f"  blocking ({len(blocking)}):", {"red": True, "bold": True}))
        for r in blocking[:MAX_BLOCKING]:
            out += _finding(r, red=True)
        if len(blocking) > MAX_BLOCKING:
            out.append((f"    ... and {len(blocking) - MAX_BLOCKING} more blocking in the report", {"red": True}))
    below = sorted((r for r in results if r["status"] in ("fail", "error") and r["id"] not in set(verdict.get("blocking", []))),
                   key=lambda r: (-SEV_RANK.get(r["severity"], 0), r["id"]))
    if below:
        out.append((f"  not blocking (below --fail-on {fail_on}): {len(below)}", {"yellow": True}))
        for r in below[:MAX_OTHER]:
            out.append((_cut(f"    {r['status'].upper():5} {r['severity']:<8} {r['id']}: {_versus(r)}"), {"yellow": True}))
        if len(below) > MAX_OTHER:
            out.append((f"    ... and {len(below) - MAX_OTHER} more in the report", {}))

    if doc is not None:
        out += _waiver_lines(doc.get("waivers", {}), results)
        cmp = doc.get("comparison")
        if cmp:
            c = cmp["counts"]
            prev = cmp.get("previous", {})
            style = {"red": True} if c["newly_failing"] else {}
            since = (f"  since {prev.get('started_at')} ({prev.get('decision')}): {c['newly_failing']} newly failing, "
                     f"{c['fixed']} fixed, {c['measurement_changed']} changed measurements, {c['added']} new, "
                     f"{c['removed']} removed")
            out.append((since, style))
            for r in cmp.get("newly_failing", [])[:MAX_OTHER]:
                out.append((_cut(f"    newly {str(r['new_status']).upper()}: {r['id']} "
                                 f"(was {str(r['old_status']).upper()}, {r['old_measured']} -> {r['new_measured']})"),
                            {"red": True}))
    if run_dir is not None:
        out.append((f"  report:  {run_dir / 'report.html'}", {"bold": True}))
        signed = doc is not None and "signature" in doc
        out.append((f"  data:    {run_dir / 'report.json'}" + ("  (+ report.json.sig)" if signed else "")
                    + f"  junit: {run_dir / 'junit.xml'}", {}))
    return out


def _finding(r: dict[str, Any], red: bool) -> list[Line]:
    style: Style = {"red": red}
    lines = [(_cut(f"    {r['status'].upper():5} {r['severity']:<8} {r['id']}"
                   + (f"  ({r['scenario']})" if r.get("scenario") not in (None, "", r["id"]) else "")),
              {**style, "bold": True}),
             (_cut(f"          {_versus(r)}"), style)]
    if r.get("remediation"):
        lines.append((_cut(f"          fix: {r['remediation']}"), {}))
    return lines


def _waiver_lines(w: dict[str, Any], results: list[dict[str, Any]]) -> list[Line]:
    applied, expired = w.get("applied", []), w.get("expired", [])
    unmatched = w.get("unused", w.get("unmatched", []))
    if not (applied or expired or unmatched):
        return []
    waived = sum(1 for r in results if r["status"] == "waived")
    parts = [f"{len(applied)} applied ({waived} check{'' if waived == 1 else 's'} waived)"]
    if expired:
        parts.append(f"{len(expired)} EXPIRED ({', '.join(e['key'] for e in expired[:3])}"
                     + (", ..." if len(expired) > 3 else "") + ")")
    if unmatched:
        parts.append(f"{len(unmatched)} unused (changed no result)")
    return [("  waivers: " + ", ".join(parts), {"yellow": bool(expired)})]


def render_text(doc: dict[str, Any], run_dir: Path | None = None) -> str:
    """The summary as plain text (for ``golive summary`` and tests)."""
    return "\n".join(line for line, _ in summary_lines(doc["verdict"], doc["results"], run_dir, doc)) + "\n"
