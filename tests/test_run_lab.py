"""End to end: ``pytest --profile ... --target ...`` against the real lab and its broken
variants, asserting on the verdict, the exit code and the measured values in report.json."""
from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import write_target
from lab.procs import free_port


def lab_target(tmp_path: Path, variant: str) -> str:
    return write_target(tmp_path, f"name: lab-{variant}\nenvironment: lab\nlab:\n  variant: {variant}\n",
                        f"lab-{variant}.yaml")


def test_poc_on_the_lab_is_an_honest_no_go_with_this_machines_figures(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts or ports")
    assert run.rc == 1, run.out
    assert run.report["verdict"]["decision"] == "NO-GO"
    cores = run.one("hosts.cpu_cores[")
    assert cores["status"] == "fail"
    assert cores["measured"] == f"{len(os.sched_getaffinity(0))} vCPU"
    assert cores["expected"].startswith(">= 16 vCPU")
    assert cores["requirement"]["ids"] == ["OZ-POC-HW-01"]
    assert cores["requirement"]["sources"] == ["004_37a6818de433c15c.txt"]
    assert cores["evidence"][0]["method"].startswith("nproc")
    mem = run.one("hosts.memory[")
    meminfo = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) * 1024  # type: ignore[union-attr]
    assert mem["status"] == "fail" and mem["evidence"][0]["raw"].startswith("MemTotal")
    assert str(meminfo // 1024) in mem["evidence"][0]["raw"]
    # the ports of the compliant lab are fine
    for rid, r in run.results("ports.").items():
        assert r["status"] == ("skip" if rid == "ports.listeners_declared" else "pass"), (rid, r)
    # the three files are there, and the terminal summary names the verdict
    assert run.run_dir is not None
    assert {p.name for p in run.run_dir.iterdir()} >= {"report.json", "report.html", "junit.xml"}
    assert "NO-GO" in run.out and "hosts.cpu_cores[lab-host]" in run.out


def test_exposed_internal_port_fails_both_port_checks(tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target=" + lab_target(tmp_path, "exposed_internal"), "-m", "ports")
    assert run.rc == 1, run.out
    closed = run.one("ports.internal_closed[")
    assert closed["status"] == "fail" and closed["measured"] == "reachable"
    bind = run.one("ports.internal_bind[internal-api@")
    assert bind["status"] == "fail" and "0.0.0.0" in bind["measured"]
    assert run.one("ports.internal_bind[app-1@")["status"] == "pass"  # the instances stay on loopback
    assert run.one("ports.public_open[")["status"] == "pass"


def test_compliant_ports_pass_and_the_verdict_is_pass_partial_for_ports_alone(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "ports")
    assert run.rc == 0, run.out
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # never GO: only part of the profile ran
    statuses = {r["id"]: r["status"] for r in run.report["results"]}
    # the lab's host is this machine, whose other listeners are not the lab's to declare
    assert statuses.pop("ports.listeners_declared") == "skip"
    assert set(statuses.values()) == {"pass"}, run.report["results"]


def test_fail_on_critical_lets_high_failures_through(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "poc", "--target", "lab", "-m", "hosts and high", "--fail-on", "critical")
    assert run.one("hosts.cpu_cores[")["status"] == "fail"
    assert run.rc == 0 and run.report["verdict"]["decision"] == "PASS-PARTIAL", run.out


def test_unreachable_host_is_error_not_fail(tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    port = free_port()  # nothing listens there now
    target = write_target(tmp_path, f"name: dead\nhosts:\n  - name: gone\n    connection: ssh://nobody@127.0.0.1:{port}\n"
                          "    roles: [inference]\n    timeout_s: 3\n")
    run = golive_run("--profile", "poc", f"--target={target}", "-m", "hosts")
    assert run.rc == 1
    cores = run.one("hosts.cpu_cores[gone]")
    assert cores["status"] == "error", cores
    assert "refused" in cores["reason"] or "ssh" in cores["reason"], cores
    assert run.report["verdict"]["decision"] == "NO-GO"
