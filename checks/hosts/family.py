"""The hosts family, declared: host counts per role, sizing per role (CPU, memory, disk,
storage media, NIC, GPU), operating system and software versions, judged against
``requirements.hosts`` (:class:`checks.hosts.spec.HostsReq`).

Each host is judged against the sizing of its role (or of the inventory's layout): the
pass rule, the expected text and the catalogue ids come from that sizing block
(:class:`golive.checkdef.Judged`).  Facts are read over each host's testinfra connection,
all hosts at once (``ctx.each_host``); the commands each selected check starts with are
gathered up front in one ssh session per host (``Check.gathers``, docs/fleets.md).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.hosts.spec import HostsReq
from golive.checkdef import Check, CheckContext, Family, Judged, NotApplicable, Skipped
from golive.model import Evidence, Measurement, Severity
from golive.units import fmt_bytes, fmt_rate

NO_HOSTS = "what the sizing of the host's role requires"


def _probes() -> Any:
    from checks.hosts import probes
    return probes


def _first(name: str, *args: Any) -> Callable[[Any, Any], tuple[str, ...]]:
    """What a check gathers: the first commands of one probe (by name, imported lazily)."""
    def gathers(req: Any, spec: Any) -> tuple[str, ...]:
        p = _probes()
        return tuple(p.first_commands(getattr(p, name), *[a(spec) if callable(a) else a for a in args]))
    return gathers


def _no_hosts(ctx: CheckContext) -> Measurement | None:
    if ctx.host_specs:
        return None
    return Measurement.failed(f"target '{ctx.target.name}' lists no hosts to check",
                              Evidence(probe="hosts", subject=ctx.target.name, method="the target's hosts"))


def _sizings(ctx: CheckContext) -> dict[str, tuple[Any, str]]:
    """Each host's sizing and where it comes from; the layout follows the whole inventory
    even when --hosts/--roles checks a subset."""
    sel = ctx.target.selection
    total = len(sel.selected) + len(sel.left_out) if sel is not None else len(ctx.host_specs)
    return {s.name: ctx.req.sizing_for(s.roles, total) for s in ctx.host_specs}


def _per_host(ctx: CheckContext, probe: str, args: Callable[[Any], tuple[Any, ...]],
              judge: Callable[[str, Any, str, Measurement], Judged | Skipped],
              needs: Callable[[Any], bool], what: str) -> Measurement | dict[str, Any]:
    """Measure ``probe`` on every host that has a requirement (``needs(sizing)``) and judge it."""
    missing = _no_hosts(ctx)
    if missing is not None:
        return missing
    sizings = _sizings(ctx)
    wanted = [s for s in ctx.host_specs if sizings[s.name][0] is not None and needs(sizings[s.name][0])]
    fn = getattr(_probes(), probe)
    measured = ctx.each_host(lambda s: ctx.on_host(s, fn, *args(s)), wanted) if wanted else {}
    out: dict[str, Any] = {}
    for spec in ctx.host_specs:
        sizing, origin = sizings[spec.name]
        if spec.name not in measured:
            out[spec.name] = Skipped(what.format(origin=origin))
        else:
            out[spec.name] = judge(spec.name, sizing, origin, measured[spec.name])
    return out


# ----------------------------------------------------------------------------- count

def _count(ctx: CheckContext) -> dict[str, Any]:
    from checks.hosts.inventory import hosts_with_role

    req: HostsReq = ctx.req
    if not req.count:
        raise NotApplicable("the profile sets no host count")
    if ctx.target.selection is not None:
        raise NotApplicable(f"this run checks a subset of the hosts ({ctx.target.selection.describe()}); host "
                            "counts are judged on runs over the whole inventory")
    roles = {s.name: s.roles for s in ctx.host_specs}
    out: dict[str, Any] = {}
    for role, need in req.count.items():
        hi = f" and <= {need.max}" if need.max else ""
        out[role] = Judged(hosts_with_role(ctx.target.name, role, roles), need,
                           f">= {need.min}{hi} hosts" + ("" if role == "all" else f" with role '{role}'"))
    return out


# ----------------------------------------------------------------------------- sizing

def _cores(ctx: CheckContext) -> Measurement | dict[str, Any]:
    return _per_host(ctx, "cpu_cores", lambda s: (), lambda n, z, o, m: Judged(m, z, f">= {z.cpu_cores} vCPU ({o})"),
                     lambda z: z.cpu_cores is not None, "no CPU requirement for this host ({origin})")


def _memory(ctx: CheckContext) -> Measurement | dict[str, Any]:
    tol = ctx.req.memory_tolerance

    def judge(name: str, z: Any, origin: str, m: Measurement) -> Judged:
        floor = z.memory * tol
        return Judged(m, z, f">= {fmt_bytes(z.memory)} ({origin}; MemTotal >= {fmt_bytes(floor)} at tolerance "
                            f"{tol:g})", passes=lambda b: b >= floor)
    return _per_host(ctx, "memory", lambda s: (), judge, lambda z: z.memory is not None, "no memory requirement for this host ({origin})")


def _disk(ctx: CheckContext) -> Measurement | dict[str, Any]:
    return _per_host(ctx, "disk", lambda s: (s.data_path,),
                     lambda n, z, o, m: Judged(m, z, f">= {fmt_bytes(z.disk.size, binary=False)} ({o})"),
                     lambda z: z.disk is not None and z.disk.size is not None,
                     "no disk size requirement for this host ({origin})")


ACCEPTED_MEDIA = {"ssd": ("ssd", "nvme"), "nvme": ("nvme",)}


def _storage(ctx: CheckContext) -> Measurement | dict[str, Any]:
    def judge(name: str, z: Any, origin: str, m: Measurement) -> Judged:
        kinds = ACCEPTED_MEDIA[z.disk.media]
        return Judged(m, z, f"{' or '.join(k.upper() for k in kinds)} ({origin})", passes=lambda k: k in kinds)
    return _per_host(ctx, "storage_kind", lambda s: (s.data_path,), judge,
                     lambda z: z.disk is not None and z.disk.media != "any",
                     "no storage media requirement for this host ({origin})")


def _nic(ctx: CheckContext) -> Measurement | dict[str, Any]:
    return _per_host(ctx, "nic_speed", lambda s: (), lambda n, z, o, m: Judged(m, z, f">= {fmt_rate(z.nic_speed)} ({o})"),
                     lambda z: z.nic_speed is not None, "no network speed requirement for this host ({origin})")


def _gpu_fits(gpu: Any, found: list[dict[str, Any]]) -> bool:
    fit = [g for g in found if gpu.memory is None or g["memory_mib"] * 2**20 >= gpu.memory]
    return bool(len(fit) >= gpu.count)


def _gpus(ctx: CheckContext) -> Measurement | dict[str, Any]:
    def judge(name: str, z: Any, origin: str, m: Measurement) -> Judged:
        mem = f" with >= {fmt_bytes(z.gpu.memory)} memory each" if z.gpu.memory else ""
        return Judged(m, z, f">= {z.gpu.count} NVIDIA GPU{mem} ({origin})")
    return _per_host(ctx, "gpus", lambda s: (), judge, lambda z: z.gpu is not None and z.gpu.count > 0,
                     "no GPU required for this host ({origin})")


def _gpu_remediation(z: Any, m: Measurement) -> str:
    mem = f" with >= {fmt_bytes(z.gpu.memory)} memory each" if z.gpu.memory else ""
    return f"attach {z.gpu.count} GPU(s){mem} to {m.evidence.subject} and install the NVIDIA driver"


# ----------------------------------------------------------------------------- OS, software

def _os_facts(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    missing = _no_hosts(ctx)
    if missing is not None:
        return missing
    if ctx.req.os is None:
        raise NotApplicable("the profile sets no operating system requirement")
    fn = _probes().os_release
    return ctx.memo(("hosts.os_release",), lambda: ctx.each_host(lambda s: ctx.on_host(s, fn)))  # type: ignore[no-any-return]


def _os(ctx: CheckContext) -> Measurement | dict[str, Any]:
    facts = _os_facts(ctx)
    return facts if isinstance(facts, Measurement) else {n: Judged(m, ctx.req.os, "Linux") for n, m in facts.items()}


def _os_recommended(ctx: CheckContext) -> Measurement | dict[str, Any]:
    os_req = ctx.req.os
    if os_req is not None and not os_req.recommended:
        raise NotApplicable("the profile recommends no distribution release")
    facts = _os_facts(ctx)
    if isinstance(facts, Measurement):
        return facts
    return {n: Judged(m, os_req, " or ".join(os_req.recommended) + " (recommended)",
                      passes=lambda v: any(os_matches(v, r) for r in os_req.recommended)) for n, m in facts.items()}


def os_matches(v: dict[str, str], rule: str) -> bool:
    """``ubuntu>=20.04`` against os-release facts (ID or ID_LIKE, VERSION_ID)."""
    name, _, version = rule.partition(">=")
    ids = {v.get("id", "")} | set(v.get("id_like", "").split())
    return name.strip() in ids and bool(_probes().version_at_least(v.get("version_id", "0") or "0",
                                                                   version.strip() or "0"))


def _software(ctx: CheckContext) -> Measurement | dict[str, Any]:
    missing = _no_hosts(ctx)
    if missing is not None:
        return missing
    req: HostsReq = ctx.req
    if not req.software:
        raise NotApplicable("the profile names no software versions")
    fn = _probes().software_version
    measured = ctx.each_host(lambda s: {n: ctx.on_host(s, fn, n) for n in req.software})
    out: dict[str, Any] = {}
    for spec in ctx.host_specs:
        for name, need in req.software.items():
            m = measured[spec.name][name]
            key = f".{name}[{spec.name}]"
            if m.ok and m.value is None and not need.required:
                out[key] = Skipped(f"{name} is not installed and the profile does not require it")
                continue
            out[key] = Judged(m, need, f"{name} >= {need.version}", passes=_at_least(need.version))
    return out


def _at_least(minimum: str) -> Callable[[Any], bool]:
    def ok(found: Any) -> bool:
        return found is not None and bool(_probes().version_at_least(found, minimum))
    return ok


def _software_gathers(req: Any, spec: Any) -> tuple[str, ...]:
    p = _probes()
    return tuple(c for n in req.software for c in p.first_commands(p.software_version, n))


FAMILY = Family(
    name="hosts",
    title="host hardware and software checks",
    feature="hosts.feature",
    profile_block=HostsReq,
    merge_replace=("default", "roles", "count", "layouts"),
    checks=(
        Check(id="hosts.count", title="Each role has the number of hosts the tier requires",
              severity=Severity.CRITICAL, measures="hosts per role in the target's inventory",
              measure=_count, expected=">= the tier's host count", passes=lambda need, n: (
                  n >= need.min and (need.max is None or n <= need.max)),
              remediation=lambda need, m: "deploy the number of nodes the tier requires"
              if m.evidence.data.get("role", "all") == "all" else
              f"add hosts with role '{m.evidence.data['role']}' to the deployment (and to the target inventory)"),
        Check(id="hosts.cpu_cores", title="CPU cores", severity=Severity.HIGH,
              measures="vCPUs of each host (nproc, lscpu) over its connection", measure=_cores,
              gathers=_first("cpu_cores"), expected=NO_HOSTS, passes=lambda z, n: n >= z.cpu_cores,
              remediation=lambda z, m: f"give {m.evidence.subject} at least {z.cpu_cores} vCPU or move it to a role "
                                       "that fits",
              verify_hint="make the host reachable over its connection (see the reason) and run golive again"),
        Check(id="hosts.memory", title="Memory", severity=Severity.HIGH,
              measures="MemTotal of each host (/proc/meminfo)", measure=_memory, gathers=_first("memory"),
              expected=NO_HOSTS, passes=lambda z, b: b >= z.memory,
              remediation=lambda z, m: f"give {m.evidence.subject} at least {fmt_bytes(z.memory)} of RAM"),
        Check(id="hosts.disk", title="Disk size of the data path", severity=Severity.HIGH,
              measures="size of the filesystem holding each host's data path (df)", measure=_disk,
              gathers=_first("disk", lambda s: s.data_path), expected=NO_HOSTS,
              passes=lambda z, b: b >= z.disk.size,
              remediation=lambda z, m: f"grow the filesystem holding the data path of {m.evidence.subject}"),
        Check(id="hosts.storage", title="Storage is solid-state", severity=Severity.MEDIUM,
              measures="the device behind each host's data path (findmnt, lsblk ROTA/TRAN)", measure=_storage,
              gathers=_first("storage_kind", lambda s: s.data_path), expected=NO_HOSTS,
              passes=lambda z, k: k in ACCEPTED_MEDIA[z.disk.media],
              remediation=lambda z, m: f"put the data path of {m.evidence.subject} on {z.disk.media.upper()} storage"),
        Check(id="hosts.nic_speed", title="Network interface speed", severity=Severity.MEDIUM,
              measures="link speed of each host's network interfaces (/sys/class/net/*/speed)", measure=_nic,
              gathers=_first("nic_speed"), expected=NO_HOSTS, passes=lambda z, r: r >= z.nic_speed,
              remediation=lambda z, m: f"connect {m.evidence.subject} with a link of at least {fmt_rate(z.nic_speed)}"),
        Check(id="hosts.gpu", title="GPU presence and memory", severity=Severity.HIGH,
              measures="NVIDIA GPUs of each host and their memory (nvidia-smi)", measure=_gpus,
              gathers=_first("gpus"), expected=NO_HOSTS, passes=lambda z, found: _gpu_fits(z.gpu, found),
              remediation=_gpu_remediation),
        Check(id="hosts.os", title="Operating system", severity=Severity.MEDIUM,
              measures="the kernel and /etc/os-release of each host", measure=_os, gathers=_first("os_release"),
              expected="Linux", passes=lambda r, v: v["kernel"].lower().startswith("linux"),
              remediation="run production on Linux"),
        Check(id="hosts.os_recommended", title="Operating system", severity=Severity.LOW,
              measures="the distribution release of each host (/etc/os-release) against the recommended ones",
              measure=_os_recommended, expected="a recommended distribution release",
              passes=lambda r, v: any(os_matches(v, x) for x in r.recommended),
              remediation="move to a recommended distribution release"),
        Check(id="hosts.software", title="Software versions", severity=Severity.HIGH,
              measures="the version each named program reports on each host (--version)", measure=_software,
              gathers=_software_gathers, expected="the profile's minimum versions",
              passes=lambda need, v: v is not None and _probes().version_at_least(v, need.version),
              remediation=lambda need, m: f"install or upgrade {m.evidence.probe.rsplit('.', 1)[-1]} to "
                                          f"{need.version} or newer on {m.evidence.subject}"),
    ),
)
