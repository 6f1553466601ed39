"""Unit tests of the core: units, profile inheritance, verdict, redaction."""
from __future__ import annotations

from pathlib import Path

import pytest

from golive import catalogue
from golive.model import CheckResult, Severity, Status
from golive.profile import PROFILES_DIR, load_profile
from golive.redact import redact, register_secret
from golive.units import parse_duration, parse_rate, parse_size
from golive.verdict import decide

SHIPPED = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def test_units() -> None:
    assert parse_size("32 GiB") == 32 * 2**30
    assert parse_size("50 GB") == 50 * 10**9
    assert parse_rate("1 Gbps") == 1000 and parse_rate("100 Mbps") == 100
    assert parse_duration("24 h") == 86400 and parse_duration("7d") == 7 * 86400
    for bad in (16, "16", "16 cores", True):
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads_and_cites_catalogue_ids(name: str) -> None:
    prof = load_profile(name)
    blocks = [b for b in prof.req.model_dump(exclude_none=True).values()]
    for block in blocks:
        for rid in block.get("ref", []):
            assert catalogue.known(rid)
    if name != "base":
        assert prof.profile.source, f"{name} must name its seed source"
        assert any(b.get("ref") for b in blocks), f"{name} cites no requirement id"


def test_issue_profiles_exist() -> None:
    assert set(SHIPPED) >= {"poc", "medium-load", "high-load", "docusnap-single-server", "docusnap-distributed",
                            "alwrity-single-user", "alwrity-multi-user", "alwrity-enterprise", "strv-minimum",
                            "strv-large-dataset", "vocabulo"}


def test_sizing_is_replaced_not_max_merged() -> None:
    medium = load_profile("medium-load").req.hosts
    high = load_profile("high-load").req.hosts
    poc = load_profile("poc").req.hosts
    assert medium is not None and high is not None and poc is not None
    # medium-load replaces PoC's role sizing by its layouts
    assert medium.roles == {} and medium.default is None and set(medium.layouts) == {1, 2, 3, 4}
    four, _ = medium.sizing_for(["app"], 4)
    assert four is not None and four.cpu_cores == 8  # below PoC's 16: not max-merged
    # high-load drops the layouts and sets its own roles
    assert high.layouts == {} and high.roles["inference"].cpu_cores == 16 and high.default.cpu_cores == 8
    # other sections still inherit (python from poc, docker overridden as optional)
    assert high.software["python"].version == "3.4" and high.software["docker"].required is False
    # and other sections deep-merge from base
    assert load_profile("high-load").req.tls is not None


def test_extends_chain_is_recorded_and_hash_is_stable(tmp_path: Path) -> None:
    a = load_profile("high-load")
    assert [Path(f).stem for f in a.files] == ["high-load", "medium-load", "poc", "base"]
    assert a.sha256 == load_profile("high-load").sha256
    child = tmp_path / "child.yaml"
    child.write_text(f"name: child\ndescription: d\nextends: {PROFILES_DIR / 'poc.yaml'}\n"
                     "requirements:\n  throughput: {apm_min: 7}\n")
    c = load_profile(str(child))
    assert c.req.throughput.apm_min == 7 and c.sha256 != load_profile("poc").sha256
    assert c.req.hosts.roles["inference"].cpu_cores == 16


def _r(i: str, status: Status, sev: Severity) -> CheckResult:
    return CheckResult(id=i, status=status, severity=sev, expected="", measured="")


def test_verdict_gate() -> None:
    rs = [_r("a", Status.PASS, Severity.CRITICAL), _r("b", Status.FAIL, Severity.MEDIUM),
          _r("c", Status.WAIVED, Severity.CRITICAL), _r("d", Status.SKIP, Severity.HIGH)]
    assert decide(rs, Severity.HIGH).go
    assert not decide(rs, Severity.MEDIUM).go
    err = [*rs, _r("e", Status.ERROR, Severity.HIGH)]
    v = decide(err, Severity.HIGH)
    assert not v.go and v.blocking == ("e",) and "could not be verified" in v.reason
    assert not decide([], Severity.LOW).go  # nothing verified is never GO
    assert not decide([_r("s", Status.SKIP, Severity.HIGH)], Severity.LOW).go
    assert not decide(rs, Severity.HIGH, complete=False).go


def test_redaction() -> None:
    register_secret("pa55-w0rd-xyz")
    assert "pa55-w0rd-xyz" not in redact("connect with pa55-w0rd-xyz now")
    assert redact("postgresql://app:hunter2@db/app") == "postgresql://app:***@db/app"
    assert "s3cr3t" not in redact("password=s3cr3t&x=1")


def test_published_json_schemas_are_current() -> None:
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("export_schemas", root / "scripts" / "export_schemas.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    for name, text in mod.render().items():
        path = root / "docs" / "schema" / f"{name}.schema.json"
        assert path.read_text() == text, f"{path} is stale: run scripts/export_schemas.py"


def test_profile_digest_covers_exact_values(tmp_path: Path) -> None:
    """32.01 GiB and 32.04 GiB both display as "32.0 GiB"; their digests must differ."""
    from golive.profile import load_profile

    digests = []
    for name, size in (("a", "32.01 GiB"), ("b", "32.04 GiB")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: x\ndescription: d\nrequirements:\n  hosts:\n    default: {{memory: {size}}}\n")
        digests.append(load_profile(str(tmp_path / f"{name}.yaml")).sha256)
    assert digests[0] != digests[1]


def test_report_keeps_measured_values_as_data_and_diff_compares_them() -> None:
    """report /2: value and unit beside the display text; diff sees a change the display hides."""
    from golive.diff import compare
    from golive.model import Evidence, Measurement
    from golive.recorder import Checks, ScenarioInfo
    from golive.report import SCHEMA, build
    from golive.waivers import Waivers

    def result(mem: int) -> dict:
        m = Measurement(mem, "32.0 GiB", Evidence(probe="p", subject="h", method="m"), unit="bytes")
        return Checks(ScenarioInfo(), Waivers()).record("hosts.memory[h]", block=None, expected=">= 32 GiB",
                                                        measurement=m, ok=lambda v: True).to_dict()

    old, new = result(34370000000), result(34400000000)
    assert old["measurement"] == {"value": 34370000000, "unit": "bytes", "display": "32.0 GiB"}
    meta = {"verdict": {}, "results": [old]}
    doc = build({}, {}, [old], {})
    assert doc["schema"] == SCHEMA == "golive-report/2"
    changed = compare({**doc}, {**meta, "results": [new]})["measurement_changed"]
    assert [c["id"] for c in changed] == ["hosts.memory[h]"]
    assert (changed[0]["old_value"], changed[0]["new_value"]) == (34370000000, 34400000000)
