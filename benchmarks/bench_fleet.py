"""Fleet scaling: wall time of golive's host family over 1, 10 and 50 hosts, against
pytest-testinfra run the plain way on the same hosts in the same run.

    sudo .venv/bin/python benchmarks/bench_fleet.py [--sizes 1,10,50] [--repeats 3]

The hosts are network namespaces with one sshd each (lab/netns.py): real separate
network stacks and servers, but on this machine's cores -- every "remote" command runs on
the same CPUs as the checker, so on a small machine the fleet's own work is part of what is
measured (see docs/fleets.md).  Routes are checked before any traffic.

Measured, each a fresh ``python -m pytest`` process (start-up and collection included):

- ``golive``: ``pytest --profile poc --target=FLEET -m hosts`` (the thread pool fans out,
  one ControlMaster connection per host);
- ``golive -n 2``: the same under pytest-xdist with two workers;
- ``golive, gathering off``: ``GOLIVE_GATHER=0``, every command its own ssh session (how
  golive ran before it gathered facts in one session per host);
- a sweep of ``GOLIVE_HOST_PARALLEL`` at the largest size, and the largest and smallest
  sizes again with ``KexAlgorithms curve25519-sha256`` in the ssh config (OpenSSH 9's
  default sntrup761x25519 key exchange costs the *client* ~0.1 s of CPU per login: this
  shows its share; golive never changes the operator's key exchange itself);
- ``testinfra plain``: a small testinfra test file reading the same facts with the same
  commands, ``pytest --hosts=ssh://...,ssh://... --ssh-config=F`` -- sequential, and with
  no ControlPath in the ssh config, so every command is its own ssh login (testinfra's
  default ``ControlMaster=auto`` has no effect without one);
- ``testinfra + ControlMaster``: the same test file with a ControlPath in the ssh config
  (still sequential), for a fair look at where the time goes.

golive sizes are repeated (``--repeats``, interleaved so drift hits every size alike) and the
median is reported, both with Python's bytecode cached (an operator's repeated runs) and
compiling every module at start (``PYTHONDONTWRITEBYTECODE=1``, as CI sets it), since the
fixed start-up cost moves the ratio to the 1-host run; ``ms_per_extra_host`` does not depend
on it.  testinfra runs once per size (it is slow).  ``checker_cpu_s`` is the CPU time of the
pytest process and the ssh clients it waited for (not the daemonised ControlMaster
processes, not the servers); ``machine_cpu_s`` is every process's CPU on the machine
meanwhile (so machine minus checker is mostly the simulated hosts' side: their sshd,
sessions and commands), ``steal_s`` the time the hypervisor gave our CPUs to other guests.
Results go to benchmarks/results/fleet.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.netns import NetnsFleet, start_fleet

TESTINFRA_FILE = textwrap.dedent('''\
    """The facts golive's host family reads, the way a testinfra user would write them."""

    def test_cpu(host):
        assert int(host.run("nproc").stdout) > 0
        host.run("LC_ALL=C lscpu")

    def test_memory(host):
        assert "MemTotal" in host.file("/proc/meminfo").content_string

    def test_disk(host):
        assert host.run("df -P -B1 /").rc == 0

    def test_storage(host):
        host.run("test -e /")
        host.run("findmnt -n -P -o SOURCE,FSTYPE,TARGET -T /")
        host.run("lsblk -s -n -P -o NAME,TYPE,ROTA,TRAN")

    def test_nic(host):
        host.run("for d in /sys/class/net/*; do echo $d $(cat $d/speed 2>/dev/null); done")

    def test_gpu(host):
        host.run("nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits")

    def test_os(host):
        assert host.file("/etc/os-release").exists
        host.run("uname -sr")

    def test_software(host):
        host.run("docker --version")
        host.run("python3 --version")
    ''')


def _machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU-seconds of the whole machine so far, from /proc/stat: busy is every
    process on it (checker, the fleet's sshds and commands, anything else); steal is time the
    hypervisor gave this VM's CPUs to others."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / hz, steal / hz


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _sessions(fleet: NetnsFleet, n: int) -> int:
    return sum(h.log_file.read_text(errors="replace").count("Starting session") for h in fleet.hosts[:n])


def _logins(fleet: NetnsFleet, n: int) -> int:
    return sum(h.accepted_logins() for h in fleet.hosts[:n])


def _timed(argv: list[str], cwd: Path, timeout: float,
           extra_env: dict[str, str | None] | None = None) -> tuple[dict[str, float], subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    for key, value in (extra_env or {}).items():  # None: remove the variable
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    cpu0, (busy0, steal0), t0 = _cpu_children(), _machine_cpu(), time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    wall, (busy1, steal1) = time.monotonic() - t0, _machine_cpu()
    return {"wall_s": round(wall, 3), "checker_cpu_s": round(_cpu_children() - cpu0, 3),
            "machine_cpu_s": round(busy1 - busy0, 2), "steal_s": round(steal1 - steal0, 2)}, proc


def _fleet_run(fleet: NetnsFleet, n: int, argv: list[str], cwd: Path, timeout: float,
               env: dict[str, str | None] | None) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """``argv`` timed against the first ``n`` hosts (routes checked first), with the ssh
    commands (sessions) and logins per host the servers saw meanwhile."""
    fleet.verify_routes(fleet.addresses[:n])
    s0, l0 = _sessions(fleet, n), _logins(fleet, n)
    timing, proc = _timed(argv, cwd, timeout, env)
    return {**timing, "ssh_commands_per_host": round((_sessions(fleet, n) - s0) / n, 1),
            "ssh_logins_per_host": round((_logins(fleet, n) - l0) / n, 2)}, proc


def _golive(fleet: NetnsFleet, n: int, work: Path, extra: list[str], env: dict[str, str | None] | None = None,
            target_name: str = "fleet") -> dict[str, Any]:
    target = work / f"{target_name}-{n}.yaml"
    reports = work / f"reports-{n}-{len(list(work.glob(f'reports-{n}-*')))}"
    measured, proc = _fleet_run(fleet, n, [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--profile",
                                           "poc", f"--target={target}", "-m", "hosts", f"--report-dir={reports}",
                                           *extra], ROOT, 900, env)
    found = list(reports.glob("*/report.json"))
    if not found:
        raise SystemExit(f"golive wrote no report for {n} hosts:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    results = json.loads(found[0].read_text())["results"]
    errors = [r["id"] for r in results if r["status"] == "error"]
    if errors:  # e.g. ssh log-ins past timeout_s on an overloaded machine: kept, and said
        print(f"  ! {len(errors)} checks could not be measured: {errors[:3]}", flush=True)
    return {**measured, "errors": len(errors), "results": len(results)}


def _testinfra(fleet: NetnsFleet, n: int, work: Path, ssh_config: Path,
               env: dict[str, str | None] | None = None) -> dict[str, Any]:
    hosts = ",".join(h.uri for h in fleet.hosts[:n])
    measured, proc = _fleet_run(fleet, n, [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:golive",
                                           "-q", f"--hosts={hosts}", f"--ssh-config={ssh_config}",
                                           f"--ssh-identity-file={fleet.identity_file}", "test_facts.py"],
                                work, 1800, env)
    if proc.returncode != 0:
        raise SystemExit(f"testinfra run failed for {n} hosts:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return measured


def _marginal(wall: float, base: float, n: int, n0: int) -> float | None:
    """Milliseconds each host beyond the smallest size added to the wall time."""
    return round((wall - base) / (n - n0) * 1000, 1) if n > n0 else None


def _median(runs: list[dict[str, Any]], key: str = "wall_s") -> float:
    return round(float(statistics.median(float(r[key]) for r in runs)), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-testinfra", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fleet.json"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="golive-bench-fleet-"))
    (work / "pytest.ini").write_text("[pytest]\n")
    (work / "test_facts.py").write_text(TESTINFRA_FILE)
    load_before = os.getloadavg()
    started = time.monotonic()
    with start_fleet(work / "fleet", max(sizes)) as fleet:
        setup_s = fleet.setup_s
        plain_cfg = fleet.ssh_config
        mux_cfg = work / "ssh_config.controlmaster"
        mux_cfg.write_text(plain_cfg.read_text() + f"\nHost *\n    ControlPath {work}/cm-%C\n")
        kex_cfg = work / "ssh_config.curve25519"
        kex_cfg.write_text(plain_cfg.read_text() + "\nHost *\n    KexAlgorithms curve25519-sha256\n")
        for n in sizes:
            entries = [h.target_entry(roles=["inference"] if i % 5 == 0 else ["app"], timeout_s=60)
                       for i, h in enumerate(fleet.hosts[:n])]
            (work / f"fleet-{n}.yaml").write_text(json.dumps({"name": f"fleet-{n}", "hosts": entries}))
            (work / f"kex-{n}.yaml").write_text(json.dumps({"name": f"fleet-{n}", "hosts": [
                {**e, "ssh_config": str(kex_cfg)} for e in entries]}))
        # Python start-up: with bytecode cached (how an operator's repeated runs go), and
        # compiling every module at every start (PYTHONDONTWRITEBYTECODE=1, as in CI here).
        cached: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": None, "PYTHONPYCACHEPREFIX": str(work / "pyc")}
        uncached: dict[str, str | None] = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": None}
        _golive(fleet, sizes[0], work, [], cached)  # warm-up: page cache, .pyc files
        golive: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        compiling: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        xdist: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        for rep in range(args.repeats):
            for n in sizes:
                golive[n].append(_golive(fleet, n, work, [], cached))
                compiling[n].append(_golive(fleet, n, work, [], uncached))
                print(f"golive   {n:3d} hosts  run {rep + 1}: {golive[n][-1]['wall_s']:.2f} s "
                      f"({compiling[n][-1]['wall_s']:.2f} s compiling at start)", flush=True)
        for n in sizes:
            xdist[n].append(_golive(fleet, n, work, ["-n", "2"], cached))
            print(f"golive -n 2 {n:3d} hosts: {xdist[n][-1]['wall_s']:.2f} s", flush=True)
        no_gather = {n: _golive(fleet, n, work, [], {**cached, "GOLIVE_GATHER": "0"}) for n in sizes}
        for n in sizes:
            print(f"golive, gathering off {n:3d} hosts: {no_gather[n]['wall_s']:.2f} s", flush=True)
        biggest, smallest = max(sizes), min(sizes)
        sweep: dict[int, list[dict[str, Any]]] = {p: [] for p in (4, 8, 16, 32)}
        for _ in range(2):
            for p, runs in sweep.items():
                runs.append(_golive(fleet, biggest, work, [], {**cached, "GOLIVE_HOST_PARALLEL": str(p)}))
        print("parallel sweep:", {p: _median(runs) for p, runs in sweep.items()}, flush=True)
        kex: dict[int, list[dict[str, Any]]] = {smallest: [], biggest: []}
        for _ in range(2):
            for n, runs in kex.items():
                runs.append(_golive(fleet, n, work, [], cached, target_name="kex"))
        print("curve25519 kex:", {n: [r["wall_s"] for r in runs] for n, runs in kex.items()}, flush=True)
        plain: dict[int, dict[str, Any]] = {}
        mux: dict[int, dict[str, Any]] = {}
        if not args.no_testinfra:
            for n in sizes:
                mux[n] = _testinfra(fleet, n, work, mux_cfg, cached)
                print(f"testinfra+CM {n:3d} hosts: {mux[n]['wall_s']:.2f} s", flush=True)
                plain[n] = _testinfra(fleet, n, work, plain_cfg, cached)
                print(f"testinfra    {n:3d} hosts: {plain[n]['wall_s']:.2f} s", flush=True)
    base, base_compiling = _median(golive[sizes[0]]), _median(compiling[sizes[0]])
    doc: dict[str, Any] = {
        "benchmark": "fleet",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "fleet": {"hosts": max(sizes), "kind": "network namespaces + veth + bridge, one sshd each",
                  "setup_s": round(setup_s, 3)},
        "command": "python -m pytest --profile poc --target=FLEET -m hosts",
        "python_startup": "bytecode cached (PYTHONPYCACHEPREFIX) unless the series says compiling_at_start "
                          "(PYTHONDONTWRITEBYTECODE=1: every module compiled, and rewritten by pytest, at every start)",
        "sizes": {},
        "bench_duration_s": round(time.monotonic() - started, 1),
        "parallel_sweep": {"hosts": biggest, "note": "GOLIVE_HOST_PARALLEL=N, median of 2 interleaved runs",
                           "median_wall_s": {str(p): _median(runs) for p, runs in sweep.items()},
                           "runs": {str(p): runs for p, runs in sweep.items()}},
        "kex_curve25519": {"note": "KexAlgorithms curve25519-sha256 in the fleet's ssh config (an operator's "
                                   "choice, never golive's); median of 2 runs",
                           "sizes": {str(n): {"median_wall_s": _median(runs), "runs": runs} for n, runs in kex.items()},
                           "ratio": round(_median(kex[biggest]) / _median(kex[smallest]), 2)},
    }
    for n in sizes:
        entry: dict[str, Any] = {
            "golive": {"median_wall_s": _median(golive[n]), "runs": golive[n],
                       "ratio_to_1_host": round(_median(golive[n]) / base, 2),
                       "ms_per_extra_host": _marginal(_median(golive[n]), base, n, sizes[0])},
            "golive_compiling_at_start": {
                "median_wall_s": _median(compiling[n]), "runs": compiling[n],
                "ratio_to_1_host": round(_median(compiling[n]) / base_compiling, 2),
                "ms_per_extra_host": _marginal(_median(compiling[n]), base_compiling, n, sizes[0])},
            "golive_xdist_2": {"wall_s": xdist[n][0]["wall_s"], "run": xdist[n][0]},
            "golive_gathering_off": no_gather[n],
        }
        if n in plain:
            entry["testinfra_plain"] = plain[n]
            entry["testinfra_controlmaster"] = mux[n]
            entry["speedup_vs_testinfra_plain"] = round(plain[n]["wall_s"] / _median(golive[n]), 2)
        doc["sizes"][str(n)] = entry
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({n: {k: (v.get("median_wall_s") or v.get("wall_s")) if isinstance(v, dict) else v
                          for k, v in e.items()} for n, e in doc["sizes"].items()}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
