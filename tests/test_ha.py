"""The HA family end to end: real failover drills against the lab (nginx -> haproxy with
active health checks -> supervised inference instances) and its broken variants, the
safety paths (SIGINT, SIGTERM, the drill's time bound, an unexpected error: every stopped
instance is restored and the journal shows it), and an unreachable entrypoint (error).

Everything talks to loopback only.  Profiles here extend medium-load with a short drill
(fast stream, short stable windows) so the file stays near a minute and a half.
"""
from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from checks.ha import probes as probe
from checks.ha.spec import HaReq, HaSpec
from conftest import PYTEST, ROOT, GoliveRun, write_target
from golive.target import target_model
from lab.procs import free_port
from lab.run import RunningLab, start_lab

MEDIUM = ROOT / "profiles" / "medium-load.yaml"


def ha_profile(tmp_path: Path, name: str, **ha: Any) -> str:
    """medium-load with a short drill, plus ``ha`` overrides."""
    fields = {"rate": 20, "stable": "2 s", "steady": "1 s", **ha}
    body = ", ".join(f"{k}: {json.dumps(v) if isinstance(v, bool) else v}" for k, v in fields.items())
    return write_target(tmp_path, f"name: {name}\ndescription: medium-load with a short HA drill (self-test)\n"
                                  f"extends: {MEDIUM}\nrequirements:\n  ha: {{{body}}}\n", f"{name}.yaml")


def lab_target(tmp_path: Path, variant: str) -> str:
    return write_target(tmp_path, f"name: lab-{variant}\nenvironment: lab\nlab:\n  variant: {variant}\n",
                        f"lab-{variant}.yaml")


def actions(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in result["evidence"][0]["data"]["journal"] if e["type"] == "action"]


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


# ----------------------------------------------------------------------------- the lab, in golive


def test_compliant_lab_drill_passes_and_restores_every_instance(tmp_path: Path, golive_run: Any) -> None:
    profile = ha_profile(tmp_path, "ha-restart", auto_restart=True, restart_max="10 s")
    run = golive_run(f"--profile={profile}", "--target", "lab", "--allow-disruptive", "-m", "ha")
    assert run.rc == 0, run.out[-3000:]
    assert run.one("ha.instances")["measured"] == "2 healthy of 2 declared"
    for rid, r in run.results("ha.").items():
        assert r["status"] == "pass", (rid, r["measured"], r["reason"])
    for name in ("app-1", "app-2"):
        failover = run.one(f"ha.failover[{name}]")
        assert float(failover["measured"].split(" s")[0]) <= 30  # in practice 0: haproxy redispatches
        assert float(run.one(f"ha.error_rate[{name}]")["measured"].split(" %")[0]) <= 5
        back = run.one(f"ha.auto_restart[{name}]")["measured"]
        assert back.startswith("back by itself after "), back
        assert 1.5 <= float(back.split()[4]) <= 10  # the lab's restart policy waits 2 s
        # the timeline the report draws, with the drill's marks
        labels = [m["label"] for m in failover["data"]["marks"]]
        assert f"stop {name}" in labels and f"restore {name}" in labels and f"{name} healthy" in labels
        assert failover["data"]["timeline"] and all({"t", "ok", "latency_ms"} <= set(p)
                                                    for p in failover["data"]["timeline"])
        # the journal: the real stop and start actions, each with times, command, exit status
        done = actions(failover)
        assert [a["activity"] for a in done] == ["stop", "restore"]
        stop, start = done
        assert stop["kind"] == "signal" and stop["exit_status"] == 0 and "sent SIGTERM to pid" in stop["output"]
        assert start["kind"] == "command" and start["command"].startswith("kill -USR1")
        assert start["exit_status"] == 0 and start["started_at"].endswith("Z") and start["finished_at"]
    assert "ha.steady_state[after]" in run.results()
    html = (run.run_dir / "report.html").read_text() if run.run_dir else ""
    assert "Failover timeline" in html


def test_no_lb_health_check_fails_on_error_rate_and_recovery(tmp_path: Path, golive_run: Any) -> None:
    profile = ha_profile(tmp_path, "ha-one", drill_instances=1, failover_max="1 s")
    run = golive_run(f"--profile={profile}", f"--target={lab_target(tmp_path, 'no_lb_health_check')}",
                     "--allow-disruptive", "-m", "ha")
    assert run.rc == 1, run.out[-3000:]
    rate = run.one("ha.error_rate[app-1]")
    assert rate["status"] == "fail", rate
    assert float(rate["measured"].split(" %")[0]) > 5  # about half the requests until it is back
    failover = run.one("ha.failover[app-1]")
    assert failover["status"] == "fail", failover  # down until the restart policy brings it back (2 s)
    assert float(failover["measured"].split(" s")[0]) > 1
    assert run.one("ha.restore[app-1]")["status"] == "pass"
    assert run.one("ha.steady_state[after]")["status"] == "pass"
    assert "ha.failover[app-2]" not in run.results()  # drill_instances: 1


def test_no_auto_restart_fails_auto_restart_and_is_restored(tmp_path: Path, golive_run: Any) -> None:
    profile = ha_profile(tmp_path, "ha-restart-one", drill_instances=1, auto_restart=True, restart_max="4 s")
    run = golive_run(f"--profile={profile}", f"--target={lab_target(tmp_path, 'no_auto_restart')}",
                     "--allow-disruptive", "-m", "ha")
    assert run.rc == 1, run.out[-3000:]
    back = run.one("ha.auto_restart[app-1]")
    assert back["status"] == "fail" and back["measured"].startswith("not back by itself within "), back
    assert back["expected"] == "healthy again by itself within 4 s"
    assert run.one("ha.failover[app-1]")["status"] == "pass"  # the load balancer did its job
    restore = run.one("ha.restore[app-1]")
    assert restore["status"] == "pass"  # the start action brought it back
    assert [a["activity"] for a in actions(restore)] == ["stop", "restore"]
    assert run.one("ha.steady_state[after]")["status"] == "pass"


def test_single_instance_fails_min_instances_and_without_the_flag_nothing_is_drilled(
        tmp_path: Path, golive_run: Any) -> None:
    run = golive_run("--profile", "medium-load", f"--target={lab_target(tmp_path, 'single_instance')}", "-m", "ha")
    assert run.rc == 1, run.out[-3000:]
    count = run.one("ha.instances")
    assert count["status"] == "fail" and count["measured"] == "1 healthy of 1 declared"
    assert count["expected"].startswith(">= 2 healthy instances")
    assert run.one("ha.healthy[app-1]")["status"] == "pass"
    drill = {rid: r for rid, r in run.results("ha.").items() if not rid.startswith(("ha.instances", "ha.healthy"))}
    assert set(drill) >= {"ha.failover[app-1]", "ha.error_rate[app-1]", "ha.steady_state[before]",
                          "ha.restore[app-1]"}
    for rid, r in drill.items():
        assert r["status"] == "skip" and r["reason"] == "disruptive, not allowed", (rid, r)


def test_a_single_declared_instance_is_never_stopped() -> None:
    from checks.ha.family import NotRun, plan
    from golive.checkdef import CheckContext

    target = target_model().model_validate({"name": "one", "ha": {
        "entrypoint": "http://127.0.0.1:1/health", "instances": [
            {"name": "only", "url": "http://127.0.0.1:1/health", "stop": "true", "start": "true"}]}})
    why = plan(CheckContext.for_test(req=HaReq(), spec=target.ha, target=target, allow_disruptive=True))
    assert isinstance(why, NotRun) and why.status == "skip" and "stopping the only instance" in why.reason


def test_unreachable_entrypoint_is_error_and_nothing_is_stopped(tmp_path: Path, golive_run: Any) -> None:
    port = free_port()  # nothing listens there
    marker = tmp_path / "stopped"
    instances = "".join(f"    - {{name: app-{i}, url: 'http://127.0.0.1:{port}/health', "
                        f"stop: 'touch {marker}', start: 'true'}}\n" for i in (1, 2))
    target = write_target(tmp_path, f"name: dead\nha:\n  entrypoint: http://127.0.0.1:{port}/health\n"
                                    f"  instances:\n{instances}")
    profile = ha_profile(tmp_path, "ha-short")
    run = golive_run(f"--profile={profile}", f"--target={target}", "--allow-disruptive", "-m", "ha")
    assert run.rc == 1, run.out[-3000:]
    before = run.one("ha.steady_state[before]")
    assert before["status"] == "error" and "entrypoint unreachable" in before["reason"], before
    failover = run.one("ha.failover[app-1]")
    assert failover["status"] == "error" and "steady state did not hold" in failover["reason"], failover
    assert run.one("ha.error_rate[app-2]")["status"] == "error"
    assert run.one("ha.steady_state[after]")["status"] == "error"
    assert not marker.exists()  # no stop action ran
    assert actions(before) == []
    assert run.report["verdict"]["decision"] == "NO-GO"


# ----------------------------------------------------------------------------- interruptions


@pytest.fixture(scope="module")
def outside_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """A lab golive does not own (a deployment of its own): an interrupted golive run must
    leave it whole.  No restart policy, so only the drill's restore brings an instance back."""
    lab = start_lab(tmp_path_factory.mktemp("ha-outside"), "no_auto_restart")
    try:
        yield lab
    finally:
        lab.stop()


def _instance_urls(lab: RunningLab) -> dict[str, str]:
    return {i["name"]: i["url"] for i in lab.ha_overrides()["instances"]}


def _wait_down(lab: RunningLab, name: str, proc: subprocess.Popen[str], limit_s: float = 40) -> None:
    url = _instance_urls(lab)[name]
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"golive ended before the drill stopped {name}:\n{proc.communicate()[0][-3000:]}")
        if not healthy(url):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} was never stopped")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_drill_restores_every_instance(sig: signal.Signals, tmp_path: Path,
                                                  outside_lab: RunningLab) -> None:
    target = write_target(tmp_path, json.dumps({"name": "outside-lab", "environment": "lab",
                                                **outside_lab.target_overrides()}), "outside.yaml")
    profile = ha_profile(tmp_path, "ha-long", stable="20 s")  # the signal always lands mid-observation
    report_dir = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.Popen([*PYTEST, "-p", "no:cacheprovider", f"--report-dir={report_dir}",
                             f"--profile={profile}", f"--target={target}", "--allow-disruptive", "-m", "ha"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_down(outside_lab, "app-1", proc)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # every instance answers, directly and through the load balancer
    for name, url in _instance_urls(outside_lab).items():
        assert healthy(url), f"{name} is down after the interrupted drill\n{out[-3000:]}"
    assert httpx.get(outside_lab.ha_overrides()["entrypoint"], verify=ssl.create_default_context(
        cafile=str(outside_lab.ca_file)), timeout=5, trust_env=False).status_code == 200
    assert proc.returncode == 2, out[-3000:]  # interrupted, like Ctrl-C
    run = GoliveRun(subprocess.CompletedProcess([], proc.returncode, out, ""), report_dir)
    assert run.report["verdict"]["decision"] == "NO-GO", run.report["verdict"]
    restore = run.one("ha.restore[app-1]")
    assert restore["status"] == "pass", restore
    journal = restore["evidence"][0]["data"]["journal"]
    assert any(e["type"] == "event" and e["text"].startswith(f"{sig.name} received") for e in journal)
    done = [(e["activity"], e["exit_status"]) for e in journal if e["type"] == "action"]
    assert done == [("stop", 0), ("restore", 0)], journal
    failover = run.one("ha.failover[app-1]")
    assert failover["status"] == "error" and f"interrupted by {sig.name}" in failover["reason"], failover
    assert "ha.failover[app-2]" in run.results() and run.one("ha.failover[app-2]")["status"] == "error"


def _plan(lab: RunningLab, **bounds: Any) -> probe.DrillPlan:
    spec = HaSpec.model_validate(lab.ha_overrides())
    return probe.DrillPlan(request=probe.entrypoint_request(spec.entrypoint), entrypoint=spec.entrypoint,
                           instances=probe.plan_instances(spec.instances, {}), drill=("app-1",),
                           ca_file=str(lab.ca_file), rate=20, steady_s=0.5, stable_s=2, **bounds)


def test_drill_time_bound_aborts_and_restores(outside_lab: RunningLab) -> None:
    record = probe.Drill(_plan(outside_lab, max_duration_s=2.0, failover_max_s=30)).run()
    assert record.aborted == "max duration 2 s reached"
    assert record.not_restored == ()
    assert all(healthy(u) for u in _instance_urls(outside_lab).values())
    assert [e["activity"] for e in record.journal if e["type"] == "action"] == ["stop", "restore"]
    assert probe.failover(record, "app-1").error  # could not verify, never a pass
    assert probe.restored(record, "app-1").value is True


def test_unexpected_error_mid_drill_still_restores(outside_lab: RunningLab, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: probe.Drill, since: float) -> bool:
        raise RuntimeError("probe bug")

    monkeypatch.setattr(probe.Drill, "_stable_since", broken)
    record = probe.Drill(_plan(outside_lab)).run()
    assert record.aborted == "unexpected error: RuntimeError: probe bug"
    assert record.not_restored == ()
    assert all(healthy(u) for u in _instance_urls(outside_lab).values())
    assert [e["activity"] for e in record.journal if e["type"] == "action"] == ["stop", "restore"]
    assert probe.error_rate(record, "app-1").error


def test_stop_action_kinds_become_real_commands() -> None:
    host = probe.HostRef()
    spec = HaSpec.model_validate({"entrypoint": "http://127.0.0.1:1/", "instances": [
        {"name": "a", "stop": {"systemd": "oz api.service"}, "start": {"systemd": "oz api.service"}},
        {"name": "b", "stop": {"pod": "api-0", "namespace": "oz", "context": "prod"}, "start": {"pod": "api-0"}},
        {"name": "c", "stop": {"pidfile": "/run/x.pid", "signal": "SIGKILL"}, "start": "service x start"}]})
    a, b, c = probe.plan_instances(spec.instances, {"h": host})
    assert a.stop and a.stop.command == "systemctl stop 'oz api.service'"
    assert a.start and a.start.command == "systemctl start 'oz api.service'"
    assert b.stop and b.stop.command == "kubectl --context prod -n oz delete pod api-0 --wait=false"
    assert b.start and b.start.kind == "none"
    assert c.stop and c.stop.kind == "signal" and 'kill -KILL "$pid"' in c.stop.command
    assert c.start and c.start.kind == "command" and c.start.command == "service x start"
    with pytest.raises(ValueError, match="not in the target's hosts"):
        probe.plan_instances(HaSpec.model_validate({"entrypoint": "http://x/", "instances": [
            {"name": "a", "host": "nope", "stop": "true"}]}).instances, {})


def test_signal_action_runs_for_real_and_journals(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    pidfile = tmp_path / "sleeper.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    journal = probe.Journal(time.monotonic())
    spec = HaSpec.model_validate({"entrypoint": "http://x/", "instances": [
        {"name": "s", "stop": {"pidfile": str(pidfile)}, "start": {"pidfile": str(tmp_path / "missing.pid")}}]})
    (inst,) = probe.plan_instances(spec.instances, {})
    assert inst.stop and inst.start
    entry = journal.action("stop", "s", inst.stop)
    assert entry["ok"] and entry["exit_status"] == 0 and f"sent SIGTERM to pid {sleeper.pid}" in entry["output"]
    assert sleeper.wait(timeout=5) == -signal.SIGTERM
    missing = journal.action("restore", "s", inst.start)
    assert not missing["ok"] and missing["exit_status"] == 3 and "missing.pid" in missing["output"]
    assert [e["activity"] for e in journal.entries()] == ["stop", "restore"]
