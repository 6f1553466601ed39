"""No shell string is built from target values without quoting (issue #14, item 5).

Every target field that reaches a shell command gets ``$(...)``, backticks and ``;``, and
the command really runs (on the checking host, through the same testinfra path a remote
host uses; ``systemctl`` and ``kubectl`` are stand-ins that print their arguments).  The
proof is a canary file the payload would create: it must not exist afterwards.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks import connection
from checks.backups import inventory, location, probes
from checks.backups.spec import BackupSpec
from checks.ha import probes as ha_probe
from checks.ha.spec import HaAction
from checks.hosts import probes as hosts
from checks.services import probes as services

PAYLOADS = ["$(touch pwned)", "`touch pwned`", "x; touch pwned", "x' ; touch pwned; '", 'x" ; touch pwned; "']
LOCAL = "local://"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shell's working folder (where ``touch pwned`` would land), with stand-in
    ``systemctl`` and ``kubectl`` first on PATH."""
    work = tmp_path / "work"
    work.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("systemctl", "kubectl"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\nprintf "{tool} called with:"; printf " [%s]" "$@"; echo\n')
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(work)
    yield work
    assert not (work / "pwned").exists(), "a payload ran"


def _run_action(spec: HaAction) -> tuple[int, str]:
    action = ha_probe.plan_action(spec, "stop", ha_probe.HostRef())
    result = connection.run(connection.get_host(LOCAL), action.command, timeout_s=20)
    return result.rc, result.stdout + result.stderr


@pytest.mark.parametrize("payload", PAYLOADS)
def test_ha_pidfile_path(sandbox: Path, payload: str) -> None:
    missing = sandbox / f"gone {payload}.pid"
    rc, out = _run_action(HaAction(pidfile=str(missing)))
    assert rc != 0 and not (sandbox / "pwned").exists(), out
    # a file that exists but holds no pid: the path is echoed back in the message
    pidfile = sandbox / f"app {payload}.pid"
    pidfile.write_text("not-a-pid\n")
    rc, out = _run_action(HaAction(pidfile=str(pidfile)))
    assert rc == 3 and f"no pid in {pidfile}" in out, out


@pytest.mark.parametrize("payload", PAYLOADS)
def test_ha_pidfile_content(sandbox: Path, payload: str) -> None:
    pidfile = sandbox / "app.pid"
    pidfile.write_text(payload + "\n")
    rc, out = _run_action(HaAction(pidfile=str(pidfile)))
    assert rc == 3 and "no pid in" in out and not (sandbox / "pwned").exists(), out


@pytest.mark.parametrize("payload", PAYLOADS)
def test_ha_systemd_unit(sandbox: Path, payload: str) -> None:
    rc, out = _run_action(HaAction(systemd=payload))
    assert rc == 0 and f"[{payload}]" in out, out


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", ["pod", "namespace", "context"])
def test_ha_kubectl_fields(sandbox: Path, payload: str, field: str) -> None:
    spec = {"pod": "api-0", field: payload}
    rc, out = _run_action(HaAction(**spec))
    assert rc == 0 and f"[{payload}]" in out, out


@pytest.mark.parametrize("payload", PAYLOADS)
def test_ha_signal_is_refused_at_load(payload: str) -> None:
    with pytest.raises(ValidationError):
        HaAction(pidfile="/run/a.pid", signal=payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_host_data_path(sandbox: Path, payload: str) -> None:
    host = connection.get_host(LOCAL)
    for m in (hosts.disk(host, f"/nonexistent/{payload}"), hosts.storage_kind(host, f"/nonexistent/{payload}")):
        assert m.error is not None and "does not exist" in m.error, m.error
        assert not (sandbox / "pwned").exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_host_software_binary(sandbox: Path, payload: str) -> None:
    m = hosts.software_version(connection.get_host(LOCAL), "python", binary=f"/nonexistent/{payload}")
    assert m.value is None or m.error is not None


@pytest.mark.parametrize("payload", PAYLOADS)
def test_backup_location_and_file_names(sandbox: Path, payload: str) -> None:
    folder = sandbox / f"backups {payload}"
    folder.mkdir()
    name = f"app {payload}.db"
    (folder / name).write_bytes(b"SQLite format 3\x00" + bytes(100))
    spec = BackupSpec(kind="files", location=str(folder))
    loc = location.parse_location(spec.location)
    listed = inventory.list_location(loc, spec)
    assert listed.error is None and [f.name for f in listed.value.backups] == [name], listed.error
    assert location.read_bytes(loc, loc.join(name), 16).startswith(b"SQLite")
    assert len(next(iter(location.sha256(loc, [loc.join(name)]).values()))) == 64
    fetched = sandbox / "copy.db"
    location.fetch(loc, loc.join(name), fetched, (folder / name).stat().st_size, timeout_s=20)
    assert fetched.read_bytes() == (folder / name).read_bytes()
    assert probes.source_times([loc]).error is None


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", ["ssh_config", "ssh_identity_file", "host"])
def test_ssh_connection_options(sandbox: Path, payload: str, field: str) -> None:
    uri = f"ssh://nobody@{payload}:1" if field == "host" else "ssh://nobody@127.0.0.1:1"
    opts = {} if field == "host" else {field: f"/nonexistent/{payload}"}
    try:
        host = connection.get_host(uri, timeout_s=3, multiplex=False, **opts)
        result = connection.run(host, "true", timeout_s=10)
        assert result.rc != 0
    except connection.ProbeError:
        pass


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", ["pidfile", "unit", "process"])
def test_service_process_finders(sandbox: Path, payload: str, field: str) -> None:
    where = {"pidfile": None, "unit": None, "process": None}
    where[field] = f"/nonexistent/{payload}" if field == "pidfile" else f"golive-none-{payload}"
    m = services.process_facts(connection.get_host(LOCAL), **where)  # type: ignore[arg-type]
    assert m.error is None, m.error
    if field != "process":  # (pgrep -f also sees the probe's own shell, whose command line names it)
        assert m.value["pid"] is None and m.value["why"], m.value


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", ["unit", "root", "pidfile", "process"])
def test_service_boot_start_fields(sandbox: Path, payload: str, field: str) -> None:
    where: dict[str, str | None] = {"unit": None, "pidfile": None, "process": None, "root": None}
    if field == "root":  # an offline unit tree's path next to a unit (systemctl is the stand-in)
        where.update(unit="app.service", root=f"/nonexistent/{payload}")
    else:
        where[field] = f"/nonexistent/{payload}" if field == "pidfile" else f"golive-none-{payload}"
    m = services.boot_start(connection.get_host(LOCAL), where["unit"], where["pidfile"], where["process"],
                            where["root"])
    # whatever it measured (or could not), the payload did not run: the sandbox checks the canary
    assert m.error is not None or m.value is not None


@pytest.mark.parametrize("payload", PAYLOADS)
def test_security_updates_apt_options(sandbox: Path, payload: str) -> None:
    m = services.security_updates(connection.get_host(LOCAL), [f"Dir::State::Lists=/nonexistent/{payload}"])
    assert m.error is not None and "no apt package lists" in m.error, m.error
