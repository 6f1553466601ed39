"""A real OpenSSH server on loopback for the host checks (testinfra over ssh).

:func:`start_sshd` runs ``/usr/sbin/sshd -D -f CONF -E LOG`` on 127.0.0.1:<free port> with
its own host key, public-key authentication only (``UsePAM no``, ``StrictModes no``), and
``AuthorizedKeysFile`` in the run folder.  Logins are as a dedicated user (``golive-probe``,
shell ``/bin/sh``: root's shell start-up costs 0.25 s per command), created when missing and
given the password ``*`` (with ``UsePAM no`` a ``!`` password locks key logins out too).

It writes a client key and an ``ssh_config`` (alias ``golive-lab``, ControlMaster so each
command costs ~16 ms instead of a handshake).  ``authorized=False`` authorises a different
key, so the client is refused: the "authentication failed" path of the probes.

Needs root (to run sshd and create the user).  Only 127.0.0.1 is used.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    descendants,
    free_port,
    pid_alive,
    port_in_use_error,
    reap_stale_tmp,
    register,
    spawn,
    stop_processes,
    unregister,
    wait_until,
)

USER = "golive-probe"
ALIAS = "golive-lab"
SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "install it with `apt-get install openssh-server openssh-client`"
PORT_ATTEMPTS = 3
# sun_path is 108 bytes; ssh adds ".<16 random chars>" while creating the socket.
_MAX_CONTROL_PATH = 90


def _run(argv: list[str], what: str) -> None:
    try:
        res = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {argv[0]} not found ({INSTALL_HINT})") from exc
    if res.returncode != 0:
        raise LabError(f"{what} failed ({' '.join(argv)}): {res.stderr.strip() or res.stdout.strip()}")


# The probe account is golive's own: created when a lab first needs it and removed when the
# last process using it is done (never a permanent account).  Holders are pid files in a
# folder on /run (tmpfs: gone at reboot); a holder that died without releasing is ignored.
# An account that existed before golive created it is used as it is and never changed or
# removed.
ACCOUNT_DIR = Path("/run/golive-probe-account")
_held: dict[str, int] = {}  # user -> references in this process
_atexit_registered = False


def _account_lock() -> Any:
    import fcntl

    ACCOUNT_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    fh = open(ACCOUNT_DIR / "lock", "a+")  # noqa: SIM115 - closed by the caller (unlocks)
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def _live_holders(user: str) -> list[Path]:
    out = []
    for f in ACCOUNT_DIR.glob(f"{user}.holder.*"):
        pid = f.name.rsplit(".", 1)[-1]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            out.append(f)
        else:
            f.unlink(missing_ok=True)  # a holder that died without releasing
    return out


def ensure_user(user: str = USER, *, system: bool = False) -> pwd.struct_passwd:
    """The probe account, created if missing (home, shell /bin/sh, key logins only: the
    password field ``*``, since with ``UsePAM no`` sshd refuses a locked ``!`` account).
    This process holds it until :func:`release_user` (or exit); the last holder removes an
    account golive created.  ``system``: a service account instead (no home, no login
    shell), e.g. the account a system lab's application runs as."""
    global _atexit_registered
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        entry = None
    if entry is not None and not (ACCOUNT_DIR / f"{user}.created").exists():
        if _shadow_locked(user):
            raise LabError(f"user {user!r} exists, was not created by golive and is locked (password '!'): "
                           f"golive does not change accounts it did not create; unlock it (usermod -p '*' {user}) "
                           "or remove it")
        return entry  # someone else's account: used as it is, never changed or removed
    if os.geteuid() != 0:
        raise LabError(f"user {user!r} does not exist and only root can create it")
    lock = _account_lock()
    try:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            (ACCOUNT_DIR / f"{user}.created").write_text("created by golive's lab; removed by its last user\n")
            cmd = (["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user] if system
                   else ["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", user])
            _run(cmd, f"creating user {user}")
            entry = pwd.getpwnam(user)
        (ACCOUNT_DIR / f"{user}.holder.{os.getpid()}").write_text("")
        _held[user] = _held.get(user, 0) + 1
    finally:
        lock.close()
    if not _atexit_registered:
        import atexit

        atexit.register(_release_all)
        _atexit_registered = True
    return entry


def release_user(user: str = USER) -> None:
    """Give back one hold on ``user``; the last holder of an account golive created
    removes it (``userdel --remove``)."""
    if _held.get(user, 0) <= 0:
        return
    _held[user] -= 1
    if _held[user] > 0:
        return
    lock = _account_lock()
    try:
        (ACCOUNT_DIR / f"{user}.holder.{os.getpid()}").unlink(missing_ok=True)
        created = ACCOUNT_DIR / f"{user}.created"
        if created.exists() and not _live_holders(user):
            try:
                pwd.getpwnam(user)
                subprocess.run(["userdel", "--remove", user], check=False, capture_output=True, timeout=30)
            except KeyError:
                pass
            try:
                pwd.getpwnam(user)
            except KeyError:
                created.unlink(missing_ok=True)
    finally:
        lock.close()


def _release_all() -> None:
    for user in list(_held):
        _held[user] = min(_held[user], 1)
        release_user(user)


def _shadow_locked(user: str) -> bool:
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return fields[1].startswith("!")
    except OSError:
        pass
    return False


def _readable_by_others(path: Path) -> bool:
    """Can any user traverse every folder down to ``path``? (sshd reads AuthorizedKeysFile
    as the logging-in user, so a 0700 pytest tmp folder would hide it.)"""
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


#: scratch folders made outside the run folder, named with the owner's pid so that what a
#: SIGKILLed owner left is recognised, and removed, by the next start (:func:`reap_stale_scratch`)
SCRATCH_PREFIX = "golive-sshd-"
CONTROL_PREFIX = "glcm-"


def reap_stale_scratch() -> list[Path]:
    """Remove ``/tmp/golive-sshd-<pid>-*`` and ``/tmp/glcm-<pid>-*`` folders whose owner is
    gone (:func:`lab.procs.reap_stale_tmp`); returns what was removed."""
    return reap_stale_tmp((SCRATCH_PREFIX, CONTROL_PREFIX))


def _keygen(path: Path, comment: str) -> None:
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
         f"generating {path.name}")


class RunningSshd(StopsOnExit):
    """A started sshd.  ``uri`` (``ssh://golive-probe@127.0.0.1:<port>``, for testinfra),
    ``ssh_config`` (use with ``ssh -F``), ``alias``, ``identity_file``, ``port``,
    ``authorized`` (False for the wrong-credentials variant).  ``stop()`` is idempotent."""

    def __init__(self, run_dir: Path, user: str, authorized: bool) -> None:
        self.run_dir = run_dir
        self.user = user
        self.authorized = authorized
        self.host = "127.0.0.1"
        self.alias = ALIAS
        self.port = 0
        self.config_file = run_dir / "sshd_config"
        self.log_file = run_dir / "sshd.log"
        self.host_key = run_dir / "ssh_host_ed25519_key"
        self.identity_file = run_dir / "id_ed25519"
        self.ssh_config = run_dir / "ssh_config"
        self.authorized_keys = run_dir / "authorized_keys"
        self._scratch: list[Path] = []  # short-path folders made outside run_dir
        self._proc: ManagedProcess | None = None
        self._control_dir = str(run_dir / "cm-")
        self._stopped = False
        self._holds_user = False
        self.start_duration_s = 0.0

    @property
    def uri(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def ssh_argv(self, *command: str) -> list[str]:
        """``ssh -F <config> golive-lab <command...>``."""
        return ["ssh", "-F", str(self.ssh_config), self.alias, *command]

    def run(self, *command: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        """Run a command on the server as the probe user (through the ControlMaster)."""
        return subprocess.run(self.ssh_argv(*command), check=False, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        """Close the ControlMaster, stop sshd and its session processes, remove scratch."""
        if self._stopped:
            return
        self._stopped = True
        if self.ssh_config.exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(["ssh", "-F", str(self.ssh_config), "-O", "exit", self.alias],
                               check=False, capture_output=True, timeout=5, stdin=subprocess.DEVNULL)
        if self._proc is not None:
            # Per-connection sshd processes call setsid(): they are not in the listener's
            # process group, so find them through /proc before the listener goes.
            extra = descendants(self._proc.pid) + self._masters()
            stop_processes([self._proc], extra_pids=extra)
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)
        unregister(self)
        if self._holds_user:
            self._holds_user = False
            release_user(self.user)

    def _masters(self) -> list[int]:
        """ssh ControlMaster processes of this server's ControlPath (they daemonise, so they
        are nobody's child, and retitle themselves ``ssh: <ControlPath> [mux]``).  Matched by
        our unique path, never by program name alone."""
        needles = [str(self.ssh_config).encode(), self._control_dir.encode()]
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ssh") and any(n in cmdline for n in needles):
                found.append(int(entry.name))
        return [p for p in found if p != os.getpid() and pid_alive(p)]

    def __repr__(self) -> str:
        return f"<RunningSshd {self.uri} authorized={self.authorized} stopped={self._stopped}>"

    # ---------------------------------------------------------------- internals

    def _write_files(self) -> None:
        _keygen(self.host_key, "golive-lab-host")
        _keygen(self.identity_file, "golive-lab-client")
        pub = self.identity_file.with_name(self.identity_file.name + ".pub").read_text()
        if not self.authorized:
            other = self.run_dir / "unrelated_ed25519"
            _keygen(other, "golive-lab-unrelated")
            pub = other.with_name(other.name + ".pub").read_text()
        if not _readable_by_others(self.run_dir):
            keys_dir = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir="/tmp"))
            keys_dir.chmod(0o755)
            self._scratch.append(keys_dir)
            self.authorized_keys = keys_dir / "authorized_keys"
        self.authorized_keys.write_text(pub)
        self.authorized_keys.chmod(0o644)

        control = self.run_dir / "cm-%C"
        if len(str(control)) + 40 > _MAX_CONTROL_PATH:
            short = Path(tempfile.mkdtemp(prefix=f"{CONTROL_PREFIX}{os.getpid()}-", dir="/tmp"))
            self._scratch.append(short)
            control = short / "%C"
            self._control_dir = f"{short}/"
        self.ssh_config.write_text(
            f"Host {self.alias} {self.host}\n"
            f"    HostName {self.host}\n"
            f"    Port {self.port}\n"
            f"    User {self.user}\n"
            f"    IdentityFile {self.identity_file}\n"
            "    IdentitiesOnly yes\n"
            "    BatchMode yes\n"
            "    PasswordAuthentication no\n"
            "    StrictHostKeyChecking no\n"
            "    UserKnownHostsFile /dev/null\n"
            "    LogLevel ERROR\n"
            "    ControlMaster auto\n"
            f"    ControlPath {control}\n"
            "    ControlPersist 60\n"
            "    ConnectTimeout 5\n"
        )

    def _write_sshd_config(self) -> None:
        self.config_file.write_text(
            f"ListenAddress {self.host}:{self.port}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.run_dir / 'sshd.pid'}\n"
            "UsePAM no\n"
            "StrictModes no\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin no\n"
            f"AllowUsers {self.user}\n"
            "X11Forwarding no\n"
            "PrintMotd no\n"
            "MaxSessions 64\n"
            "MaxStartups 64:30:128\n"
            "LogLevel VERBOSE\n"
            "Subsystem sftp internal-sftp\n"
        )

    def _banner(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1.0) as s:
            return s.recv(64).startswith(b"SSH-")

    def _start(self, timeout_s: float) -> None:
        started = time.monotonic()
        if not Path(SSHD).exists():
            raise LabError(f"{SSHD} not found: {INSTALL_HINT}")
        if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
            raise LabError(f"ssh / ssh-keygen not found: {INSTALL_HINT}")
        if os.geteuid() != 0:
            raise LabError("the test sshd needs root (it runs sshd and logs in as another user)")
        reap_stale_scratch()
        ensure_user(self.user)
        self._holds_user = True
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
        self.run_dir.mkdir(parents=True, exist_ok=True)
        register(self)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port(self.host)
            if attempt == 1:
                self._write_files()
            else:  # only the port changes
                text = self.ssh_config.read_text().splitlines()
                self.ssh_config.write_text(
                    "\n".join(f"    Port {self.port}" if ln.strip().startswith("Port ") else ln
                              for ln in text) + "\n")
            self._write_sshd_config()
            self.log_file.unlink(missing_ok=True)
            self._proc = spawn("sshd", [SSHD, "-D", "-f", str(self.config_file), "-E", str(self.log_file)],
                               self.log_file, cwd=self.run_dir)
            try:
                wait_until(f"sshd on {self.host}:{self.port}", self._banner,
                           timeout_s=timeout_s, proc=self._proc)
                break
            except LabError:
                collided = port_in_use_error(self._proc.tail(50))
                stop_processes([self._proc])
                if not collided or attempt == PORT_ATTEMPTS:
                    raise
        self.start_duration_s = time.monotonic() - started


def start_sshd(
    run_dir: Path,
    *,
    authorized: bool = True,
    user: str = USER,
    start_timeout_s: float = 10.0,
) -> RunningSshd:
    """Start an OpenSSH server on 127.0.0.1:<free port> for ``user``; see the module doc.

    ``authorized=False``: the client key written to ``identity_file`` is *not* authorised
    (a different key is), for the probes' authentication-failure tests.
    """
    server = RunningSshd(Path(run_dir).resolve(), user, authorized)
    try:
        server._start(start_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
