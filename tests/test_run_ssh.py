"""The host family over a real OpenSSH server on loopback (lab/sshd.py), end to end:
the same facts as the local backend, and a refused key is `error`, not fail."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import write_target
from lab.sshd import start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):  # type: ignore[no-untyped-def]
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sshd_wrong_key(tmp_path_factory):  # type: ignore[no-untyped-def]
    server = start_sshd(tmp_path_factory.mktemp("sshd-bad"), authorized=False)
    yield server
    server.stop()


def _target(tmp_path: Path, server, name: str = "ssh-host") -> str:  # type: ignore[no-untyped-def]
    return write_target(tmp_path, f"""name: over-ssh
hosts:
  - name: {name}
    connection: {server.uri}
    ssh_config: {server.ssh_config}
    ssh_identity_file: {server.identity_file}
    roles: [inference]
    data_path: /
    timeout_s: 10
""")


def test_host_facts_over_ssh_match_this_machine(tmp_path, golive_run, sshd) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target=" + _target(tmp_path, sshd), "-m", "hosts")
    cores = run.one("hosts.cpu_cores[ssh-host]")
    assert cores["status"] == "fail" and cores["measured"] == f"{len(os.sched_getaffinity(0))} vCPU", cores
    assert "ssh backend" in cores["evidence"][0]["tool"], cores["evidence"]
    assert cores["evidence"][0]["subject"] == "ssh-host"
    assert run.one("hosts.memory[ssh-host]")["status"] == "fail"
    assert run.one("hosts.os[ssh-host]")["status"] == "pass"
    py = run.one("hosts.software.python[ssh-host]")
    assert py["status"] == "pass" and py["measured"].startswith("python 3."), py
    assert run.rc == 1


def test_refused_key_is_error_with_reason(tmp_path, golive_run, sshd_wrong_key) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target=" + _target(tmp_path, sshd_wrong_key, "locked"), "-m", "hosts")
    cores = run.one("hosts.cpu_cores[locked]")
    assert cores["status"] == "error", cores
    assert "permission denied" in cores["reason"].lower(), cores
    assert run.report["verdict"]["decision"] == "NO-GO"
