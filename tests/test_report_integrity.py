"""report.json integrity, waivers on both sides of today, and secrets kept out of output."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from conftest import ROOT, write_target


def _golive(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "golive.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_verify_detects_tampering_with_results_and_verdict(golive_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts and high")
    path = run.run_dir / "report.json"
    ok = _golive("verify", str(path))
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    doc = json.loads(path.read_text())
    # 1. soften a measurement
    forged = json.loads(json.dumps(doc))
    r = next(r for r in forged["results"] if r["id"].startswith("hosts.cpu_cores["))
    r["status"], r["measured"] = "pass", "16 vCPU"
    (tmp_path / "forged1.json").write_text(json.dumps(forged))
    bad = _golive("verify", str(tmp_path / "forged1.json"))
    assert bad.returncode == 1 and "ALTERED" in bad.stdout
    # 2. flip the verdict only
    forged = json.loads(json.dumps(doc))
    forged["verdict"]["decision"] = "GO"
    (tmp_path / "forged2.json").write_text(json.dumps(forged))
    bad = _golive("verify", str(tmp_path / "forged2.json"))
    assert bad.returncode == 1 and "ALTERED" in bad.stdout


def test_waivers_valid_expired_and_unmatched(golive_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    today = dt.datetime.now(dt.timezone.utc).date()
    waivers = write_target(tmp_path, f"""waivers:
  - check: "hosts.cpu_cores[*]"
    justification: pilot on a small box until the new nodes arrive (CHG-1)
    approver: J. Doe, Head of Operations
    expires: {today + dt.timedelta(days=1)}
  - check: "hosts.memory[lab-host]"
    justification: expired yesterday
    approver: A. Auditor
    expires: {today - dt.timedelta(days=1)}
  - requirement: DS-SS-HW-01
    justification: matches nothing in this profile
    approver: Nobody
    expires: {today + dt.timedelta(days=30)}
""", "waivers.yaml")
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts and high", f"--waivers={waivers}")
    cores = run.one("hosts.cpu_cores[")
    assert cores["status"] == "waived" and cores["measured"].endswith("vCPU")
    assert cores["waiver"]["approver"] == "J. Doe, Head of Operations"
    mem = run.one("hosts.memory[")
    assert mem["status"] == "fail" and "waiver expired" in mem["reason"]
    summary = run.report["waivers"]
    assert [w["key"] for w in summary["applied"]] == ["hosts.cpu_cores[*]"]
    assert [w["key"] for w in summary["expired"]] == ["hosts.memory[lab-host]"]
    assert [w["key"] for w in summary["unmatched"]] == ["DS-SS-HW-01"]
    assert run.report["verdict"]["decision"] == "NO-GO"  # memory still fails
    html = (run.run_dir / "report.html").read_text()
    assert "J. Doe, Head of Operations" in html and "EXPIRED" in html


def test_secret_canary_never_written(golive_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    canary = "canary-S3cr3t-7f3a9"
    target = write_target(tmp_path, """name: canary
hosts:
  - name: local
    connection: local://
    roles: [inference]
inference:
  url: https://127.0.0.1:9/v1/analyze
  headers: {Authorization: "Bearer ${GOLIVE_CANARY}"}
backups:
  - kind: postgres
    location: /nonexistent
    database: postgresql://app:${GOLIVE_CANARY}@127.0.0.1:9/app
""")
    run = golive_run("--profile", "poc", f"--target={target}", "-m", "hosts", env={"GOLIVE_CANARY": canary})
    assert run.run_dir is not None
    assert canary not in run.out
    for f in run.run_dir.iterdir():
        assert canary not in f.read_text(), f


def test_report_files_are_complete_json_and_no_partials(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "ports")
    names = sorted(p.name for p in run.run_dir.iterdir())
    assert names == ["junit.xml", "report.html", "report.json"]
    doc = run.report
    assert doc["schema"] == "golive-report/1"
    assert doc["profile"]["name"] == "poc" and len(doc["profile"]["sha256"]) == 64
    assert doc["golive"]["git_sha"]
    assert doc["run"]["started_at"].endswith("Z") and doc["run"]["finished_at"].endswith("Z")
    for r in doc["results"]:
        assert r["evidence"] or r["status"] == "skip", r
        for ev in r["evidence"]:
            assert ev["measured_at"].endswith("Z") and ev["method"] and ev["probe"]
    import xml.etree.ElementTree as ET

    root = ET.parse(run.run_dir / "junit.xml").getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) == len(doc["results"])
