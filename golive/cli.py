"""``golive`` command: helpers around a run (the run itself is ``pytest --profile ...``).

    golive verify REPORT.json [--pubkey PUB.pem] [--sig FILE]
                                  recompute the integrity digests (and check the detached
                                  signature); exit 0 intact, 1 altered or bad signature, 4 unreadable
    golive diff OLD.json NEW.json [--json]
                                  newly failing, fixed, changed measurements, new/removed checks;
                                  exit 0, or 1 when something is newly failing, 4 unreadable
    golive summary REPORT.json    the one-screen verdict summary of a finished run
    golive render REPORT.json [--out DIR]
                                  re-render report.html and junit.xml from a report.json
    golive keygen KEY.pem         make an Ed25519 key pair for --sign-key (KEY.pem, KEY.pub.pem)
    golive profiles               list the profiles with their descriptions
    golive checks [--json] [FAMILY ...]
                                  every declared check: id, severity, catalogue ids, what it
                                  measures, whether it is disruptive
    golive check-config --profile P [--target T] [--waivers W]
                                  validate files without running anything; exit 4 on error
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from golive.profile import list_profiles, load_profile
from golive.report import ReportError, load, verify
from golive.target import load_target
from golive.waivers import Waivers
from golive.yamlpos import ConfigError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="golive",
                                 description="golive helpers; run checks with `pytest --profile NAME --target NAME`")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check that a report.json was not altered (and its signature)")
    v.add_argument("report", type=Path)
    v.add_argument("--pubkey", type=Path, metavar="PUB.pem",
                   help="Ed25519 public key (PEM): also check the detached signature REPORT.json.sig")
    v.add_argument("--sig", type=Path, metavar="FILE", help="signature file (default: REPORT.json.sig)")
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
    c.add_argument("--waivers")
    return ap


def _err(msg: str) -> None:
    print(f"golive: {msg}", file=sys.stderr)


def cmd_verify(report: Path, pubkey_path: Path | None, sig: Path | None) -> int:
    try:
        doc = load(report)
    except ReportError as exc:
        _err(f"verify: {exc}")
        return 4
    ok, msg = verify(doc)
    print(f"{report}: {msg}")
    from golive.signing import SigningError, load_public_key, sig_path_for, verify_signature

    sig = sig or sig_path_for(report)
    if pubkey_path is None:
        if sig.exists():
            print(f"{sig}: signature present, not checked (give --pubkey PUB.pem to check it)")
        return 0 if ok else 1
    try:
        key = load_public_key(pubkey_path)
    except SigningError as exc:
        _err(f"verify: {exc}")
        return 4
    sig_ok, sig_msg = verify_signature(report, key, sig)
    print(f"{sig}: {sig_msg}")
    return 0 if ok and sig_ok else 1


def cmd_diff(old_path: Path, new_path: Path, as_json: bool) -> int:
    from golive.diff import compare, format_text

    try:
        old, new = load(old_path), load(new_path)
    except ReportError as exc:
        _err(f"diff: {exc}")
        return 4
    cmp = compare(old, new, str(old_path))
    if as_json:
        print(json.dumps(cmp, indent=2, ensure_ascii=False))
    else:
        for line in format_text(cmp, str(old_path), str(new_path)):
            print(line)
        new_ok, new_msg = verify(new)
        if not new_ok:
            print(f"note: {new_path}: {new_msg}")
    return 1 if cmp["counts"]["newly_failing"] else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "verify":
        return cmd_verify(args.report, args.pubkey, args.sig)
    if args.cmd == "diff":
        return cmd_diff(args.old, args.new, args.json)
    if args.cmd in ("summary", "render"):
        try:
            doc = load(args.report)
        except ReportError as exc:
            _err(f"{args.cmd}: {exc}")
            return 4
        if args.cmd == "summary":
            from reports.terminal import render_text

            sys.stdout.write(render_text(doc, args.report.parent))
            return 0 if doc["verdict"].get("decision") == "GO" else 1
        from reports import render_outputs

        out = args.out or args.report.parent
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


def _list_checks(names: list[str], *, as_json: bool) -> int:
    from golive import registry

    try:
        fams = [registry.load(n) for n in names] if names else registry.families()
    except registry.RegistryError as exc:
        _err(f"checks: {exc}")
        return 4
    rows = [{"id": c.id, "family": f.name, "title": c.title, "severity": c.severity.value, "refs": list(c.refs),
             "measures": c.measures, "disruptive": c.disruptive, "feature": f"features/{f.feature}"}
            for f in fams for c in f.checks]
    if as_json:
        print(json.dumps({"schema": "golive-checks/1", "checks": rows}, indent=2))
        return 0
    for r in rows:
        refs = ",".join(r["refs"]) or "-"
        print(f"{r['id']:<34} {r['severity']:<8} {refs:<28} {r['measures']}" + ("  [disruptive]" if r["disruptive"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
