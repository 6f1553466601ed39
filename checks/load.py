"""Open-loop load generation against the inference endpoint (constant arrival rate).

Why open loop: a closed-loop client (wrk, a pool of users that each wait for their
answer) sends less when the target slows down, so a saturated target is offered less load
and its queueing never shows up in the latency (*coordinated omission*).  Here request
``i`` of a phase is *scheduled* at ``t0 + i / rate`` whatever happened to earlier requests,
and its latency is measured **from the scheduled time** (``corrected``); the latency from
the moment it actually went out on a connection (``naive``, what a closed-loop tool
reports) is recorded next to it.

Model (the wrk2 model): at most ``connections`` requests are in flight on keep-alive
connections; a request that finds every connection busy waits in the generator's own queue,
and that wait counts in its corrected latency (a user would have waited too) but not in
its naive latency.  The default pool is ``rate x latency bound`` (Little's law): when it is
full, the mean latency already exceeds the bound, so the pool never turns a target that
meets its SLO into one that misses it.

Phases: a connection-opening **preflight** request (an unreachable target is an error
at once, not after the whole duration), **warm-up** at a fraction of the rate, a linear
**ramp** to the rate, the **steady** phase (the only one measured), then a bounded
**drain** for requests still in flight.  Total requests and total time are bounded.

What is measured over the steady phase (``LoadRun``): achieved analyses per minute
(the rate at which the steady requests completed successfully -- a least-squares fit over
their completion times, at most their count over the phase's length), success ratio, corrected and naive p50/p95/p99/max, per-second series, a latency
histogram, and the generator's own **dispatch lag** (how late it woke up for each
scheduled request).  When the generator could not keep its own schedule the run has an
``error`` ("the load generator could not keep the schedule") and nothing is blamed on the
target.

aiohttp, not httpx: on these machines httpx cannot hold an open-loop rate (see
docs/throughput.md).  No pytest imports and no pass/fail thresholds here: the steps compare
the measurements with the profile.  Run ``python -m checks.load --help`` for the CLI used by
``benchmarks/bench_load.py``.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import re
import ssl
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import aiohttp

from checks.connection import redact
from golive.model import Evidence, Measurement, utcnow

Phase = Literal["warmup", "ramp", "steady"]
PHASES: tuple[Phase, ...] = ("warmup", "ramp", "steady")
TOOL = f"golive open-loop generator (aiohttp {aiohttp.__version__}, Python {sys.version.split()[0]})"
SCHEDULE_ERROR = "the load generator could not keep the schedule"
#: Dispatch-lag bound: the p99 lag must stay under max(LAG_FRACTION x interval, LAG_FLOOR_S),
#: capped at LAG_CAP_S -- precisely, at most LATE_ALLOWED of the steady requests (and at
#: least one may) are dispatched later than that.  A later dispatch would shift the offered
#: rate and put the generator's own delay into the target's corrected latency.
LAG_FRACTION = 1.0
LAG_FLOOR_S = 0.05
LAG_CAP_S = 0.25
LATE_ALLOWED = 0.01
#: A capacity-search step is sustained when it achieves at least 1 - RATE_TOLERANCE of its rate.
RATE_TOLERANCE = 0.02
DEFAULT_LATENCY_BOUND_S = 2.0
MAX_CONNECTIONS = 512
MAX_REQUESTS = 200_000
MAX_ERROR_KINDS = 20
#: Histogram bucket upper bounds in milliseconds: 12 per decade (x1.21 each), 0.1 ms to 10 min.
HISTOGRAM_BOUNDS_MS: tuple[float, ...] = tuple(float(f"{10 ** (k / 12):.3g}") for k in range(-12, 69))


# ----------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class RequestSpec:
    """The request to send and what counts as a success.

    Success = HTTP ``expect_status`` and, when ``success_field`` is set, the JSON body's
    field (dotted path, ``result.status``) equal to ``success_value`` (or merely truthy when
    ``success_value`` is None) -- so a 200 with ``{"status": "error"}`` is not a success.
    """

    url: str
    method: str = "POST"
    body: bytes | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    expect_status: int = 200
    success_field: str | None = None
    success_value: Any = None
    ca_file: str | None = None
    timeout_s: float = 30.0

    @property
    def shown_url(self) -> str:
        return redact(self.url)

    def success_words(self) -> str:
        text = f"HTTP {self.expect_status}"
        if self.success_field:
            text += (f" and JSON {self.success_field} == {self.success_value!r}" if self.success_value is not None
                     else f" and JSON {self.success_field} present and true")
        return text


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """How hard and how long: ``rate`` requests per second in the steady phase.

    ``connections=0`` picks ``ceil(rate x latency_bound_s) + 2`` (at most 512).
    ``drain_s`` bounds the wait for in-flight requests after the last one is scheduled
    (default: the request timeout).  ``max_requests`` bounds the whole run: the steady phase
    is shortened to fit (``LoadRun.truncated``).
    """

    rate: float
    steady_s: float
    warmup_s: float = 2.0
    ramp_s: float = 2.0
    warmup_fraction: float = 0.25
    connections: int = 0
    latency_bound_s: float = DEFAULT_LATENCY_BOUND_S
    drain_s: float | None = None
    max_requests: int = MAX_REQUESTS

    def __post_init__(self) -> None:
        if not self.rate > 0 or not math.isfinite(self.rate):
            raise ValueError(f"rate must be a positive number of requests per second, not {self.rate!r}")
        if self.steady_s <= 0:
            raise ValueError("steady_s must be positive")
        if self.warmup_s < 0 or self.ramp_s < 0:
            raise ValueError("warmup_s and ramp_s must not be negative")
        if not 0 < self.warmup_fraction <= 1:
            raise ValueError("warmup_fraction must be in (0, 1]")
        if self.max_requests < 1:
            raise ValueError("max_requests must be at least 1")

    @property
    def pool_size(self) -> int:
        if self.connections > 0:
            return min(self.connections, MAX_CONNECTIONS)
        return max(4, min(MAX_CONNECTIONS, math.ceil(self.rate * self.latency_bound_s) + 2))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Scheduled send times (seconds after t0) and their phases."""

    offsets: list[float]
    phases: list[Phase]
    steady_start: float
    steady_count: int
    steady_s: float
    truncated: bool

    @property
    def end(self) -> float:
        return self.offsets[-1] if self.offsets else 0.0


def build_schedule(plan: LoadPlan) -> Schedule:
    """Arrival times: warm-up at ``warmup_fraction x rate``, a linear ramp to ``rate``, then
    exactly ``round(rate x steady_s)`` steady arrivals at ``steady_start + i / rate``.

    In the ramp the cumulative count is ``r0 t + (r1 - r0) t^2 / 2R``; arrival k is where it
    reaches k (solved in closed form), so the rate rises smoothly with no burst.
    """
    r1 = plan.rate
    r0 = r1 * plan.warmup_fraction
    offsets: list[float] = []
    phases: list[Phase] = []
    w = plan.warmup_s
    if w > 0:
        n = math.ceil(w * r0 - 1e-9)
        offsets += [i / r0 for i in range(n)]
        phases += ["warmup"] * n
    ramp = plan.ramp_s
    if ramp > 0:
        a = (r1 - r0) / (2 * ramp)
        total = r0 * ramp + a * ramp * ramp  # arrivals in the whole ramp
        k = 0
        while k < total - 1e-9:
            if a == 0:
                t = k / r0
            else:
                t = (-r0 + math.sqrt(r0 * r0 + 4 * a * k)) / (2 * a)
            offsets.append(w + t)
            phases.append("ramp")
            k += 1
    start = w + ramp
    budget = plan.max_requests - len(offsets)
    if budget < 1:
        raise ValueError(f"max_requests={plan.max_requests} leaves no request for the steady phase")
    count = max(1, round(r1 * plan.steady_s))
    truncated = count > budget
    count = min(count, budget)
    offsets += [start + i / r1 for i in range(count)]
    phases += ["steady"] * count
    return Schedule(offsets, phases, start, count, count / r1, truncated)


# ----------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the smallest value with at least p% of values <= it)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclasses.dataclass(frozen=True)
class LatencySummary:
    """Milliseconds; ``count`` values (NaN everywhere when there are none)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        values = sorted(s * 1000.0 for s in seconds)
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99),
                   values[-1], sum(values) / len(values))

    def to_dict(self) -> dict[str, float | int | None]:
        def r(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 3)
        return {"count": self.count, "p50": r(self.p50), "p95": r(self.p95), "p99": r(self.p99),
                "max": r(self.max), "mean": r(self.mean)}

    def words(self) -> str:
        if not self.count:
            return "no samples"
        return f"p50 {fmt_ms(self.p50)}, p95 {fmt_ms(self.p95)}, p99 {fmt_ms(self.p99)}, max {fmt_ms(self.max)}"


NO_SAMPLES = LatencySummary.of([])


def fmt_ms(ms: float) -> str:
    if math.isnan(ms):
        return "n/a"
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def fmt_apm(apm: float) -> str:
    return f"{apm:.3g}" if apm < 100 else f"{apm:.0f}"


def histogram(ms_values: Sequence[float]) -> list[list[float]]:
    """``[[upper_bound_ms, count], ...]`` over fixed log buckets, trimmed to the occupied
    range; values above the last bound land in a final bucket whose bound is the maximum."""
    if not ms_values:
        return []
    counts = [0] * (len(HISTOGRAM_BOUNDS_MS) + 1)
    bounds = HISTOGRAM_BOUNDS_MS
    for v in ms_values:
        lo, hi = 0, len(bounds)
        while lo < hi:  # first bound >= v
            mid = (lo + hi) // 2
            if bounds[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        counts[lo] += 1
    uppers = [*bounds, round(max(ms_values), 3)]
    used = [i for i, c in enumerate(counts) if c]
    return [[uppers[i], counts[i]] for i in range(used[0], used[-1] + 1)]


# ----------------------------------------------------------------------------- one request


@dataclasses.dataclass(slots=True)
class Record:
    """One scheduled request (perf_counter seconds)."""

    scheduled: float
    phase: Phase
    issued: float = math.nan  # when the scheduler woke up for it
    sent: float = math.nan  # when it got a connection and went out
    done: float = math.nan  # when the whole answer was read (NaN: never)
    status: int | None = None
    error: str | None = None  # None = success (once done)

    @property
    def completed(self) -> bool:
        return not math.isnan(self.done)

    @property
    def ok(self) -> bool:
        return self.completed and self.error is None


def _field(doc: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return False, None
    return True, doc


def judge_response(spec: RequestSpec, status: int, body: bytes) -> str | None:
    """None when the answer is a success, else the kind of failure (no body content
    beyond the success field's value, shortened)."""
    if status != spec.expect_status:
        return f"HTTP {status}"
    if not spec.success_field:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return "body is not JSON"
    found, value = _field(doc, spec.success_field)
    if not found:
        return f"body has no {spec.success_field}"
    if spec.success_value is None:
        return None if value else f"body {spec.success_field}={_short(value)}"
    return None if value == spec.success_value else f"body {spec.success_field}={_short(value)}"


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _client_error(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timeout after {timeout_s:g} s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not trusted: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"TLS handshake failed: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientError):
        return f"{type(exc).__name__}: {exc}"[:200]
    return f"{type(exc).__name__}: {exc}"[:200]


# ----------------------------------------------------------------------------- the result


@dataclasses.dataclass(frozen=True)
class Progress:
    """A snapshot for the progress display."""

    elapsed_s: float
    total_s: float
    phase: str
    offered_rate: float
    sent: int
    ok: int
    errors: int
    in_flight: int
    queued: int
    p95_ms: float

    def line(self) -> str:
        return (f"throughput: {self.elapsed_s:5.1f}/{self.total_s:.0f} s {self.phase:<7} offered "
                f"{fmt_apm(self.offered_rate * 60)} APM | sent {self.sent} ok {self.ok} errors {self.errors} "
                f"| in flight {self.in_flight} queued {self.queued} | p95 so far {fmt_ms(self.p95_ms)}")


ProgressFn = Callable[[Progress], None]


@dataclasses.dataclass
class LoadRun:
    """Everything one run measured; ``error`` set when nothing valid was measured."""

    url: str
    method: str
    success: str
    plan: LoadPlan
    connections: int
    started_at: str
    error: str | None = None
    duration_s: float = 0.0
    steady_s: float = 0.0
    truncated: bool = False
    planned: int = 0
    steady: int = 0
    ok: int = 0
    incomplete: int = 0
    total_sent: int = 0
    total_completed: int = 0
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    achieved_rate: float = 0.0
    completed_in_window_rate: float = 0.0
    dispatched_rate: float = 0.0
    corrected: LatencySummary = NO_SAMPLES
    naive: LatencySummary = NO_SAMPLES
    lag: LatencySummary = NO_SAMPLES
    client_wait: LatencySummary = NO_SAMPLES
    lag_limit_ms: float = 0.0
    late: int = 0
    preflight_ms: float = math.nan
    generator_cpu_s: float = 0.0
    series: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    histogram_ms: list[list[float]] = dataclasses.field(default_factory=list)
    #: The steady phase on this process's time.perf_counter() clock (for peers measuring alongside).
    steady_window: tuple[float, float] = (math.nan, math.nan)
    #: First and last successful completion of a steady request, same clock.
    completion_window: tuple[float, float] = (math.nan, math.nan)

    @property
    def offered_rate(self) -> float:
        return self.plan.rate

    @property
    def offered_apm(self) -> float:
        return self.plan.rate * 60

    @property
    def achieved_apm(self) -> float:
        return self.achieved_rate * 60

    @property
    def error_rate(self) -> float:
        return 1.0 - self.ok / self.steady if self.steady else 1.0

    @property
    def success_ratio(self) -> float:
        return self.ok / self.steady if self.steady else 0.0

    def method_words(self) -> str:
        p = self.plan
        return (f"open-loop constant arrival rate: {self.method} {self.url} at {p.rate:.4g} req/s "
                f"({fmt_apm(self.offered_apm)} APM) for {self.steady_s:.3g} s steady after {p.warmup_s:g} s warm-up "
                f"and {p.ramp_s:g} s ramp; {self.connections} keep-alive connections; success = {self.success}; "
                "latency from the scheduled send time (coordinated omission corrected)")

    def summary(self) -> dict[str, Any]:
        """Everything but the series and histogram (evidence data)."""
        return {
            "url": self.url, "method": self.method, "success": self.success, "started_at": self.started_at,
            "error": self.error, "duration_s": round(self.duration_s, 3),
            "phases": {"warmup_s": self.plan.warmup_s, "ramp_s": self.plan.ramp_s, "steady_s": self.steady_s,
                       "warmup_fraction": self.plan.warmup_fraction},
            "truncated": self.truncated, "connections": self.connections,
            "offered_apm": round(self.offered_apm, 4), "achieved_apm": round(self.achieved_apm, 4),
            "completed_in_window_apm": round(self.completed_in_window_rate * 60, 4),
            "dispatched_apm": round(self.dispatched_rate * 60, 4),
            "requests": {"planned": self.planned, "steady": self.steady, "ok": self.ok,
                         "failed": self.steady - self.ok, "incomplete": self.incomplete,
                         "sent_all_phases": self.total_sent, "completed_all_phases": self.total_completed},
            "success_ratio": round(self.success_ratio, 6), "error_rate": round(self.error_rate, 6),
            "errors": dict(self.errors),
            "latency_ms": {"corrected": self.corrected.to_dict(), "naive": self.naive.to_dict()},
            "dispatch_lag_ms": self.lag.to_dict(), "dispatch_lag_limit_ms": round(self.lag_limit_ms, 3),
            "dispatched_late": self.late,
            "client_queue_wait_ms": self.client_wait.to_dict(),
            "preflight_ms": None if math.isnan(self.preflight_ms) else round(self.preflight_ms, 3),
            "generator_cpu_s": round(self.generator_cpu_s, 3),
        }

    def chart_data(self) -> dict[str, Any]:
        """What the report charts: per-second series and the latency histogram."""
        return {"series": self.series, "histogram_ms": self.histogram_ms}

    def raw(self) -> str:
        top = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items(), key=lambda kv: -kv[1])[:5])
        lines = [
            f"steady {self.steady_s:.3g} s: {self.steady} requests, {self.ok} ok, {self.steady - self.ok} failed"
            + (f" ({top})" if top else ""),
            (f"offered {fmt_apm(self.offered_apm)} APM, dispatched {fmt_apm(self.dispatched_rate * 60)} APM, "
             f"achieved {fmt_apm(self.achieved_apm)} APM"),
            f"latency corrected: {self.corrected.words()}",
            f"latency naive:     {self.naive.words()}",
            (f"dispatch lag: {self.lag.words()} (limit p99 {fmt_ms(self.lag_limit_ms)}); "
             f"generator CPU {self.generator_cpu_s:.2f} s"),
        ]
        if self.error:
            lines.insert(0, f"error: {self.error}")
        return "\n".join(lines)

    def evidence(self, probe: str = "throughput.load") -> Evidence:
        return Evidence(probe=probe, subject=self.url, method=self.method_words(), tool=TOOL, raw=self.raw(),
                        duration_s=round(self.duration_s, 3), data=self.summary())


# ----------------------------------------------------------------------------- the engine


def _ssl_context(spec: RequestSpec) -> ssl.SSLContext | bool:
    if urllib.parse.urlsplit(spec.url).scheme != "https":
        return False
    return ssl.create_default_context(cafile=spec.ca_file) if spec.ca_file else ssl.create_default_context()


class _Engine:
    def __init__(self, spec: RequestSpec, plan: LoadPlan, progress: ProgressFn | None,
                 progress_every_s: float) -> None:
        self.spec = spec
        self.plan = plan
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.records: list[Record] = []
        self.in_flight = 0
        self.t0 = 0.0
        self.headers = dict(spec.headers)

    async def _send(self, session: aiohttp.ClientSession, slots: asyncio.Semaphore, rec: Record) -> None:
        spec = self.spec
        async with slots:
            rec.sent = time.perf_counter()
            self.in_flight += 1
            try:
                async with session.request(spec.method, spec.url, data=spec.body, headers=self.headers,
                                           allow_redirects=False) as resp:
                    body = await resp.read()
                    rec.done = time.perf_counter()
                    rec.status = resp.status
                    rec.error = judge_response(spec, resp.status, body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- every client failure is an outcome of this request
                rec.done = time.perf_counter()
                rec.error = _client_error(exc, spec.timeout_s)
            finally:
                self.in_flight -= 1

    async def _report(self, schedule: Schedule, total_s: float) -> None:
        assert self.progress is not None
        while True:
            await asyncio.sleep(self.progress_every_s)
            now = time.perf_counter()
            recs = self.records
            measured = sorted(r.done - r.scheduled for r in recs if r.phase != "warmup" and r.completed)
            ok = sum(1 for r in recs if r.ok)
            done = sum(1 for r in recs if r.completed)
            elapsed = now - self.t0
            phase = _phase_at(elapsed, self.plan, schedule)
            sent = sum(1 for r in recs if not math.isnan(r.sent))
            try:
                self.progress(Progress(elapsed, total_s, phase, self.plan.rate, len(recs), ok, done - ok,
                                       self.in_flight, len(recs) - sent, percentile(measured, 95) * 1000))
            except Exception:  # noqa: BLE001, S110 -- a broken display never stops the measurement
                pass

    async def run(self) -> LoadRun:
        spec, plan = self.spec, self.plan
        schedule = build_schedule(plan)
        pool = plan.pool_size
        run = LoadRun(url=spec.shown_url, method=spec.method, success=spec.success_words(), plan=plan,
                      connections=pool, started_at=utcnow(), steady_s=schedule.steady_s,
                      truncated=schedule.truncated, planned=schedule.steady_count)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        try:
            ssl_ctx = _ssl_context(spec)
        except (OSError, ssl.SSLError) as exc:
            run.error = f"cannot load CA file {spec.ca_file}: {exc}"
            return run
        connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool, ssl=ssl_ctx, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        drain_s = plan.drain_s if plan.drain_s is not None else spec.timeout_s
        # No cookies: every request stands alone (no session affinity the real clients may lack).
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                         cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent",),
                                         headers={"User-Agent": "golive-load"}) as session:
            slots = asyncio.Semaphore(pool)
            pre = Record(scheduled=time.perf_counter(), phase="warmup")
            pre.issued = pre.scheduled
            await self._send(session, slots, pre)
            run.preflight_ms = (pre.done - pre.sent) * 1000
            if pre.status is None:
                run.error = f"no HTTP answer from {spec.shown_url}: {pre.error}"
                run.duration_s = time.perf_counter() - wall0
                return run
            self.t0 = t0 = time.perf_counter() + 0.01
            reporter = (asyncio.create_task(self._report(schedule, schedule.end))
                        if self.progress is not None and self.progress_every_s > 0 else None)
            tasks: list[asyncio.Task[None]] = []
            behind = 0
            try:
                for offset, phase in zip(schedule.offsets, schedule.phases):
                    due = t0 + offset
                    delay = due - time.perf_counter()
                    if delay > 0:
                        behind = 0
                        await asyncio.sleep(delay)
                    else:
                        behind += 1
                        if behind % 32 == 0:
                            await asyncio.sleep(0)  # let requests run while catching up
                    rec = Record(scheduled=due, phase=phase, issued=time.perf_counter())
                    self.records.append(rec)
                    tasks.append(asyncio.create_task(self._send(session, slots, rec)))
                deadline = t0 + schedule.end + drain_s
                pending: set[asyncio.Task[None]] = set(tasks)
                if tasks:
                    _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
                end = time.perf_counter()
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
            finally:
                if reporter is not None:
                    reporter.cancel()
                    await asyncio.gather(reporter, return_exceptions=True)
                for task in tasks:
                    if not task.done():
                        task.cancel()
        run.generator_cpu_s = time.process_time() - cpu0
        run.duration_s = time.perf_counter() - wall0
        _analyse(run, self.records, schedule, t0, end)
        return run


def _event_rate(times: list[float], fallback_s: float) -> float:
    """The rate at which events happened: 1 / the least-squares slope of their sorted times
    against their rank (every event weighs in, so one slow first or last answer barely moves
    it); ``n / fallback_s`` for fewer than three events."""
    n = len(times)
    if n >= 3:
        ts = sorted(times)
        mean_i, mean_t = (n - 1) / 2, sum(ts) / n
        slope = (sum((i - mean_i) * (t - mean_t) for i, t in enumerate(ts))
                 / sum((i - mean_i) ** 2 for i in range(n)))
        if slope > 0:
            return 1 / slope
    return n / fallback_s if fallback_s > 0 else 0.0


def _analyse(run: LoadRun, recs: list[Record], schedule: Schedule, t0: float, end: float) -> None:
    steady = [r for r in recs if r.phase == "steady"]
    run.steady = len(steady)
    run.ok = sum(1 for r in steady if r.ok)
    run.incomplete = sum(1 for r in steady if not r.completed)
    run.total_sent = sum(1 for r in recs if not math.isnan(r.sent))
    run.total_completed = sum(1 for r in recs if r.completed)
    kinds: Counter[str] = Counter()
    for r in steady:
        if not r.ok:
            kinds[r.error if r.completed and r.error else f"not completed within the drain ({end - t0 - schedule.end:.1f} s)"] += 1
    run.errors = dict(kinds.most_common(MAX_ERROR_KINDS))
    # Successful completions per second, never more than the steady phase's successes over its
    # length (failures bunched at the end must not leave a fast-looking head).
    run.achieved_rate = min(_event_rate([r.done for r in steady if r.ok], schedule.steady_s),
                            run.ok / schedule.steady_s)
    run.dispatched_rate = _event_rate([r.issued for r in steady], schedule.steady_s)
    s_start, s_end = t0 + schedule.steady_start, t0 + schedule.steady_start + schedule.steady_s
    run.steady_window = (s_start, s_end)
    done_ok = [r.done for r in steady if r.ok]
    run.completion_window = (min(done_ok), max(done_ok)) if done_ok else (math.nan, math.nan)
    run.completed_in_window_rate = sum(1 for r in recs if r.ok and s_start <= r.done < s_end) / schedule.steady_s
    # Incomplete requests count at their censored latency (at least this long): never dropped.
    corrected = [(r.done if r.completed else end) - r.scheduled for r in steady]
    run.corrected = LatencySummary.of(corrected)
    run.naive = LatencySummary.of([(r.done if r.completed else end) - r.sent for r in steady if not math.isnan(r.sent)])
    run.lag = LatencySummary.of([r.issued - r.scheduled for r in steady])
    run.client_wait = LatencySummary.of([r.sent - r.issued for r in steady if not math.isnan(r.sent)])
    interval = 1.0 / run.plan.rate
    run.lag_limit_ms = min(max(LAG_FRACTION * interval, LAG_FLOOR_S), LAG_CAP_S) * 1000
    run.late = sum(1 for r in steady if (r.issued - r.scheduled) * 1000 > run.lag_limit_ms)
    run.histogram_ms = histogram([c * 1000 for c in corrected])
    run.series = _series(recs, t0, end, run.plan, schedule)
    if run.steady < run.planned:
        run.error = f"{SCHEDULE_ERROR}: only {run.steady} of {run.planned} steady requests were dispatched"
    elif run.late > max(1, math.floor(LATE_ALLOWED * run.steady)):
        run.error = (f"{SCHEDULE_ERROR}: {run.late} of {run.steady} requests dispatched more than "
                     f"{fmt_ms(run.lag_limit_ms)} late (p99 dispatch lag {fmt_ms(run.lag.p99)}, interval "
                     f"{fmt_ms(interval * 1000)}); the checking host is too busy -- nothing is blamed on the target")


def _series(recs: list[Record], t0: float, end: float, plan: LoadPlan,
            schedule: Schedule) -> list[dict[str, Any]]:
    seconds = max(1, math.ceil(end - t0))
    ok = [0] * seconds
    err = [0] * seconds
    sent = [0] * seconds
    lat: list[list[float]] = [[] for _ in range(seconds)]
    for r in recs:
        if not math.isnan(r.issued):
            sent[min(seconds - 1, max(0, int(r.issued - t0)))] += 1
        when = r.done if r.completed else end
        i = min(seconds - 1, max(0, int(when - t0)))
        (ok if r.ok else err)[i] += 1
        lat[i].append((when - r.scheduled) * 1000)
    out: list[dict[str, Any]] = []
    for i in range(seconds):
        phase = _phase_at(i + 0.5, plan, schedule)
        p95 = percentile(sorted(lat[i]), 95)
        out.append({"t": i, "phase": phase, "sent": sent[i], "ok": ok[i], "err": err[i],
                    "p95_ms": None if math.isnan(p95) else round(p95, 3)})
    return out


def _phase_at(elapsed: float, plan: LoadPlan, schedule: Schedule) -> str:
    if elapsed < plan.warmup_s:
        return "warmup"
    if elapsed < schedule.steady_start:
        return "ramp"
    if elapsed < schedule.steady_start + schedule.steady_s:
        return "steady"
    return "drain"


async def run_load_async(spec: RequestSpec, plan: LoadPlan, progress: ProgressFn | None = None,
                         progress_every_s: float = 5.0) -> LoadRun:
    """Run one load test in the running event loop (see :func:`run_load`)."""
    engine = _Engine(spec, plan, progress, progress_every_s)
    schedule_end = build_schedule(plan).end
    drain = plan.drain_s if plan.drain_s is not None else spec.timeout_s
    hard_cap = spec.timeout_s + schedule_end + drain + 10.0  # preflight + schedule + drain + slack
    try:
        return await asyncio.wait_for(engine.run(), timeout=hard_cap)
    except TimeoutError:
        run = LoadRun(url=spec.shown_url, method=spec.method, success=spec.success_words(), plan=plan,
                      connections=plan.pool_size, started_at=utcnow(), duration_s=hard_cap)
        run.error = f"the load run did not finish within its hard bound of {hard_cap:.0f} s"
        return run


def run_load(spec: RequestSpec, plan: LoadPlan, progress: ProgressFn | None = None,
             progress_every_s: float = 5.0) -> LoadRun:
    """Run one bounded load test and return what it measured (never raises for target
    failures: they are outcomes, or ``LoadRun.error`` when nothing could be measured)."""
    return asyncio.run(run_load_async(spec, plan, progress, progress_every_s))


# ----------------------------------------------------------------------------- measurements


@dataclasses.dataclass(frozen=True)
class ThroughputMeasurements:
    """The three judged values of one run, sharing one evidence record."""

    apm: Measurement
    p95: Measurement
    error_rate: Measurement
    run: LoadRun


def measurements(run: LoadRun) -> ThroughputMeasurements:
    ev = run.evidence()
    if run.error is not None:
        failed = Measurement.failed(run.error, ev)
        return ThroughputMeasurements(failed, failed, failed, run)
    apm = Measurement(round(run.achieved_apm, 4),
                      f"{fmt_apm(run.achieved_apm)} APM achieved (offered {fmt_apm(run.offered_apm)} APM, "
                      f"{run.ok} of {run.steady} requests ok over {run.steady_s:.3g} s)", ev, unit="APM")
    p95 = Measurement(round(run.corrected.p95, 3),
                      f"p95 {fmt_ms(run.corrected.p95)} (from the scheduled send; naive {fmt_ms(run.naive.p95)}; "
                      f"p99 {fmt_ms(run.corrected.p99)})", ev, unit="ms")
    top = max(run.errors.items(), key=lambda kv: kv[1])[0] if run.errors else ""
    err = Measurement(round(run.error_rate, 6),
                      f"{run.error_rate * 100:.2f}% failed ({run.steady - run.ok} of {run.steady}; success ratio "
                      f"{run.success_ratio * 100:.2f}%)" + (f"; most frequent: {top}" if top else ""),
                      ev, unit="ratio")
    return ThroughputMeasurements(apm, p95, err, run)


def request_spec_from_target(inference: Any, ca_file: str | None) -> RequestSpec:
    """A :class:`RequestSpec` from a target's ``inference`` section (golive.target.InferenceSpec).
    Raises ValueError for an unreadable ``body_file``."""
    headers = dict(inference.headers)
    body: bytes | None = None
    if inference.body_file:
        try:
            body = Path(inference.body_file).expanduser().read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read inference.body_file {inference.body_file}: {exc.strerror}") from None
    elif inference.body is not None:
        body = json.dumps(inference.body).encode()
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return RequestSpec(url=inference.url, method=inference.method, body=body, headers=headers,
                       expect_status=inference.expect_status, success_field=inference.success_field,
                       success_value=inference.success_value, ca_file=ca_file,
                       timeout_s=float(getattr(inference, "timeout_s", 30.0)))


# ----------------------------------------------------------------------------- capacity search


@dataclasses.dataclass(frozen=True)
class Slo:
    """What "sustained" means for one step of the capacity search."""

    p95_ms: float | None
    error_rate_max: float
    min_achieved_ratio: float = 1 - RATE_TOLERANCE

    def judge(self, run: LoadRun) -> tuple[bool, str]:
        why = []
        if run.error_rate > self.error_rate_max:
            why.append(f"errors {run.error_rate * 100:.1f}% > {self.error_rate_max * 100:g}%")
        if self.p95_ms is not None and run.corrected.p95 > self.p95_ms:
            why.append(f"p95 {fmt_ms(run.corrected.p95)} > {fmt_ms(self.p95_ms)}")
        if run.achieved_rate < self.min_achieved_ratio * run.plan.rate:
            why.append(f"achieved {fmt_apm(run.achieved_apm)} < {self.min_achieved_ratio:.0%} of offered")
        return (not why, "; ".join(why) or "within the SLO")

    def words(self) -> str:
        parts = [f"errors <= {self.error_rate_max * 100:g}%", f"achieved >= {self.min_achieved_ratio:.0%} of offered"]
        if self.p95_ms is not None:
            parts.insert(0, f"p95 <= {fmt_ms(self.p95_ms)}")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class CapacityStep:
    rate_apm: float
    sustained: bool
    why: str
    achieved_apm: float
    p95_ms: float
    error_rate: float

    def to_dict(self) -> dict[str, Any]:
        return {"rate_apm": round(self.rate_apm, 3), "sustained": self.sustained, "why": self.why,
                "achieved_apm": round(self.achieved_apm, 3),
                "p95_ms": None if math.isnan(self.p95_ms) else round(self.p95_ms, 3),
                "error_rate": round(self.error_rate, 6)}


@dataclasses.dataclass
class CapacityResult:
    """``capacity_apm``: the highest rate that met the SLO (0 when none did);
    ``failed_apm``: the lowest rate that did not (None when none failed)."""

    start_apm: float
    max_apm: float
    slo: Slo
    steps: list[CapacityStep] = dataclasses.field(default_factory=list)
    capacity_apm: float = 0.0
    failed_apm: float | None = None
    stopped: str = ""
    error: str | None = None
    duration_s: float = 0.0
    url: str = ""

    @property
    def bound_hit(self) -> bool:
        return self.failed_apm is None and self.capacity_apm >= self.max_apm

    def display(self) -> str:
        if self.capacity_apm <= 0:
            low = min((s.rate_apm for s in self.steps), default=self.start_apm)
            return f"< {fmt_apm(low)} APM (even the lowest rate tried missed the SLO)"
        if self.bound_hit:
            return f">= {fmt_apm(self.capacity_apm)} APM (the search's upper bound)"
        hi = f", fails at {fmt_apm(self.failed_apm)} APM" if self.failed_apm else ""
        return f"{fmt_apm(self.capacity_apm)} APM sustained{hi}"

    def to_dict(self) -> dict[str, Any]:
        return {"capacity_apm": round(self.capacity_apm, 3),
                "failed_apm": None if self.failed_apm is None else round(self.failed_apm, 3),
                "start_apm": self.start_apm, "max_apm": self.max_apm, "slo": self.slo.words(),
                "stopped": self.stopped, "error": self.error, "duration_s": round(self.duration_s, 3),
                "steps": [s.to_dict() for s in self.steps]}

    def evidence(self) -> Evidence:
        lines = [f"{s.rate_apm:10.1f} APM: {'sustained' if s.sustained else 'missed   '} "
                 f"(achieved {fmt_apm(s.achieved_apm)} APM, p95 {fmt_ms(s.p95_ms)}, errors {s.error_rate * 100:.1f}%)"
                 + ("" if s.sustained else f" -- {s.why}") for s in self.steps]
        return Evidence(probe="throughput.capacity", subject=self.url,
                        method=(f"capacity search: open-loop steps from {fmt_apm(self.start_apm)} APM, doubling up "
                                f"to {fmt_apm(self.max_apm)} APM, then bisection; a step is sustained when "
                                f"{self.slo.words()}"),
                        tool=TOOL, raw="\n".join(lines + [f"stopped: {self.stopped}"]),
                        duration_s=round(self.duration_s, 3), data=self.to_dict())


def search_capacity(spec: RequestSpec, *, start_apm: float, max_apm: float, slo: Slo, step_s: float,
                    warmup_s: float = 1.0, ramp_s: float = 1.0, connections: int = 0,
                    time_budget_s: float = 120.0, max_steps: int = 12, precision: float = 0.1,
                    min_fraction: float = 1 / 8,
                    progress: Callable[[str], None] | None = None) -> CapacityResult:
    """Highest rate (APM) the target sustains within ``slo``: double from ``start_apm``
    (halve when it already fails, down to ``min_fraction x start_apm``) until bracketed, then
    bisect until the bracket is within ``precision``; bounded by ``max_apm``, ``max_steps``
    and ``time_budget_s``.  A miss during the bisection is confirmed by running that rate
    once more.  After a missed step the target gets a bounded cool-down (until a single
    request is fast again)."""
    if start_apm <= 0 or max_apm < start_apm:
        raise ValueError("need 0 < start_apm <= max_apm")
    result = CapacityResult(start_apm=start_apm, max_apm=max_apm, slo=slo, url=spec.shown_url)
    began = time.monotonic()
    lo: float | None = None
    hi: float | None = None
    rate = start_apm
    reference_ms = math.inf
    retried: set[float] = set()
    while True:
        if len(result.steps) >= max_steps:
            result.stopped = f"step limit ({max_steps})"
            break
        if result.steps and time.monotonic() - began + step_s + warmup_s + ramp_s > time_budget_s:
            result.stopped = f"time budget ({time_budget_s:g} s)"
            break
        bound = slo.p95_ms / 1000 if slo.p95_ms is not None else DEFAULT_LATENCY_BOUND_S
        plan = LoadPlan(rate=rate / 60, steady_s=step_s, warmup_s=warmup_s, ramp_s=ramp_s,
                        connections=connections, latency_bound_s=bound,
                        drain_s=min(spec.timeout_s, max(2.0, step_s)))
        run = run_load(spec, plan, progress=None)
        if run.error is not None:
            result.error = run.error
            result.stopped = "error"
            break
        ok, why = slo.judge(run)
        result.steps.append(CapacityStep(rate, ok, why, run.achieved_apm, run.corrected.p95, run.error_rate))
        if progress is not None:
            progress(f"capacity: {fmt_apm(rate)} APM {'sustained' if ok else 'missed'} ({why})")
        if not result.steps[:-1]:
            reference_ms = run.preflight_ms  # one request on a fresh connection, before any load
        if not ok and lo is not None and hi is not None and lo < rate < hi and rate not in retried:
            # A miss inside the bracket is run once more: one hiccup of a busy host must not
            # move the answer down by half the bracket.
            retried.add(rate)
            _cool_down(spec, reference_ms)
            continue
        if ok:
            lo = rate
        else:
            hi = rate
            _cool_down(spec, reference_ms)
        if lo is not None and hi is not None:
            if hi / lo - 1 <= precision:
                result.stopped = f"bracket within {precision:.0%}"
                break
            rate = (lo + hi) / 2
        elif lo is not None:
            if lo >= max_apm:
                result.stopped = "upper bound reached"
                break
            rate = min(lo * 2, max_apm)
        else:
            rate = rate / 2
            if rate < start_apm * min_fraction:
                result.stopped = f"no sustainable rate down to {fmt_apm(start_apm * min_fraction)} APM"
                break
    result.capacity_apm = lo or 0.0
    result.failed_apm = hi
    result.duration_s = time.monotonic() - began
    return result


async def _probe_once_async(spec: RequestSpec) -> tuple[float, str | None]:
    connector = aiohttp.TCPConnector(limit=1, ssl=_ssl_context(spec))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=spec.timeout_s),
                                     trust_env=False) as session:
        rec = Record(scheduled=time.perf_counter(), phase="warmup")
        engine = _Engine(spec, LoadPlan(rate=1, steady_s=1), None, 0)
        await engine._send(session, asyncio.Semaphore(1), rec)
        return (rec.done - rec.sent) * 1000, rec.error


def probe_once(spec: RequestSpec) -> tuple[float, str | None]:
    """One request on a fresh connection: (latency in ms, failure kind or None)."""
    return asyncio.run(_probe_once_async(spec))


def _cool_down(spec: RequestSpec, reference_ms: float, max_s: float = 10.0) -> None:
    """Wait (bounded) until one request is answered about as fast as before the search,
    so a backlog left by an overloaded step does not count against the next one."""
    limit = 1.5 * reference_ms + 20
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        latency_ms, _ = probe_once(spec)
        if latency_ms <= limit:
            return
        time.sleep(0.2)


# ----------------------------------------------------------------------------- baselines


BASELINE_SCHEMA = "golive-baseline/1"


def baseline_path(directory: str | Path, target: str, profile: str) -> Path:
    """Where the baseline of ``target`` under ``profile`` is stored (one JSON file each)."""
    def safe(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", s)
    return Path(directory) / f"{safe(target)}__{safe(profile)}.json"


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The stored baseline, None when there is none; ValueError when it is unreadable."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"baseline {path} is unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA or "p95_ms" not in data:
        raise ValueError(f"baseline {path} is not a {BASELINE_SCHEMA} file; delete it to record a new one")
    return data


def write_baseline(path: Path, run: LoadRun, *, target: str, profile: str) -> dict[str, Any]:
    data = {"schema": BASELINE_SCHEMA, "target": target, "profile": profile, "recorded_at": utcnow(),
            "url": run.url, "rate_apm": round(run.offered_apm, 6), "steady_s": run.steady_s,
            "requests": run.steady, "p50_ms": round(run.corrected.p50, 3), "p95_ms": round(run.corrected.p95, 3),
            "p99_ms": round(run.corrected.p99, 3), "naive_p95_ms": round(run.naive.p95, 3),
            "error_rate": round(run.error_rate, 6)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return data


# ----------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks.load",
                                     description="golive's open-loop load generator (one bounded run; JSON out)")
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second in the steady phase")
    parser.add_argument("--duration", type=float, default=10.0, help="steady phase, seconds")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--body", default=None, help="request body (JSON text)")
    parser.add_argument("--ca-file", default=None)
    parser.add_argument("--expect-status", type=int, default=200)
    parser.add_argument("--success-field", default=None)
    parser.add_argument("--success-value", default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    parser.add_argument("--progress", action="store_true", help="progress lines on stderr every 5 s")
    args = parser.parse_args(argv)
    headers = {"Content-Type": "application/json"} if args.body is not None else {}
    spec = RequestSpec(url=args.url, method=args.method, body=args.body.encode() if args.body is not None else None,
                       headers=headers, expect_status=args.expect_status, success_field=args.success_field,
                       success_value=args.success_value, ca_file=args.ca_file, timeout_s=args.timeout)
    plan = LoadPlan(rate=args.rate, steady_s=args.duration, warmup_s=args.warmup, ramp_s=args.ramp,
                    connections=args.connections, max_requests=args.max_requests)

    def show(p: Progress) -> None:
        print(p.line(), file=sys.stderr, flush=True)

    run = run_load(spec, plan, show if args.progress else None)
    json.dump({**run.summary(), **run.chart_data()}, sys.stdout)
    sys.stdout.write("\n")
    return 0 if run.error is None else 2


if __name__ == "__main__":
    sys.exit(main())
