"""Self-tests of the lab: real nginx, inference instances, internal API, backups and sshd.

Everything binds and connects to loopback only.  One compliant lab is shared by the module;
tests that need another variant or a fresh lab start their own and always stop it.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import database
from lab.procs import LabError
from lab.run import RunningLab, start_lab
from lab.variants import Variant

ALLOWED = "https://app.golive.test"


def _connect_refused(host: str, port: int) -> bool:
    """True when a TCP connection to host:port is actively refused (nothing listens)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def _https(lab: RunningLab, method: str, path: str, *, headers: dict[str, str] | None = None,
           body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """A request through nginx with certificate and host-name verification against the lab CA."""
    conn = http.client.HTTPSConnection("localhost", lab.ports["https"], timeout=10,
                                       context=lab.ssl_context())
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _http(host: str, port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": f"localhost:{port}"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _processes_under(workdir: Path) -> list[str]:
    """Live processes whose command line or working directory mentions ``workdir``."""
    needle = str(workdir)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            if stat[stat.rfind(")") + 2] == "Z":
                continue
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    running = start_lab(tmp_path_factory.mktemp("lab-compliant"))
    try:
        yield running
    finally:
        running.stop()


# --------------------------------------------------------------------- the address claim


def test_loopback_bound_socket_is_not_reachable_at_127_0_0_2() -> None:
    """The premise of the reachability check: 127.0.0.1-bound means not at 127.0.0.2."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert not _connect_refused("127.0.0.1", port)
        assert _connect_refused("127.0.0.2", port)


# --------------------------------------------------------------------- compliant lab


def test_health_over_tls_with_lab_ca(lab: RunningLab) -> None:
    status, headers, body = _https(lab, "GET", "/health")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert headers["x-content-type-options"] == "nosniff"
    assert "x-frame-options" in headers and "referrer-policy" in headers


def test_http_listener_redirects_to_https(lab: RunningLab) -> None:
    status, headers, _ = _http("127.0.0.1", lab.ports["http"], "/some/path?q=1")
    assert status == 301
    assert headers["location"] == f"https://localhost:{lab.ports['https']}/some/path?q=1"


def test_both_instances_serve(lab: RunningLab) -> None:
    # haproxy only routes to an instance after its health checks pass (rise 2 x 200 ms), and an
    # instance restarted by the supervisor in an earlier test needs a moment: poll, bounded.
    seen: set[str] = set()
    for _ in range(100):
        seen.add(json.loads(_https(lab, "GET", "/health")[2])["instance"])
        if seen == {"app-1", "app-2"}:
            break
        time.sleep(0.1)
    assert seen == {"app-1", "app-2"}


def test_analyze_does_work_and_answers_ok(lab: RunningLab) -> None:
    status, _, body = _https(lab, "POST", "/v1/analyze", body=b'{"media": "x"}',
                             headers={"Content-Type": "application/json"})
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "ok"
    assert len(answer["result"]) == 64 and answer["cost_ms"] == 50
    assert answer["elapsed_ms"] >= 40  # real CPU work, not a sleep-free stub


def test_cors_allows_only_the_configured_origin(lab: RunningLab) -> None:
    _, allowed, _ = _https(lab, "GET", "/health", headers={"Origin": ALLOWED})
    assert allowed["access-control-allow-origin"] == ALLOWED
    assert allowed["access-control-allow-credentials"] == "true"
    _, other, _ = _https(lab, "GET", "/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other
    status, pre, _ = _https(lab, "OPTIONS", "/v1/analyze",
                            headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"})
    assert status == 204 and pre["access-control-allow-methods"] == "GET, POST, OPTIONS"


def test_internal_api_is_loopback_only(lab: RunningLab) -> None:
    port = lab.ports["internal"]
    status, _, body = _http("127.0.0.1", port, "/admin/status")
    assert status == 200 and json.loads(body)["bind"] == "127.0.0.1"
    assert _connect_refused("127.0.0.2", port)
    assert lab.target_overrides()["endpoints"]["internal"] == [f"127.0.0.2:{port}"]


def test_backup_exists_and_is_intact(lab: RunningLab) -> None:
    backups = database.list_backups(lab.backup_dir)
    assert backups, f"no backup in {lab.backup_dir}"
    newest = backups[-1]
    conn = sqlite3.connect(f"file:{newest}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM analyses").fetchone()[0] > 0
    finally:
        conn.close()
    manifest = database.read_manifest(lab.backup_dir)
    assert manifest["backups"][newest.name]["sha256"] == hashlib.sha256(newest.read_bytes()).hexdigest()
    age_s = time.time() - newest.stat().st_mtime
    assert age_s < 600


def test_target_overrides_describe_the_lab(lab: RunningLab) -> None:
    o = lab.target_overrides()
    https = lab.ports["https"]
    assert o["endpoints"]["public"] == f"https://localhost:{https}"
    assert o["endpoints"]["ca_file"] == str(lab.ca_file) and lab.ca_file.exists()
    assert o["inference"]["capacity_apm"] == pytest.approx(2 * 60000 / 50)
    assert [i["name"] for i in o["ha"]["instances"]] == ["app-1", "app-2"]
    assert o["backups"][0]["location"] == str(lab.backup_dir)
    assert o["services"][0]["bind"] == "loopback"
    json.dumps(o)  # plain data only


# --------------------------------------------------------------------- other labs


def test_exposed_internal_is_reachable_at_127_0_0_2(tmp_path: Path) -> None:
    with start_lab(tmp_path / "exposed", "exposed_internal") as exposed:
        port = exposed.ports["internal"]
        status, _, body = _http("127.0.0.2", port, "/admin/status")
        assert status == 200 and json.loads(body)["bind"] == "0.0.0.0"


def test_start_and_stop_leave_nothing_behind(tmp_path: Path) -> None:
    workdir = tmp_path / "lifecycle"
    started = time.monotonic()
    lab = start_lab(workdir, "single_instance", backup_interval_s=0.4)
    try:
        duration = time.monotonic() - started
        pids = [pid for group in lab.pids().values() for pid in group]
        assert len(lab.pids()["nginx"]) >= 2  # master and a worker, one process group
        assert all(lab.pids().values())
        assert duration < 15
        time.sleep(1.3)  # the backup job keeps writing (names have 1 s resolution)
        assert len(database.list_backups(lab.backup_dir)) >= 2
        static = lab.static_dir  # the media and Web UI page nginx serves (OZ-NET-02/03), outside the lab folder
        assert static is not None and (static / "media" / "sample-001.png").read_bytes().startswith(b"\x89PNG")
        assert oct(static.stat().st_mode & 0o777) == "0o755"
    finally:
        lab.stop()
    lab.stop()  # idempotent
    assert lab.stop_duration_s < 5
    assert not static.exists()
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"]
    assert alive == []
    assert _processes_under(workdir) == []
    for name, port in lab.ports.items():
        assert _connect_refused("127.0.0.1", port), f"{name} port {port} still answers"
        with socket.socket() as s:  # and the port can be bound again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    # The workdir can be reused for the next lab.
    with start_lab(workdir, "compliant", instances=1) as again:
        assert again.pids()["nginx"]


def test_failed_start_names_the_component_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lab.nginx

    monkeypatch.setattr(lab.nginx, "render_config", lambda *a, **k: "this is not nginx config;\n")
    workdir = tmp_path / "broken"
    with pytest.raises(LabError) as info:
        start_lab(workdir, start_timeout_s=5)
    message = str(info.value)
    assert "nginx" in message and "unknown directive" in message
    assert _processes_under(workdir) == []


def test_port_collision_is_retried_with_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free ports are only free when probed: a port taken before the service binds it
    makes the start retry with fresh ports instead of failing."""
    from lab.procs import free_ports as real
    calls: list[list[int]] = []
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        busy = squatter.getsockname()[1]

        def first_one_taken(count: int, host: str = "127.0.0.1") -> list[int]:
            ports = real(count, host)
            if not calls:
                ports[0] = busy  # app-1 gets a port someone else holds
            calls.append(ports)
            return ports

        monkeypatch.setattr("lab.run.free_ports", first_one_taken)
        with start_lab(tmp_path / "collide", "single_instance") as running:
            assert len(calls) == 2
            assert running.ports["app-1"] != busy
            assert _https(running, "GET", "/health")[0] == 200


def test_cli_lists_variants() -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    res = subprocess.run([sys.executable, "-m", "lab", "variants", "--system", "oz"], check=False,
                         capture_output=True, text=True, timeout=30, env=env)
    assert res.returncode == 0, res.stderr
    names = [line.split()[0] for line in res.stdout.splitlines()]
    assert names == [v.key for v in Variant]
    every = subprocess.run([sys.executable, "-m", "lab", "variants"], check=True, capture_output=True,
                           text=True, timeout=30, env=env).stdout
    assert "# system oz:" in every and "# system docusnap:" in every  # one section per system lab


def test_missing_nginx_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lab.nginx.shutil.which", lambda *a, **k: None)
    with pytest.raises(LabError, match="apt-get install nginx-light"):
        start_lab(tmp_path / "no-nginx")


def test_foreign_workdir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LabError, match="not empty"):
        start_lab(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_unknown_variant_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="legacy_tls"):
        Variant.parse("nope")
    assert Variant.parse("legacy-tls") is Variant.LEGACY_TLS


# --------------------------------------------------------------------- sshd


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the test sshd needs root")


@needs_root
def test_sshd_accepts_the_client_key(tmp_path: Path) -> None:
    from lab.sshd import start_sshd

    with start_sshd(tmp_path / "sshd") as server:
        assert server.uri == f"ssh://golive-probe@127.0.0.1:{server.port}"
        res = subprocess.run(["ssh", "-F", str(server.ssh_config), server.alias, "true"],
                             check=False, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stderr
        assert server.run("id", "-un").stdout.strip() == "golive-probe"
    assert _connect_refused("127.0.0.1", server.port)
    assert server._masters() == []  # ControlMaster closed


@needs_root
def test_sshd_refuses_an_unauthorised_key(tmp_path: Path) -> None:
    from lab.sshd import start_sshd

    with start_sshd(tmp_path / "sshd-wrong", authorized=False) as server:
        res = server.run("true")
        assert res.returncode == 255
        assert "Permission denied" in res.stderr


def test_port_probe_helpers_refuse_non_loopback() -> None:
    from lab.procs import can_connect, free_port

    with pytest.raises(ValueError):
        free_port("0.0.0.0")
    with pytest.raises(ValueError):
        can_connect("192.0.2.1", 80)


def test_lab_ports_are_reserved_across_processes_and_below_the_ephemeral_range() -> None:
    """Five labs starting at once (the seed tests' ConcurrentRuns) each pick ~10 ports: a port
    from bind(0) could be handed to another lab, or taken by a lab's own outgoing connection,
    before its server binds it ('alertmanager: bind: address already in use', seen in CI).
    Ports come from below the ephemeral range and are reserved until the lease ends; the
    reservation is gone with the process that held it."""
    from lab.procs import _lab_port_range, _reserve, free_ports

    mine = free_ports(40)
    code = "from lab.procs import free_ports; print(' '.join(map(str, free_ports(40))))"
    theirs = [int(p) for p in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                             check=True, timeout=60, cwd=Path(__file__).resolve().parent.parent
                                             ).stdout.split()]
    assert len(theirs) == 40 and not set(mine) & set(theirs)
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(p in _lab_port_range() and p < low for p in mine + theirs)
    # held here, free again once the other process exited
    assert _reserve(mine[0]) is None
    lease = _reserve(theirs[0])
    assert lease is not None
    lease.close()
