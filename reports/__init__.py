"""Rendering of a run: report.json (the source of truth), report.html and junit.xml.

All are rendered from the same report document and written atomically into the run folder;
report.json (and its detached signature, when a key is given) is written first, so a
rendering problem can never cost the record of the run.
"""
from __future__ import annotations

import json
import sys
from html import escape as _escape  # (the name `html` is this package's submodule)
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from golive.redact import redact_obj
from golive.report import atomic_write, build
from reports.html import render_html
from reports.junit import render_junit

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def write_run(run_dir: Path, meta: dict[str, Any], verdict: dict[str, Any], results: list[dict[str, Any]],
              waivers: dict[str, Any], *, previous: dict[str, Any] | None = None, previous_path: str = "",
              sign_key: Ed25519PrivateKey | None = None, attestations: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write report.json (+ report.json.sig), junit.xml, report.html and last manifest.json
    (+ manifest.json.sig) over them all; return the document.

    ``previous``: an earlier report document to compare with (``--compare``);
    ``sign_key``: the operator's Ed25519 key (``--sign-key``); only the signatures are written;
    ``attestations``: the attestation summary (:meth:`golive.attestations.Attestations.summary`).
    """
    # the last line of defence: every registered secret value is masked in everything written
    meta, verdict, waivers = (cast("dict[str, Any]", redact_obj(x)) for x in (meta, verdict, waivers))
    results = cast("list[dict[str, Any]]", redact_obj(results))
    comparison = None
    if previous is not None:
        from golive.diff import compare

        comparison = compare(previous, {**meta, "verdict": verdict, "results": results}, previous_path)
    signature = None
    if sign_key is not None:
        from golive.signing import signature_info

        signature = signature_info(sign_key)
    doc = build(meta, verdict, results, waivers, comparison=comparison, signature=signature,
                attestations=attestations)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    atomic_write(run_dir / "report.json", text)
    if sign_key is not None:
        from golive.signing import sig_path_for, sign_bytes

        atomic_write(sig_path_for(run_dir / "report.json"), sign_bytes(text.encode("utf-8"), sign_key))
    render_outputs(run_dir, doc)
    from golive.manifest import write_manifest

    write_manifest(run_dir, doc, sign_key)
    return doc


def render_outputs(run_dir: Path, doc: dict[str, Any]) -> None:
    """junit.xml and report.html from ``doc``.  A renderer that fails leaves a short file
    that says so (and points at report.json) instead of aborting the run."""
    for name, render in (("junit.xml", render_junit), ("report.html", render_html)):
        try:
            out = render(doc)
        except Exception as exc:
            print(f"golive: could not render {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            out = _fallback(name, doc, exc)
        atomic_write(run_dir / name, out)


def _fallback(name: str, doc: dict[str, Any], exc: Exception) -> str:
    verdict = doc.get("verdict", {})
    msg = f"{name} could not be rendered ({type(exc).__name__}: {exc}); report.json holds the full record"
    if name.endswith(".xml"):
        from xml.sax.saxutils import quoteattr

        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="golive" tests="1" failures="0" errors="1">\n'
                f'  <testsuite name="golive" tests="1" failures="0" errors="1">\n'
                f'    <testcase classname="golive" name="render"><error message={quoteattr(msg)} type="render"/></testcase>\n'
                f'  </testsuite>\n</testsuites>\n')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>golive {_escape(str(verdict.get("decision")))}'
            f'</title></head><body><main><h1>Verdict: {_escape(str(verdict.get("decision")))}</h1>'
            f'<p>{_escape(str(verdict.get("reason")))}</p><p>{_escape(msg)}. Re-render with '
            f'<code>golive render report.json</code>.</p></main></body></html>\n')
