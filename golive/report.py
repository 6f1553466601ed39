"""report.json: the source of truth of a run (schema ``golive-report/2``; ``/1`` is still read).

``/2`` adds, to each result, ``measurement``: the measured value as data with its unit
beside the display text (``{"value": 8, "unit": "vCPU", "display": "8 vCPU"}``), so tools
(``golive diff``, tests, an auditor's scripts) compare values, not strings.  ``measured``
keeps the display text, as in ``/1``.

Every other output (HTML, JUnit, terminal summary, diff) is rendered from this document.
``integrity.results_sha256`` is a SHA-256 over the canonical JSON of the results, so an
altered result is detectable (``golive verify``).  Files are written atomically: a reader
sees the old file or the whole new one, never half of one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = "golive-report/2"
READABLE = ("golive-report/1", SCHEMA)


def measurement_of(result: dict[str, Any]) -> dict[str, Any]:
    """A result's measurement as data, from a /2 result, or from a /1 one (display only)."""
    m = result.get("measurement")
    if isinstance(m, dict):
        return m
    return {"value": None, "unit": "", "display": result.get("measured", "")}


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def results_digest(results: list[dict[str, Any]]) -> str:
    return hashlib.sha256(canonical(results)).hexdigest()


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def build(meta: dict[str, Any], verdict: dict[str, Any], results: list[dict[str, Any]],
          waivers: dict[str, Any], *, comparison: dict[str, Any] | None = None,
          signature: dict[str, str] | None = None, attestations: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report document.  ``comparison`` (from :func:`golive.diff.compare`) and
    ``signature`` (which key signs the file, see :mod:`golive.signing`) are optional and,
    when given, covered by ``document_sha256`` like everything else."""
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        **meta,
        "verdict": verdict,
        "results": results,
        "waivers": waivers,
    }
    if attestations is not None:
        doc["attestations"] = attestations
    if comparison is not None:
        doc["comparison"] = comparison
    if signature is not None:
        doc["signature"] = signature
    doc["integrity"] = {"algorithm": "sha256", "canonical": "json, sorted keys, separators (',', ':'), utf-8",
                        "results_sha256": results_digest(results),
                        "document_sha256": document_digest(doc)}
    return doc


def document_digest(doc: dict[str, Any]) -> str:
    """SHA-256 over the whole document except its ``integrity`` block (so the verdict and
    metadata are covered too, not only the results)."""
    return hashlib.sha256(canonical({k: v for k, v in doc.items() if k != "integrity"})).hexdigest()


class ReportError(Exception):
    """A file that is not a readable report.json."""


def load(path: Path | str) -> dict[str, Any]:
    """Read a report.json; :class:`ReportError` with the reason when it is not one."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{p}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") not in READABLE:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ReportError(f"{p}: not a golive report ({' or '.join(READABLE)}; schema={found!r})")
    return doc


def verify(doc: dict[str, Any]) -> tuple[bool, str]:
    """Recompute the results digest; (ok, message)."""
    if doc.get("schema") not in READABLE:
        return False, f"not a golive report document (schema={doc.get('schema')!r})"
    stored = doc.get("integrity", {}).get("results_sha256")
    actual = results_digest(doc.get("results", []))
    if stored != actual:
        return False, f"ALTERED: results digest {actual} does not match the recorded {stored}"
    stored_doc = doc.get("integrity", {}).get("document_sha256")
    if stored_doc != document_digest(doc):
        return False, "ALTERED: the verdict or run metadata changed after the report was written"
    consistent, why = verdict_consistent(doc)
    if not consistent:
        return False, why
    return True, f"intact: {len(doc.get('results', []))} results, sha256 {actual}"


def verdict_consistent(doc: dict[str, Any]) -> tuple[bool, str]:
    """Does the recorded decision follow from the recorded results and gate?  (A forger who
    recomputes the digests must still keep the verdict honest, or sign with our key.)"""
    from golive.model import Severity
    from golive.verdict import decide_dicts

    v = doc.get("verdict", {})
    selection = (doc.get("run") or {}).get("selection")
    if isinstance(selection, dict) and selection.get("complete") is False and v.get("decision") == "GO":
        return False, "INCONSISTENT: the report says GO but its run recorded a partial selection"
    try:
        again = decide_dicts(doc.get("results", []), Severity(v.get("fail_on", "high")), bool(v.get("complete", True)),
                             v.get("partial"))
    except (KeyError, ValueError, TypeError) as exc:
        return False, f"INCONSISTENT: the results cannot be re-judged ({type(exc).__name__}: {exc})"
    if again.decision != v.get("decision"):
        return False, (f"INCONSISTENT: the report says {v.get('decision')} but its results give {again.decision} "
                       f"at --fail-on {again.fail_on.value}")
    return True, ""
