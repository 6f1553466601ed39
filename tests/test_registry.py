"""Self-tests of the declared-checks design (issue #12): the registry, the generic binding,
a family added as one folder, and the layer contracts.

Traffic goes to loopback only.
"""
from __future__ import annotations

import ast
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pytest_bdd.parser import FeatureParser

from golive import checkdef, registry
from golive.model import Status
from golive.target import target_model

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- the registry and the checklists

@pytest.mark.parametrize("family", [f for f in registry.families() if f.feature], ids=lambda f: f.name)
def test_each_scenario_of_a_checklist_is_a_declared_check(family: checkdef.Family) -> None:
    """features/<family>.feature and the declarations name the same checks, one for one,
    and the checklist is tagged with the family (its marker)."""
    path = registry.feature_path(family)
    feature = FeatureParser(str(path.parent), path.name).parse()
    assert family.name in feature.tags, f"{path.name} is not tagged @{family.name}"
    assert sorted(feature.scenarios) == sorted({c.title for c in family.checks})


def test_check_ids_are_unique_and_listed_by_golive_checks() -> None:
    ids = [c.id for c in registry.all_checks()]
    assert ids and len(ids) == len(set(ids))
    out = subprocess.run([sys.executable, "-m", "golive.cli", "checks", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)
    listed = json.loads(out.stdout)["checks"]
    assert [r["id"] for r in listed] == ids
    plain = subprocess.run([sys.executable, "-m", "golive.cli", "checks", "ports"], cwd=ROOT, capture_output=True,
                           text=True, check=True, timeout=60).stdout.splitlines()
    assert plain[0].split()[:2] == ["ports.public_open", "critical"]
    assert all(line.startswith("ports.") for line in plain)


def test_a_check_is_judged_without_pytest() -> None:
    """evaluate() on the ports family against a real open and a real closed loopback port:
    an internal port that accepts connections FAILS with measured True, a closed one PASSES."""
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        open_port, closed_port = listening.getsockname()[1], closed.getsockname()[1]
        target = target_model().model_validate({"name": "t", "endpoints": {
            "internal": [f"127.0.0.1:{open_port}", f"127.0.0.1:{closed_port}"]}})
        family = registry.load("ports")
        check = family.by_id("ports.internal_closed")
        assert check is not None and family.profile_block is not None
        ctx = checkdef.CheckContext.for_test(req=family.profile_block(), target=target)
        results = {r.id: r for r in checkdef.evaluate(check, ctx)}
    exposed = results[f"ports.internal_closed[127.0.0.1:{open_port}]"]
    assert exposed.status == Status.FAIL and exposed.measured == "reachable"
    assert "127.0.0.1" in exposed.remediation
    shut = results[f"ports.internal_closed[127.0.0.1:{closed_port}]"]
    assert shut.status == Status.PASS and shut.measured.startswith("not reachable")


def test_a_check_is_skipped_with_a_reason_when_the_profile_does_not_ask_for_it() -> None:
    check = registry.load("ports").by_id("ports.public_open")
    assert check is not None
    ctx = checkdef.CheckContext.for_test(req=None, target=target_model().model_validate({"name": "t"}))
    [result] = checkdef.evaluate(check, ctx)
    assert result.status == Status.SKIP and "does not require ports" in result.reason


# ----------------------------------------------------------------------------- a new family is one folder

TOY_FAMILY = '''
"""A toy family: the mode of files on the checking host."""
from __future__ import annotations

import os
import stat

from golive.blocks import Block, Strict
from golive.checkdef import Check, CheckContext, Family
from golive.model import Evidence, Measurement, Severity


class ToyReq(Block):
    max_mode: str = "0640"


class ToySpec(Strict):
    files: list[str]


def _modes(ctx: CheckContext) -> dict[str, Measurement]:
    out = {}
    for path in ctx.spec.files:
        ev = Evidence(probe="toy.stat", subject=path, method=f"os.stat({path!r})")
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError as exc:
            out[os.path.basename(path)] = Measurement.failed(f"cannot stat: {exc.strerror}", ev)
            continue
        out[os.path.basename(path)] = Measurement(mode, f"{mode:04o}", ev, unit="mode")
    return out


FAMILY = Family(
    name="toy", title="toy file modes", feature="toy.feature", profile_block=ToyReq, target_block=ToySpec,
    checks=(Check(id="toy.file_mode", title="Files are not readable by others", severity=Severity.HIGH,
                  refs=("DS-AUTH-03",), measures="the permission bits of each file (stat)", measure=_modes,
                  applies=lambda ctx: None if ctx.spec else "the target names no toy files",
                  expected=lambda req: f"mode <= {req.max_mode}",
                  passes=lambda req, mode: mode & ~int(req.max_mode, 8) == 0,
                  remediation="chmod o-rwx the file"),),
)
'''

TOY_FEATURE = """\
@toy
Feature: Toy: file modes
  Scenario: Files are not readable by others
    Given the files the target names
    When their modes are read
    Then none is readable by others
"""


def _toy(tmp_path: Path, profile_extra: str = "") -> tuple[Path, str, str]:
    fams = tmp_path / "families"
    (fams / "toy").mkdir(parents=True)
    (fams / "toy" / "__init__.py").write_text("")
    (fams / "toy" / "family.py").write_text(TOY_FAMILY)
    (fams / "toy" / "toy.feature").write_text(TOY_FEATURE)
    private, shared = tmp_path / "private.key", tmp_path / "shared.key"
    private.write_text("k")
    private.chmod(0o600)
    shared.write_text("k")
    shared.chmod(0o644)
    profile = tmp_path / "toy-profile.yaml"
    profile.write_text(textwrap.dedent(f"""\
        name: toy-profile
        description: the toy family alone
        requirements:
          toy:
            ref: [DS-AUTH-03]
            max_mode: "0640"
        {profile_extra}"""))
    target = tmp_path / "toy-target.yaml"
    target.write_text(f"name: toy-target\nenvironment: lab\ntoy:\n  files: [{private}, {shared}]\n")
    return fams, str(profile), str(target)


def test_a_family_added_as_one_folder_runs_end_to_end(tmp_path: Path, golive_run) -> None:  # type: ignore[no-untyped-def]
    """A folder with family.py and its feature, found through GOLIVE_FAMILY_PATH: its
    profile and target fragments validate, -m/-k select it by family and check id, the
    generic binding runs it, and the report judges both files."""
    fams, profile, target = _toy(tmp_path)
    env = {"GOLIVE_FAMILY_PATH": str(fams)}
    run = golive_run(f"--profile={profile}", f"--target={target}", "-m", "toy", env=env)
    assert run.rc == 1, run.out[-3000:]
    res = run.results("toy.")
    assert res["toy.file_mode[private.key]"]["status"] == "pass"
    assert res["toy.file_mode[private.key]"]["measured"] == "0600"
    bad = res["toy.file_mode[shared.key]"]
    assert bad["status"] == "fail" and bad["measured"] == "0644" and bad["expected"] == "mode <= 0640"
    assert bad["severity"] == "high" and bad["requirement"]["ids"] == ["DS-AUTH-03"]
    by_id = golive_run(f"--profile={profile}", f"--target={target}", "-k", "toy.file_mode", env=env)
    assert set(by_id.results()) == set(res)
    listed = subprocess.run([sys.executable, "-m", "golive.cli", "checks", "toy"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, **env}, check=True).stdout
    assert listed.startswith("toy.file_mode") and "DS-AUTH-03" in listed


def test_a_family_fragment_is_validated_with_file_and_line(tmp_path: Path, golive_run) -> None:  # type: ignore[no-untyped-def]
    fams, profile, target = _toy(tmp_path)
    Path(profile).write_text(Path(profile).read_text().replace('max_mode: "0640"', 'max_mode: "0640"\n    max_mod: 1'))
    run = golive_run(f"--profile={profile}", f"--target={target}", env={"GOLIVE_FAMILY_PATH": str(fams)})
    assert run.rc == 4, run.out[-2000:]
    assert f"{profile}:7" in run.out and "max_mod" in run.out and "Traceback" not in run.out


# ----------------------------------------------------------------------------- layers

# Which top-level packages each layer may import (every import, lazy ones too).
LAYERS = {
    "core": ({"golive"}, "golive/*.py except the pytest plugin and the CLI"),
    "app": ({"golive", "reports"}, "golive/plugin.py and golive/cli.py: they run renderers"),
    "renderers": ({"golive", "reports"}, "reports/"),
    "families": ({"golive", "checks"}, "checks/"),
}
APP = {"golive/plugin.py", "golive/cli.py"}
PROJECT = {"golive", "checks", "reports", "lab", "suites", "tests", "benchmarks"}
# Imports of the core by families that are not a family's own types yet (none left: ported
# families take plain values or their own types).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()
FAMILY_MAY_USE = ("golive.model", "golive.blocks", "golive.checkdef", "golive.redact", "golive.units",
                  "golive.deadline", "golive.urls")  # shared probe bounds, load-time URL/host-key checks


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _layer(rel: str) -> str | None:
    if rel.startswith("golive/"):
        return "app" if rel in APP else "core"
    if rel.startswith("reports/"):
        return "renderers"
    if rel.startswith("checks/"):
        return "families"
    return None


def test_layer_contracts() -> None:
    """The core imports no family, renderer or lab; renderers read only the core's model;
    families use only the core's model and declaration types; nothing outside the lab and
    the tests imports the lab."""
    problems = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith((".venv", "build")):
            continue
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top not in PROJECT:
                continue
            layer = _layer(rel)
            if top == "lab" and not rel.startswith(("lab/", "tests/", "benchmarks/")):
                problems.append(f"{rel} imports {mod}: only the lab plugin starts the lab")
            if layer is None:
                continue
            allowed, _ = LAYERS[layer]
            if top not in allowed:
                problems.append(f"{rel} ({layer}) imports {mod}")
            elif (layer == "families" and top == "golive" and not mod.startswith(FAMILY_MAY_USE)
                  and (rel, mod) not in KNOWN_EXCEPTIONS):
                problems.append(f"{rel} (family) imports {mod}: probes take plain values or their family's types")
    assert not problems, "\n".join(problems)


def test_toy_family_file_modes_are_real(tmp_path: Path) -> None:
    """(Guards the end-to-end toy test: the fixture files really have the modes it asserts.)"""
    _, _, target = _toy(tmp_path)
    assert stat.S_IMODE((tmp_path / "shared.key").stat().st_mode) == 0o644
    assert Path(target).exists()


def test_k_by_check_id_and_m_by_severity_select_what_the_report_shows(golive_run) -> None:  # type: ignore[no-untyped-def]
    """-k with the id the report shows selects that check; -m low selects the scenario whose
    check the report shows as low (hosts.os_recommended), whatever the feature file's tags."""
    by_id = golive_run("--profile", "poc", "--target", "lab", "-k", "hosts.cpu_cores")
    assert {r.split("[")[0] for r in by_id.results()} == {"hosts.cpu_cores"}, by_id.out[-2000:]
    low = golive_run("--profile", "docusnap-single-server", "--target", "lab", "-m", "low")
    ids = {r.split("[")[0] for r in low.results()}
    assert "hosts.os_recommended" in ids, low.out[-2000:]
    assert all(r["severity"] in ("low", "medium") for r in low.report["results"] if r["id"].startswith("hosts.os"))
    high_only = golive_run("--profile", "poc", "--target", "lab", "-m", "high and ports")
    want = {c.id for c in registry.load("ports").checks if c.severity.value == "high"}
    assert want and {r.split("[")[0] for r in high_only.results()} == want, high_only.out[-2000:]
