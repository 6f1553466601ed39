"""golive's fixed start-up (interpreter start to the first check), against sslyze's whole
scan of one endpoint, in the same run on the same machine.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 5]

One compliant lab is started (nginx terminating TLS, loopback only) and named as the only
endpoint of a lab-less target.  Each repeat, interleaved so machine drift hits every
contender alike, with bytecode NOT cached (a fresh, empty PYTHONPYCACHEPREFIX and
PYTHONDONTWRITEBYTECODE=1: what a CI job or a first run pays):

- ``golive start-up``: ``python -m pytest --profile poc --target=T -m tls`` until the first
  check starts (``GOLIVE_STARTUP_MARK``: the plugin writes the time then);
- ``golive total``: the same process until it exits (the TLS family's sslyze scan, the
  report written);
- ``sslyze``: ``python -m sslyze HOST:PORT`` (every scan command) until it exits;
- ``golive start-up, bytecode cached``: the first figure again with a warm bytecode cache
  (every run after the first on a machine).

Medians and ratios go to benchmarks/results/startup.json.  Compare ratios, not seconds: the
machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.run import start_lab


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS",)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def _fresh_checkout(tmp: Path, i: int) -> Path:
    """A copy of the checkout's files (tracked and untracked, not ignored) without any
    ``__pycache__``: what a CI job's fresh clone is, next to a virtualenv whose libraries pip
    compiled at install time."""
    dest = tmp / f"checkout-{i}"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _golive(target: Path, tmp: Path, i: int | str, cwd: Path = ROOT) -> tuple[float, float]:
    mark = tmp / f"mark-{i}"
    cache = tmp / f"pycache-golive-{i}"
    env = {**_env(cache), "GOLIVE_STARTUP_MARK": str(mark)}
    if i == "warm":  # bytecode cached: what every run after the first one pays
        env.pop("PYTHONDONTWRITEBYTECODE")
    if cwd != ROOT:  # fresh checkout: golive's own modules compiled now, the libraries' bytecode as installed
        env.pop("PYTHONPYCACHEPREFIX")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--profile", "poc",
                           f"--target={target}", "-m", "tls", f"--report-dir={tmp / 'runs'}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    total = time.time() - t0
    if not mark.exists():
        raise SystemExit(f"golive ran no check:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return float(mark.read_text()) - t0, total


def _sslyze(host: str, port: int, tmp: Path, i: int | str) -> float:
    env = _env(tmp / f"pycache-sslyze-{i}")
    if i == "installed":  # its bytecode as pip installed it
        env.pop("PYTHONPYCACHEPREFIX")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "sslyze", f"{host}:{port}"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"sslyze failed: {proc.stderr[-2000:]}")
    return time.time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="golive-bench-startup-") as d:
        tmp = Path(d)
        lab = start_lab(tmp / "lab", "compliant", instances=1)
        try:
            over = lab.target_overrides()
            public = over["endpoints"]["public"]
            target = tmp / "target.yaml"
            target.write_text(json.dumps({"name": "bench", "environment": "lab", "endpoints": {
                "public": public, "ca_file": over["endpoints"]["ca_file"],
                "server_name": over["endpoints"].get("server_name")}}))
            host, port = public.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
            samples: dict[str, list[float]] = {"golive_startup_s": [], "golive_total_s": [], "sslyze_s": [],
                                               "golive_startup_cached_s": [], "golive_startup_fresh_checkout_s": [],
                                               "sslyze_installed_s": []}
            _golive(target, tmp, "warm")  # fills the warm bytecode cache
            for i in range(args.repeats):
                samples["golive_startup_cached_s"].append(_golive(target, tmp, "warm")[0])
                start, total = _golive(target, tmp, i)
                samples["golive_startup_s"].append(start)
                samples["golive_total_s"].append(total)
                samples["sslyze_s"].append(_sslyze(host, int(port), tmp, i))
                samples["golive_startup_fresh_checkout_s"].append(
                    _golive(target, tmp, f"fresh-{i}", cwd=_fresh_checkout(tmp, i))[0])
                samples["sslyze_installed_s"].append(_sslyze(host, int(port), tmp, "installed"))
        finally:
            lab.stop()
    med = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    out: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_1m": os.getloadavg()[0]},
        "bytecode": {"golive_startup_s, golive_total_s, sslyze_s": "nothing cached (fresh PYTHONPYCACHEPREFIX, "
                                                                  "PYTHONDONTWRITEBYTECODE=1): every library compiled too",
                     "golive_startup_fresh_checkout_s, sslyze_installed_s": "a fresh checkout: golive's own modules "
                     "not compiled, the libraries' bytecode as pip installed it (a CI job's first run)",
                     "golive_startup_cached_s": "everything cached (every later run)"},
        "repeats": args.repeats, "samples": samples, "median": med,
        "ratio_golive_startup_to_sslyze_scan": round(med["golive_startup_s"] / med["sslyze_s"], 2),
        "ratio_golive_total_to_sslyze_scan": round(med["golive_total_s"] / med["sslyze_s"], 2),
        "ratio_golive_fresh_checkout_startup_to_sslyze_installed_scan": round(
            med["golive_startup_fresh_checkout_s"] / med["sslyze_installed_s"], 2),
    }
    dest = ROOT / "benchmarks" / "results" / "startup.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("median", "ratio_golive_startup_to_sslyze_scan",
                                          "ratio_golive_total_to_sslyze_scan",
                                          "ratio_golive_fresh_checkout_startup_to_sslyze_installed_scan")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
