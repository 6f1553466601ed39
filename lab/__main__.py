"""Command line: ``python -m lab start [--variant V] [--workdir D]`` and ``python -m lab variants``.

``start`` starts the lab, prints the target overrides (YAML) that point golive at it, and
runs until Ctrl-C (or SIGTERM), then stops every component.  ``variants`` lists the variants
with a one-line description each.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lab.procs import LabError
from lab.variants import Variant, describe_variants


def _dump(data: dict[str, Any]) -> str:
    try:
        import yaml
    except ImportError:  # JSON is valid YAML
        return json.dumps(data, indent=2)
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def _cmd_variants() -> int:
    rows = describe_variants()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    from lab.run import REPO_ROOT, start_lab

    variant = Variant.parse(args.variant)
    workdir = Path(args.workdir) if args.workdir else REPO_ROOT / ".lab" / variant.key
    lab = start_lab(workdir, variant, cost_ms=args.cost_ms, instances=args.instances,
                    backup_interval_s=args.backup_interval_s)
    try:
        print(f"# golive lab {lab.variant!r} in {lab.workdir} (started in {lab.start_duration_s:.2f} s)")
        print(f"# ports: {lab.ports}; Ctrl-C stops it")
        print(_dump(lab.target_overrides()), flush=True)
        reported: set[str] = set()
        while True:
            time.sleep(1.0)
            for name, pids in lab.pids().items():
                if not pids and name not in reported:
                    reported.add(name)
                    print(f"# warning: {name} is no longer running (log in {lab.logs_dir})",
                          file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("# stopping", file=sys.stderr)
    finally:
        lab.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="golive's reference deployment")
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start the lab, print target overrides, run until Ctrl-C")
    start.add_argument("--variant", default="compliant", help="see `python -m lab variants`")
    start.add_argument("--workdir", help="run folder (default: <repo>/.lab/<variant>)")
    start.add_argument("--cost-ms", type=float, default=50.0, help="CPU cost of one analysis")
    start.add_argument("--instances", type=int, default=None, help="inference instances (default: the variant's)")
    start.add_argument("--backup-interval-s", type=float, default=3600.0)
    sub.add_parser("variants", help="list the variants")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "variants":
            return _cmd_variants()
        return _cmd_start(args)
    except (LabError, ValueError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
