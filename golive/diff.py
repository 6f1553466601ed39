"""Comparing two runs: what is newly failing, what was fixed, which measurements moved.

``golive diff OLD.json NEW.json`` prints it; ``pytest ... --compare PREVIOUS.json`` puts the
same comparison into report.json under ``"comparison"`` and report.html renders it.

Results are matched by check id.  "Failing" means ``fail`` or ``error`` (an unverifiable
check is not compliant); ``waived`` and ``skip`` are neither failing nor fixed.
"""
from __future__ import annotations

from typing import Any

from golive.report import measurement_of, verify

BAD = ("fail", "error")
ORDER = ("newly_failing", "fixed", "status_changed", "measurement_changed", "added", "removed")
TITLES = {
    "newly_failing": "Newly failing",
    "fixed": "Fixed",
    "status_changed": "Other status changes",
    "measurement_changed": "Changed measurements (same status)",
    "added": "New checks",
    "removed": "Checks no longer run",
}


def _index(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Results by id; a repeated id gets ``#2``, ``#3`` so nothing is silently dropped."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        key, n = r["id"], 1
        while key in out:
            n += 1
            key = f"{r['id']}#{n}"
        out[key] = r
    return out


def _row(key: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    ref = new or old or {}
    return {
        "id": key,
        "severity": ref.get("severity", ""),
        "scenario": ref.get("scenario", ""),
        "old_status": old["status"] if old else None,
        "new_status": new["status"] if new else None,
        "old_expected": old.get("expected") if old else None,
        "new_expected": new.get("expected") if new else None,
        "old_measured": old.get("measured") if old else None,
        "new_measured": new.get("measured") if new else None,
        "old_value": measurement_of(old)["value"] if old else None,
        "new_value": measurement_of(new)["value"] if new else None,
        "reason": (new or {}).get("reason", ""),
    }


def _measured_differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Values are compared where both runs recorded them (report /2): 32.01 and 32.04 GiB
    differ even when both display as "32.0 GiB"; otherwise the display texts are."""
    ma, mb = measurement_of(a), measurement_of(b)
    if ma["value"] is not None and mb["value"] is not None:
        return bool(ma["value"] != mb["value"] or ma.get("unit") != mb.get("unit"))
    return bool(a.get("measured") != b.get("measured"))


def _run_info(doc: dict[str, Any]) -> dict[str, Any]:
    run = doc.get("run", {})
    prof = doc.get("profile", {})
    return {
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "profile": prof.get("name"),
        "profile_sha256": prof.get("sha256"),
        "target": doc.get("target", {}).get("name"),
        "decision": doc.get("verdict", {}).get("decision"),
        "golive_version": doc.get("golive", {}).get("version"),
        "results_sha256": doc.get("integrity", {}).get("results_sha256"),
    }


def compare(old: dict[str, Any], new: dict[str, Any], old_path: str = "") -> dict[str, Any]:
    """The comparison block: ``previous`` (which run, is it intact), the change lists, counts.

    ``new`` needs ``results`` (and ideally ``profile``/``target``/``verdict``); it does not
    need to be a finished document, so the plugin can compare before writing report.json.
    """
    o, n = _index(old.get("results", [])), _index(new.get("results", []))
    changes: dict[str, list[dict[str, Any]]] = {k: [] for k in ORDER}
    unchanged = 0
    for key in sorted(set(o) | set(n)):
        a, b = o.get(key), n.get(key)
        if a is None:
            changes["added"].append(_row(key, None, b))
        elif b is None:
            changes["removed"].append(_row(key, a, None))
        elif a["status"] != b["status"]:
            if b["status"] in BAD and a["status"] not in BAD:
                changes["newly_failing"].append(_row(key, a, b))
            elif a["status"] in (*BAD, "waived") and b["status"] == "pass":
                changes["fixed"].append(_row(key, a, b))
            else:
                changes["status_changed"].append(_row(key, a, b))
        elif _measured_differs(a, b) or a.get("expected") != b.get("expected"):
            changes["measurement_changed"].append(_row(key, a, b))
        else:
            unchanged += 1
    intact, message = verify(old)
    prev = {"file": old_path, **_run_info(old), "intact": intact, "integrity": message}
    cur = _run_info(new)
    return {
        "previous": prev,
        "same_profile": bool(prev["profile_sha256"]) and prev["profile_sha256"] == cur["profile_sha256"],
        "same_target": prev["target"] == cur["target"],
        "counts": {**{k: len(v) for k, v in changes.items()}, "unchanged": unchanged},
        **changes,
    }


def _status(s: str | None) -> str:
    return (s or "-").upper()


def format_text(cmp: dict[str, Any], old_label: str = "OLD", new_label: str = "NEW") -> list[str]:
    """``golive diff`` output: a heading, one block per non-empty change list, a last line."""
    prev = cmp["previous"]
    lines = [f"golive diff: {old_label} -> {new_label}"]
    lines.append(f"  old: {prev.get('started_at')}  profile {prev.get('profile')}  target {prev.get('target')}  "
                 f"verdict {prev.get('decision')}" + ("" if prev.get("intact", True) else f"  [{prev.get('integrity')}]"))
    if not cmp["same_profile"]:
        lines.append("  note: the profiles differ (sha256), so required values may differ too")
    if not cmp["same_target"]:
        lines.append("  note: the targets differ")
    for key in ORDER:
        rows = cmp[key]
        if not rows:
            continue
        lines.append("")
        lines.append(f"{TITLES[key]} ({len(rows)}):")
        for r in rows:
            if key in ("added", "removed"):
                st = r["new_status"] if key == "added" else r["old_status"]
                meas = r["new_measured"] if key == "added" else r["old_measured"]
                lines.append(f"  {_status(st):6} [{r['severity']}] {r['id']}: measured {meas}")
            elif key == "measurement_changed":
                lines.append(f"  {_status(r['new_status']):6} [{r['severity']}] {r['id']}: "
                             f"measured {r['old_measured']} -> {r['new_measured']}"
                             + (f" (expected {r['old_expected']} -> {r['new_expected']})"
                                if r["old_expected"] != r["new_expected"] else f" (expected {r['new_expected']})"))
            else:
                lines.append(f"  {_status(r['old_status'])} -> {_status(r['new_status'])} [{r['severity']}] {r['id']}: "
                             f"measured {r['old_measured']} -> {r['new_measured']} (expected {r['new_expected']})")
    c = cmp["counts"]
    lines.append("")
    lines.append(f"{c['newly_failing']} newly failing, {c['fixed']} fixed, {c['status_changed']} other status changes, "
                 f"{c['measurement_changed']} changed measurements, {c['added']} new, {c['removed']} removed, "
                 f"{c['unchanged']} unchanged")
    return lines
