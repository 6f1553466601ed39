"""STARTTLS endpoints of the TLS family (issue #15, AW-TLS-06 "internal DB sessions
encrypted"): ONE golive run (-m tls) scans real PostgreSQL 15 servers that the test starts
(lab/pg_tls.py, certificates of the lab CA) through their SSLRequest upgrade --

- ``compliant``: ssl = on, TLS 1.2/1.3 with ECDHE + AEAD: every TLS check passes, the
  strict profile (TLS 1.3, AEAD, forward secrecy) and Mozilla's intermediate rules included;
- ``ssl_off``: the server answers 'N' to the SSLRequest: ``tls.starttls_offered`` FAILS
  with "TLS not offered" (a measured answer, not an error), the checks that need a TLS
  handshake are skipped with that reason;
- ``tls10``: ssl_min_protocol_version = 'TLSv1' (SECLEVEL=0): ``tls.protocols_forbidden``
  FAILS with TLSv1.0 and TLSv1.1 measured, ``tls.min_version`` with TLSv1.0;
- a closed port: could not measure, every check is ``error``.

Plus the target syntax: a STARTTLS URL carrying a user, password or database is refused at
load time (exit 4, file:line, the password never echoed).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.tls import probes as tls
from conftest import PYTEST, ROOT, GoliveRun
from lab import certs
from lab.pg_tls import RunningPgTls, start_pg_tls
from lab.procs import free_port

needs_postgres = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("pg_createcluster") is None,
                                    reason="the PostgreSQL lab needs root and postgresql (scripts/setup.sh)")

VARIANTS = ("compliant", "ssl_off", "tls10")
#: every TLS check that reads a handshake (tls.mozilla is one result per rule, below)
HANDSHAKE_CHECKS = ("protocols_forbidden", "min_version", "tls13", "weak_ciphers", "cert_trusted", "hostname",
                    "cert_days_left", "key_size", "key_exchange", "vulnerabilities")

PROFILE = f"""name: starttls
extends: {ROOT}/profiles/poc.yaml
description: poc with TLS 1.3, AEAD, forward secrecy and Mozilla's intermediate configuration required
requirements:
  tls: {{ref: [DS-TLS-01, AW-TLS-02, AW-TLS-06], require_tls13: true, require_aead: true,
         require_forward_secrecy: true, mozilla: intermediate}}
"""


def run_golive(report_dir: Path, *args: str, timeout: float = 300) -> GoliveRun:
    cmd = [*PYTEST, "-p", "no:cacheprovider", f"--report-dir={report_dir}", *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return GoliveRun(proc, report_dir)


@pytest.fixture(scope="module")
def pg_zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three PostgreSQL servers and a closed port, scanned by one golive run."""
    base = tmp_path_factory.mktemp("pg-tls")
    files = certs.write_tls_files(base / "tls", ("localhost", "127.0.0.1"))
    servers: dict[str, RunningPgTls] = {}
    try:
        for variant in VARIANTS:
            servers[variant] = start_pg_tls(base / variant, files, variant)
        endpoints = {v: s.endpoint for v, s in servers.items()} | {"closed": f"postgres://127.0.0.1:{free_port()}"}
        target = base / "target.yaml"
        target.write_text("name: pg-tls\nenvironment: lab\nendpoints:\n"
                          f"  ca_file: {files.ca_file}\n"
                          f"  tls: [{', '.join(endpoints.values())}]\n")
        profile = base / "starttls.yaml"
        profile.write_text(PROFILE)
        run = run_golive(base / "reports", f"--profile={profile}", f"--target={target}", "-m", "tls")
        yield {"run": run, "endpoints": endpoints}
    finally:
        for server in servers.values():
            server.stop()


def _result(zoo: dict[str, Any], check: str, variant: str) -> dict[str, Any]:
    run: GoliveRun = zoo["run"]
    return run.one(f"tls.{check}[{zoo['endpoints'][variant]}]")


def _mozilla(zoo: dict[str, Any], variant: str) -> dict[str, dict[str, Any]]:
    run: GoliveRun = zoo["run"]
    return run.results(f"tls.mozilla[{zoo['endpoints'][variant]}/")


@needs_postgres
def test_one_run_one_scan_no_go(pg_zoo: dict[str, Any]) -> None:
    run: GoliveRun = pg_zoo["run"]
    assert run.report, run.out[-3000:]
    assert run.rc == 1 and run.report["verdict"]["decision"] == "NO-GO", run.out[-3000:]
    measured = [r for r in run.results("tls.").values() if r["status"] != "skip"]
    # one sslyze scan for the whole run: every result quotes the same scan start
    assert len({r["evidence"][0]["measured_at"] for r in measured}) == 1


@needs_postgres
def test_compliant_postgres_passes_every_tls_check(pg_zoo: dict[str, Any]) -> None:
    offered = _result(pg_zoo, "starttls_offered", "compliant")
    assert offered["status"] == "pass", offered
    assert offered["measurement"]["value"] is True
    assert offered["measured"] == "TLS offered after the PostgreSQL SSLRequest (TLSv1.2, TLSv1.3)"
    assert offered["requirement"]["ids"] == ["AW-TLS-06"]  # the profile's id this check answers
    for check in HANDSHAKE_CHECKS:
        r = _result(pg_zoo, check, "compliant")
        assert r["status"] == "pass", (check, r["measured"], r.get("reason"))
    assert _result(pg_zoo, "protocols_forbidden", "compliant")["measurement"]["value"] == []
    assert _result(pg_zoo, "min_version", "compliant")["measurement"]["value"] == "TLSv1.2"
    kx = _result(pg_zoo, "key_exchange", "compliant")["measurement"]["value"]
    assert kx["min_dh_bits"] is None and kx["min_ecdh_bits"] == 256
    rules = _mozilla(pg_zoo, "compliant")
    assert len(rules) == len(tls.MOZILLA_RULES)
    assert {rid: r["status"] for rid, r in rules.items() if r["status"] != "pass"} == {}
    method = _result(pg_zoo, "cert_trusted", "compliant")["evidence"][0]["method"]
    assert "STARTTLS: PostgreSQL SSLRequest, then TLS" in method and "SNI 127.0.0.1" in method


@needs_postgres
def test_ssl_off_fails_tls_not_offered_with_the_servers_answer(pg_zoo: dict[str, Any]) -> None:
    r = _result(pg_zoo, "starttls_offered", "ssl_off")
    assert r["status"] == "fail", r
    assert r["measurement"]["value"] is False
    assert r["measured"] == ("TLS not offered: the server answered 'N' to the PostgreSQL SSLRequest: "
                                        "it does not accept TLS (ssl = off)")
    assert r["expected"] == "the service upgrades the connection to TLS"
    assert r["severity"] == "critical"
    for check in HANDSHAKE_CHECKS:
        s = _result(pg_zoo, check, "ssl_off")
        assert s["status"] == "skip", (check, s)
        assert "tls.starttls_offered fails" in str(s), s
    assert all(x["status"] == "skip" for x in _mozilla(pg_zoo, "ssl_off").values()) or \
        _result(pg_zoo, "mozilla", "ssl_off")["status"] == "skip"


@needs_postgres
def test_tls10_postgres_fails_the_protocol_checks_with_the_versions_measured(pg_zoo: dict[str, Any]) -> None:
    assert _result(pg_zoo, "starttls_offered", "tls10")["status"] == "pass"
    r = _result(pg_zoo, "protocols_forbidden", "tls10")
    assert r["status"] == "fail", r
    assert r["measurement"]["value"] == ["TLSv1.0", "TLSv1.1"]
    assert r["measured"].startswith("TLSv1.0, TLSv1.1 offered")
    low = _result(pg_zoo, "min_version", "tls10")
    assert low["status"] == "fail" and low["measurement"]["value"] == "TLSv1.0"
    # DEFAULT:@SECLEVEL=0 also accepts CBC and RSA key transport: the strict profile catches them
    weak = _result(pg_zoo, "weak_ciphers", "tls10")
    assert weak["status"] == "fail" and "not AEAD" in weak["measured"]
    assert _mozilla(pg_zoo, "tls10")[f"tls.mozilla[{pg_zoo['endpoints']['tls10']}/tls_versions]"]["status"] == "fail"
    # the certificate is the compliant one's: judged the same way, it passes
    assert _result(pg_zoo, "cert_trusted", "tls10")["status"] == "pass"


@needs_postgres
def test_closed_port_is_an_error_not_a_fail(pg_zoo: dict[str, Any]) -> None:
    r = _result(pg_zoo, "starttls_offered", "closed")
    assert r["status"] == "error", r
    assert "ServerRejectedConnection" in str(r)
    for check in HANDSHAKE_CHECKS:
        assert _result(pg_zoo, check, "closed")["status"] == "error", check


def test_a_starttls_url_with_credentials_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad-target.yaml"
    path.write_text("name: t\nendpoints:\n  tls:\n    - postgres://app:${GOLIVE_TEST_PG_PW}@db.example.com:5432/app\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"} | {"GOLIVE_TEST_PG_PW": "canary-s3cret"}
    proc = subprocess.run([*PYTEST, "-p", "no:cacheprovider", f"--report-dir={tmp_path / 'r'}", "--profile", "poc",
                           f"--target={path}", "-m", "tls"], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert f"{path}:3:" in out or f"{path}:4:" in out, out
    assert "must be only postgres://host[:port]" in out and "Traceback" not in out, out
    assert "canary-s3cret" not in out


def test_starttls_endpoint_syntax() -> None:
    e = tls.endpoint_from("postgresql://db.example.com", ca_file="/ca.pem")
    assert (e.starttls, e.host, e.port, e.key) == ("postgres", "db.example.com", 5432, "postgres://db.example.com:5432")
    assert tls.endpoint_from("smtp://[::1]:587").key == "smtp://[::1]:587"
    assert tls.endpoint_from("https://api.example.com/").key == "api.example.com:443"
    for bad, why in (("mysql://db:3306", "neither TLS nor a STARTTLS protocol"), ("postgres://db:5432/app", "must be only"),
                     ("postgres://db:70000", "invalid port")):
        with pytest.raises(ValueError, match=why):
            tls.endpoint_from(bad)
