"""The monitoring family, declared: Prometheus scrapes every host and service, the signals
the tier names are present and fresh, alert rules for the required conditions load and
evaluate, Alertmanager routes them to a receiver that delivers, the drills (a synthetic
alert; an instance stopped) show alerts arriving in time, each host's logs are written,
structured, rotated and not at debug level, and Grafana has a dashboard.

Reads ``requirements.monitoring`` (:class:`MonitoringReq`) and the target's ``monitoring:``
(:class:`MonitoringSpec`); docs/monitoring.md describes both.
"""
from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from checks.ha.spec import HaAction  # the HA drill's stop/start actions, reused as they are
from golive.blocks import Block, Strict, also_accepts
from golive.checkdef import Check, CheckContext, Family, NotApplicable
from golive.model import Evidence, Measurement, Severity
from golive.units import Duration, fmt_duration

if TYPE_CHECKING:
    from checks.monitoring.api import Endpoint

Condition = Literal["error_rate", "unavailable", "resources"]
LogKind = Literal["application", "access", "error", "security"]
_CONDITIONS: tuple[Condition, ...] = ("error_rate", "unavailable", "resources")
_LOG_KINDS: tuple[LogKind, ...] = ("application", "access", "error")
#: Most to least verbose; a log at a level left of the profile's floor is "debug in production".
LEVEL_ORDER = ("trace", "debug", "info", "notice", "warning", "error", "critical")
_LEVEL_ALIASES = {"verbose": "debug", "fine": "debug", "finer": "trace", "finest": "trace", "all": "trace",
                  "warn": "warning", "err": "error", "fatal": "critical", "crit": "critical", "emerg": "critical",
                  "alert": "critical", "information": "info", "informational": "info", "dbg": "debug"}


# ----------------------------------------------------------------------------- profile


class MonitoringReq(Block):
    """``requirements.monitoring``: what the tier requires to be monitored.  Every item is
    on once the block is present; a seed's threshold is cited in the shipped profiles, the
    defaults here are golive's (docs/monitoring.md says which)."""

    scrape: bool = Field(default=True, description="every host and service is a scrape target with up == 1")
    host_signals: list[str] = Field(default_factory=lambda: ["cpu", "memory", "disk_io", "network"],
                                    description="signals every host must have (DS-MON-01)")
    service_signals: list[str] = Field(
        default_factory=lambda: ["latency", "success_rate", "queue_length", "processing_time"],
        description="signals every service must have (DS-MON-02)")
    freshness_intervals: float = Field(default=3, gt=0, description="a signal's newest sample is younger than this "
                                       "many scrape intervals (golive's default)")
    alert_conditions: list[Condition] = Field(default_factory=lambda: list(_CONDITIONS),
                                              description="conditions that need a loaded, healthy alert rule")
    alert_routing: bool = Field(default=True, description="Alertmanager routes each required alert to a "
                                "receiver with an integration")
    alert_delivery: bool = Field(default=True, description="drill: a synthetic alert reaches a receiver")
    delivery_max: Duration = Field(default=60.0, description="drill: a synthetic alert reaches a receiver within "
                                   "this (golive's default)")
    unavailability_drill: bool = Field(default=True, description="drill: stop one instance, the unavailability "
                                       "alert fires within its for + evaluation interval")
    log_kinds: list[LogKind] = Field(default_factory=lambda: list(_LOG_KINDS),
                                     description="logs each host must write (DS-LOG-04)")
    log_max_age: Duration = Field(default=86400.0, description="newest write of each log no older than this "
                                  "(golive's default: 24 h)")
    structured_logs: bool = Field(default=True, description="the last structured_lines application lines are JSON")
    structured_lines: int = Field(default=100, ge=1, le=10000, description="DS-LOG-05: the last 100 lines")
    log_rotation: bool = True
    log_level_min: str | None = Field(default="info", description="in production no log is more verbose than this "
                                      "(null: not required)")
    dashboard: bool = Field(default=True, description="a Grafana dashboard exists where the target names Grafana")

    @field_validator("log_level_min")
    @classmethod
    def _known_level(cls, v: str | None) -> str | None:
        if v is None:
            return None
        level = _LEVEL_ALIASES.get(v.lower(), v.lower())
        if level not in LEVEL_ORDER:
            raise ValueError(f"unknown log level '{v}'; one of {', '.join(LEVEL_ORDER)}")
        return level


# ----------------------------------------------------------------------------- target


class ApiSpec(Strict):
    """An HTTP API golive reads (Prometheus, Alertmanager, Grafana): its URL and how to
    authenticate -- ``username`` + ``password`` (basic) or ``token`` (bearer), each secret as
    ``${ENV}`` or from ``*_file``.  A plain string is the URL."""

    url: str
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    timeout_s: float = Field(default=5, gt=0, le=60, description="bound on each request (and a query's "
                             "server-side timeout)")

    # a plain string is the URL (the JSON Schema says so too)
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=also_accepts({"type": "string"}))

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if urllib.parse.urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"'{v}' is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _one_auth(self) -> ApiSpec:
        if (self.token or self.token_file) and (self.username or self.password or self.password_file):
            raise ValueError("give either username + password (basic auth) or token (bearer), not both")
        if (self.password or self.password_file) and not self.username:
            raise ValueError("a password needs a username (basic auth)")
        return self


class SubjectSpec(Strict):
    """How a host or service is found in Prometheus: label matchers of its scrape target
    (``address`` matches the host part of ``instance`` on any port) and its own PromQL for
    signals whose names differ."""

    labels: dict[str, str] = Field(default_factory=dict)
    signals: dict[str, str] = Field(default_factory=dict)

    # {instance: "10.0.0.1:9100", job: node} is the labels (the JSON Schema says so too)
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=also_accepts(
        {"type": "object", "additionalProperties": {"type": "string"}}))

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        # {instance: "10.0.0.1:9100", job: node} is the labels
        if isinstance(v, dict) and v and not {"labels", "signals"} & set(v):
            return {"labels": v}
        return v


class LogSpec(Strict):
    """One host's logs: paths or shell globs (no spaces) on the host, or ``journald:UNIT``."""

    application: list[str] = Field(default_factory=list)
    access: list[str] = Field(default_factory=list)
    error: list[str] = Field(default_factory=list)
    security: list[str] = Field(default_factory=list)
    logrotate: list[str] = Field(default_factory=lambda: ["/etc/logrotate.conf", "/etc/logrotate.d"],
                                 description="logrotate configuration files or folders read on the host")
    rotation: str | None = Field(default=None, description="rotation done by the logging handler itself, in words "
                                 "(e.g. 'RotatingFileHandler maxBytes=50MB backupCount=5'); reported as declared")
    level_file: str | None = Field(default=None, description="configuration file on the host declaring the log level")
    level_pattern: str = Field(default=r"(?i)\blog_?level\s*[=:]\s*[\"']?([A-Za-z]+)",
                               description="regular expression; group 1 is the level")

    def sources(self, kind: str) -> list[str]:
        return list(getattr(self, kind))

    def all_files(self) -> list[str]:
        return [p for k in ("application", "access", "error", "security") for p in getattr(self, k)
                if not p.startswith("journald:")]


class DrillSpec(Strict):
    """The unavailability drill: the ``service`` (a name in ``monitoring.services`` or the
    target's services) it stops with ``stop`` and starts again with ``start`` (the HA drill's
    actions: a command, ``pidfile`` + ``signal``, ``systemd`` unit, ``pod``), run on ``host``
    (a target host; default: the checking host)."""

    service: str
    stop: HaAction
    start: HaAction
    host: str | None = None
    alerts: list[str] | None = Field(default=None, description="alert names that report it (default: "
                                     "monitoring.alerts.unavailable)")
    timeout_s: float = Field(default=120, gt=0, le=900, description="bound on waiting for the alert")
    restore_timeout_s: float = Field(default=60, gt=0, le=900)


class SyntheticSpec(Strict):
    """The synthetic-alert drill: extra ``labels`` for the alert (to pick a route) and
    ``receiver_url``, a URL listing what the receiver got (without it, Alertmanager's
    notification counters are read)."""

    labels: dict[str, str] = Field(default_factory=dict)
    receiver_url: str | None = None
    timeout_s: float = Field(default=120, gt=0, le=900)


class MonitoringSpec(Strict):
    """``monitoring:`` in a target (docs/monitoring.md)."""

    prometheus: ApiSpec
    alertmanager: ApiSpec | None = None
    grafana: ApiSpec | None = None
    dashboard: str | None = Field(default=None, description="Grafana search text the dashboard must match")
    host_job: str = Field(default="node", description="job label of the hosts' node-exporter targets")
    hosts: dict[str, SubjectSpec] = Field(default_factory=dict, description="target host name -> its scrape target")
    services: dict[str, SubjectSpec] = Field(default_factory=dict, description="service name -> its scrape target")
    signals: dict[str, str] = Field(default_factory=dict, description="signal name -> PromQL ($selector = labels)")
    alerts: dict[Condition, list[str]] = Field(default_factory=dict, description="condition -> alert names")
    logs: dict[str, LogSpec] = Field(default_factory=dict, description="target host name -> its logs")
    synthetic: SyntheticSpec = SyntheticSpec()
    drill: DrillSpec | None = None


# ----------------------------------------------------------------------------- bridging


class CannotVerify(Exception):
    """The target lacks what a required check needs: the result is ``error`` (could not
    verify), never a skip that would let a GO through."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


MeasureFn = Callable[[CheckContext], "Measurement | Mapping[str, Measurement]"]


def _verified(fn: MeasureFn) -> MeasureFn:
    """``fn``, with :class:`CannotVerify` turned into one ``error`` measurement."""
    @functools.wraps(fn)
    def wrapper(ctx: CheckContext) -> Measurement | Mapping[str, Measurement]:
        try:
            return fn(ctx)
        except CannotVerify as exc:
            name = str(getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "check"))
            return Measurement.failed(exc.reason, Evidence(probe=f"monitoring.{name.strip('_')}",
                                                           subject=str(getattr(ctx.target, "name", "target")),
                                                           method="the target file"))
    return wrapper


def _secret(value: str | None, file: str | None) -> str | None:
    if file:
        try:
            return Path(file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CannotVerify(f"cannot read {file}: {exc.strerror}") from None
    return value


def endpoint(spec: ApiSpec) -> Endpoint:
    from checks.monitoring.api import Endpoint

    return Endpoint(url=spec.url, username=spec.username, password=_secret(spec.password, spec.password_file),
                    token=_secret(spec.token, spec.token_file), ca_file=spec.ca_file, timeout_s=spec.timeout_s)


def _host_address(connection: str) -> str:
    scheme, _, rest = connection.partition("://")
    if scheme == "local":
        return "127.0.0.1"
    return urllib.parse.urlsplit(f"ssh://{rest}").hostname or rest


def host_selectors(ctx: CheckContext) -> dict[str, dict[str, str]]:
    """Target host name -> label selector of its node-exporter target (``monitoring.hosts``
    maps only the target's hosts: a host left out by --hosts is left out here too)."""
    spec: MonitoringSpec = ctx.spec
    out = {}
    for h in ctx.host_specs:
        mapped = spec.hosts.get(h.name)
        out[h.name] = dict(mapped.labels) if mapped and mapped.labels else {
            "address": _host_address(h.connection), "job": spec.host_job}
    return out


def service_selectors(ctx: CheckContext) -> dict[str, dict[str, str]]:
    """Service name -> label selector of its scrape target (the target's services by
    instance address:port unless mapped, plus services only ``monitoring.services`` names)."""
    spec: MonitoringSpec = ctx.spec
    hosts = {h.name: h for h in ctx.host_specs}
    out = {}
    for s in getattr(ctx.target, "services", []) or []:
        mapped = spec.services.get(s.name)
        if mapped and mapped.labels:
            out[s.name] = dict(mapped.labels)
        elif s.host in hosts:
            out[s.name] = {"instance": f"{_host_address(hosts[s.host].connection)}:{s.port}"}
    for name, mapped in spec.services.items():
        out.setdefault(name, dict(mapped.labels))
    return out


def _no_spec(what: str, key: str) -> Measurement:
    return Measurement.failed(f"the target names no {what} (monitoring.{key})",
                              Evidence(probe="monitoring", subject=key, method="target file"))


def _spec(ctx: CheckContext) -> MonitoringSpec:
    if ctx.spec is None:
        raise CannotVerify("the target has no monitoring: section: golive cannot tell where Prometheus is "
                           "(docs/monitoring.md)")
    spec: MonitoringSpec = ctx.spec
    return spec


def _targets(ctx: CheckContext, prom: Endpoint) -> list[dict[str, Any]] | str:
    from checks.monitoring import probes
    from checks.monitoring.api import ApiError

    def fetch() -> list[dict[str, Any]] | str:
        try:
            return probes.active_targets(prom)
        except ApiError as exc:
            return exc.reason
    result: list[dict[str, Any]] | str = ctx.memo(("monitoring.targets", prom.url), fetch)
    return result


def _scraped(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.monitoring import probes

    spec = _spec(ctx)
    subjects = {f"host {n}": s for n, s in host_selectors(ctx).items()}
    subjects.update({f"service {n}": s for n, s in service_selectors(ctx).items()})
    if not subjects:
        raise NotApplicable("the target has no hosts or services to find in Prometheus")
    result: dict[str, Measurement] = probes.scrape_status(endpoint(spec.prometheus), subjects)
    return result


def _signals(ctx: CheckContext, kind: str) -> dict[str, Measurement]:
    from checks.monitoring import probes

    spec = _spec(ctx)
    prom = endpoint(spec.prometheus)
    req: MonitoringReq = ctx.req
    if kind == "host":
        subjects, wanted, mapped = host_selectors(ctx), req.host_signals, spec.hosts
    else:
        subjects, wanted, mapped = service_selectors(ctx), req.service_signals, spec.services
    targets = _targets(ctx, prom)
    if isinstance(targets, str):
        ev = Evidence(probe="monitoring.signal", subject=prom.shown, method="GET /api/v1/targets")
        return {f"{n} {s}": Measurement.failed(targets, ev) for n in subjects for s in wanted}
    default_interval = ctx.memo(("monitoring.global_interval", prom.url), lambda: _global_interval(prom))
    out: dict[str, Measurement] = {}
    for name, sel in subjects.items():
        if not sel:  # an empty selector would match every series
            for sig in wanted:
                out[f"{name} {sig}"] = Measurement.failed(
                    f"no labels to find {name} by (map it: monitoring.{kind}s.{name}.labels)",
                    Evidence(probe="monitoring.signal", subject=name, method="target file"))
            continue
        interval = probes.scrape_interval_s(targets, sel, default_interval)
        subject_spec = mapped.get(name)
        own = subject_spec.signals if subject_spec is not None else {}
        for sig in wanted:
            promql = (own or {}).get(sig) or spec.signals.get(sig) or probes.DEFAULT_SIGNALS.get(sig)
            if not promql:
                out[f"{name} {sig}"] = Measurement.failed(
                    f"no PromQL for signal '{sig}': map it in monitoring.signals or monitoring.{kind}s.{name}.signals",
                    Evidence(probe="monitoring.signal", subject=name, method="target file"))
                continue
            out[f"{name} {sig}"] = probes.signal_age(prom, f"{name} {sig}",
                                                     promql.replace("$selector", probes.matchers(sel)), interval)
    return out


def _global_interval(prom: Endpoint) -> float:
    from checks.monitoring import probes
    from checks.monitoring.api import ApiError

    try:
        return probes.global_scrape_interval_s(prom)
    except (ApiError, ValueError):
        return 60.0  # Prometheus' own default


def _conditions(ctx: CheckContext) -> dict[str, list[str] | None]:
    spec = _spec(ctx)
    req: MonitoringReq = ctx.req
    return {c: spec.alerts.get(c) for c in req.alert_conditions}


def _rules(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.monitoring import probes

    result: dict[str, Measurement] = probes.rule_health(endpoint(_spec(ctx).prometheus), _conditions(ctx))
    return result


def _routes(ctx: CheckContext) -> dict[str, Measurement] | Measurement:
    from checks.monitoring import probes

    spec = _spec(ctx)
    if spec.alertmanager is None:
        return _no_spec("Alertmanager", "alertmanager")
    result: dict[str, Measurement] = probes.alert_routes(endpoint(spec.prometheus), endpoint(spec.alertmanager),
                                                         _conditions(ctx))
    return result


def _synthetic(ctx: CheckContext) -> Measurement:
    from checks.monitoring import drill

    spec = _spec(ctx)
    if spec.alertmanager is None:
        return _no_spec("Alertmanager", "alertmanager")
    req: MonitoringReq = ctx.req
    return drill.synthetic_alert(endpoint(spec.alertmanager), labels=spec.synthetic.labels,
                                 receiver_url=spec.synthetic.receiver_url,
                                 timeout_s=min(spec.synthetic.timeout_s, max(req.delivery_max * 2, 10)))


def _unavailability(ctx: CheckContext) -> Measurement:
    from checks.ha.probes import HostRef, plan_action
    from checks.monitoring import drill

    spec = _spec(ctx)
    if spec.drill is None:
        return _no_spec("instance to stop for the unavailability drill", "drill")
    d = spec.drill
    selectors = {**service_selectors(ctx), **host_selectors(ctx)}
    if d.service not in selectors or not selectors[d.service]:
        return Measurement.failed(f"monitoring.drill.service '{d.service}' is no service or host golive can find in "
                                  "Prometheus", Evidence(probe="monitoring.unavailability_alert", subject=d.service,
                                                         method="target file"))
    host = HostRef()
    if d.host:
        h = ctx.host(d.host)
        host = HostRef(h.connection, h.name, h.ssh_config, h.ssh_identity_file, h.sudo, h.timeout_s)
    m = drill.unavailability_alert(
        endpoint(spec.prometheus), instance=d.service, selector=selectors[d.service],
        alerts=d.alerts or spec.alerts.get("unavailable"), stop=plan_action(d.stop, "stop", host),
        start=plan_action(d.start, "start", host), am=endpoint(spec.alertmanager) if spec.alertmanager else None,
        timeout_s=d.timeout_s, restore_timeout_s=d.restore_timeout_s)
    if m.evidence.data.get("interrupted_by"):  # the instance was started again; end the run as for Ctrl-C
        ctx.stop_run(f"interrupted by {m.evidence.data['interrupted_by']} during the unavailability drill"
                     + ("" if m.ok or "NOT restored" not in (m.error or "") else "; the instance was NOT restored"))
    return m


def _log_hosts(ctx: CheckContext) -> tuple[dict[str, LogSpec], dict[str, Measurement]]:
    """The target's ``monitoring.logs`` for the hosts of this run, and an error for each
    name that is no target host (a host left out by --hosts/--roles is left out here too)."""
    spec = _spec(ctx)
    if not spec.logs:
        raise CannotVerify("the target declares no logs (monitoring.logs: host -> paths)")
    known = {h.name for h in ctx.host_specs}
    selection = getattr(ctx.target, "selection", None)
    left_out = set(selection.left_out) if selection is not None else set()
    unknown = {name: Measurement.failed(f"monitoring.logs names host '{name}', which is not in the target's hosts",
                                        Evidence(probe="monitoring.logs", subject=name, method="target file"))
               for name in spec.logs if name not in known and name not in left_out}
    return {n: ls for n, ls in spec.logs.items() if n in known}, unknown


def _recent(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.monitoring import logs

    req: MonitoringReq = ctx.req
    hosts, out = _log_hosts(ctx)
    for host, ls in hosts.items():
        for kind in req.log_kinds:
            sources = ls.sources(kind)
            out[f"{host} {kind}"] = (ctx.on_host(host, logs.newest_write, sources) if sources else Measurement.failed(
                f"no {kind} log declared for {host} (monitoring.logs.{host}.{kind})",
                Evidence(probe="monitoring.log_age", subject=host, method="target file")))
    return out


def _lines(ctx: CheckContext, host: str, ls: LogSpec) -> Measurement:
    from checks.monitoring import logs

    req: MonitoringReq = ctx.req
    result: Measurement = ctx.memo(("monitoring.lines", host, tuple(ls.application), req.structured_lines),
                                   lambda: ctx.on_host(host, logs.last_lines, ls.application, req.structured_lines))
    return result


def _structured(ctx: CheckContext) -> dict[str, Measurement]:
    hosts, out = _log_hosts(ctx)
    for host, ls in hosts.items():
        out[host] = _lines(ctx, host, ls) if ls.application else Measurement.failed(
            f"no application log declared for {host}", Evidence(probe="monitoring.log_lines", subject=host,
                                                                  method="target file"))
    return out


def _rotated(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.monitoring import logs

    hosts, out = _log_hosts(ctx)
    for host, ls in hosts.items():
        if ls.rotation:
            out[host] = Measurement({"declared": ls.rotation}, f"declared by the target: {ls.rotation}",
                                    Evidence(probe="monitoring.rotation", subject=host,
                                             method="monitoring.logs.<host>.rotation in the target (not measured)"),
                                    unit="files")
        elif ls.all_files():
            out[host] = ctx.on_host(host, logs.logrotate_coverage, ls.all_files(), ls.logrotate)
    return out


def _most_verbose(levels: dict[str, int]) -> str | None:
    known = [_LEVEL_ALIASES.get(lv, lv) for lv in levels]
    known = [lv for lv in known if lv in LEVEL_ORDER]
    return min(known, key=LEVEL_ORDER.index) if known else None


def _level(ctx: CheckContext) -> dict[str, Measurement]:
    from checks.monitoring import logs

    hosts, out = _log_hosts(ctx)
    for host, ls in hosts.items():
        if ls.level_file:
            m = ctx.on_host(host, logs.declared_level, ls.level_file, ls.level_pattern)
            out[host] = m if not m.ok else Measurement(_LEVEL_ALIASES.get(m.value, m.value), m.display, m.evidence,
                                                       unit="level")
            continue
        if not ls.application:
            continue
        lines = _lines(ctx, host, ls)
        if not lines.ok:
            out[host] = lines
            continue
        level = _most_verbose(lines.value.get("levels", {}))
        if level is None:
            out[host] = Measurement.failed(
                f"no level field in the last {lines.value.get('lines')} lines of {lines.value.get('file')}; declare "
                f"the configuration (monitoring.logs.{host}.level_file)", lines.evidence)
            continue
        out[host] = Measurement(level, f"most verbose level in the last {lines.value['lines']} lines: {level}",
                                lines.evidence, unit="level")
    return out


def _dashboards(ctx: CheckContext) -> Measurement:
    from checks.monitoring import probes

    spec = _spec(ctx)
    assert spec.grafana is not None
    return probes.dashboards(endpoint(spec.grafana), spec.dashboard)


def _applies(flag: str) -> Any:
    def applies(ctx: CheckContext) -> str | None:
        if not getattr(ctx.req, flag):
            return f"profile '{ctx.profile_name}' does not require this (monitoring.{flag}: false)"
        return None
    return applies


def _only_production(ctx: CheckContext) -> str | None:
    if ctx.req.log_level_min is None:
        return f"profile '{ctx.profile_name}' does not require this (monitoring.log_level_min: null)"
    env = getattr(ctx.target, "environment", "prod")
    return None if env == "prod" else f"the log-level rule is for production; this target is '{env}'"


def _with_grafana(ctx: CheckContext) -> str | None:
    if not ctx.req.dashboard:
        return f"profile '{ctx.profile_name}' does not require this (monitoring.dashboard: false)"
    if ctx.spec is None or ctx.spec.grafana is None:
        return "the target names no Grafana (monitoring.grafana)"
    return None


def _rules_ok(value: list[dict[str, Any]]) -> bool:
    return bool(value) and all(r.get("health") == "ok" and not r.get("lastError") for r in value)


def _routes_ok(value: list[dict[str, Any]]) -> bool:
    return bool(value) and all(r.get("integrations") for r in value)


def _fired_in_time(value: dict[str, Any]) -> bool:
    fired = value.get("fired_after_s")
    return fired is not None and float(fired) <= float(value["allowed_s"])


FAMILY = Family(
    name="monitoring",
    title="Monitoring, alerting and logging",
    feature="monitoring.feature",
    profile_block=MonitoringReq,
    target_block=MonitoringSpec,
    checks=(
        Check(
            id="monitoring.scraped",
            title="Every host and service is scraped by Prometheus and up",
            severity=Severity.HIGH,
            refs=("ST-MON-03", "OZ-HL-MON-01", "AW-MON-06", "DS-MON-01"),
            measures="Prometheus /api/v1/targets and the 'up' series, matched to each target host (node-exporter "
                     "job, by address) and service (instance address:port) or to the labels the target maps",
            applies=_applies("scrape"),
            measure=_verified(_scraped),
            expected="a scrape target with up == 1",
            passes=lambda req, up: up is not None and float(up) == 1.0,
            remediation=lambda req, m: ("add a scrape job for it to prometheus.yml" if m.value is None else
                                        "make the exporter answer Prometheus' scrapes (see the last scrape error)"),
        ),
        Check(
            id="monitoring.host_signals",
            title="Host metrics are present and fresh",
            severity=Severity.HIGH,
            refs=("DS-MON-01", "AW-MON-02", "OZ-HL-MON-01", "ST-MON-03"),
            measures="for each host and signal (CPU, memory, disk I/O, network...): timestamp(<PromQL>) on "
                     "Prometheus; age of the newest sample in the host's scrape intervals",
            measure=_verified(functools.partial(_signals, kind="host")),
            expected=lambda req: f"present, newest sample younger than {req.freshness_intervals:g} scrape intervals",
            passes=lambda req, age: age is not None and float(age) <= req.freshness_intervals,
            remediation=lambda req, m: ("export the series (node-exporter collector) or map the signal to the "
                                        "PromQL that has it (monitoring.signals)" if m.value is None else
                                        "the series stopped updating: check the exporter and its scrape"),
        ),
        Check(
            id="monitoring.service_signals",
            title="Service metrics are present and fresh",
            severity=Severity.HIGH,
            refs=("DS-MON-02", "AW-MON-01", "ST-MON-03"),
            measures="for each service and signal (latency, success rate, queue length, processing time...): "
                     "timestamp(<PromQL>) on Prometheus; age of the newest sample in scrape intervals",
            measure=_verified(functools.partial(_signals, kind="service")),
            expected=lambda req: f"present, newest sample younger than {req.freshness_intervals:g} scrape intervals",
            passes=lambda req, age: age is not None and float(age) <= req.freshness_intervals,
            remediation=lambda req, m: ("instrument the service for the signal or map it to its PromQL "
                                        "(monitoring.services.<name>.signals)" if m.value is None else
                                        "the series stopped updating: the code path that sets it no longer runs"),
        ),
        Check(
            id="monitoring.alert_rules",
            title="Alert rules for the required conditions are loaded and healthy",
            severity=Severity.HIGH,
            refs=("ST-MON-04", "DS-MON-03", "AW-MON-04"),
            measures="Prometheus /api/v1/rules: the alerting rules named for each condition (or matching "
                     "golive's name pattern), their health and last evaluation error",
            measure=_verified(_rules),
            expected="at least one alerting rule, health ok, no evaluation error",
            passes=lambda req, rules: _rules_ok(rules),
            remediation=lambda req, m: ("add an alerting rule for the condition to a rule file Prometheus loads"
                                        if not m.value else "fix the rule's expression (see its last error)"),
        ),
        Check(
            id="monitoring.alert_routing",
            title="Alertmanager routes the required alerts to a receiver",
            severity=Severity.HIGH,
            refs=("DS-MON-03", "AW-MON-04", "ST-MON-04"),
            measures="Alertmanager /api/v2/status config.original: each required alert's labels walked through the "
                     "routing tree to its receivers and their integrations",
            applies=_applies("alert_routing"),
            measure=_verified(_routes),
            expected="routed to a receiver with at least one integration (webhook, email, ...)",
            passes=lambda req, routes: _routes_ok(routes),
            remediation="route the alert to a receiver that has an integration (receivers[].*_configs)",
        ),
        Check(
            id="monitoring.alert_delivery",
            title="A synthetic alert reaches a receiver",
            severity=Severity.HIGH,
            refs=("DS-MON-03",),
            measures="drill: POST a synthetic alert to Alertmanager /api/v2/alerts, time until the receiver has it "
                     "(the target's receiver_url, else Alertmanager's notification counters); resolved afterwards",
            disruptive=True,
            applies=_applies("alert_delivery"),
            measure=_verified(_synthetic),
            expected=lambda req: f"delivered within {fmt_duration(req.delivery_max)}",
            passes=lambda req, seconds: seconds is not None and float(seconds) <= req.delivery_max,
            remediation="check the receiver's integration (URL, credentials) and Alertmanager's log",
            data=lambda ctx, subject, m: {"timeline": m.evidence.data.get("timeline", []),
                                 "labels": m.evidence.data.get("labels", {})},
        ),
        Check(
            id="monitoring.unavailability_alert",
            title="Stopping an instance fires the unavailability alert in time",
            severity=Severity.HIGH,
            refs=("ST-MON-04",),
            measures="drill: stop the target's drill instance with its stop action, time until Prometheus fires its "
                     "unavailability alert (/api/v1/alerts), start it again and wait for up == 1",
            disruptive=True,
            applies=_applies("unavailability_drill"),
            measure=_verified(_unavailability),
            expected="fires within its for + evaluation interval + one scrape (interval and timeout)",
            passes=lambda req, value: _fired_in_time(value),
            remediation="make the unavailability rule cover this instance (up == 0 for its job) with a short 'for'",
            data=lambda ctx, subject, m: {"timeline": m.evidence.data.get("timeline", []),
                                 "rules": m.evidence.data.get("rules", []), "result": m.evidence.data.get("result")},
        ),
        Check(
            id="monitoring.logs_recent",
            title="Application, access and error logs are written",
            severity=Severity.MEDIUM,
            refs=("DS-LOG-04", "AW-MON-07"),
            measures="on each host: the newest modification time of each kind of log (stat) or journald entry, "
                     "against the host's clock",
            measure=_verified(_recent),
            expected=lambda req: f"written within {fmt_duration(req.log_max_age)}",
            passes=lambda req, age: age is not None and float(age) <= req.log_max_age,
            remediation="configure the service to write this log (or declare where it goes)",
        ),
        Check(
            id="monitoring.logs_structured",
            title="Application logs are structured",
            severity=Severity.MEDIUM,
            refs=("DS-LOG-05", "AW-MON-03"),
            measures="on each host: the last N lines of the newest application log (tail), each parsed as JSON",
            applies=_applies("structured_logs"),
            measure=_verified(_structured),
            expected=lambda req: f"each of the last {req.structured_lines} lines is a JSON object",
            passes=lambda req, v: v["lines"] > 0 and v["json"] == v["lines"],
            remediation="log JSON objects (one per line), e.g. python-json-logger or structlog",
        ),
        Check(
            id="monitoring.logs_rotated",
            title="Logs are rotated",
            severity=Severity.MEDIUM,
            refs=("DS-LOG-06", "ST-MON-01"),
            measures="on each host: the logrotate configuration (files and folders the target names) matched "
                     "against each existing log file; or the handler's limits the target declares",
            applies=_applies("log_rotation"),
            measure=_verified(_rotated),
            expected="every log file covered by a logrotate stanza (or declared handler limits)",
            passes=lambda req, v: "declared" in v or (bool(v) and all(c is not None for c in v.values())),
            remediation="add a logrotate stanza for the log files (or limits on the logging handler)",
        ),
        Check(
            id="monitoring.log_level",
            title="Production logs are not at debug level",
            severity=Severity.MEDIUM,
            refs=("DS-LOG-07", "AW-MON-05"),
            measures="on each host: the most verbose level in the last application log lines' level field, or "
                     "the level the target's level_file declares",
            applies=_only_production,
            measure=_verified(_level),
            expected=lambda req: f"no more verbose than {req.log_level_min}",
            passes=lambda req, level: LEVEL_ORDER.index(level) >= LEVEL_ORDER.index(req.log_level_min),
            remediation=lambda req, m: f"set the production log level to {req.log_level_min} or higher",
        ),
        Check(
            id="monitoring.dashboard",
            title="A Grafana dashboard exists",
            severity=Severity.LOW,
            refs=("ST-MON-03", "AW-MON-03"),
            measures="Grafana GET /api/search?type=dash-db (query = the target's dashboard text)",
            applies=_with_grafana,
            measure=_verified(_dashboards),
            expected="at least one dashboard",
            passes=lambda req, titles: len(titles) >= 1,
            remediation="create (or provision) a dashboard for the service in Grafana",
        ),
    ),
)
