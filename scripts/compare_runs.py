r"""Compare the results of two golive runs: same check ids, statuses and measured values?

    python scripts/compare_runs.py BEFORE/report.json AFTER/report.json [--prefix backups.]

Used when checks move (e.g. a family ported to declared checks): run the same profile and
target on the old and the new code, then compare.  Prints every id whose status or measured
display differs, and the ids only one run has; exit 0 when the runs agree, 1 otherwise.
Measured displays that carry timings or ages (a restore's duration, a backup's age in
seconds) differ between two runs by nature: ``--ignore-measured REGEX`` names the ids whose
measured text is not compared (their status still is).  Two lab runs differ in their
temporary folders, ports and timestamps: ``--normalize REGEX`` (repeatable) replaces what
the pattern matches with ``*`` in ids and measured texts before comparing, e.g.
``--normalize '/tmp/golive-lab-[a-z0-9_]+' --normalize '127\.0\.0\.1:[0-9]+'``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any


def _results(path: Path, prefix: str, normalize: list[re.Pattern[str]] | None = None) -> dict[str, dict[str, Any]]:
    def norm(text: str) -> str:
        for pattern in normalize or ():
            text = pattern.sub("*", text)
        return text

    report = json.loads(path.read_text(encoding="utf-8"))
    return {norm(r["id"]): {**r, "measured": norm(r["measured"])} for r in report.get("results", [])
            if r["id"].startswith(prefix)}


def differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                ignore_measured: re.Pattern[str] | None = None) -> list[str]:
    """What differs between two runs' results (one line each; empty when they agree)."""
    out = [f"only before: {i} ({before[i]['status']})" for i in sorted(set(before) - set(after))]
    out += [f"only after:  {i} ({after[i]['status']})" for i in sorted(set(after) - set(before))]
    for i in sorted(set(before) & set(after)):
        b, a = before[i], after[i]
        if b["status"] != a["status"]:
            out.append(f"status   {i}: {b['status']} -> {a['status']}")
        if b["measured"] != a["measured"] and not (ignore_measured and ignore_measured.search(i)):
            out.append(f"measured {i}: {b['measured']!r} -> {a['measured']!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--prefix", default="", help="compare only ids starting with this (e.g. 'backups.')")
    ap.add_argument("--ignore-measured", default=None, help="regex of ids whose measured text is not compared")
    ap.add_argument("--normalize", action="append", default=[], help="regex replaced by * in ids and measured texts")
    args = ap.parse_args(argv)
    patterns = [re.compile(p) for p in args.normalize]
    before, after = _results(args.before, args.prefix, patterns), _results(args.after, args.prefix, patterns)
    diff = differences(before, after, re.compile(args.ignore_measured) if args.ignore_measured else None)
    for line in diff:
        print(line)
    print(f"{len(before)} results before, {len(after)} after: " + ("same" if not diff else f"{len(diff)} differences"))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
