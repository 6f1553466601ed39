"""Host facts: CPUs, memory, disk, storage class, NIC speed, OS, software versions, GPUs,
listening sockets.

Each function measures one fact on a testinfra host (see :mod:`checks.connection`) and
returns a :class:`~golive.model.Measurement` whose evidence names the exact command.
Nothing here knows what a profile requires.  A fact that cannot be measured (host
unreachable, command failed, the kernel does not say) is ``Measurement.failed`` with a
reason; an *absent* thing (no nvidia-smi, software not installed) is a measured fact.
"""
from __future__ import annotations

import csv
import re
import shlex
import time
from typing import Any

from testinfra.backend.base import CommandResult
from testinfra.host import Host

from checks.connection import ProbeError, Session, describe, redact, run, tool
from golive.model import Evidence, Measurement

GIB = 1024**3
_RAW_MAX = 600


class _Probe:
    """Collects what one probe did, and builds its measurement (ok or failed)."""

    def __init__(self, probe: str, host: Host, method: str, subject: str | None) -> None:
        self.probe, self.host, self.method = probe, host, method
        self.subject = subject or describe(host)
        self.started = time.monotonic()
        self.raw = ""
        self.data: dict[str, Any] = {}
        self.session: Session | None = None
        self.gathered: list[str] = []

    def run(self, command: str, timeout_s: float) -> CommandResult:
        """:func:`checks.connection.run`, noting when the answer came from a prefetch session."""
        result = run(self.host, command, timeout_s)
        session = getattr(result, "session", None)
        if session is not None:
            self.session = self.session or session
            self.gathered.append(command)
        return result

    def sh(self, command: str, timeout_s: float, *, ok: tuple[int, ...] = (0,)) -> str:
        """stdout of ``command``; raises ProbeError if its exit status is not in ``ok``."""
        result = self.run(command, timeout_s)
        out = result.stdout + result.stderr
        self.raw = (self.raw + out)[:_RAW_MAX]
        if result.rc not in ok:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise ProbeError(f"{command.split()[0]} exited {result.rc}: "
                             f"{message[-1] if message else 'no message'}")
        return str(result.stdout)

    def evidence(self) -> Evidence:
        """Evidence of what was run.  Answers taken from a prefetch session date from that
        session, whose duration counts in; ``data.session`` says which commands it answered."""
        duration = time.monotonic() - self.started
        extra: dict[str, Any] = {}
        if self.session is not None:
            duration += self.session.duration_s
            extra["measured_at"] = self.session.at
            self.data["session"] = {**self.session.to_dict(), "answered": self.gathered}
        return Evidence(probe=self.probe, subject=self.subject, method=self.method,
                        tool=tool(self.host), raw=redact(self.raw.strip()),
                        duration_s=round(duration, 3), data=self.data, **extra)

    def ok(self, value: Any, display: str, unit: str = "") -> Measurement:
        return Measurement(value=value, display=display, evidence=self.evidence(), unit=unit)

    def fail(self, reason: str) -> Measurement:
        return Measurement.failed(reason, self.evidence())


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


_CORES_CMDS = ("nproc", "LC_ALL=C lscpu")
_MEMINFO_CMD = "cat /proc/meminfo"
_OS_CMDS = ("cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release", "uname -sr")


def _df_cmd(path: str) -> str:
    return f"df -P -B1 {shlex.quote(path)}"


def _storage_cmds(path: str) -> tuple[str, str, str]:
    """test -e; findmnt; and the disks under the filesystem's source device with their
    drivers -- found by the host's shell from findmnt, so that all three can be gathered
    ahead: ``lsblk -s`` pairs, then ``DRIVER="..." NAME="..."`` per disk."""
    q = shlex.quote(path)
    disks = (f"s=$(findmnt -n -o SOURCE -T {q}) || exit $?; s=${{s%%[[]*}}; "
             'lsblk -s -n -P -o NAME,TYPE,ROTA,TRAN "$s" || exit $?; '
             'lsblk -s -n -r -o TYPE,NAME "$s" | while read -r t n; do [ "$t" = disk ] || continue; '
             'printf \'DRIVER="%s" NAME="%s"\\n\' "$(readlink "/sys/block/$n/device/driver")" "$n"; done')
    return f"test -e {q}", f"findmnt -n -P -o SOURCE,FSTYPE,TARGET -T {q}", disks


def cpu_cores(host: Host, *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """Logical CPUs usable by processes, as ``nproc`` counts them (the catalogue's vCPU).

    ``lscpu``'s sockets, cores per socket and threads per core go to evidence.data
    (``physical_cores`` = sockets x cores per socket) where lscpu is present.
    """
    nproc, lscpu_cmd = _CORES_CMDS
    p = _Probe("hosts.cpu_cores", host, "; ".join(_CORES_CMDS), subject)
    try:
        n = int(p.sh(nproc, timeout_s).strip())
        lscpu = p.run(lscpu_cmd, timeout_s)
    except (ProbeError, ValueError) as exc:
        return p.fail(getattr(exc, "reason", f"nproc gave no number: {exc}"))
    if lscpu.rc == 0:
        fields = dict(line.split(":", 1) for line in lscpu.stdout.splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in fields.items()}
        num = {key: int(info[name]) for key, name in (
            ("sockets", "Socket(s)"), ("cores_per_socket", "Core(s) per socket"),
            ("threads_per_core", "Thread(s) per core")) if info.get(name, "").isdigit()}
        p.data.update(num, model=info.get("Model name", ""))
        if "sockets" in num and "cores_per_socket" in num:
            p.data["physical_cores"] = num["sockets"] * num["cores_per_socket"]
    else:
        p.data["lscpu"] = f"unavailable (exit {lscpu.rc})"
    return p.ok(n, f"{n} vCPU", "vCPU")


def memory(host: Host, *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """MemTotal from /proc/meminfo, in bytes (RAM the kernel manages, after reservations)."""
    p = _Probe("hosts.memory", host, _MEMINFO_CMD, subject)
    try:
        text = p.sh(_MEMINFO_CMD, timeout_s)
    except ProbeError as exc:
        return p.fail(exc.reason)
    kib = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.MULTILINE)}
    if "MemTotal" not in kib:
        return p.fail("no MemTotal line in /proc/meminfo")
    p.raw = next(line for line in text.splitlines() if line.startswith("MemTotal"))
    p.data.update({k.lower() + "_bytes": kib[k] * 1024 for k in ("MemAvailable", "SwapTotal")
                   if k in kib})
    total = kib["MemTotal"] * 1024
    return p.ok(total, _gib(total), "bytes")


def disk(host: Host, path: str, *, subject: str | None = None,
         timeout_s: float = 10) -> Measurement:
    """Size in bytes of the filesystem holding ``path`` (``df -P -B1``), with its device
    and mount point in evidence.data; an error if the path does not exist."""
    command = _df_cmd(path)
    p = _Probe("hosts.disk", host, command, subject)
    try:
        lines = p.sh(command, timeout_s).strip().splitlines()
        fields = lines[-1].split(None, 5)
        size, used, avail = int(fields[1]), int(fields[2]), int(fields[3])
    except ProbeError as exc:
        missing = "No such file" in exc.reason
        return p.fail(f"path {path} does not exist on the host" if missing else exc.reason)
    except (IndexError, ValueError):
        return p.fail("df output not understood")
    p.data.update(path=path, device=fields[0], mount=fields[5], used_bytes=used,
                  available_bytes=avail)
    return p.ok(size, f"{_gib(size)} ({fields[0]} on {fields[5]})", "bytes")


_NO_DEVICE_FS = frozenset({"overlay", "tmpfs", "ramfs", "devtmpfs", "nfs", "nfs4", "cifs",
                           "smb3", "fuse", "9p", "virtiofs", "squashfs", "aufs", "zfs"})
_VIRTUAL_DRIVERS = ("virtio", "xen", "vmw_pvscsi", "hv_storvsc")


def storage_kind(host: Host, path: str, *, subject: str | None = None,
                 timeout_s: float = 10) -> Measurement:
    """Class of the block storage behind ``path``: ``"nvme"``, ``"ssd"`` or ``"hdd"``.

    findmnt gives the filesystem's source device; ``lsblk -s`` walks up to the disk(s)
    (and /sys/block/DISK/device/driver names their driver), whose ROTA and TRAN decide: TRAN=nvme -> nvme, ROTA=0 -> ssd, ROTA=1 -> hdd.  An
    error where that cannot be told: no block device (overlay, tmpfs, network
    filesystems), or a paravirtual disk (virtio, xen) reporting ROTA=1, which is the
    kernel's default there rather than a measurement -- ask the cloud for the volume type.
    """
    test_cmd, mnt_cmd, disks_cmd = _storage_cmds(path)
    p = _Probe("hosts.storage_kind", host, f"{test_cmd}; {mnt_cmd}; {disks_cmd}", subject)
    try:
        if p.run(test_cmd, timeout_s).rc != 0:
            return p.fail(f"path {path} does not exist on the host")
        mnt = dict(re.findall(r'(\w+)="([^"]*)"', p.sh(mnt_cmd, timeout_s)))
        source = re.sub(r"\[.*\]$", "", mnt.get("SOURCE", ""))  # btrfs subvolume suffix
        p.data.update(path=path, source=source, fstype=mnt.get("FSTYPE", ""),
                      mount=mnt.get("TARGET", ""))
        if mnt.get("FSTYPE", "") in _NO_DEVICE_FS or not source.startswith("/dev/"):
            return p.fail(f"{path} is on {mnt.get('FSTYPE') or 'an unknown'} filesystem "
                          f"({source or 'no source'}): no block device to classify")
        rows = [dict(re.findall(r'(\w+)="([^"]*)"', line)) for line in p.sh(disks_cmd, timeout_s).splitlines()]
        drivers = {r["NAME"]: r["DRIVER"].rsplit("/", 1)[-1] for r in rows if "DRIVER" in r and "NAME" in r}
        disks = [r for r in rows if r.get("TYPE") == "disk"]
        for d in disks:
            d["DRIVER"] = drivers.get(d["NAME"], "")
    except ProbeError as exc:
        return p.fail(exc.reason)
    p.data["disks"] = [{k.lower(): v for k, v in d.items()} for d in disks]
    if not disks:
        return p.fail(f"lsblk shows no disk under {source}")
    kinds = [_disk_kind(d) for d in disks]
    unknown = [k for k in kinds if not k.startswith(("nvme", "ssd", "hdd"))]
    if unknown:
        return p.fail("; ".join(unknown))
    # Several disks (RAID, LVM span): the slowest member sets the class.
    kind = max(kinds, key=("nvme", "ssd", "hdd").index)
    names = ", ".join(d["NAME"] for d in disks)
    return p.ok(kind, f"{kind} ({names})")


def _disk_kind(d: dict[str, str]) -> str:
    name, rota, tran, driver = d.get("NAME", ""), d.get("ROTA", ""), d.get("TRAN", ""), d["DRIVER"]
    if tran == "nvme" or name.startswith("nvme"):
        return "nvme"
    if name.startswith(("zram", "ram", "loop")):
        return f"{name} is a RAM or loop device, not storage hardware"
    if rota == "0":
        return "ssd"
    if rota == "1" and (driver.startswith(_VIRTUAL_DRIVERS) or name.startswith(("vd", "xvd"))):
        return (f"{name} is a paravirtual disk ({driver or 'virtual'}) with ROTA=1, the "
                "kernel default for it: the medium is not visible from the guest")
    if rota == "1":
        return "hdd"
    return f"lsblk gives no ROTA for {name}"


_NIC_CMD = ('for i in /sys/class/net/*; do n=${i##*/}; s=$(cat "$i/speed" 2>&1); '
            'd=$(readlink "$i/device/driver" 2>/dev/null); '
            'printf "%s\\t%s\\t%s\\n" "$n" "$s" "${d##*/}"; done')


def nic_speed(host: Host, *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """Highest link speed in Mbps among the host's physical NICs (/sys/class/net/IF/speed).

    Interfaces without a device (lo, veth, bridges, ifb, tun) are listed but not counted:
    their "speed" is made up (veth says 10000).  An error naming every interface tried
    when no physical NIC reports a speed (-1 or EINVAL: virtio, link down).
    """
    p = _Probe("hosts.nic_speed", host, _NIC_CMD, subject)
    try:
        text = p.sh(_NIC_CMD, timeout_s)
    except ProbeError as exc:
        return p.fail(exc.reason)
    seen: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        name, reported, driver = ([*line.split("\t"), "", ""])[:3]
        if name == "lo" or not name:
            continue
        reported = reported.rsplit(": ", 1)[-1].strip()
        speed = int(reported) if re.fullmatch(r"-?\d+", reported) else None
        seen[name] = {"driver": driver, "reported": reported, "physical": bool(driver),
                      "speed_mbps": speed if speed is not None and speed > 0 else None}
    p.data["interfaces"] = seen
    known = {n: i["speed_mbps"] for n, i in seen.items() if i["physical"] and i["speed_mbps"]}
    if known:
        best = max(known, key=lambda n: known[n])
        return p.ok(known[best], f"{known[best]} Mbps ({best})", "Mbps")
    tried = ", ".join(f"{n} ({i['driver'] or 'virtual, skipped'}): {i['reported']}"
                      for n, i in seen.items()) or "none"
    return p.fail(f"kernel reports no link speed for any physical NIC; tried {tried}")


def os_release(host: Host, *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """/etc/os-release (ID, VERSION_ID, ID_LIKE, PRETTY_NAME) and ``uname -sr``, as a
    dict with keys ``id``, ``version_id``, ``id_like``, ``pretty_name``, ``kernel``."""
    command, uname = _OS_CMDS
    p = _Probe("hosts.os_release", host, "; ".join(_OS_CMDS), subject)
    try:
        text = p.sh(command, timeout_s)
        kernel = p.sh(uname, timeout_s).strip()
    except ProbeError as exc:
        return p.fail(exc.reason)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, val = line.partition("=")
        if sep and key.strip().isidentifier():
            try:
                fields[key.strip()] = " ".join(shlex.split(val))
            except ValueError:
                fields[key.strip()] = val.strip().strip("\"'")
    value = {k.lower(): fields.get(k, "") for k in ("ID", "VERSION_ID", "ID_LIKE", "PRETTY_NAME")}
    value["kernel"] = kernel
    return p.ok(value, f"{value['pretty_name'] or value['id']} ({kernel})")


_SQLITE = "-c 'import sqlite3;print(sqlite3.sqlite_version)'"
# name -> (commands tried in order, pattern whose group 1 is the version, arguments that
# make a given ``binary`` print its version)
_SOFTWARE: dict[str, tuple[tuple[str, ...], str, str]] = {
    "python": (("python3 --version", "python --version"), r"Python (\d[\w.+-]*)", "--version"),
    "pip": (("pip3 --version", "pip --version", "python3 -m pip --version"), r"pip (\d[\w.]*)",
            "--version"),
    "nginx": (tuple(f"{d}nginx -v" for d in ("", "/usr/sbin/", "/usr/local/sbin/",
                                              "/usr/local/nginx/sbin/")), r"nginx/(\d[\w.]*)", "-v"),
    "gunicorn": (("gunicorn --version", "python3 -m gunicorn --version"),
                 r"gunicorn \(version (\d[\w.]*)\)", "--version"),
    "uvicorn": (("uvicorn --version", "python3 -m uvicorn --version"), r"uvicorn (\d[\w.]*)",
                "--version"),
    "postgresql": (
        (("for b in /usr/lib/postgresql/*/bin/postgres /usr/pgsql-*/bin/postgres; do "
          '[ -x "$b" ] && "$b" --version; done'),
         "postgres --version", "pg_config --version", "psql --version"),
        r"PostgreSQL\)? (\d+(?:\.\d+)*)", "--version"),
    "docker": (("docker --version",), r"version v?(\d[\w.]*)", "--version"),
    "docker-compose": (("docker compose version", "docker-compose --version"),
                       r"version v?(\d[\w.]*)", "--version"),
    "podman": (("podman --version",), r"version v?(\d[\w.]*)", "--version"),
    "sqlite": ((f"python3 {_SQLITE}", "sqlite3 --version"), r"^(\d+\.\d+(?:\.\d+)*)", _SQLITE),
    "openssl": (("openssl version",), r"(?:OpenSSL|LibreSSL) (\d[\w.]*)", "version"),
    "haproxy": (("haproxy -v", "/usr/sbin/haproxy -v", "/usr/local/sbin/haproxy -v"),
                r"version (\d[\w.]*)", "-v"),
}
SOFTWARE = tuple(_SOFTWARE)
_ABSENT = re.compile(r"not found|No such file|No module named|is not a docker command|"
                     r"unknown command|unknown (?:shorthand )?flag", re.IGNORECASE)


def software_version(host: Host, name: str, *, binary: str | None = None,
                     subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """Version of ``name`` (one of :data:`SOFTWARE`) as the host's own binary reports it.

    Candidate commands are tried in order (``binary`` replaces them: e.g. a venv's
    gunicorn); the first that answers wins.  value is the numeric version ("1.22.1",
    "15.18"), the full banner goes to evidence.  Not installed -> value None, display
    "not installed", no error: absence is a fact; the caller decides.  For postgresql the
    highest server binary under /usr/lib/postgresql/*/bin wins over client tools.
    """
    commands = _software_cmds(name, binary)
    pattern = _SOFTWARE[name][1]
    p = _Probe(f"hosts.software_version.{name}", host, commands[0], subject)
    for command in commands:
        try:
            result = p.run(f"{command} 2>&1", timeout_s)
        except ProbeError as exc:
            return p.fail(exc.reason)
        out = result.stdout.strip()
        found = list(dict.fromkeys(m[1] for m in re.finditer(pattern, out, re.MULTILINE)))
        if found:
            p.method, p.raw = command, out[:_RAW_MAX]
            best = max(found, key=parse_version)
            if len(found) > 1:
                p.data["all_found"] = found
            if name == "postgresql":
                p.data["client_only"] = command.startswith("psql")
            return p.ok(best, f"{name} {best}")
        if result.rc in (126, 127) or not out or _ABSENT.search(out):
            continue
        p.method, p.raw = command, out[:_RAW_MAX]
        return p.fail(f"{command} answered without a version (exit {result.rc}): "
                      f"{out.splitlines()[0][:200]}")
    p.method = " || ".join(commands)
    return p.ok(None, "not installed")


def _software_cmds(name: str, binary: str | None = None) -> tuple[str, ...]:
    """The commands tried in order for ``name`` (``binary`` replaces them)."""
    if name not in _SOFTWARE:
        raise ValueError(f"unknown software {name!r}; known: {', '.join(SOFTWARE)}")
    commands, _, flag = _SOFTWARE[name]
    if binary:  # e.g. /srv/app/venv/bin/python3 for sqlite: the app's own interpreter
        return (f"{shlex.quote(binary)} {flag}",)
    return commands


def parse_version(text: str) -> tuple[int, ...]:
    """The first dotted number in ``text`` as a tuple: "28.2.2, build e6534b4" -> (28, 2, 2),
    "v1.25.3+k3s1" -> (1, 25, 3), "1.1.1w" -> (1, 1, 1).  ValueError if there is none."""
    match = re.search(r"\d+(?:\.\d+)*", text)
    if not match:
        raise ValueError(f"no version number in {text!r}")
    return tuple(int(part) for part in match.group().split("."))


def version_at_least(measured: str, required: str) -> bool:
    """True when ``measured`` >= ``required``, comparing dotted numbers with missing parts
    as 0 ("15.18" >= "12", "3.11.7" >= "3.8", "1.22.1" < "1.22.10")."""
    have, need = parse_version(measured), parse_version(required)
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


_GPU_CMD = ("nvidia-smi --query-gpu=index,name,memory.total,driver_version "
            "--format=csv,noheader,nounits")


def gpus(host: Host, *, subject: str | None = None, timeout_s: float = 20) -> Measurement:
    """NVIDIA GPUs as nvidia-smi lists them: [{index, name, memory_mib, driver}].

    No nvidia-smi -> [] ("no GPU (nvidia-smi not found)"), a fact.  nvidia-smi present
    but failing (no driver loaded, GPU lost) -> error with its message.
    """
    p = _Probe("hosts.gpus", host, _GPU_CMD, subject)
    try:
        result = p.run(_GPU_CMD, timeout_s)
    except ProbeError as exc:
        return p.fail(exc.reason)
    p.raw = (result.stdout + result.stderr).strip()[:_RAW_MAX]
    if result.rc == 127:
        return p.ok([], "no GPU (nvidia-smi not found)")
    if result.rc != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no message"]
        return p.fail(f"nvidia-smi exited {result.rc}: {lines[0][:300]}")
    try:
        found = parse_nvidia_smi_csv(result.stdout)
    except ValueError as exc:
        return p.fail(str(exc))
    names = ", ".join(f"{g['name']} {g['memory_mib']} MiB" for g in found)
    return p.ok(found, f"{len(found)} GPU: {names}" if found else "no GPU (nvidia-smi lists none)")


def parse_nvidia_smi_csv(text: str) -> list[dict[str, Any]]:
    """Rows of ``--query-gpu=index,name,memory.total,driver_version --format=csv,noheader,
    nounits``; "[N/A]" memory becomes None.  ValueError on a malformed row."""
    rows = []
    for fields in csv.reader(text.strip().splitlines(), skipinitialspace=True):
        if not fields:
            continue
        if len(fields) != 4 or not fields[0].strip().isdigit():
            raise ValueError(f"unexpected nvidia-smi line: {', '.join(fields)[:200]}")
        index, name, mem, driver = (f.strip() for f in fields)
        rows.append({"index": int(index), "name": name,
                     "memory_mib": int(mem) if mem.isdigit() else None, "driver": driver})
    return rows


def listening_sockets(host: Host, port: int, *, subject: str | None = None,
                      timeout_s: float = 10) -> Measurement:
    """Local addresses with a TCP socket listening on ``port``: e.g. ["127.0.0.1"],
    ["0.0.0.0"], ["::"], [] -- ``*`` is ss's notation for a dual-stack socket on every
    IPv4 and IPv6 address.  From ``ss -ltnH``; /proc/net/tcp{,6} where ss is missing."""
    p = _Probe("hosts.listening_sockets", host, "ss -ltnH", subject)
    try:
        result = p.run("ss -ltnH", timeout_s)
        if result.rc == 127:
            p.method = "cat /proc/net/tcp /proc/net/tcp6"
            pairs = parse_proc_net_tcp(p.sh("cat /proc/net/tcp; cat /proc/net/tcp6 2>/dev/null; :",
                                            timeout_s))
        elif result.rc != 0:
            return p.fail(f"ss exited {result.rc}: {result.stderr.strip()[:200]}")
        else:
            pairs = parse_ss(result.stdout)
    except ProbeError as exc:
        return p.fail(exc.reason)
    found = sorted({addr for addr, prt in pairs if prt == port})
    p.raw = "\n".join(f"{a}:{prt}" for a, prt in pairs if prt == port)
    p.data.update(port=port, all_listening=sorted({f"{a}:{prt}" for a, prt in pairs}))
    return p.ok(found, ", ".join(f"{a}:{port}" for a in found) or f"nothing listens on {port}")


def parse_ss(text: str) -> list[tuple[str, int]]:
    """(address, port) of each line of ``ss -ltnH``; brackets and ``%iface`` removed."""
    pairs = []
    for line in text.splitlines():
        for token in line.split():
            match = re.fullmatch(r"\[?(.+?)(?:%[\w.-]+)?\]?:(\d+)", token)
            if match:  # the first address:port token is the local one
                pairs.append((match[1], int(match[2])))
                break
    return pairs


def parse_proc_net_tcp(text: str) -> list[tuple[str, int]]:
    """(address, port) of each LISTEN (st 0A) socket in /proc/net/tcp and tcp6."""
    import ipaddress

    pairs = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A" or ":" not in fields[1]:
            continue
        hexaddr, hexport = fields[1].split(":")
        raw = bytes.fromhex(hexaddr)
        # The kernel prints each 32-bit word in host (little-endian) order.
        packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        pairs.append((str(ipaddress.ip_address(packed)), int(hexport, 16)))
    return pairs


def first_commands(probe: Any, *args: Any, **kwargs: Any) -> tuple[str, ...]:
    """The commands ``probe(host, *args, **kwargs)`` runs first whatever the host answers,
    for :func:`checks.connection.prefetch` to gather ahead in one session.  What a probe runs
    next may depend on those answers, so it is not listed; a probe this module does not
    know gives ().  Exactly the strings the probes run: an answer is only ever used for the
    command that produced it."""
    plan = _FIRST_COMMANDS.get(probe)
    return tuple(plan(*args, **kwargs)) if plan else ()


_FIRST_COMMANDS: dict[Any, Any] = {
    cpu_cores: lambda: _CORES_CMDS,
    memory: lambda: (_MEMINFO_CMD,),
    disk: lambda path: (_df_cmd(path),),
    storage_kind: _storage_cmds,
    nic_speed: lambda: (_NIC_CMD,),
    os_release: lambda: _OS_CMDS,
    software_version: lambda name, binary=None: (f"{_software_cmds(name, binary)[0]} 2>&1",),
    gpus: lambda: (_GPU_CMD,),
    listening_sockets: lambda port: ("ss -ltnH",),
}
