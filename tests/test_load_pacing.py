"""Issue #16: throughput you can defend -- against a real server that serves ONE request at
a time (a fixed service time; HTTP 503 when a request arrives while it is busy), run as its
own process so the generator and the server do not share an interpreter.

- pacing: one continuous arrival schedule, so below capacity there is never an overlap
  (zero 503s) across warm-up, ramp and steady phases;
- capacity: the search finds the server's knee (1 / service time) within 10 %;
- samples: a percentile from too few requests is an error, with (n, needed);
- histograms: two worker processes' merged result equals one process's at the same rate;
- the workload as data: a request mix counts analyses, not requests;
- one success rule for the throughput generator and the HA drill.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from checks import request as request_rule
from checks.ha import probes as ha
from checks.throughput import load
from checks.throughput.load import LoadPlan, RequestSpec, Template, Workload, run_load
from lab.netns import netns_available, start_fleet
from lab.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE_ERROR_TEXT = load.SCHEDULE_ERROR  # also inside a worker's error ("worker 1: the load generator ...")
SERVICE_S = 0.040  # the one-at-a-time server's service time: capacity 25 requests/s = 1500 APM

SERVER = textwrap.dedent("""
    import asyncio, json, sys
    from aiohttp import web

    service_s = float(sys.argv[2])
    state = {"busy": False, "served": 0, "rejected": 0, "fast": 0}
    lock = asyncio.Lock()
    waiting = [0]

    async def one(request):
        # strict: one at a time, 503 when a request arrives while one is being served
        await request.read()
        service = float(request.query.get("s", service_s))
        if state["busy"]:
            state["rejected"] += 1
            return web.json_response({"status": "busy"}, status=503)
        state["busy"] = True
        try:
            await asyncio.sleep(service)
        finally:
            state["busy"] = False
        state["served"] += 1
        return web.json_response({"status": "ok", "ok": True})

    async def one_slot(request):
        # one at a time with ONE waiting slot (503 beyond it): the same capacity, 1 /
        # service time, but a request dispatched a few ms early is not refused
        await request.read()
        if waiting[0] >= 2:
            state["rejected"] += 1
            return web.json_response({"status": "busy"}, status=503)
        waiting[0] += 1
        try:
            async with lock:
                await asyncio.sleep(service_s)
        finally:
            waiting[0] -= 1
        state["served"] += 1
        return web.json_response({"status": "ok", "ok": True})

    async def fast(request):
        body = await request.read()
        state["fast"] += 1
        await asyncio.sleep(0.002)
        kind = json.loads(body).get("kind", "") if body else ""
        return web.json_response({"status": "ok", "kind": kind})

    async def stats(_):
        return web.json_response(state)

    async def answer(request):
        # the status and the body the query asks for (the success-rule tests)
        await request.read()
        return web.Response(status=int(request.query.get("status", "200")),
                            body=request.query.get("body", "").encode(), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/answer", answer)
    app.router.add_post("/one", one)
    app.router.add_post("/one-slot", one_slot)
    app.router.add_post("/fast", fast)
    app.router.add_get("/stats", stats)
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    web.run_app(app, host=host, port=int(sys.argv[1]), print=None, access_log=None)
""")


class OneAtATime:
    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as resp:
            data: dict[str, int] = json.loads(resp.read())
        return data


@contextlib.contextmanager
def _serving(workdir: Path, host: str = "127.0.0.1") -> Iterator[OneAtATime]:
    """The server script as its own process on ``host`` (a free port), stopped on exit."""
    script = workdir / "server.py"
    script.write_text(SERVER)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(SERVICE_S), host])
    try:
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                OneAtATime(url).stats()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the one-at-a-time server did not start") from None
                time.sleep(0.1)
        yield OneAtATime(url)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneAtATime]:
    with _serving(tmp_path_factory.mktemp("one-at-a-time")) as s:
        yield s


def _one(server: OneAtATime, path: str = "/one") -> RequestSpec:
    return RequestSpec(url=f"{server.url}{path}", body=b"{}", headers={"Content-Type": "application/json"},
                       success_field="status", success_value="ok", timeout_s=10)


def _retrying(spec: RequestSpec | Workload, plan: LoadPlan, tries: int = 3,
              how: Callable[[], load.LoadRun] | None = None) -> load.LoadRun:
    """run_load (or ``how()``), again when the generator itself reports it could not keep
    its schedule (this machine is shared: the generator says so rather than blame the target)."""
    go = how or (lambda: run_load(spec, plan))
    for _ in range(tries - 1):
        run = go()
        if run.error is None or SCHEDULE_ERROR_TEXT not in run.error:
            return run
    return go()


# ----------------------------------------------------------------------------- pacing


@pytest.mark.parametrize("fraction", [0.5, 0.7])
def test_below_capacity_a_one_at_a_time_server_sees_no_overlap(server: OneAtATime, fraction: float) -> None:
    """Issue #16's case, scaled: a server that serves one analysis at a time for 250 ms
    (capacity 4/s) loaded at 2 and 2.8 arrivals/s through warm-up, ramp and steady phase.
    The old schedule restarted the steady phase at warm-up + ramp, a gap of a fraction of
    the interval there: a 503.  One continuous sequence never comes closer than 1 / rate,
    so every request finds the server idle (>= 107 ms of slack, above this shared
    machine's scheduling jitter)."""
    service = 0.25
    rate = fraction / service
    before = server.stats()
    run = _retrying(_one(server, f"/one?s={service}"), LoadPlan(rate=rate, steady_s=16 / rate, warmup_s=1.5,
                                                                  ramp_s=1.5))
    after = server.stats()
    assert run.error is None, run.raw()
    assert run.errors == {} and run.ok == run.steady == 16, run.raw()
    assert after["rejected"] == before["rejected"], (before, after)  # not one 503 in any phase
    assert after["served"] - before["served"] == run.total_completed + 1  # + the preflight
    assert run.achieved_rate == pytest.approx(rate, rel=0.1)
    assert run.connections_opened <= 6  # the pool opens what the load needs, not rate x 2 s


# ----------------------------------------------------------------------------- the knee


def test_capacity_search_finds_the_knee_of_a_one_at_a_time_server(server: OneAtATime) -> None:
    """The server serves one request at a time (capacity 1 / service time) and keeps one
    waiting: so the knee is its capacity, not where this shared machine's scheduling jitter
    first makes two arrivals overlap (test_below_capacity_... uses the strict server)."""
    knee = 60 / SERVICE_S  # 1500 APM
    slo = load.Slo(p95_ms=4 * SERVICE_S * 1000, error_rate_max=0.02)
    for _ in range(2):  # again only when the generator reports its own schedule error (a busy shared machine)
        result = load.search_capacity(_one(server, "/one-slot"), start_apm=knee * 0.5, max_apm=knee * 3, slo=slo,
                                      step_s=1.0, warmup_s=0.5, ramp_s=0.5, time_budget_s=75, precision=0.05)
        if result.error is None or SCHEDULE_ERROR_TEXT not in result.error:
            break
    assert result.error is None, result.to_dict()
    assert result.capacity_apm == pytest.approx(knee, rel=0.10), result.to_dict()
    assert result.failed_apm is not None and result.failed_apm <= result.capacity_apm * 1.06, result.to_dict()
    # the criterion that failed past the knee: 503s, or fewer completions than offered
    assert "errors" in result.failed_why or "achieved" in result.failed_why, result.failed_why
    # every step had the samples its p95 needs
    assert all(s["requests"] >= load.samples_needed(95) for s in result.to_dict()["steps"])
    assert "the knee" in result.display()


# ----------------------------------------------------------------------------- samples


def test_samples_needed_and_order_statistic_intervals() -> None:
    assert load.samples_needed(95, 0.95) == 72 and load.samples_needed(99, 0.95) == 368
    assert load.samples_needed(95, 0.99) == 104
    for p in (95, 99):  # exactly enough: the interval has both ends; one fewer: no upper end
        n = load.samples_needed(p)
        assert None not in load.quantile_ranks(n, p, 0.95) and load.quantile_ranks(n - 1, p, 0.95)[1] is None
    lo, hi = load.quantile_ranks(100, 50, 0.95)
    assert (lo, hi) == (40, 61)  # the textbook interval for the median of 100
    assert load.quantile_ranks(10, 95, 0.95) == (8, None)  # 10 samples: a lower bound, no upper one
    # coverage: the interval holds the true quantile of an exponential in >= 95 % of runs
    rng = random.Random(16)
    true_p95 = -math.log(0.05)
    hits = 0
    for _ in range(300):
        values = sorted(rng.expovariate(1.0) for _ in range(200))
        lo, hi = load.quantile_ranks(200, 95, 0.95)
        assert lo is not None and hi is not None
        hits += values[lo - 1] <= true_p95 <= values[hi - 1]
    assert hits >= 0.93 * 300


def test_a_p95_from_too_few_samples_is_an_error(server: OneAtATime) -> None:
    run = run_load(_one(server), LoadPlan(rate=5, steady_s=1.2, warmup_s=0, ramp_s=0))
    assert run.error is None and run.steady == 6
    m = load.measurements(run, percentiles=(95,))
    assert m.p95.error is not None and m.p95.error.startswith("too few samples (6, needed 72)"), m.p95
    assert m.apm.error is None and m.error_rate.error is None  # the rate and errors are still measured
    q = run.quantiles["p95"]
    assert q.n == 6 and not q.enough and q.high is None
    assert run.summary()["percentiles"]["p95"]["needed"] == 72


# ----------------------------------------------------------------------------- histograms merge


def test_two_workers_merged_equal_one_worker_at_the_same_rate(server: OneAtATime) -> None:
    spec = RequestSpec(url=f"{server.url}/fast", body=b"{}", headers={"Content-Type": "application/json"},
                       success_field="status", success_value="ok")
    plan = LoadPlan(rate=100, steady_s=3, warmup_s=0.5, ramp_s=0.5)
    one = _retrying(spec, plan, how=lambda: load.run_distributed(spec, plan, [load.local_worker()], lead_s=5,
                                                                 cwd=str(ROOT)))
    two = _retrying(spec, plan, how=lambda: load.run_distributed(spec, plan, [load.local_worker()] * 2, lead_s=5,
                                                                 cwd=str(ROOT)))
    assert one.error is None and two.error is None, (one.raw(), two.raw())
    assert two.workers == 2 and one.workers == 1
    # the same schedule: the two slices together dispatched exactly what one process did
    assert two.steady == one.steady == 300 and two.ok == one.ok == 300
    assert two.achieved_rate == pytest.approx(one.achieved_rate, rel=0.05)
    assert two.corrected.count == one.corrected.count == 300
    # latencies within noise: a few ms of service on a loopback server, plus this shared
    # machine's scheduling delays (two generator processes compete for its two cores)
    assert one.corrected.p50 < 100 and two.corrected.p50 < 100, (one.raw(), two.raw())
    # the stored, encoded histograms merge exactly: the merged run's own from its slices
    merged = load.merge_runs([one, two])
    assert merged["count"] == 600


@pytest.mark.skipif(not netns_available(), reason="needs root and `ip netns` (network namespaces)")
def test_workers_in_network_namespaces_load_one_schedule(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Load beyond one machine: two worker hosts (network namespaces, lab/netns.py), each
    running golive's generator as a worker process in its own network stack (`ip netns
    exec`; the namespace hosts' ssh logins cannot run this checkout's Python), load
    interleaved slices of one schedule against a server on the fleet's bridge; golive merges
    their histograms into one verdict."""
    tmp = tmp_path_factory.mktemp("netns-workers")
    with start_fleet(tmp / "fleet", 2) as fleet:
        fleet.verify_routes()  # nothing is sent unless every host address goes through our bridge
        for host in fleet:  # and the hosts reach the bridge through their own link, nothing else
            route = subprocess.run(["ip", "netns", "exec", host.netns, "ip", "route", "get", fleet.gateway],
                                   check=True, capture_output=True, text=True).stdout
            assert route.startswith(fleet.gateway) and " via " not in route, route  # directly on the link
        with _serving(tmp, fleet.gateway) as srv:
            spec = RequestSpec(url=f"{srv.url}/fast", body=b"{}", headers={"Content-Type": "application/json"},
                               success_field="status", success_value="ok")
            workers = [["ip", "netns", "exec", h.netns, sys.executable, "-m", "checks.throughput.load", "--worker"]
                       for h in fleet]
            plan = LoadPlan(rate=60, steady_s=3, warmup_s=0.5, ramp_s=0.5)
            counted: list[int] = []

            def attempt() -> load.LoadRun:
                before = srv.stats()["fast"]
                run = load.run_distributed(spec, plan, workers, lead_s=6.0, cwd=str(ROOT))
                counted.append(srv.stats()["fast"] - before)
                return run

            run = _retrying(spec, plan, how=attempt)
            served = counted[-1]
    assert run.error is None, run.raw()
    assert run.workers == 2 and run.steady == run.ok == 180, run.raw()
    assert served == run.total_completed + 2  # every request reached the server (+ one preflight per worker)
    assert run.achieved_rate == pytest.approx(60, rel=0.05)
    assert run.corrected.count == 180 and run.hdr["corrected"]


def test_encoded_histograms_merge_exactly() -> None:
    a, b, both = load.Tally(), load.Tally(), load.Tally()
    rng = random.Random(3)
    for i in range(2000):
        v = rng.expovariate(20)
        load._record((a if i % 2 else b).corrected, v)
        load._record(both.corrected, v)
    merged = load.Tally.merge([load.Tally.from_dict(json.loads(json.dumps(a.to_dict()))),
                               load.Tally.from_dict(json.loads(json.dumps(b.to_dict())))])
    for p in (50, 95, 99, 99.9):
        assert merged.corrected.get_value_at_percentile(p) == both.corrected.get_value_at_percentile(p)
    assert merged.corrected.get_total_count() == 2000


# ----------------------------------------------------------------------------- the workload as data


def test_a_request_mix_counts_analyses_not_requests(server: OneAtATime) -> None:
    def template(kind: str, weight: float, analyses: int) -> Template:
        return Template(RequestSpec(url=f"{server.url}/fast", body=json.dumps({"kind": kind}).encode(),
                                    headers={"Content-Type": "application/json"}, success_field="kind",
                                    success_value=kind), kind, weight, analyses)

    mix = Workload((template("photo", 3, 1), template("video", 1, 3)))
    assert mix.sequence(8) == [0, 0, 1, 0, 0, 0, 1, 0] or sorted(mix.sequence(8)) == [0] * 6 + [1] * 2
    assert mix.mean_analyses == pytest.approx(1.5)
    run = _retrying(mix, LoadPlan(rate=40, steady_s=2, warmup_s=0.2, ramp_s=0.2))
    assert run.error is None and run.ok == 80, run.raw()
    assert run.per_template == {"photo": {"steady": 60, "ok": 60, "analyses_ok": 60},
                                "video": {"steady": 20, "ok": 20, "analyses_ok": 60}}
    assert run.ok_analyses == 120
    assert run.offered_apm == pytest.approx(40 * 60 * 1.5)
    assert run.achieved_apm == pytest.approx(3600, rel=0.05)  # analyses per minute, not 2400 requests


# ----------------------------------------------------------------------------- one success rule


BODIES = [
    (200, b'{"ok": false}'), (200, b'{"ok": true}'), (200, b'{"ok": 0}'), (200, b'{"ok": "yes"}'),
    (200, b'{"other": 1}'), (200, b"not json"), (200, b"[1, 2]"), (500, b'{"ok": true}'), (200, b'{"ok": null}'),
]


def _both_requests(url: str) -> tuple[RequestSpec, RequestSpec]:
    """The throughput family's request and the HA drill's (``ha.request: inference``), each
    built by its family from one target whose inference section says ``success_field: ok``."""
    from checks.ha.family import _request
    from checks.ha.spec import HaReq
    from golive.checkdef import CheckContext
    from golive.target import target_model

    target = target_model().model_validate({"name": "same-rule", "inference": {
        "url": url, "method": "POST", "body": {"a": 1}, "success_field": "ok"},
        "ha": {"entrypoint": url, "request": "inference"}})
    throughput = load.workload_from_target(target.inference, None).primary
    drill = _request(CheckContext.for_test(req=HaReq(), spec=target.ha, target=target))
    return throughput, drill


@pytest.mark.parametrize(("status", "body"), BODIES)
def test_throughput_and_the_ha_drill_judge_a_body_the_same_way(status: int, body: bytes) -> None:
    """Issue #12 item 5: ``success_field: ok`` with ``{"ok": false}`` is a failure in both:
    both families build one request spec (checks.throughput.load.RequestSpec) with one rule."""
    generator, drill = _both_requests("http://127.0.0.1:1/x")
    assert type(drill) is type(generator) and drill.success_field == generator.success_field == "ok"
    assert load.judge_response(generator, status, body) == drill.judge(status, body)
    assert (drill.judge(status, body) is None) == (status == 200 and body in (b'{"ok": true}', b'{"ok": "yes"}'))
    assert request_rule.judge(200, b'{"ok": false}', expect_status=None, success_field="ok") == "body ok=false"


@pytest.mark.parametrize(("status", "body"), [BODIES[0], BODIES[1], BODIES[5], BODIES[7]],
                         ids=["ok-false", "ok-true", "not-json", "http-500"])
def test_a_throughput_run_and_the_ha_drill_stream_judge_real_answers_the_same_way(
        server: OneAtATime, status: int, body: bytes) -> None:
    """The same answers from a real server, through the one engine: a throughput run and a
    (zero-instance) HA drill, whose stream is the engine's Stream, count the same outcome
    with the same failure kind as the rule (checks.request.judge)."""
    url = f"{server.url}/answer?" + urllib.parse.urlencode({"status": status, "body": body.decode()})
    generator, drill_request = _both_requests(url)
    want = request_rule.judge(status, body, expect_status=200, success_field="ok")
    run = _retrying(generator, LoadPlan(rate=20, steady_s=0.5, warmup_s=0.0, ramp_s=0.0))
    assert run.error is None and run.steady == 10, run.raw()
    assert run.errors == ({} if want is None else {want: 10}), run.raw()
    record = ha.Drill(ha.DrillPlan(request=drill_request, entrypoint=f"{server.url}/stats", instances=(), drill=(),
                                   rate=20, steady_s=0.5, timeout_s=2)).run()
    held = want is None  # a failing stream: the steady state does not hold, nothing would be stopped
    assert record.aborted == (None if held else "the steady state did not hold before the drill: nothing was "
                              "stopped"), record.aborted
    assert record.requests_sent >= 10
    outcomes = {(s.ok, s.status, s.error) for s in record.samples}
    assert outcomes == {(want is None, status, want)}, outcomes
    assert record.before is not None and record.before.total >= 8
    assert record.before.errors == ({} if want is None else {want: record.before.total})
    assert record.series and sum(p["ok"] + p["err"] for p in record.series) == len(record.samples)


def test_the_steady_phase_is_lengthened_within_the_profiles_bounds() -> None:
    from checks.throughput.family import ThroughputReq, steady_duration

    # 0.1 req/s (6 APM, the PoC tier) for 60 s is 6 requests: a p95 needs 72
    short = ThroughputReq(apm_min=6, p95="2 s", duration="60 s")
    assert steady_duration(short, 0.1, None)[0] == 60  # no duration_max: not lengthened (p95 -> error)
    assert "too short for the 72 samples" in steady_duration(short, 0.1, None)[1]
    room = ThroughputReq(apm_min=6, p95="2 s", duration="60 s", duration_max="15 min")
    assert steady_duration(room, 0.1, None) == (720, steady_duration(room, 0.1, None)[1])
    # the target's max_duration_s still caps it: 300 s would be 30 samples, still too few
    assert steady_duration(room, 0.1, 300)[0] == 60 and "too short" in steady_duration(room, 0.1, 300)[1]
    assert steady_duration(ThroughputReq(apm_min=6, duration="60 s"), 0.1, None)[0] == 60  # no percentile judged
