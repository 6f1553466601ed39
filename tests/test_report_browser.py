"""report.html in a real browser: headless Chromium opens the file (offline, no network) and
shows the verdict and a failing item; it also prints to PDF on several pages.

The screenshot and the PDF are kept under the test's tmp dir and their paths printed
(``pytest -s`` or the captured output of a failure shows them).  Skipped, with the reason,
only when Chromium is not installed (scripts/setup.sh installs the Debian package).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reports.html import render_html

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium'; "
                                                          "scripts/setup.sh installs it)")

# Measures, inside the page, whether the things an auditor must see are actually visible.
PROBE = """(function () {
  function seen(el) {
    if (!el) return {found: false};
    var r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {found: true, visible: el.checkVisibility(), top: Math.round(r.top), height: Math.round(r.height),
            width: Math.round(r.width), display: s.display, visibility: s.visibility, text: (el.innerText || el.textContent || '').trim().slice(0, 200)};
  }
  var out = {
    decision: seen(document.querySelector('.verdict .decision')),
    blocking: seen(document.querySelector('#blocking-h + table tbody tr')),
    failing_item: seen(document.querySelector('article.item.fail')),
    evidence_open: !!document.querySelector('article.item.fail details.evidence').open,
    evidence_text: seen(document.querySelector('article.item.fail details.evidence pre')),
    chart: seen(document.querySelector('figure.chart-fig svg')),
    scrollHeight: document.documentElement.scrollHeight
  };
  var pre = document.createElement('pre');
  pre.id = 'golive-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--disable-default-apps", f"--user-data-dir={tmp / 'profile'}",
           # belt and braces for "opens offline": no name resolves, so nothing could be fetched
           "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = json.loads((ROOT / "tests" / "golden" / "report.json").read_text(encoding="utf-8"))
    out = tmp_path_factory.mktemp("browser") / "report.html"
    out.write_text(render_html(doc), encoding="utf-8")
    return out


def test_chromium_shows_verdict_and_failing_item(rendered: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    p = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", rendered.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, p.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\nscreenshot of the rendered report: {shot}")

    dom = _chromium(tmp_path, "--dump-dom", rendered.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert re.search(r'<p class="decision">NO-GO</p>', html)
    assert "Must not go live." in html
    assert "Losing one instance interrupts service briefly" in html and "12.5 s without service" in html


def test_chromium_lays_out_verdict_first_and_folds_evidence(rendered: Path, tmp_path: Path) -> None:
    """The same page with a measuring script added (its hash joins the page's CSP, which
    otherwise forbids any script but the page's own)."""
    html = rendered.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(PROBE.encode()).digest()).decode()
    csp_at = html.index("script-src &#39;sha256-")  # the attribute's quotes are escaped in the page
    html = html[:csp_at] + f"script-src &#39;sha256-{digest}&#39; &#39;sha256-" + html[csp_at + 23:]
    html = html.replace("</body>", f"<script>{PROBE}</script>\n</body>", 1)
    page = tmp_path / "probe.html"
    page.write_text(html, encoding="utf-8")
    dom = _chromium(tmp_path, "--window-size=1280,2000", "--dump-dom", page.as_uri())
    m = re.search(r'<pre id="golive-probe">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert m, "the probe did not run (CSP?)\n" + dom.stderr[-2000:]
    seen: dict[str, Any] = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    d = seen["decision"]
    assert d["found"] and d["visible"] and d["text"] == "NO-GO" and d["height"] > 20 and d["visibility"] == "visible"
    assert 0 <= d["top"] < 400, f"the verdict must be on the first screen: {d}"
    b = seen["blocking"]
    assert b["found"] and b["visible"] and b["height"] > 0 and b["top"] < 2000 and "ha.failover" in b["text"]
    f = seen["failing_item"]
    assert f["found"] and f["visible"] and f["height"] > 50 and "Losing one instance" in f["text"]
    assert seen["evidence_open"] is False and not seen["evidence_text"]["visible"], "evidence is folded until opened"
    assert seen["chart"]["found"] and seen["chart"]["visible"] and seen["chart"]["width"] > 300


def _pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


def test_chromium_prints_compactly(rendered: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    p = _chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", rendered.as_uri())
    assert pdf.exists(), p.stderr[-2000:]
    pages = _pages(pdf)
    print(f"\nprinted report ({pages} pages): {pdf}")
    # 10 items, 4 with charts: verdict and run on the first page, then the checklists (no page break per item)
    assert 2 <= pages <= 6


def test_a_typical_run_prints_about_15_items_a_page(tmp_path: Path) -> None:
    """60 items of one host, mostly passing (the shape of a real run): at most 60/15 pages of
    checklists plus the verdict, run, waiver and integrity sections."""
    doc = json.loads((ROOT / "tests" / "golden" / "report.json").read_text(encoding="utf-8"))
    base = next(r for r in doc["results"] if r["id"] == "hosts.cpu_cores[bio-1]")
    results = []
    for i in range(60):
        status = "fail" if i % 10 == 0 else ("skip" if i % 7 == 0 else "pass")
        results.append({**base, "id": f"family{i % 6}.check_{i}[app-1]", "status": status,
                        "feature": f"Feature {i % 6}", "scenario": f"Check number {i}",
                        "reason": "no requirement" if status == "skip" else "",
                        "remediation": "fix it" if status == "fail" else ""})
    doc["results"] = results
    doc.pop("comparison", None)
    html = tmp_path / "report.html"
    html.write_text(render_html(doc), encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    _chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri())
    pages = _pages(pdf)
    print(f"\nprinted 60-item report ({pages} pages): {pdf}")
    assert pages <= 60 // 15 + 2, pages
