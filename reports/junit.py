"""junit.xml for CI systems: one testsuite per checklist (feature), one testcase per check.

The shape is the common one CI systems read (Jenkins, GitLab, GitHub test reporters, Azure):
``testsuites > testsuite[properties, testcase*] > testcase[failure|error|skipped, system-out]``,
and it validates against ``tests/golden/junit.xsd``.

- ``fail`` -> ``<failure>`` whose message says required vs measured, why, and the remediation;
- ``error`` (could not verify) -> ``<error type="could-not-verify">``;
- ``skip`` -> ``<skipped>`` with the reason; ``waived`` -> ``<skipped type="waived">`` naming
  the approver and expiry (an accepted failure does not fail the CI job; the gate's exit
  code decides that);
- the evidence, in words, goes to ``<system-out>``.

Per-check properties (severity, requirement) are written into the text, not as testcase
``<properties>``, which the Jenkins and Ant schemas do not allow there.  Output is
deterministic for a given report.json.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

MAX_DATA_CHARS = 1500
SEV_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
# XML 1.0 cannot carry most control characters, even escaped; probes' raw output can contain them
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(s: Any) -> str:
    return _INVALID_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(s))


def _seconds(r: dict[str, Any]) -> float:
    return sum(float(ev.get("duration_s") or 0) for ev in r.get("evidence") or [])


def _timestamp(iso: str) -> str:
    """ISO 8601 without zone or fraction (the Ant schema's pattern); the run is in UTC."""
    return iso[:19] if len(iso) >= 19 else iso


def _blocking(r: dict[str, Any], fail_on: str) -> bool:
    return r["status"] in ("fail", "error") and SEV_RANK.get(r["severity"], 0) >= SEV_RANK.get(fail_on, 3)


def _message(r: dict[str, Any], fail_on: str) -> str:
    parts = [f"required {r.get('expected', '')}", f"measured {r.get('measured', '')}"]
    if r.get("reason"):
        parts.append(r["reason"])
    msg = "; ".join(parts)
    if r["status"] in ("fail", "error"):
        gate = "blocks go-live" if _blocking(r, fail_on) else f"does not block (below --fail-on {fail_on})"
        msg = f"[{r['severity']}, {gate}] {msg}"
    if r.get("remediation") and r["status"] in ("fail", "error", "waived"):
        msg += f"; remediation: {r['remediation']}"
    return msg


def _details(r: dict[str, Any], fail_on: str) -> str:
    """The check in words, for system-out: what, required vs measured, where from, evidence."""
    lines = [f"{r.get('scenario') or r['id']}  [{r['id']}]",
             f"feature: {r.get('feature', '')}",
             f"status: {r['status'].upper()} (severity {r['severity']}"
             + ("; blocks go-live" if _blocking(r, fail_on) else "") + ")",
             f"required: {r.get('expected', '')}",
             f"measured: {r.get('measured', '')}"]
    if r.get("reason"):
        lines.append(f"reason: {r['reason']}")
    if r.get("remediation"):
        lines.append(f"remediation: {r['remediation']}")
    req = r.get("requirement") or {}
    if req.get("ids"):
        lines.append(f"requirement: {', '.join(req['ids'])}"
                     + (f" (from {', '.join(req.get('sources') or [])})" if req.get("sources") else ""))
        lines += [f"  {q}" for q in req.get("quotes") or []]
    w = r.get("waiver")
    if w:
        state = "EXPIRED (does not waive)" if not w.get("matched", True) else "applied"
        lines.append(f"waiver {state}: {w.get('id')} approved by {w.get('approver')} until {w.get('expires')}: "
                     f"{w.get('reason')}")
    evidence = r.get("evidence") or []
    for i, ev in enumerate(evidence, 1):
        lines.append(f"evidence {i}/{len(evidence)}:")
        lines.append(f"  probe: {ev.get('probe', '')}")
        lines.append(f"  subject: {ev.get('subject', '')}")
        lines.append(f"  method: {ev.get('method', '')}")
        if ev.get("tool"):
            lines.append(f"  tool: {ev['tool']}")
        took = f" ({float(ev['duration_s']):.3f} s)" if ev.get("duration_s") is not None else ""
        lines.append(f"  measured at: {ev.get('measured_at', '')}{took}")
        if ev.get("raw"):
            lines.append("  raw:")
            lines += [f"    {line}" for line in str(ev["raw"]).splitlines()]
        if ev.get("data"):
            data = json.dumps(ev["data"], ensure_ascii=False, separators=(",", ":"))
            if len(data) > MAX_DATA_CHARS:
                data = data[:MAX_DATA_CHARS] + f"... ({len(data)} characters; the full data is in report.json)"
            lines.append("  data: " + data)
    if not evidence:
        lines.append("evidence: none (nothing was measured)")
    if r.get("nodeid"):
        lines.append(f"checked by: {r['nodeid']} from {r.get('started_at', '')} to {r.get('finished_at', '')}")
    return xml_text("\n".join(lines) + "\n")


def render_junit(doc: dict[str, Any]) -> str:
    results: list[dict[str, Any]] = doc["results"]
    verdict = doc.get("verdict", {})
    fail_on = verdict.get("fail_on", "high")
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_feature.setdefault(r.get("feature") or "golive", []).append(r)
    profile, target, run = doc.get("profile", {}), doc.get("target", {}), doc.get("run", {})
    root = ET.Element("testsuites", name=xml_text(f"golive {profile.get('name')} on {target.get('name')}: "
                                                  f"{verdict.get('decision')}"))
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for n, feature in enumerate(sorted(by_feature)):
        rs = sorted(by_feature[feature], key=lambda r: r["id"])
        counts = {"tests": len(rs), "failures": sum(r["status"] == "fail" for r in rs),
                  "errors": sum(r["status"] == "error" for r in rs),
                  "skipped": sum(r["status"] in ("skip", "waived") for r in rs)}
        t = sum(_seconds(r) for r in rs)
        total_time += t
        for k in totals:
            totals[k] += counts[k]
        attrs = {"name": xml_text(feature), **{k: str(v) for k, v in counts.items()}, "time": f"{t:.3f}"}
        stamp = _timestamp(str(run.get("started_at") or ""))
        if _TIMESTAMP.fullmatch(stamp):
            attrs["timestamp"] = stamp
        attrs.update(hostname=xml_text(run.get("checking_host") or ""), id=str(n), package="golive")
        suite = ET.SubElement(root, "testsuite", attrs)
        props = ET.SubElement(suite, "properties")
        for name, value in (("profile", profile.get("name")), ("profile_sha256", profile.get("sha256")),
                            ("target", target.get("name")), ("verdict", verdict.get("decision")),
                            ("fail_on", fail_on), ("operator", run.get("operator")),
                            ("golive_version", doc.get("golive", {}).get("version")),
                            ("golive_git_sha", doc.get("golive", {}).get("git_sha")),
                            ("results_sha256", doc.get("integrity", {}).get("results_sha256"))):
            ET.SubElement(props, "property", name=name, value=xml_text(value if value is not None else ""))
        for r in rs:
            case = ET.SubElement(suite, "testcase", name=xml_text(r["id"]), classname=xml_text(f"golive.{feature}"),
                                 time=f"{_seconds(r):.3f}")
            msg = xml_text(_message(r, fail_on))
            if r["status"] == "fail":
                ET.SubElement(case, "failure", message=msg, type=r["severity"]).text = msg
            elif r["status"] == "error":
                ET.SubElement(case, "error", message=msg, type="could-not-verify").text = msg
            elif r["status"] == "skip":
                ET.SubElement(case, "skipped", message=xml_text(r.get("reason") or "skipped"), type="skip")
            elif r["status"] == "waived":
                w = r.get("waiver") or {}
                ET.SubElement(case, "skipped", type="waived",
                              message=xml_text(f"WAIVED by {w.get('approver')} until {w.get('expires')}: "
                                               f"{w.get('reason')} ({_message(r, fail_on)})"))
            ET.SubElement(case, "system-out").text = _details(r, fail_on)
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
