"""Command line: ``python -m lab start [--system S] [--variant V] [--workdir D]``,
``python -m lab variants [--system S]`` and ``python -m lab compose [--broken]``.

``start`` starts the lab (``--system``: a system lab of lab/systems/, default ``oz``), prints
the target overrides (YAML) that point golive at it, and runs until Ctrl-C (or SIGTERM),
then stops every component.  ``variants`` lists each system's variants with a one-line
description each.  ``compose`` starts a private Docker Engine with the
compliant Compose project (and with ``--broken`` the one whose services each break one rule),
prints the target's ``containers:`` fragment for each, and runs until Ctrl-C (root only).
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


def _cmd_variants(system: str | None) -> int:
    from lab import systems

    chosen = [systems.parse_system(system)] if system else list(systems.SYSTEMS)
    for i, name in enumerate(chosen):
        rows = describe_variants() if name == "oz" else systems.describe_variants(name)
        if len(chosen) > 1:
            print(("\n" if i else "") + f"# system {name}: {systems.module(name).DESCRIPTION}")
        width = max(len(v) for v, _ in rows)
        for v, description in rows:
            print(f"{v:<{width}}  {description}")
    return 0


def _cmd_start_system(args: argparse.Namespace) -> int:
    from lab import systems
    from lab.run import REPO_ROOT

    variant = systems.parse_variant(args.system, args.variant)
    workdir = Path(args.workdir) if args.workdir else REPO_ROOT / ".lab" / f"{args.system}-{variant}"
    if workdir.exists() and not args.workdir:
        import shutil

        shutil.rmtree(workdir)  # the default folder is the lab's own (under .lab/)
    lab = systems.start(args.system, workdir, variant)
    try:
        print(f"# golive {args.system} lab {variant!r} in {lab.workdir}; Ctrl-C stops it")
        print(_dump(lab.target_overrides()), flush=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("# stopping", file=sys.stderr)
    finally:
        lab.stop()
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    from golive import signals
    from lab.run import REPO_ROOT, start_lab

    signals.install()  # SIGTERM/SIGHUP stop the lab (finally below) like Ctrl-C
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


def _cmd_compose(args: argparse.Namespace) -> int:
    import tempfile

    from lab import compose_lab
    from lab.docker_engine import running_engine

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="golive-compose-"))
    with running_engine() as engine:
        projects = [compose_lab.start_compliant(engine, workdir / "compliant")]
        if args.broken:
            projects.append(compose_lab.start_broken(engine, workdir / "broken"))
        try:
            print(f"# golive Compose lab: engine {engine.host} (DOCKER_HOST for docker / docker-compose)")
            for p in projects:
                print(f"# project {p.name} in {p.directory}")
                print(_dump({"containers": p.target_fragment()}), flush=True)
            print("# Ctrl-C stops the engine and removes everything it made", flush=True)
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            print("# stopping", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="golive's reference deployment")
    sub = parser.add_subparsers(dest="cmd", required=True)
    start = sub.add_parser("start", help="start the lab, print target overrides, run until Ctrl-C")
    start.add_argument("--system", default="oz", help="the system lab (lab/systems/): oz, docusnap or docusnap_compose")
    start.add_argument("--variant", default="compliant", help="see `python -m lab variants`")
    start.add_argument("--workdir", help="run folder (default: <repo>/.lab/<variant>)")
    start.add_argument("--cost-ms", type=float, default=50.0, help="CPU cost of one analysis")
    start.add_argument("--instances", type=int, default=None, help="inference instances (default: the variant's)")
    start.add_argument("--backup-interval-s", type=float, default=3600.0)
    variants = sub.add_parser("variants", help="list the variants of each system lab")
    variants.add_argument("--system", help="only this system's variants")
    compose = sub.add_parser("compose", help="a private Docker Engine with the Compose lab projects, until Ctrl-C")
    compose.add_argument("--broken", action="store_true", help="also the project with one broken rule per service")
    compose.add_argument("--workdir", help="folder for the Compose files (default: a new temporary folder)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "variants":
            return _cmd_variants(args.system)
        if args.cmd == "compose":
            return _cmd_compose(args)
        if args.system != "oz":
            return _cmd_start_system(args)
        return _cmd_start(args)
    except (LabError, ValueError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
