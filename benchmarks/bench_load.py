"""golive's load generator against locust and wrk on the same target, in one run, as ratios.

Two ways to run it (docs/throughput.md has the numbers measured on the project's machine):

    .venv/bin/python benchmarks/bench_load.py [--target nginx|lab] [--rates 500,1000,2500]
        generator pacing and CPU cost: golive at each rate (its pacing ceiling is the highest
        rate it holds with <= 1 % of dispatches late), locust at --locust-rates and wrk
        (closed loop) for a few seconds each, client tools pinned to one CPU (taskset);
        the default target is nginx answering a static 200 over TLS (faster than the
        client, so the client's limits show), --target lab the lab's POST /v1/analyze.
        JSON results (with golive/locust ratios) go to benchmarks/results/bench_load-<UTC>.json
        and a Markdown table to stdout.  wrk2 (the constant-rate reference, at --wrk2-rates) is
        not packaged for Debian 12: benchmarks/build_wrk2.sh builds it from a source checkout
        into benchmarks/.tools/wrk2; without it the results record it as missing.
        GOLIVE_EVENT_LOOP=asyncio runs golive on asyncio's loop instead of uvloop.

    .venv/bin/pytest benchmarks/bench_load.py --benchmark-autosave [--benchmark-compare]
        per-request latency of the inference core (pytest-benchmark; saved in its storage,
        .benchmarks/, so --benchmark-compare shows the change against the previous run).

How the comparison is fair: every tool runs as a child process; over the same window of
its steady state (after start-up, warm-up and locust's spawning) the parent samples the
child's CPU time from /proc/PID/stat (with its children's) and, on the lab, the instances'
own analysis counters.  So "achieved" is what the service really served in that window, whatever the tool reports,
and "CPU per 1000 requests" excludes interpreter start-up.  Requests per CPU-second is the
rate one fully busy core could drive (max sustainable rate per core).  wrk is closed loop
(no rate control): it shows what the service can take and what a C client costs.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import http.client
import json
import math
import os
import platform
import shutil
import signal
import ssl
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
        with self.client.post(os.environ["BENCH_PATH"], data=BODY, headers=HEADERS, catch_response=True) as r:
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


#: The CPU the client tools are pinned to (--client-cpu; None: not pinned).
CLIENT_CPU: int | None = None


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    """``cmd`` run on one CPU (taskset, util-linux), or as is."""
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children that are still running (locust, worker processes)."""
    total = cpu_s(pid)
    for child in _children(pid):
        with contextlib.suppress(OSError):
            total += cpu_s(child)
    return total


def _children(pid: int) -> list[int]:
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def measure(tool: str, cmd: list[str], served: Any, window_s: float, run_s: float,
            offered: float | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one tool (pinned to CLIENT_CPU); sample its CPU and the target's served counter
    (``served()``, None: none -- the tool's own count is used) over [START_S, START_S + window]."""
    started = time.monotonic()
    proc = subprocess.Popen(pinned(cmd, CLIENT_CPU), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, cwd=ROOT, start_new_session=True)
    count = served if served is not None else (lambda: 0)
    try:
        time.sleep(START_S)
        c0, s0, t0 = tree_cpu_s(proc.pid), count(), time.monotonic()
        time.sleep(window_s)
        c1, s1, t1 = tree_cpu_s(proc.pid), count(), time.monotonic()
        out, err = proc.communicate(timeout=run_s + 30)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    cpu = c1 - c0
    requests = s1 - s0 if served is not None else round((offered or 0) * (t1 - t0))
    achieved = requests / (t1 - t0)
    row: dict[str, Any] = {
        "tool": tool, "offered_rps": offered, "achieved_rps": round(achieved, 2),
        "accuracy": round(achieved / offered, 4) if offered else None,
        "window_s": round(t1 - t0, 3), "requests_in_window": requests,
        "cpu_s_in_window": round(cpu, 3), "client_cpu_util": round(cpu / (t1 - t0), 3),
        "cpu_s_per_1000": round(cpu / requests * 1000, 4) if requests else None,
        "requests_per_cpu_s": round(requests / cpu) if cpu > 0 else None,
        "exit_code": proc.returncode, "wall_s": round(time.monotonic() - started, 2),
        "served_counted_by": "target" if served is not None else "offered rate x window (CPU per request only)",
    }
    if proc.returncode not in (0, None):
        row["stderr_tail"] = err[-500:]
    row["_stdout"] = out
    return row


@dataclasses.dataclass(frozen=True)
class Target:
    """What the tools load: a URL, its CA, and (when it has one) its served-requests counter."""

    name: str
    base: str
    path: str
    ca_file: str
    served: Any = None


def golive_cmd(target: Target, rate: float, seconds: float) -> list[str]:
    return [sys.executable, "-m", "checks.throughput.load", f"{target.base}{target.path}", "--rate", f"{rate:g}",
            "--duration", f"{seconds:g}", "--warmup", "1", "--ramp", "1", "--ca-file", target.ca_file,
            "--body", BODY, "--success-field", "status", "--success-value", "ok"]


def run_golive(target: Target, rate: float, window_s: float) -> dict[str, Any]:
    run_s = window_s + START_S + 1
    row = measure("golive (open loop)", golive_cmd(target, rate, run_s - 2), target.served, window_s, run_s,
                  rate)
    try:
        data = json.loads(row.pop("_stdout"))
        steady = data["requests"]["steady"]
        row.update(tool_achieved_rps=round(data["achieved_apm"] / 60, 2),
                   tool_dispatched_rps=round(data["dispatched_apm"] / 60, 2),
                   dispatch_lag_p99_ms=data["dispatch_lag_ms"]["p99"], error_rate=data["error_rate"],
                   late_share=round(data["dispatched_late"] / steady, 5) if steady else None,
                   holds_schedule=data["error"] is None and steady > 0 and data["dispatched_late"] <= 0.01 * steady,
                   connections_opened=data["connections_opened"],
                   latency_p50_ms=data["latency_ms"]["corrected"]["p50"],
                   latency_p99_ms=data["latency_ms"]["corrected"]["p99"],
                   naive_p99_ms=data["latency_ms"]["naive"]["p99"], tool_error=data["error"])
    except (ValueError, KeyError, TypeError):
        row["tool_error"] = "no JSON from the generator"
    return row


def run_locust(target: Target, rate: float, window_s: float, workdir: Path) -> dict[str, Any] | None:
    if shutil.which("locust", path=str(Path(sys.executable).parent)) is None:
        return None
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    users = max(10, math.ceil(rate / 20))
    run_s = math.ceil(window_s + START_S + 1)
    prefix = workdir / f"locust-{rate:g}"
    cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(locustfile), "--headless", "--users", str(users),
           "--spawn-rate", str(users), "--run-time", f"{run_s:g}s", "--host", target.base, "--csv", str(prefix),
           "--only-summary", "--loglevel", "WARNING", "--reset-stats", "--stop-timeout", "2"]
    env = {"BENCH_BODY": BODY, "BENCH_RATE_PER_USER": f"{rate / users:g}", "BENCH_PATH": target.path}
    row = measure(f"locust FastHttpUser ({users} users)", cmd, target.served, window_s, run_s, rate, env)
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


def run_wrk(target: Target, connections: int, window_s: float, workdir: Path) -> dict[str, Any] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = workdir / "post.lua"
    script.write_text(WRK_LUA % BODY)
    run_s = math.ceil(window_s + START_S + 1)
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{run_s:g}s", "--latency", "-s", str(script),
           f"{target.base}{target.path}"]
    row = measure(f"wrk (closed loop, {connections} connections)", cmd, target.served, window_s, run_s, None)
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


def find_wrk2(explicit: str | None) -> str | None:
    """wrk2: --wrk2 PATH, $WRK2, ``wrk2`` on PATH, or what benchmarks/build_wrk2.sh built."""
    for candidate in (explicit, os.environ.get("WRK2"), shutil.which("wrk2"), str(ROOT / "benchmarks" / ".tools" / "wrk2")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_wrk2(wrk2: str, target: Target, rate: float, connections: int, window_s: float,
             workdir: Path) -> dict[str, Any]:
    """wrk2 (Gil Tene's constant-throughput wrk) at ``rate``: the reference for the
    coordinated-omission-corrected p99 (its latency is measured from each request's
    scheduled send time, like golive's corrected latency)."""
    script = workdir / "post.lua"
    script.write_text(WRK_LUA % BODY)
    run_s = math.ceil(window_s + START_S + 1)
    cmd = [wrk2, "-t1", f"-c{connections}", f"-d{run_s:g}s", f"-R{rate:g}", "--latency", "-s", str(script),
           f"{target.base}{target.path}"]
    row = measure(f"wrk2 (constant rate, {connections} connections)", cmd, target.served, window_s, run_s, rate)
    out = row.pop("_stdout")
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50.000%", "99.000%"):
            value = parts[1]
            ms = (float(value[:-2]) if value.endswith("ms") else float(value[:-2]) / 1000 if value.endswith("us")
                  else float(value[:-1]) * 1000 if value.endswith("s") else float(value[:-1]) * 60000)
            row["latency_p50_ms" if parts[0] == "50.000%" else "latency_p99_ms"] = ms
        elif line.startswith("Requests/sec:"):
            row["tool_achieved_rps"] = float(parts[1])
    return row


NGINX_CONF = """
worker_processes 1;
pid nginx.pid;
daemon off;
error_log error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        keepalive_requests 10000000;
        keepalive_timeout 120s;
        location / { default_type application/json; return 200 '{"status": "ok"}'; }
        location = /nginx-status { stub_status; }
    }
}
"""


@contextlib.contextmanager
def nginx_static(workdir: Path, cpu: int | None) -> Iterator[Target]:
    """nginx answering 200 {"status": "ok"} over TLS on 127.0.0.1 (one worker, pinned to
    ``cpu``): a target far faster than one client core, so the client's own ceiling shows."""
    import trustme

    from lab.nginx import find_nginx
    from lab.procs import free_port, wait_until

    run = workdir / "nginx-static"
    (run / "tmp").mkdir(parents=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.private_key_pem.write_to_path(str(run / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(run / "cert.pem"))
    ca.cert_pem.write_to_path(str(run / "ca.pem"))
    port = free_port()
    (run / "nginx.conf").write_text(NGINX_CONF % {"port": port, "cert": run / "cert.pem", "key": run / "key.pem"})

    cmd = [find_nginx(), "-p", f"{run}/", "-c", str(run / "nginx.conf"), "-e", str(run / "error.log")]
    proc = subprocess.Popen(pinned(cmd, cpu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_until(f"nginx static on 127.0.0.1:{port}", lambda: _can_connect(port), timeout_s=15)
        ctx = ssl.create_default_context(cafile=str(run / "ca.pem"))

        def served() -> int:
            """nginx's own count of requests handled (stub_status), minus this request."""
            conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
            try:
                conn.request("GET", "/nginx-status")
                text = conn.getresponse().read().decode()
            finally:
                conn.close()
            return int(text.splitlines()[2].split()[2]) - 1

        yield Target("nginx static 200 over TLS", f"https://localhost:{port}", "/", str(run / "ca.pem"), served)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _can_connect(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| tool | offered req/s | served req/s (accuracy) | client CPU s / 1000 req | req per CPU-second "
            "| p50 / p99 ms | holds schedule (late share) |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        acc = f" ({r['accuracy'] * 100:.1f}%)" if r.get("accuracy") else ""
        lat = f"{r.get('latency_p50_ms') or float('nan'):.1f} / {r.get('latency_p99_ms') or float('nan'):.1f}"
        holds = (f"{'yes' if r['holds_schedule'] else 'no'} ({(r.get('late_share') or 0) * 100:.2f}%)"
                 if "holds_schedule" in r else "")
        lines.append(f"| {r['tool']} | {r['offered_rps'] or 'max (closed loop)'} | {r['achieved_rps']}{acc} | "
                     f"{r['cpu_s_per_1000']} | {r['requests_per_cpu_s']} | {lat} | {holds} |")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """golive against locust at the same offered rate: CPU per request and corrected p99 (x)."""
    out = []
    for g in (r for r in rows if r["tool"].startswith("golive")):
        peer = next((r for r in rows if r["tool"].startswith("locust") and r["offered_rps"] == g["offered_rps"]), None)
        if peer is None:
            continue
        def ratio(key: str, a: dict[str, Any] = g, b: dict[str, Any] = peer) -> float | None:
            return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None
        ref = next((r for r in rows if r["tool"].startswith("wrk2") and r["offered_rps"] == g["offered_rps"]), None)
        out.append({"offered_rps": g["offered_rps"], "cpu_per_request_golive_over_locust": ratio("cpu_s_per_1000"),
                    "p99_golive_over_locust": ratio("latency_p99_ms"),
                    "p99_golive_over_wrk2": ratio("latency_p99_ms", g, ref) if ref else None,
                    "cpu_per_request_golive_over_wrk2": ratio("cpu_s_per_1000", g, ref) if ref else None,
                    "golive_holds_schedule": g.get("holds_schedule")})
    return out


def golive_client() -> str:
    """golive's HTTP client and event loop as the generator child process will use them."""
    out = subprocess.run([sys.executable, "-c", "from checks.throughput import wire; print(wire.client_name())"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip()[-200:]


def main(argv: list[str] | None = None) -> int:
    global CLIENT_CPU
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("nginx", "lab"), default="nginx",
                        help="nginx: static 200 over TLS (the client's ceiling shows); lab: the lab's POST /v1/analyze")
    parser.add_argument("--rates", default="500,1000,2500,4000,6000,8000",
                        help="offered rates (req/s) for golive (its pacing ceiling is the highest it holds)")
    parser.add_argument("--locust-rates", default="500,1000", help="offered rates (req/s) for locust")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured window per run")
    parser.add_argument("--cost-ms", type=float, default=1.0, help="lab analysis cost")
    parser.add_argument("--wrk-connections", type=int, default=8)
    parser.add_argument("--wrk2", default=None, help="wrk2 binary (default: $WRK2, wrk2 on PATH, benchmarks/.tools/wrk2)")
    parser.add_argument("--wrk2-rates", default="500,1000", help="offered rates (req/s) for wrk2")
    parser.add_argument("--wrk2-connections", type=int, default=16)
    parser.add_argument("--client-cpu", type=int, default=0, help="pin the client tools to this CPU (-1: no pinning)")
    parser.add_argument("--server-cpu", type=int, default=1, help="pin nginx static to this CPU (-1: no pinning)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    CLIENT_CPU = None if args.client_cpu < 0 else args.client_cpu
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    locust_rates = [float(x) for x in args.locust_rates.split(",") if x.strip()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="golive-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        if args.target == "lab":
            lab = stack.enter_context(start_lab(workdir / "lab", cost_ms=args.cost_ms, instances=2))
            target = Target("lab POST /v1/analyze through nginx TLS", lab.https_url, "/v1/analyze", str(lab.ca_file),
                            lab.analyses_served)
        else:
            target = stack.enter_context(nginx_static(workdir, None if args.server_cpu < 0 else args.server_cpu))
        for rate in sorted(set(rates) | set(locust_rates)):
            for runner in ("golive", "locust"):
                if (runner == "golive" and rate not in rates) or (runner == "locust" and rate not in locust_rates):
                    continue
                row = (run_golive(target, rate, args.seconds) if runner == "golive"
                       else run_locust(target, rate, args.seconds, workdir))
                if row is not None:
                    rows.append(row)
                    print(f"{row['tool']:<40} offered {rate:6g}  served {row['achieved_rps']:8.2f} req/s  "
                          f"CPU {row['cpu_s_per_1000']} s/1000  p99 {row.get('latency_p99_ms')} ms  "
                          f"holds {row.get('holds_schedule', '-')}", file=sys.stderr, flush=True)
        wrk2 = find_wrk2(args.wrk2)
        for rate in [float(x) for x in args.wrk2_rates.split(",") if x.strip()] if wrk2 else []:
            row = run_wrk2(wrk2, target, rate, args.wrk2_connections, args.seconds, workdir)  # type: ignore[arg-type]
            rows.append(row)
            print(f"{row['tool']:<40} offered {rate:6g}  served {row['achieved_rps']:8.2f} req/s  "
                  f"CPU {row['cpu_s_per_1000']} s/1000  p99 {row.get('latency_p99_ms')} ms", file=sys.stderr, flush=True)
        wrk_row = run_wrk(target, args.wrk_connections, args.seconds, workdir)
        if wrk_row is not None:
            rows.append(wrk_row)
    held = [r["offered_rps"] for r in rows if r.get("holds_schedule")]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    result = {
        "schema": "golive-bench-load/2", "measured_at": stamp,
        "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version(), "loadavg_at_end": os.getloadavg(),
                    "client_cpu": CLIENT_CPU, "server_cpu": None if args.server_cpu < 0 else args.server_cpu},
        "golive_client": golive_client(), "target": target.name, "lab": {"cost_ms": args.cost_ms, "instances": 2} if args.target == "lab" else None,
        "window_s": args.seconds, "rows": rows,
        "golive_pacing_ceiling_rps": max(held) if held else None,
        "ratios": ratios(rows),
        "missing": [t for t, ok in (("locust", any("locust" in r["tool"] for r in rows)),
                                    ("wrk", any("wrk" in r["tool"] for r in rows)),
                                    ("wrk2", any(r["tool"].startswith("wrk2") for r in rows))) if not ok],
        "notes": "wrk2 is not packaged for Debian 12 (apt-cache policy wrk2: none): benchmarks/build_wrk2.sh builds it "
                 "from a source checkout; wrk is closed loop, shown for the client's CPU cost only.",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_load-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"\ngolive pacing ceiling (<= 1 % late): {result['golive_pacing_ceiling_rps']} req/s; ratios: "
          f"{json.dumps(result['ratios'])}")
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
