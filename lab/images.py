"""Container images for the seed systems' Compose labs, made from this machine's Debian
packages (no registry is reachable).

Each image is a root filesystem assembled from host files -- the programs, everything they
link (``ldd``, symlink chains such as ``/etc/alternatives`` followed), their data -- plus
Debian's static busybox for ``sh``, ``wget``, ``nc`` and friends, imported into the lab's
private engine (:mod:`lab.docker_engine`) with ``docker import``:

=============================  =================================================================
``golive-lab/python:3.11``     ``/usr/bin/python3.11`` with its standard library and every package
                               of ``/usr/lib/python3/dist-packages`` (Debian's python3-fastapi,
                               -uvicorn, -starlette, -pydantic, -h5py, -numpy ...)
``golive-lab/postgres:15``     ``/usr/lib/postgresql/15`` and its share, an entrypoint that
                               initialises ``PGDATA`` from ``POSTGRES_USER`` /
                               ``POSTGRES_PASSWORD`` / ``POSTGRES_DB`` and runs
                               ``/docker-entrypoint-initdb.d/*.sql`` like the official image
``golive-lab/redis:7``         ``redis-server`` and ``redis-cli``
``golive-lab/nginx:1.22``      ``nginx`` (Debian's nginx-light) and ``mime.types``
=============================  =================================================================

Users in every image: ``root``, ``app`` (uid 10001, the non-root account of
:data:`lab.docker_engine.APP_UID`), ``postgres`` (999), ``redis`` (998), ``www-data`` (33),
``nobody``.

An image is built once per engine: a second call finds it in the engine's store.  Set
``GOLIVE_LAB_IMAGE_CACHE`` to a folder to keep the assembled root filesystems between
engines (the tests point it at their session's temporary folder, so a test session builds
each tar once); by default nothing is written outside the engine.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from lab.procs import LabError

if TYPE_CHECKING:
    from lab.docker_engine import DockerEngine

PYTHON_IMAGE = "golive-lab/python:3.11"
POSTGRES_IMAGE = "golive-lab/postgres:15"
REDIS_IMAGE = "golive-lab/redis:7"
NGINX_IMAGE = "golive-lab/nginx:1.22"

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_ENTRYPOINT = "/usr/local/bin/golive-pg-entrypoint"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

USERS = (("root", 0, "/root"), ("app", 10001, "/app"), ("postgres", 999, "/var/lib/postgresql"),
         ("redis", 998, "/var/lib/redis"), ("www-data", 33, "/var/www"), ("nobody", 65534, "/"))
#: parts of the standard library no lab service uses (GUI, 2to3, the bundled pip wheels)
_STDLIB_SKIP = {"idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data", "test"}
_INSTALL_HINT = {
    "/usr/bin/python3.11": "apt-get install python3 python3-fastapi python3-uvicorn python3-h5py",
    f"{PG_BIN}/postgres": "apt-get install postgresql",
    "/usr/bin/redis-server": "apt-get install redis-server",
    "/usr/sbin/nginx": "apt-get install nginx-light",
}


class Rootfs:
    """A tar of a root filesystem, assembled from host paths and literal files."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w")  # noqa: SIM115 -- closed in data()
        self._seen: set[str] = set()
        self._elves: list[str] = []

    # ------------------------------------------------------------ literal entries

    def dir(self, name: str, mode: int = 0o755, uid: int = 0) -> None:
        name = name.strip("/")
        if not name or name in self._seen:
            return
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, uid
        self._tar.addfile(info)
        self._seen.add(name)

    def file(self, name: str, content: str | bytes, mode: int = 0o644, uid: int = 0) -> None:
        name = name.strip("/")
        data = content.encode() if isinstance(content, str) else content
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), mode, uid, uid
        self._tar.addfile(info, io.BytesIO(data))
        self._seen.add(name)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if name in self._seen:
            return
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self._tar.addfile(info)
        self._seen.add(name)

    def _parents(self, name: str) -> None:
        parent = os.path.dirname(name)
        if parent and parent not in self._seen:
            self.dir(parent)

    # ------------------------------------------------------------ host paths

    def host(self, path: str, *, skip: Callable[[str], bool] | None = None) -> None:
        """Add host ``path`` (a file, a symlink chain, or a whole directory tree) at the same
        place.  Symlinked directories on the way (``/lib`` -> ``usr/lib``) become symlinks
        in the image too, and every link is followed to what it names."""
        path = os.path.normpath(path)
        parts = Path(path).parts
        current = "/"
        for i, part in enumerate(parts[1:], start=1):
            nxt = os.path.join(current, part)
            if os.path.islink(nxt):
                target = os.readlink(nxt)
                self.symlink(nxt, target)
                resolved = os.path.normpath(target if os.path.isabs(target) else os.path.join(current, target))
                rest = parts[i + 1:]
                self.host(os.path.join(resolved, *rest) if rest else resolved, skip=skip)
                return
            current = nxt
        if not os.path.lexists(path) or path.strip("/") in self._seen:
            return
        if os.path.isdir(path):
            self._tree(path, skip)
        else:
            self._host_file(path)

    def _tree(self, root: str, skip: Callable[[str], bool] | None) -> None:
        for dirpath, dirnames, filenames in os.walk(root):
            if skip is not None:
                dirnames[:] = [d for d in dirnames if not skip(os.path.join(dirpath, d))]
            self.dir(dirpath, stat.S_IMODE(os.stat(dirpath).st_mode))
            for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
                full = os.path.join(dirpath, name)
                if skip is not None and skip(full):
                    continue
                if os.path.islink(full):
                    target = os.readlink(full)
                    self.symlink(full, target)
                    resolved = os.path.normpath(target if os.path.isabs(target) else os.path.join(dirpath, target))
                    if not resolved.startswith(root.rstrip("/") + "/"):
                        self.host(resolved)
                else:
                    self._host_file(full)

    def _host_file(self, path: str) -> None:
        name = path.strip("/")
        if name in self._seen:
            return
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = st.st_size, stat.S_IMODE(st.st_mode), int(st.st_mtime)
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            self._tar.addfile(info, fh)
        self._seen.add(name)
        if head == b"\x7fELF":
            self._elves.append(path)

    def add_libraries(self) -> None:
        """Every shared library the ELF files added so far link, by ``ldd`` (repeated until
        nothing new appears: a library's own dependencies are ELF files too)."""
        done: set[str] = set()
        while True:
            todo = [p for p in self._elves if p not in done]
            if not todo:
                return
            for start in range(0, len(todo), 200):
                batch = todo[start:start + 200]
                done.update(batch)
                out = subprocess.run(["ldd", *batch], capture_output=True, text=True, timeout=120,
                                     check=False).stdout
                for line in out.splitlines():
                    line = line.strip()
                    if "=>" in line:
                        lib = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
                    elif line.startswith("/") and " (" in line:
                        lib = line.split(" (", 1)[0]
                    else:
                        continue
                    if lib.startswith("/") and os.path.exists(lib):
                        self.host(lib)

    def data(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


def _base(fs: Rootfs, *, home_dirs: Iterable[tuple[str, int, int]] = ()) -> None:
    """busybox, users, /tmp, /etc basics."""
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        raise LabError("/bin/busybox not found: apt-get install busybox-static")
    for d in ("proc", "sys", "dev", "run", "etc", "var", "var/lib", "var/log", "usr/local/bin", "root"):
        fs.dir(d)
    fs.dir("tmp", 0o1777)
    fs.dir("bin")
    fs.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True, timeout=10).stdout.split()
    for applet in applets:
        if applet != "busybox":
            fs.symlink(f"bin/{applet}", "busybox")
    fs.file("etc/passwd", "".join(f"{n}:x:{u}:{u}:{n}:{h}:/bin/sh\n" for n, u, h in USERS))
    # nobody's group is Debian's "nogroup" (nginx's compiled-in default user is nobody:nogroup)
    fs.file("etc/group", "".join(f"{'nogroup' if n == 'nobody' else n}:x:{u}:\n" for n, u, _ in USERS))
    fs.file("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    fs.file("etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
    for d, mode, uid in home_dirs:
        fs.dir(d, mode, uid)


def _need(path: str) -> None:
    if not os.path.exists(path):
        raise LabError(f"{path} not found: {_INSTALL_HINT.get(path, 'install it')}")


def _python_rootfs() -> Rootfs:
    _need("/usr/bin/python3.11")
    fs = Rootfs()
    _base(fs, home_dirs=[("app", 0o755, 10001)])
    fs.host("/usr/bin/python3.11")
    fs.symlink("usr/bin/python3", "python3.11")
    fs.symlink("usr/bin/python", "python3.11")
    fs.host("/usr/lib/python3.11", skip=lambda p: os.path.basename(p) in _STDLIB_SKIP
            and os.path.dirname(p) == "/usr/lib/python3.11")
    fs.host("/usr/lib/python3/dist-packages")
    fs.host("/etc/ssl/certs/ca-certificates.crt")
    fs.add_libraries()
    return fs


_PG_ENTRYPOINT = r"""#!/bin/sh
# golive-lab/postgres: initialise PGDATA on first start (like the official image), then run postgres.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
BIN=/usr/lib/postgresql/15/bin
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  # POSIXLY_CORRECT: su's option parsing stops at the user name, so postgres's own "-c k=v"
  # arguments reach postgres instead of replacing su's command
  POSIXLY_CORRECT=1 exec su -s /bin/sh -c 'unset POSIXLY_CORRECT; exec "$0" "$@"' postgres "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "golive-pg-entrypoint: POSTGRES_PASSWORD is empty; refusing to initialise a database without a password" >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  pw="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pw"
  "$BIN/initdb" -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 \
      --no-locale -E UTF8 >/dev/null
  rm -f "$pw"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start >/dev/null
  if [ "$db" != "postgres" ] && [ "$db" != "$user" ]; then
    "$BIN/psql" -h /tmp -U "$user" -d postgres -v ON_ERROR_STOP=1 -q -c "CREATE DATABASE \"$db\""
  elif [ "$db" = "$user" ] && [ "$user" != "postgres" ]; then
    "$BIN/psql" -h /tmp -U "$user" -d postgres -v ON_ERROR_STOP=1 -q -c "CREATE DATABASE \"$db\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "golive-pg-entrypoint: running $f"; "$BIN/psql" -h /tmp -U "$user" -d "$db" -v ON_ERROR_STOP=1 -q -f "$f" ;;
      *.sh) echo "golive-pg-entrypoint: running $f"; . "$f" ;;
    esac
  done
  "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -k /tmp "$@"
"""


def _postgres_rootfs() -> Rootfs:
    _need(f"{PG_BIN}/postgres")
    fs = Rootfs()
    _base(fs, home_dirs=[("var/lib/postgresql", 0o755, 999), ("var/lib/postgresql/data", 0o700, 999),
                         ("run/postgresql", 0o2775, 999), ("docker-entrypoint-initdb.d", 0o755, 0)])
    # without the JIT provider: llvmjit.so pulls in libLLVM (about 100 MB); jit is off by default anyway
    fs.host("/usr/lib/postgresql/15", skip=lambda p: os.path.basename(p).startswith("llvmjit"))
    fs.host("/usr/share/postgresql/15")
    fs.host("/usr/share/zoneinfo")
    fs.file(PG_ENTRYPOINT, _PG_ENTRYPOINT, 0o755)
    fs.add_libraries()
    return fs


def _redis_rootfs() -> Rootfs:
    _need("/usr/bin/redis-server")
    fs = Rootfs()
    _base(fs, home_dirs=[("var/lib/redis", 0o750, 998), ("data", 0o750, 998)])
    fs.host("/usr/bin/redis-server")
    fs.host("/usr/bin/redis-cli")
    fs.add_libraries()
    return fs


def _nginx_rootfs() -> Rootfs:
    _need("/usr/sbin/nginx")
    fs = Rootfs()
    _base(fs, home_dirs=[("var/lib/nginx", 0o755, 33), ("var/log/nginx", 0o755, 0), ("etc/nginx/conf.d", 0o755, 0),
                         ("usr/share/nginx/html", 0o755, 0)])
    fs.host("/usr/sbin/nginx")
    fs.host("/etc/nginx/mime.types")
    fs.file("usr/share/nginx/html/index.html", "golive lab nginx\n")
    fs.add_libraries()
    return fs


#: reference -> (rootfs builder, image config changes)
_IMAGES: dict[str, tuple[Callable[[], Rootfs], list[str]]] = {
    PYTHON_IMAGE: (_python_rootfs, [f"ENV PATH={PATH}", "ENV PYTHONUNBUFFERED=1", "ENV PYTHONDONTWRITEBYTECODE=1",
                                    'CMD ["python3"]']),
    POSTGRES_IMAGE: (_postgres_rootfs, [f"ENV PATH={PG_BIN}:{PATH}", "ENV PGDATA=/var/lib/postgresql/data",
                                        f'ENTRYPOINT ["{PG_ENTRYPOINT}"]', "EXPOSE 5432"]),
    REDIS_IMAGE: (_redis_rootfs, [f"ENV PATH={PATH}", "WORKDIR /data", 'CMD ["redis-server"]', "EXPOSE 6379"]),
    NGINX_IMAGE: (_nginx_rootfs, [f"ENV PATH={PATH}", 'CMD ["nginx", "-g", "daemon off;"]', "EXPOSE 80"]),
}


def _cache_key(reference: str) -> str:
    """Changes when the image's recipe or the host's packages change."""
    h = hashlib.sha256(reference.encode())
    h.update(Path(__file__).read_bytes())
    status = Path("/var/lib/dpkg/status")
    if status.exists():
        h.update(str(status.stat().st_mtime_ns).encode())
    return h.hexdigest()[:16]


def _rootfs_bytes(reference: str) -> bytes:
    build, _ = _IMAGES[reference]
    cache = os.environ.get("GOLIVE_LAB_IMAGE_CACHE")
    if cache:
        path = Path(cache) / f"{reference.replace('/', '_').replace(':', '_')}-{_cache_key(reference)}.tar"
        if path.exists():
            return path.read_bytes()
        data = build().data()
        Path(cache).mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.part")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a concurrent build never reads half a tar
        return data
    return build().data()


def build_image(engine: DockerEngine, reference: str) -> str:
    """Import ``reference`` (one of this module's images) into ``engine`` unless it is
    there already; returns the reference."""
    import docker.errors

    if reference not in _IMAGES:
        raise LabError(f"unknown lab image {reference}; known: {', '.join(_IMAGES)}")
    client = engine.client()
    try:
        client.images.get(reference)
        return reference
    except docker.errors.ImageNotFound:
        pass
    repository, tag = reference.rsplit(":", 1)
    _, changes = _IMAGES[reference]
    client.api.import_image_from_data(_rootfs_bytes(reference), repository=repository, tag=tag, changes=changes)
    client.images.get(reference)  # raises if the import did not produce it
    return reference


def python_image(engine: DockerEngine) -> str:
    return build_image(engine, PYTHON_IMAGE)


def postgres_image(engine: DockerEngine) -> str:
    return build_image(engine, POSTGRES_IMAGE)


def redis_image(engine: DockerEngine) -> str:
    return build_image(engine, REDIS_IMAGE)


def nginx_image(engine: DockerEngine) -> str:
    return build_image(engine, NGINX_IMAGE)
