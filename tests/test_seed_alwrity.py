"""The ALwrity (AI-Writer) multi-user lab validated end to end with its own profile (issue #21).

``--profile alwrity-multi-user --target lab-alwrity --allow-disruptive`` runs every family the
profile names against a real nginx (TLS 1.3, HSTS) + uvicorn/FastAPI + PostgreSQL (WAL
archive, base backup, encrypted off-site dumps) + Redis (password) + Prometheus/Alertmanager
deployment (lab/systems/alwrity.py).  Everything passes except what this machine cannot meet
(its sizing, what a VM does not show) and the manual checklist items only a person can attest
(DR test evidence, staging pass, release docs), which stay "could not verify".  Each broken
variant drawn from the document is caught by the check that names its catalogue row,
asserted on status, measured value and requirement id.  Traffic: loopback only.
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
PROFILE = "alwrity-multi-user"
CANARY = "golive-canary-9b47-alwrity-gemini-key"

#: What this machine honestly cannot meet, whatever the lab does: 2 cores (the profile asks
#: 4), a paravirtual disk and NIC that report no medium and no link speed (16 GB RAM and 50 GB
#: disk depend on the machine).  Value: the statuses allowed.
MACHINE_LIMITS: dict[str, set[str]] = {
    "hosts.cpu_cores": {"fail", "pass"},
    "hosts.memory": {"fail", "pass"},
    "hosts.disk": {"fail", "pass"},
    "hosts.storage": {"fail", "error", "pass"},
    "hosts.nic_speed": {"fail", "error", "pass"},
}


def _target(tmp_path: Path, variant: str) -> str:
    path = tmp_path / f"lab-alwrity-{variant}.yaml"
    path.write_text(f"name: lab-alwrity-{variant}\nenvironment: lab\nlab: {{system: alwrity, variant: {variant}}}\n")
    return str(path)


def test_alwrity_variants_are_listed_and_validated() -> None:
    names = [n for n, _ in systems.describe_variants("alwrity")]
    assert names[0] == "compliant"
    assert {"hsts_missing", "no_wal_archiving", "redis_no_auth"} <= set(names)
    assert systems.parse_variant("alwrity", "HSTS-missing") == "hsts_missing"
    with pytest.raises(ValueError, match="known variants: compliant"):
        systems.parse_variant("alwrity", "tls10")  # a docusnap variant is not an alwrity one
    out = subprocess.run([sys.executable, "-m", "lab", "variants", "--system", "alwrity"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "no_wal_archiving" in out and "ocr_exposed" not in out


def test_alwrity_lab_refuses_a_foreign_folder_and_names_missing_packages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.procs import LabError
    from lab.systems import alwrity

    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LabError, match="not empty"):
        alwrity.start(tmp_path, "compliant")
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    monkeypatch.setattr(alwrity, "APP_MODULES", ("uvicorn", "no_such_module_golive"))
    with pytest.raises(LabError, match="python3-uvicorn python3-fastapi"):
        alwrity.start(tmp_path / "fresh", "compliant")
    assert not (tmp_path / "fresh" / "pg").exists()  # nothing started


def test_alwrity_lab_passes_its_profile_but_for_this_machine(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", PROFILE, "--target", "lab-alwrity", "--allow-disruptive", timeout=300,
                     env={"GOLIVE_LAB_ALWRITY_KEY": CANARY})
    results = run.results()
    assert results, run.out[-3000:]
    assert run.report["target"].get("lab_system") == "alwrity"
    # every family the profile names ran (base: ports, tls, http, cors); containers is the
    # document's Docker variant of multi-user, skipped for this server deployment
    ran = {base_id(k).split(".", 1)[0] for k, v in results.items() if v["status"] != "skip"}
    assert {"hosts", "ports", "tls", "http", "cors", "services", "release", "datastores", "backups",
            "monitoring"} <= ran

    unexpected = {}
    for rid, r in results.items():
        base, status = base_id(rid), r["status"]
        if status in ("pass", "skip"):
            continue
        if base in MACHINE_LIMITS and status in MACHINE_LIMITS[base]:
            continue
        if base == "release.manual" and status == "error" and "attest" in (r.get("reason") or ""):
            continue  # a manual checklist item (DR test evidence, ...): only a person's attestation settles it
        unexpected[rid] = (status, r["measurement"]["display"], r.get("reason"))
    assert not unexpected, unexpected

    [cores] = [v for k, v in results.items() if base_id(k) == "hosts.cpu_cores"]
    if cores["status"] == "fail":
        assert cores["measurement"]["value"] == os.cpu_count() and (os.cpu_count() or 0) < 4
        assert "AW-MU-HW-01" in cores["requirement"]["ids"]
    # the document's deployment, as measured
    # TLS 1.3 at nginx and at PostgreSQL (STARTTLS after the SSLRequest), both with the lab CA's certificate
    tls13 = {k: v for k, v in results.items() if base_id(k) == "tls.tls13"}
    assert len(tls13) == 2 and any("postgres://" in k for k in tls13), sorted(tls13)
    assert all(v["status"] == "pass" and "AW-TLS-01" in v["requirement"]["ids"] for v in tls13.values())
    [starttls] = [v for k, v in results.items() if base_id(k) == "tls.starttls_offered"]
    assert starttls["status"] == "pass" and "AW-TLS-06" in starttls["requirement"]["ids"]
    hsts = results["http.hsts"]
    assert hsts["status"] == "pass" and hsts["measurement"]["value"]["max_age"] >= 180 * 86400
    [pitr] = [v for k, v in results.items() if base_id(k) == "backups.pitr"]
    assert pitr["status"] == "pass" and pitr["measurement"]["value"]["archive_mode"] == "on"
    assert pitr["measurement"]["value"]["archived_count"] > 0 and pitr["measurement"]["value"]["in_archive"] is True
    assert results["datastores.redis_auth"]["status"] == "pass"
    assert results["datastores.redis_auth"]["measurement"]["value"]["auth_required"] is True
    assert results["datastores.pg_app_ssl"]["status"] == "pass"  # the FastAPI app's session uses TLS
    assert results["datastores.pg_app_role"]["status"] == "pass"
    [restore] = [v for k, v in results.items() if k.startswith("backups.restore[postgres:")]
    assert restore["status"] == "pass" and restore["measurement"]["value"]["restored"]
    assert all(v["status"] == "pass" for k, v in results.items() if base_id(k) == "backups.offsite")
    assert results["release.version[endpoint]"]["measurement"]["value"] == "2.4.0"
    assert all(v["status"] == "pass" for k, v in results.items() if k.startswith("release.smoke["))
    internal = [v for k, v in results.items() if base_id(k) == "ports.internal_closed"]
    assert len(internal) == 3 and all(v["status"] == "pass" and v["measurement"]["value"] is False for v in internal)
    signals = [v for k, v in results.items() if base_id(k) == "monitoring.service_signals"]
    assert len(signals) == 8 and all(v["status"] == "pass" for v in signals)  # incl. user activity, API usage
    # AW-MU-SW-02: nginx's configuration is valid and proxies to the ASGI server, which runs as its account
    proxy = results["services.proxy[nginx@alwrity]"]
    app_port = run.report["target"]["lab_ports"]["app"]
    assert proxy["status"] == "pass" and f"127.0.0.1:{app_port}" in proxy["measurement"]["value"]["upstreams"]
    assert "AW-MU-SW-02" in proxy["requirement"]["ids"]
    assert results["services.process[uvicorn@alwrity]"]["status"] == "pass"
    # the LLM key the app holds in its environment never reaches the output or the report
    assert run.run_dir is not None
    assert CANARY not in run.out
    for f in run.run_dir.rglob("*"):
        if f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f


@pytest.mark.parametrize(("variant", "marker", "check", "ref"), [
    ("hsts_missing", "http", "http.hsts", "AW-TLS-04"),
    ("no_wal_archiving", "backups", "backups.pitr", "AW-BAK-02"),
    ("redis_no_auth", "datastores", "datastores.redis_auth", "AW-AUTH-05"),
])
def test_alwrity_broken_variant_is_caught(tmp_path: Path, golive_run, variant: str, marker: str,  # type: ignore[no-untyped-def]
                                          check: str, ref: str) -> None:
    run = golive_run("--profile", PROFILE, f"--target={_target(tmp_path, variant)}", "-m", marker, timeout=240)
    results = run.results()
    assert results, run.out[-3000:]
    caught = {k: v for k, v in results.items() if base_id(k) == check and v["status"] == "fail"}
    assert caught, outcome(results)
    for rid, r in caught.items():
        assert ref in r["requirement"]["ids"], (rid, r["requirement"])
    value = next(iter(caught.values()))["measurement"]["value"]
    # the variant breaks exactly one thing: the family's other checks still pass
    others = {k: v["status"] for k, v in results.items() if base_id(k) != check and v["status"] not in ("pass", "skip")}
    assert not others, others
    if variant == "hsts_missing":
        assert value["present"] is False and value["max_age"] is None
    elif variant == "no_wal_archiving":
        assert value["archive_mode"] == "off" and value["archived_count"] == 0
    elif variant == "redis_no_auth":
        assert value["auth_required"] is False
        assert results["datastores.redis_reachable"]["status"] == "pass"
