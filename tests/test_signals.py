"""SIGTERM (how CI cancels a job) and SIGHUP (a closed terminal) end a run like Ctrl-C
(issue #14, item 2): disruptive work is stopped or undone, a complete NO-GO report marked
interrupted is written, the check that was running is ``error: interrupted``, temporary
files (the lab's folder with its TLS private key) are removed, and pytest exits 2."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PYCACHE, ROOT, write_target


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path, Path]:
    report_dir = tmp_path / "reports"
    # the run's TMPDIR, where the lab's folder is made; short, for ssh's ControlPath
    tmpdir = Path(tempfile.mkdtemp(prefix="gl-sig-"))
    _TMPDIRS.append(tmpdir)
    env = {**os.environ, "TMPDIR": str(tmpdir), "GOLIVE_PROGRESS_EVERY_S": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v",
                             f"--report-dir={report_dir}", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return proc, report_dir, tmpdir


_TMPDIRS: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_tmpdirs() -> Iterator[None]:
    yield
    while _TMPDIRS:
        shutil.rmtree(_TMPDIRS.pop(), ignore_errors=True)


def _wait_for(proc: subprocess.Popen[str], needle: str, limit_s: float) -> str:
    """Read the run's output until ``needle`` appears (the run is then mid-check)."""
    assert proc.stdout is not None
    seen: list[str] = []
    end = time.monotonic() + limit_s
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if line:
            seen.append(line)
            if needle in line:
                os.set_blocking(proc.stdout.fileno(), True)
                return "".join(seen)
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.1)
    os.set_blocking(proc.stdout.fileno(), True)
    proc.kill()
    raise AssertionError(f"never saw {needle!r}:\n{''.join(seen)[-4000:]}")


def _finish(proc: subprocess.Popen[str], sig: signal.Signals, before: str) -> str:
    proc.send_signal(sig)
    try:
        out = before + proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def _interrupted_report(report_dir: Path, out: str) -> dict[str, Any]:
    runs = list(report_dir.glob("*/report.json"))
    assert len(runs) == 1, out[-4000:]
    doc: dict[str, Any] = json.loads(runs[0].read_text())
    assert doc["verdict"]["decision"] == "NO-GO"
    assert doc["verdict"]["complete"] is False
    assert "interrupted" in doc["verdict"]["reason"]
    assert (runs[0].parent / "report.html").exists() and (runs[0].parent / "junit.xml").exists()
    verify = subprocess.run([sys.executable, "-m", "golive.cli", "verify", str(runs[0])], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert verify.returncode == 0, verify.stdout
    return doc


def test_sigterm_mid_throughput_run_reports_and_removes_the_lab_folder(tmp_path: Path) -> None:
    profile = tmp_path / "tp.yaml"
    profile.write_text(yaml.safe_dump({"name": "tp-long", "description": "long throughput run",
                                       "requirements": {"throughput": {"ref": ["OZ-PERF-00"], "apm_min": 60,
                                                                       "duration": "120 s"}}}))
    target = write_target(tmp_path, "name: sig-lab\nenvironment: lab\nlab:\n  variant: compliant\n  cost_ms: 10\n")
    proc, report_dir, tmpdir = _start(tmp_path, f"--profile={profile}", f"--target={target}", "--allow-disruptive",
                                      "-m", "throughput")
    before = _wait_for(proc, "throughput:", 180)  # the load is running
    assert list(tmpdir.glob("golive-lab-*")), "the lab folder exists while the run is on"
    out = _finish(proc, signal.SIGTERM, before)
    assert proc.returncode == 2, out[-4000:]
    doc = _interrupted_report(report_dir, out)
    errors = [r for r in doc["results"] if r["status"] == "error" and "interrupted (SIGTERM)" in (r["reason"] or "")]
    assert errors and errors[0]["id"].startswith("throughput"), [(r["id"], r["status"], r["reason"])
                                                                 for r in doc["results"]]
    assert not list(tmpdir.glob("golive-lab-*")), "the lab's folder (TLS private key) must be removed"


def test_sigterm_mid_restore_drill_cleans_the_scratch_and_reports(tmp_path: Path) -> None:
    live = tmp_path / "live.sqlite3"
    with sqlite3.connect(live) as db:
        db.execute("create table t (x)")
        db.execute("insert into t values (1)")
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "app.sqlite3.enc").write_bytes(b"Salted__" + os.urandom(4096))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    marker = tmp_path / "decrypting"
    profile = tmp_path / "bk.yaml"
    profile.write_text(yaml.safe_dump({"name": "bk", "description": "restore drill",
                                       "requirements": {"backups": {"ref": ["DS-BAK-01"], "rto": "10 min"}}}))
    target = write_target(tmp_path, yaml.safe_dump({"name": "sig-backups", "backups": [{
        "kind": "sqlite", "location": str(backups), "database": str(live), "scratch": str(scratch),
        # the drill sits in this command when the signal comes
        "decrypt_command": f"touch {marker}; sleep 90; cat"}]}))
    proc, report_dir, _ = _start(tmp_path, "--profile", str(profile), f"--target={target}", "--allow-disruptive",
                                 "suites/test_families.py", "-k", "restores_within")
    end = time.monotonic() + 180
    while not marker.exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), "the drill never reached the decrypt command"
    assert list(scratch.glob("golive-restore-*")), "the drill's scratch folder exists while it runs"
    out = _finish(proc, signal.SIGTERM, "")
    assert proc.returncode == 2, out[-4000:]
    doc = _interrupted_report(report_dir, out)
    restore = [r for r in doc["results"] if r["id"].startswith("backups.") and r["status"] == "error"
               and "interrupted" in (r["reason"] or "")]
    assert restore, [(r["id"], r["status"], r["reason"]) for r in doc["results"]]
    assert not list(scratch.glob("golive-restore-*")), "the scratch folder must be removed"


def test_sighup_ends_a_run_like_ctrl_c(tmp_path: Path) -> None:
    from test_interrupt import _silent_server

    srv, port = _silent_server()
    try:
        target = write_target(tmp_path, f"""name: hung
hosts:
  - name: hung-host
    connection: ssh://nobody@127.0.0.1:{port}
    roles: [inference]
    timeout_s: 60
""")
        proc, report_dir, _ = _start(tmp_path, "--profile", "poc", f"--target={target}", "-m", "hosts")
        before = _wait_for(proc, "suites/test_", 120)
        time.sleep(3)
        out = _finish(proc, signal.SIGHUP, before)
    finally:
        srv.close()
    assert proc.returncode == 2, out[-4000:]
    doc = _interrupted_report(report_dir, out)
    assert any(r["status"] == "error" and "interrupted (SIGHUP)" in (r["reason"] or "") for r in doc["results"])
