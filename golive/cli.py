"""``golive`` command: helpers around a run (the run itself is ``pytest --profile ...``).

    golive verify REPORT.json     recompute the integrity digests; exit 0 intact, 1 altered
    golive profiles               list the profiles with their descriptions
    golive check-config --profile P [--target T] [--waivers W]
                                  validate files without running anything; exit 4 on error
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from golive.profile import list_profiles, load_profile
from golive.report import verify
from golive.target import load_target
from golive.waivers import Waivers
from golive.yamlpos import ConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="golive", description="golive helpers; run checks with `pytest --profile NAME --target NAME`")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check that a report.json was not altered")
    v.add_argument("report", type=Path)
    sub.add_parser("profiles", help="list profiles")
    c = sub.add_parser("check-config", help="validate a profile, target and waiver file")
    c.add_argument("--profile", required=True)
    c.add_argument("--target", default="lab")
    c.add_argument("--waivers")
    args = ap.parse_args(argv)
    if args.cmd == "verify":
        try:
            doc = json.loads(args.report.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"golive verify: cannot read {args.report}: {exc}", file=sys.stderr)
            return 4
        ok, msg = verify(doc)
        print(f"{args.report}: {msg}")
        return 0 if ok else 1
    if args.cmd == "profiles":
        for name, desc, parent in list_profiles():
            print(f"{name:<24} {desc}" + (f"  [extends {parent}]" if parent else ""))
        return 0
    try:
        prof = load_profile(args.profile)
        tgt = load_target(args.target)
        if args.waivers:
            Waivers.load(args.waivers)
    except ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    print(f"ok: profile {prof.name} (sha256 {prof.sha256[:12]}, from {' <- '.join(prof.files)}), target {tgt.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
