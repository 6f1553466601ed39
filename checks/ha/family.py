"""The ha family, declared: enough healthy instances (read-only), and the failover drill
(disruptive), judged against ``requirements.ha`` (:class:`checks.ha.spec.HaReq`).

No ``ha`` block in the profile skips the family.  A profile that requires HA on a target
without an ``ha:`` section is an error (nothing to verify against), never a pass.  The drill
runs once per run (``ctx.memo``) and is judged by five checks; it runs only with
``--allow-disruptive``; otherwise every drill check is skipped with "disruptive, not
allowed" and nothing is sent to the target.  The drill restores on its own exit paths; a
scenario clean-up restores again whatever is left, and a drill interrupted by SIGINT/SIGTERM
stops the run after its results are recorded.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from checks.ha.spec import HaReq, HaSpec
from golive.checkdef import Check, CheckContext, Family, NotApplicable, Skipped
from golive.model import Evidence, Measurement, Severity
from golive.units import fmt_duration

INSTANCES_REFS = ("DS-DI-HA-02", "ST-HA-02", "AW-EN-HA-02", "OZ-ML-HA-01", "OZ-HL-HA-02")
FAILOVER_REFS = ("DS-DI-HA-04", "OZ-ML-HA-01", "OZ-HL-HA-02", "AW-EN-HA-02", "AW-HA-10")
NO_HA_SECTION = "the target declares no ha section (entrypoint, instances): nothing to verify"


@dataclasses.dataclass(frozen=True)
class NotRun:
    """Why the drill measures nothing: ``skip`` (not applicable) or ``error``."""

    status: str
    reason: str


def _missing(what: str) -> Measurement:
    return Measurement.failed(what, Evidence(probe="ha", subject="target", method="the target's ha section"))


def _ca(ctx: CheckContext) -> str | None:
    spec: HaSpec | None = ctx.spec
    return (spec.ca_file if spec is not None else None) or ctx.target.endpoints.ca_file


def _names(ctx: CheckContext) -> list[str]:
    return [i.name for i in ctx.spec.instances] if ctx.spec is not None else []


# ----------------------------------------------------------------------------- read-only

def _health(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.ha import probes

    def measure() -> dict[str, Measurement]:
        return {i.name: probes.instance_health(i.url, ca_file=_ca(ctx), resolve=ctx.target.endpoints.resolve)
                for i in ctx.spec.instances if i.url}
    return ctx.memo(("ha.health",), measure)  # type: ignore[no-any-return]


def _instances(ctx: CheckContext) -> Measurement:
    from checks.ha import probes

    if ctx.spec is None:
        return _missing(NO_HA_SECTION)
    return probes.healthy_count(_names(ctx), _health(ctx))


def _healthy(ctx: CheckContext) -> Measurement | dict[str, Measurement]:
    if ctx.spec is None:
        return _missing(NO_HA_SECTION)
    if not _names(ctx):
        return _missing("the target's ha section declares no instances")
    health = _health(ctx)
    return {n: health.get(n) or _missing("no health url declared for this instance") for n in _names(ctx)}


# ----------------------------------------------------------------------------- the drill

def _request(ctx: CheckContext) -> Any:
    """What the drill's stream sends: GET entrypoint, or the target's inference request --
    the very request spec the throughput family sends (checks.throughput.load), judged by
    the same rule (checks.request).  The drill's plan sets its timeout, CA file and pins."""
    from checks.ha import probes
    from checks.throughput import load

    ha, inf = ctx.spec, getattr(ctx.target, "inference", None)
    if ha.request == "inference" and inf is not None:
        return load.request_spec_from_target(inf, None)
    return probes.entrypoint_request(ha.entrypoint)


def plan(ctx: CheckContext) -> Any:
    """The drill's plan from the target and the profile, or why there is none (NotRun)."""
    from checks.ha import probes

    if ctx.spec is None:
        return NotRun("error", NO_HA_SECTION)
    req: HaReq = ctx.req
    ha: HaSpec = ctx.spec
    if len(ha.instances) < 2:
        return NotRun("skip", f"not applicable: {len(ha.instances)} instance declared; stopping the only instance "
                              "would take the service down (ha.instances judges the count)")
    hosts = {h.name: probes.HostRef(h.connection, h.name, h.ssh_config, h.ssh_identity_file, h.sudo, h.timeout_s,
                                      h.known_hosts if not isinstance(h.known_hosts, list) else tuple(h.known_hosts))
             for h in ctx.host_specs}
    try:
        instances = probes.plan_instances(ha.instances, hosts)
        request = _request(ctx)
    except (ValueError, OSError) as exc:
        return NotRun("error", f"cannot plan the drill: {exc}")
    drill = tuple(i.name for i in ha.instances)[: req.drill_instances]
    return probes.DrillPlan(
        request=request, entrypoint=ha.entrypoint, instances=instances, drill=drill, ca_file=_ca(ctx),
        rate=req.rate, steady_s=req.steady, stable_s=req.stable, failover_max_s=req.failover_max,
        restart_max_s=req.restart_max if req.auto_restart else None, steady_tolerance=req.error_rate_max,
        max_duration_s=req.max_duration, max_requests=req.max_requests, timeout_s=ha.timeout_s,
        resolve=dict(ctx.target.endpoints.resolve),
        restore_timeout_s=ha.restore_timeout_s)


def _drill(ctx: CheckContext) -> Any:
    """The drill's record (run once per run), or NotRun."""
    from checks.ha import probes

    def run() -> Any:
        the_plan = plan(ctx)
        if isinstance(the_plan, NotRun):
            return the_plan
        drill = probes.Drill(the_plan)
        def restore() -> None:
            drill.restore_all("fixture teardown")
        ctx.add_cleanup(restore)
        record = drill.run()
        if record.interrupted_by:
            left = (f"; NOT RESTORED: {', '.join(record.not_restored)}" if record.not_restored
                    else "; every stopped instance was restored")
            ctx.stop_run(f"interrupted by {record.interrupted_by} during the HA drill{left}")
        return record
    return ctx.memo(("ha.drill",), run)


def _per_instance(ctx: CheckContext, judge: Any) -> Measurement | dict[str, Measurement | Skipped]:
    record = _drill(ctx)
    if isinstance(record, NotRun):
        if record.status == "skip":
            if not _names(ctx):
                raise NotApplicable(record.reason)
            return {n: Skipped(record.reason) for n in _names(ctx)}
        return _missing(record.reason)
    return {name: judge(record, name) for name in record.plan.drill}


def _steady(ctx: CheckContext) -> dict[str, Measurement | Skipped]:
    from checks.ha import probes

    record = _drill(ctx)
    if isinstance(record, NotRun):
        return {w: (Skipped(record.reason) if record.status == "skip" else _missing(record.reason))
                for w in ("before", "after")}
    return {w: probes.steady_state(record, w) for w in ("before", "after")}


def _failover(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
    from checks.ha import probes

    return _per_instance(ctx, probes.failover)


def _error_rate(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
    from checks.ha import probes

    return _per_instance(ctx, probes.error_rate)


def _auto_restart(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
    from checks.ha import probes

    if not ctx.req.auto_restart:
        why = (f"profile '{ctx.profile_name}' does not require a restart policy (auto_restart: false)")
        record = _drill(ctx)
        if isinstance(record, NotRun):
            return _per_instance(ctx, probes.auto_restart)
        return {n: Skipped(why) for n in record.plan.drill}
    return _per_instance(ctx, probes.auto_restart)


def _restored(ctx: CheckContext) -> Measurement | dict[str, Measurement | Skipped]:
    from checks.ha import probes

    def judge(record: Any, name: str) -> Measurement | Skipped:
        run = record.instance(name)
        if run is not None and run.stop_t is None:
            return Skipped(f"{name} was not stopped ({run.not_run or record.aborted})")
        return probes.restored(record, name)
    return _per_instance(ctx, judge)


def _timeline(ctx: CheckContext, subject: str, m: Measurement) -> dict[str, Any]:
    from checks.ha import probes

    record = _drill(ctx)
    return {} if isinstance(record, NotRun) else probes.timeline_data(record, subject)


DRILL = "Failover drill: stopping one instance at a time keeps the service up"
INSTANCES = "Enough instances are declared and each is healthy"

FAMILY = Family(
    name="ha",
    title="high-availability failover drill (disruptive)",
    feature="ha.feature",
    profile_block=HaReq,
    target_block=HaSpec,
    checks=(
        Check(
            id="ha.instances", title=INSTANCES, severity=Severity.HIGH, refs=INSTANCES_REFS,
            measures="GET each declared instance's own health URL (not through the load balancer); count 2xx",
            measure=_instances,
            expected=lambda req: f">= {req.min_instances} healthy instances behind the load balancer",
            passes=lambda req, n: n >= req.min_instances,
            remediation=lambda req, m: f"run at least {req.min_instances} instances behind the load balancer and "
                                       "declare each (name, health url) in the target's ha.instances",
            verify_hint="declare the load-balanced service in the target's ha section (entrypoint, instances with "
                        "their own health URLs)"),
        Check(
            id="ha.healthy", title=INSTANCES, severity=Severity.HIGH, refs=INSTANCES_REFS,
            measures="GET each declared instance's own health URL; 2xx is healthy",
            measure=_healthy, expected="healthy (2xx from its own health URL)",
            passes=lambda req, ok: ok is True,
            remediation=lambda req, m: f"bring {m.evidence.subject} up, or remove it from the load balancer and "
                                       "the target",
            verify_hint="declare each instance's own health URL (ha.instances[].url), reachable from the checking "
                        "host"),
        Check(
            id="ha.steady_state", title=DRILL, severity=Severity.HIGH, disruptive=True,
            measures="the drill's open-loop request stream, entrypoint and instance health before and after",
            measure=_steady, subjects=lambda ctx: ["before", "after"],
            expected=lambda req: f"stream ok (<= {req.error_rate_max * 100:g} % failed), entrypoint and every "
                                 "instance healthy",
            passes=lambda req, v: (v["total"] > 0 and v["error_rate"] <= req.error_rate_max and v["entrypoint_ok"]
                                   and not v["unhealthy"]),
            remediation="the service must be healthy before a drill, and healthy again after it: see the journal"),
        Check(
            id="ha.failover", title=DRILL, severity=Severity.HIGH, disruptive=True, refs=FAILOVER_REFS,
            measures="time from each instance's stop to full success again through the entrypoint",
            measure=_failover, subjects=_names, data=_timeline,
            expected=lambda req: f"full success again within {fmt_duration(req.failover_max)} of the stop",
            passes=lambda req, v: v is not None and v <= req.failover_max,
            remediation="give the load balancer active health checks (e.g. haproxy `option httpchk GET /health`, "
                        "`inter 2s fall 2 rise 2`) and retries on another backend (`option redispatch`)"),
        Check(
            id="ha.error_rate", title=DRILL, severity=Severity.HIGH, disruptive=True, refs=FAILOVER_REFS,
            measures="failed share of the drill's requests from each stop until steady again",
            measure=_error_rate, subjects=_names,
            expected=lambda req: f"<= {req.error_rate_max * 100:g} % of requests failed",
            passes=lambda req, v: v <= req.error_rate_max,
            remediation="take failed backends out of rotation quickly (active health checks) and retry refused "
                        "connections on another backend"),
        Check(
            id="ha.auto_restart", title=DRILL, severity=Severity.HIGH, disruptive=True, refs=("ST-HA-01",),
            measures="whether a stopped instance became healthy again by itself, and how fast",
            measure=_auto_restart, subjects=_names,
            expected=lambda req: f"healthy again by itself within {fmt_duration(req.restart_max)}",
            passes=lambda req, v: v is not None and v <= req.restart_max,
            remediation="set a restart policy: systemd `Restart=on-failure` (or always) with `RestartSec=`, compose "
                        "`restart: always`, or a Kubernetes controller"),
        Check(
            id="ha.restore", title=DRILL, severity=Severity.HIGH, disruptive=True,
            measures="the target's start action ran and the instance is healthy again after the drill",
            measure=_restored, subjects=_names, expected="start action ran and the instance is healthy",
            passes=lambda req, v: v is True,
            remediation=lambda req, m: f"start {m.evidence.subject} by hand now, and fix the target's start action "
                                       "(see the journal)"),
    ),
)
