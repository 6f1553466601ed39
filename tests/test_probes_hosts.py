"""Self-tests of checks/hosts.py and checks/connection.py on this machine, locally and over
a real sshd on 127.0.0.1 (started here; ``lab.sshd.start_sshd`` is used when present).

Expected values come from independent sources (os, shutil, /proc, /sys, the binaries
themselves), not from the probes.  Only the nvidia-smi parser is fed canned output.
"""
from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testinfra.host import Host

from checks import connection
from checks.connection import GatheredResult, ProbeError, forget_prefetched, get_host, prefetch, run
from checks.hosts import probes as hosts

SSHD = "/usr/sbin/sshd"
USER = "golive-probe"


@dataclass
class Sshd:
    uri: str
    ssh_config: str
    identity_file: str
    port: int


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Children of ``pid`` (sshd's per-connection processes call setsid, so a process
    group signal would miss them)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def _own_sshd(work: Path, refuse: bool) -> Iterator[Sshd]:
    """A throwaway sshd on 127.0.0.1 for the user golive-probe (/bin/sh, key only);
    ``refuse``: another key than the client's is authorised."""
    if subprocess.run(["id", "-u", USER], check=False, capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)  # unlocked, no password
    for name in ("host_key", "id_ed25519", "unrelated_key"):
        _keygen(work / name)
    shutil.copy(work / ("unrelated_key.pub" if refuse else "id_ed25519.pub"),
                work / "authorized_keys")
    (work / "authorized_keys").chmod(0o644)
    port = _free_port()
    (work / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work}/host_key\n"
        f"PidFile {work}/sshd.pid\nAuthorizedKeysFile {work}/authorized_keys\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nAllowUsers {USER}\n")
    (work / "ssh_config").write_text(
        "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  IdentitiesOnly yes\n  LogLevel ERROR\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-f", str(work / "sshd_config"),
                             "-E", str(work / "sshd.log")])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sshd did not start: {(work / 'sshd.log').read_text()}")
                time.sleep(0.05)
        yield Sshd(f"ssh://{USER}@127.0.0.1:{port}", str(work / "ssh_config"),
                   str(work / "id_ed25519"), port)
    finally:
        for pid in _descendants(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        proc.terminate()
        proc.wait(timeout=10)


def _start(refuse: bool) -> Iterator[Sshd]:
    """lab.sshd's server where it exists, else a small one started here."""
    if os.geteuid() != 0 or not os.path.exists(SSHD):
        pytest.skip("needs root and openssh-server to start a test sshd")
    work = Path(tempfile.mkdtemp(prefix="golive-probe-sshd-"))
    work.chmod(0o755)  # sshd reads authorized_keys as the user
    try:
        try:
            from lab.sshd import start_sshd
        except ImportError:
            yield from _own_sshd(work, refuse)
        else:
            lab = start_sshd(work, authorized=not refuse)
            try:
                yield Sshd(lab.uri, str(lab.ssh_config), str(lab.identity_file), lab.port)
            finally:
                lab.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    yield from _start(refuse=False)


@pytest.fixture(scope="module")
def refusing_sshd() -> Iterator[Sshd]:
    """An sshd that does not accept the client's key."""
    yield from _start(refuse=True)


@pytest.fixture(params=["local", "ssh"])
def host(request: pytest.FixtureRequest) -> Host:
    if request.param == "local":
        return get_host("local://")
    s: Sshd = request.getfixturevalue("sshd")
    return get_host(s.uri, ssh_config=s.ssh_config, ssh_identity_file=s.identity_file)


# --- facts, checked against independent sources -------------------------------------

def test_cpu_cores(host: Host) -> None:
    m = hosts.cpu_cores(host)
    nproc = int(subprocess.run(["nproc"], check=False, capture_output=True, text=True).stdout)
    assert m.ok and m.value == nproc == len(os.sched_getaffinity(0))
    assert m.value <= (os.cpu_count() or 0)
    assert m.unit == "vCPU" and m.evidence.probe == "hosts.cpu_cores"
    assert m.evidence.data["physical_cores"] >= 1
    assert m.evidence.tool.startswith("pytest-testinfra ")
    assert host.backend.get_connection_type() in m.evidence.tool


def test_memory(host: Host) -> None:
    kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])  # type: ignore[index]
    m = hosts.memory(host)
    assert m.ok and m.value == kib * 1024 and m.unit == "bytes"
    assert m.evidence.raw.startswith("MemTotal:")


def test_disk(host: Host) -> None:
    m = hosts.disk(host, "/")
    assert m.ok and m.value == shutil.disk_usage("/").total
    assert m.evidence.data["mount"] == "/" and m.evidence.method == "df -P -B1 /"
    missing = hosts.disk(host, "/no/such/path")
    assert not missing.ok and "does not exist" in (missing.error or "")


def test_storage_kind(host: Host) -> None:
    m = hosts.storage_kind(host, "/")
    source = subprocess.run(["findmnt", "-no", "SOURCE", "-T", "/"], check=False, capture_output=True,
                            text=True).stdout.strip()
    disk = Path("/sys/class/block") / Path(source).name
    if disk.exists():
        if (disk / "partition").exists():
            disk = disk.resolve().parent
        rota = (disk / "queue" / "rotational").read_text().strip()
        driver = os.path.basename(os.path.realpath(disk / "device" / "driver"))
        if disk.name.startswith("nvme"):
            assert m.value == "nvme"
        elif rota == "0":
            assert m.value == "ssd"
        elif driver.startswith(("virtio", "xen")):  # this machine: virtio_blk, ROTA=1
            assert not m.ok and "paravirtual" in (m.error or "")
        else:
            assert m.value == "hdd"
    else:  # overlay or similar root
        assert not m.ok and m.error
    tmpfs = hosts.storage_kind(host, "/dev/shm")
    assert not tmpfs.ok and "tmpfs" in (tmpfs.error or "")
    assert "does not exist" in (hosts.storage_kind(host, "/no/such/path").error or "")


def test_nic_speed(host: Host) -> None:
    speeds: dict[str, int] = {}
    physical = []
    for nic in Path("/sys/class/net").iterdir():
        if nic.name == "lo" or not (nic / "device").exists():
            continue
        physical.append(nic.name)
        try:
            speed = int((nic / "speed").read_text())
        except (OSError, ValueError):
            continue
        if speed > 0:
            speeds[nic.name] = speed
    m = hosts.nic_speed(host)
    if speeds:
        assert m.ok and m.value == max(speeds.values()) and m.unit == "Mbps"
    else:  # this machine: virtio_net reports -1
        assert not m.ok and "tried" in (m.error or "")
        for name in physical:
            assert name in (m.error or "")


def test_os_release(host: Host) -> None:
    expected = platform.freedesktop_os_release()
    m = hosts.os_release(host)
    assert m.ok and m.value["id"] == expected["ID"] == "debian"
    assert m.value["version_id"] == expected.get("VERSION_ID", "")
    assert m.value["pretty_name"] == expected["PRETTY_NAME"]
    assert m.value["kernel"] == f"{platform.system()} {platform.release()}"


def test_python_version_is_the_hosts_python3(host: Host) -> None:
    path = run(host, "command -v python3").stdout.strip()
    banner = subprocess.run([path, "--version"], check=False, capture_output=True, text=True).stdout
    m = hosts.software_version(host, "python")
    assert m.ok and m.value == banner.split()[1]
    assert hosts.version_at_least(m.value, "3.8")


def test_nginx_version(host: Host) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.skip("nginx not installed")
    banner = subprocess.run([nginx, "-v"], check=False, capture_output=True, text=True).stderr  # stderr!
    m = hosts.software_version(host, "nginx")
    assert m.ok and m.value == re.search(r"nginx/([\d.]+)", banner)[1]  # type: ignore[index]
    assert "nginx" in m.evidence.method and m.evidence.raw.startswith("nginx version")


def test_sqlite_version_matches_python(host: Host) -> None:
    path = run(host, "command -v python3").stdout.strip()
    code = "import sqlite3;print(sqlite3.sqlite_version)"
    expected = subprocess.run([path, "-c", code], check=False, capture_output=True, text=True).stdout.strip()
    m = hosts.software_version(host, "sqlite")
    assert m.ok and m.value == expected


def test_postgresql_prefers_server_binary(host: Host) -> None:
    servers = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not servers:
        pytest.skip("no PostgreSQL server installed")
    banner = subprocess.run([str(servers[-1]), "--version"], check=False, capture_output=True, text=True).stdout
    m = hosts.software_version(host, "postgresql")
    assert m.ok and m.value == re.search(r"\) (\d+(?:\.\d+)*)", banner)[1]  # type: ignore[index]
    assert m.evidence.data["client_only"] is False


def test_missing_software_is_a_fact_not_an_error(host: Host) -> None:
    if shutil.which("podman") is None:
        m = hosts.software_version(host, "podman")
        assert m.ok and m.value is None and m.display == "not installed"
    venv = hosts.software_version(host, "gunicorn", binary="/nonexistent/venv/bin/gunicorn")
    assert venv.ok and venv.value is None and venv.display == "not installed"
    with pytest.raises(ValueError):
        hosts.software_version(host, "no-such-software")


def test_gpus(host: Host) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    m = hosts.gpus(host)
    assert m.ok and m.value == [] and "nvidia-smi not found" in m.display


def test_listening_sockets_over_host(host: Host, sshd: Sshd) -> None:
    m = hosts.listening_sockets(host, sshd.port)
    assert m.ok and m.value == ["127.0.0.1"]


# --- parsers ------------------------------------------------------------------------

H100_X2 = """\
0, NVIDIA H100 80GB HBM3, 81559, 535.129.03
1, NVIDIA H100 80GB HBM3, 81559, 535.129.03
"""
MIXED = """\
0, Tesla T4, 15360, 470.182.03
1, NVIDIA A100-SXM4-40GB, 40960, 470.182.03
2, NVIDIA GeForce RTX 3090, [N/A], 470.182.03
"""


def test_parse_nvidia_smi_csv() -> None:
    two = hosts.parse_nvidia_smi_csv(H100_X2)
    assert two == [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559,
                    "driver": "535.129.03"} for i in (0, 1)]
    mixed = hosts.parse_nvidia_smi_csv(MIXED)
    assert [g["memory_mib"] for g in mixed] == [15360, 40960, None]
    assert mixed[1]["name"] == "NVIDIA A100-SXM4-40GB"
    assert hosts.parse_nvidia_smi_csv("\n") == []
    with pytest.raises(ValueError):
        hosts.parse_nvidia_smi_csv("NVIDIA-SMI has failed because it couldn't communicate "
                                   "with the NVIDIA driver.")


@pytest.mark.parametrize(("measured", "required", "ok"), [
    ("1.22.1", "1.18", True), ("3.11.7", "3.8", True), ("3.8", "3.9", False),
    ("15.18", "12", True), ("28.2.2, build e6534b4", "19.03", True),
    ("1.22.1", "1.22.10", False), ("v1.25.3+k3s1", "1.25", True), ("1.1.1w", "1.1.1", True),
    ("2.6.12-1+deb12u4", "2.6.12", True), ("19.0", "19.03", False),
])
def test_version_at_least(measured: str, required: str, ok: bool) -> None:
    assert hosts.version_at_least(measured, required) is ok


def test_parse_version_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        hosts.parse_version("unknown")


# --- gathering: many commands in one session, answers identical to running them alone --

@pytest.fixture
def clean_prefetch() -> Iterator[None]:
    forget_prefetched()
    yield
    forget_prefetched()


TRICKY = ["printf 'no newline'", "printf 'two\\n\\n'", "echo out; echo err >&2; exit 3", "true",
          "printf '%s\\n' \"$HOME\" '%d' \"it's\"", "no-such-command-golive", "exit 124",
          "printf 'x\\nx0\\n'; printf 'x' >&2"]


def test_prefetched_answers_are_exactly_the_commands_own(host: Host, clean_prefetch: None) -> None:
    alone = {cmd: run(host, cmd) for cmd in TRICKY}
    session = prefetch(host, TRICKY, 10)
    assert session.ok and session.commands == len(TRICKY), session
    for cmd in TRICKY:
        got = run(host, cmd)
        assert isinstance(got, GatheredResult) and got.session == session, cmd
        # the one difference: the shell's own messages name the eval it ran the command with
        assert (got.rc, got.stdout, got.stderr.replace("eval: ", "")) == (alone[cmd].rc, alone[cmd].stdout,
                                                                          alone[cmd].stderr), cmd
        assert got.elapsed_s is not None and got.elapsed_s >= 0
    again = run(host, TRICKY[0])  # each answer serves one run; the next one runs for real
    assert not isinstance(again, GatheredResult) and again.stdout == "no newline"


def test_a_command_that_hangs_in_a_session_times_out_and_the_rest_run_alone() -> None:
    host = get_host("local://")
    forget_prefetched()
    session = prefetch(host, ["echo before", "sleep 30", "echo after"], 2)
    assert not session.ok and session.duration_s < 10, session
    assert "1 of 3" not in (session.reason or "") and "`sleep 30` was still running" in (session.reason or "")
    assert isinstance(run(host, "echo before"), GatheredResult)
    with pytest.raises(ProbeError, match=r"^timed out after 2 s$"):
        run(host, "sleep 30", timeout_s=2)
    after = run(host, "echo after")  # never reached in the session: runs on its own
    assert after.stdout == "after\n" and not isinstance(after, GatheredResult)
    prefetch(host, ["exit 124"], 2)
    assert run(host, "exit 124").rc == 124  # exits 124 at once: not a time-out


def test_answers_go_stale(monkeypatch: pytest.MonkeyPatch, clean_prefetch: None) -> None:
    host = get_host("local://")
    prefetch(host, ["date +%s%N"], 5)
    monkeypatch.setattr(connection, "KEEP_S", 0.0)
    time.sleep(0.01)
    assert not isinstance(run(host, "date +%s%N"), GatheredResult)


def test_a_failed_session_keeps_nothing(sshd: Sshd) -> None:
    port = _free_port()
    host = get_host(f"ssh://{USER}@127.0.0.1:{port}", ssh_config=sshd.ssh_config,
                    ssh_identity_file=sshd.identity_file, timeout_s=3)
    session = prefetch(host, ["nproc", "uname -sr"], 3)
    assert not session.ok and "connection refused" in (session.reason or ""), session
    m = hosts.cpu_cores(host)
    assert not m.ok and "connection refused" in (m.error or "") and "session" not in m.evidence.data


FACTS: list[tuple[Any, tuple[Any, ...]]] = [
    (hosts.cpu_cores, ()), (hosts.memory, ()), (hosts.disk, ("/",)), (hosts.storage_kind, ("/",)),
    (hosts.nic_speed, ()), (hosts.os_release, ()), (hosts.gpus, ()), (hosts.software_version, ("python",)),
    (hosts.software_version, ("nginx",)), (hosts.listening_sockets, (22,))]


@pytest.mark.parametrize("probe, args", FACTS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_gathered_facts_equal_measured_ones(host: Host, probe: Any, args: tuple[Any, ...],
                                            clean_prefetch: None) -> None:
    """Every command a probe declares is one it runs (else the answer would go unused) and
    the fact measured from a session is the fact measured alone, evidence dated from it."""
    alone = probe(host, *args)
    first = hosts.first_commands(probe, *args)
    assert first, probe
    session = prefetch(host, first, 10)
    gathered = probe(host, *args)
    assert (gathered.value, gathered.display, gathered.error) == (alone.value, alone.display, alone.error)
    used = gathered.evidence.data["session"]
    assert used["answered"] == list(first) and used["commands"] == len(first), used
    assert gathered.evidence.measured_at == session.at
    assert gathered.evidence.duration_s >= session.duration_s
    assert gathered.evidence.method == alone.evidence.method


def test_first_commands_of_an_unknown_probe_is_empty() -> None:
    assert hosts.first_commands(print) == ()


# --- failures are measurements with reasons, bounded in time --------------------------

def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    return fn(*args, **kwargs), time.monotonic() - started


def test_master_connections_end_with_the_run(sshd: Sshd) -> None:
    """After golive's process is done with a host, its ControlMaster does not stay logged in."""
    code = ("from checks.connection import get_host, run\n"
            f"h = get_host({sshd.uri!r}, ssh_config={sshd.ssh_config!r}, ssh_identity_file={sshd.identity_file!r})\n"
            "print(run(h, \"sed -n 's/^PPid:[[:space:]]*//p' /proc/$PPID/status\").stdout.strip())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent, check=False)
    assert proc.returncode == 0, proc.stderr
    session_parent = int(proc.stdout.strip())  # sshd's process for the connection (shell < timeout < it)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{session_parent}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{session_parent}"), "the ssh connection outlived the golive process"


def test_ssh_closed_port_is_an_error_with_reason(sshd: Sshd) -> None:
    port = _free_port()
    host = get_host(f"ssh://{USER}@127.0.0.1:{port}", ssh_config=sshd.ssh_config,
                    ssh_identity_file=sshd.identity_file, timeout_s=3)
    m, took = _timed(hosts.cpu_cores, host)
    assert not m.ok and m.error == f"ssh: connection refused to 127.0.0.1:{port}"
    assert m.evidence.subject == f"ssh://{USER}@127.0.0.1:{port}"
    assert took < 5


def test_ssh_wrong_key_is_an_error_with_reason(refusing_sshd: Sshd) -> None:
    s = refusing_sshd
    host = get_host(s.uri, ssh_config=s.ssh_config, ssh_identity_file=s.identity_file)
    m, took = _timed(hosts.memory, host)
    assert not m.ok and m.error == "ssh: permission denied (publickey)"
    assert took < 10


def test_password_never_appears_in_reason_or_evidence(sshd: Sshd) -> None:
    uri = f"ssh://{USER}:hunter2@127.0.0.1:{_free_port()}"
    m = hosts.os_release(get_host(uri, ssh_config=sshd.ssh_config, timeout_s=2))
    assert not m.ok
    assert "hunter2" not in f"{m.error} {m.evidence.to_dict()}"
    assert "***" in m.evidence.subject


@pytest.fixture(params=[b"", b"SSH-2.0-OpenSSH_9.2p1\r\n"], ids=["no-banner", "banner-then-silence"])
def silent_server(request: pytest.FixtureRequest) -> Iterator[int]:
    """Accepts TCP connections and never speaks, or sends an ssh banner and then hangs
    (where ssh's ConnectTimeout no longer applies and only run()'s guard stops it)."""
    banner: bytes = request.param
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if banner:
                conn.sendall(banner)
            held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield int(server.getsockname()[1])
    server.close()
    for conn in held:  # lets the hung ssh clients exit
        conn.close()


def test_ssh_hang_is_bounded(sshd: Sshd, silent_server: int) -> None:
    host = get_host(f"ssh://{USER}@127.0.0.1:{silent_server}", ssh_config=sshd.ssh_config,
                    ssh_identity_file=sshd.identity_file, timeout_s=2)
    m, took = _timed(hosts.nic_speed, host, timeout_s=2)
    assert not m.ok and "timed out" in (m.error or "")
    assert took < 2 + 4


def test_command_that_hangs_is_cut_off() -> None:
    host = get_host("local://")
    started = time.monotonic()
    with pytest.raises(ProbeError, match=r"^timed out after 1 s$"):
        run(host, "sleep 30", timeout_s=1)
    assert time.monotonic() - started < 4


def test_missing_command_is_not_a_probe_error() -> None:
    result = run(get_host("local://"), "no-such-command-golive --version")
    assert result.rc == 127


def test_unknown_connection_type() -> None:
    with pytest.raises(ProbeError, match="cannot use connection"):
        get_host("carrier-pigeon://user:pw@coop")
    try:
        get_host("carrier-pigeon://user:pw@coop")
    except ProbeError as exc:
        assert "pw@" not in exc.reason
