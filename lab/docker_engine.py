"""A private Docker Engine for the containers family's lab and self-tests, and the local
base images its Compose projects run.

What it starts: Debian's ``dockerd`` (docker.io 20.10) as root, without systemd, with

    dockerd --bridge=none --iptables=false --ip6tables=false
            --default-address-pool base=10.199.192.0/18,size=24
            --data-root DIR/d --exec-root DIR/x -p DIR/pid -H unix://DIR/s.sock

in a private folder ``/tmp/gld-<owner pid>-<hex>`` (short: a unix socket path has ~107
bytes).  No default bridge, no iptables rules: nothing on the machine's firewall changes.
User-defined networks get /24s of 10.199.192.0/18 (inside the project's test range);
ports published on 127.0.0.1 reach containers through docker-proxy.  Its own containerd
runs under DIR/x; nothing talks to any other dockerd or containerd on the machine.

Images: no registry is reachable, so :func:`build_base_image` imports a rootfs made from
Debian's busybox-static (``/bin/busybox`` plus its applet links, an ``/etc/passwd`` with a
non-root ``app`` user, a web root with ``/health``) -- a few MB, built in about a second.

Stopping (:meth:`DockerEngine.stop`, idempotent, also at interpreter exit, on
SIGINT/SIGTERM, and -- through the parent-death signal -- when the owner is SIGKILLed):
remove every container and network of this engine, SIGTERM dockerd by its pidfile (bounded
wait, then SIGKILL), kill any containerd / containerd-shim / docker-proxy / container process
this engine left (found by this engine's folder in their command line, or as descendants of
those), delete the bridges it created, unmount what it mounted under its folder and remove
the folder.  What a SIGKILLed owner left is removed by the next start
(:func:`reap_stale_engines`).
"""
from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.procs import (
    LabError,
    ManagedProcess,
    StopsOnExit,
    descendants,
    pid_alive,
    register,
    spawn,
    unregister,
)

if TYPE_CHECKING:
    import docker

ROOT_PREFIX = "/tmp/gld-"
ADDRESS_POOL = "10.199.192.0/18"
BASE_IMAGE = "golive-lab/busybox"
BASE_TAG = "1.35"
#: the same rootfs with one extra file: a different image id for the "drift" variant
DRIFT_TAG = "1.35-b"
APP_UID = 10001
DOCKER_CLI = "/usr/bin/docker"  # Debian's client (docker.io); /usr/local/bin may hold another


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (this engine's folder)."""
    found = []
    for entry in os.scandir("/proc"):
        if (entry.name.isdigit() and int(entry.name) != os.getpid() and text in _cmdline(int(entry.name))
                and pid_alive(int(entry.name))):
            found.append(int(entry.name))
    return found


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if pid_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if pid_alive(p)]
    return left


def _mounts_under(root: str) -> list[str]:
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _owner_pid(root: Path) -> int | None:
    try:
        return int(root.name[len(Path(ROOT_PREFIX).name):].split("-")[0])
    except ValueError:
        return None


def _cleanup_root(root: Path, bridges: list[str]) -> list[str]:
    """Kill every process that belongs to the engine in ``root``, delete ``bridges``, unmount
    and remove ``root``.  Returns notes on what needed force (for the caller's log)."""
    notes: list[str] = []
    marker = str(root)
    pidfile = root / "pid"
    dockerd: int | None = None
    with contextlib.suppress(OSError, ValueError):
        candidate = int(pidfile.read_text().strip())
        # A recycled pid is not ours: only a process whose command line names our folder is.
        if marker in _cmdline(candidate):
            dockerd = candidate
    ours = _pids_mentioning(marker)
    # docker-proxy and the containers' processes do not name the folder: take the
    # descendants of dockerd, containerd and the shims too (before anything is killed).
    family = set(ours)
    for pid in list(ours):
        family.update(descendants(pid))
    if dockerd is not None:
        family.add(dockerd)
        _kill([dockerd], signal.SIGTERM)
        if _wait_gone([dockerd], 20.0):
            notes.append("dockerd needed SIGKILL")
            _kill([dockerd], signal.SIGKILL)
            _wait_gone([dockerd], 5.0)
    rest = [p for p in family if pid_alive(p)]
    if rest:
        _kill(rest, signal.SIGTERM)
        rest = _wait_gone(rest, 3.0)
        if rest:
            notes.append(f"SIGKILL for {len(rest)} leftover engine processes")
            _kill(rest, signal.SIGKILL)
            _wait_gone(rest, 3.0)
    for bridge in bridges:
        if Path(f"/sys/class/net/{bridge}").exists():
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False, timeout=10)
    for point in _mounts_under(marker):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=10)
    shutil.rmtree(root, ignore_errors=True)
    if root.exists():
        # overlay work dirs can hold d--------- folders: one more pass after a chmod
        subprocess.run(["chmod", "-R", "u+rwx", str(root)], capture_output=True, check=False, timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    return notes


def _bridges_of(root: Path) -> list[str]:
    try:
        return (root / "bridges").read_text().split()
    except OSError:
        return []


def reap_stale_engines() -> list[str]:
    """Remove what engines of dead owners left (``/tmp/gld-<pid>-*`` whose pid is gone):
    the owner was SIGKILLed before it could stop its engine.  Returns the folders removed."""
    removed = []
    parent = Path(ROOT_PREFIX).parent
    for root in parent.glob(Path(ROOT_PREFIX).name + "*"):
        owner = _owner_pid(root)
        if owner is None or pid_alive(owner):
            continue
        _cleanup_root(root, _bridges_of(root))
        removed.append(str(root))
    return removed


class DockerEngine(StopsOnExit):
    """A running private dockerd.  ``host`` is its ``unix://`` URL for clients
    (``DOCKER_HOST``); :meth:`client` gives a docker SDK client bound to it."""

    def __init__(self, root: Path, proc: ManagedProcess) -> None:
        self.root = root
        self.sock = root / "s.sock"
        self.host = f"unix://{self.sock}"
        self.proc = proc
        self.log = proc.log
        self._stopped = False
        self._client: docker.DockerClient | None = None

    # ------------------------------------------------------------------ use
    def client(self, timeout_s: int = 60) -> docker.DockerClient:
        """A docker SDK client for this engine (one per engine, reused)."""
        import docker

        if self._client is None:
            self._client = docker.DockerClient(base_url=self.host, timeout=timeout_s)
        return self._client

    def env(self) -> dict[str, str]:
        """Environment for the docker / docker-compose command-line clients."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"
        return env

    def cli(self, *args: str, timeout: float = 60, cwd: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Debian's ``docker`` client against this engine."""
        return _run([DOCKER_CLI, *args], self.env(), timeout, cwd, check)

    def compose(self, project_dir: Path, project: str, *args: str, timeout: float = 180,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``docker-compose -p PROJECT ARGS`` in ``project_dir`` against this engine."""
        return _run(["docker-compose", "--no-ansi", "-p", project, *args], self.env(), timeout,
                    project_dir, check)

    def remember_bridges(self) -> None:
        """Note the bridge interfaces of this engine's networks, so :meth:`stop` can delete
        any that dockerd leaves on the host."""
        with contextlib.suppress(Exception):
            names = set(_bridges_of(self.root))
            for net in self.client().networks.list():
                if net.attrs.get("Driver") == "bridge":
                    opts = net.attrs.get("Options") or {}
                    names.add(opts.get("com.docker.network.bridge.name") or f"br-{net.id[:12]}")
            (self.root / "bridges").write_text("\n".join(sorted(names)) + "\n")

    def processes(self) -> list[int]:
        """Live processes of this engine: dockerd, its containerd and shims (they name the
        engine's folder), and their descendants (docker-proxy, the containers' processes)."""
        ours = set(_pids_mentioning(str(self.root)))
        if self.proc.alive():
            ours.add(self.proc.pid)
        for pid in list(ours):
            ours.update(descendants(pid))
        return sorted(p for p in ours if pid_alive(p))

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Remove every container and network, stop dockerd and whatever it left, remove
        the folder.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.proc.alive():
                with contextlib.suppress(Exception):
                    client = self.client(timeout_s=20)
                    for c in client.containers.list(all=True):
                        with contextlib.suppress(Exception):
                            c.remove(force=True, v=True)
                    self.remember_bridges()
                    with contextlib.suppress(Exception):
                        client.networks.prune()
                    with contextlib.suppress(Exception):
                        client.volumes.prune()
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            _cleanup_root(self.root, _bridges_of(self.root))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.popen.wait(timeout=5)
        finally:
            unregister(self)

    def __repr__(self) -> str:
        return f"DockerEngine({self.host})"


#: ``unix://`` URL of a lab engine another process started and will stop: a system lab runs
#: its project there instead of starting an engine of its own (the seed labs' self-tests
#: share one engine and its images between golive runs; each lab removes only its project)
SHARED_ENGINE_ENV = "GOLIVE_LAB_DOCKER_HOST"


class SharedEngine(DockerEngine):
    """A private lab engine another process started (:data:`SHARED_ENGINE_ENV`): used, never
    stopped.  Only an engine of this module (``unix:///tmp/gld-*/s.sock``, running) is
    accepted, never the machine's own dockerd."""

    def __init__(self, host: str) -> None:  # no super().__init__: there is no process of ours
        sock = Path(host.removeprefix("unix://"))
        if not host.startswith(f"unix://{ROOT_PREFIX}") or not sock.exists():
            raise LabError(f"{SHARED_ENGINE_ENV}={host!r} is not a lab engine (a running unix://{ROOT_PREFIX}*/s.sock); "
                           "a system lab never uses another Docker Engine")
        self.root, self.sock, self.host = sock.parent, sock, host
        self._client = None
        self._stopped = True  # stop() does nothing: the owner stops it

    def remember_bridges(self) -> None:
        """The owner's engine notes its bridges when it stops."""


def lab_engine() -> tuple[DockerEngine, bool]:
    """The engine a system lab runs its project on: the shared one :data:`SHARED_ENGINE_ENV`
    names, or a private one started now; and whether the lab owns (so stops) it."""
    shared = os.environ.get(SHARED_ENGINE_ENV)
    return (SharedEngine(shared), False) if shared else (start_engine(), True)


def _run(argv: list[str], env: dict[str, str], timeout: float, cwd: Path | None,
         check: bool) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found (apt-get install docker.io docker-compose): {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv[:4])}... did not finish within {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}\n"
                       f"{proc.stderr[-3000:]}")
    return proc


def start_engine(*, timeout_s: float = 60.0) -> DockerEngine:
    """Start a private dockerd and wait (bounded) until its API answers ``/_ping``.

    Raises :class:`LabError` with the daemon's log tail when it cannot start (not root,
    docker.io missing, the kernel refuses overlayfs...)."""
    if os.geteuid() != 0:
        raise LabError("the lab's Docker Engine needs root (dockerd manages mounts and namespaces)")
    if shutil.which("dockerd") is None:
        raise LabError("dockerd not found: apt-get install docker.io (scripts/setup.sh does)")
    reap_stale_engines()
    root = Path(f"{ROOT_PREFIX}{os.getpid()}-{secrets.token_hex(3)}")
    root.mkdir(mode=0o700)
    argv = [
        "dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false",
        "--default-address-pool", f"base={ADDRESS_POOL},size=24",
        "--data-root", str(root / "d"), "--exec-root", str(root / "x"),
        "-p", str(root / "pid"), "-H", f"unix://{root / 's.sock'}",
        # no userland-proxy change: publishing without iptables needs docker-proxy
    ]
    try:
        # TMPDIR inside the engine's own folder: containerd writes its stack dumps there
        # (containerd.PID.stacks.log on shutdown), so stopping the engine leaves nothing in /tmp
        (root / "tmp").mkdir(mode=0o700)
        proc = spawn("dockerd", argv, root / "dockerd.log", env={**os.environ, "TMPDIR": str(root / "tmp")})
    except LabError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    engine = DockerEngine(root, proc)
    register(engine)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if not proc.alive():
                raise LabError(f"dockerd did not start: {proc.describe_exit()}\nlog (tail):\n{proc.tail()}")
            if engine.sock.exists():
                with contextlib.suppress(Exception):
                    if engine.client(timeout_s=5).ping():
                        engine._client = None  # a fresh client with the normal timeout
                        return engine
            if time.monotonic() > deadline:
                raise LabError(f"dockerd not ready after {timeout_s:.0f} s\nlog (tail):\n{proc.tail()}")
            time.sleep(0.1)
    except BaseException:
        engine.stop()
        raise


# ---------------------------------------------------------------------- images


def _busybox_rootfs(extra: dict[str, str] | None = None) -> bytes:
    """A tar of a minimal root filesystem around Debian's static busybox."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise LabError("/bin/busybox not found: apt-get install busybox-static")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True,
                             timeout=10).stdout.split()
    buf = io.BytesIO()

    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755, uid: int = 0) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        info.uid = info.gid = uid
        tar.addfile(info)

    def add_file(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644, uid: int = 0) -> None:
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.uid = info.gid = uid
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "proc", "sys", "dev", "run", "var", "var/lib", "www", "app"):
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        add_dir(tar, "var/lib/db", 0o750, APP_UID)
        add_dir(tar, "app/logs", 0o750, APP_UID)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        add_file(tar, "etc/passwd", f"root:x:0:0:root:/root:/bin/sh\napp:x:{APP_UID}:{APP_UID}:app:/app:/bin/sh\n"
                 "nobody:x:65534:65534:nobody:/:/bin/false\n")
        add_file(tar, "etc/group", f"root:x:0:\napp:x:{APP_UID}:\nnogroup:x:65534:\n")
        add_file(tar, "www/health", '{"status": "ok"}\n')
        add_file(tar, "www/index.html", "golive lab api\n")
        for name, text in (extra or {}).items():
            add_file(tar, name, text)
    return buf.getvalue()


def build_base_image(engine: DockerEngine) -> dict[str, str]:
    """Import the busybox rootfs as ``golive-lab/busybox:1.35`` (also tagged ``latest``) and a
    slightly different build as ``:1.35-b``.  Returns ``{reference: image id}``."""
    api = engine.client().api
    ids: dict[str, str] = {}
    for tag, extra in ((BASE_TAG, None), (DRIFT_TAG, {"etc/golive-build": "b\n"})):
        data = _busybox_rootfs(extra)
        api.import_image_from_data(data, repository=BASE_IMAGE, tag=tag,
                                   changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"])
        ids[f"{BASE_IMAGE}:{tag}"] = engine.client().images.get(f"{BASE_IMAGE}:{tag}").id
    engine.client().images.get(f"{BASE_IMAGE}:{BASE_TAG}").tag(BASE_IMAGE, "latest")
    ids[f"{BASE_IMAGE}:latest"] = ids[f"{BASE_IMAGE}:{BASE_TAG}"]
    return ids


@contextlib.contextmanager
def running_engine(*, timeout_s: float = 60.0) -> Iterator[DockerEngine]:
    """``with running_engine() as engine:`` -- started, with base images, stopped after."""
    engine = start_engine(timeout_s=timeout_s)
    try:
        build_base_image(engine)
        yield engine
    finally:
        engine.stop()


def engine_processes() -> list[tuple[int, str]]:
    """Every dockerd / containerd / containerd-shim / docker-proxy on the machine (any
    owner): the tests count them before and after a session to prove nothing was left."""
    found = []
    names = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
        except OSError:
            continue
        if (comm in names or comm.startswith("containerd-shim")) and pid_alive(int(entry.name)):
            found.append((int(entry.name), comm))
    return found


def info(engine: DockerEngine) -> dict[str, Any]:
    """The engine's ``/info`` (for debugging the lab)."""
    return dict(engine.client().info())
