"""golive's load generator against locust and wrk, on the same lab service, in one run.

Two ways to run it (docs/throughput.md has the numbers measured on the project's machine):

    .venv/bin/python benchmarks/bench_load.py [--rates 100,200,400] [--seconds 8]
        generator accuracy and CPU cost: each tool loads POST /v1/analyze of one lab (nginx
        TLS in front of two inference instances) for a few seconds; JSON results go to
        benchmarks/results/bench_load-<UTC>.json and a Markdown table to stdout.

    .venv/bin/pytest benchmarks/bench_load.py --benchmark-autosave [--benchmark-compare]
        per-request latency of the inference core (pytest-benchmark; saved in its storage,
        .benchmarks/, so --benchmark-compare shows the change against the previous run).

How the comparison is fair: every tool runs as a child process; over the same window of
its steady state (after start-up, warm-up and locust's spawning) the parent samples the
child's CPU time from /proc/PID/stat and the lab instances' own analysis counters.  So
"achieved" is what the service really served in that window, whatever the tool reports,
and "CPU per 1000 requests" excludes interpreter start-up.  Requests per CPU-second is the
rate one fully busy core could drive (max sustainable rate per core).  wrk is closed loop
(no rate control): it shows what the service can take and what a C client costs.
"""
from __future__ import annotations

import argparse
import csv
import http.client
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.run import SAMPLE_BODY, RunningLab, start_lab

RESULTS = ROOT / "benchmarks" / "results"
BODY = json.dumps(SAMPLE_BODY)
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_S = 3.5  # start-up, warm-up/ramp (golive) and spawning (locust) are over by then

LOCUSTFILE = """
import json, os
from locust import FastHttpUser, constant_throughput, task

BODY = os.environ["BENCH_BODY"]
HEADERS = {"Content-Type": "application/json"}


class Analyze(FastHttpUser):
    wait_time = constant_throughput(float(os.environ["BENCH_RATE_PER_USER"]))
    insecure = True

    @task
    def analyze(self):
        with self.client.post("/v1/analyze", data=BODY, headers=HEADERS, catch_response=True) as r:
            if r.status_code != 200 or json.loads(r.content).get("status") != "ok":
                r.failure("not ok")
"""

WRK_LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
"""


def cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def measure(tool: str, cmd: list[str], lab: RunningLab, window_s: float, run_s: float,
            offered: float | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one tool; sample its CPU and the lab's counters over [START_S, START_S + window]."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, cwd=ROOT, start_new_session=True)
    try:
        time.sleep(START_S)
        c0, s0, t0 = cpu_s(proc.pid), lab.analyses_served(), time.monotonic()
        time.sleep(window_s)
        c1, s1, t1 = cpu_s(proc.pid), lab.analyses_served(), time.monotonic()
        out, err = proc.communicate(timeout=run_s + 30)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    requests = s1 - s0
    cpu = c1 - c0
    achieved = requests / (t1 - t0)
    row: dict[str, Any] = {
        "tool": tool, "offered_rps": offered, "achieved_rps": round(achieved, 2),
        "accuracy": round(achieved / offered, 4) if offered else None,
        "window_s": round(t1 - t0, 3), "requests_in_window": requests,
        "cpu_s_in_window": round(cpu, 3), "client_cpu_util": round(cpu / (t1 - t0), 3),
        "cpu_s_per_1000": round(cpu / requests * 1000, 4) if requests else None,
        "requests_per_cpu_s": round(requests / cpu) if cpu > 0 else None,
        "exit_code": proc.returncode, "wall_s": round(time.monotonic() - started, 2),
    }
    if proc.returncode not in (0, None):
        row["stderr_tail"] = err[-500:]
    row["_stdout"] = out
    return row


def golive_cmd(lab: RunningLab, rate: float, seconds: float) -> list[str]:
    return [sys.executable, "-m", "checks.throughput.load", f"{lab.https_url}/v1/analyze", "--rate", f"{rate:g}",
            "--duration", f"{seconds:g}", "--warmup", "1", "--ramp", "1", "--ca-file", str(lab.ca_file),
            "--body", BODY, "--success-field", "status", "--success-value", "ok"]


def run_golive(lab: RunningLab, rate: float, window_s: float) -> dict[str, Any]:
    run_s = window_s + START_S + 1
    row = measure("golive (aiohttp, open loop)", golive_cmd(lab, rate, run_s - 2), lab, window_s, run_s, rate)
    try:
        data = json.loads(row.pop("_stdout"))
        row.update(tool_achieved_rps=round(data["achieved_apm"] / 60, 2),
                   tool_dispatched_rps=round(data["dispatched_apm"] / 60, 2),
                   dispatch_lag_p99_ms=data["dispatch_lag_ms"]["p99"], error_rate=data["error_rate"],
                   latency_p50_ms=data["latency_ms"]["corrected"]["p50"],
                   latency_p99_ms=data["latency_ms"]["corrected"]["p99"],
                   naive_p99_ms=data["latency_ms"]["naive"]["p99"], tool_error=data["error"])
    except (ValueError, KeyError):
        row["tool_error"] = "no JSON from the generator"
    return row


def run_locust(lab: RunningLab, rate: float, window_s: float, workdir: Path) -> dict[str, Any] | None:
    if shutil.which("locust", path=str(Path(sys.executable).parent)) is None:
        return None
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    users = max(10, math.ceil(rate / 20))
    run_s = math.ceil(window_s + START_S + 1)
    prefix = workdir / f"locust-{rate:g}"
    cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(locustfile), "--headless", "--users", str(users),
           "--spawn-rate", str(users), "--run-time", f"{run_s:g}s", "--host", lab.https_url, "--csv", str(prefix),
           "--only-summary", "--loglevel", "WARNING", "--reset-stats", "--stop-timeout", "2"]
    env = {"BENCH_BODY": BODY, "BENCH_RATE_PER_USER": f"{rate / users:g}"}
    row = measure(f"locust FastHttpUser ({users} users)", cmd, lab, window_s, run_s, rate, env)
    row.pop("_stdout")
    try:
        with open(f"{prefix}_stats.csv", newline="") as f:
            agg = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
        row.update(tool_achieved_rps=round(float(agg["Requests/s"]), 2),
                   error_rate=round(int(agg["Failure Count"]) / max(1, int(agg["Request Count"])), 6),
                   latency_p50_ms=float(agg["50%"]), latency_p99_ms=float(agg["99%"]))
    except (OSError, StopIteration, KeyError, ValueError):
        row["tool_error"] = "no locust stats CSV"
    return row


def run_wrk(lab: RunningLab, connections: int, window_s: float, workdir: Path) -> dict[str, Any] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = workdir / "post.lua"
    script.write_text(WRK_LUA % BODY)
    run_s = math.ceil(window_s + START_S + 1)
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{run_s:g}s", "--latency", "-s", str(script),
           f"{lab.https_url}/v1/analyze"]
    row = measure(f"wrk (closed loop, {connections} connections)", cmd, lab, window_s, run_s, None)
    out = row.pop("_stdout")
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            row["tool_achieved_rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            value = parts[1]
            ms = (float(value[:-2]) if value.endswith("ms") else float(value[:-2]) / 1000 if value.endswith("us")
                  else float(value[:-1]) * 1000)
            row["latency_p50_ms" if parts[0] == "50%" else "latency_p99_ms"] = ms
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| tool | offered req/s | served req/s (accuracy) | client CPU s / 1000 req | req per CPU-second "
            "| p50 / p99 ms |\n|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        acc = f" ({r['accuracy'] * 100:.1f}%)" if r.get("accuracy") else ""
        lat = f"{r.get('latency_p50_ms', float('nan')):.1f} / {r.get('latency_p99_ms', float('nan')):.1f}"
        lines.append(f"| {r['tool']} | {r['offered_rps'] or 'max (closed loop)'} | {r['achieved_rps']}{acc} | "
                     f"{r['cpu_s_per_1000']} | {r['requests_per_cpu_s']} | {lat} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,400", help="offered rates (req/s) for the open-loop tools")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per run")
    parser.add_argument("--cost-ms", type=float, default=1.0, help="lab analysis cost")
    parser.add_argument("--wrk-connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="golive-bench-") as tmp:
        workdir = Path(tmp)
        with start_lab(workdir / "lab", cost_ms=args.cost_ms, instances=2) as lab:
            for rate in rates:
                for runner in ("golive", "locust"):
                    row = (run_golive(lab, rate, args.seconds) if runner == "golive"
                           else run_locust(lab, rate, args.seconds, workdir))
                    if row is not None:
                        rows.append(row)
                        print(f"{row['tool']:<40} offered {rate:6g}  served {row['achieved_rps']:8.2f} req/s  "
                              f"CPU {row['cpu_s_per_1000']} s/1000", file=sys.stderr, flush=True)
            wrk_row = run_wrk(lab, args.wrk_connections, args.seconds, workdir)
            if wrk_row is not None:
                rows.append(wrk_row)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    result = {
        "schema": "golive-bench-load/1", "measured_at": stamp,
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version(), "loadavg_at_end": os.getloadavg()},
        "lab": {"cost_ms": args.cost_ms, "instances": 2, "endpoint": "POST /v1/analyze through nginx TLS"},
        "window_s": args.seconds, "rows": rows,
        "missing": [t for t, ok in (("locust", any("locust" in r["tool"] for r in rows)),
                                    ("wrk", any("wrk" in r["tool"] for r in rows))) if not ok],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_load-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"\nresults: {path}")
    return 0


# ----------------------------------------------------------------------------- pytest-benchmark


@pytest.fixture(scope="module")
def bench_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One instance at 5 ms behind nginx: the per-request latency of the inference core."""
    with start_lab(tmp_path_factory.mktemp("bench-lab"), cost_ms=5, instances=1) as lab:
        yield lab


def _post(conn: http.client.HTTPConnection) -> None:
    conn.request("POST", "/v1/analyze", body=BODY, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200 and json.loads(body)["status"] == "ok"


def test_inference_request_latency_through_nginx_tls(benchmark: Any, bench_lab: RunningLab) -> None:
    """One analysis over a keep-alive TLS connection to the public endpoint (what golive's
    throughput checks measure, without load)."""
    conn = http.client.HTTPSConnection("localhost", bench_lab.ports["https"], context=bench_lab.ssl_context(),
                                       timeout=10)
    try:
        benchmark.pedantic(_post, args=(conn,), rounds=200, iterations=1, warmup_rounds=10)
    finally:
        conn.close()


def test_inference_request_latency_direct(benchmark: Any, bench_lab: RunningLab) -> None:
    """The same analysis straight to the instance (no proxy, no TLS): the core's own cost."""
    conn = http.client.HTTPConnection("127.0.0.1", bench_lab.ports[bench_lab.instance_names[0]], timeout=10)
    try:
        benchmark.pedantic(_post, args=(conn,), rounds=200, iterations=1, warmup_rounds=10)
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
