"""Self-tests of the services family against real processes on this machine: gunicorn
(master + workers) running as a temporary unprivileged account with its environment and a
.env file, a stray process holding a port, fresh virtual environments (one with a broken
requirement) and nginx configurations.  Each check FAILS on its broken variant and PASSES on
the compliant service.  The temporary account and every process are removed on every exit
path.  Traffic: none beyond loopback.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.connection import get_host
from golive import checkdef, registry
from golive.model import Status
from golive.target import target_model
from lab.procs import free_port

FAMILY = registry.load("services")
REQ = FAMILY.profile_block() if FAMILY.profile_block else None  # type: ignore[misc]
GUNICORN = "/usr/bin/gunicorn"  # Debian's package: an unprivileged account can run it (scripts/setup.sh)
CANARY = "golive-canary-3b9e-services-secret-value"
APP = "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n" \
      "    return [b'ok']\n"


def _wait_port(port: int, limit_s: float = 30) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Lab:
    """The compliant service and its broken twins, all on loopback."""

    def __init__(self) -> None:
        self.user = f"glsvc{secrets.token_hex(3)}"
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.user],
                       check=True, capture_output=True)
        self.dir = Path(tempfile.mkdtemp(prefix="golive-services-"))
        self.dir.chmod(0o755)
        (self.dir / "wsgi.py").write_text(APP)
        self.run = self.dir / "run"  # the service writes its pidfile here
        self.run.mkdir()
        shutil.chown(self.run, self.user)
        self.env_file = self.dir / ".env"
        self.env_file.write_text(f"APP_SECRET={CANARY}\n")
        shutil.chown(self.env_file, self.user)
        self.env_file.chmod(0o600)
        self.open_file = self.dir / "features.env"
        self.open_file.write_text("X=1\n")
        self.open_file.chmod(0o644)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: dict[str, int] = {}

    def gunicorn(self, name: str, *, as_user: bool, workers: int, env: dict[str, str]) -> int:
        port = free_port()
        pidfile = self.run / f"{name}.pid"
        cmd = [GUNICORN, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--pid", str(pidfile), "--chdir",
               str(self.dir), "wsgi:app"]
        full = ["env", "-i", "PATH=/usr/bin:/bin", *[f"{k}={v}" for k, v in env.items()], *cmd]
        if as_user:
            full = ["runuser", "-u", self.user, "--", *full]
        self.procs.append(subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))
        _wait_port(port)
        end = time.monotonic() + 20
        while time.monotonic() < end and not pidfile.exists():
            time.sleep(0.1)
        self.ports[name] = port
        return port

    def stray(self) -> int:
        port = free_port()
        self.procs.append(subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True))
        _wait_port(port)
        return port

    def venv(self, name: str, broken: bool) -> str:
        path = self.dir / name
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, timeout=120)
        if broken:  # a distribution that needs something not installed: what pip check reports
            site = next((path / "lib").glob("python3*/site-packages"))
            meta = site / "golive_broken-1.0.dist-info"
            meta.mkdir()
            (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: golive-broken\nVersion: 1.0\n"
                                           "Requires-Dist: golive-missing-dependency>=1\n")
            (meta / "RECORD").write_text("")
        return str(path / "bin" / "python")

    def nginx(self, name: str, app_port: int, *, broken: bool = False) -> tuple[str, str]:
        prefix = self.dir / f"nginx-{name}"
        prefix.mkdir()
        semicolon = "" if broken else ";"
        conf = prefix / "nginx.conf"
        conf.write_text(f"""pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {prefix}/cb; proxy_temp_path {prefix}/px; fastcgi_temp_path {prefix}/fc;
  uwsgi_temp_path {prefix}/uw; scgi_temp_path {prefix}/sc;
  server {{
    listen 127.0.0.1:{free_port()};
    location / {{ proxy_pass http://127.0.0.1:{app_port}{semicolon} }}
  }}
}}
""")
        return str(conf), str(prefix)

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 15)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
        subprocess.run(["userdel", self.user], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    the_lab = Lab()
    try:
        the_lab.gunicorn("app", as_user=True, workers=2, env={"APP_SECRET": CANARY, "DATABASE_URL": "sqlite:///x"})
        the_lab.gunicorn("rooted", as_user=False, workers=1, env={"APP_SECRET": CANARY})
        yield the_lab
    finally:
        the_lab.close()
    assert subprocess.run(["id", the_lab.user], capture_output=True, check=False).returncode != 0


def _local(spec: Any, probe: Any, *args: Any) -> Any:
    return probe(get_host("local://"), *args, subject=spec.name, timeout_s=30)


def _run(check_id: str, services: list[dict[str, Any]]) -> dict[str, Any]:
    check = FAMILY.by_id(check_id)
    assert check is not None
    target = target_model().model_validate({"name": "t", "hosts": [{"name": "h", "connection": "local://"}],
                                            "services": [{"host": "h", **s} for s in services]})
    ctx = checkdef.CheckContext.for_test(req=REQ, target=target, host_runner=_local)
    return {r.id: r for r in checkdef.evaluate(check, ctx)}


def _svc(lab: Lab, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "port": lab.ports[name], "pidfile": str(lab.run / f"{name}.pid"), **extra}


def test_process_is_running_and_a_missing_one_fails(lab: Lab) -> None:
    res = _run("services.process", [_svc(lab, "app"), {"name": "gone", "port": 1, "pidfile": str(lab.dir / "no.pid")}])
    assert res["services.process[app@h]"].status == Status.PASS
    assert res["services.process[app@h]"].value["user"] == lab.user
    gone = res["services.process[gone@h]"]
    assert gone.status == Status.FAIL and gone.value["pid"] is None and gone.measured.startswith("not running")


def test_non_root_account(lab: Lab) -> None:
    res = _run("services.non_root", [_svc(lab, "app", user=lab.user), _svc(lab, "rooted", user=lab.user)])
    assert res["services.non_root[app@h]"].status == Status.PASS
    rooted = res["services.non_root[rooted@h]"]
    assert rooted.status == Status.FAIL and rooted.value["user"] == "root"


def test_workers(lab: Lab) -> None:
    res = _run("services.workers", [_svc(lab, "app", workers=2), _svc(lab, "rooted", workers=2)])
    assert res["services.workers[app@h]"].status == Status.PASS
    few = res["services.workers[rooted@h]"]
    assert few.status == Status.FAIL and len(few.value["children"]) == 1


def test_port_owner(lab: Lab) -> None:
    stray = lab.stray()
    res = _run("services.port_owner", [_svc(lab, "app"), {**_svc(lab, "rooted"), "port": stray}])
    assert res["services.port_owner[app@h]"].status == Status.PASS
    taken = res["services.port_owner[rooted@h]"]
    assert taken.status == Status.FAIL and taken.value[0]["process"].startswith("python")


def test_environment_names_only(lab: Lab) -> None:
    res = _run("services.env", [_svc(lab, "app", env=["APP_SECRET", "DATABASE_URL"]),
                                _svc(lab, "rooted", env=["APP_SECRET", "DATABASE_URL"])])
    ok = res["services.env[app@h]"]
    assert ok.status == Status.PASS and {"APP_SECRET", "DATABASE_URL"} <= set(ok.value["env_names"])
    missing = res["services.env[rooted@h]"]
    assert missing.status == Status.FAIL and "DATABASE_URL" not in missing.value["env_names"]
    for r in res.values():  # names only: the value never left the host
        assert CANARY not in repr(r.to_dict())


def test_secret_files(lab: Lab) -> None:
    res = _run("services.secret_files", [_svc(lab, "app", user=lab.user,
                                              files=[str(lab.env_file), str(lab.open_file), str(lab.dir / "nope")])])
    assert res[f"services.secret_files[{lab.env_file}@h]"].status == Status.PASS
    open_ = res[f"services.secret_files[{lab.open_file}@h]"]
    assert open_.status == Status.FAIL and open_.value == {"owner": "root", "uid": 0, "mode": 0o644}
    assert res[f"services.secret_files[{lab.dir / 'nope'}@h]"].status == Status.FAIL


def test_pip_check(lab: Lab) -> None:
    good, bad = lab.venv("venv-ok", broken=False), lab.venv("venv-broken", broken=True)
    res = _run("services.pip_check", [_svc(lab, "app", python=good), _svc(lab, "rooted", python=bad)])
    assert res["services.pip_check[app@h]"].status == Status.PASS and res["services.pip_check[app@h]"].value == []
    broken = res["services.pip_check[rooted@h]"]
    assert broken.status == Status.FAIL and "golive-missing-dependency" in broken.measured


def test_reverse_proxy(lab: Lab) -> None:
    app = lab.ports["app"]
    conf, prefix = lab.nginx("ok", app)
    wrong, wprefix = lab.nginx("wrong", lab.ports["rooted"])
    bad, bprefix = lab.nginx("bad", app, broken=True)
    want = [f"127.0.0.1:{app}"]
    res = _run("services.proxy", [
        {"name": "proxy-ok", "port": 443, "config": conf, "config_prefix": prefix, "proxy_to": want},
        {"name": "proxy-wrong", "port": 443, "config": wrong, "config_prefix": wprefix, "proxy_to": want},
        {"name": "proxy-bad", "port": 443, "config": bad, "config_prefix": bprefix, "proxy_to": want}])
    assert res["services.proxy[proxy-ok@h]"].status == Status.PASS
    wrong_r = res["services.proxy[proxy-wrong@h]"]
    assert wrong_r.status == Status.FAIL and wrong_r.value["syntax_ok"] and want[0] not in wrong_r.value["upstreams"]
    bad_r = res["services.proxy[proxy-bad@h]"]
    assert bad_r.status == Status.FAIL and bad_r.value["syntax_ok"] is False


def test_unreachable_host_is_error(lab: Lab) -> None:
    check = FAMILY.by_id("services.process")
    assert check is not None
    target = target_model().model_validate({"name": "t", "hosts": [
        {"name": "h", "connection": f"ssh://nobody@127.0.0.1:{free_port()}", "timeout_s": 3}],
        "services": [{"name": "app", "host": "h", "port": 80, "process": "gunicorn"}]})
    from suites.hostset import probe_host

    ctx = checkdef.CheckContext.for_test(req=REQ, target=target, host_runner=probe_host)
    [res] = checkdef.evaluate(check, ctx)
    assert res.status == Status.ERROR and "unreachable" in res.reason
