"""Host-key trust (issue #14, item 8): a target gives ``known_hosts`` (a file or pinned keys)
per host; paramiko:// loads them and rejects unknown keys (testinfra's backend alone
accepts any key), ssh:// passes ``UserKnownHostsFile`` + ``StrictHostKeyChecking=yes``.
Against a real sshd started here, with its real host key and an unrelated one."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks import connection
from conftest import write_target
from golive.target import load_target
from golive.yamlpos import ConfigError
from lab.sshd import RunningSshd, start_sshd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test sshd needs root")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSshd]:
    server = start_sshd(tmp_path_factory.mktemp("hostkeys-sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(sshd: RunningSshd, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server's real public host key and an unrelated one (TYPE BASE64)."""
    real = " ".join(Path(f"{sshd.host_key}.pub").read_text().split()[:2])
    other_path = tmp_path_factory.mktemp("other-key") / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_path)], check=True)
    other = " ".join(Path(f"{other_path}.pub").read_text().split()[:2])
    return {"real": real, "other": other}


def _uri(sshd: RunningSshd, scheme: str) -> str:
    return f"{scheme}://{sshd.user}@127.0.0.1:{sshd.port}"


def _whoami(sshd: RunningSshd, scheme: str, known: object) -> tuple[int | None, str]:
    try:
        host = connection.get_host(_uri(sshd, scheme), ssh_identity_file=str(sshd.identity_file), timeout_s=10,
                                   multiplex=False, known_hosts=known)  # type: ignore[arg-type]
        result = connection.run(host, "id -un", timeout_s=20)
        return result.rc, (result.stdout + result.stderr).strip()
    except connection.ProbeError as exc:
        return None, exc.reason


@pytest.mark.parametrize("scheme", ["paramiko", "ssh"])
def test_pinned_real_key_is_trusted(sshd: RunningSshd, keys: dict[str, str], scheme: str) -> None:
    rc, out = _whoami(sshd, scheme, [keys["real"]])
    assert rc == 0 and out.endswith(sshd.user), out


@pytest.mark.parametrize("scheme", ["paramiko", "ssh"])
def test_a_key_that_is_not_pinned_is_refused(sshd: RunningSshd, keys: dict[str, str], scheme: str) -> None:
    rc, out = _whoami(sshd, scheme, [keys["other"]])
    assert rc != 0, out
    assert sshd.user not in out.splitlines()[-1:], out


@pytest.mark.parametrize("scheme", ["paramiko", "ssh"])
def test_a_known_hosts_file_is_used(sshd: RunningSshd, keys: dict[str, str], scheme: str, tmp_path: Path) -> None:
    good = tmp_path / "known_hosts"
    good.write_text(f"[127.0.0.1]:{sshd.port} {keys['real']}\n")
    rc, out = _whoami(sshd, scheme, str(good))
    assert rc == 0 and out.endswith(sshd.user), out
    bad = tmp_path / "known_hosts_other"
    bad.write_text(f"[127.0.0.1]:{sshd.port} {keys['other']}\n")
    rc, out = _whoami(sshd, scheme, str(bad))
    assert rc != 0, out


def test_paramiko_without_known_hosts_rejects_an_unknown_key(sshd: RunningSshd, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts, no ~/.ssh/config
    rc, out = _whoami(sshd, "paramiko", None)
    assert rc is None and "not found in known_hosts" in out, out


def test_targets_validate_known_hosts_at_load(tmp_path: Path, keys: dict[str, str]) -> None:
    target = write_target(tmp_path, f"name: t\nhosts:\n  - name: a\n    connection: paramiko://u@h\n"
                                    f"    known_hosts: ['{keys['real']}']\n")
    assert load_target(target).hosts[0].known_hosts == [keys["real"]]
    for bad, fragment in ((["not a key"], "is not a public key line"), ("/nonexistent/known_hosts", "not found"),
                          (["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx"], "is not a valid public key")):
        path = write_target(tmp_path, f"name: t\nhosts:\n  - name: a\n    connection: ssh://u@h\n"
                                      f"    known_hosts: {bad!r}\n", name="bad.yaml")
        with pytest.raises(ConfigError, match=fragment) as info:
            load_target(path)
        assert str(info.value).startswith(f"{path}:5:")


def test_an_inventory_source_gives_known_hosts_to_every_host(tmp_path: Path, keys: dict[str, str]) -> None:
    (tmp_path / "fleet_ssh_config").write_text("Host web-1\n  HostName 10.199.250.11\n  User deploy\n"
                                               "Host web-2\n  HostName 10.199.250.12\n  User deploy\n")
    known = tmp_path / "fleet_known_hosts"
    known.write_text(f"10.199.250.11 {keys['real']}\n")
    target = write_target(tmp_path, f"name: t\ninventory:\n  ssh_config: fleet_ssh_config\n"
                                    f"  defaults:\n    known_hosts: {known}\n")
    hosts = load_target(target).hosts
    assert [h.name for h in hosts] == ["web-1", "web-2"] and {h.known_hosts for h in hosts} == {str(known)}
