"""Fleets: many hosts, inventories golive did not write, --hosts/--roles, and the host
family fanned out over real separate hosts.

The end-to-end tests run against hosts in network namespaces the tests create
(lab/netns.py): one sshd per namespace on its own 10.199.N.x address behind a bridge of
ours, routes checked before any traffic.  Among them a host whose sshd is stopped, one that
is switched off (link down: connections time out), one that accepts TCP and never speaks,
one that refuses our key, and a slow one (every command starts 0.2 s late; tc netem is not
available on these kernels, so sshd's ForceCommand does the delay).  Statuses and the
structure of the evidence are asserted, never absolute wall-clock times.
"""
from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GoliveRun, write_target
from golive.inventory_sources import InventoryError, expand_range, read_ansible, read_ssh_config
from golive.target import Target, load_target, select_hosts
from golive.yamlpos import ConfigError
from lab.netns import FleetHost, HostPlan, NetnsFleet, netns_available, start_fleet

GOOD = ["app-1", "app-2", "bio-1", "bio-2"]
ROLES = {"app-1": ["app"], "app-2": ["app"], "bio-1": ["inference"], "bio-2": ["inference"]}
DEAD_TIMEOUT_S = 2.0
SLOW_S = 0.2
PER_HOST_CHECKS = ("hosts.cpu_cores[", "hosts.memory[", "hosts.os[", "hosts.software.python[")


# ============================================================================ inventories (no hosts needed)

INI = """\
# a production inventory
jump ansible_host=192.0.2.9

[app]
app-[1:2] ansible_user=deploy
app-3:2222 ansible_host=10.0.0.13   # inline comment

[inference]
bio-[01:03] ansible_host=10.0.1.1 golive_data_path=/srv/bio

[gpu:children]
inference

[inference:vars]
ansible_port=2200
ansible_user=ml

[all:vars]
ansible_user=admin
ansible_ssh_private_key_file=/keys/fleet
ansible_password=never-read
"""

YAML_INV = """\
all:
  vars:
    ansible_user: admin
  children:
    prod:
      children:
        inference:
          hosts:
            bio-[a:b]:
              ansible_host: 10.1.0.1
          vars:
            ansible_become: true
        app:
          hosts:
            app-1: {ansible_port: 2222, ansible_host: 10.1.0.9}
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_host_ranges() -> None:
    assert expand_range("web[01:03].x") == ["web01.x", "web02.x", "web03.x"]
    assert expand_range("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert expand_range("n[0:10:5]") == ["n0", "n5", "n10"]
    assert expand_range("r[1:2]-[a:b]") == ["r1-a", "r1-b", "r2-a", "r2-b"]
    with pytest.raises(ValueError):
        expand_range("x[3:1]")


def test_ansible_ini_groups_become_roles_and_connection_vars_are_honoured(tmp_path: Path) -> None:
    inv = _write(tmp_path / "hosts.ini", INI)
    _write(tmp_path / "group_vars" / "app.yml", "ansible_port: 2022\n")
    _write(tmp_path / "host_vars" / "bio-02.yml", "ansible_host: 10.0.1.2\ngolive_timeout_s: 4\n")
    hosts = {h.name: h for h in read_ansible(inv)}
    assert list(hosts) == ["jump", "app-1", "app-2", "app-3", "bio-01", "bio-02", "bio-03"]
    assert hosts["jump"].connection == "ssh://admin@192.0.2.9" and hosts["jump"].groups == ()
    # group_vars/app.yml beats all:vars; the inline user beats both
    assert hosts["app-1"].connection == "ssh://deploy@app-1:2022"
    # host:port on the line beats group_vars
    assert hosts["app-3"].connection == "ssh://admin@10.0.0.13:2222"
    # a child group's vars beat all:vars; parents become roles too
    assert hosts["bio-01"].connection == "ssh://ml@10.0.1.1:2200"
    assert hosts["bio-01"].groups == ("gpu", "inference")
    assert hosts["bio-01"].data_path == "/srv/bio" and hosts["bio-01"].identity_file == "/keys/fleet"
    # host_vars/ beats everything in the inventory file
    assert hosts["bio-02"].connection == "ssh://ml@10.0.1.2:2200" and hosts["bio-02"].timeout_s == 4
    assert hosts["bio-01"].origin == f"{inv}:9"
    assert all("never-read" not in repr(h) for h in hosts.values())


def test_ansible_yaml_inventory(tmp_path: Path) -> None:
    hosts = {h.name: h for h in read_ansible(_write(tmp_path / "inv.yml", YAML_INV))}
    assert hosts["bio-a"].connection == "ssh://admin@10.1.0.1" and hosts["bio-a"].sudo is True
    assert hosts["bio-a"].groups == ("prod", "inference")
    assert hosts["app-1"].connection == "ssh://admin@10.1.0.9:2222" and hosts["app-1"].groups == ("prod", "app")
    assert hosts["app-1"].line == 15


def test_ssh_config_hosts(tmp_path: Path) -> None:
    _write(tmp_path / "extra.conf", "Host db-2\n  HostName 10.3.0.2\n  Port 2200\n")
    cfg = _write(tmp_path / "config", f"""\
        Host *
          User ops
        Host db-1 db-1.example.com
          HostName 10.3.0.1
        Host bastion
          HostName 10.3.0.3
        Host !nothing *.internal
          User x
        Include {tmp_path}/extra.conf
        """)
    hosts = {h.name: h for h in read_ssh_config(cfg)}
    # the two names of db-1 resolve (ssh -G) to the same machine: one host; patterns are no hosts
    assert list(hosts) == ["db-1", "bastion", "db-2"]
    assert hosts["db-1"].connection == "ssh://db-1" and hosts["db-1"].ssh_config == str(cfg)
    assert hosts["db-2"].path == str(tmp_path / "extra.conf") and hosts["db-2"].line == 1


@pytest.mark.parametrize("text, line, fragment", [
    ("[app]\nweb[3:1]\n", 2, "starts after it ends"),
    ("[app]\nweb1 ansible_host='{{ lookup(\"env\", \"H\") }}'\n", 2, "is a Jinja template"),
    ("[app]\nweb1 ansible_connection=winrm\n", 2, "ansible_connection 'winrm'"),
    ("[app]\nweb1 ansible_port=http\n", 2, "is not a port"),
    ("[app:children]\nb\n[b:children]\napp\n", None, "is its own ancestor"),
    ("[app\nweb1\n", 1, "section header"),
])
def test_inventory_errors_name_file_and_line(tmp_path: Path, text: str, line: int | None, fragment: str) -> None:
    inv = _write(tmp_path / "hosts.ini", text)
    with pytest.raises(InventoryError) as err:
        read_ansible(inv)
    assert fragment in err.value.problem and err.value.path == str(inv)
    if line is not None:
        assert err.value.line == line


def test_target_resolves_inventory_at_load_time(tmp_path: Path) -> None:
    _write(tmp_path / "inv" / "hosts.ini", INI)
    target = load_target(write_target(tmp_path, """\
name: prod
hosts:
  - {name: extra-1, connection: "ssh://x@10.9.9.9", roles: [db]}
inventory:
  ansible: inv/hosts.ini
  exclude: ["jump"]
  roles: {frontend: ["app-*"]}
  defaults: {timeout_s: 3, roles: [prod], ssh_config: /etc/golive/ssh_config}
"""))
    by = {h.name: h for h in target.hosts}
    assert list(by) == ["extra-1", "app-1", "app-2", "app-3", "bio-01", "bio-02", "bio-03"]
    assert by["app-1"].roles == ["app", "prod", "frontend"] and by["app-1"].timeout_s == 3
    assert by["app-1"].ssh_config == "/etc/golive/ssh_config" and by["bio-01"].roles == ["gpu", "inference", "prod"]
    assert by["bio-01"].source and by["bio-01"].source.endswith("hosts.ini:9")
    assert by["extra-1"].source is None and target.inventory[0].ansible == "inv/hosts.ini"


@pytest.mark.parametrize("target_text, where, fragment", [
    ("name: t\ninventory: {ansible: nosuch.ini}\n", "target:2", "not found"),
    ("name: t\ninventory:\n  ansible: hosts.ini\n  ssh_config: c\n", "target:2", "exactly one of 'ansible' or 'ssh_config'"),
    ("name: t\ninventory:\n  ansible: hosts.ini\n  grups: [app]\n", "target:4", "did you mean 'groups'"),
    ("name: t\nhosts:\n  - {name: app-1, connection: 'local://'}\ninventory: {ansible: hosts.ini}\n",
     "hosts.ini:2", "defined twice: here and at"),
    ("name: t\ninventory: {ansible: hosts.ini, groups: [nosuch]}\n", "target:2", "gives no hosts after"),
    ("name: t\ninventory: {ansible: bad.ini}\n", "bad.ini:2", "host 'web*1' from ansible inventory: name"),
])
def test_inventory_problems_are_config_errors_with_file_and_line(
        tmp_path: Path, target_text: str, where: str, fragment: str) -> None:
    _write(tmp_path / "hosts.ini", "[app]\napp-1 ansible_host=10.0.0.1\n")
    _write(tmp_path / "bad.ini", "[app]\nweb*1\n")
    path = write_target(tmp_path, target_text)
    with pytest.raises(ConfigError) as err:
        load_target(path)
    file, line = where.split(":")
    expected_file = path if file == "target" else str(tmp_path / file)
    assert err.value.path == expected_file and err.value.line == int(line), str(err.value)
    assert fragment in str(err.value)


def _three_hosts() -> Target:
    return Target.model_validate({"name": "t", "hosts": [
        {"name": "app-1", "connection": "local://", "roles": ["app"]},
        {"name": "bio-1", "connection": "local://", "roles": ["inference", "gpu"]},
        {"name": "bio-2", "connection": "local://", "roles": ["inference"]}],
        "services": [{"name": "api", "host": "app-1", "port": 8000}]})


def test_select_hosts_by_name_and_role() -> None:
    t = _three_hosts()
    assert select_hosts(t, [], []) is t and t.selection is None
    bio = select_hosts(t, ["bio-*"], [])
    assert [h.name for h in bio.hosts] == ["bio-1", "bio-2"] and bio.services == []
    assert bio.selection is not None and bio.selection.left_out == ["app-1"]
    assert [h.name for h in select_hosts(t, ["*", "!bio-2"], ["inference"]).hosts] == ["bio-1"]
    assert [h.name for h in select_hosts(t, [], ["gpu", "app"]).hosts] == ["app-1", "bio-1"]
    with pytest.raises(ConfigError, match="selects no host"):
        select_hosts(t, ["db-*"], [])


def test_hosts_and_roles_options_limit_the_run(tmp_path: Path, golive_run: Any) -> None:
    path = write_target(tmp_path, """\
name: three
hosts:
  - {name: app-1, connection: "local://", roles: [app]}
  - {name: bio-1, connection: "local://", roles: [inference]}
  - {name: bio-2, connection: "local://", roles: [inference]}
""")
    run = golive_run("--profile", "poc", f"--target={path}", "-m", "hosts", "--hosts", "bio-*", "-k", "cpu or role")
    assert sorted(run.results("hosts.cpu_cores[")) == ["hosts.cpu_cores[bio-1]", "hosts.cpu_cores[bio-2]"], run.out
    assert run.report["target"]["selection"]["left_out"] == ["app-1"]
    count = run.one("hosts.count")
    assert count["status"] == "skip" and "subset of the hosts" in count["reason"], count
    run = golive_run("--profile", "poc", f"--target={path}", "-m", "hosts", "--roles", "app", "-k", "cpu")
    assert list(run.results("hosts.cpu_cores[")) == ["hosts.cpu_cores[app-1]"], run.out
    run = golive_run("--profile", "poc", f"--target={path}", "-m", "hosts", "--roles", "db")
    assert run.rc == 4 and "selects no host of target 'three'" in run.out and "roles: app, inference" in run.out


# ============================================================================ a real fleet in namespaces

needs_netns = pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns` (network namespaces)")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsFleet]:
    plans = [HostPlan(n) for n in GOOD] + [
        HostPlan("down"), HostPlan("off"), HostPlan("hung"),
        HostPlan("locked", authorized=False), HostPlan("slow", slow_s=SLOW_S)]
    with start_fleet(tmp_path_factory.mktemp("fleet"), plans) as f:
        f.host("down").stop_sshd()
        f.host("off").power_off()
        f.host("hung").hang()
        yield f


def _fleet_target(tmp_path: Path, fleet: NetnsFleet, name: str = "fleet.yaml") -> str:
    lines = ["name: fleet", "hosts:"]
    for h in fleet:
        e = h.target_entry(roles=ROLES.get(h.name, ["app"]), timeout_s=DEAD_TIMEOUT_S)
        lines.append(f"  - {{name: '{e['name']}', connection: '{e['connection']}', roles: {e['roles']}, "
                     f"ssh_config: '{e['ssh_config']}', ssh_identity_file: '{e['ssh_identity_file']}', "
                     f"timeout_s: {e['timeout_s']}}}")
    return write_target(tmp_path, "\n".join(lines) + "\n", name)


def _sessions(host: FleetHost) -> int:
    return host.log_file.read_text(errors="replace").count("Starting session")


def _ts(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def serial_run(fleet: NetnsFleet, tmp_path_factory: pytest.TempPathFactory) -> tuple[GoliveRun, dict[str, int], dict[str, int]]:
    """One golive run over the whole fleet (no xdist), with each host's logins and command
    sessions during that run."""
    import os
    import subprocess

    from conftest import PYTEST, ROOT

    tmp = tmp_path_factory.mktemp("serial")
    target = _fleet_target(tmp, fleet)
    before = {h.name: (h.accepted_logins(), _sessions(h)) for h in fleet if h.name in [*GOOD, "slow"]}
    fleet.verify_routes()  # nothing is sent unless every address goes through our bridge
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run([*PYTEST, "-p", "no:cacheprovider", f"--report-dir={tmp / 'reports'}", "--profile", "poc",
                           f"--target={target}", "-m", "hosts"], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)
    run = GoliveRun(proc, tmp / "reports")
    logins = {n: fleet.host(n).accepted_logins() - b[0] for n, b in before.items()}
    sessions = {n: _sessions(fleet.host(n)) - b[1] for n, b in before.items()}
    return run, logins, sessions


@needs_netns
def test_each_host_gets_its_own_status(serial_run: tuple[GoliveRun, dict[str, int], dict[str, int]]) -> None:
    run, _, _ = serial_run
    assert run.run_dir is not None, run.out
    for prefix in PER_HOST_CHECKS:
        got = run.results(prefix)
        assert sorted(got) == sorted(f"{prefix}{n}]" for n in [*GOOD, "down", "off", "hung", "locked", "slow"]), got
    for name in [*GOOD, "slow"]:
        cores = run.one(f"hosts.cpu_cores[{name}]")
        assert cores["status"] in ("pass", "fail") and cores["measured"].endswith("vCPU"), cores
        assert run.one(f"hosts.os[{name}]")["status"] == "pass"
    reasons = {"down": "connection refused", "off": "timed out", "hung": "banner exchange",
               "locked": "permission denied"}
    for name, fragment in reasons.items():
        for prefix in PER_HOST_CHECKS:
            r = run.one(f"{prefix}{name}]")
            assert r["status"] == "error" and fragment in r["reason"].lower(), r
            assert r["reason"].startswith("host unreachable: ")
    assert run.report["verdict"]["decision"] == "NO-GO" and run.rc == 1


@needs_netns
def test_a_dead_host_costs_its_own_timeout_once_and_never_delays_the_others(
        serial_run: tuple[GoliveRun, dict[str, int], dict[str, int]]) -> None:
    run, _, _ = serial_run
    for dead in ("off", "hung"):
        mine = [r for r in run.report["results"] if r["id"].endswith(f"[{dead}]") and r["evidence"]]
        attempts = {r["evidence"][0]["data"]["connect"]["at"] for r in mine}
        assert len(attempts) == 1, f"{dead} was tried more than once: {attempts}"
        fresh = [r for r in mine if not r["evidence"][0]["data"]["connect"]["reused"]]
        assert len(fresh) == 1, "exactly one check paid for the attempt; the others reused its outcome"
        spent = fresh[0]["evidence"][0]["duration_s"]
        assert DEAD_TIMEOUT_S * 0.8 <= spent <= DEAD_TIMEOUT_S + 3.5, spent  # its own timeout (+ the guard)
    off = next(r for r in run.report["results"] if r["id"].endswith("[off]")
               and not r["evidence"][0]["data"]["connect"]["reused"])
    off_start = _ts(off["evidence"][0]["data"]["connect"]["at"])
    off_end = off_start + dt.timedelta(seconds=off["evidence"][0]["duration_s"])
    check = off["id"].split("[")[0]  # the scenario that paid for the attempt, on the good hosts
    good = [run.one(f"{check}[{n}]") for n in GOOD]
    assert len(good) == len(GOOD)
    for r in good:  # measured concurrently: finished while the dead host was still waiting
        ev = r["evidence"][0]
        assert ev["duration_s"] < off["evidence"][0]["duration_s"], ev
        assert _ts(ev["measured_at"]) + dt.timedelta(seconds=ev["duration_s"]) < off_end, (ev, off_end)


@needs_netns
def test_the_slow_host_is_measured_and_only_it_is_slow(
        serial_run: tuple[GoliveRun, dict[str, int], dict[str, int]]) -> None:
    run, _, _ = serial_run
    slow = run.one("hosts.cpu_cores[slow]")
    fast = [run.one(f"hosts.cpu_cores[{n}]") for n in GOOD]
    assert slow["measured"] == fast[0]["measured"]
    # its facts came from one session, which started SLOW_S late on this host only
    session = slow["evidence"][0]["data"]["session"]
    assert session["duration_s"] >= SLOW_S and slow["evidence"][0]["duration_s"] >= SLOW_S, session
    # only it: the other hosts' sessions are not delayed.  Judged on their median, since one
    # ssh login on a busy 2-core machine can itself take longer than SLOW_S
    import statistics

    fast_s = statistics.median(f["evidence"][0]["data"]["session"]["duration_s"] for f in fast)
    assert fast_s + SLOW_S / 2 <= session["duration_s"], (fast_s, session)


@needs_netns
def test_one_ssh_login_per_host_and_its_facts_gathered_in_one_session(
        serial_run: tuple[GoliveRun, dict[str, int], dict[str, int]]) -> None:
    run, logins, sessions = serial_run
    scenarios_run = {r["scenario"] for r in run.report["results"] if "[app-1]" in r["id"]}
    assert len(scenarios_run) >= 6, scenarios_run
    for name in [*GOOD, "slow"]:
        assert logins[name] == 1, (name, logins)  # ControlMaster: one authentication ...
        # ... and one shell session, which was the connection check and gathered every
        # command of every scenario (never one session per command)
        assert sessions[name] == 1, (name, sessions)
        measured = [r for r in run.report["results"] if r["id"].endswith(f"[{name}]") and r["evidence"]]
        at = {r["evidence"][0]["data"]["session"]["at"] for r in measured}
        assert len(measured) >= 4 and len(at) == 1, (name, at)


@needs_netns
def test_gathering_off_measures_the_same_facts_one_command_at_a_time(
        fleet: NetnsFleet, tmp_path: Path, golive_run: Any,
        serial_run: tuple[GoliveRun, dict[str, int], dict[str, int]]) -> None:
    serial, _, _ = serial_run
    before = {n: _sessions(fleet.host(n)) for n in GOOD}
    fleet.verify_routes()
    run = golive_run("--profile", "poc", "--target=" + _fleet_target(tmp_path, fleet), "-m", "hosts",
                     "--hosts", "app-*,bio-*", env={"GOLIVE_GATHER": "0"})
    for name in GOOD:
        mine = {cid: r for cid, r in run.results().items() if cid.endswith(f"[{name}]")}
        assert len(mine) >= 4, run.out
        for cid, r in mine.items():
            assert (r["status"], r["measured"]) == (serial.one(cid)["status"], serial.one(cid)["measured"]), cid
            assert all("session" not in ev["data"] for ev in r["evidence"]), cid
        # one session per command: checks that judge one measurement (hosts.os, hosts.os_recommended) share it
        commands = {r["evidence"][0]["method"] for r in mine.values() if r["evidence"]}
        assert _sessions(fleet.host(name)) - before[name] >= len(commands), name


@needs_netns
def test_xdist_workers_results_merge_into_one_report(
        fleet: NetnsFleet, tmp_path: Path, golive_run: Any,
        serial_run: tuple[GoliveRun, dict[str, int], dict[str, int]]) -> None:
    serial, _, _ = serial_run
    before = {n: fleet.host(n).accepted_logins() for n in GOOD}
    fleet.verify_routes()
    run = golive_run("--profile", "poc", "--target=" + _fleet_target(tmp_path, fleet), "-m", "hosts", "-n", "2")
    assert run.run_dir is not None and len(list(run.run_dir.parent.glob("*/report.json"))) == 1, run.out
    assert set(run.results()) == set(serial.results()), set(run.results()) ^ set(serial.results())
    for cid, r in serial.results().items():
        assert run.results()[cid]["status"] == r["status"], cid
    assert "-n" in run.report["run"]["args"]
    for name in GOOD:  # one master connection per worker process at most
        assert 1 <= fleet.host(name).accepted_logins() - before[name] <= 2


@needs_netns
def test_roles_filter_sends_nothing_to_the_other_hosts(fleet: NetnsFleet, tmp_path: Path, golive_run: Any) -> None:
    before = {h.name: h.accepted_logins() for h in fleet}
    fleet.verify_routes()
    run = golive_run("--profile", "poc", "--target=" + _fleet_target(tmp_path, fleet), "-m", "hosts",
                     "--roles", "inference", "-k", "cpu or memory")
    assert sorted(run.results("hosts.cpu_cores[")) == ["hosts.cpu_cores[bio-1]", "hosts.cpu_cores[bio-2]"], run.out
    assert run.one("hosts.cpu_cores[bio-1]")["expected"].endswith("(role 'inference')")
    after = {h.name: h.accepted_logins() for h in fleet}
    assert {n for n in after if after[n] != before[n]} == {"bio-1", "bio-2"}


@needs_netns
def test_fleet_from_an_ansible_inventory_and_an_ssh_config(fleet: NetnsFleet, tmp_path: Path, golive_run: Any) -> None:
    lines = ["[app]"] + [f"{n} ansible_host={fleet.host(n).address} ansible_user={fleet.user} ansible_port=22"
                         for n in ("app-1", "app-2")]
    lines += ["", "[inference]", "bio-[1:2]", "", "[inference:vars]", f"ansible_user={fleet.user}"]
    inv = _write(tmp_path / "inventory.ini", "\n".join(lines) + "\n")
    _write(tmp_path / "host_vars" / "bio-1.yml", f"ansible_host: {fleet.host('bio-1').address}\n")
    _write(tmp_path / "host_vars" / "bio-2.yml", f"ansible_host: {fleet.host('bio-2').address}\n")
    target = write_target(tmp_path, f"""\
name: from-inventories
inventory:
  - ansible: {inv.name}
    defaults: {{ssh_config: {fleet.ssh_config}, ssh_identity_file: {fleet.identity_file}, timeout_s: 5}}
  - ssh_config: {fleet.ssh_config}
    include: ["locked"]
    roles: {{inference: ["*"]}}
""")
    fleet.verify_routes()
    run = golive_run("--profile", "poc", f"--target={target}", "-m", "hosts", "-k", "cpu")
    got = run.results("hosts.cpu_cores[")
    assert sorted(got) == [f"hosts.cpu_cores[{n}]" for n in ("app-1", "app-2", "bio-1", "bio-2", "locked")], run.out
    for n in GOOD:
        assert got[f"hosts.cpu_cores[{n}]"]["measured"].endswith("vCPU"), got[f"hosts.cpu_cores[{n}]"]
    assert got["hosts.cpu_cores[bio-1]"]["expected"].endswith("(role 'inference')")
    assert got["hosts.cpu_cores[app-1]"]["expected"].endswith("(default)")
    assert got["hosts.cpu_cores[locked]"]["status"] == "error"
    assert "permission denied" in got["hosts.cpu_cores[locked]"]["reason"]


@needs_netns
def test_fleet_cleans_up_after_itself(tmp_path: Path) -> None:
    import subprocess

    with start_fleet(tmp_path / "f", 2) as f:
        names = [h.netns for h in f] + [f.bridge]
        f.verify_routes()
        assert f.hosts[0].run("id", "-un").stdout.strip() == f.user
    listed = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], check=False, capture_output=True, text=True).stdout
    assert not any(n in listed or n in links for n in names)
    assert not f.state_file.exists()
