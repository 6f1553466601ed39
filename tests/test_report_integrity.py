"""report.json integrity, waivers on both sides of today, and secrets kept out of output."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from conftest import ROOT, write_target


def _golive(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "golive.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


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
    today = dt.datetime.now(dt.UTC).date()
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
    assert [w["key"] for w in summary["unused"]] == ["DS-SS-HW-01"]
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
    assert names == ["junit.xml", "manifest.json", "report.html", "report.json"]
    doc = run.report
    assert doc["schema"] == "golive-report/2"
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


# ----------------------------------------------------------------------------- detached signatures (--sign-key)

def _keypair(tmp_path, name: str = "sign.pem"):  # type: ignore[no-untyped-def]
    key = tmp_path / name
    made = _golive("keygen", str(key))
    assert made.returncode == 0, made.stderr
    return key, tmp_path / name.replace(".pem", ".pub.pem")


def test_signed_report_verifies_and_any_change_breaks_the_signature(golive_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from golive.report import document_digest, results_digest

    key, pub = _keypair(tmp_path)
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts and high", f"--sign-key={key}")
    path = run.run_dir / "report.json"
    sig = run.run_dir / "report.json.sig"
    assert sig.exists(), run.out[-2000:]
    assert run.report["signature"]["algorithm"] == "ed25519"
    good = _golive("verify", str(path), "--pubkey", str(pub))
    assert good.returncode == 0 and "intact" in good.stdout and "signature valid" in good.stdout, good.stdout + good.stderr
    unchecked = _golive("verify", str(path))
    assert unchecked.returncode == 0 and "signature present, not checked" in unchecked.stdout

    # the private key never reaches the run folder (only the signature and the public key's fingerprint)
    body = "".join(key.read_text().splitlines()[1:-1])
    for f in run.run_dir.iterdir():
        assert body not in f.read_text().replace("\n", ""), f

    # a forger who changes the operator and recomputes both digests passes the digest check, not the signature
    doc = json.loads(path.read_text())
    doc["run"]["operator"] = "someone else"
    doc["integrity"]["results_sha256"] = results_digest(doc["results"])
    doc["integrity"]["document_sha256"] = document_digest(doc)
    forged = tmp_path / "forged" / "report.json"
    forged.parent.mkdir()
    forged.write_text(json.dumps(doc, indent=2))
    (forged.parent / "report.json.sig").write_bytes(sig.read_bytes())
    bad = _golive("verify", str(forged), "--pubkey", str(pub))
    assert bad.returncode == 1 and "intact" in bad.stdout and "BAD SIGNATURE" in bad.stdout, bad.stdout

    # a whitespace-only change is a change too: the signature covers the exact bytes
    forged.write_text(path.read_text().replace("\n", "\n ", 1))
    assert _golive("verify", str(forged), "--pubkey", str(pub)).returncode == 1

    # another key, and a missing signature
    _, other_pub = _keypair(tmp_path, "other.pem")
    wrong = _golive("verify", str(path), "--pubkey", str(other_pub))
    assert wrong.returncode == 1 and "signed with another key" in wrong.stdout
    (forged.parent / "report.json.sig").unlink()
    unsigned = _golive("verify", str(forged), "--pubkey", str(pub))
    assert unsigned.returncode == 1 and "NOT SIGNED" in unsigned.stdout


def test_bad_sign_key_or_compare_file_is_a_usage_error(golive_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts", f"--sign-key={ec_key}")
    assert run.rc == 4 and "Ed25519" in run.out and run.run_dir is None, run.out[-2000:]
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts", f"--compare={tmp_path / 'missing.json'}")
    assert run.rc == 4 and "no such file" in run.out and run.run_dir is None, run.out[-2000:]
    pub = _golive("verify", str(ROOT / "tests" / "golden" / "report.json"), "--pubkey", str(ec_key))
    assert pub.returncode == 4 and "PEM public key" in pub.stderr


def test_compare_with_previous_run_and_junit_schema(golive_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts and high")
    second = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts and high",
                        f"--compare={first.run_dir / 'report.json'}")
    cmp = second.report["comparison"]
    assert cmp["previous"]["intact"] is True and cmp["previous"]["started_at"] == first.report["run"]["started_at"]
    assert cmp["same_profile"] and cmp["counts"]["added"] == 0 and cmp["counts"]["removed"] == 0
    assert cmp["counts"]["newly_failing"] == 0 and cmp["counts"]["unchanged"] + cmp["counts"]["measurement_changed"] \
        == len(second.report["results"])
    assert "Changes since the previous run" in (second.run_dir / "report.html").read_text()
    assert "since " + first.report["run"]["started_at"] in second.out
    diff = _golive("diff", str(first.run_dir / "report.json"), str(second.run_dir / "report.json"))
    assert diff.returncode == 0 and "0 newly failing" in diff.stdout, diff.stdout + diff.stderr
    # the junit.xml of a real run validates against the JUnit schema
    import pytest

    etree = pytest.importorskip("lxml.etree", reason="lxml is in the [dev] extra")
    schema = etree.XMLSchema(etree.parse(str(ROOT / "tests" / "golden" / "junit.xsd")))
    assert schema.validate(etree.parse(str(second.run_dir / "junit.xml"))), str(schema.error_log)
