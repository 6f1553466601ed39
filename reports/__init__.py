"""Rendering of a run: report.json (the source of truth), report.html and junit.xml.

All three are rendered from the same result dictionaries and written atomically into the
run folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from golive.report import atomic_write, build
from reports.html import render_html
from reports.junit import render_junit


def write_run(run_dir: Path, meta: dict[str, Any], verdict: dict[str, Any], results: list[dict[str, Any]],
              waivers: dict[str, Any]) -> dict[str, Any]:
    """Write report.json, report.html and junit.xml; return the report document."""
    doc = build(meta, verdict, results, waivers)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "report.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    atomic_write(run_dir / "junit.xml", render_junit(doc))
    atomic_write(run_dir / "report.html", render_html(doc))
    return doc
