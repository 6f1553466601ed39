"""Open-loop load generation against the inference endpoint (constant arrival rate).

Why open loop: a closed-loop client (wrk, a pool of users that each wait for their
answer) sends less when the target slows down, so a saturated target is offered less load
and its queueing never shows up in the latency (*coordinated omission*).  Here arrival
``k`` is *scheduled* at a fixed time whatever happened to earlier requests, and its latency
is measured **from the scheduled time** (``corrected``); the latency from the moment it
actually went out on a connection (``naive``, what a closed-loop tool reports) is recorded
next to it.

The schedule is **one continuous arrival sequence** over warm-up (a fraction of the rate),
a linear ramp and the steady phase: the cumulative count N(t) is the integral of the rate,
and arrival k is where N(t) = k.  There is no restart at a phase boundary, so no burst: the
gap between two arrivals is never shorter than 1 / rate (issue #16: the old schedule
restarted the steady phase at warm-up + ramp, 0.11-0.29 s after the last ramp arrival).

Model (the wrk2 model): a **scheduler loop** wakes for each due arrival (one timer per
wake-up, every arrival already due dispatched at once) and queues it; a bounded pool of
**connection workers** (one coroutine per keep-alive connection, no task per request) takes
requests from the queue.  A request that finds every worker busy waits in the queue, and
that wait counts in its corrected latency (a user would have waited too) but not in its
naive latency.  The pool starts small (the rate x the preflight latency, at least 4) and
grows by at most one connection per scheduler wake-up, up to ``rate x latency bound``
(Little's law: when that many are busy the mean latency already exceeds the bound) -- so a
pause of the generator does not turn into a storm of new TLS handshakes.

Statistics are **streamed**: every answer goes into HdrHistograms (corrected, naive,
dispatch lag, queue wait; microseconds, 3 significant digits) and counters as it arrives;
no per-request record is kept.  The histograms are stored encoded in the evidence, so runs
split across processes or hosts (:func:`run_distributed`) merge exactly.  Percentiles are
reported with distribution-free confidence intervals (order statistics of a binomial,
:func:`quantile_interval`), and :func:`samples_needed` says how many requests a percentile
needs before it is a measurement.

Phases: a connection-opening **preflight** request (an unreachable target is an error at
once, not after the whole duration), **warm-up**, **ramp**, the **steady** phase (the only
one measured), then a bounded **drain** for requests still in flight.  Total requests and
total time are bounded.  When the generator could not keep its own schedule the run has an
``error`` ("the load generator could not keep the schedule") and nothing is blamed on the
target.

A workload is data (:class:`Workload`): one or more request templates with weights and the
number of *analyses* each request carries (catalogue OZ-PERF-00 counts analyses per media
and analysis type); APM counts analyses, not HTTP requests.

The HA drill's request stream is this engine too (:class:`Stream`: the same scheduler loop,
pool and request spec, run in its own thread until the drill stops it, with no preflight;
it keeps one :class:`Outcome` per request for the drill's timeline -- a load run keeps none).
Address pinning (the target's ``endpoints.resolve``, ``RequestSpec.resolve``): connections
to a pinned name go to its address, the Host header, SNI and the certificate check keep
the name (``checks.pinning.address_for``) -- in worker processes too.

The HTTP client is :mod:`checks.throughput.wire` (an asyncio Protocol per keep-alive
connection, llhttp's C parser, uvloop when installed; no task, future or timer per request),
not aiohttp's or httpx's client session: httpx cannot hold an open-loop rate on these
machines, and aiohttp's session cost 1.5-2x locust's CPU per request (see
docs/throughput.md).  No pytest imports and no pass/fail thresholds here.  Run
``python -m checks.throughput.load --help`` for the CLI used by ``benchmarks/bench_load.py``;
``python -m checks.throughput.load --worker`` is the worker process of :func:`run_distributed`.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import dataclasses
import gc
import json
import math
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from hdrh.histogram import HdrHistogram

from checks import pinning
from checks import request as request_rule
from checks.connection import redact
from checks.throughput import wire
from golive.model import Evidence, Measurement, utcnow

Phase = Literal["warmup", "ramp", "steady"]
PHASES: tuple[Phase, ...] = ("warmup", "ramp", "steady")
TOOL = f"golive open-loop generator ({wire.client_name()}, Python {sys.version.split()[0]})"
SCHEDULE_ERROR = "the load generator could not keep the schedule"
#: Dispatch-lag bound: at most LATE_ALLOWED of the steady requests (and at least one may)
#: are dispatched later than max(LAG_FRACTION x interval, LAG_FLOOR_S), capped at LAG_CAP_S.
#: A later dispatch would shift the offered rate and put the generator's own delay into the
#: target's corrected latency.
LAG_FRACTION = 1.0
LAG_FLOOR_S = 0.05
LAG_CAP_S = 0.25
LATE_ALLOWED = 0.01
#: A capacity-search step is sustained when it achieves at least 1 - RATE_TOLERANCE of its rate.
RATE_TOLERANCE = 0.02
DEFAULT_LATENCY_BOUND_S = 2.0
#: The pool's hard cap (connections of one generator process).
MAX_CONNECTIONS = 512
MAX_REQUESTS = 200_000
MAX_ERROR_KINDS = 20
#: The requests per second one generator process is trusted to pace (the default of a
#: target's inference.pacing_ceiling_rps).  Measured on one idle core: 8,000-12,000 req/s
#: with <= 1 % late dispatches (benchmarks/bench_load.py, docs/throughput.md); the default
#: leaves room for a checking host that is busy with other work.  Above it, a target that
#: declares worker hosts is loaded from several processes (run_distributed).
PACING_CEILING_RPS = 5000.0
#: Default confidence level of the percentiles' intervals and sample-size rule.
DEFAULT_CONFIDENCE = 0.95
#: HdrHistogram range: 1 microsecond to one hour, 3 significant digits.
HDR_MAX_US = 3_600_000_000
HDR_DIGITS = 3
#: Histogram bucket upper bounds in milliseconds: 12 per decade (x1.21 each), 0.1 ms to 10 min.
HISTOGRAM_BOUNDS_MS: tuple[float, ...] = tuple(float(f"{10 ** (k / 12):.3g}") for k in range(-12, 69))


# ----------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class RequestSpec:
    """The request to send and what counts as a success.

    Success = HTTP ``expect_status`` and, when ``success_field`` is set, the JSON body's
    field (dotted path, ``result.status``) equal to ``success_value`` (or merely truthy when
    ``success_value`` is None) -- so a 200 with ``{"status": "error"}`` is not a success.
    The rule is checks.request.judge, shared with the HA drill.
    """

    url: str
    method: str = "POST"
    body: bytes | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    expect_status: int | None = 200  # None: any 2xx
    success_field: str | None = None
    success_value: Any = None
    ca_file: str | None = None
    timeout_s: float = 30.0
    #: Address pinning (the target's endpoints.resolve): name -> address to connect to; the
    #: URL, Host header, SNI and certificate check keep the name (checks.pinning).
    resolve: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def shown_url(self) -> str:
        return redact(self.url)

    def success_words(self) -> str:
        return request_rule.success_words(self.expect_status, self.success_field, self.success_value)

    def judge(self, status: int, body: bytes) -> str | None:
        """None when the answer is a success, else the kind of failure (checks.request.judge)."""
        return request_rule.judge(status, body, expect_status=self.expect_status, success_field=self.success_field,
                                  success_value=self.success_value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (for a worker process); the body base64-encoded."""
        return {"url": self.url, "method": self.method,
                "body": None if self.body is None else base64.b64encode(self.body).decode(),
                "headers": dict(self.headers), "expect_status": self.expect_status,
                "success_field": self.success_field, "success_value": self.success_value,
                "ca_file": self.ca_file, "timeout_s": self.timeout_s, "resolve": dict(self.resolve)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RequestSpec:
        body = d.get("body")
        return cls(url=d["url"], method=d["method"], body=None if body is None else base64.b64decode(body),
                   headers=dict(d.get("headers") or {}),
                   expect_status=None if d.get("expect_status") is None else int(d["expect_status"]),
                   success_field=d.get("success_field"), success_value=d.get("success_value"),
                   ca_file=d.get("ca_file"), timeout_s=float(d["timeout_s"]), resolve=dict(d.get("resolve") or {}))


@dataclasses.dataclass(frozen=True)
class Template:
    """One kind of request in a mix: its share (``weight``) of the arrivals and the number
    of analyses one successful request of it counts for (e.g. one media with 3 analysis
    types = 3)."""

    spec: RequestSpec
    name: str = "request"
    weight: float = 1.0
    analyses: int = 1

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"request template {self.name}: weight must be positive")
        if self.analyses < 1:
            raise ValueError(f"request template {self.name}: analyses must be at least 1")


@dataclasses.dataclass(frozen=True)
class Workload:
    """The request mix: arrival k uses template ``sequence()[k]`` (smooth weighted
    round-robin, deterministic: the same arrival gets the same template in every run and
    in every worker slice)."""

    templates: tuple[Template, ...]

    def __post_init__(self) -> None:
        if not self.templates:
            raise ValueError("a workload needs at least one request template")
        names = [t.name for t in self.templates]
        if len(set(names)) != len(names):
            raise ValueError(f"request template names must be unique: {names}")

    @classmethod
    def of(cls, spec: RequestSpec | Workload) -> Workload:
        return spec if isinstance(spec, Workload) else cls((Template(spec),))

    @property
    def primary(self) -> RequestSpec:
        return self.templates[0].spec

    @property
    def mean_analyses(self) -> float:
        """Analyses per request, weighted by the mix."""
        total = sum(t.weight for t in self.templates)
        return sum(t.weight * t.analyses for t in self.templates) / total

    def sequence(self, n: int) -> list[int]:
        if len(self.templates) == 1:
            return [0] * n
        weights = [t.weight for t in self.templates]
        total = sum(weights)
        current = [0.0] * len(weights)
        out: list[int] = []
        for _ in range(n):
            for i, w in enumerate(weights):
                current[i] += w
            best = max(range(len(weights)), key=current.__getitem__)
            current[best] -= total
            out.append(best)
        return out

    def success_words(self) -> str:
        words = {t.spec.success_words() for t in self.templates}
        return " / ".join(sorted(words))

    def words(self) -> str:
        if len(self.templates) == 1:
            t = self.templates[0]
            return f"{t.spec.method} {t.spec.shown_url}" + (f" ({t.analyses} analyses each)" if t.analyses > 1 else "")
        total = sum(t.weight for t in self.templates)
        return "mix of " + ", ".join(f"{t.name} {t.weight / total:.0%} ({t.spec.method} {t.spec.shown_url}, "
                                     f"{t.analyses} analyses)" for t in self.templates)

    def to_list(self) -> list[dict[str, Any]]:
        return [{"spec": t.spec.to_dict(), "name": t.name, "weight": t.weight, "analyses": t.analyses}
                for t in self.templates]

    @classmethod
    def from_list(cls, items: Sequence[Mapping[str, Any]]) -> Workload:
        return cls(tuple(Template(RequestSpec.from_dict(i["spec"]), i["name"], float(i["weight"]), int(i["analyses"]))
                         for i in items))


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """How hard and how long: ``rate`` requests per second in the steady phase.

    ``connections`` caps the pool (0: ``ceil(rate x latency_bound_s) + 2``, at most 512);
    the pool opens connections only as they are needed.  ``drain_s`` bounds the wait for
    in-flight requests after the last one is scheduled (default: the request timeout).
    ``max_requests`` bounds the whole run: the steady phase is shortened to fit
    (``LoadRun.truncated``).  ``confidence`` is the level of the percentiles' intervals.
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
    confidence: float = DEFAULT_CONFIDENCE

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
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must be in (0, 1)")

    @property
    def pool_size(self) -> int:
        """The pool's cap (connections actually opened: as many as the load needs)."""
        if self.connections > 0:
            return min(self.connections, MAX_CONNECTIONS)
        return max(4, min(MAX_CONNECTIONS, math.ceil(self.rate * self.latency_bound_s) + 2))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Scheduled send times (seconds after t0) and their phases: one continuous sequence.

    ``steady_start`` is the first steady arrival's offset; the steady phase is
    ``steady_count`` arrivals ``1 / rate`` apart, ``steady_s = steady_count / rate`` long."""

    offsets: list[float]
    phases: list[Phase]
    steady_start: float
    steady_count: int
    steady_s: float
    truncated: bool
    first_steady: int = 0

    @property
    def end(self) -> float:
        return self.offsets[-1] if self.offsets else 0.0


def build_schedule(plan: LoadPlan) -> Schedule:
    """Arrival times of one continuous sequence: the cumulative count N(t) rises at
    ``warmup_fraction x rate`` during the warm-up, linearly to ``rate`` over the ramp
    (N = N_w + r0 t + (r1 - r0) t^2 / 2R, solved in closed form), then at ``rate``;
    arrival k is where N(t) = k.  The steady phase is the ``round(rate x steady_s)``
    arrivals from the first one at or after warm-up + ramp.  Since N never rises faster than
    ``rate``, no two arrivals are closer than 1 / rate -- at the phase boundaries too."""
    r1 = plan.rate
    r0 = r1 * plan.warmup_fraction
    w, ramp = plan.warmup_s, plan.ramp_s
    n_w = r0 * w  # arrivals due by the end of the warm-up (a real number)
    a = (r1 - r0) / (2 * ramp) if ramp > 0 else 0.0
    n_s = n_w + r0 * ramp + a * ramp * ramp  # ... by the end of the ramp
    t_s = w + ramp

    def t_of(k: float) -> float:
        if k < n_w:
            return k / r0
        if k < n_s:
            x = k - n_w
            return w + (x / r0 if a == 0 else (-r0 + math.sqrt(r0 * r0 + 4 * a * x)) / (2 * a))
        return t_s + (k - n_s) / r1

    n_pre = max(0, math.ceil(n_s - 1e-9))
    offsets = [t_of(k) for k in range(n_pre)]
    phases: list[Phase] = ["warmup" if k < n_w else "ramp" for k in range(n_pre)]
    budget = plan.max_requests - n_pre
    if budget < 1:
        raise ValueError(f"max_requests={plan.max_requests} leaves no request for the steady phase")
    count = max(1, round(r1 * plan.steady_s))
    truncated = count > budget
    count = min(count, budget)
    offsets += [t_of(k) for k in range(n_pre, n_pre + count)]
    phases += ["steady"] * count
    start = offsets[n_pre]
    return Schedule(offsets, phases, start, count, count / r1, truncated, n_pre)


# ----------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the smallest value with at least p% of values <= it)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def samples_needed(p: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Requests needed before the p-th percentile has a two-sided distribution-free
    confidence interval at ``confidence`` (:func:`quantile_ranks`): its upper end is the
    largest sample at the least, which lies above the true p-quantile with probability
    1 - (p/100)^n, so n >= ln((1 - confidence) / 2) / ln(p/100) -- 72 for p95 at 95 %, 368
    for p99.  Fewer samples cannot bound the percentile from above: no measurement."""
    q = p / 100.0
    if not 0 < q < 1:
        raise ValueError("percentile must be in (0, 100)")
    return math.ceil(math.log((1 - confidence) / 2) / math.log(q) - 1e-9)


def _binomial_cdf(n: int, q: float) -> list[float]:
    """cdf[k] = P(Binomial(n, q) <= k), k = 0..n (log-space pmf, exact enough for ranks)."""
    lq, l1q = math.log(q), math.log1p(-q)
    lg = math.lgamma(n + 1)
    out: list[float] = []
    acc = 0.0
    for k in range(n + 1):
        acc += math.exp(lg - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lq + (n - k) * l1q)
        out.append(min(1.0, acc))
    return out


def quantile_ranks(n: int, p: float, confidence: float) -> tuple[int | None, int | None]:
    """1-based order-statistic ranks (lower, upper) of a two-sided distribution-free
    confidence interval for the p-th percentile from n samples: P(X_(l) <= q_p) and
    P(X_(u) >= q_p) are each at least (1 + confidence) / 2.  None where n is too small for
    that side."""
    if n < 1:
        return None, None
    q = p / 100.0
    cdf = _binomial_cdf(n, q)
    tail = (1 + confidence) / 2
    # P(X_(u) >= q_p) = P(Bin(n, q) <= u - 1)
    upper = next((u for u in range(1, n + 1) if cdf[u - 1] >= tail), None)
    # P(X_(l) <= q_p) = P(Bin(n, q) >= l) = 1 - cdf[l - 1]
    lower = next((lo for lo in range(n, 0, -1) if 1 - cdf[lo - 1] >= tail), None)
    return lower, upper


def _new_hist() -> HdrHistogram:
    return HdrHistogram(1, HDR_MAX_US, HDR_DIGITS)


def _record(h: HdrHistogram, seconds: float) -> None:
    h.record_value(min(HDR_MAX_US, max(1, round(seconds * 1e6))))


def _value_ms(h: HdrHistogram, p: float) -> float:
    return float(h.get_value_at_percentile(p)) / 1000.0


def _rank_ms(h: HdrHistogram, rank: int) -> float:
    """The rank-th smallest recorded value (1-based), milliseconds."""
    return _value_ms(h, 100.0 * rank / h.get_total_count())


def encode_hist(h: HdrHistogram) -> str:
    return h.encode().decode() if h.get_total_count() else ""


def decode_hist(text: str) -> HdrHistogram:
    if not text:
        return _new_hist()
    h = _new_hist()
    h.add(HdrHistogram.decode(text.encode()))
    return h


@dataclasses.dataclass(frozen=True)
class QuantileEstimate:
    """One percentile (ms) with its distribution-free confidence interval (None where the
    samples are too few for that side) and the samples it needs for an upper bound."""

    p: float
    value: float
    low: float | None
    high: float | None
    confidence: float
    n: int
    needed: int

    @property
    def enough(self) -> bool:
        return self.n >= self.needed

    def to_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else round(x, 3)
        return {"p": self.p, "value_ms": r(self.value), "ci_low_ms": r(self.low), "ci_high_ms": r(self.high),
                "confidence": self.confidence, "n": self.n, "needed": self.needed}

    def words(self) -> str:
        lo = fmt_ms(self.low) if self.low is not None else "?"
        hi = fmt_ms(self.high) if self.high is not None else "?"
        return (f"p{self.p:g} {fmt_ms(self.value)} ({self.confidence:.0%} CI {lo} - {hi}, n={self.n}"
                + (f", needs {self.needed}" if not self.enough else "") + ")")


def quantile_interval(h: HdrHistogram, p: float, confidence: float = DEFAULT_CONFIDENCE) -> QuantileEstimate:
    """The p-th percentile of the histogram with its order-statistics confidence interval."""
    n = int(h.get_total_count())
    needed = samples_needed(p, confidence)
    if n == 0:
        return QuantileEstimate(p, math.nan, None, None, confidence, 0, needed)
    lo, hi = quantile_ranks(n, p, confidence) if n <= 250_000 else (None, None)
    return QuantileEstimate(p, _value_ms(h, p), None if lo is None else _rank_ms(h, lo),
                            None if hi is None else _rank_ms(h, hi), confidence, n, needed)


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

    @classmethod
    def of_hist(cls, h: HdrHistogram) -> LatencySummary:
        n = int(h.get_total_count())
        if not n:
            return NO_SAMPLES
        return cls(n, _value_ms(h, 50), _value_ms(h, 95), _value_ms(h, 99), float(h.get_max_value()) / 1000.0,
                   float(h.get_mean_value()) / 1000.0)

    def to_dict(self) -> dict[str, float | int | None]:
        def r(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 3)
        return {"count": self.count, "p50": r(self.p50), "p95": r(self.p95), "p99": r(self.p99),
                "max": r(self.max), "mean": r(self.mean)}

    def words(self) -> str:
        if not self.count:
            return "no samples"
        return f"p50 {fmt_ms(self.p50)}, p95 {fmt_ms(self.p95)}, p99 {fmt_ms(self.p99)}, max {fmt_ms(self.max)}"


NO_SAMPLES = LatencySummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)


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


def _bucket(v: float) -> int:
    bounds = HISTOGRAM_BOUNDS_MS
    lo, hi = 0, len(bounds)
    while lo < hi:  # first bound >= v
        mid = (lo + hi) // 2
        if bounds[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _chart(counts: Sequence[int], top_ms: float) -> list[list[float]]:
    uppers = [*HISTOGRAM_BOUNDS_MS, round(top_ms, 3)]
    used = [i for i, c in enumerate(counts) if c]
    if not used:
        return []
    return [[uppers[i], counts[i]] for i in range(used[0], used[-1] + 1)]


def histogram(ms_values: Sequence[float]) -> list[list[float]]:
    """``[[upper_bound_ms, count], ...]`` over fixed log buckets, trimmed to the occupied
    range; values above the last bound land in a final bucket whose bound is the maximum."""
    if not ms_values:
        return []
    counts = [0] * (len(HISTOGRAM_BOUNDS_MS) + 1)
    for v in ms_values:
        counts[_bucket(v)] += 1
    return _chart(counts, max(ms_values))


def histogram_of(h: HdrHistogram) -> list[list[float]]:
    """The chart buckets of :func:`histogram` from an HdrHistogram."""
    if not h.get_total_count():
        return []
    counts = [0] * (len(HISTOGRAM_BOUNDS_MS) + 1)
    for item in h.get_recorded_iterator():
        counts[_bucket(item.value_iterated_to / 1000.0)] += item.count_added_in_this_iter_step
    return _chart(counts, h.get_max_value() / 1000.0)


# ----------------------------------------------------------------------------- one request


def judge_response(spec: RequestSpec, status: int, body: bytes) -> str | None:
    """None when the answer is a success, else the kind of failure (checks.request.judge)."""
    return request_rule.judge(status, body, expect_status=spec.expect_status, success_field=spec.success_field,
                              success_value=spec.success_value)


def _client_error(exc: BaseException, timeout_s: float) -> str:
    """The failure kind of an exception that escaped the engine (a crashed stream)."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timeout after {timeout_s:g} s"
    return f"{type(exc).__name__}: {exc}"[:200]


# ----------------------------------------------------------------------------- streamed statistics


class _Fit:
    """Streaming least-squares slope of event times (seconds after t0, fed in time order)
    against their rank: 1 / slope is the rate at which the events happened, every event
    weighing in (one slow first or last answer barely moves it).  The residuals give the
    rate's standard error, so a judgement can tell a short fall from counting noise."""

    __slots__ = ("n", "sit", "st", "stt")

    def __init__(self) -> None:
        self.n = 0
        self.st = 0.0
        self.sit = 0.0
        self.stt = 0.0

    def add(self, t: float) -> None:
        self.sit += self.n * t
        self.st += t
        self.stt += t * t
        self.n += 1

    def rate(self, fallback_s: float) -> float:
        return self.rate_se(fallback_s)[0]

    def rate_se(self, fallback_s: float) -> tuple[float, float]:
        """(rate, its standard error); the error is 0 for fewer than four events."""
        n = self.n
        if n >= 3:
            si = n * (n - 1) / 2
            sxx = (n - 1) * n * (2 * n - 1) / 6 - si * si / n
            sxy = self.sit - si * self.st / n
            slope = sxy / sxx
            if slope > 0:
                se = 0.0
                if n >= 4:
                    syy = self.stt - self.st * self.st / n
                    ssr = max(0.0, syy - slope * sxy)
                    se = math.sqrt(ssr / (n - 2) / sxx) / (slope * slope)
                return 1 / slope, se
        return (n / fallback_s if fallback_s > 0 else 0.0), 0.0


@dataclasses.dataclass
class Tally:
    """Everything one generator process measured over its arrivals, streamed (no
    per-request records) and mergeable: counters add, histograms add exactly, rates add
    (each process loads an interleaved slice of one schedule)."""

    steady_planned: int = 0
    steady_dispatched: int = 0
    ok: int = 0
    ok_analyses: int = 0
    incomplete: int = 0
    total_sent: int = 0
    total_completed: int = 0
    late: int = 0
    completed_in_window: int = 0
    achieved_rate: float = 0.0
    achieved_rate_se: float = 0.0
    dispatched_rate: float = 0.0
    first_ok_done: float = math.inf
    last_ok_done: float = -math.inf
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    per_template: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # name -> [steady, ok, analyses]
    series: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    corrected: HdrHistogram = dataclasses.field(default_factory=_new_hist)
    naive: HdrHistogram = dataclasses.field(default_factory=_new_hist)
    lag: HdrHistogram = dataclasses.field(default_factory=_new_hist)
    wait: HdrHistogram = dataclasses.field(default_factory=_new_hist)
    connections_opened: int = 0
    preflight_ms: float = math.nan
    cpu_s: float = 0.0
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("corrected", "naive", "lag", "wait", "errors")}
        out["errors"] = dict(self.errors)
        out["hdr"] = {k: encode_hist(getattr(self, k)) for k in ("corrected", "naive", "lag", "wait")}
        for k in ("first_ok_done", "last_ok_done", "preflight_ms"):
            out[k] = None if not math.isfinite(out[k]) else out[k]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tally:
        t = cls()
        for f in dataclasses.fields(cls):
            if f.name in ("corrected", "naive", "lag", "wait", "errors") or f.name not in d:
                continue
            setattr(t, f.name, d[f.name])
        t.first_ok_done = math.inf if d.get("first_ok_done") is None else float(d["first_ok_done"])
        t.last_ok_done = -math.inf if d.get("last_ok_done") is None else float(d["last_ok_done"])
        t.preflight_ms = math.nan if d.get("preflight_ms") is None else float(d["preflight_ms"])
        t.errors = Counter(d.get("errors") or {})
        for k in ("corrected", "naive", "lag", "wait"):
            setattr(t, k, decode_hist(d.get("hdr", {}).get(k, "")))
        return t

    @classmethod
    def merge(cls, parts: Sequence[Tally]) -> Tally:
        """The tally of the whole schedule from its slices' tallies (exact for counts and
        histograms; rates are sums of the slices' rates)."""
        out = cls(workers=0)
        for p in parts:
            for name in ("steady_planned", "steady_dispatched", "ok", "ok_analyses", "incomplete", "total_sent",
                         "total_completed", "late", "completed_in_window", "achieved_rate", "dispatched_rate",
                         "connections_opened", "cpu_s", "workers"):
                setattr(out, name, getattr(out, name) + getattr(p, name))
            out.achieved_rate_se = math.hypot(out.achieved_rate_se, p.achieved_rate_se)
            out.first_ok_done = min(out.first_ok_done, p.first_ok_done)
            out.last_ok_done = max(out.last_ok_done, p.last_ok_done)
            out.preflight_ms = p.preflight_ms if math.isnan(out.preflight_ms) else out.preflight_ms
            out.errors.update(p.errors)
            for name, counts in p.per_template.items():
                mine = out.per_template.setdefault(name, [0, 0, 0])
                for i, c in enumerate(counts):
                    mine[i] += c
            for k in ("corrected", "naive", "lag", "wait"):
                getattr(out, k).add(getattr(p, k))
            for i, s in enumerate(p.series):
                if i >= len(out.series):
                    out.series.append(dict(s))
                    continue
                o = out.series[i]
                for key in ("sent", "ok", "err"):
                    o[key] += s[key]
                # the slices' per-second p95s do not merge exactly: the chart shows the worst
                o["p95_ms"] = max((x for x in (o["p95_ms"], s["p95_ms"]) if x is not None), default=None)
        return out


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
PERCENTILES = (50.0, 95.0, 99.0)


@dataclasses.dataclass
class LoadRun:
    """Everything one run measured; ``error`` set when nothing valid was measured.

    Rates are requests per second; ``*_apm`` are analyses per minute (the workload's
    analyses per successful request)."""

    url: str
    method: str
    success: str
    plan: LoadPlan
    connections: int
    started_at: str
    workload: str = ""
    analyses_per_request: float = 1.0
    #: Pinned addresses in force (endpoints.resolve) for the workload's hosts: name -> address.
    pinned: dict[str, str] = dataclasses.field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0
    steady_s: float = 0.0
    truncated: bool = False
    planned: int = 0
    steady: int = 0
    ok: int = 0
    ok_analyses: int = 0
    incomplete: int = 0
    total_sent: int = 0
    total_completed: int = 0
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    achieved_rate: float = 0.0
    #: Standard error of achieved_rate (the completion-time fit's residuals).
    achieved_rate_se: float = 0.0
    completed_in_window_rate: float = 0.0
    dispatched_rate: float = 0.0
    corrected: LatencySummary = NO_SAMPLES
    naive: LatencySummary = NO_SAMPLES
    lag: LatencySummary = NO_SAMPLES
    client_wait: LatencySummary = NO_SAMPLES
    quantiles: dict[str, QuantileEstimate] = dataclasses.field(default_factory=dict)
    lag_limit_ms: float = 0.0
    late: int = 0
    preflight_ms: float = math.nan
    generator_cpu_s: float = 0.0
    connections_opened: int = 0
    workers: int = 1
    per_template: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    series: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    histogram_ms: list[list[float]] = dataclasses.field(default_factory=list)
    #: The encoded HdrHistograms (microseconds) of the steady requests: corrected, naive,
    #: lag, wait -- runs merge exactly by adding them (merge_runs).
    hdr: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The steady phase on this process's time.perf_counter() clock (for peers measuring alongside).
    steady_window: tuple[float, float] = (math.nan, math.nan)
    #: First and last successful completion of a steady request, same clock.
    completion_window: tuple[float, float] = (math.nan, math.nan)

    @property
    def offered_rate(self) -> float:
        return self.plan.rate

    @property
    def offered_apm(self) -> float:
        return self.plan.rate * 60 * self.analyses_per_request

    @property
    def achieved_apm(self) -> float:
        per_ok = self.ok_analyses / self.ok if self.ok else self.analyses_per_request
        return self.achieved_rate * 60 * per_ok

    @property
    def error_rate(self) -> float:
        return 1.0 - self.ok / self.steady if self.steady else 1.0

    @property
    def success_ratio(self) -> float:
        return self.ok / self.steady if self.steady else 0.0

    def quantile(self, p: float) -> QuantileEstimate:
        q = self.quantiles.get(f"p{p:g}")
        if q is None:
            q = quantile_interval(decode_hist(self.hdr.get("corrected", "")), p, self.plan.confidence)
        return q

    def method_words(self) -> str:
        p = self.plan
        return (f"open-loop constant arrival rate: {self.workload or self.method + ' ' + self.url} at {p.rate:.4g} "
                f"req/s ({fmt_apm(self.offered_apm)} APM) for {self.steady_s:.3g} s steady after {p.warmup_s:g} s "
                f"warm-up and {p.ramp_s:g} s ramp (one continuous arrival schedule); "
                f"{self.connections_opened} keep-alive connections opened (cap {self.connections})"
                + (f", {self.workers} worker processes" if self.workers > 1 else "")
                + "".join(f"; connections to {name} go to {address} (pinned in endpoints.resolve; Host and SNI stay "
                          f"{name})" for name, address in self.pinned.items())
                + f"; success = {self.success}; latency from the scheduled send time (coordinated omission "
                f"corrected); percentiles with {p.confidence:.0%} order-statistics confidence intervals")

    def summary(self) -> dict[str, Any]:
        """Everything but the series and histogram (evidence data)."""
        return {
            "url": self.url, "method": self.method, "workload": self.workload, "success": self.success,
            **({"pinned": dict(self.pinned)} if self.pinned else {}),
            "started_at": self.started_at, "error": self.error, "duration_s": round(self.duration_s, 3),
            "phases": {"warmup_s": self.plan.warmup_s, "ramp_s": self.plan.ramp_s, "steady_s": self.steady_s,
                       "warmup_fraction": self.plan.warmup_fraction},
            "truncated": self.truncated, "connections": self.connections,
            "connections_opened": self.connections_opened, "workers": self.workers,
            "offered_apm": round(self.offered_apm, 4), "achieved_apm": round(self.achieved_apm, 4),
            "offered_rps": round(self.offered_rate, 4), "achieved_rps": round(self.achieved_rate, 4),
            "achieved_rps_se": round(self.achieved_rate_se, 4),
            "analyses_per_request": round(self.analyses_per_request, 4),
            "completed_in_window_apm": round(self.completed_in_window_rate * 60 * self.analyses_per_request, 4),
            "dispatched_apm": round(self.dispatched_rate * 60 * self.analyses_per_request, 4),
            "requests": {"planned": self.planned, "steady": self.steady, "ok": self.ok,
                         "failed": self.steady - self.ok, "incomplete": self.incomplete,
                         "sent_all_phases": self.total_sent, "completed_all_phases": self.total_completed},
            "analyses_ok": self.ok_analyses, "per_template": self.per_template,
            "success_ratio": round(self.success_ratio, 6), "error_rate": round(self.error_rate, 6),
            "errors": dict(self.errors),
            "latency_ms": {"corrected": self.corrected.to_dict(), "naive": self.naive.to_dict()},
            "percentiles": {k: q.to_dict() for k, q in self.quantiles.items()},
            "dispatch_lag_ms": self.lag.to_dict(), "dispatch_lag_limit_ms": round(self.lag_limit_ms, 3),
            "dispatched_late": self.late,
            "client_queue_wait_ms": self.client_wait.to_dict(),
            "preflight_ms": None if math.isnan(self.preflight_ms) else round(self.preflight_ms, 3),
            "generator_cpu_s": round(self.generator_cpu_s, 3),
            "hdr_us": dict(self.hdr),
        }

    def chart_data(self) -> dict[str, Any]:
        """What the report charts: per-second series and the latency histogram."""
        return {"series": self.series, "histogram_ms": self.histogram_ms}

    def raw(self) -> str:
        top = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items(), key=lambda kv: -kv[1])[:5])
        lines = [
            f"steady {self.steady_s:.3g} s: {self.steady} requests, {self.ok} ok, {self.steady - self.ok} failed"
            + (f" ({top})" if top else ""),
            (f"offered {fmt_apm(self.offered_apm)} APM, dispatched "
             f"{fmt_apm(self.dispatched_rate * 60 * self.analyses_per_request)} APM, "
             f"achieved {fmt_apm(self.achieved_apm)} APM"),
            f"latency corrected: {self.corrected.words()}",
            f"latency naive:     {self.naive.words()}",
            "percentiles: " + "; ".join(q.words() for q in self.quantiles.values()),
            (f"dispatch lag: {self.lag.words()} (limit {fmt_ms(self.lag_limit_ms)}, {self.late} late); "
             f"generator CPU {self.generator_cpu_s:.2f} s; {self.connections_opened} connections opened"),
        ]
        if self.error:
            lines.insert(0, f"error: {self.error}")
        return "\n".join(lines)

    def evidence(self, probe: str = "throughput.load") -> Evidence:
        return Evidence(probe=probe, subject=self.url, method=self.method_words(), tool=TOOL, raw=self.raw(),
                        duration_s=round(self.duration_s, 3), data=self.summary())


def _phase_at(elapsed: float, plan: LoadPlan, schedule: Schedule) -> str:
    if elapsed < plan.warmup_s:
        return "warmup"
    if elapsed < schedule.steady_start:
        return "ramp"
    if elapsed < schedule.steady_start + schedule.steady_s:
        return "steady"
    return "drain"


def finish_run(run: LoadRun, tally: Tally, schedule: Schedule) -> LoadRun:
    """Fill ``run`` from a (possibly merged) tally and judge the generator's own schedule."""
    plan = run.plan
    run.steady = tally.steady_dispatched
    run.ok, run.ok_analyses, run.incomplete = tally.ok, tally.ok_analyses, tally.incomplete
    run.total_sent, run.total_completed = tally.total_sent, tally.total_completed
    run.errors = dict(tally.errors.most_common(MAX_ERROR_KINDS))
    run.achieved_rate = min(tally.achieved_rate, run.ok / schedule.steady_s)
    run.achieved_rate_se = tally.achieved_rate_se
    run.dispatched_rate = tally.dispatched_rate
    run.completed_in_window_rate = tally.completed_in_window / schedule.steady_s
    run.completion_window = ((tally.first_ok_done, tally.last_ok_done) if tally.ok
                             else (math.nan, math.nan))
    run.corrected = LatencySummary.of_hist(tally.corrected)
    run.naive = LatencySummary.of_hist(tally.naive)
    run.lag = LatencySummary.of_hist(tally.lag)
    run.client_wait = LatencySummary.of_hist(tally.wait)
    run.quantiles = {f"p{p:g}": quantile_interval(tally.corrected, p, plan.confidence) for p in PERCENTILES}
    run.hdr = {k: encode_hist(getattr(tally, k)) for k in ("corrected", "naive", "lag", "wait")}
    run.histogram_ms = histogram_of(tally.corrected)
    run.series = tally.series
    run.late = tally.late
    run.preflight_ms = tally.preflight_ms
    run.generator_cpu_s = tally.cpu_s
    run.connections_opened = tally.connections_opened
    run.workers = tally.workers
    run.per_template = {k: {"steady": v[0], "ok": v[1], "analyses_ok": v[2]} for k, v in tally.per_template.items()}
    run.lag_limit_ms = lag_limit_s(plan.rate) * 1000
    if run.steady < run.planned:
        run.error = f"{SCHEDULE_ERROR}: only {run.steady} of {run.planned} steady requests were dispatched"
    elif run.late > max(1, math.floor(LATE_ALLOWED * run.steady)):
        run.error = (f"{SCHEDULE_ERROR}: {run.late} of {run.steady} requests dispatched more than "
                     f"{fmt_ms(run.lag_limit_ms)} late (p99 dispatch lag {fmt_ms(run.lag.p99)}, interval "
                     f"{fmt_ms(1000 / plan.rate)}); the checking host is too busy -- nothing is blamed on the target")
    return run


def lag_limit_s(rate: float) -> float:
    return min(max(LAG_FRACTION / rate, LAG_FLOOR_S), LAG_CAP_S)


# ----------------------------------------------------------------------------- the engine


def _ssl_context(spec: RequestSpec) -> ssl.SSLContext | None:
    return wire.ssl_context(spec.url, spec.ca_file)


def prepare(spec: RequestSpec, tls: dict[str | None, ssl.SSLContext] | None = None) -> wire.Prepared:
    """The spec serialised for :mod:`checks.throughput.wire`: its pinned address (checks.pinning),
    its TLS context (one per CA file when ``tls`` is shared), a body only kept when the success
    rule reads it.  A body without a Content-Type is sent as application/octet-stream."""
    context = None
    if urllib.parse.urlsplit(spec.url).scheme == "https":
        cache = tls if tls is not None else {}
        context = cache.get(spec.ca_file)
        if context is None:
            context = _ssl_context(spec)
            if context is not None:
                cache[spec.ca_file] = context
    headers = dict(spec.headers)
    if spec.body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/octet-stream"
    return wire.prepare(spec.url, method=spec.method, body=spec.body, headers=headers, timeout_s=spec.timeout_s,
                        connect_to=pinning.address_for(spec.url, spec.resolve), tls=context,
                        keep_body=bool(spec.success_field))


#: Called for every outcome when set (the HA drill's stream): arrival index, success,
#: latency from the scheduled time (s), HTTP status (None: no answer), failure kind.
Observer = Callable[[int, bool, float, int | None, str | None], None]


class _Engine:
    """One generator process: the arrivals ``index, index + stride, ...`` of the schedule.

    ``stream=True`` is the HA drill's mode (:class:`Stream`): no preflight (an unreachable
    service is an outcome of the drill, not a reason to stop), no gc freeze (the drill
    shares its process), the schedule can be halted from another thread, and every outcome
    goes to ``observer``."""

    def __init__(self, workload: Workload, plan: LoadPlan, schedule: Schedule, progress: ProgressFn | None,
                 progress_every_s: float, *, index: int = 0, stride: int = 1, start_at: float | None = None,
                 observer: Observer | None = None, t0: float | None = None, stream: bool = False) -> None:
        self.observer = observer
        self.fixed_t0 = t0  # time.perf_counter() of t0, chosen by the caller (Stream)
        self.stream = stream
        self.halted = False  # set from another thread (Stream.stop): the scheduler ends at its next wake-up
        self.schedule_done = False  # every arrival of the schedule was dispatched
        self.next_k = index  # the next arrival to dispatch (updated once per wake-up)
        # A halted stream must notice soon: its scheduler never sleeps longer than this.
        self.max_sleep = 0.05 if stream else math.inf
        self.workload = workload
        self.plan = plan
        self.schedule = schedule
        self.progress = progress
        self.progress_every_s = progress_every_s
        self.index, self.stride = index, stride
        self.start_at = start_at  # time.time() of t0 (several processes share one schedule)
        self.tally = Tally(steady_planned=len(range(schedule.first_steady + (index - schedule.first_steady) % stride,
                                                    len(schedule.offsets), stride)))
        self.kinds = workload.sequence(len(schedule.offsets))
        tls: dict[str | None, ssl.SSLContext] = {}
        self.prepared = [prepare(t.spec, tls) for t in workload.templates]
        self.specs = [t.spec for t in workload.templates]
        self.pending: dict[int, tuple[float, float, float]] = {}  # arrival -> (due, issued, sent)
        # Arrivals due while every connection was busy, oldest first: the next free one takes them.
        self.backlog: collections.deque[tuple[int, float, float]] = collections.deque()
        self.idle: list[wire.Connection] = []  # free connections (the most recently used is reused first)
        self.conns: list[wire.Connection] = []
        self.settled: asyncio.Event | None = None  # after the schedule: set when nothing is pending
        self.t0 = 0.0
        self.done_fit = _Fit()
        self.issue_fit = _Fit()
        self.second = -1
        self.second_hist = _new_hist()
        self.window = (math.inf, math.inf)

    # -- streaming statistics ------------------------------------------------

    def _series_at(self, i: int) -> dict[str, Any]:
        series = self.tally.series
        while len(series) <= i:
            t = len(series)
            series.append({"t": t, "phase": _phase_at(t + 0.5, self.plan, self.schedule), "sent": 0, "ok": 0,
                           "err": 0, "p95_ms": None})
        return series[i]

    def _close_second(self) -> None:
        if self.second >= 0 and self.second_hist.get_total_count():
            self._series_at(self.second)["p95_ms"] = round(_value_ms(self.second_hist, 95), 3)
        self.second_hist.reset()

    def _outcome(self, k: int, due: float, issued: float, sent: float, done: float, error: str | None,
                 completed: bool, status: int | None = None) -> None:
        tally = self.tally
        steady = k >= self.schedule.first_steady
        ok = completed and error is None
        if self.observer is not None:
            self.observer(k, ok, done - due, status, error)
        if completed:
            tally.total_completed += 1
        i = max(0, int(done - self.t0))
        if i != self.second:
            self._close_second()
            self.second = i
        s = self._series_at(i)
        s["ok" if ok else "err"] += 1
        _record(self.second_hist, done - due)
        template = self.workload.templates[self.kinds[k]]
        if ok and self.window[0] <= done < self.window[1]:
            tally.completed_in_window += 1
        if not steady:
            return
        counts = tally.per_template.setdefault(template.name, [0, 0, 0])
        counts[0] += 1
        _record(tally.corrected, done - due)
        if not math.isnan(sent):
            _record(tally.naive, done - sent)
            _record(tally.wait, sent - issued)
        if ok:
            tally.ok += 1
            tally.ok_analyses += template.analyses
            counts[1] += 1
            counts[2] += template.analyses
            self.done_fit.add(done - self.t0)
            tally.first_ok_done = min(tally.first_ok_done, done)
            tally.last_ok_done = max(tally.last_ok_done, done)
        elif completed:
            tally.errors[error or "failed"] += 1
        else:
            tally.incomplete += 1
            tally.errors[error or "not completed"] += 1

    # -- the request ---------------------------------------------------------

    def _connection(self) -> wire.Connection:
        conn = wire.Connection(asyncio.get_running_loop(), self._answered)
        self.conns.append(conn)
        return conn

    def _send(self, conn: wire.Connection, k: int, due: float, issued: float) -> None:
        self.pending[k] = (due, issued, time.perf_counter())
        self.tally.total_sent += 1
        conn.send(self.prepared[self.kinds[k]], k)

    def _dispatch(self, k: int, due: float, issued: float) -> None:
        """Arrival k goes out on a free connection now, or waits in the backlog."""
        if self.idle:
            self._send(self.idle.pop(), k, due, issued)
        else:
            self.backlog.append((k, due, issued))

    def _answered(self, conn: wire.Connection, status: int | None, body: bytes, error: str | None) -> None:
        """A request ended (answer or failure): record it, give the connection the oldest
        waiting arrival or free it."""
        k = conn.tag
        due, issued, sent = self.pending.pop(k)
        done = time.perf_counter()
        if error is None and status is not None:
            error = judge_response(self.specs[self.kinds[k]], status, body)
        self._outcome(k, due, issued, sent, done, error, True, status)
        if self.backlog:
            self._send(conn, *self.backlog.popleft())
            return
        self.idle.append(conn)
        if self.settled is not None and not self.pending:
            self.settled.set()

    async def _expire(self) -> None:
        """Time out requests past their deadline (each template's timeout_s), every 1/20 of
        the shortest timeout and at least every 0.05 s.  (An answer that arrives after its
        deadline but before this pass is a timeout too: wire.Connection checks.)"""
        loop = asyncio.get_running_loop()
        every = min(0.05, min(p.timeout_s for p in self.prepared) / 20)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for conn in self.conns:
                if conn.busy and conn.deadline <= now:
                    conn.expire()

    async def _report(self, total_s: float) -> None:
        assert self.progress is not None
        while True:
            await asyncio.sleep(self.progress_every_s)
            t = self.tally
            elapsed = time.perf_counter() - self.t0
            queued = len(self.backlog)
            with contextlib.suppress(Exception):
                self.progress(Progress(elapsed, total_s, _phase_at(elapsed, self.plan, self.schedule), self.plan.rate,
                                       t.total_sent + queued, t.total_completed - sum(t.errors.values()),
                                       sum(t.errors.values()), len(self.pending), queued,
                                       _value_ms(t.corrected, 95) if t.corrected.get_total_count() else math.nan))

    # -- the run -------------------------------------------------------------

    async def preflight(self) -> str | None:
        """One request on a fresh connection before any load: None, or why no answer came.
        Any HTTP answer will do (whether it is a success is the load run's finding); the
        connection then joins the pool."""
        conn = self._connection()
        start = time.perf_counter()
        try:
            status, _, why = await wire.exchange(conn, self.prepared[0])
        finally:
            self.tally.preflight_ms = (time.perf_counter() - start) * 1000
        if status is None:
            conn.abort()
            return why or "no answer"
        self.idle.append(conn)
        return None

    async def run(self, run: LoadRun) -> Tally:
        plan, schedule, spec = self.plan, self.schedule, self.workload.primary
        cpu0 = time.process_time()
        cap = plan.pool_size
        drain_s = plan.drain_s if plan.drain_s is not None else max(t.spec.timeout_s for t in self.workload.templates)
        why = None if self.stream else await self.preflight()
        if why is not None:
            run.error = f"no HTTP answer from {spec.shown_url}: {why}"
            self._close()
            return self.tally
        if not self.stream:
            # The run's objects live to its end: keep the collector from rescanning them (a
            # gen-2 pause is a pause of the schedule).  Before t0: a full collection takes time.
            gc.collect()
            gc.freeze()
        if self.fixed_t0 is not None:
            self.t0 = t0 = self.fixed_t0
        elif self.start_at is not None:
            self.t0 = t0 = time.perf_counter() + (self.start_at - time.time())
        else:
            self.t0 = t0 = time.perf_counter() + 0.01
        self.window = (t0 + schedule.steady_start, t0 + schedule.steady_start + schedule.steady_s)
        run.steady_window = self.window
        # The pool starts at what the rate needs at the preflight's latency and grows on demand;
        # its connections open when first used.
        pre_ms = self.tally.preflight_ms if math.isfinite(self.tally.preflight_ms) else 50.0
        start_pool = min(cap, max(4, math.ceil(plan.rate / self.stride * pre_ms / 1000 * 2)))
        while len(self.conns) < start_pool:
            self.idle.append(self._connection())
        helpers = [asyncio.create_task(self._expire())]
        if self.progress is not None and self.progress_every_s > 0:
            helpers.append(asyncio.create_task(self._report(schedule.end)))
        try:
            await self._schedule(cap, t0)
            self.settled = asyncio.Event()  # set by the last answer
            # A halted stream drains from the halt, not from the schedule's planned end.
            deadline = (time.perf_counter() if self.halted else t0 + schedule.end) + drain_s
            if self.pending or self.backlog:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.settled.wait(), timeout=max(0.0, deadline - time.perf_counter()))
            end = time.perf_counter()
        finally:
            if not self.stream:
                gc.unfreeze()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self._close()
        # Requests never answered within the drain count at their censored latency
        # (at least this long): never dropped.
        for k, due, issued in self.backlog:
            self.pending.setdefault(k, (due, issued, math.nan))
        self.backlog.clear()
        for k, (due, issued, sent) in sorted(self.pending.items()):
            self._outcome(k, due, issued, sent, end, f"not completed within the drain ({end - t0 - schedule.end:.1f} s)",
                          False)
        self._close_second()
        self.tally.connections_opened = sum(c.opened for c in self.conns)
        self.tally.achieved_rate, self.tally.achieved_rate_se = self.done_fit.rate_se(schedule.steady_s)
        self.tally.dispatched_rate = self.issue_fit.rate(schedule.steady_s)
        self.tally.cpu_s = time.process_time() - cpu0
        return self.tally

    def _close(self) -> None:
        for conn in self.conns:
            conn.abort()

    async def _schedule(self, cap: int, t0: float) -> None:
        """The scheduler loop: sleep until the next arrival is due, dispatch every arrival that
        is due by then (one timer per wake-up, not per request) to a free connection or the
        backlog, grow the pool by at most one connection per wake-up while arrivals wait."""
        offsets, first_steady = self.schedule.offsets, self.schedule.first_steady
        limit = lag_limit_s(self.plan.rate)
        tally = self.tally
        series_at = self._series_at
        dispatch = self._dispatch
        backlog = self.backlog
        k = self.index
        n = len(offsets)
        clock = time.perf_counter
        max_sleep = self.max_sleep
        min_sleep = wire.min_sleep_s(asyncio.get_running_loop())
        while k < n:
            delay = t0 + offsets[k] - clock()
            if delay > 0:
                await asyncio.sleep(min(max(delay, min_sleep), max_sleep))
            if self.halted:
                return
            now = clock()
            batch = 0
            while k < n and t0 + offsets[k] <= now:
                due = t0 + offsets[k]
                series_at(max(0, int(now - t0)))["sent"] += 1
                if k >= first_steady:
                    tally.steady_dispatched += 1
                    _record(tally.lag, now - due)
                    self.issue_fit.add(now - t0)
                    if now - due > limit:
                        tally.late += 1
                dispatch(k, due, now)
                k += self.stride
                batch += 1
                if batch >= 64:
                    break  # let the answers in while catching up
            self.next_k = k
            if backlog and len(self.conns) < cap:
                self._send(self._connection(), *backlog.popleft())
            if batch >= 64:
                await asyncio.sleep(0)
        self.schedule_done = True


def _pins(workload: Workload) -> dict[str, str]:
    """The pinned addresses of every template's host (name -> address)."""
    out: dict[str, str] = {}
    for t in workload.templates:
        address = pinning.address_for(t.spec.url, t.spec.resolve)
        host = urllib.parse.urlsplit(t.spec.url).hostname
        if address is not None and host:
            out[host] = address
    return out


def _new_run(workload: Workload, plan: LoadPlan, schedule: Schedule) -> LoadRun:
    spec = workload.primary
    return LoadRun(url=spec.shown_url, method=spec.method, success=workload.success_words(), plan=plan,
                   connections=plan.pool_size, started_at=utcnow(), workload=workload.words(),
                   analyses_per_request=workload.mean_analyses, pinned=_pins(workload), steady_s=schedule.steady_s,
                   truncated=schedule.truncated, planned=schedule.steady_count)


async def run_slice_async(workload: Workload, plan: LoadPlan, *, index: int = 0, stride: int = 1,
                          start_at: float | None = None, progress: ProgressFn | None = None,
                          progress_every_s: float = 5.0) -> tuple[LoadRun, Tally]:
    """Load one interleaved slice (``index::stride``) of the plan's schedule; the slice's
    LoadRun (error set when it could not start) and its tally."""
    schedule = build_schedule(plan)
    run = _new_run(workload, plan, schedule)
    wall0 = time.perf_counter()
    try:
        for t in workload.templates:
            _ssl_context(t.spec)
    except (OSError, ssl.SSLError) as exc:
        run.error = f"cannot load CA file {workload.primary.ca_file}: {exc}"
        return run, Tally()
    engine = _Engine(workload, plan, schedule, progress, progress_every_s, index=index, stride=stride,
                     start_at=start_at)
    drain = plan.drain_s if plan.drain_s is not None else workload.primary.timeout_s
    lead = max(0.0, start_at - time.time()) if start_at is not None else 0.0
    hard_cap = workload.primary.timeout_s + lead + schedule.end + drain + 10.0  # preflight + schedule + drain + slack
    try:
        tally = await asyncio.wait_for(engine.run(run), timeout=hard_cap)
    except TimeoutError:
        run.error = f"the load run did not finish within its hard bound of {hard_cap:.0f} s"
        return run, engine.tally
    run.duration_s = time.perf_counter() - wall0
    return run, tally


async def run_load_async(spec: RequestSpec | Workload, plan: LoadPlan, progress: ProgressFn | None = None,
                         progress_every_s: float = 5.0) -> LoadRun:
    """Run one load test in the running event loop (see :func:`run_load`)."""
    workload = Workload.of(spec)
    run, tally = await run_slice_async(workload, plan, progress=progress, progress_every_s=progress_every_s)
    if run.error is not None:
        run.preflight_ms = tally.preflight_ms
        return run
    return finish_run(run, tally, build_schedule(plan))


def run_load(spec: RequestSpec | Workload, plan: LoadPlan, progress: ProgressFn | None = None,
             progress_every_s: float = 5.0) -> LoadRun:
    """Run one bounded load test and return what it measured (never raises for target
    failures: they are outcomes, or ``LoadRun.error`` when nothing could be measured)."""
    return wire.run(run_load_async(spec, plan, progress, progress_every_s))


# ----------------------------------------------------------------------------- a stream until stopped


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One request of a :class:`Stream`: scheduled time (s since the caller's t0), success,
    latency from the scheduled time, HTTP status (None: no answer) and why it failed."""

    t: float
    ok: bool
    latency_ms: float
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 3), "ok": self.ok, "latency_ms": round(self.latency_ms, 1)}
        if self.status is not None:
            out["status"] = self.status
        if self.error:
            out["error"] = self.error
        return out


class Stream(threading.Thread):
    """The generator as a constant-arrival stream that runs until it is stopped: the HA
    drill's request stream.  The same engine as a load run (scheduler loop, bounded pool
    of keep-alive connections, the request spec's success rule, pinned addresses), in its
    own thread and event loop, with no preflight and one arrival every ``1 / rate`` s from
    the start -- at most ``max_requests`` of them, or as many as ``max_s`` seconds hold.

    What the drill reads while the stream runs: :meth:`outcomes` (every answered request,
    its scheduled time on the caller's clock -- ``t0`` is a ``time.monotonic()`` value),
    :meth:`oldest_pending` (the scheduled time of the oldest request without an outcome),
    ``sent``, ``exhausted`` and ``crashed``; after :meth:`stop`, :meth:`series` (per second:
    sent, ok, failed, p95, streamed by the engine) and :meth:`tally`.  A drill keeps one
    outcome per request (its timeline); a load run keeps none."""

    def __init__(self, spec: RequestSpec, *, rate: float, t0: float, max_requests: int, max_s: float) -> None:
        super().__init__(name="golive-stream", daemon=True)
        self.spec = spec
        count = max(1, min(max_requests, math.ceil(rate * (max_s + 1))))
        self.plan = LoadPlan(rate=rate, steady_s=count / rate, warmup_s=0.0, ramp_s=0.0,
                             latency_bound_s=spec.timeout_s, drain_s=spec.timeout_s, max_requests=count)
        self.schedule = build_schedule(self.plan)
        now_mono, now_perf = time.monotonic(), time.perf_counter()
        start = 0.05  # the first arrival, after the thread and its event loop have started
        self.base = now_mono - t0 + start  # the schedule's offset 0 on the caller's clock
        self._engine = _Engine(Workload.of(spec), self.plan, self.schedule, None, 0.0, observer=self._observe,
                               t0=now_perf + start, stream=True)
        self._outcomes: list[Outcome] = []
        self._done = bytearray(len(self.schedule.offsets))
        self._low = 0  # arrivals before this one all have an outcome
        self._lock = threading.Lock()
        self.crashed: str | None = None
        self.run_record: LoadRun | None = None

    # -- the engine's thread -------------------------------------------------

    def _observe(self, k: int, ok: bool, latency_s: float, status: int | None, error: str | None) -> None:
        outcome = Outcome(self.base + self.schedule.offsets[k], ok, latency_s * 1000, status, error)
        with self._lock:
            self._outcomes.append(outcome)
            self._done[k] = 1

    def run(self) -> None:
        try:
            wire.run(self._main())
        except Exception as exc:
            self.crashed = _client_error(exc, self.spec.timeout_s)

    async def _main(self) -> None:
        run = _new_run(Workload.of(self.spec), self.plan, self.schedule)
        self.run_record = run
        await self._engine.run(run)

    # -- the caller's thread -------------------------------------------------

    def stop(self, wait_s: float) -> None:
        """End the schedule (at the scheduler's next wake-up, within 0.05 s) and wait up to
        ``wait_s`` for the requests in flight (bounded by the request timeout)."""
        self._engine.halted = True
        self.join(wait_s)

    @property
    def sent(self) -> int:
        """Arrivals dispatched so far."""
        return self._engine.next_k

    @property
    def exhausted(self) -> bool:
        """Every arrival of the schedule was dispatched before the stream was stopped."""
        return self._engine.schedule_done and not self._engine.halted

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def oldest_pending(self) -> float | None:
        """Scheduled time (caller's clock) of the oldest arrival that is due and has no
        outcome yet (queued or in flight), or None."""
        with self._lock:
            done, low, n = self._done, self._low, len(self._done)
            while low < n and done[low]:
                low += 1
            self._low = low
        if low >= min(n, self._engine.next_k):
            return None
        return self.base + self.schedule.offsets[low]

    def series(self) -> list[dict[str, Any]]:
        """Per second of completion (``t`` on the caller's clock): requests sent, ok,
        failed and their p95 latency from the scheduled time -- the engine's streamed series."""
        return [{"t": round(self.base + s["t"], 3), "sent": s["sent"], "ok": s["ok"], "err": s["err"],
                 "p95_ms": s["p95_ms"]} for s in list(self._engine.tally.series)]

    def tally(self) -> Tally:
        return self._engine.tally


# ----------------------------------------------------------------------------- several processes


#: How long before t0 the worker processes are started (interpreter start, preflight).
WORKER_LEAD_S = 5.0


def progress_every_s() -> float:
    """Seconds between progress lines during a run (GOLIVE_PROGRESS_EVERY_S; 0 = none)."""
    try:
        return max(0.0, float(os.environ.get("GOLIVE_PROGRESS_EVERY_S", "5")))
    except ValueError:
        return 5.0


def local_worker() -> list[str]:
    """The command of a worker process on this host."""
    return [sys.executable, "-m", "checks.throughput.load", "--worker"]


def run_distributed(spec: RequestSpec | Workload, plan: LoadPlan, workers: Sequence[Sequence[str]], *,
                    lead_s: float = WORKER_LEAD_S, cwd: str | None = None) -> LoadRun:
    """One open-loop schedule loaded from several generator processes: worker i sends the
    arrivals ``i, i + n, i + 2n ...`` of the one schedule (so together they offer exactly
    the schedule), all from the same t0 (wall clock, ``lead_s`` after the start); each
    returns its tally with encoded HdrHistograms, and the merged tally is judged once.

    ``workers`` are commands that start ``python -m checks.throughput.load --worker`` on a host
    (:func:`local_worker`; ``["ssh", host, "cd /opt/golive && python3 -m checks.throughput.load
    --worker"]``; ``["ip", "netns", "exec", ns, ...]``): the job goes in as JSON on stdin,
    the tally comes out as JSON on stdout.  Hosts' clocks must agree to well under the
    lag limit (NTP)."""
    workload = Workload.of(spec)
    schedule = build_schedule(plan)
    run = _new_run(workload, plan, schedule)
    n = len(workers)
    if n < 1:
        raise ValueError("run_distributed needs at least one worker")
    start_at = time.time() + lead_s
    wall0 = time.perf_counter()
    drain = plan.drain_s if plan.drain_s is not None else workload.primary.timeout_s
    bound = lead_s + workload.primary.timeout_s + schedule.end + drain + 30.0
    procs = []
    for i, argv in enumerate(workers):
        job = {"workload": workload.to_list(), "plan": plan.to_dict(), "index": i, "stride": n, "start_at": start_at}
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=cwd)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
        proc.stdin = None  # written and closed: communicate() below only reads
        procs.append(proc)
    tallies: list[Tally] = []
    problems: list[str] = []
    for i, proc in enumerate(procs):
        try:
            out, err = proc.communicate(timeout=max(1.0, bound - (time.perf_counter() - wall0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            problems.append(f"worker {i} did not finish within {bound:.0f} s")
            continue
        try:
            doc = json.loads(out)
        except ValueError:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            problems.append(f"worker {i} ({' '.join(workers[i][:2])}) failed: {tail[0][:200]}")
            continue
        if doc.get("error"):
            problems.append(f"worker {i}: {doc['error']}")
        tallies.append(Tally.from_dict(doc["tally"]))
    run.duration_s = time.perf_counter() - wall0
    if problems:
        run.error = "; ".join(problems)
        return run
    merged = Tally.merge(tallies)
    finish_run(run, merged, schedule)
    run.steady_window = (start_at + schedule.steady_start, start_at + schedule.steady_start + schedule.steady_s)
    return run


def _worker_main() -> int:
    """``python -m checks.throughput.load --worker``: one slice of a schedule, job on stdin, tally out."""
    job = json.loads(sys.stdin.read())
    plan = LoadPlan(**job["plan"])
    run, tally = wire.run(run_slice_async(Workload.from_list(job["workload"]), plan, index=int(job["index"]),
                                             stride=int(job["stride"]), start_at=float(job["start_at"])))
    json.dump({"error": run.error, "tally": tally.to_dict()}, sys.stdout)
    sys.stdout.write("\n")
    return 0


def merge_runs(runs: Sequence[LoadRun]) -> dict[str, Any]:
    """Percentiles of several runs' steady requests from their stored histograms (exact:
    the HdrHistograms add), e.g. two report.json files of the same target."""
    total = _new_hist()
    for r in runs:
        total.add(decode_hist(r.hdr.get("corrected", "")))
    confidence = runs[0].plan.confidence if runs else DEFAULT_CONFIDENCE
    return {"count": int(total.get_total_count()),
            "percentiles": {f"p{p:g}": quantile_interval(total, p, confidence).to_dict() for p in PERCENTILES}}


# ----------------------------------------------------------------------------- measurements


@dataclasses.dataclass(frozen=True)
class ThroughputMeasurements:
    """The three judged values of one run, sharing one evidence record."""

    apm: Measurement
    p95: Measurement
    error_rate: Measurement
    run: LoadRun


def too_few_samples(run: LoadRun, p: float) -> str | None:
    """``too few samples (n, needed)`` when the run's steady requests are too few for a
    confidence bound on the p-th percentile at the plan's confidence, else None."""
    q = run.quantile(p)
    if q.enough:
        return None
    return (f"too few samples ({q.n}, needed {q.needed}) for a p{p:g} with a {q.confidence:.0%} confidence bound: "
            f"lengthen the run (profile throughput.duration_max) or raise the rate")


def measurements(run: LoadRun, percentiles: Sequence[float] = ()) -> ThroughputMeasurements:
    """The judged values; ``percentiles`` are those the profile asks for -- a p95 from too
    few samples is an error, not a measurement."""
    ev = run.evidence()
    if run.error is not None:
        failed = Measurement.failed(run.error, ev)
        return ThroughputMeasurements(failed, failed, failed, run)
    apm = Measurement(round(run.achieved_apm, 4),
                      f"{fmt_apm(run.achieved_apm)} APM achieved (offered {fmt_apm(run.offered_apm)} APM, "
                      f"{run.ok} of {run.steady} requests ok over {run.steady_s:.3g} s"
                      + (f", {run.ok_analyses} analyses" if run.analyses_per_request != 1 else "") + ")", ev, unit="APM")
    q95 = run.quantile(95)
    short = next((why for p in percentiles if (why := too_few_samples(run, p)) is not None), None)
    if short is not None:
        p95 = Measurement.failed(short, ev)
    else:
        ci = (f"{q95.confidence:.0%} CI {fmt_ms(q95.low) if q95.low is not None else '?'} - "
              f"{fmt_ms(q95.high) if q95.high is not None else '?'}, n={q95.n}")
        p95 = Measurement(round(run.corrected.p95, 3),
                          f"p95 {fmt_ms(run.corrected.p95)} ({ci}; from the scheduled send; naive "
                          f"{fmt_ms(run.naive.p95)}; p99 {fmt_ms(run.corrected.p99)})", ev, unit="ms")
    top = max(run.errors.items(), key=lambda kv: kv[1])[0] if run.errors else ""
    err = Measurement(round(run.error_rate, 6),
                      f"{run.error_rate * 100:.2f}% failed ({run.steady - run.ok} of {run.steady}; success ratio "
                      f"{run.success_ratio * 100:.2f}%)" + (f"; most frequent: {top}" if top else ""),
                      ev, unit="ratio")
    return ThroughputMeasurements(apm, p95, err, run)


def _body_of(body: Any, body_file: str | None, what: str) -> bytes | None:
    if body_file:
        try:
            return Path(body_file).expanduser().read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {what}.body_file {body_file}: {exc.strerror}") from None
    return json.dumps(body).encode() if body is not None else None


def request_spec_from_target(inference: Any, ca_file: str | None,
                             resolve: Mapping[str, str] | None = None) -> RequestSpec:
    """A :class:`RequestSpec` from a target's ``inference`` section (golive.target.InferenceSpec),
    with the target's pinned addresses (``endpoints.resolve``).  Raises ValueError for an
    unreadable ``body_file``."""
    headers = dict(inference.headers)
    body = _body_of(inference.body, inference.body_file, "inference")
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return RequestSpec(url=inference.url, method=inference.method, body=body, headers=headers,
                       expect_status=inference.expect_status, success_field=inference.success_field,
                       success_value=inference.success_value, ca_file=ca_file,
                       timeout_s=float(getattr(inference, "timeout_s", 30.0)), resolve=dict(resolve or {}))


def workload_from_target(inference: Any, ca_file: str | None, resolve: Mapping[str, str] | None = None) -> Workload:
    """The target's request mix (``inference.requests``: templates with weights and
    analyses per request; each inherits the endpoint's url, method, headers and success
    rule unless it sets its own), or the single inference request.  ValueError for an
    unreadable body file."""
    base = request_spec_from_target(inference, ca_file, resolve)
    mix = getattr(inference, "requests", None) or []
    if not mix:
        return Workload((Template(base, "request", 1.0, int(getattr(inference, "analyses", 1) or 1)),))
    templates = []
    for item in mix:
        body = _body_of(item.body, item.body_file, f"inference.requests[{item.name}]")
        headers = {**base.headers, **item.headers}
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        spec = dataclasses.replace(base, url=item.url or base.url, method=item.method or base.method,
                                   body=body if body is not None else base.body, headers=headers)
        templates.append(Template(spec, item.name, item.weight, item.analyses))
    return Workload(tuple(templates))


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
        # Short of the rate beyond counting noise: two standard errors of the completion fit.
        if run.achieved_rate + 2 * run.achieved_rate_se < self.min_achieved_ratio * run.plan.rate:
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
    requests: int = 0
    steady_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rate_apm": round(self.rate_apm, 3), "sustained": self.sustained, "why": self.why,
                "achieved_apm": round(self.achieved_apm, 3), "requests": self.requests,
                "steady_s": round(self.steady_s, 3),
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
    failed_why: str = ""
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
        hi = f", fails at {fmt_apm(self.failed_apm)} APM ({self.failed_why})" if self.failed_apm else ""
        return f"{fmt_apm(self.capacity_apm)} APM sustained (the knee){hi}"

    def to_dict(self) -> dict[str, Any]:
        return {"capacity_apm": round(self.capacity_apm, 3),
                "failed_apm": None if self.failed_apm is None else round(self.failed_apm, 3),
                "knee_apm": round(self.capacity_apm, 3), "failed_criterion": self.failed_why,
                "start_apm": self.start_apm, "max_apm": self.max_apm, "slo": self.slo.words(),
                "stopped": self.stopped, "error": self.error, "duration_s": round(self.duration_s, 3),
                "steps": [s.to_dict() for s in self.steps]}

    def evidence(self) -> Evidence:
        lines = [f"{s.rate_apm:10.1f} APM: {'sustained' if s.sustained else 'missed   '} "
                 f"(achieved {fmt_apm(s.achieved_apm)} APM, p95 {fmt_ms(s.p95_ms)}, errors {s.error_rate * 100:.1f}%, "
                 f"{s.requests} requests over {s.steady_s:.3g} s)"
                 + ("" if s.sustained else f" -- {s.why}") for s in self.steps]
        return Evidence(probe="throughput.capacity", subject=self.url,
                        method=(f"capacity search: open-loop steps from {fmt_apm(self.start_apm)} APM, doubling up "
                                f"to {fmt_apm(self.max_apm)} APM, then bisection between the last good and the first "
                                "bad rate (the knee); each step long enough for its percentile; a step is sustained when "
                                f"{self.slo.words()}"),
                        tool=TOOL, raw="\n".join([*lines, f"stopped: {self.stopped}"]),
                        duration_s=round(self.duration_s, 3), data=self.to_dict())


def step_seconds(rate_rps: float, step_s: float, slo: Slo, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """A capacity step's steady time: ``step_s``, lengthened until the step has the samples
    its p95 judgement needs (72 requests at 95 % confidence).  An SLO without a latency
    limit judges the error rate from what ``step_s`` gives."""
    if slo.p95_ms is None:
        return step_s
    return max(step_s, samples_needed(95, confidence) / rate_rps)


def search_capacity(spec: RequestSpec | Workload, *, start_apm: float, max_apm: float, slo: Slo, step_s: float,
                    warmup_s: float = 1.0, ramp_s: float = 1.0, connections: int = 0,
                    time_budget_s: float = 120.0, max_steps: int = 14, precision: float = 0.05,
                    min_fraction: float = 1 / 8, confidence: float = DEFAULT_CONFIDENCE,
                    progress: Callable[[str], None] | None = None) -> CapacityResult:
    """The knee: the highest rate (APM) the target sustains within ``slo``.  Double from
    ``start_apm`` (halve when it already fails, down to ``min_fraction x start_apm``) until
    the last good and first bad rates bracket the knee, then bisect until the bracket is
    within ``precision``; bounded by ``max_apm``, ``max_steps`` and ``time_budget_s``.  Every
    step runs long enough for its judgement (:func:`step_seconds`).  A miss during the
    bisection is confirmed by running that rate once more.  After a missed step the target
    gets a bounded cool-down (until a single request is fast again).  The result names the
    criterion that failed at the first bad rate."""
    if start_apm <= 0 or max_apm < start_apm:
        raise ValueError("need 0 < start_apm <= max_apm")
    workload = Workload.of(spec)
    spec = workload.primary
    per_request = workload.mean_analyses
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
        rps = rate / 60 / per_request
        steady = step_seconds(rps, step_s, slo, confidence)
        if result.steps and time.monotonic() - began + steady + warmup_s + ramp_s > time_budget_s:
            result.stopped = f"time budget ({time_budget_s:g} s)"
            break
        bound = slo.p95_ms / 1000 if slo.p95_ms is not None else DEFAULT_LATENCY_BOUND_S
        plan = LoadPlan(rate=rps, steady_s=steady, warmup_s=warmup_s, ramp_s=ramp_s,
                        connections=connections, latency_bound_s=bound,
                        drain_s=min(spec.timeout_s, max(2.0, steady)), confidence=confidence)
        run = run_load(workload, plan, progress=None)
        if run.error is not None:
            result.error = run.error
            result.stopped = "error"
            break
        ok, why = slo.judge(run)
        result.steps.append(CapacityStep(rate, ok, why, run.achieved_apm, run.corrected.p95, run.error_rate,
                                         run.steady, run.steady_s))
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
            result.failed_why = why
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
    start = time.perf_counter()
    status, body, why = await wire.fetch(prepare(spec))
    if why is None and status is not None:
        why = judge_response(spec, status, body)
    return (time.perf_counter() - start) * 1000, why


def probe_once(spec: RequestSpec) -> tuple[float, str | None]:
    """One request on a fresh connection: (latency in ms, failure kind or None)."""
    return wire.run(_probe_once_async(spec))


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
    if argv is None and sys.argv[1:] == ["--worker"]:
        return _worker_main()
    parser = argparse.ArgumentParser(prog="python -m checks.throughput.load",
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
    parser.add_argument("--workers", type=int, default=1,
                        help="split the schedule over this many local worker processes (run_distributed)")
    args = parser.parse_args(argv)
    headers = {"Content-Type": "application/json"} if args.body is not None else {}
    spec = RequestSpec(url=args.url, method=args.method, body=args.body.encode() if args.body is not None else None,
                       headers=headers, expect_status=args.expect_status, success_field=args.success_field,
                       success_value=args.success_value, ca_file=args.ca_file, timeout_s=args.timeout)
    plan = LoadPlan(rate=args.rate, steady_s=args.duration, warmup_s=args.warmup, ramp_s=args.ramp,
                    connections=args.connections, max_requests=args.max_requests)

    def show(p: Progress) -> None:
        print(p.line(), file=sys.stderr, flush=True)

    if args.workers > 1:
        run = run_distributed(spec, plan, [local_worker()] * args.workers)
    else:
        run = run_load(spec, plan, show if args.progress else None)
    json.dump({**run.summary(), **run.chart_data()}, sys.stdout)
    sys.stdout.write("\n")
    return 0 if run.error is None else 2


if __name__ == "__main__":
    sys.exit(main())
