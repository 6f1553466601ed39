"""The seed labs' container images (lab/images.py), made from this machine's Debian
packages: each runs what it was made for, on the lab's private engine (no network: the
containers run with ``network_mode=none``)."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lab import images
from lab.docker_engine import DockerEngine, running_engine


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    with running_engine() as eng:
        yield eng


def _run(engine: DockerEngine, image: str, command: list[str], **kw: object) -> str:
    out = engine.client().containers.run(image, command, remove=True, network_mode="none", stderr=True, **kw)
    return bytes(out).decode()


def test_python_image_runs_debian_python_with_fastapi_and_h5py_as_non_root(engine: DockerEngine) -> None:
    ref = images.python_image(engine)
    out = _run(engine, ref, ["python3", "-c", "import os, fastapi, uvicorn, h5py, numpy, ssl, sqlite3; "
                             "print(os.getuid(), fastapi.__version__, numpy.arange(4).sum())"], user="app")
    uid, version, total = out.split()
    assert uid == "10001" and version.startswith("0.") and total == "6"
    assert images.python_image(engine) == ref  # built once per engine


def test_postgres_image_initialises_from_the_environment_and_runs_init_scripts(engine: DockerEngine) -> None:
    ref = images.postgres_image(engine)
    client = engine.client()
    ctr = client.containers.run(ref, ["-c", "log_min_messages=warning"], detach=True, network_mode="none",
                                environment={"POSTGRES_USER": "vo", "POSTGRES_PASSWORD": "s3cret-canary",
                                             "POSTGRES_DB": "vocab"})
    try:
        deadline = time.monotonic() + 60
        while True:
            res = ctr.exec_run(["psql", "-h", "/tmp", "-U", "vo", "-d", "vocab", "-tAc",
                                "select current_user, current_setting('log_min_messages'), current_setting('listen_addresses')"],
                               user="postgres")
            if res.exit_code == 0:
                break
            assert time.monotonic() < deadline, ctr.logs().decode()[-2000:]
            time.sleep(0.3)
        assert res.output.decode().strip() == "vo|warning|*"
        # the server runs as postgres, not root; the password never reaches the log
        top = ctr.top()
        users = {row[top["Titles"].index("UID")] for row in top["Processes"]}
        assert "root" not in users and "0" not in users, top
        assert b"s3cret-canary" not in ctr.logs()
    finally:
        ctr.remove(force=True)
    refused = client.containers.run(ref, detach=True, network_mode="none", environment={"POSTGRES_USER": "vo"})
    try:
        assert refused.wait(timeout=60)["StatusCode"] != 0
        assert b"POSTGRES_PASSWORD is empty" in refused.logs()
    finally:
        refused.remove(force=True)


def test_redis_and_nginx_images_run_their_servers(engine: DockerEngine) -> None:
    assert "Redis server v=7" in _run(engine, images.redis_image(engine), ["redis-server", "--version"])
    out = _run(engine, images.nginx_image(engine), ["nginx", "-t", "-c", "/etc/nginx/test.conf"],
               entrypoint=["sh", "-c", 'printf "events {}\\nhttp { include mime.types; server { listen 8080; } }\\n" '
                           '> /etc/nginx/test.conf && exec "$@"', "--"])
    assert "test is successful" in out
