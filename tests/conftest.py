"""Shared fixtures for golive's self-tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
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


@pytest.fixture
def golive_run(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run golive (pytest over suites/) in a subprocess; returns a :class:`GoliveRun`."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> GoliveRun:
        report_dir = tmp_path / f"reports-{len(list(tmp_path.glob('reports-*')))}"
        cmd = [*PYTEST, "-p", "no:cacheprovider", f"--report-dir={report_dir}", *args]
        full_env = {**os.environ, **(env or {})}
        full_env.pop("PYTEST_ADDOPTS", None)
        # each golive subprocess would otherwise compile sslyze, kubernetes, ... again (~5 s)
        full_env.pop("PYTHONDONTWRITEBYTECODE", None)
        full_env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
                              check=False)
        return GoliveRun(proc, report_dir)

    return run


def write_target(tmp_path: Path, text: str, name: str = "target.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)
