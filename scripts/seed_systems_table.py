"""Regenerate the system x family table of docs/seed-systems.md from real runs.

    .venv/bin/python scripts/seed_systems_table.py --run          # run every built seed lab, then write
    .venv/bin/python scripts/seed_systems_table.py R1/report.json  # from report.json files of earlier runs

``--run`` runs ``pytest --profile P --target T --allow-disruptive`` for each seed system
whose lab is built (:data:`SYSTEMS`), in a temporary report folder, and reads each run's
report.json.  A cell says, for one family, how many checks passed and which did not (with
the measured value).  A system with no report is marked "not built yet".  The table is
written between the markers in docs/seed-systems.md, with the date, machine and golive
commit of each run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "seed-systems.md"
START = "<!-- seed-systems-table:start (scripts/seed_systems_table.py writes this) -->"
END = "<!-- seed-systems-table:end -->"
#: Families in the table, in the order of the catalogue (a family no row ran is left out).
FAMILIES = ("hosts", "ports", "tls", "http", "cors", "auth", "services", "release", "datastores", "backups",
            "monitoring", "ha", "throughput", "kubernetes", "containers")


@dataclass(frozen=True)
class SeedSystem:
    name: str
    mode: str
    profile: str
    target: str | None  # None: no lab yet


SYSTEMS: tuple[SeedSystem, ...] = (
    SeedSystem("DocuSnap-Backend", "single-server", "docusnap-single-server", "lab-docusnap"),
    SeedSystem("DocuSnap-Backend", "containerized (Compose)", "docusnap-containerized", "lab-docusnap-compose"),
    SeedSystem("ALwrity", "multi-user", "alwrity-multi-user", "lab-alwrity"),
    SeedSystem("Vocabulo", "Compose", "vocabulo", "lab-vocabulo"),
    SeedSystem("STRV", "minimum", "strv-minimum", "lab-strv"),
    SeedSystem("Oz", "PoC (Compose)", "poc", "lab-oz"),
    SeedSystem("Oz", "Medium Load (Compose, HA)", "medium-load", "lab-oz-medium"),
)


def run_lab(system: SeedSystem, report_root: Path) -> Path:
    """Run golive on the system's lab; the path of its report.json."""
    assert system.target is not None
    out = report_root / system.target
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--report-dir={out}",
           "--profile", system.profile, "--target", system.target, "--allow-disruptive"]
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    reports = sorted(out.glob("*/report.json"))
    if not reports:
        raise SystemExit(f"seed_systems_table: the run of {system.target} wrote no report.json ({' '.join(cmd)})")
    return reports[-1]


def _short(text: str, limit: int = 48) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def family_cells(report: dict[str, Any]) -> dict[str, str]:
    """Family -> table cell: ``pass 12`` when every judged check passed, else the counts
    and each check that did not pass with its status and measured value."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    for r in report.get("results", []):
        by_family.setdefault(r["id"].split(".", 1)[0], []).append(r)
    cells: dict[str, str] = {}
    for family, results in by_family.items():
        judged = [r for r in results if r["status"] != "skip"]
        if not judged:
            cells[family] = "skip"
            continue
        bad = [r for r in judged if r["status"] != "pass"]
        passed = len(judged) - len(bad)
        if not bad:
            cells[family] = f"pass {passed}"
            continue
        worst = "FAIL" if any(r["status"] == "fail" for r in bad) else "ERROR"
        # checks that did not pass for the same reason are one item: "a, b error: why"
        groups: dict[tuple[str, str], list[str]] = {}
        for r in bad:
            check = r["id"].split(".", 1)[1].split("[", 1)[0]
            what = r["measurement"]["display"] if r["status"] == "fail" else (r.get("reason") or r["measured"])
            groups.setdefault((r["status"], _short(what)), []).append(check)
        shown = [f"{', '.join(checks) if len(checks) <= 2 else f'{len(checks)} checks'} {status}: {what}"
                 for (status, what), checks in groups.items()]
        cells[family] = f"{worst} ({passed} pass, {len(bad)} not): " + "; ".join(shown)
    return cells


def render(reports: dict[str, dict[str, Any]]) -> str:
    """The Markdown table (and its provenance lines) for ``reports`` (target name -> report)."""
    cells = {t: family_cells(r) for t, r in reports.items()}
    used = [f for f in FAMILIES if any(c.get(f, "skip") != "skip" for c in cells.values())]
    head = "| system | mode | profile | lab target | verdict | " + " | ".join(used) + " |"
    rule = "| " + " | ".join(["---"] * (5 + len(used))) + " |"
    rows = [head, rule]
    provenance = []
    for s in SYSTEMS:
        report = reports.get(s.target or "")
        if report is None:
            rows.append(f"| {s.name} | {s.mode} | {s.profile} | not built yet | - | "
                        + " | ".join(["not built yet"] * len(used)) + " |")
            continue
        verdict = report.get("verdict", {}).get("decision", "?")
        row = cells[s.target or ""]
        rows.append(f"| {s.name} | {s.mode} | {s.profile} | {s.target} | {verdict} | "
                    + " | ".join(row.get(f, "-") for f in used) + " |")
        run, golive = report.get("run", {}), report.get("golive", {})
        provenance.append(f"- {s.target}: run {run.get('started_at', '?')} on {run.get('checking_host', '?')} "
                          f"({run.get('platform', '?')}), golive {golive.get('version', '?')} "
                          f"{str(golive.get('git_sha', '?'))[:12]}, {report.get('verdict', {}).get('counts', {})}")
    left_out = [f for f in FAMILIES if f not in used]
    note = f"\n\nNot in the table (no profile above names them): {', '.join(left_out)}." if left_out else ""
    return "\n".join(rows) + note + "\n\nFrom these runs:\n\n" + "\n".join(provenance) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/seed_systems_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="*", type=Path, help="report.json files of seed-lab runs")
    parser.add_argument("--run", action="store_true", help="run every built seed lab first")
    args = parser.parse_args(argv)
    if not args.run and not args.reports:
        parser.error("give report.json files or --run")
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="golive-seed-table-") as tmp:
        paths = list(args.reports)
        if args.run:
            paths += [run_lab(s, Path(tmp)) for s in SYSTEMS if s.target]
        for path in paths:
            report = json.loads(path.read_text())
            reports[str(report["target"]["name"])] = report
    table = render(reports)
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"seed_systems_table: {DOC} has no table markers ({START} ... {END})")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n{table}{END}{after}")
    print(f"wrote the table of {len(reports)} run(s) into {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
