"""The throughput family, declared: the inference core sustains the tier's rate within the
error and latency limits, has headroom above it, and has not regressed against a stored
baseline.

Reads ``requirements.throughput`` (the tier's APM, p95, error rate, duration, confidence,
capacity search, regression limit) and the target's ``inference`` section (the endpoint,
its request mix, its success rule, the run's bounds, worker hosts) -- the section the HA
drill sends too, judged by the same rule (checks.request).  The probe is the open-loop
generator, checks/throughput/load.py; one load run is shared by the apm, p95, error-rate
and regression checks (CheckContext.memo).  Every check loads the target: disruptive.
"""
from __future__ import annotations

import dataclasses
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from golive.blocks import Block
from golive.checkdef import Check, CheckContext, Family, NotApplicable
from golive.model import Evidence, Measurement, Severity
from golive.units import Duration, fmt_duration

if TYPE_CHECKING:
    from checks.throughput.load import LoadRun, Workload

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_BASELINE_APM = 60.0
#: The tier's rate is offered this much above apm_min, so that a target which keeps up is
#: never failed by counting noise (the achieved rate is judged against apm_min itself).
RATE_MARGIN = 0.02
#: The tiers' throughput rows and the APM definition (catalogue).
PERF_REFS = ("OZ-PERF-00", "OZ-POC-PERF-01", "OZ-ML-PERF-01", "OZ-HL-PERF-01")


class ThroughputReq(Block):
    """The tier's load: ``apm_min`` analyses per minute (none: baseline mode) for
    ``duration``, within ``error_rate_max`` and ``p95``; percentiles are judged only from
    enough samples for a bound at ``confidence`` (the steady phase is lengthened up to
    ``duration_max`` to get them); the capacity search and the regression limit."""

    apm_min: float | None = Field(default=None, gt=0, le=1e9, description="analyses per minute; none = baseline mode")
    p95: Duration | None = None
    error_rate_max: float = Field(default=0.01, ge=0, le=1)
    duration: Duration = 60.0
    duration_max: Duration | None = Field(default=None, description=(
        "the steady phase may be lengthened up to this to collect the samples a percentile needs "
        "(default: duration; too few samples is then an error)"))
    confidence: float = Field(default=0.95, gt=0, lt=1, description=(
        "confidence level of the percentiles' intervals and of the samples they need (p95 at 0.95: 72 requests)"))
    regression_max_pct: float = Field(default=20, ge=0, le=10000)
    capacity_max_apm: float | None = Field(
        default=None, gt=0, le=1e9, description="search the capacity up to this rate; none = no capacity search")
    headroom_min: float = Field(default=1.0, gt=0, le=1000, description="capacity must be >= headroom_min x apm_min")
    capacity_step: Duration = Field(default=10.0, description="steady time of each capacity-search step (at least)")
    capacity_time_max: Duration = Field(default=300.0, description="time budget of the whole capacity search")


@dataclasses.dataclass(frozen=True)
class TierLoad:
    """One load run at the tier's (or the baseline) rate, shared by the checks."""

    run: LoadRun
    rate_apm: float
    duration_s: float
    note: str


def _percentiles(req: ThroughputReq) -> tuple[float, ...]:
    """The percentiles the profile judges (each needs enough samples)."""
    return (95.0,) if req.p95 is not None else ()


def _gate(ctx: CheckContext) -> str | None:
    if ctx.target.inference is None:
        return "the target names no inference endpoint (inference.url)"
    return None


def _no_endpoint(ctx: CheckContext, why: str) -> Measurement:
    inf = ctx.target.inference
    return Measurement.failed(why, Evidence(probe="throughput.load", subject=getattr(inf, "url", ctx.target.name),
                                            method="target file (inference)"))


def _workload(ctx: CheckContext) -> Workload:
    from checks.throughput import load

    return load.workload_from_target(ctx.target.inference, ctx.target.endpoints.ca_file, ctx.target.endpoints.resolve)


def steady_duration(req: ThroughputReq, rate_rps: float, cap: float | None) -> tuple[float, str]:
    """The steady phase's length and a note: the profile's duration (capped by the
    target's max_duration_s), lengthened -- within duration_max and the cap -- until each
    judged percentile has the samples a confidence bound needs."""
    from checks.throughput import load

    duration = min(req.duration, cap) if cap else req.duration
    note = (f"; profile duration {fmt_duration(req.duration)} capped to {fmt_duration(duration)} for this target"
            if duration < req.duration else "")
    needed = max((load.samples_needed(p, req.confidence) for p in _percentiles(req)), default=0)
    if needed and rate_rps * duration < needed:
        want = math.ceil(needed / rate_rps * 10) / 10
        allowed = req.duration_max if req.duration_max is not None else req.duration
        allowed = min(allowed, cap) if cap else allowed
        if want <= allowed:
            duration = want
            note += (f"; steady phase lengthened to {fmt_duration(duration)} for the {needed} samples a p95 "
                     f"needs at {req.confidence:.0%} confidence")
        else:
            note += (f"; {fmt_duration(allowed)} allowed (duration_max) is too short for the {needed} samples a "
                     f"p95 needs at this rate")
    return duration, note


def _worker_commands(ctx: CheckContext) -> list[list[str]]:
    from checks.throughput import load

    return [load.local_worker() if w == "local" else shlex.split(w) for w in ctx.target.inference.workers]


def _tier_load(ctx: CheckContext) -> TierLoad | Measurement:
    """The shared run at the tier's rate (apm_min + 2 %) or the baseline rate."""
    why = _gate(ctx)
    if why is not None:
        raise NotApplicable(why)

    def run() -> TierLoad | Measurement:
        from checks.throughput import load

        req, inf = ctx.req, ctx.target.inference
        rate_apm = req.apm_min * (1 + RATE_MARGIN) if req.apm_min else (inf.baseline_apm or DEFAULT_BASELINE_APM)
        try:
            workload = _workload(ctx)
            rate_rps = rate_apm / 60 / workload.mean_analyses
            duration, note = steady_duration(req, rate_rps, inf.max_duration_s)
            plan = load.LoadPlan(rate=rate_rps, steady_s=duration, warmup_s=inf.warmup_s, ramp_s=inf.ramp_s,
                                 connections=inf.connections or 0, confidence=req.confidence,
                                 latency_bound_s=req.p95 if req.p95 else load.DEFAULT_LATENCY_BOUND_S)
        except ValueError as exc:
            return _no_endpoint(ctx, str(exc))
        if inf.workers and rate_rps > inf.pacing_ceiling_rps:
            ctx.progress(f"throughput: {rate_rps:.0f} req/s is above one generator's pacing ceiling "
                         f"({inf.pacing_ceiling_rps:g} req/s): {len(inf.workers)} worker processes")
            result = load.run_distributed(workload, plan, _worker_commands(ctx), cwd=str(ROOT))
        else:
            result = load.run_load(workload, plan, progress=lambda p: ctx.progress(p.line()),
                                   progress_every_s=load.progress_every_s())
        return TierLoad(result, rate_apm, duration, note)

    loaded: TierLoad | Measurement = ctx.memo(("throughput.load",), run)
    return loaded


def _with_data(m: Measurement, **extra: Any) -> Measurement:
    """The measurement with ``extra`` added to its evidence data (report.json keeps it)."""
    ev = dataclasses.replace(m.evidence, data={**(m.evidence.data or {}), **extra})
    return dataclasses.replace(m, evidence=ev)


def _apm(ctx: CheckContext) -> Measurement:
    from checks.throughput import load

    tl = _tier_load(ctx)
    if isinstance(tl, Measurement):
        return tl
    run = tl.run
    m = load.measurements(run).apm
    # C1: the tier's APM is asserted per deployment and reported per inference node.
    nodes = len(ctx.target.hosts_with_role("inference"))
    per_node = round(run.achieved_apm / nodes, 4) if nodes else None
    if m.error is None:
        m = dataclasses.replace(m, display=f"{m.display}{tl.note}"
                                + (f"; {load.fmt_apm(per_node or 0.0)} APM per inference host ({nodes})" if nodes else ""))
    return _with_data(m, inference_hosts=nodes, per_inference_host_apm=per_node, **run.chart_data())


def _errors(ctx: CheckContext) -> Measurement:
    from checks.throughput import load

    tl = _tier_load(ctx)
    return tl if isinstance(tl, Measurement) else load.measurements(tl.run).error_rate


def _p95(ctx: CheckContext) -> Measurement:
    from checks.throughput import load

    tl = _tier_load(ctx)
    if isinstance(tl, Measurement):
        return tl
    m = load.measurements(tl.run, percentiles=_percentiles(ctx.req)).p95
    return _with_data(m, histogram_ms=tl.run.histogram_ms)


def _capacity(ctx: CheckContext) -> Measurement:
    from checks.throughput import load

    why = _gate(ctx)
    if why is not None:
        raise NotApplicable(why)
    req, inf = ctx.req, ctx.target.inference
    start = min(req.apm_min or inf.baseline_apm or DEFAULT_BASELINE_APM, req.capacity_max_apm)
    cap = inf.max_duration_s
    step = min(req.capacity_step, cap) if cap else req.capacity_step
    slo = load.Slo(p95_ms=req.p95 * 1000 if req.p95 else None, error_rate_max=req.error_rate_max)
    try:
        workload = _workload(ctx)
    except ValueError as exc:
        return _no_endpoint(ctx, str(exc))
    result = load.search_capacity(workload, start_apm=start, max_apm=req.capacity_max_apm, slo=slo, step_s=step,
                                  warmup_s=min(inf.warmup_s, step / 2), ramp_s=min(inf.ramp_s, step / 2),
                                  connections=inf.connections or 0, time_budget_s=req.capacity_time_max,
                                  confidence=req.confidence, progress=ctx.progress)
    ev = result.evidence()
    if result.error is not None:
        return Measurement.failed(result.error, ev)
    tier = req.apm_min or start
    headroom = result.capacity_apm / tier if tier else 0.0
    required = req.headroom_min * req.apm_min if req.apm_min else start
    m = Measurement(round(headroom, 4), f"{result.display()}; headroom {headroom:.2f} x {load.fmt_apm(tier)} APM",
                    ev, unit="x")
    return _with_data(m, tier_apm=tier, headroom=round(headroom, 4), required_apm=required)


def _capacity_expected(req: ThroughputReq) -> str:
    from checks.throughput import load

    slo = load.Slo(p95_ms=req.p95 * 1000 if req.p95 else None, error_rate_max=req.error_rate_max)
    if req.apm_min:
        return (f">= {load.fmt_apm(req.headroom_min * req.apm_min)} APM ({req.headroom_min:g} x the tier's "
                f"{load.fmt_apm(req.apm_min)} APM) within {slo.words()}")
    return f">= the baseline rate within {slo.words()}"


def _regression(ctx: CheckContext) -> Measurement:
    from checks.throughput import load

    req = ctx.req
    tl = _tier_load(ctx)
    if isinstance(tl, Measurement):
        return tl
    run = tl.run
    if run.error is not None:
        return load.measurements(run).p95
    inf = ctx.target.inference
    directory = Path(inf.baseline_dir) if inf.baseline_dir else ROOT / "reports" / "baselines"
    path = load.baseline_path(directory, ctx.target.name, ctx.profile_name)
    ev = run.evidence()
    try:
        base = load.read_baseline(path)
    except ValueError as exc:
        return Measurement.failed(str(exc), ev)
    if base is None:
        if run.error_rate > req.error_rate_max:
            return Measurement.failed(f"no baseline recorded: {run.error_rate * 100:.1f}% of the requests failed "
                                      f"(more than {req.error_rate_max * 100:g}%)", ev)
        load.write_baseline(path, run, target=ctx.target.name, profile=ctx.profile_name)
        raise NotApplicable(f"baseline recorded: p95 {load.fmt_ms(run.corrected.p95)} at "
                            f"{load.fmt_apm(run.offered_apm)} APM in {path} (the next run is compared with it)")
    if abs(float(base["rate_apm"]) - run.offered_apm) > 1e-6 * max(1.0, run.offered_apm):
        return Measurement.failed(f"the baseline in {path} was recorded at {base['rate_apm']} APM, this run offered "
                                  f"{load.fmt_apm(run.offered_apm)} APM: delete it to record a new one", ev)
    base_p95 = float(base["p95_ms"])
    change = (run.corrected.p95 / base_p95 - 1) * 100 if base_p95 > 0 else float("inf")
    m = Measurement(round(change, 2), f"p95 {load.fmt_ms(run.corrected.p95)} vs baseline {load.fmt_ms(base_p95)} "
                    f"recorded {base.get('recorded_at', '?')} ({change:+.1f}%)", ev, unit="%")
    return _with_data(m, baseline=base, baseline_file=str(path), p95_ms=round(run.corrected.p95, 3),
                      change_pct=round(change, 2), **run.chart_data())


def _needs_apm_min(ctx: CheckContext) -> str | None:
    return _gate(ctx) or (None if ctx.req.apm_min else
                          "the profile sets no apm_min (baseline mode: latency is compared with the stored baseline "
                          "instead)")


def _needs_p95(ctx: CheckContext) -> str | None:
    return _gate(ctx) or (None if ctx.req.p95 else
                          "the profile sets no p95 limit (latencies are recorded in throughput.apm)")


def _needs_capacity(ctx: CheckContext) -> str | None:
    return _gate(ctx) or (None if ctx.req.capacity_max_apm else
                          "the profile sets no capacity_max_apm (capacity search off)")


def _baseline_mode(ctx: CheckContext) -> str | None:
    return _gate(ctx) or (None if not ctx.req.apm_min else
                          "the profile sets apm_min: the rate is judged against the tier (throughput.apm), not "
                          "against a baseline")


def _fmt_apm(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


FAMILY = Family(
    name="throughput",
    title="throughput of the inference core (disruptive)",
    feature="throughput.feature",
    profile_block=ThroughputReq,
    checks=(
        Check(
            id="throughput.apm",
            title="The inference core sustains the tier's APM",
            severity=Severity.HIGH,
            refs=PERF_REFS,
            measures=("analyses per minute completed successfully under an open-loop constant arrival rate "
                      "(apm_min + 2 %) over the steady phase (golive's generator, coordinated omission corrected)"),
            measure=_apm,
            applies=_needs_apm_min,
            disruptive=True,
            expected=lambda req: (f">= {_fmt_apm(req.apm_min)} APM sustained (offered "
                                  f"{_fmt_apm(req.apm_min * (1 + RATE_MARGIN))} APM)" if req.apm_min else "n/a"),
            passes=lambda req, value: value >= req.apm_min,
            remediation=("add inference capacity (instances or nodes) or make one analysis cheaper; the per-second "
                         "series shows when completions fell behind the offered rate"),
        ),
        Check(
            id="throughput.error_rate",
            title="The error rate under the tier's load is at most the profile's maximum",
            severity=Severity.HIGH,
            refs=PERF_REFS,
            measures="share of the steady phase's requests that failed the target's success rule (checks.request)",
            measure=_errors,
            applies=_gate,
            disruptive=True,
            expected=lambda req: f"<= {req.error_rate_max * 100:g}% of requests fail (the target's success rule)",
            passes=lambda req, value: value <= req.error_rate_max,
            remediation="read the error kinds in the evidence; fix the failing analyses before adding load",
        ),
        Check(
            id="throughput.p95",
            title="The p95 latency under the tier's load is at most the profile's limit",
            severity=Severity.HIGH,
            refs=PERF_REFS,
            measures=("p95 latency from each request's scheduled send time, with its order-statistics confidence "
                      "interval; an error when the steady phase has too few samples for a bound"),
            measure=_p95,
            applies=_needs_p95,
            disruptive=True,
            expected=lambda req: (f"<= {req.p95 * 1000:g} ms p95, measured from the scheduled send time, from at "
                                  f"least the samples a {req.confidence:.0%} bound needs" if req.p95 else "n/a"),
            passes=lambda req, value: value <= req.p95 * 1000,
            remediation=("latency above the limit at this rate: add capacity or reduce per-analysis cost; a corrected "
                         "p95 far above the naive one means requests queued"),
        ),
        Check(
            id="throughput.capacity",
            title="Capacity headroom above the tier's APM",
            severity=Severity.MEDIUM,
            refs=PERF_REFS,
            measures=("the knee: open-loop steps doubling from the tier's rate, then bisection between the last "
                      "good and the first bad rate; the failing criterion is reported"),
            measure=_capacity,
            applies=_needs_capacity,
            disruptive=True,
            expected=_capacity_expected,
            passes=lambda req, headroom: headroom >= (req.headroom_min if req.apm_min else 1.0) - 1e-9,
            remediation="the target saturates below the required headroom: add instances or nodes",
        ),
        Check(
            id="throughput.regression",
            title="Latency has not regressed against the stored baseline",
            severity=Severity.HIGH,
            refs=PERF_REFS,
            measures="p95 latency at the baseline rate compared with the stored baseline of this target and profile",
            measure=_regression,
            applies=_baseline_mode,
            disruptive=True,
            expected=lambda req: f"p95 <= stored baseline + {req.regression_max_pct:g}%",
            passes=lambda req, change: change <= req.regression_max_pct,
            remediation=("find what made the inference core slower since the baseline; delete the baseline file "
                         "to accept the new latency as the baseline"),
        ),
    ),
)
