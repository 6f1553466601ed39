"""A verdict that cannot mislead (issue #13): partial runs, the sealed run folder, waiver
rules, attestations, check-config, pytest conventions, ``extends``, per-threshold basis and
honest report wording.  Each section names the finding it covers."""
from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import PYTEST, ROOT, write_target
from golive.attestations import Attestations
from golive.model import CheckResult, Evidence, Measurement, Requirement, Severity, Status
from golive.profile import load_profile
from golive.recorder import Checks, ScenarioInfo
from golive.report import build
from golive.verdict import decide, decide_dicts, label
from golive.waivers import Waivers
from golive.yamlpos import ConfigError
from reports import write_run
from reports.html import render_html
from reports.terminal import render_text

GOLDEN = ROOT / "tests" / "golden"
TODAY = dt.datetime.now(dt.UTC).date()
PORTS_ONLY = "name: ports-only\ndescription: the lab's ports only\nrequirements:\n  ports:\n    ref: [DS-NET-01]\n"


def _golive(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "golive.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def _golden() -> dict[str, Any]:
    return json.loads((GOLDEN / "report.json").read_text())


def _result(cid: str, status: Status, severity: Severity = Severity.HIGH) -> CheckResult:
    return CheckResult(id=cid, status=status, severity=severity, expected="x", measured="y")


# ----------------------------------------------------------------------------- 1. partial runs are never GO

def test_partial_passing_run_is_pass_partial_never_go() -> None:
    ok = [_result("ports.public_open[a]", Status.PASS)]
    partial = {"ran": 4, "of": 60, "reasons": ["56 of 60 checks deselected", "-m 'ports'"]}
    v = decide(ok, Severity.HIGH, partial=partial)
    assert v.decision == "PASS-PARTIAL" and not v.go and v.passed
    assert label(v.to_dict()) == "PASS (partial: 4 of 60 checks)"
    assert decide(ok, Severity.HIGH).decision == "GO"
    # a blocking failure in a partial run is NO-GO, as in a full one
    bad = [*ok, _result("ports.internal_closed[a]", Status.FAIL)]
    assert decide(bad, Severity.HIGH, partial=partial).decision == "NO-GO"


def test_a_forged_go_over_a_partial_selection_is_inconsistent() -> None:
    from golive.report import verify

    doc = _golden()
    results = [r for r in doc["results"] if r["status"] == "pass"]
    verdict = decide_dicts(results, Severity.HIGH).to_dict()  # GO, as if complete
    meta = {k: copy.deepcopy(doc[k]) for k in ("golive", "run", "profile", "target")}
    meta["run"]["selection"] = {"complete": False, "reasons": ["-m 'ports'"]}
    ok, msg = verify(build(meta, verdict, results, doc["waivers"]))
    assert not ok and "partial" in msg


def test_a_run_with_m_is_pass_partial_and_require_complete_fails_it(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "ports")
    assert run.rc == 0, run.out
    v = run.report["verdict"]
    from golive import registry

    n = len({c.title for c in registry.load("ports").checks})  # the ports scenarios
    assert v["decision"] == "PASS-PARTIAL" and v["partial"]["ran"] == n and v["partial"]["of"] >= 60
    sel = run.report["run"]["selection"]
    assert sel["complete"] is False and sel["options"] == {"markexpr": "ports"} and sel["deselected"] == v["partial"]["of"] - n
    assert f"PASS (partial: {n} of {v['partial']['of']} checks)" in run.out and "GO - may go live" not in run.out
    html = (run.run_dir / "report.html").read_text()
    assert f'<p class="decision">PASS (partial: {n} of {v["partial"]["of"]} checks)</p>' in html
    assert "Not a go-live verdict" in html
    strict = golive_run("--profile", "poc", "--target", "lab", "-m", "ports", "--require-complete")
    assert strict.rc == 1 and strict.report["verdict"]["decision"] == "PASS-PARTIAL", strict.out


def test_selection_hidden_in_pytest_addopts_is_recorded(tmp_path: Path) -> None:
    report_dir = tmp_path / "reports"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_ADDOPTS": "-m ports"}
    proc = subprocess.run([*PYTEST, "-p", "no:cacheprovider", "--profile", "poc", "--target", "lab",
                           f"--report-dir={report_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    doc = json.loads(next(report_dir.glob("*/report.json")).read_text())
    assert doc["verdict"]["decision"] == "PASS-PARTIAL", proc.stdout[-2000:]
    assert doc["run"]["selection"]["addopts_env"] == "-m ports"
    assert doc["run"]["selection"]["options"]["markexpr"] == "ports"


def test_the_complete_profile_is_go_and_a_host_filter_is_partial(tmp_path: Path, golive_run) -> None:  # type: ignore[no-untyped-def]
    profile = write_target(tmp_path, PORTS_ONLY, "ports-only.yaml")
    run = golive_run(f"--profile={profile}", "--target", "lab")
    assert run.rc == 0 and run.report["verdict"]["decision"] == "GO", run.out
    sel = run.report["run"]["selection"]
    assert sel["complete"] is True and sel["deselected"] == 0 and sel["collected"] == sel["selected"] > 0
    assert "GO - may go live" in run.out
    two = write_target(tmp_path, "name: two\nhosts:\n  - name: a\n    connection: local://\n    roles: [app]\n"
                       "  - name: b\n    connection: local://\n    roles: [app]\n", "two.yaml")
    linux = write_target(tmp_path, "name: linux\ndescription: x\nrequirements:\n  hosts:\n    os: {family: linux}\n",
                         "linux.yaml")
    filtered = golive_run(f"--profile={linux}", f"--target={two}", "--hosts", "a")
    assert filtered.report["verdict"]["decision"] == "PASS-PARTIAL", filtered.out
    assert any("host filter" in r for r in filtered.report["verdict"]["partial"]["reasons"])


# ----------------------------------------------------------------------------- 7. pytest conventions

def test_collect_only_writes_no_report_and_exits_as_pytest(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target", "lab", "--co", "-q")
    assert run.rc == 0, run.out
    assert run.run_dir is None and "golive verdict" not in run.out


def test_last_failed_is_refused_with_a_usage_error(tmp_path: Path) -> None:
    # as an operator types it (golive_run adds -p no:cacheprovider, which makes pytest itself refuse --lf)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    for flag in ("--lf", "--sw"):
        proc = subprocess.run([*PYTEST, "--profile", "poc", "--target", "lab", flag, f"--report-dir={tmp_path}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 4 and "not supported by golive runs" in out and "-k CHECK_ID" in out, out
    assert not list(tmp_path.glob("*/report.json"))


# ----------------------------------------------------------------------------- 2. one integrity scope

def _sealed(tmp_path: Path, key: Any = None) -> tuple[Path, dict[str, Any]]:
    src = _golden()
    run_dir = tmp_path / "run"
    doc = write_run(run_dir, {k: src[k] for k in ("golive", "run", "profile", "target")}, src["verdict"],
                    src["results"], src["waivers"], sign_key=key)
    return run_dir, doc


def test_verify_covers_report_html_and_junit(tmp_path: Path) -> None:
    run_dir, _ = _sealed(tmp_path)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"report.json", "report.html", "junit.xml"}
    assert manifest["profile"]["sha256"] and manifest["target"]["name"] == "prod" and manifest["golive_version"]
    ok = _golive("verify", str(run_dir))
    assert ok.returncode == 0 and "VERIFIED" in ok.stdout and "not signed" in ok.stdout, ok.stdout
    html = (run_dir / "report.html").read_text()
    (run_dir / "report.html").write_text(html.replace(">NO-GO<", ">GO<"))
    bad = _golive("verify", str(run_dir / "report.json"))
    assert bad.returncode == 1 and "report.html: ALTERED" in bad.stdout, bad.stdout
    (run_dir / "report.html").write_text(html)
    (run_dir / "junit.xml").write_text((run_dir / "junit.xml").read_text().replace('failures="', 'failures="0'))
    assert "junit.xml: ALTERED" in _golive("verify", str(run_dir)).stdout


def test_a_forgery_with_recomputed_digests_needs_the_signature_to_be_caught(tmp_path: Path) -> None:
    from golive.manifest import write_manifest

    run_dir, doc = _sealed(tmp_path)
    results = [dict(r, status="pass") if r["status"] in ("fail", "error") else r for r in doc["results"]]
    forged = build({k: doc[k] for k in ("golive", "run", "profile", "target")},
                   decide_dicts(results, Severity.HIGH).to_dict(), results, doc["waivers"])
    (run_dir / "report.json").write_text(json.dumps(forged))
    caught = _golive("verify", str(run_dir))
    assert caught.returncode == 1 and "report.json: ALTERED" in caught.stdout
    write_manifest(run_dir, forged)  # the forger recomputes the manifest too: only a signature tells
    fooled = _golive("verify", str(run_dir))
    assert fooled.returncode == 0 and "not signed" in fooled.stdout
    gate = _golive("verify", str(run_dir), "--require-signature")
    assert gate.returncode == 1 and "--require-signature" in gate.stdout


def test_signed_folder_verifies_with_the_key_and_a_stripped_signature_is_caught(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    run_dir, _ = _sealed(tmp_path, key)
    for k, name in ((key, "pub.pem"), (other, "other.pem")):
        (tmp_path / name).write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    good = _golive("verify", str(run_dir), "--pubkey", str(tmp_path / "pub.pem"), "--require-signature")
    assert good.returncode == 0 and "signature valid" in good.stdout, good.stdout
    wrong = _golive("verify", str(run_dir), "--pubkey", str(tmp_path / "other.pem"))
    assert wrong.returncode == 1 and "BAD SIGNATURE" in wrong.stdout
    (run_dir / "manifest.json.sig").unlink()
    stripped = _golive("verify", str(run_dir))  # even without the key
    assert stripped.returncode == 1 and "the run was signed, the signature is gone" in stripped.stdout


def test_render_summary_diff_and_compare_refuse_an_altered_report(tmp_path: Path, golive_run) -> None:  # type: ignore[no-untyped-def]
    doc = _golden()
    doc["verdict"]["decision"] = "GO"
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc))
    for args in (("render", str(altered), "--out", str(tmp_path / "out")), ("summary", str(altered)),
                 ("diff", str(GOLDEN / "report.json"), str(altered))):
        p = _golive(*args)
        assert p.returncode == 4 and "ALTERED" in p.stderr and "refusing" in p.stderr, (args, p.stdout, p.stderr)
    assert not (tmp_path / "out").exists()
    run_dir, _ = _sealed(tmp_path)
    sealed = _golive("render", str(run_dir / "report.json"))
    assert sealed.returncode == 4 and "--out" in sealed.stderr
    cmp = golive_run("--profile", "poc", "--target", "lab", "-m", "ports", f"--compare={altered}")
    assert cmp.rc == 4 and "--compare" in cmp.out and "ALTERED" in cmp.out


# ----------------------------------------------------------------------------- 3. waivers

def _waivers(tmp_path: Path, body: str, max_days: int = 180) -> Waivers:
    return Waivers.load(write_target(tmp_path, "waivers:\n" + body, "w.yaml"), max_days=max_days)


def _entry(check: str = "hosts.cpu_cores[*]", approver: str = "J. Doe", days: int = 30, extra: str = "") -> str:
    return (f"  - check: \"{check}\"\n    justification: pilot until CHG-1\n    approver: \"{approver}\"\n"
            f"    expires: {TODAY + dt.timedelta(days=days)}\n{extra}")


@pytest.mark.parametrize("pattern", ["*", "*.cpu_cores[*]", "h*.cpu_cores", "nosuch.thing"])
def test_a_waiver_pattern_stays_within_one_family(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ConfigError, match="family") as exc:
        _waivers(tmp_path, _entry(pattern))
    assert ":3:" in str(exc.value) or ":2:" in str(exc.value)
    assert _waivers(tmp_path, _entry("tls.*")).entries[0].check == "tls.*"


def test_blank_approver_and_self_approval_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="approver is blank"):
        _waivers(tmp_path, _entry(approver="  "))
    with pytest.raises(ConfigError, match="author"):
        _waivers(tmp_path, _entry(approver="A. Dev", extra="    author: a. dev\n"))
    assert _waivers(tmp_path, _entry(approver="J. Doe", extra="    author: A. Dev\n")).entries[0].author == "A. Dev"


def test_expiry_is_bounded_by_the_profiles_maximum(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="more than 180 days ahead") as exc:
        _waivers(tmp_path, _entry(days=3650))
    assert "w.yaml:5" in str(exc.value)
    with pytest.raises(ConfigError, match="more than 30 days"):
        _waivers(tmp_path, _entry(days=60), max_days=30)
    prof = write_target(tmp_path, "name: short\ndescription: x\nextends: poc\nwaivers: {max_days: 30}\n", "short.yaml")
    assert load_profile(prof).profile.waivers.max_days == 30
    assert load_profile("poc").profile.waivers.max_days == 180


def test_applied_lists_only_waivers_that_changed_a_result(tmp_path: Path) -> None:
    w = _waivers(tmp_path, _entry("hosts.cpu_cores[*]") + _entry("hosts.memory[*]") + _entry("tls.*"))
    assert w.apply(_result("hosts.cpu_cores[a]", Status.FAIL)).status == Status.WAIVED
    assert w.apply(_result("hosts.memory[a]", Status.ERROR)).status == Status.ERROR  # errors are not waivable
    s = w.summary()
    assert [r["key"] for r in s["applied"]] == ["hosts.cpu_cores[*]"]
    unused = {r["key"]: r["why"] for r in s["unused"]}
    assert set(unused) == {"hosts.memory[*]", "tls.*"}
    assert "could not be verified" in unused["hosts.memory[*]"] and "no check" in unused["tls.*"]
    html = render_html({**_golden(), "waivers": s})
    assert "Unused (2)" in html and "errors cannot be waived" in html


# ----------------------------------------------------------------------------- 4 and 11. attestations

ATTEST = """attestations:
  - check: {check}
    fact: the data volume is SSD-backed (provider volume type gp3)
    evidence: {{sha256: {sha}, url: "https://cmdb.example.invalid/v/1"}}
    attester: J. Doe, Platform team
    date: {date}
    expires: {expires}
"""


def _attestations(tmp_path: Path, check: str = "hosts.storage[db-1]", expires: dt.date | None = None,
                  attestable: list[str] | None = None) -> Attestations:
    text = ATTEST.format(check=check, sha="a" * 64, date=TODAY - dt.timedelta(days=1),
                         expires=expires or TODAY + dt.timedelta(days=30))
    return Attestations.load(write_target(tmp_path, text, "attestations.yaml"),
                             ["hosts.storage", "hosts.nic_speed"] if attestable is None else attestable, "poc")


def _unverifiable(cid: str = "hosts.storage[db-1]") -> Measurement:
    return Measurement.failed("virtio disk: the media type is not visible from the guest",
                              Evidence(probe="hosts.storage", subject="db-1", method="lsblk -d -o ROTA"))


def test_attestation_settles_only_an_unverifiable_attestable_check(tmp_path: Path) -> None:
    att = _attestations(tmp_path)
    checks = Checks(ScenarioInfo(feature="Hosts", scenario="Storage", tags=("medium",)), Waivers(), att)
    r = checks.record("hosts.storage[db-1]", block=None, expected="SSD or NVME", measurement=_unverifiable(),
                      ok=lambda v: v == "ssd")
    assert r.status == Status.ATTESTED and r.attestation and r.attestation["attester"] == "J. Doe, Platform team"
    assert r.measured.startswith("attested: the data volume is SSD-backed") and "virtio" in r.reason
    # a measured failure is not overridden; a measurement wins
    measured = Measurement(value="hdd", display="HDD", evidence=_unverifiable().evidence)
    assert checks.record("hosts.storage[db-1]", block=None, expected="SSD", measurement=measured,
                         ok=lambda v: v == "ssd").status == Status.FAIL
    assert att.summary()["applied"][0]["check"] == "hosts.storage[db-1]"
    # the verdict counts it as compliant
    assert decide([r], Severity.LOW).decision == "GO"


def test_attestation_rules_not_attestable_expired_future(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not attestable in profile poc"):
        _attestations(tmp_path, check="hosts.cpu_cores[db-1]")
    expired = _attestations(tmp_path, expires=TODAY - dt.timedelta(days=1))
    checks = Checks(ScenarioInfo(), Waivers(), expired)
    r = checks.record("hosts.storage[db-1]", block=None, expected="SSD", measurement=_unverifiable(), ok=bool)
    assert r.status == Status.ERROR and "attestation expired" in r.reason
    assert expired.summary()["expired"] and not expired.summary()["applied"]
    with pytest.raises(ConfigError, match="in the future"):
        Attestations.load(write_target(tmp_path, ATTEST.format(check="hosts.storage", sha="b" * 64,
                          date=TODAY + dt.timedelta(days=3), expires=TODAY + dt.timedelta(days=9)), "f.yaml"),
                          ["hosts.storage"])
    with pytest.raises(ConfigError, match="sha256"):
        Attestations.load(write_target(tmp_path, ATTEST.format(check="hosts.storage", sha="nothex", date=TODAY,
                          expires=TODAY), "g.yaml"), ["hosts.storage"])


def test_attested_results_are_shown_apart_in_the_report(tmp_path: Path) -> None:
    att = _attestations(tmp_path)
    checks = Checks(ScenarioInfo(feature="Hosts", scenario="Storage is solid-state"), Waivers(), att)
    r = checks.record("hosts.storage[db-1]", block=None, expected="SSD", measurement=_unverifiable(), ok=bool)
    doc = _golden()
    results = [*doc["results"], r.to_dict()]
    html = render_html(build({k: doc[k] for k in ("golive", "run", "profile", "target")},
                             decide_dicts(results, Severity.HIGH).to_dict(), results, doc["waivers"],
                             attestations=att.summary()))
    section = html[html.index('id="attested-h"'):html.index('<nav aria-label="Contents"')]
    assert "Attested, not measured (1)" in section and "hosts.storage[db-1]" in section
    assert "sha256 " + "a" * 64 in section and "J. Doe, Platform team" in section
    assert '<span class="badge attested">ATTESTED</span>' in html


def test_shipped_profiles_let_operators_attest_storage_media_and_nic_speed() -> None:
    for path in sorted((ROOT / "profiles").glob("*.yaml")):
        prof = load_profile(str(path))
        hosts = prof.req.hosts
        sizings = [s for s in ([hosts.default, *list(hosts.roles.values())]) if s] if hosts else []
        if any(s.disk and s.disk.media != "any" for s in sizings):
            assert "hosts.storage" in prof.profile.attestable, path.name
        if any(s.nic_speed for s in sizings):
            assert "hosts.nic_speed" in prof.profile.attestable, path.name


# ----------------------------------------------------------------------------- 6. check-config

def test_check_config_loads_the_default_waivers_and_reports_every_problem(tmp_path: Path) -> None:
    target = write_target(tmp_path, "name: t\nhosts:\n  - name: a\n    connection: local://\n    roles: [app]\n")
    (tmp_path / "waivers.yaml").write_text("waivers:\n" + _entry("*"))
    one = _golive("check-config", "--profile", "poc", "--target", target)
    assert one.returncode == 4 and "waivers.yaml:2" in one.stderr and "family" in one.stderr, one.stderr
    (tmp_path / "attestations.yaml").write_text(ATTEST.format(check="hosts.storage", sha="not-hex", date=TODAY,
                                                              expires=TODAY))
    bad_profile = write_target(tmp_path, "name: bad\ndescription: x\nextends: poc\nrequirements:\n  hosts:\n"
                               "    default: {memory: 32}\n  tls: {min_versoin: '1.2'}\n", "bad.yaml")
    many = _golive("check-config", "--profile", bad_profile, "--target", target)
    assert many.returncode == 4
    err = many.stderr
    assert "bad.yaml" in err and "memory" in err and "min_versoin" in err, err
    assert "waivers.yaml" in err and "attestations.yaml" in err and "4 problems found" in err, err
    (tmp_path / "waivers.yaml").write_text("waivers:\n" + _entry("hosts.*"))
    (tmp_path / "attestations.yaml").write_text(ATTEST.format(check="hosts.storage", sha="c" * 64, date=TODAY,
                                                              expires=TODAY))
    ok = _golive("check-config", "--profile", "poc", "--target", target)
    assert ok.returncode == 0 and "ok: waivers" in ok.stdout and "ok: attestations" in ok.stdout, ok.stderr


# ----------------------------------------------------------------------------- 8. extends

def test_a_profile_anywhere_extends_a_shipped_one_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    ops = tmp_path / "ops" / "profiles"
    ops.mkdir(parents=True)
    (ops / "mine.yaml").write_text("name: mine\ndescription: ours\nextends: poc\n")
    (tmp_path / "ops" / "child.yaml").write_text("name: child\ndescription: c\nextends: profiles/mine.yaml\n")
    p = _golive("check-config", "--profile", str(tmp_path / "ops" / "child.yaml"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    prof = load_profile(str(tmp_path / "ops" / "child.yaml"))
    assert prof.files[-1].endswith("profiles/base.yaml") and prof.req.hosts and prof.req.hosts.software
    (ops / "typo.yaml").write_text("name: typo\ndescription: t\nextends: pco\n")
    with pytest.raises(ConfigError, match="extends unknown profile 'pco'") as exc:
        load_profile(str(ops / "typo.yaml"))
    assert "poc" in exc.value.fix


# ----------------------------------------------------------------------------- 9. per-threshold basis

def test_thresholds_say_whether_the_seed_states_them_or_golive_chose_them() -> None:
    ml = load_profile("medium-load")
    assert ml.req.ha and ml.req.ha.basis["failover_max"].startswith("golive:")
    assert ml.req.http and ml.req.http.basis["hsts_min_age"].startswith("golive:")
    checks = Checks(ScenarioInfo(), Waivers())
    r = checks.record("http.hsts[x]", block=ml.req.http, expected=">= 180 d",
                      measurement=Measurement(value=1, display="1 d", evidence=_unverifiable().evidence),
                      ok=lambda v: False)
    assert "hsts_min_age" in r.requirement.to_dict()["basis"]
    html = render_html({**_golden(), "results": [r.to_dict()]})
    assert "<code>hsts_min_age</code>: chosen by golive" in html
    with pytest.raises(Exception, match="basis"):
        from checks.http.family import HttpReq

        HttpReq.model_validate({"basis": {"hsts_min_age": "because"}})


# ----------------------------------------------------------------------------- 10. honest report wording

def test_counts_exclude_skipped_titles_are_unique_and_errors_say_how_to_verify() -> None:
    doc = _golden()
    base = {k: v for k, v in doc["results"][0].items() if k not in ("id", "status", "scenario")}
    results = [dict(base, id="hosts.os[a]", status="pass", scenario="Operating system"),
               dict(base, id="hosts.os_recommended[a]", status="error", scenario="Operating system",
                    remediation="upgrade to Ubuntu 22.04", reason="ssh: timed out"),
               dict(base, id="tls.protocols[x]", status="skip", scenario="TLS")]
    verdict = decide_dicts(results, Severity.HIGH).to_dict()
    d = build({k: doc[k] for k in ("golive", "run", "profile", "target")}, verdict, results, doc["waivers"])
    html = render_html(d)
    assert "2 checks ran, 1 skipped" in html
    assert "Operating system (hosts.os)" in html and "Operating system (hosts.os_recommended)" in html
    item = html[html.index('id="check-hosts.os_recommended-a"'):]
    item = item[: item.index("</article>")]
    assert "To make it verifiable" in item and "upgrade to Ubuntu" not in item
    assert "2 ran:" in render_text(d) and "1 skipped" in render_text(d)


def test_error_results_carry_verifiability_remediation() -> None:
    checks = Checks(ScenarioInfo(), Waivers())
    r = checks.record("hosts.cpu_cores[a]", block=None, expected=">= 2", measurement=_unverifiable(), ok=bool,
                      remediation="give a 2 vCPU")
    assert r.status == Status.ERROR and "make the item verifiable" in r.remediation and "2 vCPU" not in r.remediation
    assert Requirement().to_dict()["basis"] == {}
    # a check that says how to make it verifiable keeps its own hint (declared checks' verify_hint)
    r = checks.record("http.health", block=None, expected="HTTP 200", measurement=_unverifiable(), ok=bool,
                      remediation="fix the endpoint", verify_hint="make endpoints.health reachable")
    assert r.status == Status.ERROR and r.remediation == "make endpoints.health reachable"
    assert checks.error("x.y", "unreachable", verify_hint="name the host").remediation == "name the host"
    assert "make the item verifiable" in checks.error("x.y", "unreachable").remediation


def test_example_waiver_and_attestation_files_load() -> None:
    w = Waivers.load(ROOT / "examples" / "waivers.yaml", today=dt.date(2026, 11, 1))
    assert w.entries and all(e.approver for e in w.entries)
    a = Attestations.load(ROOT / "examples" / "attestations.yaml", load_profile("poc").profile.attestable, "poc",
                          today=dt.date(2026, 12, 1))
    assert a.entries[0].check == "hosts.storage[db-1]"


def test_ci_examples_gate_on_complete_verified_runs() -> None:
    for path in (ROOT / "examples" / "ci" / "github-actions.yml", ROOT / "examples" / "ci" / "gitlab-ci.yml",
                 ROOT / "docs" / "ci.md"):
        text = path.read_text()
        runs = [line for line in text.splitlines() if "pytest --profile" in line]
        assert runs, path
        for i, line in enumerate(text.splitlines()):
            if "pytest --profile" in line:
                cont = text.splitlines()[i + 1]  # a continued command line, or the prose's next line
                assert "--require-complete" in line + cont, (path.name, line)
        assert 'golive verify "$(dirname' in text and "--require-signature" in text, path.name


def test_attestable_names_declared_checks_only(tmp_path: Path) -> None:
    bad = write_target(tmp_path, "name: x\ndescription: x\nattestable: [hosts.storage, hosts.disk_media]\n", "x.yaml")
    with pytest.raises(ConfigError, match=r"hosts\.disk_media.*not a golive check") as exc:
        load_profile(bad)
    assert "x.yaml:3" in str(exc.value)
