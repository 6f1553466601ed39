"""Bindings for features/hosts.feature: measure with checks.hosts, judge against the
profile's ``requirements.hosts`` block."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_bdd import scenarios, then, when

from checks import hosts as probe
from checks.inventory import hosts_with_role
from golive.model import Measurement, Severity
from golive.target import HostSpec
from golive.units import fmt_bytes, fmt_rate
from suites.hostset import HostSet, plan, probe_host, selected_steps

scenarios("hosts.feature")

GIB = 2**30

CORES = "the CPU cores of each host are measured"
MEMORY = "the memory of each host is measured"
DISK = "the filesystem holding each host's data path is measured"
STORAGE = "the storage device behind each host's data path is identified"
NIC = "the link speed of each host's network interfaces is read"
GPUS = "the GPUs of each host are listed"
OS = "the operating system of each host is read"
SOFTWARE = "the versions of the software the profile names are read on each host"

# What each When step measures on a host: (probe, *args).
_MEASURES: dict[str, Callable[[HostSpec, Any], list[tuple[Any, ...]]]] = {
    CORES: lambda s, req: [(probe.cpu_cores,)],
    MEMORY: lambda s, req: [(probe.memory,)],
    DISK: lambda s, req: [(probe.disk, s.data_path)],
    STORAGE: lambda s, req: [(probe.storage_kind, s.data_path)],
    NIC: lambda s, req: [(probe.nic_speed,)],
    GPUS: lambda s, req: [(probe.gpus,)],
    OS: lambda s, req: [(probe.os_release,)],
    SOFTWARE: lambda s, req: [(probe.software_version, n) for n in (req.software if req else ())],
}


@pytest.fixture(scope="module", autouse=True)
def _gather_plan(request: pytest.FixtureRequest, golive_env: Any) -> None:
    """Plan, for every host, the first commands of every selected scenario here, so the
    first probe on a host gathers them all in one ssh session (suites/hostset.py)."""
    steps = selected_steps(request)
    req = golive_env.profile.req.hosts if golive_env.profile and golive_env.profile.req else None
    for spec in golive_env.target.hosts:
        calls = [call for step, measures in _MEASURES.items() if step in steps for call in measures(spec, req)]
        plan(spec, [cmd for fn, *args in calls for cmd in probe.first_commands(fn, *args)])


def _req(golive: Any) -> Any:
    return golive.req.hosts if golive.req else None


def _no_hosts_req(golive: Any, check: str) -> bool:
    if _req(golive) is None:
        golive.checks.skip(check, f"profile '{golive.profile.name}' sets no host requirements")
        return True
    if not golive.target.hosts:
        golive.checks.error(check, f"target '{golive.target.name}' lists no hosts to check",
                            expected="at least one host")
        return True
    return False


def _sizings(golive: Any, hostset: HostSet) -> dict[str, tuple[Any, str]]:
    req = _req(golive)
    sel = golive.target.selection  # --hosts/--roles: the layout still follows the whole inventory
    total = len(sel.selected) + len(sel.left_out) if sel is not None else len(hostset.specs)
    return {s.name: req.sizing_for(s.roles, total) for s in hostset.specs}


# ----------------------------------------------------------------------------- count

@when("the hosts are counted by role", target_fixture="counts")
def count_hosts(golive: Any, hostset: HostSet) -> dict[str, Measurement]:
    req = _req(golive)
    roles = {s.name: s.roles for s in hostset.specs}
    return {role: hosts_with_role(golive.target.name, role, roles) for role in (req.count if req else {})}


@then("each role has as many hosts as the profile requires")
def judge_count(golive: Any, counts: dict[str, Measurement]) -> None:
    req = _req(golive)
    if req is None or not req.count:
        golive.checks.skip("hosts.count", "the profile sets no host count")
        return
    if golive.target.selection is not None:
        golive.checks.skip("hosts.count", f"this run checks a subset of the hosts ({golive.target.selection.describe()});"
                           " host counts are judged on runs over the whole inventory")
        return
    for role, need in req.count.items():
        hi = f" and <= {need.max}" if need.max else ""
        golive.checks.record(
            f"hosts.count[{role}]", block=need if need.ref else req,
            expected=f">= {need.min}{hi} hosts" + ("" if role == "all" else f" with role '{role}'"),
            measurement=counts[role], ok=lambda n, need=need: n >= need.min and (need.max is None or n <= need.max),
            remediation=f"add hosts with role '{role}' to the deployment (and to the target inventory)"
            if role != "all" else "deploy the number of nodes the tier requires")


# ----------------------------------------------------------------------------- CPU, memory

@when(CORES, target_fixture="measured")
def measure_cores(hostset: HostSet) -> dict[str, Measurement]:
    return hostset.measure(probe.cpu_cores)


@then("each host has at least the CPU cores its role requires")
def judge_cores(golive: Any, hostset: HostSet, measured: dict[str, Measurement]) -> None:
    if _no_hosts_req(golive, "hosts.cpu_cores"):
        return
    for name, (sizing, origin) in _sizings(golive, hostset).items():
        cid = f"hosts.cpu_cores[{name}]"
        if sizing is None or sizing.cpu_cores is None:
            golive.checks.skip(cid, f"no CPU requirement for this host ({origin})")
            continue
        golive.checks.record(cid, block=sizing, expected=f">= {sizing.cpu_cores} vCPU ({origin})",
                             measurement=measured[name], ok=lambda n, s=sizing: n >= s.cpu_cores,
                             remediation=f"give {name} at least {sizing.cpu_cores} vCPU or move it to a role that fits")


@when(MEMORY, target_fixture="measured")
def measure_memory(hostset: HostSet) -> dict[str, Measurement]:
    return hostset.measure(probe.memory)


@then("each host has at least the memory its role requires")
def judge_memory(golive: Any, hostset: HostSet, measured: dict[str, Measurement]) -> None:
    if _no_hosts_req(golive, "hosts.memory"):
        return
    tol = _req(golive).memory_tolerance
    for name, (sizing, origin) in _sizings(golive, hostset).items():
        cid = f"hosts.memory[{name}]"
        if sizing is None or sizing.memory is None:
            golive.checks.skip(cid, f"no memory requirement for this host ({origin})")
            continue
        floor = sizing.memory * tol
        golive.checks.record(
            cid, block=sizing,
            expected=f">= {fmt_bytes(sizing.memory)} ({origin}; MemTotal >= {fmt_bytes(floor)} at tolerance {tol:g})",
            measurement=measured[name], ok=lambda b, f=floor: b >= f,
            remediation=f"give {name} at least {fmt_bytes(sizing.memory)} of RAM")


# ----------------------------------------------------------------------------- disk

@when(DISK, target_fixture="measured")
def measure_disk(hostset: HostSet) -> dict[str, Measurement]:
    return hostset.measure_each(lambda s: probe_host(s, probe.disk, s.data_path))


@then("each data filesystem is at least the size its role requires")
def judge_disk(golive: Any, hostset: HostSet, measured: dict[str, Measurement]) -> None:
    if _no_hosts_req(golive, "hosts.disk"):
        return
    for name, (sizing, origin) in _sizings(golive, hostset).items():
        cid = f"hosts.disk[{name}]"
        if sizing is None or sizing.disk is None or sizing.disk.size is None:
            golive.checks.skip(cid, f"no disk size requirement for this host ({origin})")
            continue
        need = sizing.disk.size
        golive.checks.record(cid, block=sizing, expected=f">= {fmt_bytes(need, binary=False)} ({origin})",
                             measurement=measured[name], ok=lambda b, n=need: b >= n,
                             remediation=f"grow the filesystem holding the data path of {name}")


@when(STORAGE, target_fixture="measured")
def measure_storage(hostset: HostSet) -> dict[str, Measurement]:
    return hostset.measure_each(lambda s: probe_host(s, probe.storage_kind, s.data_path))


@then("each data device is of the kind its role requires")
def judge_storage(golive: Any, hostset: HostSet, measured: dict[str, Measurement]) -> None:
    if _no_hosts_req(golive, "hosts.storage"):
        return
    accepted = {"ssd": ("ssd", "nvme"), "nvme": ("nvme",)}
    for name, (sizing, origin) in _sizings(golive, hostset).items():
        cid = f"hosts.storage[{name}]"
        if sizing is None or sizing.disk is None or sizing.disk.media == "any":
            golive.checks.skip(cid, f"no storage media requirement for this host ({origin})")
            continue
        kinds = accepted[sizing.disk.media]
        golive.checks.record(cid, block=sizing, expected=f"{' or '.join(k.upper() for k in kinds)} ({origin})",
                             measurement=measured[name], ok=lambda k, kinds=kinds: k in kinds,
                             remediation=f"put the data path of {name} on {sizing.disk.media.upper()} storage")


# ----------------------------------------------------------------------------- network, GPU, OS, software

@when(NIC, target_fixture="measured")
def measure_nic(hostset: HostSet) -> dict[str, Measurement]:
    return hostset.measure(probe.nic_speed)


@then("each host has a link at least as fast as its role requires")
def judge_nic(golive: Any, hostset: HostSet, measured: dict[str, Measurement]) -> None:
    if _no_hosts_req(golive, "hosts.nic_speed"):
        return
    for name, (sizing, origin) in _sizings(golive, hostset).items():
        cid = f"hosts.nic_speed[{name}]"
        if sizing is None or sizing.nic_speed is None:
            golive.checks.skip(cid, f"no network speed requirement for this host ({origin})")
            continue
        golive.checks.record(cid, block=sizing, expected=f">= {fmt_rate(sizing.nic_speed)} ({origin})",
                             measurement=measured[name], ok=lambda m, s=sizing: m >= s.nic_speed,
                             remediation=f"connect {name} with a link of at least {fmt_rate(sizing.nic_speed)}")


@when(GPUS, target_fixture="measured")
def measure_gpus(hostset: HostSet) -> dict[str, Measurement]:
    return hostset.measure(probe.gpus)


@then("each host has the GPUs its role requires")
def judge_gpus(golive: Any, hostset: HostSet, measured: dict[str, Measurement]) -> None:
    if _no_hosts_req(golive, "hosts.gpu"):
        return
    for name, (sizing, origin) in _sizings(golive, hostset).items():
        cid = f"hosts.gpu[{name}]"
        if sizing is None or sizing.gpu is None or sizing.gpu.count == 0:
            golive.checks.skip(cid, f"no GPU required for this host ({origin})")
            continue
        gpu = sizing.gpu
        mem = f" with >= {fmt_bytes(gpu.memory)} memory each" if gpu.memory else ""

        def enough(found: list[dict[str, Any]], gpu: Any = gpu) -> bool:
            fit = [g for g in found if gpu.memory is None or g["memory_mib"] * 2**20 >= gpu.memory]
            return len(fit) >= gpu.count

        golive.checks.record(cid, block=sizing, expected=f">= {gpu.count} NVIDIA GPU{mem} ({origin})",
                             measurement=measured[name], ok=enough,
                             remediation=f"attach {gpu.count} GPU(s){mem} to {name} and install the NVIDIA driver")


@when(OS, target_fixture="measured")
def measure_os(hostset: HostSet) -> dict[str, Measurement]:
    return hostset.measure(probe.os_release)


@then("each host runs the operating system family the profile requires")
def judge_os(golive: Any, hostset: HostSet, measured: dict[str, Measurement]) -> None:
    req = _req(golive)
    if _no_hosts_req(golive, "hosts.os"):
        return
    if req.os is None:
        golive.checks.skip("hosts.os", "the profile sets no operating system requirement")
        return
    for spec in hostset.specs:
        m = measured[spec.name]
        golive.checks.record(f"hosts.os[{spec.name}]", block=req.os, expected="Linux",
                             measurement=m, ok=lambda v: v["kernel"].lower().startswith("linux"),
                             remediation="run production on Linux")
        if req.os.recommended:
            golive.checks.record(
                f"hosts.os_recommended[{spec.name}]", block=req.os, severity=Severity.LOW,
                expected=" or ".join(req.os.recommended) + " (recommended)", measurement=m,
                ok=lambda v: any(_os_matches(v, r) for r in req.os.recommended),
                remediation="move to a recommended distribution release")


def _os_matches(v: dict[str, str], rule: str) -> bool:
    name, _, version = rule.partition(">=")
    ids = {v.get("id", "")} | set(v.get("id_like", "").split())
    return name.strip() in ids and probe.version_at_least(v.get("version_id", "0") or "0", version.strip() or "0")


@when(SOFTWARE, target_fixture="measured")
def measure_software(golive: Any, hostset: HostSet) -> dict[str, dict[str, Measurement]]:
    req = _req(golive)
    names = list(req.software) if req else []
    return hostset.measure_each(lambda s: {n: probe_host(s, probe.software_version, n) for n in names})


@then("each host has at least the versions the profile requires")
def judge_software(golive: Any, hostset: HostSet, measured: dict[str, dict[str, Measurement]]) -> None:
    req = _req(golive)
    if _no_hosts_req(golive, "hosts.software"):
        return
    if not req.software:
        golive.checks.skip("hosts.software", "the profile names no software versions")
        return
    for spec in hostset.specs:
        for name, need in req.software.items():
            cid = f"hosts.software.{name}[{spec.name}]"
            m = measured[spec.name][name]
            if m.ok and m.value is None and not need.required:
                golive.checks.skip(cid, f"{name} is not installed and the profile does not require it", block=need,
                                   expected=f">= {need.version} where installed")
                continue
            golive.checks.record(cid, block=need, expected=f"{name} >= {need.version}", measurement=m,
                                 ok=lambda v, n=need: v is not None and probe.version_at_least(v, n.version),
                                 remediation=f"install or upgrade {name} to {need.version} or newer on {spec.name}")
