"""TLS + HTTP families against N lab endpoints, and testssl.sh on the same endpoints in the
same run.

    .venv/bin/python benchmarks/bench_tls_http.py [--endpoints 3] [--repeats 3]

N compliant labs are started (nginx + one inference instance each, loopback only).  Each
repeat measures, interleaved so that machine drift hits every contender alike:

- ``golive``: a fresh ``python -m pytest --profile poc --target=T -m "tls or http"``
  process (start-up, collection and the lab-less target included), where T names the
  first lab as ``endpoints.public`` (the HTTP family: redirect, HSTS, headers, health) and
  every lab in ``endpoints.tls`` (the TLS family: one sslyze Scanner over all N);
- ``golive probes``: the same probes in this process, without pytest: ``checks.tls.probes.scan``
  over the N endpoints (cache cleared) plus the four HTTP probes against each lab -- the
  family's own cost, with no interpreter start-up;
- ``testssl``: ``testssl --fast --nodns none`` against each endpoint, the N processes run
  concurrently (golive scans concurrently too), wall time until the last one finishes.

Medians over the repeats and the ratio testssl / golive go to
benchmarks/results/tls_http.json.  The figures are this machine's: run it on an idle
machine, and compare ratios, not seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checks.http import probes as http_probe
from checks.tls import probes as tls_probe
from lab.run import RunningLab, start_lab

RESULTS = ROOT / "benchmarks" / "results" / "tls_http.json"


def golive_subprocess(target: Path, report_dir: Path) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--report-dir={report_dir}",
           "--profile=poc", f"--target={target}", "-m", "tls or http"]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    started = time.monotonic()
    proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    return time.monotonic() - started, proc.returncode


def golive_probes(labs: list[RunningLab], ca_bundle: Path) -> float:
    tls_probe.clear_cache()
    started = time.monotonic()
    endpoints = [tls_probe.endpoint_from(lab.https_url, ca_file=str(ca_bundle)) for lab in labs]
    scans = tls_probe.scan(endpoints)
    for s in scans.values():
        for measure in (tls_probe.lowest_version, tls_probe.cert_trusted, tls_probe.vulnerabilities):
            assert measure(s).ok, s.error
    for lab in labs:
        ca = str(lab.ca_file)
        http_probe.redirect(lab.http_url)
        http_probe.hsts(lab.https_url, ca_file=ca)
        http_probe.response_headers(lab.https_url, ["X-Content-Type-Options"], ca_file=ca)
        http_probe.status(f"{lab.https_url}/health", ca_file=ca)
    return time.monotonic() - started


def testssl_concurrent(labs: list[RunningLab], out_dir: Path) -> tuple[float, list[int]]:
    started = time.monotonic()
    procs = []
    for i, lab in enumerate(labs):
        log = (out_dir / f"testssl-{i}.log").open("w")
        procs.append((subprocess.Popen(
            ["testssl", "--fast", "--nodns", "none", "--warnings", "batch", "--color", "0", "--quiet",
             f"127.0.0.1:{lab.ports['https']}"], stdout=log, stderr=subprocess.STDOUT), log))
    codes = []
    for proc, log in procs:
        codes.append(proc.wait(timeout=900))
        log.close()
    return time.monotonic() - started, codes


def testssl_version() -> str:
    try:
        out = subprocess.run(["testssl", "--version"], check=False, capture_output=True, text=True, timeout=60).stdout
    except OSError:
        return "not installed"
    m = re.search(r"testssl\s+(\d[\w.-]*)", re.sub(r"\x1b\[[0-9;]*m", "", out))
    return f"testssl.sh {m.group(1)}" if m else "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-tls-http-"))
    labs: list[RunningLab] = []
    try:
        for i in range(args.endpoints):
            labs.append(start_lab(base / f"lab-{i}", "compliant", instances=1))
        bundle = base / "ca-bundle.pem"
        bundle.write_text("".join(Path(lab.ca_file).read_text() for lab in labs))
        target = base / "target.yaml"
        tls_list = ", ".join(f'"localhost:{lab.ports["https"]}"' for lab in labs)
        first = labs[0]
        target.write_text(f"name: bench\nendpoints:\n  public: {first.https_url}\n  http: {first.http_url}\n"
                          f"  health: {first.https_url}/health\n  ca_file: {bundle}\n  tls: [{tls_list}]\n")
        rows: dict[str, list[float]] = {"golive": [], "golive_probes": [], "testssl": []}
        rcs: dict[str, list[Any]] = {"golive": [], "testssl": []}
        for rep in range(args.repeats):
            seconds, rc = golive_subprocess(target, base / f"reports-{rep}")
            rows["golive"].append(seconds)
            rcs["golive"].append(rc)
            rows["golive_probes"].append(golive_probes(labs, bundle))
            seconds, codes = testssl_concurrent(labs, base)
            rows["testssl"].append(seconds)
            rcs["testssl"].append(codes)
            print(f"repeat {rep + 1}: golive {rows['golive'][-1]:.1f} s, probes {rows['golive_probes'][-1]:.2f} s, "
                  f"testssl {rows['testssl'][-1]:.1f} s", flush=True)
        med = {k: round(statistics.median(v), 3) for k, v in rows.items()}
        result = {
            "benchmark": "tls_http",
            "endpoints": args.endpoints,
            "repeats": args.repeats,
            "median_s": med,
            "runs_s": {k: [round(x, 3) for x in v] for k, v in rows.items()},
            "exit_codes": rcs,
            "ratio_testssl_over_golive": round(med["testssl"] / med["golive"], 2),
            "ratio_testssl_over_golive_probes": round(med["testssl"] / med["golive_probes"], 1),
            "tools": {"sslyze": tls_probe._tool(), "testssl": testssl_version(), "python": platform.python_version()},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        for lab in labs:
            lab.stop()


if __name__ == "__main__":
    main()
