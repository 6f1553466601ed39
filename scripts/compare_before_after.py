"""Run the lab before and after a change on the same variants and compare the results.

    .venv/bin/python scripts/compare_before_after.py [--before REF] [--variants a,b,...] [--profile P]

``--before`` (default: 39bd0b3, the last commit before checks became declarations) is
checked out into a temporary git worktree; both trees run ``pytest --profile P
--target=<lab variant>`` for each variant with this checkout's virtual environment (plugins
loaded explicitly, so each tree uses its own code). For every check that was measured
(pass, fail, error, waived) the script compares id, status and the measured display text;
skipped items are listed apart (their reasons and, for families now declared, their ids may
be worded differently). Exit 0 when everything measured is the same, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ("pass", "fail", "error", "waived")
DEFAULT_VARIANTS = "compliant,legacy_tls,expired_cert,cors_reflect,exposed_internal,single_instance,no_hsts"


def _norm(text: str) -> str:
    """Each lab run picks free ports, makes a new CA and certificates: compare with port
    numbers, the CA's random name and certificate times left out."""
    text = re.sub(r":\d{4,5}\b", ":PORT", text)
    text = re.sub(r"Testing CA #[\w-]+", "Testing CA #ID", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "TIME UTC", text)


def _run(tree: Path, profile: str, variant: str, tmp: Path, plugins: list[str], extra: list[str]) -> dict[str, Any]:
    target = tmp / f"{tree.name}-{variant}.yaml"
    target.write_text(f"name: lab-{variant}\nenvironment: lab\nlab: {{variant: {variant}}}\n")
    out = tmp / f"runs-{tree.name}-{variant}"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(tree)}
    env.pop("PYTEST_ADDOPTS", None)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    for p in plugins:
        args += ["-p", p]
    subprocess.run([*args, "--profile", profile, f"--target={target}", f"--report-dir={out}", *extra],
                   cwd=tree, env=env, capture_output=True, text=True, timeout=900, check=False)
    reports = sorted(out.glob("*/report.json"))
    if not reports:
        raise SystemExit(f"{tree}: no report for variant {variant}")
    return {_norm(r["id"]): {**r, "measured": _norm(r["measured"])}
            for r in json.loads(reports[-1].read_text())["results"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="39bd0b3")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--profile", default="poc")
    ap.add_argument("--allow-disruptive", action="store_true")
    args = ap.parse_args()
    extra = ["--allow-disruptive"] if args.allow_disruptive else []
    base = ["pytest_bdd.plugin", "testinfra.plugin", "xdist.plugin", "golive.plugin"]
    differences = 0
    with tempfile.TemporaryDirectory(prefix="golive-before-after-") as d:
        tmp = Path(d)
        before = tmp / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                       check=True, capture_output=True)
        try:
            for variant in args.variants.split(","):
                old = _run(before, args.profile, variant, tmp, base, extra)
                new = _run(ROOT, args.profile, variant, tmp, [*base, "lab.plugin"], extra)
                measured_old = {k: v for k, v in old.items() if v["status"] in MEASURED}
                measured_new = {k: v for k, v in new.items() if v["status"] in MEASURED}
                rows = []
                for key in sorted(set(measured_old) | set(measured_new)):
                    a, b = measured_old.get(key), measured_new.get(key)
                    if a is None or b is None:
                        rows.append(f"  {'only after ' if a is None else 'only before'} {key}")
                    elif (a["status"], a["measured"]) != (b["status"], b["measured"]):
                        rows.append(f"  {key}: {a['status']} '{a['measured']}' -> {b['status']} '{b['measured']}'")
                skipped = (len([v for v in old.values() if v["status"] == "skip"]),
                           len([v for v in new.values() if v["status"] == "skip"]))
                print(f"{variant}: {len(measured_new)} measured results, {len(rows)} differ; "
                      f"skipped {skipped[0]} before, {skipped[1]} after")
                for row in rows:
                    print(row)
                differences += len(rows)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                           check=False, capture_output=True)
    print("same check ids, statuses and measured values" if not differences else f"{differences} differences")
    return 0 if not differences else 1


if __name__ == "__main__":
    raise SystemExit(main())
