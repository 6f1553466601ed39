"""Self-tests of the release family against the lab's release service (lab/release_app.py),
compliant and with each flaw switched on, plus a silent and a slow-byte server for the
deadlines.  Each check FAILS on its broken variant and PASSES on the compliant service.

Traffic goes to loopback only.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.connection import get_host
from golive import checkdef, registry
from golive.model import Status
from golive.target import target_model
from lab.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
FAMILY = registry.load("release")
REQ = FAMILY.profile_block() if FAMILY.profile_block else None  # type: ignore[misc]


class Release:
    def __init__(self, *flaws: str, version: str = "1.4.2") -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "lab.release_app", "--port", str(self.port),
                                      "--version", version, *[a for f in flaws for a in ("--break", f)]],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("release app did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Release]]:
    started: dict[str, Release] = {}
    try:
        for name, flaws, version in (
                ("compliant", (), "1.4.2"), ("old", (), "1.4.1"), ("crash_on_get", ("crash_on_get",), "1.4.2"),
                ("crash", ("crash_on_malformed",), "1.4.2"),
                ("debug", ("crash_on_malformed", "debug_pages"), "1.4.2"),
                ("anonymous", ("anonymous_uploads",), "1.4.2"), ("smoke", ("smoke_fails",), "1.4.2")):
            started[name] = Release(*flaws, version=version)
        yield started
    finally:
        for r in started.values():
            r.stop()


SMOKE = [{"name": "create an item", "method": "POST", "path": "/v1/items", "json": {"name": "scan", "size": 3},
          "expect_status": 201, "expect": {"name": "scan"}, "save": {"item": "id"}},
         {"name": "read it back", "path": "/v1/items/{item}", "expect": {"id": "{item}", "size": 3}}]


def _target(url: str, **extra: Any) -> Any:
    release = {"base_url": url, "version": {"path": "/version"}, "uploads": ["/uploads/contract.pdf"],
               "smoke": SMOKE, "timeout_s": 5, "deadline_s": 30, **extra}
    return target_model().model_validate({"name": "t", "hosts": [{"name": "here", "connection": "local://"}],
                                          "release": release})


def _local(spec: Any, probe: Any, *args: Any) -> Any:
    return probe(get_host("local://"), *args, subject=spec.name, timeout_s=10)


def _run(check_id: str, url: str, *, disruptive: bool = True, **extra: Any) -> dict[str, Any]:
    check = FAMILY.by_id(check_id)
    assert check is not None
    target = _target(url, **extra)
    ctx = checkdef.CheckContext.for_test(req=REQ, spec=target.release, target=target, allow_disruptive=disruptive,
                                         host_runner=_local)
    return {r.id: r for r in checkdef.evaluate(check, ctx)}


def test_version_is_the_intended_one(apps: dict[str, Release]) -> None:
    ok = _run("release.version", apps["compliant"].url, intended_version="1.4.2")["release.version[endpoint]"]
    assert ok.status == Status.PASS and ok.value == "1.4.2"
    bad = _run("release.version", apps["old"].url, intended_version="1.4.2")["release.version[endpoint]"]
    assert bad.status == Status.FAIL and bad.value == "1.4.1" and bad.expected.startswith("1.4.2")


def test_version_from_the_ci_environment_and_missing(apps: dict[str, Release], monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GOLIVE_RELEASE_VERSION", "CI_COMMIT_SHA", "GITHUB_SHA"):
        monkeypatch.delenv(var, raising=False)
    [missing] = _run("release.version", apps["compliant"].url).values()
    assert missing.status == Status.ERROR and "GOLIVE_RELEASE_VERSION" in missing.reason
    monkeypatch.setenv("GOLIVE_RELEASE_VERSION", "1.4.1")
    got = _run("release.version", apps["compliant"].url)["release.version[endpoint]"]
    assert got.status == Status.FAIL and got.value == "1.4.2" and "$GOLIVE_RELEASE_VERSION" in got.expected


def test_version_from_a_git_checkout_on_the_host(tmp_path: Path, apps: dict[str, Release]) -> None:
    repo = tmp_path / "app"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "app.py").write_text("print('v')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "release"], check=True)
    subprocess.run([*git, "tag", "v1.4.2"], check=True)
    res = _run("release.version", apps["compliant"].url, intended_version="v1.4.2",
               git={"host": "here", "path": str(repo)})
    assert res["release.version[git@here]"].status == Status.PASS
    assert res["release.version[git@here]"].value["tags"] == ["v1.4.2"]
    other = _run("release.version", apps["compliant"].url, intended_version="v2.0.0",
                 git={"host": "here", "path": str(repo)})["release.version[git@here]"]
    assert other.status == Status.FAIL


def test_every_documented_endpoint_answers(apps: dict[str, Release]) -> None:
    ok = _run("release.endpoints", apps["compliant"].url)
    assert {r.status for r in ok.values()} == {Status.PASS}
    assert ok["release.endpoints[POST /v1/items]"].value == 201
    bad = _run("release.endpoints", apps["crash_on_get"].url)["release.endpoints[GET /v1/items/{item_id}]"]
    assert bad.status == Status.FAIL and bad.value == 500


def test_writes_need_allow_disruptive(apps: dict[str, Release]) -> None:
    res = _run("release.endpoints", apps["compliant"].url, disruptive=False)
    post = res["release.endpoints[POST /v1/items]"]
    assert post.status == Status.SKIP and "disruptive, not allowed" in post.reason
    assert res["release.endpoints[GET /health]"].status == Status.PASS


def test_bad_input_gets_4xx_never_5xx(apps: dict[str, Release]) -> None:
    ok = _run("release.input_validation", apps["compliant"].url)["release.input_validation[POST /v1/items]"]
    assert ok.status == Status.PASS
    assert ok.value == {"malformed JSON": 400, "wrong types": 422, "missing required field": 422,
                        "oversized body": 413}
    bad = _run("release.input_validation", apps["crash"].url)["release.input_validation[POST /v1/items]"]
    assert bad.status == Status.FAIL and bad.value["malformed JSON"] == 500 and bad.value["wrong types"] == 500


def test_errors_show_no_stack_trace(apps: dict[str, Release]) -> None:
    [ok] = _run("release.debug_off", apps["compliant"].url).values()
    assert ok.status == Status.PASS and ok.value == []
    [quiet] = _run("release.debug_off", apps["crash"].url).values()  # 500 with a generic body: not a leak
    assert quiet.status == Status.PASS
    [bad] = _run("release.debug_off", apps["debug"].url).values()
    assert bad.status == Status.FAIL and any(v.startswith("python traceback (POST /v1/items") for v in bad.value)


def test_uploads_are_not_anonymous(apps: dict[str, Release]) -> None:
    [ok] = _run("release.uploads_private", apps["compliant"].url).values()
    assert ok.status == Status.PASS and ok.value == 401
    [bad] = _run("release.uploads_private", apps["anonymous"].url).values()
    assert bad.status == Status.FAIL and bad.value == 200


def test_smoke_sequence(apps: dict[str, Release]) -> None:
    ok = _run("release.smoke", apps["compliant"].url)
    assert [r.status for r in ok.values()] == [Status.PASS, Status.PASS]
    bad = _run("release.smoke", apps["smoke"].url)
    assert bad["release.smoke[1 create an item]"].status == Status.PASS
    read = bad["release.smoke[2 read it back]"]
    assert read.status == Status.FAIL and read.value["status"] == 404
    assert "HTTP 404, expected 200" in read.measured


class _Silent:
    """Accepts connections and never answers (or dribbles a byte a second)."""

    def __init__(self, dribble: bool, headers: bool = False) -> None:
        self.headers = headers
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.dribble = dribble
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        conns = []
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                conns.append(conn)
                if self.dribble:
                    threading.Thread(target=self._drip, args=(conn,), daemon=True).start()
            except OSError:
                continue
        for c in conns:
            c.close()

    def _drip(self, conn: socket.socket) -> None:
        try:
            if self.headers:  # the status line and headers themselves, a byte at a time
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 1000:
                    if self.stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.3)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not self.stop.is_set():
                conn.sendall(b"x")
                time.sleep(0.5)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize(("dribble", "headers"), [(False, False), (True, False), (True, True)],
                         ids=["silent", "slow-body", "slow-headers"])
def test_a_silent_or_slow_server_is_an_error_within_the_deadline(dribble: bool, headers: bool) -> None:
    server = _Silent(dribble, headers)
    try:
        started = time.monotonic()
        [res] = _run("release.debug_off", f"http://127.0.0.1:{server.port}", openapi=None, timeout_s=1,
                     deadline_s=3, error_triggers=[]).values()
        took = time.monotonic() - started
    finally:
        server.close()
    assert res.status == Status.ERROR, res
    assert took < 3 + 2, took


def test_end_to_end_through_the_generic_binding(tmp_path: Path, apps: dict[str, Release], golive_run: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The compliant service is GO on the release family; the token never reaches the report."""
    canary = "golive-canary-7d1f0c9a-release-token"
    profile = tmp_path / "release.yaml"
    profile.write_text("name: release-only\ndescription: the release family\nrequirements:\n"
                       "  release: {ref: [DS-OPS-01, ST-OPS-01, ST-HTTP-01, AW-HTTP-02, AW-HTTP-01, DS-OPS-06]}\n")
    target = tmp_path / "target.yaml"
    target.write_text(f"""name: release-lab
environment: lab
release:
  base_url: {apps['compliant'].url}
  token: ${{RELEASE_TOKEN}}
  intended_version: 1.4.2
  version: {{path: /version}}
  uploads: [/uploads/contract.pdf]
  smoke:
    - {{name: create, method: POST, path: /v1/items, json: {{name: scan, size: 3}}, expect_status: 201,
       save: {{item: id}}}}
    - {{name: read back, path: "/v1/items/{{item}}", expect: {{size: 3}}}}
""")
    run = golive_run(f"--profile={profile}", f"--target={target}", "--allow-disruptive", "-m", "release",
                     env={"RELEASE_TOKEN": canary})
    assert run.rc == 0, run.out[-3000:]
    statuses = {rid: r["status"] for rid, r in run.results("release.").items()}
    assert statuses.pop("release.manual") == "skip"  # the profile requires no manual item
    assert set(statuses.values()) == {"pass"}, statuses
    assert run.one("release.version[")["measurement"]["value"] == "1.4.2"
    assert run.run_dir is not None
    for name in ("report.json", "report.html", "junit.xml"):
        assert canary not in (run.run_dir / name).read_text(), name


def test_manual_items_need_a_valid_attestation(tmp_path: Path, apps: dict[str, Release], golive_run: Any) -> None:
    """release.manual: an item with a valid attestation is `attested`; an expired attestation
    and a missing one leave it `error` (could not verify), which blocks the verdict."""
    profile = tmp_path / "manual.yaml"
    profile.write_text("name: manual-items\ndescription: manual release items\n"
                       "attestable: [release.manual]\nrequirements:\n"
                       "  release:\n    ref: [DS-OPS-07, DS-OPS-09, AW-OPS-03]\n"
                       "    manual: [rollback_plan, security_test_report, staging_pass]\n"
                       "    version: false\n    endpoints: false\n    input_validation: false\n"
                       "    debug_off: false\n    uploads_private: false\n    smoke: false\n")
    target = tmp_path / "target.yaml"
    target.write_text(f"name: manual\nenvironment: lab\nrelease: {{base_url: '{apps['compliant'].url}'}}\n")
    (tmp_path / "attestations.yaml").write_text("""attestations:
  - check: release.manual[rollback_plan]
    fact: "rollback runbook RB-12 reviewed; release 1.4.1 artefact kept in the registry"
    evidence: {sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae}
    attester: "J. Doe, Operations"
    date: 2026-11-30
    expires: 2099-12-31
  - check: release.manual[security_test_report]
    fact: "penetration test report PT-7"
    evidence: {url: https://docs.example.invalid/pt-7}
    attester: "A. Auditor"
    date: 2025-01-10
    expires: 2025-06-30
""")
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "release")
    res = run.results("release.manual")
    assert res["release.manual[rollback_plan]"]["status"] == "attested", res
    assert res["release.manual[rollback_plan]"]["requirement"]["ids"] == ["DS-OPS-09"]
    expired = res["release.manual[security_test_report]"]
    assert expired["status"] == "error" and "expired" in expired["reason"], expired
    missing = res["release.manual[staging_pass]"]
    assert missing["status"] == "error" and "attest it" in missing["reason"]
    assert run.report["verdict"]["decision"] != "GO" and run.rc == 1
