"""ports.listeners_declared end to end: two hosts in network namespaces (lab/netns.py), one
clean (only its sshd on 10.199.N.x:22) and one running a service nobody declared (TCP
[::]:8081, UDP 0.0.0.0:5353, plus a loopback listener on 127.0.0.1:8082 that must not count).  One golive run
over both: the clean host passes, the other fails naming each undeclared listener and its
process.  Plus the ss parser and the matching rules on fixed text."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.ports.family import PortsSpec, undeclared_listeners
from checks.ports.probes import parse_ss_listeners
from conftest import GoliveRun, write_target
from lab.netns import NetnsFleet, netns_available, start_fleet

needs_netns = pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns` (network namespaces)")

PROFILE = """name: listeners
description: only the listener check of the ports family
requirements:
  ports: {public_open: false, http_answers: false, internal_closed: false, internal_bind_loopback: false}
"""

SS = """\
tcp   LISTEN 0      128       10.199.7.2:22        0.0.0.0:*
tcp   LISTEN 0      8                  *:8081            *:*    users:(("python3",pid=4242,fd=3))
tcp   LISTEN 0      8               [::]:443          [::]:*    users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6))
tcp   LISTEN 0      8          127.0.0.1:5432      0.0.0.0:*    users:(("postgres",pid=77,fd=5))
tcp   LISTEN 0      8              [::1]:6379         [::]:*
udp   UNCONN 0      0            0.0.0.0:5353      0.0.0.0:*    users:(("python3",pid=4242,fd=4))
udp   UNCONN 0      0   [fe80::1%eth0]:546          [::]:*
"""


def test_ss_output_is_parsed_with_processes_and_ipv6_in_brackets() -> None:
    found = parse_ss_listeners(SS)
    assert [x["label"] for x in found] == ["10.199.7.2:22/tcp", "[::]:8081/tcp", "[::]:443/tcp", "127.0.0.1:5432/tcp",
                                           "[::1]:6379/tcp", "0.0.0.0:5353/udp", "[fe80::1]:546/udp"]
    assert found[1]["process"] == "python3" and found[1]["pid"] == 4242 and found[0]["process"] is None
    assert found[1]["dual_stack"] and not found[2]["dual_stack"]


def test_loopback_is_ignored_and_declared_entries_match() -> None:
    found = parse_ss_listeners(SS)
    stray = [x["label"] for x in undeclared_listeners(found, ["*:22/tcp", "443/tcp"])]
    assert stray == ["[::]:8081/tcp", "0.0.0.0:5353/udp", "[fe80::1]:546/udp"]
    assert not undeclared_listeners(found, ["22", "[::]:8081/tcp", "[::]:443", "0.0.0.0:5353/udp", "*:546/udp"])
    assert [x["label"] for x in undeclared_listeners(found, ["22", "8081/udp", "443", "5353", "546"])] == ["[::]:8081/tcp"]
    with pytest.raises(ValueError, match="is not a listener"):
        PortsSpec(listeners=["db:5432"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsFleet]:
    if not netns_available():
        pytest.skip("needs root and `ip netns` (network namespaces)")
    with start_fleet(tmp_path_factory.mktemp("listeners"), ["clean", "stray"]) as f:
        f.host("stray").start_stray_service(8081, 5353)
        yield f


@needs_netns
def test_an_undeclared_listener_fails_with_its_address_and_process(
        fleet: NetnsFleet, tmp_path: Path, golive_run) -> None:  # type: ignore[no-untyped-def]
    lines = ["name: listeners", "hosts:"]
    for h in fleet:
        e = h.target_entry(timeout_s=15)
        lines.append(f"  - {{name: '{e['name']}', connection: '{e['connection']}', ssh_config: '{e['ssh_config']}', "
                     f"ssh_identity_file: '{e['ssh_identity_file']}', timeout_s: 15}}")
    lines.append("ports: {listeners: ['*:22/tcp']}")
    target = write_target(tmp_path, "\n".join(lines) + "\n")
    profile = write_target(tmp_path, PROFILE, "profile.yaml")
    fleet.verify_routes()  # nothing is sent unless every address goes through our bridge
    run: GoliveRun = golive_run(f"--profile={profile}", f"--target={target}", "-m", "ports")
    assert run.report, run.out[-3000:]
    clean = run.one("ports.listeners_declared[clean]")
    assert clean["status"] == "pass", clean
    assert clean["measured"] == f"every non-loopback listener declared ({fleet.host('clean').address}:22/tcp)"
    stray = run.one("ports.listeners_declared[stray]")
    assert stray["status"] == "fail", stray
    parts = sorted(stray["measured"].removeprefix("undeclared: ").split("; "))
    assert len(parts) == 2 and stray["measured"].startswith("undeclared: "), stray["measured"]
    assert re.fullmatch(r"0\.0\.0\.0:5353/udp \(python[\d.]*, pid \d+\)", parts[0]), parts
    assert re.fullmatch(r"\[::\]:8081/tcp \(python[\d.]*, pid \d+\)", parts[1]), parts
    assert "127.0.0.1:8082" in stray["evidence"][0]["raw"]  # seen, and not counted: loopback
    assert stray["evidence"][0]["method"] == "ss -H -l -t -u -n -p"
    assert run.report["verdict"]["decision"] == "NO-GO"
