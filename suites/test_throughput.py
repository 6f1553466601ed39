"""Bindings for features/throughput.feature: open-loop load on the target's inference
endpoint (checks.load) judged against the profile's ``throughput`` block.

The steps only plan the load (rate, duration, caps) and compare; the generator lives in
checks/load.py.  A run is shared by the scenarios that need the same load (the main scenario
and the baseline scenario in baseline mode), so the target is loaded once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import scenarios, then, when

from checks import load as probe
from golive.model import Measurement
from golive.units import fmt_duration

scenarios("throughput.feature")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE_APM = 60.0
#: The tier's rate is offered this much above apm_min, so that a target which keeps up is
#: never failed by counting noise (the achieved rate is judged against apm_min itself).
RATE_MARGIN = 0.02
#: The embedded lab is a demonstration: unless its target says otherwise, its load runs are
#: short (the profile's duration capped, brief warm-up and ramp).
LAB_CAPS = {"max_duration_s": 60.0, "warmup_s": 1.0, "ramp_s": 1.0}
#: Seconds between progress lines during a run (GOLIVE_PROGRESS_EVERY_S overrides; 0 = none).
PROGRESS_EVERY_S = float(os.environ.get("GOLIVE_PROGRESS_EVERY_S", "5"))

ID_APM, ID_P95, ID_ERRORS = "throughput.apm", "throughput.p95", "throughput.error_rate"
ID_CAPACITY, ID_REGRESSION = "throughput.capacity", "throughput.regression"


@dataclasses.dataclass
class Load:
    """What the When step did: skipped (``skip``), could not start (``error``) or ran."""

    skip: str | None = None
    error: str | None = None
    run: probe.LoadRun | None = None
    rate_apm: float = 0.0
    duration_s: float = 0.0
    note: str = ""
    success: str = ""


@dataclasses.dataclass
class Capacity:
    skip: str | None = None
    error: str | None = None
    result: probe.CapacityResult | None = None


@pytest.fixture(scope="session")
def throughput_runs() -> dict[tuple[Any, ...], probe.LoadRun]:
    """Load runs of this session by plan, so one plan loads the target once."""
    return {}


def _req(golive: Any) -> Any:
    return golive.req.throughput if golive.req else None


def _gate(golive: Any) -> str | None:
    """Why nothing may be sent, or None."""
    if _req(golive) is None:
        return f"profile '{golive.profile.name}' has no throughput requirement"
    if golive.target.inference is None:
        return "the target names no inference endpoint (inference.url)"
    if not golive.env.allow_disruptive:
        return "disruptive, not allowed"
    return None


def _printer(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Progress lines on the terminal while a long run goes on (through pytest's terminal
    reporter with capture suspended; stderr when there is none)."""
    config = request.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def show(line: str) -> None:
        suspend = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
        with suspend:
            if reporter is not None:
                reporter.write_line(line)
            else:
                sys.stderr.write(line + "\n")

    return show


def _limits(golive: Any) -> tuple[float | None, float, float]:
    """(max_duration_s, warmup_s, ramp_s) for this target: its own, or the lab's caps."""
    inf = golive.target.inference
    fields = inf.model_fields_set
    lab = golive.env.lab is not None
    cap = inf.max_duration_s if inf.max_duration_s is not None else (LAB_CAPS["max_duration_s"] if lab else None)
    warmup = inf.warmup_s if "warmup_s" in fields or not lab else LAB_CAPS["warmup_s"]
    ramp = inf.ramp_s if "ramp_s" in fields or not lab else LAB_CAPS["ramp_s"]
    return cap, warmup, ramp


def _spec(golive: Any) -> probe.RequestSpec:
    return probe.request_spec_from_target(golive.target.inference, golive.target.endpoints.ca_file)


def _load(golive: Any, request: pytest.FixtureRequest, runs: dict[tuple[Any, ...], probe.LoadRun]) -> Load:
    req, inf = _req(golive), golive.target.inference
    rate_apm = req.apm_min * (1 + RATE_MARGIN) if req.apm_min else (inf.baseline_apm or DEFAULT_BASELINE_APM)
    cap, warmup, ramp = _limits(golive)
    duration = min(req.duration, cap) if cap else req.duration
    note = (f"; profile duration {fmt_duration(req.duration)} capped to {fmt_duration(duration)} for this target"
            if duration < req.duration else "")
    try:
        spec = _spec(golive)
        plan = probe.LoadPlan(rate=rate_apm / 60, steady_s=duration, warmup_s=warmup, ramp_s=ramp,
                              connections=inf.connections or 0,
                              latency_bound_s=req.p95 if req.p95 else probe.DEFAULT_LATENCY_BOUND_S)
    except ValueError as exc:
        return Load(error=str(exc))
    key = (spec.url, spec.method, spec.body, plan)
    run = runs.get(key)
    if run is None:
        show = _printer(request)
        run = probe.run_load(spec, plan, progress=lambda p: show(p.line()), progress_every_s=PROGRESS_EVERY_S)
        runs[key] = run
    return Load(run=run, rate_apm=rate_apm, duration_s=duration, note=note,
                success=spec.success_words())


def _not_judged(golive: Any, load: Load, check_id: str, expected: str) -> bool:
    """Record a skip or an error when there is nothing to judge."""
    if load.skip is not None:
        golive.checks.skip(check_id, load.skip, block=_req(golive), expected=expected)
        return True
    if load.error is not None:
        golive.checks.error(check_id, load.error, block=_req(golive), expected=expected)
        return True
    return False


# ----------------------------------------------------------------------------- the tier's rate


@when("the inference endpoint is loaded at the tier's rate for the profile's duration",
      target_fixture="throughput_load")
def load_tier(golive: Any, request: pytest.FixtureRequest,
              throughput_runs: dict[tuple[Any, ...], probe.LoadRun]) -> Load:
    why = _gate(golive)
    return Load(skip=why) if why else _load(golive, request, throughput_runs)


@then("the achieved rate is at least the tier's APM")
def judge_apm(golive: Any, throughput_load: Load) -> None:
    req = _req(golive)
    apm_min = req.apm_min if req is not None else None
    expected = f">= {probe.fmt_apm(apm_min)} APM sustained" if apm_min else "n/a"
    if _not_judged(golive, throughput_load, ID_APM, expected):
        return
    if apm_min is None:
        golive.checks.skip(ID_APM, "the profile sets no apm_min (baseline mode: latency is compared with the "
                           "stored baseline instead)", block=req)
        return
    run = throughput_load.run
    assert run is not None
    measured = probe.measurements(run).apm
    # C1: the tier's APM is asserted per deployment and reported per inference node.
    nodes = len(golive.target.hosts_with_role("inference"))
    per_node = round(run.achieved_apm / nodes, 4) if nodes else None
    if per_node is not None and measured.error is None:
        measured = dataclasses.replace(
            measured, display=f"{measured.display}; {probe.fmt_apm(per_node)} APM per inference host ({nodes})")
    golive.checks.record(
        ID_APM, block=req, measurement=measured, ok=lambda v: v >= apm_min,
        expected=(f">= {probe.fmt_apm(apm_min)} APM sustained over {throughput_load.duration_s:.3g} s "
                  f"(offered {probe.fmt_apm(throughput_load.rate_apm)} APM){throughput_load.note}"),
        remediation=("add inference capacity (instances or nodes) or make one analysis cheaper; the per-second "
                     "series shows when completions fell behind the offered rate"),
        data={"offered_apm": round(run.offered_apm, 4), "achieved_apm": round(run.achieved_apm, 4),
              "completed_in_window_apm": round(run.completed_in_window_rate * 60, 4),
              "dispatched_apm": round(run.dispatched_rate * 60, 4), "steady_s": run.steady_s,
              "inference_hosts": nodes, "per_inference_host_apm": per_node, **run.chart_data()})


@then("the error rate is at most the profile's maximum")
def judge_errors(golive: Any, throughput_load: Load) -> None:
    req = _req(golive)
    limit = req.error_rate_max if req is not None else 0.0
    expected = (f"<= {limit * 100:g}% of requests fail (success = {throughput_load.success or 'expected status'})"
                if req is not None else "n/a")
    if _not_judged(golive, throughput_load, ID_ERRORS, expected):
        return
    run = throughput_load.run
    assert run is not None
    golive.checks.record(
        ID_ERRORS, block=req, expected=expected, measurement=probe.measurements(run).error_rate,
        ok=lambda v: v <= limit,
        remediation="read the error kinds in the evidence; fix the failing analyses before adding load",
        data={"error_rate": round(run.error_rate, 6), "success_ratio": round(run.success_ratio, 6),
              "requests": run.summary()["requests"], "errors": dict(run.errors)})


@then("the p95 latency is at most the profile's limit")
def judge_p95(golive: Any, throughput_load: Load) -> None:
    req = _req(golive)
    p95 = req.p95 if req is not None else None
    expected = f"<= {probe.fmt_ms(p95 * 1000)} p95, measured from the scheduled send time" if p95 else "n/a"
    if _not_judged(golive, throughput_load, ID_P95, expected):
        return
    if p95 is None:
        golive.checks.skip(ID_P95, "the profile sets no p95 limit (latencies are recorded in throughput.apm)",
                           block=req)
        return
    run = throughput_load.run
    assert run is not None
    golive.checks.record(
        ID_P95, block=req, expected=expected, measurement=probe.measurements(run).p95,
        ok=lambda v: v <= p95 * 1000,
        remediation=("latency above the limit at this rate: add capacity or reduce per-analysis cost; a corrected "
                     "p95 far above the naive one means requests queued"),
        data={"latency_ms": run.summary()["latency_ms"], "histogram_ms": run.histogram_ms})


# ----------------------------------------------------------------------------- capacity


@when("the highest rate the inference endpoint sustains within the limits is searched",
      target_fixture="capacity_search")
def search_capacity(golive: Any, request: pytest.FixtureRequest) -> Capacity:
    why = _gate(golive)
    if why:
        return Capacity(skip=why)
    req, inf = _req(golive), golive.target.inference
    if req.capacity_max_apm is None:
        return Capacity(skip="the profile sets no capacity_max_apm (capacity search off)")
    start = req.apm_min or inf.baseline_apm or DEFAULT_BASELINE_APM
    start = min(start, req.capacity_max_apm)
    cap, warmup, ramp = _limits(golive)
    step = min(req.capacity_step, cap) if cap else req.capacity_step
    slo = probe.Slo(p95_ms=req.p95 * 1000 if req.p95 else None, error_rate_max=req.error_rate_max)
    try:
        spec = _spec(golive)
    except ValueError as exc:
        return Capacity(error=str(exc))
    show = _printer(request)
    result = probe.search_capacity(spec, start_apm=start, max_apm=req.capacity_max_apm, slo=slo, step_s=step,
                                   warmup_s=min(warmup, step / 2), ramp_s=min(ramp, step / 2),
                                   connections=inf.connections or 0, time_budget_s=req.capacity_time_max,
                                   progress=show)
    return Capacity(result=result)


@then("the capacity is at least the required headroom over the tier's APM")
def judge_capacity(golive: Any, capacity_search: Capacity) -> None:
    req = _req(golive)
    if capacity_search.skip is not None:
        golive.checks.skip(ID_CAPACITY, capacity_search.skip, block=req)
        return
    if capacity_search.error is not None:
        golive.checks.error(ID_CAPACITY, capacity_search.error, block=req)
        return
    result = capacity_search.result
    assert result is not None
    if req.apm_min:
        required = req.headroom_min * req.apm_min
        expected = (f">= {probe.fmt_apm(required)} APM ({req.headroom_min:g} x the tier's "
                    f"{probe.fmt_apm(req.apm_min)} APM) within {result.slo.words()}")
        tier = req.apm_min
    else:
        required = result.start_apm
        expected = f">= the baseline rate {probe.fmt_apm(required)} APM within {result.slo.words()}"
        tier = required
    headroom = result.capacity_apm / tier if tier else 0.0
    ev = result.evidence()
    m = (Measurement.failed(result.error, ev) if result.error is not None else
         Measurement(round(result.capacity_apm, 3), f"{result.display()}; headroom {headroom:.2f} x "
                     f"{probe.fmt_apm(tier)} APM", ev, unit="APM"))
    golive.checks.record(
        ID_CAPACITY, block=req, expected=expected, measurement=m, ok=lambda v: v >= required,
        remediation="the target saturates below the required headroom: add instances or nodes",
        data={"capacity_apm": round(result.capacity_apm, 3), "tier_apm": tier, "headroom": round(headroom, 4),
              "required_apm": required, **result.to_dict()})


# ----------------------------------------------------------------------------- baseline


@when("the inference endpoint is loaded at the baseline rate for the profile's duration",
      target_fixture="baseline_load")
def load_baseline(golive: Any, request: pytest.FixtureRequest,
                  throughput_runs: dict[tuple[Any, ...], probe.LoadRun]) -> Load:
    why = _gate(golive)
    if why:
        return Load(skip=why)
    if _req(golive).apm_min is not None:
        return Load(skip="the profile sets apm_min: the rate is judged against the tier (throughput.apm), "
                         "not against a baseline")
    return _load(golive, request, throughput_runs)


@then("the p95 latency has not regressed more than the profile allows against the stored baseline")
def judge_regression(golive: Any, baseline_load: Load) -> None:
    req = _req(golive)
    limit = req.regression_max_pct if req is not None else 0.0
    expected = f"p95 <= stored baseline + {limit:g}%"
    if _not_judged(golive, baseline_load, ID_REGRESSION, expected):
        return
    run = baseline_load.run
    assert run is not None
    inf = golive.target.inference
    directory = Path(inf.baseline_dir) if inf.baseline_dir else ROOT / "reports" / "baselines"
    path = probe.baseline_path(directory, golive.target.name, golive.profile.name)
    if run.error is not None:
        golive.checks.record(ID_REGRESSION, block=req, expected=expected, measurement=probe.measurements(run).p95,
                             ok=lambda v: False)
        return
    try:
        base = probe.read_baseline(path)
    except ValueError as exc:
        golive.checks.error(ID_REGRESSION, str(exc), block=req, expected=expected, evidence=run.evidence())
        return
    if base is None:
        if run.error_rate > req.error_rate_max:
            golive.checks.error(ID_REGRESSION, f"no baseline recorded: {run.error_rate * 100:.1f}% of the requests "
                                f"failed (more than {req.error_rate_max * 100:g}%)", block=req, expected=expected,
                                evidence=run.evidence())
            return
        probe.write_baseline(path, run, target=golive.target.name, profile=golive.profile.name)
        golive.checks.skip(ID_REGRESSION, f"baseline recorded: p95 {probe.fmt_ms(run.corrected.p95)} at "
                           f"{probe.fmt_apm(run.offered_apm)} APM in {path} (the next run is compared with it)",
                           block=req, expected=expected)
        return
    if abs(float(base["rate_apm"]) - run.offered_apm) > 1e-6 * max(1.0, run.offered_apm):
        golive.checks.error(ID_REGRESSION, f"the baseline in {path} was recorded at {base['rate_apm']} APM, this run "
                            f"offered {probe.fmt_apm(run.offered_apm)} APM: delete it to record a new one",
                            block=req, expected=expected, evidence=run.evidence())
        return
    base_p95 = float(base["p95_ms"])
    change = (run.corrected.p95 / base_p95 - 1) * 100 if base_p95 > 0 else float("inf")
    m = Measurement(round(change, 2), f"p95 {probe.fmt_ms(run.corrected.p95)} vs baseline {probe.fmt_ms(base_p95)} "
                    f"({change:+.1f}%)", run.evidence(), unit="%")
    golive.checks.record(
        ID_REGRESSION, block=req, measurement=m, ok=lambda v: v <= limit,
        expected=(f"p95 <= {probe.fmt_ms(base_p95 * (1 + limit / 100))} (baseline {probe.fmt_ms(base_p95)} "
                  f"recorded {base.get('recorded_at', '?')} + {limit:g}%)"),
        remediation=f"find what made the inference core slower since the baseline; delete {path} to accept "
                    "the new latency as the baseline",
        data={"baseline": base, "baseline_file": str(path), "p95_ms": round(run.corrected.p95, 3),
              "change_pct": round(change, 2), "latency_ms": run.summary()["latency_ms"], **run.chart_data()})
