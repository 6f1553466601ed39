"""Report rendering: golden files, JUnit schema, self-contained accessible HTML, charts, the
terminal summary, the gate, diffs and signatures.

Golden files: ``tests/golden/report.json`` is a fixed report document; ``report.html`` and
``junit.xml`` next to it are what the renderers must produce from it, byte for byte (the
renderers are deterministic; nothing is normalised).  After an intended change, rewrite them
with ``GOLIVE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_reports.py`` and review the diff.
"""
from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from golive.diff import compare, format_text
from golive.model import Severity
from golive.report import build, document_digest, results_digest, verify
from golive.verdict import decide_dicts
from reports import render_outputs, write_run
from reports.charts import axis, charts_for, fmt, histogram, outages, timeline
from reports.html import render_html, selection
from reports.junit import render_junit
from reports.terminal import render_text, summary_lines

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("GOLIVE_UPDATE_GOLDEN") == "1"


def golden_doc() -> dict[str, Any]:
    return json.loads((GOLDEN / "report.json").read_text(encoding="utf-8"))


def _golive(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "golive.cli", *args], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                                 f"golden/{name}", "rendered", n=2))[:80])
        pytest.fail(f"{name} differs from the golden file (GOLIVE_UPDATE_GOLDEN=1 rewrites it after an intended "
                    f"change):\n{diff}")


# ----------------------------------------------------------------------------- golden files

def test_golden_report_is_intact() -> None:
    ok, msg = verify(golden_doc())
    assert ok, msg


def test_golden_html() -> None:
    _check_golden("report.html", render_html(golden_doc()))


def test_golden_junit() -> None:
    _check_golden("junit.xml", render_junit(golden_doc()))


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    doc = golden_doc()
    render_outputs(tmp_path / "a", doc)
    render_outputs(tmp_path / "b", json.loads(json.dumps(doc)))
    for name in ("report.html", "junit.xml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ----------------------------------------------------------------------------- JUnit

def _xsd_validate(xml_text: str) -> None:
    etree = pytest.importorskip("lxml.etree", reason="lxml is in the [dev] extra: pip install -e '.[dev]'")
    schema = etree.XMLSchema(etree.parse(str(GOLDEN / "junit.xsd")))
    doc = etree.fromstring(xml_text.encode("utf-8"))
    if not schema.validate(doc):
        pytest.fail("junit.xml does not validate against tests/golden/junit.xsd:\n" + str(schema.error_log))


def test_junit_validates_against_the_schema() -> None:
    _xsd_validate(render_junit(golden_doc()))


def test_junit_carries_remediation_and_evidence() -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(render_junit(golden_doc()))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    cpu = cases["hosts.cpu_cores[app-1]"]
    failure = cpu.find("failure")
    assert failure is not None and failure.get("type") == "high"
    msg = failure.get("message") or ""
    assert ">= 16 vCPU" in msg and "8 vCPU" in msg and "remediation: give app-1 at least 16 vCPU" in msg
    out = cpu.findtext("system-out") or ""
    assert "method: nproc; LC_ALL=C lscpu" in out and "OZ-HL-HW-01" in out and "measured at: 2026-03-02T09:00:01.210Z" in out
    err = cases["tls.hsts[api.example.com:443]"].find("error")
    assert err is not None and err.get("type") == "could-not-verify" and "timeout" in (err.get("message") or "")
    waived = cases["hosts.memory[app-1]"].find("skipped")
    assert waived is not None and waived.get("type") == "waived" and "J. Doe" in (waived.get("message") or "")
    below = cases["tls.cert_days_left[api.example.com:443]"].find("failure")
    assert below is not None and "does not block (below --fail-on high)" in (below.get("message") or "")
    assert root.get("tests") == "10" and root.get("failures") == "3" and root.get("errors") == "1"


def test_junit_survives_control_characters_in_evidence() -> None:
    doc = golden_doc()
    doc["results"][0]["evidence"][0]["raw"] = "bell\x07 nul\x00 esc\x1b[0m ok"
    doc["results"][0]["measured"] = "8 vCPU\x0c"
    text = render_junit(doc)
    _xsd_validate(text)
    assert "\\x07" in text and "\\x00" in text


# ----------------------------------------------------------------------------- HTML

class _Page(HTMLParser):
    """Collects what the accessibility and self-containment checks need."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.labelledby: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tables = 0
        self.tables_with_th = 0
        self._table_depth: list[bool] = []
        self.svgs = 0
        self.svg_titles = 0
        self.svg_descs = 0
        self.landmarks: set[str] = set()
        self.headings: list[int] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.csp = ""
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
        if "aria-labelledby" in a:
            self.labelledby += a["aria-labelledby"].split()
        for key in ("src", "href", "action", "data", "poster", "srcset"):
            if key in a:
                self.urls.append((tag, key, a[key]))
        if tag == "link":
            self.urls.append((tag, "rel", a.get("rel", "")))
        if tag == "table":
            self.tables += 1
            self._table_depth.append(False)
        if tag == "th" and self._table_depth:
            self._table_depth[-1] = True
        if tag == "svg":
            self.svgs += 1
        if tag in ("header", "nav", "main", "footer"):
            self.landmarks.add(tag)
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        if tag == "meta" and a.get("http-equiv", "").lower() == "content-security-policy":
            self.csp = a.get("content", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table_depth:
            self.tables_with_th += self._table_depth.pop()
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
        self.text.append(data)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.svg_titles = len(re.findall(r"<svg[^>]*>\s*<title id=", html))
    page.svg_descs = len(re.findall(r"</title>\s*<desc id=", html))
    return page


def test_html_is_self_contained_and_locked_down() -> None:
    html = render_html(golden_doc())
    page = _parse(html)
    external = [u for u in page.urls if not u[2].startswith("#")]
    assert not external, f"the report must not reference anything outside itself: {external}"
    assert "@import" not in html and "url(" not in html
    # the CSP forbids every fetch; the one inline script is allowed by its hash only
    assert "default-src 'none'" in page.csp and "connect-src" not in page.csp
    assert len(page.scripts) == 1
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in page.csp


def test_html_structure_is_accessible() -> None:
    html = render_html(golden_doc())
    page = _parse(html)
    assert len(page.ids) == len(set(page.ids)), [i for i in page.ids if page.ids.count(i) > 1]
    missing = sorted(set(page.labelledby) - set(page.ids))
    assert not missing, f"aria-labelledby points at ids that do not exist: {missing}"
    assert {"header", "nav", "main", "footer"} <= page.landmarks
    assert page.headings[0] == 1 and page.headings.count(1) == 1
    jumps = [(a, b) for a, b in zip(page.headings, page.headings[1:], strict=False) if b > a + 1]
    assert not jumps, f"heading levels skip: {jumps}"
    assert page.tables == page.tables_with_th, "every table has header cells"
    assert page.svgs == 4 and page.svg_titles == 4 and page.svg_descs == 4
    assert 'lang="en"' in html and 'class="skiplink" href="#verdict"' in html


def test_html_reads_verdict_first_with_counts_by_status_and_severity() -> None:
    html = render_html(golden_doc())
    main = html[html.index("<main"):]
    assert main.index('id="verdict"') < main.index('id="run"') < main.index('id="checklists"')
    verdict = main[: main.index('id="comparison"')]
    assert ">NO-GO<" in verdict and "Must not go live." in verdict
    assert "2 failed and 1 could not be verified at or above severity &#39;high&#39;" in verdict
    # the severity x status table: critical row has its failure marked as blocking
    assert re.search(r"<th scope=\"row\">critical <span class=\"note\">\(gated\)</span></th>"
                     r"<td class=\"num\">2</td><td class=\"num\">0</td><td class=\"num blocking\">1</td>", verdict)
    # blocking table: critical first, with required, measured and what to do
    block = verdict[verdict.index('id="blocking-h"'):]
    assert block.index("ha.failover[api.example.com]") < block.index("hosts.cpu_cores[app-1]")
    assert "lower the health-check interval" in block


def test_html_items_show_requirement_quote_evidence_folded_and_waivers() -> None:
    html = render_html(golden_doc())
    item = html[html.index('<article class="item fail" id="check-hosts.cpu_cores-app-1"'):]
    item = item[: item.index("</article>")]
    assert "OZ-HL-HW-01" in item and "004_37a6818de433c15c.txt" in item and "16 CPU/32 RAM" in item
    assert "<details class=\"evidence\">" in item and "<details class=\"evidence\" open" not in item
    assert "What to do:</strong> give app-1 at least 16 vCPU" in item
    waived = html[html.index('<article class="item waived"'):]
    waived = waived[: waived.index("</article>")]
    assert "15.6 GiB" in waived and "J. Doe, Head of Operations" in waived and "2026-06-30" in waived
    expired = html[html.index('id="check-tls.cert_days_left-api.example.com-443"'):]
    assert "Waiver EXPIRED on 2026-02-28" in expired[: expired.index("</article>")]
    waivers = html[html.index('id="waivers"'):]
    for heading in ("Applied (1)", "Expired (1)", "Unused (1)", "Waived checks and what they measured (1)",
                    "Checks whose waiver has expired (1)"):
        assert heading in waivers


def test_html_escapes_target_output() -> None:
    html = render_html(golden_doc())
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;quoted&#34;" in html


def test_html_comparison_section() -> None:
    html = render_html(golden_doc())
    cmp = html[html.index('id="comparison"'):html.index('id="run"')]
    assert "Newly failing (2)" in cmp and "Fixed (1)" in cmp and "Checks no longer run (1)" in cmp
    assert "6.0 s without service" in cmp and "12.5 s without service" in cmp
    doc = golden_doc()
    del doc["comparison"]
    assert 'id="comparison"' not in render_html(doc)


def test_html_renders_a_minimal_document() -> None:
    """Older or hand-made documents with missing optional fields still render."""
    doc = {"schema": "golive-report/1", "verdict": {"decision": "NO-GO", "reason": "no check ran: nothing was verified"},
           "results": [{"id": "x.y", "status": "error"}]}
    html = render_html(doc)
    assert "NO-GO" in html and "x.y" in html
    _xsd_validate(render_junit(normalised(doc)))


def normalised(doc: dict[str, Any]) -> dict[str, Any]:
    from reports.html import normalise

    return normalise(doc)


def test_selection_is_reported_as_partial_run() -> None:
    assert selection(["--profile", "poc", "-m", "tls and critical", "-k", "cpu"]) == [
        "-m 'tls and critical' (marker expression)", "-k 'cpu' (name expression)"]
    assert selection(["--profile", "poc", "--target=lab", "-p", "no:cacheprovider", "-n", "4"]) == []
    assert selection(["suites/test_tls.py::test_x", "--lf"]) == ["suites/test_tls.py::test_x (only this test location)",
                                                                 "--lf (last failed only)"]
    doc = golden_doc()
    doc["run"]["args"] = ["--profile", "high-load", "-m", "tls"]
    assert "Partial run:" in render_html(doc)


# ----------------------------------------------------------------------------- charts

def test_chart_numbers_and_axes() -> None:
    assert [fmt(x) for x in (3.0, 12.345, 0.1234, 1234.5, 2.5)] == ["3", "12.3", "0.123", "1234", "2.5"]
    assert axis(58, integers=True) == (60.0, 20.0)
    assert axis(380, integers=True) == (400.0, 100.0)
    assert axis(1235) == (1500.0, 500.0)
    assert axis(3, integers=True) == (3.0, 1.0)


def test_histogram_summary_gives_quantiles() -> None:
    ch = histogram("h", [[100, 50], [200, 45], [500, 4], ["inf", 1]])
    assert "100 requests" in ch.summary and "half took ≤ 100 ms" in ch.summary
    assert "95 % took ≤ 200 ms" in ch.summary and "99 % took ≤ 500 ms" in ch.summary
    assert ch.rows[-1] == ("> 500 ms", "1")
    assert "<title id=\"h-t\">" in ch.svg and "<desc id=\"h-d\">" in ch.svg


def test_timeline_finds_the_outage() -> None:
    probes = [{"t": t, "ok": not (3 <= t < 7), "latency_ms": 10} for t in range(10)]
    assert outages([(float(p["t"]), bool(p["ok"]), 10.0) for p in probes]) == [(3.0, 7.0, 4)]
    ch = timeline("t", probes, [{"t": 2.5, "label": "stop a"}])
    assert "Longest outage 4 s: first failed probe at 3 s, first successful probe after it at 7 s" in ch.summary
    assert "stop a at 2.5 s" in ch.summary
    never = timeline("t", [{"t": 0, "ok": True, "latency_ms": 5}, {"t": 1, "ok": False}])
    assert "did not recover" in never.summary


def test_bad_chart_data_is_a_note_not_a_crash() -> None:
    r = {"id": "x", "data": {"histogram_ms": [["fast", 3]], "series": "nope", "timeline": [{"t": "x"}]}}
    charts, notes = charts_for(r, "c")
    assert charts == [] and len(notes) == 3
    assert charts_for({"id": "y", "data": {"histogram_ms": [], "series": []}}, "c") == ([], [])
    doc = golden_doc()
    doc["results"][0]["data"] = r["data"]
    assert "could not be drawn" in render_html(doc)


# ----------------------------------------------------------------------------- gate and terminal summary

def _result(rid: str, status: str, severity: str, **kw: Any) -> dict[str, Any]:
    return {"id": rid, "status": status, "severity": severity, "expected": kw.get("expected", ">= 2"),
            "measured": kw.get("measured", "1"), "reason": kw.get("reason", ""), "remediation": kw.get("remediation", ""),
            "scenario": kw.get("scenario", rid), "feature": kw.get("feature", "F"), "evidence": [],
            "requirement": {"ids": [], "sources": [], "quotes": []}, "waiver": None, "data": {}}


@pytest.mark.parametrize("severity,fail_on,decision", [
    ("high", "high", "NO-GO"), ("critical", "high", "NO-GO"), ("medium", "high", "GO"),
    ("medium", "medium", "NO-GO"), ("low", "medium", "GO"), ("high", "critical", "GO"), ("low", "low", "NO-GO"),
])
@pytest.mark.parametrize("status", ["fail", "error"])
def test_gate_counts_errors_like_failures(status: str, severity: str, fail_on: str, decision: str) -> None:
    results = [_result("a.ok", "pass", "critical"), _result("b.bad", status, severity)]
    v = decide_dicts(results, Severity(fail_on))
    assert v.decision == decision
    assert (v.blocking == ("b.bad",)) == (decision == "NO-GO")


def _doc(results: list[dict[str, Any]], fail_on: str = "high") -> dict[str, Any]:
    meta = {"golive": {"version": "0.1.0", "git_sha": "abc"},
            "run": {"started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z",
                    "operator": "op", "checking_host": "h", "args": [], "allow_disruptive": False},
            "profile": {"name": "poc", "sha256": "0" * 64, "files": [], "source": [], "notes": []},
            "target": {"name": "lab"}}
    waivers: dict[str, Any] = {"source": [], "applied": [], "expired": [], "unmatched": []}
    return build(meta, decide_dicts(results, Severity(fail_on)).to_dict(), results, waivers)


def test_terminal_summary_go() -> None:
    doc = _doc([_result("a.one", "pass", "critical"), _result("b.two", "fail", "low", measured="3 days",
                                                               expected=">= 7 days")])
    text = render_text(doc, Path("/r"))
    lines = text.splitlines()
    assert lines[0] == "GO - may go live: no failure or error at or above severity 'high'"
    assert "2 ran: 1 passed, 1 failed, 0 could not be verified, 0 waived; 0 skipped" in text
    assert "not blocking (below --fail-on high): 1" in text and "required >= 7 days; measured 3 days" in text
    assert "blocking (" not in text.replace("not blocking", "")
    assert "report:  /r/report.html" in text
    styled = summary_lines(doc["verdict"], doc["results"], Path("/r"), doc)
    assert styled[0][1] == {"green": True, "red": False, "bold": True}


def test_terminal_summary_no_go_fits_one_screen() -> None:
    results = [_result(f"hosts.cpu[{i:02d}]", "fail", "high", expected=">= 16 vCPU", measured="8 vCPU",
                       remediation="add cores") for i in range(40)]
    results.append(_result("tls.hsts", "error", "critical", expected="HSTS", measured="could not measure",
                           reason="timeout after 10 s"))
    doc = _doc(results)
    text = render_text(doc, Path("/r"))
    lines = text.splitlines()
    assert lines[0].startswith("NO-GO - must not go live: 40 failed and 1 could not be verified")
    assert len(lines) <= 30, text
    # most severe first, with required vs measured and the fix
    assert lines[4].split() == ["ERROR", "critical", "tls.hsts"]
    assert "required HSTS; could not verify: timeout after 10 s" in lines[5]
    assert "required >= 16 vCPU; measured 8 vCPU" in text and "fix: add cores" in text
    assert "... and 35 more blocking in the report" in text
    styled = summary_lines(doc["verdict"], doc["results"], Path("/r"), doc)
    assert styled[0][1]["red"] and not styled[0][1]["green"]


def test_terminal_summary_mentions_waivers_and_comparison() -> None:
    text = render_text(golden_doc(), Path("/r"))
    assert "waivers: 1 applied (1 check waived), 1 EXPIRED (tls.cert_days_left[*]), 1 unused (changed no result)" in text
    assert "2 newly failing, 1 fixed" in text and "newly FAIL: ha.failover[api.example.com]" in text
    assert "(+ report.json.sig)" in text


# ----------------------------------------------------------------------------- integrity, diff

def test_verify_rejects_a_recomputed_forgery_whose_verdict_does_not_follow() -> None:
    doc = golden_doc()
    doc["verdict"]["decision"] = "GO"
    doc["integrity"]["results_sha256"] = results_digest(doc["results"])
    doc["integrity"]["document_sha256"] = document_digest(doc)
    ok, msg = verify(doc)
    assert not ok and msg.startswith("INCONSISTENT: the report says GO but its results give NO-GO")


def test_compare_classifies_changes() -> None:
    new = golden_doc()
    old = copy.deepcopy(new)
    del old["comparison"]
    by = {r["id"]: r for r in old["results"]}
    by["hosts.cpu_cores[app-1]"].update(status="pass", measured="16 vCPU")   # now failing
    by["tls.hsts[api.example.com:443]"].update(status="fail")                 # fail -> error: not "newly failing"
    by["hosts.cpu_cores[bio-1]"].update(status="error")                       # fixed
    by["throughput.apm[inference]"]["measured"] = "90 APM"                    # measurement changed
    old["results"] = [r for r in old["results"] if not r["id"].startswith("ports.")]
    old["results"].append(_result("old.gone", "pass", "low"))
    c = compare(old, new, "old.json")
    ids = {k: [r["id"] for r in c[k]] for k in ("newly_failing", "fixed", "status_changed", "measurement_changed",
                                                 "added", "removed")}
    assert ids == {"newly_failing": ["hosts.cpu_cores[app-1]"], "fixed": ["hosts.cpu_cores[bio-1]"],
                   "status_changed": ["tls.hsts[api.example.com:443]"],
                   "measurement_changed": ["throughput.apm[inference]"],
                   "added": ["ports.closed[10.0.0.11:5432]"], "removed": ["old.gone"]}
    assert c["previous"]["intact"] is False  # we edited it without recomputing the digests
    text = "\n".join(format_text(c, "old.json", "new.json"))
    assert "Newly failing (1):\n  PASS -> FAIL [high] hosts.cpu_cores[app-1]: measured 16 vCPU -> 8 vCPU" in text
    assert "measured 90 APM -> 112 APM, p95 1240 ms, 0.5 % errors" in text


def test_golive_diff_cli(tmp_path: Path) -> None:
    new = golden_doc()
    old = copy.deepcopy(new)
    for r in old["results"]:
        if r["id"] == "hosts.cpu_cores[app-1]":
            r.update(status="pass", measured="16 vCPU")
    (tmp_path / "altered.json").write_text(json.dumps(old))
    altered = _golive("diff", str(tmp_path / "altered.json"), str(GOLDEN / "report.json"))
    assert altered.returncode == 4 and "ALTERED" in altered.stderr and "refusing" in altered.stderr, altered.stderr
    verdict = decide_dicts(old["results"], Severity.HIGH).to_dict()
    old = build({k: old[k] for k in ("golive", "run", "profile", "target")}, verdict, old["results"], old["waivers"])
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    p = _golive("diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Newly failing (1):" in p.stdout and "hosts.cpu_cores[app-1]" in p.stdout
    same = _golive("diff", str(tmp_path / "new.json"), str(tmp_path / "new.json"), "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["counts"]["unchanged"] == 10
    missing = _golive("diff", str(tmp_path / "nope.json"), str(tmp_path / "new.json"))
    assert missing.returncode == 4 and "no such file" in missing.stderr


def test_write_run_with_compare_and_signature(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from golive.signing import verify_signature

    src = golden_doc()
    key = Ed25519PrivateKey.generate()
    meta = {k: src[k] for k in ("golive", "run", "profile", "target")}
    prev = _doc([_result("hosts.cpu_cores[app-1]", "pass", "high", measured="16 vCPU")])
    doc = write_run(tmp_path, meta, src["verdict"], src["results"], src["waivers"], previous=prev,
                    previous_path="prev.json", sign_key=key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "manifest.json", "manifest.json.sig", "report.html",
                                                         "report.json", "report.json.sig"]
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == doc and verify(on_disk)[0]
    assert on_disk["comparison"]["counts"]["newly_failing"] == 1
    assert on_disk["signature"]["algorithm"] == "ed25519"
    ok, msg = verify_signature(tmp_path / "report.json", key.public_key())
    assert ok, msg
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    for f in tmp_path.iterdir():
        data = f.read_bytes()
        for secret in (raw, raw.hex().encode(), base64.b64encode(raw), pem, pem.splitlines()[1]):
            assert secret not in data, f"private key material in {f.name}"
    assert "Changes since the previous run" in (tmp_path / "report.html").read_text()


def test_a_failing_renderer_leaves_the_record_and_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reports

    def boom(doc: dict[str, Any]) -> str:
        raise RuntimeError("template exploded")

    monkeypatch.setattr(reports, "render_html", boom)
    src = golden_doc()
    write_run(tmp_path, {k: src[k] for k in ("golive", "run", "profile", "target")}, src["verdict"], src["results"],
              src["waivers"])
    assert verify(json.loads((tmp_path / "report.json").read_text()))[0]
    html = (tmp_path / "report.html").read_text()
    assert "NO-GO" in html and "template exploded" in html and "golive render report.json" in html


def test_golive_render_and_summary_cli(tmp_path: Path) -> None:
    p = _golive("render", str(GOLDEN / "report.json"), "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "report.html").read_text() == render_html(golden_doc())
    s = _golive("summary", str(GOLDEN / "report.json"))
    assert s.returncode == 1 and s.stdout.startswith("NO-GO - must not go live")
