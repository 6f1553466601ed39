"""setup.sh and the lab never stop, start or change anything they did not create (issue #14,
item 3): no process killed by name, no service started or left enabled by package installs
(a policy-rc.d guard created only when absent and removed after, on every exit path), and no
permanent account (the probe account is created per run and removed by its last user)."""
from __future__ import annotations

import os
import pwd
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

INSTALL = ROOT / "scripts" / "install-packages.sh"


def test_no_script_or_lab_module_kills_processes_by_name() -> None:
    pattern = re.compile(r"\b(pkill|killall)\b")
    offenders = [str(p.relative_to(ROOT)) for p in [*ROOT.glob("scripts/*"), *ROOT.glob("lab/*.py")]
                 if p.is_file() and pattern.search(p.read_text(errors="replace"))]
    assert offenders == []


def _stubs(tmp_path: Path, *, installed: set[str], apt_fails: bool = False) -> tuple[dict[str, str], Path]:
    """Stand-ins for dpkg, apt-get, id and deb-systemd-helper that record their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    policy = tmp_path / "policy-rc.d"
    scripts = {
        "dpkg": f"""#!/bin/sh
echo "dpkg $*" >> {log}
case "$1" in
  -s) case " {' '.join(sorted(installed))} " in *" $2 "*) exit 0;; esac; exit 1;;
  -L) echo /lib/systemd/system/$2.service; echo /etc/init.d/$2; echo /usr/share/doc/$2;;
esac
""",
        "apt-get": f"""#!/bin/sh
echo "apt-get $* (policy: $(cat {policy} 2>/dev/null | tail -1))" >> {log}
{'exit 100' if apt_fails else 'exit 0'}
""",
        "id": "#!/bin/sh\necho 0\n",
        "deb-systemd-helper": f"#!/bin/sh\necho \"deb-systemd-helper $*\" >> {log}\n",
        "update-rc.d": f"#!/bin/sh\necho \"update-rc.d $*\" >> {log}\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GOLIVE_POLICY_RC_D": str(policy)}
    return env, log


def _install(env: dict[str, str], *pkgs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), *pkgs], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_nothing_missing_means_nothing_done(tmp_path: Path) -> None:
    env, log = _stubs(tmp_path, installed={"nginx-light", "haproxy"})
    assert _install(env, "nginx-light", "haproxy").returncode == 0
    assert "apt-get" not in log.read_text()
    assert not (tmp_path / "policy-rc.d").exists()


def test_install_runs_under_a_temporary_policy_and_disables_what_it_installed(tmp_path: Path) -> None:
    env, log = _stubs(tmp_path, installed={"haproxy"})
    res = _install(env, "haproxy", "nginx-light")
    assert res.returncode == 0, res.stderr
    calls = log.read_text()
    assert "apt-get install -y -qq --no-install-recommends nginx-light (policy: exit 101)" in calls
    assert not (tmp_path / "policy-rc.d").exists(), "the policy this script created is removed"
    assert "deb-systemd-helper disable nginx-light.service" in calls
    assert "update-rc.d -f nginx-light disable" in calls
    assert "haproxy.service" not in calls.replace("dpkg -s haproxy", ""), "an installed package is not touched"


def test_an_operators_policy_is_kept(tmp_path: Path) -> None:
    env, log = _stubs(tmp_path, installed=set())
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# the operator's\nexit 0\n")
    assert _install(env, "wrk").returncode == 0
    assert policy.read_text() == "#!/bin/sh\n# the operator's\nexit 0\n"
    assert "(policy: exit 0)" in log.read_text()


def test_the_policy_is_removed_when_the_install_fails(tmp_path: Path) -> None:
    env, log = _stubs(tmp_path, installed=set(), apt_fails=True)
    res = _install(env, "wrk")
    assert res.returncode != 0
    assert "(policy: exit 101)" in log.read_text()
    assert not (tmp_path / "policy-rc.d").exists()


def test_setup_sh_uses_the_guarded_installer() -> None:
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'scripts/install-packages.sh "${APT_PACKAGES[@]}"' in text
    assert "apt-get install" not in text


# ----------------------------------------------------------------------------- the probe account

@pytest.mark.skipif(os.geteuid() != 0, reason="creating accounts needs root")
def test_the_probe_account_lives_only_while_a_lab_uses_it(tmp_path: Path) -> None:
    from lab.sshd import ACCOUNT_DIR, release_user, start_sshd

    user = f"golive-t{os.getpid() % 100000}"
    assert not _exists(user)
    server = start_sshd(tmp_path / "sshd", user=user)
    try:
        assert _exists(user)
        assert server.run("id", "-un").stdout.strip() == user
    finally:
        server.stop()
    assert not _exists(user), "the account golive created is removed with its last user"
    assert not list(ACCOUNT_DIR.glob(f"{user}.*"))
    release_user(user)  # a second release is harmless


@pytest.mark.skipif(os.geteuid() != 0, reason="creating accounts needs root")
def test_an_account_golive_did_not_create_is_never_removed_or_changed() -> None:
    from lab.sshd import ensure_user, release_user

    before = Path("/etc/shadow").read_text()
    entry = ensure_user("nobody")
    release_user("nobody")
    assert _exists("nobody") and entry.pw_name == "nobody"
    assert Path("/etc/shadow").read_text() == before


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def test_scratch_a_killed_sshd_owner_left_is_reaped_and_a_live_ones_kept() -> None:
    """lab/sshd.py makes short-path folders in /tmp (authorized_keys readable by the probe
    account, ControlMaster sockets); a SIGKILLed owner cannot remove them, so the next start
    does -- only folders whose owner pid is gone, never a live run's."""
    import shutil
    import tempfile

    from lab import sshd

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"{sshd.SCRATCH_PREFIX}{dead.pid}-", dir="/tmp"))
    live = Path(tempfile.mkdtemp(prefix=f"{sshd.CONTROL_PREFIX}{os.getpid()}-", dir="/tmp"))
    try:
        (stale / "authorized_keys").write_text("ssh-ed25519 AAAA test\n")
        removed = sshd.reap_stale_scratch()
        assert stale in removed and not stale.exists()
        assert live.exists() and live not in removed
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)
