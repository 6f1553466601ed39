"""End to end: ``pytest --profile ... --target ... --allow-disruptive`` over
features/throughput.feature against labs started here with a known capacity
(instances x 60000 / cost_ms APM), asserting status and measured values in report.json.

The labs run in this process; each golive run gets a target file naming the lab's endpoint
(and short warm-up/ramp) and a profile with the numbers under test, so every run takes a
few seconds."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.procs import free_port
from lab.run import RunningLab, start_lab

SUITE = "suites/test_families.py"  # the throughput family (-m throughput): checks/throughput/family.py
ONLY = ("-m", "throughput")


def _profile(tmp_path: Path, name: str, **throughput: Any) -> str:
    doc = {"name": name, "description": "throughput self-test",
           "requirements": {"throughput": {"ref": ["OZ-PERF-00"], **throughput}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _target(tmp_path: Path, lab: RunningLab, name: str = "tp-lab", **inference: Any) -> str:
    over = lab.target_overrides()
    doc = {"name": name, "environment": "staging", "endpoints": {"ca_file": str(lab.ca_file)},
           "inference": {**over["inference"], "warmup_s": 0.5, "ramp_s": 0.5, **inference}}
    path = tmp_path / f"target-{name}-{lab.variant}-{lab.ports['https']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def data(result: dict[str, Any]) -> dict[str, Any]:
    """A result's evidence data (what the load run measured, in report.json)."""
    out: dict[str, Any] = result["evidence"][0]["data"]
    return out


def _lab(factory: pytest.TempPathFactory, variant: str, cost_ms: float, instances: int) -> Iterator[RunningLab]:
    with start_lab(factory.mktemp(f"lab-{variant}"), variant, cost_ms=cost_ms, instances=instances) as lab:
        yield lab


@pytest.fixture(scope="module")
def lab_light(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """Compliant, two instances at 10 ms: 12000 APM, far above what is offered to it (so a
    busy machine does not make it miss)."""
    yield from _lab(tmp_path_factory, "compliant", 10, 2)


@pytest.fixture(scope="module")
def lab_one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """Compliant, one instance at 50 ms: 1200 APM."""
    yield from _lab(tmp_path_factory, "compliant", 50, 1)


@pytest.fixture(scope="module")
def lab_error_body(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    yield from _lab(tmp_path_factory, "error_body", 20, 1)


@pytest.fixture(scope="module")
def lab_fail_5pct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    yield from _lab(tmp_path_factory, "fail_5pct", 20, 1)


@pytest.fixture(scope="module")
def lab_slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """slow_inference: 10 ms x 20 = 200 ms per analysis, two instances (600 APM)."""
    yield from _lab(tmp_path_factory, "slow_inference", 10, 2)


def test_compliant_lab_sustains_the_rate_with_headroom(tmp_path, golive_run, lab_light) -> None:  # type: ignore[no-untyped-def]
    # 612 APM for 3 s would be 31 requests: the steady phase is lengthened (within
    # duration_max) to the 72 a p95 at 95 % confidence needs; so is each capacity step
    profile = _profile(tmp_path, "tp-ok", apm_min=600, p95="1 s", error_rate_max=0.01, duration="3 s",
                       duration_max="15 s", capacity_max_apm=1200, headroom_min=2, capacity_step="1 s")
    run = golive_run(f"--profile={profile}", f"--target={_target(tmp_path, lab_light)}", "--allow-disruptive", SUITE, *ONLY,
                     env={"GOLIVE_PROGRESS_EVERY_S": "1"})
    assert run.rc == 0, run.out
    apm = run.one("throughput.apm")
    assert apm["status"] == "pass", apm
    assert apm["expected"] == ">= 600 APM sustained (offered 612 APM)"
    assert data(apm)["offered_apm"] == pytest.approx(612)
    assert data(apm)["achieved_apm"] == pytest.approx(612, rel=0.02)  # ground truth: below capacity
    assert "steady phase lengthened to 7.1 s for the 72 samples a p95 needs" in apm["measured"]
    assert apm["requirement"]["ids"] == ["OZ-PERF-00"]
    ev = apm["evidence"][0]
    assert ev["method"].startswith("open-loop constant arrival rate: POST https://localhost:")
    assert ev["data"]["requests"]["steady"] == 72 and ev["data"]["requests"]["ok"] == 72
    series = data(apm)["series"]
    assert {"t", "ok", "err", "p95_ms"} <= set(series[0]) and sum(s["ok"] for s in series) >= 72
    hist = data(apm)["histogram_ms"]
    assert sum(c for _, c in hist) == 72 and all(a[0] < b[0] for a, b in itertools.pairwise(hist))
    assert ev["data"]["hdr_us"]["corrected"]  # the encoded histogram: runs merge exactly
    p95 = run.one("throughput.p95")
    assert p95["status"] == "pass" and 10 <= data(p95)["latency_ms"]["corrected"]["p95"] < 1000
    q = data(p95)["percentiles"]["p95"]
    assert q["n"] == 72 and q["needed"] == 72 and q["ci_low_ms"] <= q["value_ms"] <= q["ci_high_ms"]
    assert "95% CI" in p95["measured"]
    errors = run.one("throughput.error_rate")
    assert errors["status"] == "pass" and errors["measured"].startswith("0.00% failed (0 of 72")
    capacity = run.one("throughput.capacity")
    assert capacity["status"] == "pass", (capacity.get("reason"), capacity["evidence"][0]["raw"])
    assert capacity["measured"].startswith(">= 1200 APM (the search's upper bound)")
    assert data(capacity)["headroom"] == pytest.approx(2.0) and len(data(capacity)["steps"]) == 2
    assert run.one("throughput.regression")["status"] == "skip"
    assert "throughput:" in run.out and "p95 so far" in run.out  # the progress display


def test_without_allow_disruptive_nothing_is_sent(tmp_path, golive_run, lab_light) -> None:  # type: ignore[no-untyped-def]
    profile = _profile(tmp_path, "tp-ok", apm_min=300, duration="3 s", capacity_max_apm=600)
    before = lab_light.analyses_served()
    run = golive_run(f"--profile={profile}", f"--target={_target(tmp_path, lab_light)}", SUITE, *ONLY)
    results = run.results("throughput.")
    assert set(results) == {"throughput.apm", "throughput.p95", "throughput.error_rate", "throughput.capacity",
                            "throughput.regression"}
    assert {r["status"] for r in results.values()} == {"skip"}, [(k, r["status"], r.get("reason")) for k, r in results.items() if r["status"] != "skip"]
    assert {r["reason"] for r in results.values()} == {"disruptive, not allowed"}
    assert run.report["verdict"]["decision"] == "NO-GO"  # nothing was verified
    assert lab_light.analyses_served() == before  # not one analysis was requested


def test_twice_the_capacity_fails_and_the_corrected_p99_shows_the_queue(tmp_path, golive_run, lab_one) -> None:  # type: ignore[no-untyped-def]
    capacity = lab_one.capacity_apm  # 1200 APM on an idle core, less on a busy machine
    profile = _profile(tmp_path, "tp-over", apm_min=2 * capacity, p95="500 ms", duration="3 s")
    run = golive_run(f"--profile={profile}", f"--target={_target(tmp_path, lab_one, connections=4)}",
                     "--allow-disruptive", SUITE, *ONLY)
    assert run.rc == 1, run.out
    assert run.report["verdict"]["decision"] == "NO-GO"
    apm = run.one("throughput.apm")
    assert apm["status"] == "fail", apm
    assert 0 < data(apm)["achieved_apm"] < 1.1 * capacity  # what the lab can do, not what was offered
    p95 = run.one("throughput.p95")
    assert p95["status"] == "fail"
    latency = data(p95)["latency_ms"]
    assert latency["corrected"]["p99"] > 4 * latency["naive"]["p99"], latency
    assert "naive" in p95["measured"]
    assert run.one("throughput.error_rate")["status"] == "pass"  # slow, but every answer was right


def test_error_body_fails_on_the_success_ratio_and_has_no_capacity(  # type: ignore[no-untyped-def]
        tmp_path, golive_run, lab_error_body) -> None:
    profile = _profile(tmp_path, "tp-eb", apm_min=300, error_rate_max=0.01, duration="2 s", capacity_max_apm=600,
                       capacity_step="1 s")
    run = golive_run(f"--profile={profile}", f"--target={_target(tmp_path, lab_error_body)}", "--allow-disruptive",
                     SUITE, *ONLY)
    assert run.rc == 1, run.out
    errors = run.one("throughput.error_rate")
    assert errors["status"] == "fail", errors
    assert data(errors)["success_ratio"] == 0 and data(errors)["errors"] == {"body status='error'": 10}
    assert "success ratio 0.00%" in errors["measured"]
    apm = run.one("throughput.apm")
    assert apm["status"] == "fail" and data(apm)["achieved_apm"] == 0  # HTTP 200s are not analyses
    capacity = run.one("throughput.capacity")
    assert capacity["status"] == "fail", capacity
    assert data(capacity)["capacity_apm"] == 0 and capacity["measured"].startswith("< 37.5 APM")
    # 300, 150, 75, 37.5 APM: the downward search is bounded, then gives up
    assert [s["rate_apm"] for s in data(capacity)["steps"]] == [300, 150, 75, 37.5]


def test_fail_5pct_fails_on_the_error_rate(tmp_path, golive_run, lab_fail_5pct) -> None:  # type: ignore[no-untyped-def]
    # 612 APM for 4 s is 41 requests: the steady phase is lengthened (within duration_max) to
    # the 72 a p95 needs at 95 % confidence
    profile = _profile(tmp_path, "tp-5", apm_min=600, error_rate_max=0.01, duration="4 s", p95="5 s",
                       duration_max="8 s")
    run = golive_run(f"--profile={profile}", f"--target={_target(tmp_path, lab_fail_5pct)}", "--allow-disruptive",
                     SUITE, *ONLY)
    assert run.rc == 1, run.out
    errors = run.one("throughput.error_rate")
    assert errors["status"] == "fail", errors
    assert 0.02 <= data(errors)["error_rate"] <= 0.08, errors  # every 20th analysis is a 500
    assert set(data(errors)["errors"]) == {"HTTP 500"}
    assert data(errors)["requests"]["steady"] == 72
    assert data(errors)["phases"]["steady_s"] == pytest.approx(7.1, abs=0.05)
    assert "steady phase lengthened to" in run.one("throughput.apm")["measured"]
    assert "most frequent: HTTP 500" in errors["measured"]


def test_unreachable_endpoint_is_an_error(tmp_path, golive_run, lab_light) -> None:  # type: ignore[no-untyped-def]
    port = free_port()  # nothing listens there
    target = _target(tmp_path, lab_light, url=f"https://127.0.0.1:{port}/v1/analyze")
    profile = _profile(tmp_path, "tp-dead", apm_min=300, p95="1 s", duration="30 s", capacity_max_apm=600)
    run = golive_run(f"--profile={profile}", f"--target={target}", "--allow-disruptive", SUITE, *ONLY)
    assert run.rc == 1, run.out
    for check in ("throughput.apm", "throughput.p95", "throughput.error_rate", "throughput.capacity"):
        result = run.one(check)
        assert result["status"] == "error", result
        assert "no HTTP answer" in result["reason"] and "cannot connect" in result["reason"], result
    assert run.report["verdict"]["decision"] == "NO-GO"


def test_baseline_is_recorded_then_compared_and_a_regression_fails(  # type: ignore[no-untyped-def]
        tmp_path, golive_run, lab_light, lab_slow) -> None:
    baselines = tmp_path / "baselines"
    profile = _profile(tmp_path, "tp-base", duration="4 s", regression_max_pct=200)
    args = (f"--profile={profile}", "--allow-disruptive", SUITE, *ONLY)
    fast = _target(tmp_path, lab_light, name="tp-base-target", baseline_apm=300, baseline_dir=str(baselines))

    first = golive_run(*args, f"--target={fast}")
    assert first.rc == 0, first.out
    recorded = first.one("throughput.regression")
    assert recorded["status"] == "skip" and recorded["reason"].startswith("baseline recorded: p95 "), recorded
    stored = json.loads((baselines / "tp-base-target__tp-base.json").read_text())
    assert stored["rate_apm"] == 300 and stored["requests"] == 20 and stored["p95_ms"] >= 10
    assert first.one("throughput.apm")["status"] == "skip"  # no apm_min: baseline mode
    assert first.one("throughput.error_rate")["status"] == "pass"

    again = golive_run(*args, f"--target={fast}")
    same = again.one("throughput.regression")
    assert same["status"] == "pass", same
    assert data(same)["baseline"]["p95_ms"] == stored["p95_ms"]

    slow = _target(tmp_path, lab_slow, name="tp-base-target", baseline_apm=300, baseline_dir=str(baselines))
    regressed = golive_run(*args, f"--target={slow}")
    assert regressed.rc == 1, regressed.out
    worse = regressed.one("throughput.regression")
    assert worse["status"] == "fail", worse
    assert data(worse)["change_pct"] > 200 and data(worse)["p95_ms"] >= 200  # 200 ms per analysis, was 10
    assert json.loads((baselines / "tp-base-target__tp-base.json").read_text()) == stored  # never overwritten


def test_a_p95_from_too_few_requests_is_an_error_not_a_pass(tmp_path, golive_run, lab_light) -> None:  # type: ignore[no-untyped-def]
    """61.2 APM for 3 s is 3 requests: no p95 can be claimed from them (issue #16)."""
    profile = _profile(tmp_path, "tp-few", apm_min=60, p95="1 s", duration="3 s")
    run = golive_run(f"--profile={profile}", f"--target={_target(tmp_path, lab_light)}", "--allow-disruptive",
                     SUITE, *ONLY)
    p95 = run.one("throughput.p95")
    assert p95["status"] == "error", p95
    assert p95["reason"].startswith("too few samples (3, needed 72)"), p95
    assert run.one("throughput.apm")["status"] == "pass"  # the rate and the errors are still judged
    assert run.one("throughput.error_rate")["status"] == "pass"
    assert run.report["verdict"]["decision"] == "NO-GO"


def test_above_the_pacing_ceiling_the_schedule_is_split_over_workers(  # type: ignore[no-untyped-def]
        tmp_path, golive_run, lab_light) -> None:
    """The target declares two local worker processes and a (deliberately low) pacing
    ceiling of 1 req/s: the tier's 5.1 req/s are loaded as one schedule from both, merged
    into one verdict."""
    profile = _profile(tmp_path, "tp-workers", apm_min=300, error_rate_max=0.01, duration="4 s")
    target = _target(tmp_path, lab_light, workers=["local", "local"], pacing_ceiling_rps=1)
    before = lab_light.analyses_served()
    run = golive_run(f"--profile={profile}", f"--target={target}", "--allow-disruptive", SUITE, *ONLY)
    assert run.rc == 0, run.out
    apm = run.one("throughput.apm")
    assert apm["status"] == "pass", apm
    assert data(apm)["workers"] == 2 and data(apm)["requests"]["steady"] == 20 == data(apm)["requests"]["ok"]
    assert data(apm)["hdr_us"]["corrected"]
    assert lab_light.analyses_served() - before == data(apm)["requests"]["completed_all_phases"] + 2  # + 2 preflights
    assert "worker processes" in run.out  # the progress line says why
