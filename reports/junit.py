"""junit.xml for CI systems: one testsuite per feature, one testcase per result.

Failures carry expected vs measured and the remediation; evidence goes to system-out.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any


def _seconds(r: dict[str, Any]) -> float:
    total = 0.0
    for ev in r.get("evidence", []):
        total += float(ev.get("duration_s") or 0)
    return total


def render_junit(doc: dict[str, Any]) -> str:
    by_feature: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in doc["results"]:
        by_feature[r.get("feature") or "golive"].append(r)
    root = ET.Element("testsuites", name=f"golive {doc['profile']['name']} on {doc['target']['name']}",
                      tests=str(len(doc["results"])))
    totals = {"failures": 0, "errors": 0, "skipped": 0}
    for feature, results in by_feature.items():
        counts = {"failures": sum(r["status"] == "fail" for r in results),
                  "errors": sum(r["status"] == "error" for r in results),
                  "skipped": sum(r["status"] == "skip" for r in results)}
        for k, v in counts.items():
            totals[k] += v
        suite = ET.SubElement(root, "testsuite", name=feature, tests=str(len(results)),
                              timestamp=doc["run"]["started_at"].rstrip("Z"), hostname=doc["run"]["checking_host"],
                              time=f"{sum(_seconds(r) for r in results):.3f}",
                              **{k: str(v) for k, v in counts.items()})
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"golive.{feature}", name=f"{r['id']}",
                                 time=f"{_seconds(r):.3f}")
            text = f"expected {r['expected']}; measured {r['measured']}"
            if r.get("reason"):
                text += f"; {r['reason']}"
            if r["status"] == "fail":
                msg = text + (f"; remediation: {r['remediation']}" if r.get("remediation") else "")
                ET.SubElement(case, "failure", message=msg, type=r["severity"]).text = msg
            elif r["status"] == "error":
                ET.SubElement(case, "error", message=text, type="could-not-verify").text = text
            elif r["status"] == "skip":
                ET.SubElement(case, "skipped", message=r.get("reason") or "skipped")
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="severity", value=r["severity"])
            ET.SubElement(props, "property", name="status", value=r["status"])
            ET.SubElement(props, "property", name="requirement", value=",".join(r["requirement"]["ids"]))
            if r.get("waiver"):
                w = r["waiver"]
                ET.SubElement(props, "property", name="waiver",
                              value=f"{w['approver']} until {w['expires']}: {w['reason']}")
            ET.SubElement(case, "system-out").text = json.dumps(r.get("evidence", []), indent=1, ensure_ascii=False)
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
