"""GPU presence and memory (hosts.gpu), end to end through golive.

No GPU can be had on these machines. The FAIL case is real: this host has no nvidia-smi.
For the PASS case a stand-in `nvidia-smi` on PATH prints what `nvidia-smi
--query-gpu=index,name,memory.total,driver_version --format=csv,noheader,nounits` prints on
an H100 machine. The probe code is the same one that runs against a real driver. Sessions lent
a GPU machine run the same family there for real (see the issue notes).
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from conftest import write_target

H100 = "0, NVIDIA H100 80GB HBM3, 81559, 535.129.03\n"
SMALL = "0, NVIDIA T400 4GB, 4096, 535.129.03\n"


def _local_target(tmp_path: Path) -> str:
    return write_target(tmp_path, "name: gpu-host\nhosts:\n  - {name: node, connection: 'local://', roles: [inference]}\n")


def _stub(tmp_path: Path, output: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a real nvidia-smi")
def test_no_gpu_fails_the_large_dataset_tier(tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "strv-large-dataset", f"--target={_local_target(tmp_path)}", "-m", "hosts")
    gpu = run.one("hosts.gpu[node]")
    assert gpu["status"] == "fail" and gpu["measured"].startswith("no GPU"), gpu
    assert gpu["requirement"]["ids"] == ["ST-LG-HW-01", "ST-LG-GPU-01"]


def test_an_h100_passes_and_a_4_gb_card_fails(tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ok = golive_run("--profile", "strv-large-dataset", f"--target={_local_target(tmp_path / 'a')}", "-m", "hosts",
                    env=_stub(tmp_path / "a", H100))
    gpu = ok.one("hosts.gpu[node]")
    assert gpu["status"] == "pass" and "H100" in gpu["measured"], gpu
    small = golive_run("--profile", "strv-large-dataset", f"--target={_local_target(tmp_path / 'b')}", "-m", "hosts",
                       env=_stub(tmp_path / "b", SMALL))
    gpu = small.one("hosts.gpu[node]")
    assert gpu["status"] == "fail" and "T400" in gpu["measured"], gpu


def test_gpu_not_required_is_skipped(tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "strv-minimum", f"--target={_local_target(tmp_path)}", "-m", "hosts")
    gpu = run.one("hosts.gpu[node]")
    assert gpu["status"] == "skip" and "no GPU required" in gpu["reason"]
