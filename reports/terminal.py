"""The one-screen summary printed at the end of a run."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def summary_lines(verdict: dict[str, Any], results: list[dict[str, Any]], run_dir: Path) -> list[tuple[str, dict[str, bool]]]:
    go = verdict["decision"] == "GO"
    out: list[tuple[str, dict[str, bool]]] = []
    out.append((f"{verdict['decision']}: {verdict['reason']}", {"green": go, "red": not go, "bold": True}))
    counts = verdict["counts"]
    out.append(("  " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("pass", "fail", "error", "waived", "skip")), {}))
    blocking = set(verdict["blocking"])
    shown = [r for r in results if r["id"] in blocking][:15]
    for r in shown:
        line = f"  {r['status'].upper():5} [{r['severity']}] {r['id']}: expected {r['expected']}, measured {r['measured']}"
        if r.get("reason"):
            line += f" ({r['reason'][:120]})"
        out.append((line, {"red": True}))
    if len(blocking) > len(shown):
        out.append((f"  ... and {len(blocking) - len(shown)} more in the report", {}))
    out.append((f"  report: {run_dir / 'report.html'}", {}))
    out.append((f"          {run_dir / 'report.json'}  {run_dir / 'junit.xml'}", {}))
    return out
