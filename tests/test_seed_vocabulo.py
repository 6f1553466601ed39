"""The Vocabulo ML lab validated end to end with its own profile (issue #21).

lab/systems/vocabulo.py builds the document's deployment as a Docker Compose project on a
private Docker Engine it starts for the run: PostgreSQL (volume, tables from
lsf_app_dump.sql), the Quiz and Junior FastAPI services, a pgAdmin stand-in, one network,
only the APIs' 8000 published on 127.0.0.1, secrets from .env (0600).

``--profile vocabulo --target lab-vocabulo --allow-disruptive`` runs every family the
profile names and everything passes: the profile asks nothing this machine cannot meet (no
sizing in the document).  Each broken variant drawn from the document's "Security
Considerations" / "Verify Deployment" is caught by the check that names its catalogue row
(VO-NET-02, VO-AUTH-01, VO-CTR-02), asserted on status, measured value and requirement id.
The database password is a canary that must never reach golive's output or run folder --
also where the broken variant writes it literally into the Compose file.

Time: the four golive runs (the compliant one and one per variant, each with its own engine)
run at the same time; each waits mostly on containers starting, so together they take about
as long as one.  Traffic: loopback, and the postgres container's address on the lab's
Compose network (10.199.192.0/18, checked with ``ip route get`` by the lab).
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, ConcurrentRuns, GoliveRun, base_id, outcome
from lab import systems

PROFILE = "vocabulo"
CANARY = "golive-canary-7f3a-vocabulo-db-password"
RUN_TIMEOUT_S = 300

#: variant -> (golive -m selection, the check that must catch it, its catalogue row)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "db_port_published": ("containers or ports", "containers.published_ports", "VO-NET-02"),
    "literal_password": ("containers", "containers.no_literal_secrets", "VO-AUTH-01"),
    "service_down": ("containers", "containers.services_running", "VO-CTR-02"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GoliveRun]]:
    """The compliant run and one run per broken variant, started together."""
    tmp = tmp_path_factory.mktemp("vocabulo")
    jobs = ConcurrentRuns(tmp, RUN_TIMEOUT_S, env={"GOLIVE_LAB_VOCABULO_DB_PASSWORD": CANARY})
    try:
        jobs.start("compliant", "--profile", PROFILE, "--target", "lab-vocabulo", "--allow-disruptive")
        for variant, (marker, _check, _ref) in VARIANTS.items():
            target = tmp / f"lab-vocabulo-{variant}.yaml"
            target.write_text(f"name: lab-vocabulo-{variant}\nenvironment: lab\n"
                              f"lab: {{system: vocabulo, variant: {variant}}}\n")
            jobs.start(variant, "--profile", PROFILE, f"--target={target}", "--allow-disruptive", "-m", marker)
        yield jobs.finish()
    finally:
        jobs.kill_all()


def test_vocabulo_variants_are_listed_and_validated() -> None:
    names = [n for n, _ in systems.describe_variants("vocabulo")]
    assert names[0] == "compliant" and set(VARIANTS) <= set(names)
    assert systems.parse_variant("vocabulo", "Service-Down") == "service_down"
    with pytest.raises(ValueError, match="known variants: compliant"):
        systems.parse_variant("vocabulo", "ocr_exposed")  # a docusnap variant is not a vocabulo one
    out = subprocess.run([sys.executable, "-m", "lab", "variants", "--system", "vocabulo"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "literal_password" in out and "ocr_exposed" not in out


def test_vocabulo_compose_file_keeps_secrets_in_env_and_publishes_only_the_apis() -> None:
    """The rendered Compose file, without starting anything: ${VAR} secrets, one network,
    the database's data on a volume, only the APIs' 8000 on 127.0.0.1."""
    from lab.systems import vocabulo

    ports = {"quiz-api": 18000, "junior-api": 18001, "db": 15432}
    doc = vocabulo.render_compose(vocabulo.VARIANTS["compliant"], python_ref="p:1", postgres_ref="pg:1",
                                  busybox_ref="b:1", ports=ports, password=CANARY)
    assert CANARY not in str(doc)
    services = doc["services"]
    assert set(services) == {"postgres", "quiz-api", "junior-api", "pgadmin"}
    assert {s: services[s].get("ports", []) for s in services} == {
        "postgres": [], "pgadmin": [], "quiz-api": ["127.0.0.1:18000:8000"], "junior-api": ["127.0.0.1:18001:8000"]}
    assert all(s["networks"] == ["vocabulo"] for s in services.values()) and list(doc["networks"]) == ["vocabulo"]
    assert services["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert services["quiz-api"]["environment"]["DB_HOST"] == "postgres"  # the Compose service name (VO-NET-04)
    assert services["quiz-api"]["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD}"
    broken = vocabulo.render_compose(vocabulo.VARIANTS["literal_password"], python_ref="p:1", postgres_ref="pg:1",
                                     busybox_ref="b:1", ports=ports, password=CANARY)
    assert broken["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == CANARY


def test_vocabulo_lab_says_what_is_missing_and_refuses_a_foreign_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.procs import LabError
    from lab.systems import vocabulo

    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LabError, match="not empty"):
        vocabulo.start(tmp_path, "compliant")
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    monkeypatch.setattr(vocabulo.shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(LabError, match="apt-get install docker-compose"):
        vocabulo.start(tmp_path / "fresh", "compliant")


def test_vocabulo_lab_passes_its_profile(runs: dict[str, GoliveRun]) -> None:
    run = runs["compliant"]
    results = run.results()
    assert results, run.out[-3000:]
    assert run.report["target"].get("lab_system") == "vocabulo"
    ran = {base_id(k).split(".", 1)[0] for k, v in results.items() if v["status"] != "skip"}
    assert {"hosts", "ports", "cors", "services", "release", "datastores", "backups", "containers"} <= ran
    # VO-TLS-00: plain HTTP on localhost, the profile switches the TLS and HTTP rules off
    assert not {"tls", "http"} & ran
    # nothing on this machine stands in the way: every judged check passes
    unexpected = {k: v for k, v in outcome(results).items() if v[0] not in ("pass", "skip")}
    assert unexpected == {}, unexpected
    assert run.rc == 0, run.out[-3000:]

    ports = run.report["target"]["lab_ports"]
    # VO-CTR-01/02: postgres, pgAdmin, Quiz and Junior each in its own running container
    running = {k: v for k, v in results.items() if base_id(k) == "containers.services_running"}
    assert set(running) == {f"containers.services_running[{s}]" for s in ("postgres", "quiz-api", "junior-api",
                                                                          "pgadmin")}
    # VO-NET-02: only the APIs' 8000, on 127.0.0.1; PostgreSQL and pgAdmin publish nothing
    assert results["containers.published_ports[postgres]"]["measurement"]["value"]["published"] == []
    assert results["containers.published_ports[pgadmin]"]["measurement"]["value"]["published"] == []
    assert results["containers.published_ports[quiz-api]"]["measurement"]["value"]["published"] == [
        f"127.0.0.1:{ports['quiz-api']}:8000/tcp"]
    assert results[f"ports.internal_closed[127.0.0.2:{ports['db']}]"]["measurement"]["value"] is False
    # VO-NET-01, VO-CTR-03, VO-AUTH-01
    network = results["containers.single_network"]["measurement"]["value"]
    assert len(network["networks"]) == 4 and len(network["common"]) == 1
    assert "volume" in results["containers.stateful_volumes[postgres]"]["measurement"]["display"]
    # VO-NET-04: both APIs reach PostgreSQL by its Compose service name, on the vocabulo network
    for api in ("quiz-api", "junior-api"):
        sd = results[f"containers.service_discovery[{api}/DB_HOST]"]
        assert sd["status"] == "pass" and sd["requirement"]["ids"] == ["VO-NET-04"], sd
        assert sd["measurement"]["value"]["host"] == "postgres" and sd["measurement"]["value"]["answers_on"] == [
            f"{run.report['target']['lab_compose_project']}_vocabulo"]
    secrets_value = results["containers.no_literal_secrets"]["measurement"]["value"]
    assert secrets_value == {"problems": [], "env_files": {".env": "0600"}}
    [env_file] = [v for k, v in results.items() if base_id(k) == "services.secret_files"]
    assert env_file["measurement"]["value"]["mode"] == 0o600
    # VO-DB-02: the dump's tables, with rows, read over the Compose network
    schema = results["datastores.pg_schema"]["measurement"]["value"]
    assert schema == {t: {"exists": True, "rows": True} for t in ("categorie", "mot", "quiz_reponse")}
    # VO-BAK-01: the operator's manual pg_dump, two days old
    [age] = [v for k, v in results.items() if base_id(k) == "backups.age.full"]
    assert 1.9 * 86400 < age["measurement"]["value"] < 2.1 * 86400
    # VO-SW-02: the Quiz API is FastAPI -- /openapi.json lists routes that each answer (the write too)
    endpoints = {k: v["measurement"]["value"] for k, v in results.items() if base_id(k) == "release.endpoints"}
    assert endpoints["release.endpoints[GET /words/{word_id}]"] == 200
    assert endpoints["release.endpoints[POST /answers]"] == 201
    # VO-MON-01: docker-compose logs has output for every service
    logs = [v for k, v in results.items() if base_id(k) == "containers.logs_present"]
    assert len(logs) == 4 and all(v["measurement"]["value"] > 0 for v in logs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_vocabulo_broken_variant_is_caught(runs: dict[str, GoliveRun], variant: str) -> None:
    _marker, check, ref = VARIANTS[variant]
    run = runs[variant]
    results = run.results()
    assert results, run.out[-3000:]
    caught = {k: v for k, v in results.items() if base_id(k) == check and v["status"] == "fail"}
    assert caught, outcome(results)
    for rid, r in caught.items():
        assert ref in r["requirement"]["ids"], (rid, r["requirement"])
    assert run.rc != 0
    ports = run.report["target"]["lab_ports"]
    if variant == "db_port_published":
        assert set(caught) == {"containers.published_ports[postgres]"}
        assert caught["containers.published_ports[postgres]"]["measurement"]["value"] == {
            "published": [f"0.0.0.0:{ports['db']}:5432/tcp"], "declared": []}
        # and from outside: the database's port answers at the host's other address
        outside = results[f"ports.internal_closed[127.0.0.2:{ports['db']}]"]
        assert outside["status"] == "fail" and outside["measurement"]["value"] is True
    elif variant == "literal_password":
        value = caught[check]["measurement"]["value"]
        assert "POSTGRES_PASSWORD written literally (service postgres)" in value["problems"]
        assert value["env_files"] == {".env": "0600"}  # the .env itself is still private
    elif variant == "service_down":
        assert set(caught) == {"containers.services_running[junior-api]"}
        assert caught["containers.services_running[junior-api]"]["measurement"]["value"]["running"] == 0
        assert results["containers.services_running[quiz-api]"]["status"] == "pass"


def test_the_database_password_never_leaks(runs: dict[str, GoliveRun]) -> None:
    """The canary is POSTGRES_PASSWORD in every run (written into the Compose file by the
    literal_password variant): never in golive's output or in any file of a run folder."""
    for name, run in runs.items():
        assert run.run_dir is not None, (name, run.out[-2000:])
        assert CANARY not in run.out, name
        for f in run.run_dir.rglob("*"):
            if f.is_file():
                assert CANARY.encode() not in f.read_bytes(), (name, f)
