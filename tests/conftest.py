"""Shared fixtures for golive's self-tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest"]
PYCACHE = Path(os.environ.get("GOLIVE_TEST_PYCACHE", "/tmp/golive-test-pycache"))


@pytest.fixture(scope="session", autouse=True)
def _lab_image_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One assembled root filesystem per lab container image (lab/images.py) for the whole
    session: every golive run starts its own private engine and imports the images, but the
    tars are built once.  Inherited by the golive subprocesses through the environment."""
    if "GOLIVE_LAB_IMAGE_CACHE" not in os.environ:
        os.environ["GOLIVE_LAB_IMAGE_CACHE"] = str(tmp_path_factory.mktemp("lab-images"))


class GoliveRun:
    """The outcome of one ``pytest --profile ... --target ...`` run in a subprocess."""

    def __init__(self, proc: subprocess.CompletedProcess[str], report_dir: Path) -> None:
        self.proc = proc
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        runs = sorted(report_dir.glob("*/report.json"))
        self.run_dir = runs[-1].parent if runs else None
        self.report: dict[str, Any] = json.loads(runs[-1].read_text()) if runs else {}

    def results(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.report.get("results", []) if r["id"].startswith(prefix)}

    def one(self, prefix: str) -> dict[str, Any]:
        found = self.results(prefix)
        assert len(found) == 1, f"expected one result for {prefix}, got {sorted(found)}\n{self.out[-3000:]}"
        return next(iter(found.values()))


def golive_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a golive subprocess: this one's (with the session's lab image
    cache), plus ``env``, without the outer pytest's options."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTEST_ADDOPTS", None)
    # each golive subprocess would otherwise compile sslyze, kubernetes, ... again (~5 s)
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    full_env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    return full_env


@pytest.fixture
def golive_run(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run golive (pytest over suites/) in a subprocess; returns a :class:`GoliveRun`."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> GoliveRun:
        report_dir = tmp_path / f"reports-{len(list(tmp_path.glob('reports-*')))}"
        cmd = [*PYTEST, "-p", "no:cacheprovider", f"--report-dir={report_dir}", *args]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=golive_env(env),
                              check=False)
        return GoliveRun(proc, report_dir)

    return run


class ConcurrentRuns:
    """golive runs started together, each a subprocess with its own report folder, then
    collected within one bound: a run past it gets SIGTERM (golive stops its lab and writes
    its report) and, a minute later, SIGKILL.  The seed labs' self-tests use it to keep
    their several lab runs inside CI's time budget."""

    def __init__(self, tmp: Path, timeout_s: float = 420, env: dict[str, str] | None = None) -> None:
        self.tmp, self.timeout_s, self.env = tmp, timeout_s, env or {}
        self.started: dict[str, tuple[subprocess.Popen[str], Path]] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        report_dir = self.tmp / f"reports-{name}"
        cmd = [*PYTEST, "-p", "no:cacheprovider", f"--report-dir={report_dir}", *args]
        # output to files, not pipes: a run nobody is reading yet must never block on a full pipe
        with (self.tmp / f"{name}.out").open("w") as out, (self.tmp / f"{name}.err").open("w") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=golive_env({**self.env, **(env or {})}),
                                    stdout=out, stderr=err, text=True)
        self.started[name] = (proc, report_dir)

    def finish(self, *names: str) -> dict[str, GoliveRun]:
        """Wait for ``names`` (default: every run started and not yet finished)."""
        deadline = time.monotonic() + self.timeout_s
        done = {}
        for name in names or list(self.started):
            proc, report_dir = self.started.pop(name)
            note = ""
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()  # golive stops its lab on SIGTERM
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                note = f"\n[test] golive did not finish within {self.timeout_s:.0f} s\n"
            out = (self.tmp / f"{name}.out").read_text(errors="replace")
            err = (self.tmp / f"{name}.err").read_text(errors="replace") + note
            done[name] = GoliveRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), report_dir)
        return done

    def kill_all(self) -> None:
        """Every run still going (a failed fixture): killed and reaped."""
        for proc, _ in self.started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        self.started.clear()


def base_id(result_id: str) -> str:
    """``family.check`` of a result id (its ``[subject]`` dropped)."""
    return result_id.split("[", 1)[0]


def outcome(results: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str, str | None]]:
    """Every result as (status, measured display, reason): what a failed assertion prints, so
    that a lab that could not start says why (the reason) instead of only 'could not measure'."""
    return {k: (v["status"], v["measurement"]["display"], v.get("reason")) for k, v in results.items()}


def assert_no_secret(run: GoliveRun, secret: str) -> None:
    """``secret`` is nowhere in the run's output or in any file of its run folder."""
    assert secret not in run.out
    assert run.run_dir is not None
    for f in run.run_dir.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f"the secret leaked into {f}"


def unexpected_results(results: dict[str, dict[str, Any]], allowed: dict[str, set[str]]) -> dict[str, Any]:
    """Results that neither passed nor were skipped, except a check of ``allowed`` (what
    this machine cannot meet) with one of its allowed statuses: (status, display, reason)."""
    unexpected = {}
    for rid, r in results.items():
        status = r["status"]
        if status in ("pass", "skip") or status in allowed.get(base_id(rid), ()):
            continue
        unexpected[rid] = (status, r["measurement"]["display"], r.get("reason"))
    return unexpected


def write_target(tmp_path: Path, text: str, name: str = "target.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)
