"""Self-tests of the containers family against a real Docker Engine the tests start.

One private dockerd (lab.docker_engine) and three Compose projects (lab.compose_lab) are
shared by the whole module: the compliant deployment, one project whose services are each
broken in exactly one way, and a project whose GPU service requests a GPU that this engine
cannot give.  Each check PASSES on the compliant project and FAILS on its broken service,
with the measured value asserted; could-not-verify cases (engine unreachable, permission
denied, engine not answering, project not found, no deployment in the target) are errors
within bounded time.  If the engine cannot start the tests fail: they never skip.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.containers import probes
from checks.containers.family import FAMILY, ContainersReq, ContainersSpec
from golive.checkdef import CheckContext, evaluate
from golive.model import CheckResult, Status
from lab import compose_lab
from lab.docker_engine import DockerEngine, build_base_image, engine_processes, running_engine, start_engine
from lab.procs import pid_alive

ROOT = Path(__file__).resolve().parent.parent

#: every check on, with the seeds' numbers (ST-CTR-02 30 s / 10 s / 3, ST-CTR-03 always)
REQ = ContainersReq(
    engine_min="19.0", compose_min="1.25",
    healthcheck={"interval": "30 s", "timeout": "10 s", "retries": 3},  # type: ignore[arg-type]
    restart=["always"], published_ports=True, stateful_volumes=True, single_network=True, non_root=True,
    required_env=True, no_literal_secrets=True, image_pinned=True, image_matches_compose=True, log_rotation=True,
    logs_present=True, gpu=True, start_order=True, service_discovery=True,
)


class Lab:
    def __init__(self, engine: DockerEngine, compliant: compose_lab.ComposeProject,
                 broken: compose_lab.ComposeProject, gpu_project: str) -> None:
        self.engine = engine
        self.compliant = compliant
        self.broken = broken
        self.gpu_project = gpu_project
        self._memo: dict[Any, dict[Any, Any]] = {}
        self._lock = threading.Lock()

    def ctx(self, fragment: dict[str, Any], req: ContainersReq = REQ) -> CheckContext:
        """A context sharing one snapshot per project (as one golive run does)."""
        key = json.dumps(fragment, sort_keys=True)
        memo = self._memo.setdefault(key, {})
        return CheckContext(req=req, spec=ContainersSpec(**fragment), target=None, profile_name="test",
                            memo=memo, memo_lock=self._lock)

    def results(self, check: str, project: compose_lab.ComposeProject, *, req: ContainersReq = REQ,
                **services: dict[str, Any]) -> dict[str, CheckResult]:
        c = FAMILY.by_id(f"containers.{check}")
        assert c is not None
        return {r.id: r for r in evaluate(c, self.ctx(project.target_fragment(**services), req))}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    before = set(engine_processes())
    engine = start_engine()
    ours: list[int] = []
    kinds: set[str] = set()
    try:
        build_base_image(engine)
        base = tmp_path_factory.mktemp("compose")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            fc = pool.submit(compose_lab.start_compliant, engine, base / "compliant")
            fb = pool.submit(compose_lab.start_broken, engine, base / "broken")
            compliant, broken = fc.result(), fb.result()
        gpu = compose_lab.create_gpu_requesting(engine)
        yield Lab(engine, compliant, broken, gpu)
    finally:
        ours = engine.processes()
        kinds = {comm for pid, comm in engine_processes() if pid in ours}
        engine.stop()
    # dockerd, containerd, shims, docker-proxies and the containers' processes ran...
    assert kinds == {"dockerd", "containerd", "containerd-shim", "docker-proxy"}
    # ...and none is left (another engine on a shared machine is not ours; CI has none)
    assert [p for p in ours if pid_alive(p)] == []
    assert not _engine_leftovers(before, Path(engine.root))
    assert not Path(engine.root).exists()
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(engine.root) in line]


def _one(results: dict[str, CheckResult], cid: str) -> CheckResult:
    assert cid in results, f"{cid} not in {sorted(results)}"
    return results[cid]


# ------------------------------------------------------------------------ compliant: all pass

EXPECTED_PASS = {
    "engine_version": lambda lab: r"^Docker Engine 20\.10",
    "compose_version": lambda lab: r"^Docker Compose 1\.29\.2$",
    "compose_project": lambda lab: r"^Compose project glc",
    "services_running": lambda lab: r"_1 running$",
    "healthcheck": lambda lab: r"^interval 2 s, timeout 2 s, retries 3; healthy$",
    "restart_policy": lambda lab: r"^restart always$",
    "published_ports": lambda lab: r"^(127\.0\.0\.1:\d+:8000/tcp|nothing published)$",
    "stateful_volumes": lambda lab: r"^/var/lib/db: volume glc\w+_dbdata$",
    "single_network": lambda lab: r"^all 2 containers on glc\w+_app$",
    "non_root": lambda lab: r"^process uids 10001 \(User 10001\)$",
    "required_env": lambda lab: r"^all set: ",
    "no_literal_secrets": lambda lab: r"^no literal secrets; \.env 0600$",
    "image_pinned": lambda lab: r"^golive-lab/busybox:1\.35$",
    "image_matches_compose": lambda lab: r"^golive-lab/busybox:1\.35 \(\w{12}\) as in the Compose file$",
    "log_rotation": lambda lab: r"^json-file, max-(size 10m|file 3), max-(size 10m|file 3)$",
    "logs_present": lambda lab: r"^[1-9]\d* bytes in the last 50 log lines$",
    "start_order": lambda lab: r"^depends on db \(service_started\)$",
    "service_discovery": lambda lab: rf"^DATABASE_URL host db is the service name db; db answers as db on "
                                     rf"{lab.compliant.name}_app$",
}


@pytest.mark.parametrize("check", sorted(EXPECTED_PASS))
def test_compliant_project_passes(lab: Lab, check: str) -> None:
    import re

    results = lab.results(check, lab.compliant)
    assert results, check
    for r in results.values():
        assert r.status is Status.PASS, (r.id, r.measured, r.reason)
        assert re.search(EXPECTED_PASS[check](lab), r.measured), (r.id, r.measured)
        assert r.evidence and r.evidence[0].method and r.evidence[0].tool.startswith("docker SDK")
    per_service = check not in ("engine_version", "compose_version", "single_network", "no_literal_secrets",
                                "start_order", "service_discovery")
    if check == "start_order":
        assert set(results) == {"containers.start_order[api]"}
        assert results["containers.start_order[api]"].value == {
            "depends_on": {"db": "service_started"}, "required": ["db"], "missing": []}
    if check == "service_discovery":
        assert set(results) == {"containers.service_discovery[api/DATABASE_URL]"}
        v = results["containers.service_discovery[api/DATABASE_URL]"].value
        assert (v["host"], v["host_ok"], v["network_ok"]) == ("db", True, True)
    if per_service and check != "stateful_volumes":
        assert set(results) == {f"containers.{check}[api]", f"containers.{check}[db]"}


def test_compliant_requirement_ids_and_expected_text(lab: Lab) -> None:
    r = _one(lab.results("healthcheck", lab.compliant), "containers.healthcheck[api]")
    assert r.expected == "a healthcheck with interval <= 30 s, timeout <= 10 s, retries <= 3; status healthy"
    assert r.requirement.ids == ("ST-CTR-02",)
    ports = _one(lab.results("published_ports", lab.compliant), "containers.published_ports[api]")
    assert ports.measured == lab.compliant.services["api"]["ports"][0] + "/tcp"


def test_gpu_check_skips_when_no_service_declares_a_gpu(lab: Lab) -> None:
    (r,) = lab.results("gpu", lab.compliant).values()
    assert r.status is Status.SKIP and "no GPU service" in r.reason


# ------------------------------------------------------------------------ broken: each fails

BROKEN = [
    ("healthcheck", "no-health", "no healthcheck defined"),
    ("healthcheck", "unhealthy", "interval 1 s, timeout 1 s, retries 1; unhealthy"),
    ("restart_policy", "restart-no", "restart no"),
    ("published_ports", "public-port", "0.0.0.0:"),
    ("published_ports", "extra-port", ":9000/tcp"),
    ("stateful_volumes", "db-no-volume", "/var/lib/db: container layer"),
    ("non_root", "root", "process uids 0 (User (image default"),
    ("image_pinned", "latest", "golive-lab/busybox:latest"),
    ("image_matches_compose", "drift", "running golive-lab/busybox:1.35, the Compose file says golive-lab/busybox:1.35-b"),
    ("log_rotation", "no-rotation", "json-file without max-size (grows without limit)"),
    ("logs_present", "silent", "0 bytes in the last 50 log lines"),
    ("compose_project", compose_lab.NOT_COMPOSE, "_no-compose_1 not created by Compose (no com.docker.compose"),
    ("services_running", "stopped", "_stopped_1 exited"),
    ("services_running", compose_lab.MISSING, "no container"),
    ("start_order", "no-order", "no depends_on; missing db"),
    ("start_order", "half-order", "depends on db (service_healthy); missing ok"),
]


@pytest.mark.parametrize(("check", "service", "measured"), BROKEN, ids=[f"{c}-{s}" for c, s, _ in BROKEN])
def test_broken_service_fails_its_check(lab: Lab, check: str, service: str, measured: str) -> None:
    results = lab.results(check, lab.broken)
    r = _one(results, f"containers.{check}[{service}]")
    assert r.status is Status.FAIL, (r.id, r.status, r.measured, r.reason)
    assert measured in r.measured, (r.id, r.measured)
    assert r.remediation
    # the same check passes on the project's compliant service: the defect is what fails
    ok = _one(results, f"containers.{check}[{'silent' if check == 'stateful_volumes' else 'ok'}]")
    assert ok.status is Status.PASS, (ok.id, ok.measured)


def test_published_port_on_every_address_is_measured_as_such(lab: Lab) -> None:
    r = _one(lab.results("published_ports", lab.broken), "containers.published_ports[public-port]")
    declared = lab.broken.services["public-port"]["ports"][0]
    port = declared.split(":")[1]
    assert r.measured == f"0.0.0.0:{port}:8000/tcp"
    assert "127.0.0.1" in r.remediation


def test_undeclared_publishing_service_is_a_failing_subject(lab: Lab) -> None:
    # the target forgets to declare `ok`: its published port is then "something else published"
    fragment = lab.broken.target_fragment()
    del fragment["services"]["ok"]
    c = FAMILY.by_id("containers.published_ports")
    assert c is not None
    results = {r.id: r for r in evaluate(c, lab.ctx(fragment))}
    r = _one(results, "containers.published_ports[ok]")
    assert r.status is Status.FAIL and r.measured.startswith("127.0.0.1:")
    assert "publish only nothing" in r.remediation


def test_split_network_fails_single_network(lab: Lab) -> None:
    (r,) = lab.results("single_network", lab.broken).values()
    assert r.status is Status.FAIL
    assert r.measured.startswith("no common user-defined network: ")
    assert "_split-net_1 on glb" in r.measured and "_other" in r.measured


def test_literal_password_fails_and_never_appears(lab: Lab) -> None:
    (r,) = lab.results("no_literal_secrets", lab.broken).values()
    assert r.status is Status.FAIL
    # the literal DB_PASSWORD, and sd-ip's DATABASE_URL with its password in the URL
    assert r.measured == ("DB_PASSWORD written literally (service literal-secret); "
        "DATABASE_URL holds a URL whose password is written literally (service sd-ip)")
    literal = compose_lab.literal_in_compose(lab.broken)
    everything = json.dumps([x.to_dict() for x in lab.results("no_literal_secrets", lab.broken).values()])
    for check in ("required_env", "non_root", "services_running"):
        everything += json.dumps([x.to_dict() for x in lab.results(check, lab.broken).values()])
    assert literal not in everything and lab.broken.secret not in everything
    # the names are evidence, the values are not
    assert "DB_PASSWORD" in everything


@pytest.mark.parametrize(("environment", "expected"), [
    # from the environment: clean
    ({"DB_PASSWORD": "${DB_PASSWORD}", "API_TOKEN": "$API_TOKEN", "DB_PASSWORD_FILE": "/run/secrets/db"}, []),
    ({"DB_PASSWORD": "${DB_PASSWORD:?set DB_PASSWORD in .env}", "SECRET_KEY": "${A:-${B}}"}, []),
    ({"DATABASE_URL": "postgres://app:${DB_PASSWORD}@db:5432/app", "CACHE_URL": "redis://cache:6379/0",
      "PASSWORD": None, "SOURCE_URL": "postgres://app@db/app"}, []),
    # the bypasses of "no $ in the value": a default, text around a reference, an escaped dollar
    ({"DB_PASSWORD": "${DB_PASSWORD:-changeme}"}, ["DB_PASSWORD written as a literal default (service s)"]),
    ({"DB_PASSWORD": "${DB_PASSWORD-changeme}"}, ["DB_PASSWORD written as a literal default (service s)"]),
    ({"API_KEY": "sk-${SUFFIX}"}, ["API_KEY written partly literally (service s)"]),
    ({"API_KEY": "$$ecret"}, ["API_KEY written literally (service s)"]),
    # a password inside a connection URL, whatever the variable is called
    ({"DATABASE_URL": "postgres://app:hunter2@db:5432/app"},
     ["DATABASE_URL holds a URL whose password is written literally (service s)"]),
    ({"BROKER": "redis://:hunter2@cache:6379/0"}, ["BROKER holds a URL whose password is written literally (service s)"]),
    (["DSN=postgres://app:${DB_PASSWORD:-hunter2}@db/app"],
     ["DSN holds a URL whose password is written as a literal default (service s)"]),
])
def test_literal_secret_forms(environment: Any, expected: list[str]) -> None:
    """What no_literal_secrets reads from one service's ``environment:`` (mapping or list form):
    names only, never the value."""
    from checks.containers.probes import literal_secrets_of

    found = literal_secrets_of("s", environment)
    assert found == expected
    assert not any(word in line for line in found for word in ("hunter2", "changeme", "ecret\n"))


def test_env_file_readable_by_others_fails(lab: Lab) -> None:
    env = lab.compliant.directory / ".env"
    env.chmod(0o644)
    try:
        fragment = lab.compliant.target_fragment()
        c = FAMILY.by_id("containers.no_literal_secrets")
        assert c is not None
        ctx = CheckContext.for_test(req=REQ, spec=ContainersSpec(**fragment))
        (r,) = evaluate(c, ctx)
    finally:
        env.chmod(0o600)
    assert r.status is Status.FAIL and r.measured == ".env mode 0644 (more than 0600)"


def test_env_file_tracked_by_git_fails(lab: Lab, tmp_path: Path) -> None:
    """The deployment's Compose file and its .env (0600) kept in a git repository, the .env
    committed: a secret in the repository's history."""
    import shutil
    import subprocess

    repo = tmp_path / "deploy"
    repo.mkdir()
    shutil.copy(lab.compliant.compose_file, repo / "docker-compose.yml")
    shutil.copy(lab.compliant.directory / ".env", repo / ".env")
    (repo / ".env").chmod(0o600)
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "docker-compose.yml", ".env"], ["commit", "-qm", "deploy"]):
        subprocess.run([*git, *args], check=True, capture_output=True, timeout=30)
    fragment = {**lab.compliant.target_fragment(), "compose_file": str(repo / "docker-compose.yml")}
    c = FAMILY.by_id("containers.no_literal_secrets")
    assert c is not None
    (r,) = evaluate(c, CheckContext.for_test(req=REQ, spec=ContainersSpec(**fragment)))
    assert r.status is Status.FAIL and r.measured == ".env is tracked by git"


def test_missing_required_variable_fails(lab: Lab) -> None:
    results = lab.results("required_env", lab.compliant,
                          api={**lab.compliant.services["api"], "env": ["API_HOST", "VECTOR_DIMENSION"]})
    r = _one(results, "containers.required_env[api]")
    assert r.status is Status.FAIL and r.measured == "missing VECTOR_DIMENSION"
    assert _one(results, "containers.required_env[db]").status is Status.PASS


# ------------------------------------------------------------------------ start order, service discovery


def test_start_order_skips_when_the_target_declares_none(lab: Lab) -> None:
    api = {k: v for k, v in lab.compliant.services["api"].items() if k != "depends_on"}
    (r,) = lab.results("start_order", lab.compliant, api=api).values()
    assert r.status is Status.SKIP and r.reason == "the target declares no start order (services.*.depends_on)"
    assert r.id == "containers.start_order"


SD_BROKEN = [
    # the db container's address: right network, wrong name (it changes when db is recreated)
    ("sd-ip", r"^DATABASE_URL host 10\.199\.\d+\.\d+ is an IP address \(glb\w+_db_1 on glb\w+_app: it changes "
              r"when the container is recreated\), not the service name db; db answers as db on glb\w+_app$",
     (False, True)),
    ("sd-localhost", r"^DATABASE_URL host localhost is localhost: the sd-localhost container itself, not the "
                     r"service db; db answers as db on glb\w+_app$", (False, True)),
    # the right name, but from a network the db is not on
    ("split-net", r"^DATABASE_URL host db is the service name db; split-net and db share no user-defined network "
                  r"\(split-net: glb\w+_other; db: glb\w+_app\)$", (True, False)),
]


@pytest.mark.parametrize(("service", "measured", "oks"), SD_BROKEN, ids=[s for s, _, _ in SD_BROKEN])
def test_service_discovery_fails_on_a_broken_connection(lab: Lab, service: str, measured: str,
                                                        oks: tuple[bool, bool]) -> None:
    import re

    results = lab.results("service_discovery", lab.broken)
    r = _one(results, f"containers.service_discovery[{service}/DATABASE_URL]")
    assert r.status is Status.FAIL, (r.id, r.status, r.measured, r.reason)
    assert re.search(measured, r.measured), r.measured
    assert (r.value["host_ok"], r.value["network_ok"]) == oks
    assert r.requirement.ids == ("VO-NET-04", "DS-CT-HA-05", "ST-NET-03")
    assert ("service name db" in r.remediation) is (not oks[0])
    assert ("one user-defined network" in r.remediation) is (not oks[1])
    ok = _one(results, "containers.service_discovery[ok/DATABASE_URL]")
    assert ok.status is Status.PASS and ok.value["host"] == "db", (ok.measured, ok.reason)


def test_service_discovery_never_reports_the_password_in_the_url(lab: Lab) -> None:
    results = lab.results("service_discovery", lab.broken)
    r = _one(results, "containers.service_discovery[sd-ip/DATABASE_URL]")
    assert lab.broken.url_password in compose_lab.compose_text(lab.broken)   # the canary is in the file...
    everything = json.dumps([x.to_dict() for x in results.values()])
    assert lab.broken.url_password not in everything                         # ...and nowhere in the results
    assert "postgres://" not in everything                                 # nor the rest of the URL
    assert r.value["host"].startswith("10.199.")


def test_service_discovery_fails_when_the_variable_is_absent(lab: Lab) -> None:
    api = {**lab.compliant.services["api"], "connects_to": {"DATABASE_URL": "db", "CACHE_URL": "db"}}
    results = lab.results("service_discovery", lab.compliant, api=api)
    r = _one(results, "containers.service_discovery[api/CACHE_URL]")
    assert r.status is Status.FAIL
    assert r.measured == f"CACHE_URL is not in api's environment: in the Compose file; db answers as db on " \
                         f"{lab.compliant.name}_app"
    assert r.value["in_environment"] is False and r.value["host"] is None
    assert r.remediation.startswith("set CACHE_URL in the service's environment:")
    assert _one(results, "containers.service_discovery[api/DATABASE_URL]").status is Status.PASS


def test_host_part_of_connection_strings() -> None:
    assert probes.host_of("postgres://u:p@db:5432/x") == "db"
    assert probes.host_of("http://api:8000") == "api"
    assert probes.host_of("db:5432") == "db"
    assert probes.host_of("db") == "db"
    assert probes.host_of("[::1]:5432") == "::1"
    assert probes.host_of("postgres://app:${DB_PASSWORD}@db:5432/app") == "db"
    assert probes.host_of("postgresql://u:p%40ss@DB/x?sslmode=disable&owner=a@b") == "db"
    assert probes.host_of("10.199.192.7:5432") == "10.199.192.7"
    with pytest.raises(probes.HostInterpolated):
        probes.host_of("postgres://u:p@${DB_HOST}:5432/x")
    for bad in ("postgres://u:secret-pw/x@db", "db:notaport", "http://", ""):
        with pytest.raises(probes.HostUnparsable) as exc:
            probes.host_of(bad)
        assert "secret-pw" not in str(exc.value) and "notaport" not in str(exc.value)


def test_compose_depends_on_and_environment_forms_are_read(tmp_path: Path) -> None:
    """The list and mapping forms of depends_on and environment:, aliases; only the host of
    a variable is kept."""
    f = tmp_path / "docker-compose.yml"
    f.write_text(yaml.safe_dump({"services": {
        "web": {"depends_on": ["api"], "environment": ["API_URL=http://api:8000", "TOKEN=secret-9", "FROM_SHELL"]},
        "api": {"depends_on": {"db": {"condition": "service_healthy"}, "cache": None},
                "environment": {"DATABASE_URL": "postgres://u:secret-9@${DB_HOST}:5432/x"},
                "networks": {"back": {"aliases": ["database-client"]}}},
        "db": {}}}))
    facts = probes.read_compose_file(f)
    assert facts.depends_on == {"web": {"api": "service_started"},
                                "api": {"db": "service_healthy", "cache": "service_started"}, "db": {}}
    assert facts.aliases["api"] == ("database-client",)
    hosts = probes.read_env_hosts(f, {"web": ["API_URL", "FROM_SHELL", "NOPE"], "api": ["DATABASE_URL"]})
    assert hosts[("web", "API_URL")] == probes.EnvHost(present=True, host="api")
    assert hosts[("web", "NOPE")] == probes.EnvHost(present=False)
    assert hosts[("web", "FROM_SHELL")].interpolated and hosts[("api", "DATABASE_URL")].interpolated
    assert "secret-9" not in repr(hosts) and "secret-9" not in repr(facts)


def test_versions_below_the_floor_fail(lab: Lab) -> None:
    req = REQ.model_copy(update={"engine_min": "99.0", "compose_min": "2.20"})
    (engine,) = lab.results("engine_version", lab.compliant, req=req).values()
    assert engine.status is Status.FAIL and engine.measured.startswith("Docker Engine 20.10.24")
    assert engine.expected == ">= 99.0"
    (compose,) = lab.results("compose_version", lab.compliant, req=req).values()
    assert compose.status is Status.FAIL and compose.measured == "Docker Compose 1.29.2"


def test_healthcheck_slower_than_the_profile_fails(lab: Lab) -> None:
    req = ContainersReq(**{**REQ.model_dump(), "healthcheck": {"interval": "1 s", "timeout": "10 s", "retries": 3}})
    r = _one(lab.results("healthcheck", lab.compliant, req=req), "containers.healthcheck[api]")
    assert r.status is Status.FAIL and r.measured == "interval 2 s, timeout 2 s, retries 3; healthy"
    assert r.expected.startswith("a healthcheck with interval <= 1 s,")


def test_gpu_service_without_device_request_fails(lab: Lab) -> None:
    results = lab.results("gpu", lab.compliant, api={**lab.compliant.services["api"], "gpu": True})
    r = _one(results, "containers.gpu[api]")
    assert r.status is Status.FAIL and r.measured == "no GPU device request"


def test_gpu_requested_but_not_running_is_error(lab: Lab) -> None:
    fragment = {"host": lab.engine.host, "project": lab.gpu_project, "services": {"worker": {"gpu": True}}}
    c = FAMILY.by_id("containers.gpu")
    assert c is not None
    (r,) = evaluate(c, CheckContext.for_test(req=REQ, spec=ContainersSpec(**fragment)))
    assert r.status is Status.ERROR
    assert "GPU requested (default driver, all GPUs) but the container is created" in r.reason


def test_nvidia_smi_listing_is_parsed() -> None:
    text = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5b1c1a5e-3f0c-7e2a-0000-123456789abc)\n"
            "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-3f0c-7e2a-0000-123456789abc)\n")
    assert probes.parse_nvidia_smi_l(text) == ["GPU 0: NVIDIA H100 80GB HBM3", "GPU 1: NVIDIA H100 80GB HBM3"]
    assert probes.parse_nvidia_smi_l("NVIDIA-SMI has failed because it couldn't communicate") == []


# ------------------------------------------------------------------------ could not verify


def _errors(fragment: dict[str, Any]) -> tuple[list[CheckResult], float]:
    started = time.monotonic()
    out = []
    for check in FAMILY.checks:
        out += evaluate(check, CheckContext.for_test(req=REQ, spec=ContainersSpec(**fragment)))
    return out, time.monotonic() - started


def test_engine_unreachable_is_error(tmp_path: Path) -> None:
    results, took = _errors({"host": f"unix://{tmp_path}/no.sock", "project": "x", "services": {"api": {}}})
    assert {r.status for r in results} == {Status.ERROR}
    assert len(results) == len(FAMILY.checks)
    assert "unreachable" in results[0].reason and "no.sock" in results[0].reason
    assert took < 20


def test_ssh_engine_unreachable_is_error() -> None:
    from lab.procs import free_port

    port = free_port()  # closed: nothing listens there
    started = time.monotonic()
    m = probes.snapshot(f"ssh://nobody@127.0.0.1:{port}", "p", timeout_s=5, budget_s=10)
    assert time.monotonic() - started < 20
    assert m.error and m.error.startswith(f"the Docker Engine at ssh://nobody@127.0.0.1:{port} is unreachable"), m.error


def test_engine_not_answering_is_error_within_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "mute.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(conn)  # never answered

    threading.Thread(target=accept, daemon=True).start()
    try:
        c = FAMILY.by_id("containers.services_running")
        assert c is not None
        started = time.monotonic()
        (r,) = evaluate(c, CheckContext.for_test(req=REQ, spec=ContainersSpec(
            host=f"unix://{path}", project="x", timeout="1 s", services={"api": {}})))  # type: ignore[arg-type]
        took = time.monotonic() - started
    finally:
        srv.close()
        for conn in accepted:
            conn.close()
    assert r.status is Status.ERROR and "did not answer in time" in r.reason, r.reason
    assert took < 10


def test_a_transport_stuck_past_the_budget_is_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the transport hangs in (the SDK's ssh connect has no timeout), the snapshot
    answers within budget + one request timeout."""
    release = threading.Event()
    monkeypatch.setattr(probes, "_snapshot", lambda *a: release.wait(30))
    started = time.monotonic()
    m = probes.snapshot("ssh://nobody@127.0.0.1", "p", timeout_s=1, budget_s=1)
    release.set()
    assert time.monotonic() - started < 5
    assert m.error == "the Docker Engine at ssh://nobody@127.0.0.1 did not answer within 2 s"


def test_project_not_found_is_error(lab: Lab) -> None:
    c = FAMILY.by_id("containers.services_running")
    assert c is not None
    (r,) = evaluate(c, CheckContext.for_test(req=REQ, spec=ContainersSpec(
        host=lab.engine.host, project="nosuchproject", services={"api": {}})))
    assert r.status is Status.ERROR
    assert r.reason.startswith("project 'nosuchproject' not found on the Docker Engine at unix://")


def test_permission_denied_is_error(lab: Lab) -> None:
    """The engine's socket is root's: an unprivileged checker gets `error`, not pass.  The
    probe runs in a forked child that dropped to uid/gid 65534 (nobody)."""
    import docker  # noqa: F401 - loaded before the fork: the child cannot read the venv as nobody

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            m = probes.snapshot(lab.engine.host, lab.compliant.name, timeout_s=5)
            os.write(write_end, json.dumps([os.getuid(), m.error]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        uid, reason = json.loads(f.read() or "[null, null]")
    os.waitpid(pid, 0)
    assert uid == 65534
    assert reason and reason.startswith("permission denied on the Docker Engine at unix://"), reason


def test_no_deployment_in_target(lab: Lab) -> None:
    c = FAMILY.by_id("containers.services_running")
    assert c is not None
    (skip,) = evaluate(c, CheckContext.for_test(req=REQ, spec=None))
    assert skip.status is Status.SKIP and "declares no Docker Compose deployment" in skip.reason
    required = REQ.model_copy(update={"deployment_required": True})
    (err,) = evaluate(c, CheckContext.for_test(req=required, spec=None))
    assert err.status is Status.ERROR and "deploys with Docker Compose" in err.reason


def test_engine_over_ssh(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``host: ssh://user@host`` through the ssh program (as ``docker -H ssh://``: it runs
    ``docker system dial-stdio`` on the remote host), against a real sshd on 127.0.0.1.  The
    key is restricted to dial-stdio towards the lab engine (a forced command: how one grants
    a checker the engine and nothing else).  An ``ssh`` first on PATH adds the lab's
    ssh_config, as a user's ~/.ssh/config would."""
    import pwd

    from lab.sshd import start_sshd

    with start_sshd(tmp_path / "sshd") as sshd:
        pub = sshd.authorized_keys.read_text().strip()
        sshd.authorized_keys.write_text(
            f'command="DOCKER_HOST={lab.engine.host} /usr/bin/docker system dial-stdio",no-pty,'
            f"no-port-forwarding {pub}\n")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {sshd.ssh_config} "$@"\n')
        (bin_dir / "ssh").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        sock = lab.engine.sock
        docker_gid = sock.stat().st_gid
        # the checker's group may use the engine (and pass through the engine's 0700 folder)
        os.chown(sock, 0, pwd.getpwnam(sshd.user).pw_gid)
        lab.engine.root.chmod(0o711)
        try:
            m = probes.snapshot(f"ssh://{sshd.user}@127.0.0.1:{sshd.port}", lab.compliant.name, timeout_s=10)
        finally:
            lab.engine.root.chmod(0o700)
            os.chown(sock, 0, docker_gid)
    assert m.ok, m.error
    assert {c.service for c in m.value.containers} == {"api", "db"}
    assert m.value.engine_version.startswith("20.10")
    assert m.value.containers[0].uids == (10001,)


def test_lab_networks_stay_in_the_test_range_and_the_api_answers_on_loopback(lab: Lab) -> None:
    """Container networks are inside 10.199.192.0/18 and routed to this engine's bridge (never
    the default route); the only traffic the tests send is to the published 127.0.0.1 port."""
    import ipaddress
    import subprocess
    import urllib.request

    pool = ipaddress.ip_network("10.199.192.0/18")
    api = lab.engine.client().containers.get(f"{lab.compliant.name}_api_1")
    for name, net in api.attrs["NetworkSettings"]["Networks"].items():
        addr = ipaddress.ip_address(net["IPAddress"])
        assert addr in pool, (name, addr)
        route = subprocess.run(["ip", "route", "get", str(addr)], capture_output=True, text=True, check=True).stdout
        assert " dev br-" in route and " via " not in route, route
    port = lab.compliant.services["api"]["ports"][0].split(":")[1]
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    with direct.open(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        assert resp.status == 200 and b'"ok"' in resp.read()


def test_a_second_engine_starts_and_leaves_nothing_behind(lab: Lab) -> None:
    """Start, run a container with a published port, stop: the machine's dockerd /
    containerd / shim / docker-proxy processes, mounts and bridges are as before."""
    before = set(engine_processes())
    links_before = set(os.listdir("/sys/class/net"))
    with running_engine() as engine:
        net = engine.client().networks.create("leftover-check")
        engine.remember_bridges()
        engine.client().containers.run(compose_lab.IMAGE, ["sleep", "600"], detach=True, network=net.name,
                                       ports={"8000/tcp": ("127.0.0.1", None)}, user="10001")
        assert len(set(engine_processes()) - before) >= 4
        root = engine.root
    assert not _engine_leftovers(before, Path(root))
    assert set(os.listdir("/sys/class/net")) <= links_before
    assert not root.exists()
    assert str(root) not in Path("/proc/self/mountinfo").read_text()


def test_lab_compose_command_prints_the_target_and_cleans_up_on_ctrl_c(lab: Lab, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    before = set(engine_processes())
    proc = subprocess.Popen([sys.executable, "-m", "lab", "compose", "--workdir", str(tmp_path)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(180), "".join(lines)[-3000:]
        fragment = yaml.safe_load("".join(lines))["containers"]
        spec = ContainersSpec(**fragment)
        assert set(spec.services) == {"api", "db"}
        m = probes.snapshot(spec.host, spec.project)
        assert m.ok and {c.state for c in m.value.containers} == {"running"}
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    assert rc == 0, "".join(lines)[-3000:]
    root = Path(spec.host.removeprefix("unix://")).parent
    assert not _engine_leftovers(before, root)
    assert not root.exists()


def _engine_leftovers(before: set[tuple[int, str]], root: Path) -> list[str]:
    """Engine processes started since ``before`` that belong to the engine in ``root`` (its
    dockerd, containerd and shims name that folder on their command line) or that it orphaned
    (a docker-proxy whose parent is gone): another session's engine running at the same time
    is none of this test's business."""
    left = []
    for pid, comm in set(engine_processes()) - before:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if str(root) in cmd or (comm == "docker-proxy" and ppid == 1):
            left.append(f"{pid} {comm}: {cmd[:200]}")
    return left


# ------------------------------------------------------------------------ end to end


def _files(tmp_path: Path, project: compose_lab.ComposeProject) -> tuple[str, str]:
    tmp_path.mkdir()
    profile = tmp_path / "containers-profile.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "containers-test", "description": "every containers check with the seeds' numbers",
        "requirements": {"containers": {
            "ref": ["VO-CTR-01", "ST-CTR-02", "DS-LOG-06"], "deployment_required": True, "engine_min": "19.0",
            "compose_min": "1.25", "healthcheck": {"interval": "30 s", "timeout": "10 s", "retries": 3},
            "restart": ["always"], "published_ports": True, "stateful_volumes": True, "single_network": True,
            "non_root": True, "required_env": True, "no_literal_secrets": True, "image_pinned": True,
            "image_matches_compose": True, "log_rotation": True, "logs_present": True, "gpu": True,
            "start_order": True, "service_discovery": True}}}))
    target = tmp_path / "containers-target.yaml"
    target.write_text(yaml.safe_dump({"name": "compose-lab", "description": "the lab's Compose project",
                                      "containers": project.target_fragment()}))
    return str(profile), str(target)


def test_end_to_end_compliant_is_go_and_broken_is_no_go(lab: Lab, tmp_path: Path, golive_run: Any) -> None:
    profile, target = _files(tmp_path / "ok", lab.compliant)
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "containers")
    assert run.rc == 0, run.out[-3000:]
    assert run.report["verdict"]["decision"] == "PASS-PARTIAL"  # -m: a part of the profile, never GO
    results = run.results("containers.")
    statuses = {cid: r["status"] for cid, r in results.items()}
    assert statuses.pop("containers.gpu") == "skip"
    assert set(statuses.values()) == {"pass"}, statuses
    assert len(statuses) == 29
    assert run.one("containers.healthcheck[db]")["measured"] == "interval 2 s, timeout 2 s, retries 3; healthy"
    for name in ("report.json", "report.html"):
        assert lab.compliant.secret not in (run.run_dir / name).read_text()  # type: ignore[operator]

    profile, target = _files(tmp_path / "bad", lab.broken)
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "containers")
    assert run.rc != 0
    assert run.report["verdict"]["decision"] == "NO-GO"
    assert run.one("containers.restart_policy[restart-no]")["status"] == "fail"
    assert run.one("containers.no_literal_secrets")["measured"] == ("DB_PASSWORD written literally (service literal-secret); "
        "DATABASE_URL holds a URL whose password is written literally (service sd-ip)")
    assert run.one("containers.start_order[no-order]")["status"] == "fail"
    assert run.one("containers.service_discovery[sd-ip/DATABASE_URL]")["status"] == "fail"
    literal = compose_lab.literal_in_compose(lab.broken)
    for canary in (literal, lab.broken.url_password):
        assert canary not in run.out
        for name in ("report.json", "report.html"):
            assert canary not in (run.run_dir / name).read_text()  # type: ignore[operator]


def test_example_target_is_valid() -> None:
    from golive.target import load_target

    target = load_target(str(ROOT / "targets" / "example-compose.yaml"))
    spec = target.containers  # type: ignore[attr-defined]
    assert spec.project == "vocabulo" and spec.timeout == 10.0
    assert spec.services["quiz-api"].ports == ["127.0.0.1:8000:8000/tcp"]


def test_bad_port_declaration_is_a_config_error(tmp_path: Path, golive_run: Any) -> None:
    target = tmp_path / "t.yaml"
    target.write_text("name: x\ncontainers:\n  project: p\n  services:\n    api:\n      ports: [\"127.0.0.1:abc:80\"]\n")
    run = golive_run("--profile", "vocabulo", f"--target={target}", "-m", "containers")
    assert run.rc == 4
    assert f"{target}:6: target key 'containers.services.api.ports': port '127.0.0.1:abc:80'" in run.out
    assert "Traceback" not in run.out
