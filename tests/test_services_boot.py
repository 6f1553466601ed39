"""Self-tests of the services family's boot-start (DS-OPS-05) and pending-security-update
(DS-HTTP-03) checks against real tools on this machine:

- boot start, systemd: real ``systemctl --root=DIR is-enabled`` on a unit tree made here
  (enabled, disabled, static, masked, missing units) -- the same query golive runs on a
  host that runs systemd, offline;
- boot start, supervisor: real ``lab.supervisor`` processes with ``--restart always`` and
  ``--restart no``, a process nobody supervises, and the reference lab (compliant: its
  instances under the supervisor, as their own account; ``no_auto_restart``: no policy);
- security updates: real ``apt-get -s`` pointed at an apt state made here (a ``-security``
  origin offering a newer version of an installed package, or not), lists that are missing
  or stale.

Every process started here is stopped on every exit path.  Traffic: none beyond loopback.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.connection import get_host
from checks.services import probes
from golive import checkdef, registry
from golive.model import Status
from golive.target import target_model
from lab.procs import free_port, python_env

FAMILY = registry.load("services")
REQ = FAMILY.profile_block() if FAMILY.profile_block else None  # type: ignore[misc]
REPO = Path(__file__).resolve().parent.parent


def _evaluate(check_id: str, services: list[dict[str, Any]], runner: Any, req: Any = REQ) -> dict[str, Any]:
    check = FAMILY.by_id(check_id)
    assert check is not None
    target = target_model().model_validate({"name": "t", "hosts": [{"name": "h", "connection": "local://"}],
                                            "services": [{"host": "h", **s} for s in services]})
    ctx = checkdef.CheckContext.for_test(req=req, target=target, host_runner=runner)
    return {r.id: r for r in checkdef.evaluate(check, ctx)}


def _runner(**extra: Any) -> Any:
    """A host runner that runs the probe locally with extra keyword arguments (the offline
    unit tree, the apt state made here)."""
    def run(spec: Any, probe: Any, *args: Any) -> Any:
        return probe(get_host("local://"), *args, subject=spec.name, timeout_s=30, **extra)
    return run


# ---------------------------------------------------------------------------- boot: systemd

UNIT = "[Unit]\nDescription=golive test unit\n[Service]\nExecStart=/bin/true\nRestart=always\n"
INSTALL = "[Install]\nWantedBy=multi-user.target\n"


@pytest.fixture()
def unit_tree(tmp_path: Path) -> Path:
    """A root with /etc/systemd/system: app (enabled), idle (disabled), helper (static),
    hidden (masked)."""
    system = tmp_path / "etc" / "systemd" / "system"
    (system / "multi-user.target.wants").mkdir(parents=True)
    for name in ("app", "idle", "hidden"):
        (system / f"{name}.service").write_text(UNIT + INSTALL)
    (system / "helper.service").write_text(UNIT)
    (system / "multi-user.target.wants" / "app.service").symlink_to("/etc/systemd/system/app.service")
    (system / "hidden.service").unlink()
    (system / "hidden.service").symlink_to("/dev/null")
    return tmp_path


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_boot_start_systemd_unit_states(unit_tree: Path) -> None:
    units = {"app": "enabled", "idle": "disabled", "helper": "static", "hidden": "masked", "gone": "not-found"}
    res = _evaluate("services.boot_start", [{"name": n, "port": 1, "unit": f"{n}.service"} for n in units],
                    _runner(root=str(unit_tree)))
    for name, state in units.items():
        r = res[f"services.boot_start[{name}@h]"]
        assert r.value["manager"] == "systemd" and r.value["state"] == state, (name, r.measured, r.reason)
        assert r.status == (Status.PASS if state == "enabled" else Status.FAIL), (name, r.status)
        assert state in r.measured
    assert "systemctl --root=" in res["services.boot_start[app@h]"].to_dict()["evidence"][0]["method"]


@pytest.mark.skipif(Path("/run/systemd/system").exists(), reason="this machine runs systemd")
def test_boot_start_unit_on_a_host_without_systemd_is_error() -> None:
    res = _evaluate("services.boot_start", [{"name": "app", "port": 1, "unit": "ssh.service"}], _runner())
    r = res["services.boot_start[app@h]"]
    assert r.status == Status.ERROR and "does not run systemd" in r.reason


# ---------------------------------------------------------------------------- boot: supervisor

class Supervised:
    """Processes under the lab's supervisor (and one without), each in its own group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, restart: str | None) -> Path:
        pidfile = self.folder / f"{name}.pid"
        service = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(free_port())]
        cmd = service if restart is None else [
            sys.executable, "-m", "lab.supervisor", "--name", name, "--pidfile", str(pidfile),
            "--restart", restart, "--", *service]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env=python_env(REPO), cwd=self.folder)
        self.procs.append(proc)
        if restart is None:
            pidfile.write_text(f"{proc.pid}\n")
        end = time.monotonic() + 20
        while not pidfile.exists() and time.monotonic() < end:
            time.sleep(0.05)
        assert pidfile.exists(), f"{name} did not start"
        return pidfile

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture()
def supervised(tmp_path: Path) -> Iterator[Supervised]:
    s = Supervised(tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_boot_start_supervisor_restart_policy(supervised: Supervised) -> None:
    services = [{"name": n, "port": 1, "pidfile": str(supervised.start(n, restart))}
                for n, restart in (("always", "always"), ("never", "no"), ("loose", None))]
    res = _evaluate("services.boot_start", services, _runner())
    ok = res["services.boot_start[always@h]"]
    assert ok.status == Status.PASS and ok.value == {"manager": "lab.supervisor", "state": None, "restart": "always"}
    never = res["services.boot_start[never@h]"]
    assert never.status == Status.FAIL and never.value["restart"] == "no" and "restart no" in never.measured
    loose = res["services.boot_start[loose@h]"]  # its parent is this test, no process manager
    assert loose.status == Status.ERROR and "no process manager" in loose.reason


def test_supervisor_parsing() -> None:
    assert probes._supervisor(["python3", "-m", "lab.supervisor", "--restart=no", "--", "x", "--restart",
                               "always"]) == ("lab.supervisor", "no")
    assert probes._supervisor(["python3", "-m", "lab.supervisor", "--name", "a", "--", "x"]) == \
        ("lab.supervisor", "always")
    assert probes._supervisor(["/usr/bin/python3", "-m", "pytest"]) is None


# ---------------------------------------------------------------------------- security updates

RELEASE = """Origin: Debian
Label: {label}
Suite: {suite}
Codename: {codename}
Date: Sat, 05 Dec 2026 10:00:00 UTC
Architectures: amd64 all
Components: main
"""
STATUS = ("Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: misc\n"
          "Maintainer: golive <golive@example.invalid>\nArchitecture: all\nVersion: 1.0-1\nDescription: test\n\n")
PACKAGE = ("Package: {name}\nVersion: {version}\nArchitecture: all\nPriority: optional\nSection: misc\n"
           "Filename: pool/{name}.deb\nSize: 1\nMD5sum: 00000000000000000000000000000000\nDescription: test\n\n")


def _list_name(path: str) -> str:
    """apt's file name for a source's lists (URItoFileName: these characters %-quoted, then
    '/' -> '_')."""
    return "".join(f"%{ord(c):02x}" if c in '\\|{}[]<>"^~_=!@#$%&*' else c for c in path).replace("/", "_")


def apt_state(root: Path, security: dict[str, str], regular: dict[str, str]) -> list[str]:
    """An apt state in ``root``: three installed packages at 1.0-1, a ``bookworm-security``
    source offering ``security`` and a regular source offering ``regular`` versions (as an
    ``apt-get update`` would have left them).  Returns the apt options pointing at it."""
    lists = root / "lists"
    (lists / "partial").mkdir(parents=True)
    (root / "status").write_text("".join(STATUS.format(name=n) for n in ("golive-ssl", "golive-web", "golive-doc")))
    sources = root / "sources.list"
    sources.write_text(f"deb [trusted=yes] file:{root}/sec bookworm-security main\n"
                       f"deb [trusted=yes] file:{root}/main bookworm main\n")
    for repo, codename, label, suite, offered in (
            ("sec", "bookworm-security", "Debian-Security", "stable-security", security),
            ("main", "bookworm", "Debian", "stable", regular)):
        prefix = _list_name(f"{root}/{repo}") + f"_dists_{codename}"
        (lists / f"{prefix}_Release").write_text(RELEASE.format(label=label, suite=suite, codename=codename))
        (lists / f"{prefix}_main_binary-amd64_Packages").write_text(
            "".join(PACKAGE.format(name=n, version=v) for n, v in offered.items()))
    return [f"Dir::State::Lists={lists}", f"Dir::Etc::SourceList={sources}", f"Dir::Etc::SourceParts={root}/none",
            f"Dir::State::status={root}/status"]


def _updates(options: list[str], req: Any = REQ) -> Any:
    check = FAMILY.by_id("services.security_updates")
    assert check is not None
    target = target_model().model_validate({"name": "t", "hosts": [{"name": "h", "connection": "local://"}]})
    ctx = checkdef.CheckContext.for_test(req=req, target=target, host_runner=_runner(apt_options=options))
    [res] = checkdef.evaluate(check, ctx)
    assert res.id == "services.security_updates[h]"
    return res


needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is not installed")


@needs_apt
def test_security_updates_none_pending_passes(tmp_path: Path) -> None:
    # the security source offers what is installed; a newer regular (non-security) version does not count
    res = _updates(apt_state(tmp_path, {"golive-ssl": "1.0-1"}, {"golive-web": "1.1-1"}))
    assert res.status == Status.PASS, (res.measured, res.reason)
    assert res.value["pending"] == [] and res.measured == "none pending"


@needs_apt
def test_security_updates_pending_fails_with_names_and_count(tmp_path: Path) -> None:
    options = apt_state(tmp_path, {"golive-ssl": "1.0-1+deb12u1", "golive-doc": "1.0-1+deb12u2"},
                        {"golive-web": "1.1-1"})
    res = _updates(options)
    assert res.status == Status.FAIL
    assert sorted(p["package"] for p in res.value["pending"]) == ["golive-doc", "golive-ssl"]
    assert res.measured.startswith("2 pending: ") and "golive-ssl" in res.measured and "golive-web" not in res.measured
    ssl = next(p for p in res.value["pending"] if p["package"] == "golive-ssl")
    assert ssl["installed"] == "1.0-1" and ssl["candidate"] == "1.0-1+deb12u1" and "security" in ssl["origin"]
    # apt gives no publication date: a window does not excuse an update of unknown age
    assert FAMILY.profile_block is not None
    windowed = FAMILY.profile_block.model_validate({"security_window": "30 d"})
    assert _updates(options, windowed).status == Status.FAIL


@needs_apt
def test_security_updates_without_lists_is_error(tmp_path: Path) -> None:
    options = apt_state(tmp_path, {"golive-ssl": "1.0-1+deb12u1"}, {})
    for f in (tmp_path / "lists").glob("*_Packages"):
        f.unlink()  # apt-get update never ran
    res = _updates(options)
    assert res.status == Status.ERROR and "no apt package lists" in res.reason


@needs_apt
def test_security_updates_stale_lists_is_error(tmp_path: Path) -> None:
    options = apt_state(tmp_path, {"golive-ssl": "1.0-1"}, {})
    month_ago = time.time() - 30 * 86400
    for f in (tmp_path / "lists").iterdir():
        os.utime(f, (month_ago, month_ago))
    res = _updates(options)
    assert res.status == Status.ERROR and "30.0 days old" in res.reason and "apt-get update" in res.reason


@needs_apt
def test_security_updates_probe_reads_only(tmp_path: Path) -> None:
    """The simulation writes nothing: no cache, no lock, the lists untouched."""
    options = apt_state(tmp_path, {"golive-ssl": "1.0-1+deb12u1"}, {})
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    m = functools.partial(probes.security_updates, get_host("local://"), options)(timeout_s=30)
    assert m.ok and len(m.value["pending"]) == 1
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


# ---------------------------------------------------------------------------- the reference lab

def _lab_results(lab: Any, check_id: str) -> dict[str, Any]:
    check = FAMILY.by_id(check_id)
    assert check is not None
    target = target_model().model_validate({"name": "oz-lab", **lab.target_overrides()})
    ctx = checkdef.CheckContext.for_test(req=REQ, target=target, host_runner=_runner())
    return {r.id: r for r in checkdef.evaluate(check, ctx)}


@pytest.fixture()
def open_folder() -> Iterator[Path]:
    """A lab folder the service account can reach (pytest's own tmp folders are private to root)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="golive-services-lab-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab hands its services to an account only as root")
def test_reference_lab_services_run_as_their_account_and_restart(open_folder: Path) -> None:
    from lab.run import SERVICE_USER, start_lab

    with start_lab(open_folder / "compliant") as lab:
        assert lab.account_note is None and lab.service_user == SERVICE_USER
        names = ["internal-api", *lab.instance_names]
        users = _lab_results(lab, "services.non_root")
        boot = _lab_results(lab, "services.boot_start")
        for name in names:
            r = users[f"services.non_root[{name}@lab-host]"]
            assert r.status == Status.PASS and r.value["user"] == SERVICE_USER, (name, r.measured, r.reason)
            b = boot[f"services.boot_start[{name}@lab-host]"]
            assert b.status == Status.PASS and b.value["restart"] == "always", (name, b.measured, b.reason)
    with start_lab(open_folder / "no-restart", "no_auto_restart", instances=1) as lab:
        boot = _lab_results(lab, "services.boot_start")
        r = boot["services.boot_start[app-1@lab-host]"]
        assert r.status == Status.FAIL and r.value == {"manager": "lab.supervisor", "state": None, "restart": "no"}
        assert boot["services.boot_start[internal-api@lab-host]"].status == Status.PASS
    with contextlib.suppress(KeyError):  # the last lab gave the account back
        import pwd

        pwd.getpwnam(SERVICE_USER)
        pytest.fail(f"{SERVICE_USER} is left behind")


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab hands its services to an account only as root")
def test_reference_lab_in_a_private_folder_runs_as_root_and_fails(tmp_path: Path) -> None:
    """pytest's tmp folders are private to root: the account cannot reach the lab there, so
    the services stay root (the lab says why) -- and services.non_root says so."""
    from lab.run import start_lab

    with start_lab(tmp_path / "private", instances=1) as lab:
        assert lab.account_note is not None and "private" in lab.account_note
        users = _lab_results(lab, "services.non_root")
        r = users["services.non_root[app-1@lab-host]"]
        assert r.status == Status.FAIL and r.value["user"] == "root"


def _reboot(flag: Path) -> Any:
    check = FAMILY.by_id("services.reboot_required")
    assert check is not None
    target = target_model().model_validate({"name": "t", "hosts": [{"name": "h", "connection": "local://"}]})
    ctx = checkdef.CheckContext.for_test(req=REQ, target=target, host_runner=_runner(flag=str(flag)))
    [res] = checkdef.evaluate(check, ctx)
    return res


@pytest.mark.skipif(not Path("/var/lib/dpkg").is_dir(), reason="not a dpkg host")
def test_reboot_required_flag(tmp_path: Path) -> None:
    """The flag file as Debian's packages write it (update-notifier-common's hooks), at a path made here."""
    flag = tmp_path / "reboot-required"
    res = _reboot(flag)
    assert res.status == Status.PASS and res.value == {"required": False, "packages": []}
    flag.write_text("*** System restart required ***\n")
    (tmp_path / "reboot-required.pkgs").write_text("linux-image-6.1.0-99-amd64\nlibc6\n")
    res = _reboot(flag)
    assert res.status == Status.FAIL and res.value == {"required": True, "packages": ["libc6", "linux-image-6.1.0-99-amd64"]}
    assert res.measured == "reboot pending for libc6, linux-image-6.1.0-99-amd64"
