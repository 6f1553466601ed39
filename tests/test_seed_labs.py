"""The seed systems' labs validated end to end with their own profiles (issue #21).

DocuSnap-Backend, single-server mode (lab/systems/docusnap.py, targets/lab-docusnap.yaml):
``--profile docusnap-single-server --target lab-docusnap --allow-disruptive`` runs every
family the profile names against a real nginx + gunicorn + OCR service + SQLite + backups.
Everything passes except what this machine cannot meet (its sizing, what a VM does not
show, this machine's system Python) and the manual checklist items only a person can attest
(rollback plan, security test report), which stay "could not verify".  Each broken variant drawn from the document's checklist is caught by the check that
names its catalogue row, asserted on status, measured value and requirement id.  Traffic:
loopback only.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import base_id, outcome
from lab import systems

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "docusnap-single-server"
CANARY = "golive-canary-5e21-docusnap-llm-key"

#: What this machine honestly cannot meet, whatever the lab does: 2 cores (the profile asks
#: 4), a paravirtual disk and NIC that report no medium and no link speed, Debian rather
#: than the recommended Ubuntu/CentOS.  Value: the statuses allowed.
MACHINE_LIMITS: dict[str, set[str]] = {
    "hosts.cpu_cores": {"fail", "pass"},
    "hosts.memory": {"fail", "pass"},
    "hosts.disk": {"fail", "pass"},
    "hosts.storage": {"fail", "error", "pass"},
    "hosts.nic_speed": {"fail", "error", "pass"},
    "hosts.os_recommended": {"fail", "pass"},
    # this machine's patch state (its apt lists, the packages installed here), not the lab's
    "services.security_updates": {"fail", "error", "pass"},
    "services.reboot_required": {"fail", "error", "pass"},
}


def _system_pip_clean() -> bool:
    """Whether Debian's Python (the interpreter of /usr/bin/gunicorn, so the app's) has no
    broken requirements on this machine -- a machine fact the lab does not control."""
    res = subprocess.run(["/usr/bin/python3", "-m", "pip", "check", "--disable-pip-version-check"],
                         capture_output=True, text=True, timeout=60, check=False)
    return res.returncode == 0


def _target(tmp_path: Path, variant: str) -> str:
    path = tmp_path / f"lab-docusnap-{variant}.yaml"
    path.write_text(f"name: lab-docusnap-{variant}\nenvironment: lab\nlab: {{system: docusnap, variant: {variant}}}\n")
    return str(path)


def test_docusnap_variants_are_listed_and_validated() -> None:
    names = [n for n, _ in systems.describe_variants("docusnap")]
    assert names[0] == "compliant"
    assert {"ocr_exposed", "tls10", "no_weekly_full", "cors_wildcard"} <= set(names)
    assert systems.parse_variant("docusnap", "TLS10") == "tls10"
    with pytest.raises(ValueError, match="known variants: compliant"):
        systems.parse_variant("docusnap", "legacy_tls")  # an oz variant is not a docusnap one
    out = subprocess.run([sys.executable, "-m", "lab", "variants", "--system", "docusnap"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "ocr_exposed" in out and "exposed_internal" not in out


def test_lab_spec_takes_the_system_and_its_options() -> None:
    from pydantic import ValidationError

    from lab.plugin import LabSpec

    assert LabSpec().system == "oz" and LabSpec().variant == "compliant"  # targets/lab.yaml unchanged
    assert LabSpec(system="DocuSnap", variant="ocr-exposed").variant == "ocr_exposed"
    with pytest.raises(ValidationError, match="'instances' is an option of the oz lab"):
        LabSpec(system="docusnap", instances=2)
    with pytest.raises(ValidationError, match="'cost_ms' is an option of the oz lab"):
        LabSpec(system="docusnap", cost_ms=10)


def test_docusnap_lab_says_what_is_missing_and_refuses_a_foreign_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.procs import LabError
    from lab.systems import docusnap

    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LabError, match="not empty"):
        docusnap.start(tmp_path, "compliant")
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    monkeypatch.setattr(docusnap, "GUNICORN", str(tmp_path / "no-gunicorn"))
    with pytest.raises(LabError, match="apt-get install gunicorn"):
        docusnap.start(tmp_path / "fresh", "compliant")


def test_unknown_system_or_variant_is_a_config_error(tmp_path: Path, golive_run) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nenvironment: lab\nlab:\n  system: docusnap\n  variant: exposed_internal\n")
    run = golive_run("--profile", PROFILE, f"--target={bad}", "-m", "ports", timeout=120)
    assert run.rc == 4, run.out[-2000:]
    assert "bad.yaml:5" in run.out and "unknown variant 'exposed_internal' of the docusnap lab" in run.out
    assert "Traceback" not in run.out
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nenvironment: lab\nlab:\n  system: nosuch\n")
    run = golive_run("--profile", PROFILE, f"--target={other}", "-m", "ports", timeout=120)
    assert run.rc == 4 and "other.yaml:4" in run.out and "known systems: oz, docusnap" in run.out


def test_docusnap_lab_passes_its_profile_but_for_this_machine(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", PROFILE, "--target", "lab-docusnap", "--allow-disruptive", timeout=300,
                     env={"GOLIVE_LAB_DOCUSNAP_KEY": CANARY})
    results = run.results()
    assert results, run.out[-3000:]
    assert run.report["target"].get("lab_system") == "docusnap"
    # every family the profile names ran (base: ports, tls, http, cors)
    ran = {base_id(k).split(".", 1)[0] for k, v in results.items() if v["status"] != "skip"}
    assert {"hosts", "backups", "release", "services", "monitoring", "datastores", "ports", "tls", "http",
            "cors"} <= ran

    pip_clean = _system_pip_clean()
    unexpected = {}
    for rid, r in results.items():
        base, status = base_id(rid), r["status"]
        if status in ("pass", "skip"):
            continue
        if base in MACHINE_LIMITS and status in MACHINE_LIMITS[base]:
            continue
        if base == "services.pip_check" and status == "fail" and not pip_clean:
            continue  # this machine's system Python has a broken requirement: measured, reported
        if base == "release.manual" and status == "error" and "attest" in (r.get("reason") or ""):
            continue  # a manual checklist item (rollback plan, ...): only a person's attestation settles it
        unexpected[rid] = (status, r["measurement"]["display"], r.get("reason"))
    assert not unexpected, unexpected

    # sizing fails with the measured value
    [cores] = [v for k, v in results.items() if base_id(k) == "hosts.cpu_cores"]
    if cores["status"] == "fail":
        assert cores["measurement"]["value"] == os.cpu_count() and os.cpu_count() < 4
        assert "DS-SS-HW-01" in cores["requirement"]["ids"]
    # the document's deployment, as measured: gunicorn master + 2 workers, OCR internal,
    # weekly full <= 7 d and a daily incremental, the smoke test through nginx
    assert results["services.workers[gunicorn@docusnap]"]["status"] == "pass"
    assert len(results["services.workers[gunicorn@docusnap]"]["measurement"]["value"]["children"]) == 2
    # DS-OPS-05: nginx, the app and the OCR service come back by themselves (their supervisor's policy)
    for svc in ("nginx", "gunicorn", "ocr"):
        boot = results[f"services.boot_start[{svc}@docusnap]"]
        assert boot["status"] == "pass" and boot["measurement"]["value"]["restart"] == "always", boot
    internal = [v for k, v in results.items() if base_id(k) == "ports.internal_closed"]
    assert len(internal) == 2 and all(v["status"] == "pass" and v["measurement"]["value"] is False for v in internal)
    [full] = [v for k, v in results.items() if base_id(k) == "backups.age.full"]
    assert full["status"] == "pass" and 5.9 * 86400 < full["measurement"]["value"] < 6.1 * 86400
    [incr] = [v for k, v in results.items() if base_id(k) == "backups.age.incremental"]
    assert incr["status"] == "pass" and incr["measurement"]["value"] < 3600
    assert results["release.version[endpoint]"]["measurement"]["value"] == "1.0.0"
    assert all(v["status"] == "pass" for k, v in results.items() if k.startswith("release.smoke["))
    assert results["http.hsts"]["status"] == "pass"
    # monitored as the document's "Monitoring Metrics" say: host and application signals of
    # nginx, gunicorn and the OCR service, alerts delivered, the OCR service's outage alerted
    signals = [v for k, v in results.items() if base_id(k) == "monitoring.service_signals"]
    assert len(signals) == 12 and all(v["status"] == "pass" for v in signals)
    drill = results["monitoring.unavailability_alert"]
    assert drill["status"] == "pass" and drill["measurement"]["value"]["fired_after_s"] is not None
    # DS-AUTH-03: the database belongs to the account gunicorn runs as, mode <= 0640
    [owner] = [v for k, v in results.items() if base_id(k) == "datastores.sqlite_file"]
    assert owner["status"] == "pass" and "DS-AUTH-03" in owner["requirement"]["ids"]
    # the LLM key the app holds in its environment never reaches the report
    assert "ZHIPU_API_KEY" in results["services.env[gunicorn@docusnap]"]["measurement"]["value"]["env_names"]
    assert run.run_dir is not None
    assert CANARY not in run.out
    for f in run.run_dir.rglob("*"):
        if f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f


@pytest.mark.parametrize(("variant", "marker", "check", "ref"), [
    ("ocr_exposed", "ports", "ports.internal_closed", "DS-NET-03"),
    ("tls10", "tls", "tls.protocols_forbidden", "DS-TLS-01"),
    ("no_weekly_full", "backups", "backups.age.full", "DS-BAK-01"),
    ("cors_wildcard", "cors", "cors.disallowed_origin", "DS-HTTP-01"),
])
def test_docusnap_broken_variant_is_caught(tmp_path: Path, golive_run, variant: str, marker: str,  # type: ignore[no-untyped-def]
                                           check: str, ref: str) -> None:
    run = golive_run("--profile", PROFILE, f"--target={_target(tmp_path, variant)}", "--allow-disruptive",
                     "-m", marker, timeout=240)
    results = run.results()
    assert results, run.out[-3000:]
    caught = {k: v for k, v in results.items() if base_id(k) == check and v["status"] == "fail"}
    assert caught, outcome(results)
    ports = run.report["target"].get("lab_ports", {})
    for rid, r in caught.items():
        assert ref in r["requirement"]["ids"], (rid, r["requirement"])
    value = next(iter(caught.values()))["measurement"]["value"]
    if variant == "ocr_exposed":
        # only the OCR port is reachable from "outside"; gunicorn's stays closed
        assert set(caught) == {f"ports.internal_closed[127.0.0.2:{ports['ocr']}]"}
        assert value is True
        bind = results[f"ports.internal_bind[ocr@docusnap:{ports['ocr']}]"]
        assert bind["status"] == "fail" and bind["measurement"]["value"] == ["0.0.0.0"]
    elif variant == "tls10":
        assert "TLSv1.0" in value and "TLSv1.1" in value
    elif variant == "no_weekly_full":
        assert 8.9 * 86400 < value < 9.1 * 86400  # the last full, 9 days old
        [incr] = [v for k, v in results.items() if base_id(k) == "backups.age.incremental"]
        assert incr["status"] == "pass"  # the daily incrementals still run
    elif variant == "cors_wildcard":
        assert value["simple"]["allow_origin"] == "*" or value["preflight"]["allow_origin"] == "*"


def test_table_script_renders_real_statuses_and_unbuilt_rows() -> None:
    """scripts/seed_systems_table.py: a family's cell names what did not pass, with its
    measured value; a system without a run says 'not built yet'."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_table", ROOT / "scripts" / "seed_systems_table.py")
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    sys.modules["seed_table"] = table  # dataclasses look their module up
    try:
        spec.loader.exec_module(table)
    finally:
        sys.modules.pop("seed_table", None)

    def result(rid: str, status: str, display: str) -> dict[str, object]:
        return {"id": rid, "status": status, "measured": display, "reason": "", "measurement": {"display": display}}

    report = {"target": {"name": "lab-docusnap"}, "verdict": {"decision": "NO-GO", "counts": {}},
              "run": {"started_at": "2026-01-01T00:00:00Z"}, "golive": {"version": "0"},
              "results": [result("hosts.cpu_cores[docusnap]", "fail", "2 vCPU"),
                          result("hosts.memory[docusnap]", "pass", "23 GiB"),
                          result("tls.min_version[x]", "pass", "TLSv1.2"),
                          result("ha.failover", "skip", "not measured")]}
    text = table.render({"lab-docusnap": report})
    row = next(line for line in text.splitlines() if line.startswith("| DocuSnap-Backend"))
    assert "FAIL (1 pass, 1 not): cpu_cores fail: 2 vCPU" in row and "| pass 1 |" in row
    assert sum("| not built yet |" in line for line in text.splitlines()) == len(table.SYSTEMS) - 1  # every system but the one reported
    assert "| ha |" not in text.splitlines()[0]  # a family no run judged is left out
