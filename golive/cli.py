"""``golive`` command: helpers around a run (the run itself is ``pytest --profile ...``).

    golive verify RUN_DIR|REPORT.json [--pubkey PUB.pem] [--require-signature]
                                  check the run folder: report.json's digests and verdict, every
                                  file against manifest.json, and (with --pubkey) its signature;
                                  exit 0 intact, 1 altered/unsigned, 4 unreadable (docs/reports.md)
    golive diff OLD.json NEW.json [--json]
                                  newly failing, fixed, changed measurements, new/removed checks;
                                  exit 0, or 1 when something is newly failing, 4 unreadable
    golive summary REPORT.json    the one-screen verdict summary of a finished run
    golive render REPORT.json [--out DIR]
                                  re-render report.html and junit.xml from a report.json
    (diff, summary and render refuse an altered report.json: exit 4)
    golive keygen KEY.pem         make an Ed25519 key pair for --sign-key (KEY.pem, KEY.pub.pem)
    golive profiles               list the profiles with their descriptions
    golive checks [--json] [FAMILY ...]
                                  every declared check: id, severity, catalogue ids, what it
                                  measures, whether it is disruptive
    golive check-config --profile P [--target T] [--waivers W] [--attestations A] [--hosts G] [--roles R]
                                  load exactly what a run loads (waivers.yaml and attestations.yaml
                                  next to the target included), report every problem; exit 4 on error
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from golive.manifest import MANIFEST, check_input, report_path
from golive.profile import list_profiles
from golive.report import ReportError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="golive",
                                 description="golive helpers; run checks with `pytest --profile NAME --target NAME`")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check that a run folder was not altered (and its signature)")
    v.add_argument("report", type=Path, metavar="RUN_DIR|REPORT.json")
    v.add_argument("--pubkey", type=Path, metavar="PUB.pem",
                   help="Ed25519 public key (PEM): also check the signature manifest.json.sig")
    v.add_argument("--require-signature", action="store_true",
                   help="fail unless the folder is signed and the signature checks with --pubkey (for gates)")
    d = sub.add_parser("diff", help="compare two runs: newly failing, fixed, changed measurements")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    d.add_argument("--json", action="store_true", help="print the comparison as JSON")
    s = sub.add_parser("summary", help="print the one-screen verdict summary of a report.json")
    s.add_argument("report", type=Path)
    r = sub.add_parser("render", help="re-render report.html and junit.xml from a report.json")
    r.add_argument("report", type=Path)
    r.add_argument("--out", type=Path, metavar="DIR", help="folder for the files (default: next to REPORT.json)")
    k = sub.add_parser("keygen", help="make an Ed25519 key pair for --sign-key")
    k.add_argument("key", type=Path, metavar="KEY.pem", help="private key to create (the public key is KEY.pub.pem)")
    sub.add_parser("profiles", help="list profiles")
    ck = sub.add_parser("checks", help="list every declared check (id, severity, requirement ids, what it measures)")
    ck.add_argument("families", nargs="*", metavar="FAMILY", help="only these families")
    ck.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    c = sub.add_parser("check-config", help="validate a profile, target and waiver file")
    c.add_argument("--profile", required=True)
    c.add_argument("--target", default="lab")
    c.add_argument("--waivers", help="waiver file (default: waivers.yaml next to the target file, as a run)")
    c.add_argument("--attestations", help="attestation file (default: attestations.yaml next to the target file)")
    c.add_argument("--hosts", default="", help="host-name globs, as a run's --hosts")
    c.add_argument("--roles", action="append", default=[], help="roles, as a run's --roles")
    return ap


def _err(msg: str) -> None:
    print(f"golive: {msg}", file=sys.stderr)


def cmd_verify(report: Path, pubkey_path: Path | None, require_signature: bool) -> int:
    from golive.manifest import verify_run
    from golive.signing import SigningError, load_public_key

    key = None
    if pubkey_path is not None:
        try:
            key = load_public_key(pubkey_path)
        except SigningError as exc:
            _err(f"verify: {exc}")
            return 4
    try:
        ok, lines = verify_run(report, key, require_signature)
    except ReportError as exc:
        _err(f"verify: {exc}")
        return 4
    for line in lines:
        print(line)
    print("VERIFIED" if ok else "NOT VERIFIED")
    return 0 if ok else 1


def cmd_diff(old_path: Path, new_path: Path, as_json: bool) -> int:
    from golive.diff import compare, format_text

    try:
        old, new = check_input(old_path), check_input(new_path)
    except ReportError as exc:
        _err(f"diff: {exc}")
        return 4
    cmp = compare(old, new, str(old_path))
    if as_json:
        print(json.dumps(cmp, indent=2, ensure_ascii=False))
    else:
        for line in format_text(cmp, str(old_path), str(new_path)):
            print(line)
    return 1 if cmp["counts"]["newly_failing"] else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "verify":
        return cmd_verify(args.report, args.pubkey, args.require_signature)
    if args.cmd == "diff":
        return cmd_diff(args.old, args.new, args.json)
    if args.cmd in ("summary", "render"):
        try:
            doc = check_input(args.report)
        except ReportError as exc:
            _err(f"{args.cmd}: {exc}")
            return 4
        rpath = report_path(args.report)
        if args.cmd == "summary":
            from reports.terminal import render_text

            sys.stdout.write(render_text(doc, rpath.parent))
            return 0 if doc["verdict"].get("decision") == "GO" else 1
        from reports import render_outputs

        out = args.out or rpath.parent
        if (out / MANIFEST).exists():
            _err(f"render: {out} is a sealed run folder ({MANIFEST} covers its report.html and junit.xml); "
                 "give --out DIR to render elsewhere")
            return 4
        out.mkdir(parents=True, exist_ok=True)
        render_outputs(out, doc)
        print(f"wrote {out / 'report.html'} and {out / 'junit.xml'}")
        return 0
    if args.cmd == "keygen":
        from golive.signing import generate

        try:
            priv, pub = generate(args.key)
        except FileExistsError:
            _err(f"keygen: {args.key} exists; not overwriting a key")
            return 4
        except OSError as exc:
            _err(f"keygen: {args.key}: {exc.strerror or exc}")
            return 4
        print(f"private key: {priv} (keep it secret; give it to --sign-key)\npublic key:  {pub} "
              "(give it to auditors: golive verify REPORT.json --pubkey ...)")
        return 0
    if args.cmd == "checks":
        return _list_checks(args.families, as_json=args.json)
    if args.cmd == "profiles":
        for name, desc, parent in list_profiles():
            print(f"{name:<24} {desc}" + (f"  [extends {parent}]" if parent else ""))
        return 0
    from golive.runconfig import ConfigErrors, load_run_config

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    roles = [r.strip() for v in args.roles for r in v.split(",") if r.strip()]
    try:
        rc = load_run_config(args.profile, args.target, args.waivers, args.attestations, hosts, roles)
    except ConfigErrors as exc:
        for e in exc.errors:
            print(f"ERROR: {e}", file=sys.stderr)
        print(f"{len(exc.errors)} problem{'s' if len(exc.errors) != 1 else ''} found", file=sys.stderr)
        return 4
    prof, tgt = rc.profile, rc.target
    print(f"ok: profile {prof.name} (sha256 {prof.sha256[:12]}, from {' <- '.join(prof.files)}), target {tgt.name}")
    for kind in ("waivers", "attestations"):
        if kind in rc.files:
            print(f"ok: {kind} {rc.files[kind]}")
    return 0


def _list_checks(names: list[str], *, as_json: bool) -> int:
    from golive import registry

    try:
        fams = [registry.load(n) for n in names] if names else registry.families()
    except registry.RegistryError as exc:
        _err(f"checks: {exc}")
        return 4
    rows: list[dict[str, Any]] = [{"id": c.id, "family": f.name, "title": c.title, "severity": c.severity.value, "refs": list(c.refs),
             "measures": c.measures, "disruptive": c.disruptive, "feature": f"features/{f.feature}"}
            for f in fams for c in f.checks]
    if as_json:
        print(json.dumps({"schema": "golive-checks/1", "checks": rows}, indent=2))
        return 0
    for r in rows:
        refs = ",".join(str(x) for x in r["refs"]) or "-"
        print(f"{r['id']:<34} {r['severity']:<8} {refs:<28} {r['measures']}" + ("  [disruptive]" if r["disruptive"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
