"""Bindings for features/ha.feature: instance health (read-only) and the failover drill
(disruptive) from checks.ha, judged against the profile's ``requirements.ha`` block.

No ``ha`` block in the profile skips the family.  A profile that requires HA on a target
without an ``ha:`` section is an error (nothing to verify against), never a pass.  The drill
runs only with ``--allow-disruptive``; otherwise every drill check is skipped with "disruptive,
not allowed" and nothing is sent to the target.  After a drill interrupted by SIGINT/SIGTERM
(which restores every stopped instance first) the scenario's results are recorded and the run
stops there, as pytest does for Ctrl-C.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, scenarios, then, when

from checks import ha as probe
from golive.model import Measurement
from golive.profile import HaReq
from golive.target import Target
from golive.units import fmt_duration

scenarios("ha.feature")

#: Catalogue ids each check answers; a result cites those of the profile's ``ref`` that apply.
REFS: dict[str, frozenset[str]] = {
    "instances": frozenset({"DS-DI-HA-02", "ST-HA-02", "AW-EN-HA-02", "OZ-ML-HA-01", "OZ-HL-HA-02"}),
    "failover": frozenset({"DS-DI-HA-04", "OZ-ML-HA-01", "OZ-HL-HA-02", "AW-EN-HA-02", "AW-HA-10"}),
    "auto_restart": frozenset({"ST-HA-01"}),
}
NOT_ALLOWED = "disruptive, not allowed"


def _req(golive: Any) -> HaReq | None:
    return golive.req.ha if golive.req else None


def _block(golive: Any, topic: str | None = None) -> HaReq | None:
    req = _req(golive)
    if req is None or topic is None:
        return req
    narrowed = [r for r in req.ref if r in REFS[topic]]
    return req.model_copy(update={"ref": narrowed}) if narrowed else req


def _ca(golive: Any) -> str | None:
    target: Target = golive.target
    return (target.ha.ca_file if target.ha is not None else None) or target.endpoints.ca_file


@dataclasses.dataclass(frozen=True)
class NotRun:
    """Why a scenario measures nothing: ``skip`` (not applicable, not allowed) or ``error``."""

    status: str
    reason: str


def _why_not(golive: Any) -> NotRun | None:
    if _req(golive) is None:
        return NotRun("skip", f"profile '{golive.profile.name}' has no ha requirements")
    if golive.target.ha is None:
        return NotRun("error", "the target declares no ha section (entrypoint, instances): nothing to verify")
    return None


def _names(golive: Any) -> list[str]:
    ha = golive.target.ha
    return [i.name for i in ha.instances] if ha is not None else []


def _not_run(golive: Any, check_id: str, why: NotRun, topic: str | None = None) -> None:
    if why.status == "skip":
        golive.checks.skip(check_id, why.reason, block=_block(golive, topic))
    else:
        golive.checks.error(check_id, why.reason, block=_block(golive, topic))


# ----------------------------------------------------------------------------- read-only


@when("each declared instance's own health URL is requested", target_fixture="health")
def probe_health(golive: Any) -> dict[str, Measurement] | NotRun:
    why = _why_not(golive)
    if why is not None:
        return why
    return {i.name: probe.instance_health(i.url, ca_file=_ca(golive))
            for i in golive.target.ha.instances if i.url}


@then("at least min_instances instances are healthy")
def judge_count(golive: Any, health: dict[str, Measurement] | NotRun) -> None:
    if isinstance(health, NotRun):
        _not_run(golive, "ha.instances", health, "instances")
        return
    req = _req(golive)
    assert req is not None
    golive.checks.record("ha.instances", block=_block(golive, "instances"),
                         expected=f">= {req.min_instances} healthy instances behind the load balancer",
                         measurement=probe.healthy_count(_names(golive), health),
                         ok=lambda n: n >= req.min_instances,
                         remediation=f"run at least {req.min_instances} instances behind the load balancer and "
                                     "declare each (name, health url) in the target's ha.instances")


@then("every declared instance is healthy")
def judge_each(golive: Any, health: dict[str, Measurement] | NotRun) -> None:
    if isinstance(health, NotRun):
        _not_run(golive, "ha.healthy", health, "instances")
        return
    if not _names(golive):
        golive.checks.error("ha.healthy", "the target's ha section declares no instances", block=_block(golive))
        return
    for name in _names(golive):
        if name not in health:
            golive.checks.error(f"ha.healthy[{name}]", "no health url declared for this instance",
                                block=_block(golive, "instances"), expected="healthy (2xx)")
            continue
        golive.checks.record(f"ha.healthy[{name}]", block=_block(golive, "instances"),
                             expected="healthy (2xx from its own health URL)", measurement=health[name],
                             ok=lambda v: v is True,
                             remediation=f"bring {name} up, or remove it from the load balancer and the target")


# ----------------------------------------------------------------------------- the drill


def _request(golive: Any) -> probe.RequestSpec:
    """What the drill's stream sends: GET entrypoint, or the target's inference request."""
    ha, inf = golive.target.ha, golive.target.inference
    if ha.request == "inference" and inf is not None:
        body = inf.body
        if body is None and inf.body_file:
            body = json.loads(Path(inf.body_file).read_text())
        content = json.dumps(body).encode() if body is not None else None
        headers = dict(inf.headers)
        if content is not None:
            headers.setdefault("Content-Type", "application/json")
        return probe.RequestSpec(url=inf.url, method=inf.method, body=content, headers=tuple(headers.items()),
                                 expect_status=inf.expect_status, success_field=inf.success_field,
                                 success_value=inf.success_value)
    return probe.RequestSpec(url=ha.entrypoint)


def _plan(golive: Any) -> probe.DrillPlan | NotRun:
    why = _why_not(golive)
    if why is not None:
        return why
    if not golive.env.allow_disruptive:
        return NotRun("skip", NOT_ALLOWED)
    req, ha = _req(golive), golive.target.ha
    assert req is not None
    if len(ha.instances) < 2:
        return NotRun("skip", f"not applicable: {len(ha.instances)} instance declared; stopping the only instance "
                              "would take the service down (ha.instances judges the count)")
    hosts = {h.name: probe.HostRef(h.connection, h.name, h.ssh_config, h.ssh_identity_file, h.sudo, h.timeout_s)
             for h in golive.target.hosts}
    try:
        instances = probe.plan_instances(ha.instances, hosts)
        request = _request(golive)
    except (ValueError, OSError) as exc:
        return NotRun("error", f"cannot plan the drill: {exc}")
    drill = tuple(i.name for i in ha.instances)[: req.drill_instances]
    return probe.DrillPlan(
        request=request, entrypoint=ha.entrypoint, instances=instances, drill=drill, ca_file=_ca(golive),
        rate=req.rate, steady_s=req.steady, stable_s=req.stable, failover_max_s=req.failover_max,
        restart_max_s=req.restart_max if req.auto_restart else None, steady_tolerance=req.error_rate_max,
        max_duration_s=req.max_duration, max_requests=req.max_requests, timeout_s=ha.timeout_s,
        restore_timeout_s=ha.restore_timeout_s)


@pytest.fixture
def ha_drills() -> Iterator[list[probe.Drill]]:
    """The scenario's drills; the finaliser restores anything a drill left stopped (the
    drill restores on its own exit paths; this covers the rest, e.g. a KeyboardInterrupt
    outside the main thread)."""
    drills: list[probe.Drill] = []
    yield drills
    for drill in drills:
        drill.restore_all("fixture teardown")


@given("a failover drill planned from the target's ha section and the profile's bounds", target_fixture="plan")
def plan_drill(golive: Any) -> probe.DrillPlan | NotRun:
    return _plan(golive)


@when("the drill runs: steady state, each instance stopped and restored in turn, steady state",
      target_fixture="drill")
def run_drill(golive: Any, plan: probe.DrillPlan | NotRun, ha_drills: list[probe.Drill],
              request: pytest.FixtureRequest) -> probe.DrillRecord | NotRun:
    if isinstance(plan, NotRun):
        return plan
    drill = probe.Drill(plan)
    ha_drills.append(drill)
    record = drill.run()
    if record.interrupted_by:
        # Like Ctrl-C in pytest, but only after this scenario's results are recorded.
        left = f"; NOT RESTORED: {', '.join(record.not_restored)}" if record.not_restored else \
            "; every stopped instance was restored"
        request.session.shouldstop = f"interrupted by {record.interrupted_by} during the HA drill{left}"
    return record


def _each(golive: Any, drill: probe.DrillRecord | NotRun, check: str, topic: str | None) -> list[str] | None:
    """The instances to record ``check`` for, or None after recording why there are none."""
    if isinstance(drill, NotRun):
        names = _names(golive) if drill.status == "skip" else []
        for name in names or [""]:
            _not_run(golive, f"ha.{check}" + (f"[{name}]" if name else ""), drill, topic)
        return None
    return list(drill.plan.drill)


@then("the steady state held before and after the drill")
def judge_steady(golive: Any, drill: probe.DrillRecord | NotRun) -> None:
    if isinstance(drill, NotRun):
        for which in ("before", "after"):
            _not_run(golive, f"ha.steady_state[{which}]", drill)
        return
    req = _req(golive)
    assert req is not None
    for which in ("before", "after"):
        golive.checks.record(
            f"ha.steady_state[{which}]", block=_block(golive),
            expected=f"stream ok (<= {req.error_rate_max * 100:g} % failed), entrypoint and every instance healthy",
            measurement=probe.steady_state(drill, which),
            ok=lambda v: v["total"] > 0 and v["error_rate"] <= req.error_rate_max and v["entrypoint_ok"]
            and not v["unhealthy"],
            remediation="the service must be healthy before a drill, and healthy again after it: see the journal")


@then("the service was fully successful again within failover_max after each stop")
def judge_failover(golive: Any, drill: probe.DrillRecord | NotRun) -> None:
    names = _each(golive, drill, "failover", "failover")
    req = _req(golive)
    if names is None or req is None or isinstance(drill, NotRun):
        return
    for name in names:
        golive.checks.record(
            f"ha.failover[{name}]", block=_block(golive, "failover"),
            expected=f"full success again within {fmt_duration(req.failover_max)} of the stop",
            measurement=probe.failover(drill, name), ok=lambda v: v is not None and v <= req.failover_max,
            remediation="give the load balancer active health checks (e.g. haproxy `option httpchk GET /health`, "
                        "`inter 2s fall 2 rise 2`) and retries on another backend (`option redispatch`)",
            data=probe.timeline_data(drill, name))


@then("the failed share of requests during each failover stayed within error_rate_max")
def judge_error_rate(golive: Any, drill: probe.DrillRecord | NotRun) -> None:
    names = _each(golive, drill, "error_rate", "failover")
    req = _req(golive)
    if names is None or req is None or isinstance(drill, NotRun):
        return
    for name in names:
        golive.checks.record(
            f"ha.error_rate[{name}]", block=_block(golive, "failover"),
            expected=f"<= {req.error_rate_max * 100:g} % of requests failed",
            measurement=probe.error_rate(drill, name), ok=lambda v: v <= req.error_rate_max,
            remediation="take failed backends out of rotation quickly (active health checks) and retry refused "
                        "connections on another backend")


@then("each stopped instance came back by itself where the profile requires a restart policy")
def judge_auto_restart(golive: Any, drill: probe.DrillRecord | NotRun) -> None:
    names = _each(golive, drill, "auto_restart", "auto_restart")
    req = _req(golive)
    if names is None or req is None or isinstance(drill, NotRun):
        return
    for name in names:
        if not req.auto_restart:
            golive.checks.skip(f"ha.auto_restart[{name}]", f"profile '{golive.profile.name}' does not require a "
                               "restart policy (auto_restart: false)", block=_block(golive, "auto_restart"))
            continue
        golive.checks.record(
            f"ha.auto_restart[{name}]", block=_block(golive, "auto_restart"),
            expected=f"healthy again by itself within {fmt_duration(req.restart_max)}",
            measurement=probe.auto_restart(drill, name), ok=lambda v: v is not None and v <= req.restart_max,
            remediation="set a restart policy: systemd `Restart=on-failure` (or always) with `RestartSec=`, compose "
                        "`restart: always`, or a Kubernetes controller")


@then("every stopped instance was restored and is healthy")
def judge_restored(golive: Any, drill: probe.DrillRecord | NotRun) -> None:
    names = _each(golive, drill, "restore", None)
    if names is None or isinstance(drill, NotRun):
        return
    for name in names:
        run = drill.instance(name)
        if run is not None and run.stop_t is None:
            golive.checks.skip(f"ha.restore[{name}]", f"{name} was not stopped ({run.not_run or drill.aborted})",
                               block=_block(golive))
            continue
        golive.checks.record(
            f"ha.restore[{name}]", block=_block(golive), expected="start action ran and the instance is healthy",
            measurement=probe.restored(drill, name), ok=lambda v: v is True,
            remediation=f"start {name} by hand now, and fix the target's start action (see the journal)")
