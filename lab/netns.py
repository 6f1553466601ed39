"""A fleet of separate test hosts in network namespaces, each with its own OpenSSH server.

:func:`start_fleet` creates, for every planned host, a network namespace
(``ip netns add``) joined by a veth pair to one bridge in the root namespace.  The fleet
takes a free ``10.199.N.0/24`` (N chosen so that nothing on this machine routes it
already): the bridge gets ``10.199.N.1``, the hosts ``10.199.N.2`` upwards.  Each host runs
``/usr/sbin/sshd`` *inside its namespace*, bound to its own address on port 22, with the
same approach as :mod:`lab.sshd`: public-key logins only, as the dedicated ``golive-probe``
user (shell ``/bin/sh``), keys and ``authorized_keys`` written by us.

Network rule: before anything is sent to a fleet address, :meth:`NetnsFleet.verify_routes`
checks that ``ip route get ADDR`` leaves through this fleet's bridge (never the default
route); :func:`start_fleet` calls it before starting any server and aborts (cleaning up)
if it fails.  Callers call it again right before they send traffic.  Namespaces have no
default route, so hosts cannot reach anything beyond the bridge either.

Broken hosts for the self-tests, per host (:class:`HostPlan` or later calls):

- ``authorized=False``: sshd authorises an unrelated key (wrong credentials).
- ``slow_s``: every ssh command first sleeps ``slow_s`` (a ``ForceCommand`` wrapper --
  ``tc netem`` is not available on these kernels; :func:`netem_available` tells).
- :meth:`FleetHost.stop_sshd`: the namespace and address stay, nothing listens
  (connection refused).
- :meth:`FleetHost.power_off`: the host's link goes down (no ARP answer: connections time
  out, as to a machine that is switched off).
- :meth:`FleetHost.hang`: a listener that accepts TCP connections and never speaks (ssh
  waits for the banner until its ConnectTimeout).

Clean-up: :meth:`NetnsFleet.stop` (idempotent; also at interpreter exit and on
SIGINT/SIGTERM through :func:`lab.procs.register`) stops every process started in the
namespaces, deletes the veths, the namespaces and the bridge.  A state file per fleet in
``/run/golive-netns/`` names what it created and the owning process; a later
:func:`start_fleet` removes fleets whose owner died without cleaning up (``kill -9``).

Needs root, ``ip`` (iproute2) and openssh-server.  Usable from the command line for a
manual look: ``python -m lab.netns 3`` starts three hosts and waits for Ctrl-C.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    descendants,
    pid_alive,
    register,
    spawn,
    stop_processes,
    unregister,
)
from lab.sshd import INSTALL_HINT, SSHD, USER, _keygen, _readable_by_others, ensure_user, release_user

__all__ = [
    "FleetHost",
    "HostPlan",
    "NetnsFleet",
    "RouteError",
    "netem_available",
    "netns_available",
    "route_device",
    "start_fleet",
    "sweep_stale",
]

TEST_RANGE = ipaddress.IPv4Network("10.199.0.0/16")
STATE_DIR = Path("/run/golive-netns")
MAX_HOSTS = 250
SSH_PORT = 22
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RouteError(LabError):
    """A fleet address would not go through the fleet's bridge: nothing may be sent."""


@dataclasses.dataclass(frozen=True)
class HostPlan:
    """One host to create: its name (also its ssh alias), whether our client key is
    authorised, and an artificial delay before every command (0: none)."""

    name: str
    authorized: bool = True
    slow_s: float = 0.0


def _ip(args: Sequence[str], *, what: str, input_text: str | None = None, check: bool = True,
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(["ip", *args], check=False, capture_output=True, text=True,
                             input=input_text, timeout=timeout)
    except FileNotFoundError as exc:
        raise LabError(f"{what}: the ip command (iproute2) is not installed") from exc
    if check and res.returncode != 0:
        raise LabError(f"{what} failed (ip {' '.join(args)}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def _batch(lines: Iterable[str], *, what: str, netns: str | None = None, force: bool = False) -> None:
    """Run ``ip [-n NS] -batch -`` (``-force``: go on past failing lines, for clean-up)."""
    text = "\n".join(lines) + "\n"
    if not text.strip():
        return
    args = (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    _ip(args, what=what, input_text=text, check=not force)


def route_device(address: str) -> str | None:
    """The device ``ip route get ADDRESS`` sends ``address`` through (None: no route)."""
    res = _ip(["-o", "route", "get", address], what=f"route lookup for {address}", check=False)
    m = re.search(r"\bdev (\S+)", res.stdout)
    return m.group(1) if res.returncode == 0 and m else None


def netns_available() -> bool:
    """Can this process create network namespaces (root, iproute2, kernel support)?"""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"glprobe{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return True


def netem_available() -> bool:
    """Is the ``netem`` queueing discipline usable (``tc qdisc ... netem delay``)?  It is a
    kernel module; the machines this was built on do not have it."""
    if shutil.which("tc") is None or os.geteuid() != 0:
        return False
    probe = f"glnetem{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False).returncode != 0:
        return False
    try:
        res = subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                              "delay", "1ms"], capture_output=True, check=False)
        return res.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)


# ----------------------------------------------------------------------------- stale fleets

def _start_time(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _netns_pids(netns: str) -> list[int]:
    res = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def _kill_in_namespaces(namespaces: Iterable[str]) -> None:
    """SIGKILL whatever still runs inside our namespaces (they are ours, by name)."""
    pids = [p for ns in namespaces for p in _netns_pids(ns)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)


def _remove_network(bridge: str, veths: Iterable[str], namespaces: Iterable[str]) -> None:
    namespaces = list(namespaces)
    _kill_in_namespaces(namespaces)
    lines = [f"link del {v}" for v in veths] + [f"netns del {ns}" for ns in namespaces]
    lines.append(f"link del {bridge}")
    existing = set(Path("/run/netns").iterdir()) if Path("/run/netns").is_dir() else set()
    names = {p.name for p in existing}
    links = set(os.listdir("/sys/class/net"))
    wanted = [ln for ln in lines
              if (ln.startswith("link del ") and ln.split()[-1] in links)
              or (ln.startswith("netns del ") and ln.split()[-1] in names)]
    _batch(wanted, what="removing the test network", force=True)


def sweep_stale() -> list[str]:
    """Remove fleets whose owning process is gone (killed before it could clean up).
    Returns the fleet ids removed.  Only what a state file names is touched."""
    removed: list[str] = []
    if not STATE_DIR.is_dir():
        return removed
    for path in STATE_DIR.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid, started = int(state.get("pid", 0)), state.get("pid_start")
        if pid and pid_alive(pid) and _start_time(pid) == started:
            continue
        _remove_network(state["bridge"], state.get("veths", []), state.get("namespaces", []))
        path.unlink(missing_ok=True)
        removed.append(str(state.get("id", path.stem)))
    return removed


# ----------------------------------------------------------------------------- hosts

class FleetHost:
    """One namespace host.  ``address`` is its IPv4 address, ``uri`` the testinfra URI
    (``ssh://golive-probe@ADDR:22``); use it with the fleet's ``ssh_config`` and
    ``identity_file``."""

    def __init__(self, fleet: NetnsFleet, index: int, plan: HostPlan) -> None:
        self.fleet = fleet
        self.index = index
        self.name = plan.name
        self.authorized = plan.authorized
        self.slow_s = plan.slow_s
        self.netns = f"gl{fleet.id}-{index:03d}"
        self.veth = f"gl{fleet.id}v{index:03d}"
        self.address = str(fleet.network.network_address + index + 1)
        self.dir = fleet.run_dir / "hosts" / plan.name
        self.config_file = self.dir / "sshd_config"
        self.log_file = self.dir / "sshd.log"
        self.proc: ManagedProcess | None = None
        self.extra: list[ManagedProcess] = []  # services started beside sshd (start_stray_service)
        self.state = "created"

    @property
    def uri(self) -> str:
        return f"ssh://{self.fleet.user}@{self.address}:{SSH_PORT}"

    def target_entry(self, *, roles: Sequence[str] = (), timeout_s: float = 10,
                     data_path: str = "/") -> dict[str, Any]:
        """This host as a golive target ``hosts:`` entry."""
        return {"name": self.name, "connection": self.uri, "roles": list(roles),
                "ssh_config": str(self.fleet.ssh_config), "ssh_identity_file": str(self.fleet.identity_file),
                "data_path": data_path, "timeout_s": timeout_s}

    def accepted_logins(self) -> int:
        """How many ssh logins this host's sshd accepted so far (its log, LogLevel VERBOSE):
        with ControlMaster, one per client process however many commands ran."""
        try:
            return self.log_file.read_text(errors="replace").count("Accepted publickey")
        except OSError:
            return 0

    def run(self, *command: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        """Run a command on this host over ssh as the probe user (no ControlMaster)."""
        self.fleet.verify_routes([self.address])
        argv = ["ssh", "-F", str(self.fleet.ssh_config), self.name, *command]
        return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    # ------------------------------------------------------------ states

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        f = self.fleet
        keys = f.authorized_keys if self.authorized else f.unauthorized_keys
        lines = [
            f"ListenAddress {self.address}:{SSH_PORT}",
            f"HostKey {f.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            "UsePAM no",
            "StrictModes no",
            f"AuthorizedKeysFile {keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            f"AllowUsers {f.user}",
            "X11Forwarding no",
            "PrintMotd no",
            "UseDNS no",
            "MaxSessions 64",
            "MaxStartups 64:30:128",
            "LogLevel VERBOSE",
        ]
        if self.slow_s > 0:
            wrapper = f.shared / f"slow-{self.slow_s:g}.sh"
            if not wrapper.exists():
                wrapper.write_text("#!/bin/sh\n# golive test host: every command starts late\n"
                                   f"sleep {self.slow_s:g}\n"
                                   'exec /bin/sh -c "${SSH_ORIGINAL_COMMAND:-true}"\n')
                wrapper.chmod(0o755)
            lines.append(f"ForceCommand {wrapper}")
        self.config_file.write_text("\n".join(lines) + "\n")

    def _spawn_sshd(self) -> None:
        self.log_file.unlink(missing_ok=True)
        self.proc = spawn(f"sshd[{self.name}]",
                          ["ip", "netns", "exec", self.netns, SSHD, "-D", "-f", str(self.config_file),
                           "-E", str(self.log_file)], self.log_file, cwd=self.dir)
        self.state = "starting"

    def _listening(self) -> bool:
        try:
            return "Server listening on" in self.log_file.read_text(errors="replace")
        except OSError:
            return False

    def _stop_proc(self) -> None:
        if self.proc is None:
            return
        stop_processes([self.proc], extra_pids=descendants(self.proc.pid))
        self.proc = None

    def stop_sshd(self) -> None:
        """Stop this host's server; the namespace and its address stay (connection refused)."""
        self._stop_proc()
        _kill_in_namespaces([self.netns])
        self.state = "sshd-stopped"

    def start_sshd(self, timeout_s: float = 10.0) -> None:
        """(Re)start this host's sshd and wait until it listens."""
        self._stop_proc()
        self._write_config()
        self._spawn_sshd()
        self.fleet._wait_listening([self], timeout_s)
        self.state = "up"

    def start_stray_service(self, tcp_port: int, udp_port: int) -> ManagedProcess:
        """A service nobody declared: a Python process, run as the probe user inside this
        host's namespace, listening on TCP ``[::]:tcp_port`` (dual stack) and UDP
        ``0.0.0.0:udp_port`` -- and, harmlessly, on TCP ``127.0.0.1:tcp_port + 1`` -- until it is
        stopped (it dies with the fleet's namespaces)."""
        code = ("import socket, time\n"
                "t = socket.socket(socket.AF_INET6)\n"
                "t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
                f"t.bind(('::', {int(tcp_port)})); t.listen(8)\n"
                "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"u.bind(('0.0.0.0', {int(udp_port)}))\n"
                "lo = socket.socket()\n"
                f"lo.bind(('127.0.0.1', {int(tcp_port) + 1})); lo.listen(8)\n"
                "time.sleep(3600)\n")
        user = self.fleet.user
        proc = spawn(f"stray[{self.name}]", ["ip", "netns", "exec", self.netns, "setpriv", f"--reuid={user}",
                                             f"--regid={user}", "--init-groups", sys.executable, "-c", code],
                     self.dir / "stray.log", cwd=self.dir)
        self.extra.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(["ip", "netns", "exec", self.netns, "ss", "-H", "-l", "-t", "-n", f"sport = :{tcp_port}"],
                                 check=False, capture_output=True, text=True).stdout
            if out.strip():
                return proc
            time.sleep(0.1)
        raise LabError(f"the stray service on {self.name} did not listen on {tcp_port} within 10 s")

    def power_off(self) -> None:
        """Take the host's link down: nothing answers, not even ARP (connections time out)."""
        _ip(["-n", self.netns, "link", "set", "eth0", "down"], what=f"link down on {self.name}")
        self.state = "off"

    def power_on(self) -> None:
        _ip(["-n", self.netns, "link", "set", "eth0", "up"], what=f"link up on {self.name}")
        self.state = "up" if self.proc is not None else "sshd-stopped"

    def hang(self) -> None:
        """Replace sshd with a listener that accepts connections and never answers."""
        self._stop_proc()
        code = ("import socket,time\n"
                "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(({self.address!r}, {SSH_PORT})); s.listen(128)\n"
                "print('listening', flush=True)\n"
                "while True: time.sleep(3600)\n")
        self.log_file.unlink(missing_ok=True)
        self.proc = spawn(f"hang[{self.name}]", ["ip", "netns", "exec", self.netns, sys.executable, "-c", code],
                          self.log_file, cwd=self.dir)
        deadline = time.monotonic() + 10
        while "listening" not in (self.log_file.read_text(errors="replace") if self.log_file.exists() else ""):
            if not self.proc.alive() or time.monotonic() > deadline:
                raise LabError(f"the silent listener on {self.name} did not start: {self.proc.tail()}")
            time.sleep(0.02)
        self.state = "hung"

    def __repr__(self) -> str:
        return f"<FleetHost {self.name} {self.address} {self.state}>"


# ----------------------------------------------------------------------------- the fleet

class NetnsFleet(StopsOnExit):
    """The bridge, the namespaces and their sshds.  ``hosts`` in plan order; ``host(name)``;
    ``ssh_config`` has one ``Host <name>`` entry per host (HostName, Port, User, key)."""

    def __init__(self, run_dir: Path, user: str = USER) -> None:
        self.run_dir = run_dir
        self.user = user
        self.id = f"{random.getrandbits(16):04x}"
        self.bridge = f"glb{self.id}"
        self.network = TEST_RANGE  # replaced by the allocated /24
        self.hosts: list[FleetHost] = []
        self.shared = run_dir
        self.host_key = run_dir / "ssh_host_ed25519_key"
        self.identity_file = run_dir / "id_ed25519"
        self.authorized_keys = run_dir / "authorized_keys"
        self.unauthorized_keys = run_dir / "authorized_keys.unrelated"
        self.ssh_config = run_dir / "ssh_config"
        self.state_file = STATE_DIR / f"{self.id}.json"
        self._scratch: list[Path] = []
        self._stopped = False
        self._network_made = False
        self.setup_s = 0.0

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def addresses(self) -> list[str]:
        return [h.address for h in self.hosts]

    def host(self, name: str) -> FleetHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def __iter__(self) -> Iterator[FleetHost]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __repr__(self) -> str:
        return f"<NetnsFleet {self.id} {self.network} {len(self.hosts)} hosts stopped={self._stopped}>"

    # ------------------------------------------------------------ routes

    def verify_routes(self, addresses: Iterable[str] | None = None) -> None:
        """Raise :class:`RouteError` unless every address is routed through this fleet's
        bridge.  Call it before sending anything to a fleet address."""
        addrs = list(self.addresses if addresses is None else addresses)
        if not addrs:
            return
        res = _ip(["-o", "-batch", "-"], what="route lookup", check=False,
                  input_text="".join(f"route get {a}\n" for a in addrs))
        devices = [m.group(1) for m in re.finditer(r"\bdev (\S+)", res.stdout)]
        if res.returncode != 0 or len(devices) != len(addrs):  # one line each, else look one by one
            devices = [route_device(a) or "(no route)" for a in addrs]
        wrong = [f"{a} via {d}" for a, d in zip(addrs, devices, strict=True) if d != self.bridge]
        if wrong:
            raise RouteError(f"test addresses not routed through bridge {self.bridge}: {', '.join(wrong[:5])}"
                             " -- refusing to send anything there")

    # ------------------------------------------------------------ set-up

    def _pick_network(self) -> ipaddress.IPv4Network:
        taken: list[ipaddress.IPv4Network] = []
        for args in (["-o", "-4", "route", "show", "table", "all"], ["-o", "-4", "addr", "show"]):
            out = _ip(args, what="reading routes", check=False).stdout
            for m in re.finditer(r"(?:^|\s)(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", out):
                with contextlib.suppress(ValueError):
                    taken.append(ipaddress.IPv4Network(m.group(1), strict=False))
        candidates = list(TEST_RANGE.subnets(new_prefix=24))[1:-1]
        random.shuffle(candidates)
        for net in candidates:
            if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
                return net
        raise LabError(f"no free /24 left in {TEST_RANGE} for a test fleet")

    def _write_keys(self) -> None:
        if not _readable_by_others(self.run_dir):
            shared = Path(tempfile.mkdtemp(prefix="golive-fleet-", dir="/tmp"))
            shared.chmod(0o755)
            self._scratch.append(shared)
            self.shared = shared
            self.authorized_keys = shared / "authorized_keys"
            self.unauthorized_keys = shared / "authorized_keys.unrelated"
        _keygen(self.host_key, "golive-fleet-host")
        _keygen(self.identity_file, "golive-fleet-client")
        other = self.run_dir / "unrelated_ed25519"
        _keygen(other, "golive-fleet-unrelated")
        self.authorized_keys.write_text(Path(f"{self.identity_file}.pub").read_text())
        self.unauthorized_keys.write_text(Path(f"{other}.pub").read_text())
        for p in (self.authorized_keys, self.unauthorized_keys):
            p.chmod(0o644)

    def _write_ssh_config(self) -> None:
        common = (f"    User {self.user}\n    Port {SSH_PORT}\n    IdentityFile {self.identity_file}\n"
                  "    IdentitiesOnly yes\n    BatchMode yes\n    PasswordAuthentication no\n"
                  "    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n"
                  "    ConnectTimeout 5\n")
        parts = [f"# golive test fleet {self.id} ({self.network}); no ControlMaster here: the caller decides\n"]
        for h in self.hosts:
            parts.append(f"Host {h.name}\n    HostName {h.address}\n")
        prefix = ".".join(str(self.network.network_address).split(".")[:3])
        parts.append(f"Host {' '.join(h.name for h in self.hosts)} {prefix}.*\n" + common)
        self.ssh_config.write_text("".join(parts))

    def _save_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {"id": self.id, "pid": os.getpid(), "pid_start": _start_time(os.getpid()),
                 "bridge": self.bridge, "network": str(self.network),
                 "veths": [h.veth for h in self.hosts], "namespaces": [h.netns for h in self.hosts]}
        self.state_file.write_text(json.dumps(state))

    def _make_network(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        with open(STATE_DIR / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two fleets must not pick the same /24
            self.network = self._pick_network()
            for h in self.hosts:
                h.address = str(self.network.network_address + h.index + 1)
            self._save_state()  # before creating anything: a crash from here on is swept
            self._network_made = True
            _batch([f"link add {self.bridge} type bridge",
                    f"addr add {self.gateway}/24 dev {self.bridge}",
                    f"link set {self.bridge} up"], what=f"creating bridge {self.bridge}")
        lines = []
        for h in self.hosts:
            lines += [f"netns add {h.netns}",
                      f"link add {h.veth} type veth peer name eth0 netns {h.netns}",
                      f"link set {h.veth} master {self.bridge} up"]
        _batch(lines, what="creating namespaces and veths")
        for dev in [self.bridge] + [h.veth for h in self.hosts]:  # keep IPv6 chatter off the bridge
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6").write_text("1")
        for h in self.hosts:
            _batch(["link set lo up", f"addr add {h.address}/24 dev eth0", "link set eth0 up"],
                   what=f"addressing {h.name}", netns=h.netns)

    def _wait_listening(self, hosts: Sequence[FleetHost], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(hosts)
        while pending:
            for h in list(pending):
                if h.proc is not None and not h.proc.alive():
                    raise LabError(f"sshd on {h.name} ({h.address}) did not start: {h.proc.describe_exit()}\n"
                                   f"log {h.log_file}:\n{h.proc.tail()}")
                if h._listening():
                    pending.remove(h)
            if pending and time.monotonic() > deadline:
                raise LabError(f"sshd not listening after {timeout_s:.0f} s on: "
                               + ", ".join(h.name for h in pending[:5]))
            time.sleep(0.02)

    def _start(self, plans: Sequence[HostPlan], start_timeout_s: float) -> None:
        started = time.monotonic()
        if os.geteuid() != 0:
            raise LabError("a namespace fleet needs root (ip netns, sshd)")
        if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
            raise LabError(f"{SSHD} / ssh-keygen not found: {INSTALL_HINT}")
        if not plans or len(plans) > MAX_HOSTS:
            raise LabError(f"a fleet has 1 to {MAX_HOSTS} hosts, not {len(plans)}")
        names = [p.name for p in plans]
        bad = [n for n in names if not _NAME_OK.match(n)] + sorted({n for n in names if names.count(n) > 1})
        if bad:
            raise LabError(f"host names must be unique and plain: {', '.join(bad)}")
        sweep_stale()
        ensure_user(self.user)
        self._holds_user = True
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        register(self)
        self.hosts = [FleetHost(self, i + 1, p) for i, p in enumerate(plans)]
        self._make_network()
        self.verify_routes()  # before any traffic, and before any server starts
        self._write_keys()
        self._write_ssh_config()
        for h in self.hosts:
            h._write_config()
            h._spawn_sshd()
        self._wait_listening(self.hosts, start_timeout_s)
        for h in self.hosts:
            h.state = "up"
        self.setup_s = time.monotonic() - started

    # ------------------------------------------------------------ clean-up

    def stop(self) -> None:
        """Stop every process in the fleet, delete veths, namespaces and the bridge."""
        if self._stopped:
            return
        self._stopped = True
        procs = [h.proc for h in self.hosts if h.proc is not None] + [e for h in self.hosts for e in h.extra]
        extra = [p for proc in procs for p in descendants(proc.pid)]
        if procs:
            stop_processes(procs, extra_pids=extra)
        if self._network_made:
            _remove_network(self.bridge, [h.veth for h in self.hosts], [h.netns for h in self.hosts])
            self.state_file.unlink(missing_ok=True)
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)
        unregister(self)
        if getattr(self, "_holds_user", False):
            self._holds_user = False
            release_user(self.user)  # the account golive made goes with its last user


def start_fleet(run_dir: Path, hosts: Sequence[HostPlan | str] | int, *, user: str = USER,
                start_timeout_s: float = 30.0) -> NetnsFleet:
    """Create the namespaces and start one sshd in each; see the module doc.

    ``hosts``: plans, plain names, or a count (names ``host-01``...).  On any failure
    everything created so far is removed before the error propagates.
    """
    if isinstance(hosts, int):
        width = max(2, len(str(hosts)))
        plans = [HostPlan(f"host-{i:0{width}d}") for i in range(1, hosts + 1)]
    else:
        plans = [h if isinstance(h, HostPlan) else HostPlan(h) for h in hosts]
    fleet = NetnsFleet(Path(run_dir).resolve(), user)
    try:
        fleet._start(plans, start_timeout_s)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _main(argv: list[str]) -> int:  # pragma: no cover - manual use
    count = int(argv[0]) if argv else 3
    with start_fleet(Path(tempfile.mkdtemp(prefix="golive-fleet-run-")), count) as fleet:
        print(f"fleet {fleet.id} on {fleet.network} (bridge {fleet.bridge}), ssh -F {fleet.ssh_config} NAME")
        for h in fleet:
            print(f"  {h.name:10} {h.uri}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main(sys.argv[1:]))
