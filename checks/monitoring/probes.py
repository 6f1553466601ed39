"""Read-only measurements against Prometheus, Alertmanager and Grafana.

Each function takes plain values (an :class:`~checks.monitoring.api.Endpoint`, label
selectors, PromQL) and returns :class:`~golive.model.Measurement` objects; one that could
not be taken (unreachable, 401, timeout, an error answer) is ``Measurement.failed`` and
judges as ``error``.  Nothing here decides pass or fail: the values are what the family's
checks compare with the profile.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import yaml

from checks.monitoring import api, routing
from checks.monitoring.api import ApiError, Endpoint
from golive.model import Evidence, Measurement

#: PromQL used when the target does not map a signal; ``$selector`` becomes the subject's
#: label matchers.  Host signals are node-exporter's names.
DEFAULT_SIGNALS: dict[str, str] = {
    "cpu": "node_cpu_seconds_total{$selector}",
    "memory": "node_memory_MemAvailable_bytes{$selector}",
    "disk_io": "node_disk_io_time_seconds_total{$selector}",
    "network": "node_network_receive_bytes_total{$selector}",
    "storage": "node_filesystem_avail_bytes{$selector}",
    "latency": "http_request_duration_seconds_count{$selector}",
    "success_rate": "http_requests_total{$selector}",
    "queue_length": "task_queue_length{$selector}",
    "processing_time": "task_processing_seconds_count{$selector}",
}
#: Alert names that count for a condition when the target names none (case-insensitive).
DEFAULT_ALERT_PATTERNS: dict[str, str] = {
    "unavailable": r".*(down|unavailable|unreachable|absent).*",
    "error_rate": r".*error.*",
    "resources": r".*(cpu|memory|mem|disk|filesystem|space|resource|exhaust|oom).*",
}
ADDRESS = "address"  # selector key: the instance label's host part (any port)


def matchers(selector: Mapping[str, str]) -> str:
    """A label selector as PromQL matchers (no braces); ``address`` matches the host part of
    ``instance`` whatever the port."""
    out = []
    for k, v in sorted(selector.items()):
        if k == ADDRESS:
            out.append(f'instance=~"{_promql_re(v)}(:[0-9]+)?"')
        else:
            out.append(f'{k}="{_promql_str(v)}"')
    return ", ".join(out)


def _promql_str(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"')


def _promql_re(v: str) -> str:
    return _promql_str(re.escape(v))


def _selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    for k, v in selector.items():
        if k == ADDRESS:
            host = labels.get("instance", "").rsplit(":", 1)[0] if ":" in labels.get("instance", "") \
                else labels.get("instance", "")
            if host.strip("[]") != v.strip("[]"):
                return False
        elif labels.get(k) != v:
            return False
    return True


def _duration_s(text: str) -> float:
    """Prometheus duration ('1s', '800ms', '1m30s') -> seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"([0-9.]+)(ms|s|m|h|d|w|y)", text or "")
    if not parts:
        raise ValueError(f"cannot read the duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def _ev(probe: str, ep: Endpoint, subject: str, method: str, raw: str = "", started: float | None = None,
        data: dict[str, Any] | None = None) -> Evidence:
    return Evidence(probe=probe, subject=subject, method=f"{method} on {ep.shown} ({ep.auth_words}, "
                    f"timeout {ep.timeout_s:g} s)", tool=api.tool(), raw=raw[:600],
                    duration_s=round(time.monotonic() - started, 3) if started is not None else None,
                    data=data or {})


# ----------------------------------------------------------------------------- scrape targets


def active_targets(ep: Endpoint) -> list[dict[str, Any]]:
    """``/api/v1/targets?state=active`` (raises :class:`ApiError`)."""
    data = api.prom_get(ep, "/api/v1/targets", {"state": "active"})
    if not isinstance(data, dict) or not isinstance(data.get("activeTargets"), list):
        raise ApiError(f"GET {ep.shown}/api/v1/targets: unexpected answer")
    return list(data["activeTargets"])


def scrape_status(ep: Endpoint, subjects: Mapping[str, Mapping[str, str]]) -> dict[str, Measurement]:
    """For each subject (name -> label selector): the value of ``up`` of its scrape
    target(s) -- the lowest when several match -- or None when no active scrape target
    carries those labels.  One ``/api/v1/targets`` and one ``up`` query for all subjects."""
    started = time.monotonic()
    method = "GET /api/v1/targets?state=active and instant query 'up'"
    try:
        targets = active_targets(ep)
        _, up = api.query(ep, "up")
    except ApiError as exc:
        return {name: Measurement.failed(exc.reason, _ev("monitoring.scrape", ep, name, method, started=started))
                for name in subjects}
    out: dict[str, Measurement] = {}
    for name, sel in subjects.items():
        if not sel:  # an empty selector would match every target
            out[name] = Measurement.failed(f"no labels to find {name} by (map it: monitoring.hosts/services)",
                                           _ev("monitoring.scrape", ep, name, method, started=started))
            continue
        mine = [t for t in targets if _selected(t.get("labels") or {}, sel)]
        ups = [float(s["value"][1]) for s in up if _selected(s.get("metric") or {}, sel)]
        data = {"selector": dict(sel), "targets": [
            {k: t.get(k) for k in ("labels", "scrapeUrl", "health", "lastError", "lastScrape", "scrapeInterval")}
            for t in mine]}
        shown_sel = "{" + matchers(sel) + "}"
        if not mine and not ups:
            known = ", ".join(sorted({f"{t['labels'].get('job')}/{t['labels'].get('instance')}"
                                      for t in targets if t.get("labels")}))[:300]
            out[name] = Measurement(None, f"not a scrape target (no active target matches {shown_sel})",
                                    _ev("monitoring.scrape", ep, name, method, f"active targets: {known}",
                                        started, data), unit="up")
            continue
        value = min(ups) if ups else 0.0
        errors = "; ".join(sorted({t["lastError"] for t in mine if t.get("lastError")}))
        where = ", ".join(f"{t['labels'].get('job')}/{t['labels'].get('instance')}" for t in mine) or shown_sel
        display = f"up = {value:g} ({where})" + (f"; last scrape error: {errors}" if errors else "")
        if not ups:  # a target Prometheus has not scraped yet has no up sample: not up
            health = ", ".join(sorted({str(t.get("health")) for t in mine}))
            display = f"up = 0: no up sample yet ({where}, target health {health})"
        out[name] = Measurement(value, display, _ev("monitoring.scrape", ep, name, method, display, started, data),
                                unit="up")
    return out


def scrape_interval_s(targets: list[dict[str, Any]], selector: Mapping[str, str], default: float) -> float:
    """The scrape interval of the subject's target (the longest when several match)."""
    found = []
    for t in targets:
        if _selected(t.get("labels") or {}, selector) and t.get("scrapeInterval"):
            try:
                found.append(_duration_s(str(t["scrapeInterval"])))
            except ValueError:
                continue
    return max(found) if found else default


def global_scrape_interval_s(ep: Endpoint) -> float:
    """``global.scrape_interval`` of the running configuration (Prometheus' default: 1m)."""
    data = api.prom_get(ep, "/api/v1/status/config")
    conf = yaml.safe_load(data.get("yaml", "")) if isinstance(data, dict) else None
    text = (conf or {}).get("global", {}).get("scrape_interval", "1m") if isinstance(conf, dict) else "1m"
    return _duration_s(str(text))


# ----------------------------------------------------------------------------- signals


def signal_age(ep: Endpoint, subject: str, promql: str, interval_s: float) -> Measurement:
    """How old the newest sample of ``promql`` is, in scrape intervals of the subject.

    Measured as ``timestamp(<promql>)``: for a selector that is each series' newest sample
    time; the newest of them is compared with the query's evaluation time.  No series at
    all (nothing within Prometheus' lookback window) is value None: the signal is missing.
    For a computed expression (``rate(...)``) the timestamp is the evaluation time, so only
    presence is measured -- the range window bounds how old its input can be."""
    started = time.monotonic()
    q = f"timestamp({promql})"
    method = f"instant query {q!r}"
    try:
        at, result = api.query(ep, q)
    except ApiError as exc:
        return Measurement.failed(exc.reason, _ev("monitoring.signal", ep, subject, method, started=started))
    data: dict[str, Any] = {"promql": promql, "series": len(result), "scrape_interval_s": interval_s}
    if not result:
        return Measurement(None, f"missing: no series for {promql}",
                           _ev("monitoring.signal", ep, subject, method, "empty result", started, data),
                           unit="scrape intervals")
    newest = max(float(s["value"][1]) for s in result)
    age = max(0.0, at - newest)
    data.update(newest_sample_at=newest, evaluated_at=at, age_s=round(age, 3))
    value = round(age / interval_s, 2) if interval_s > 0 else age
    display = (f"newest sample {age:.1f} s old = {value:g} scrape intervals of {interval_s:g} s "
               f"({len(result)} series)")
    return Measurement(value, display, _ev("monitoring.signal", ep, subject, method,
                                           f"{len(result)} series; newest at {newest:.3f}, evaluated at {at:.3f}",
                                           started, data), unit="scrape intervals")


# ----------------------------------------------------------------------------- alert rules


def alerting_rules(ep: Endpoint) -> list[dict[str, Any]]:
    """Every alerting rule Prometheus loaded, each with its group's ``interval`` and file
    (raises :class:`ApiError`)."""
    data = api.prom_get(ep, "/api/v1/rules", {"type": "alert"})
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise ApiError(f"GET {ep.shown}/api/v1/rules: unexpected answer")
    out = []
    for g in data["groups"]:
        for r in g.get("rules") or []:
            if r.get("type", "alerting") == "alerting":
                out.append({**r, "group": g.get("name"), "file": g.get("file"), "group_interval_s": g.get("interval")})
    return out


def rules_for(rules: list[dict[str, Any]], names: list[str] | None, condition: str) -> list[dict[str, Any]]:
    """The rules that cover ``condition``: those named (exact alert names) or, without
    names, those whose alert name matches golive's pattern for the condition."""
    if names:
        return [r for r in rules if r.get("name") in names]
    pattern = DEFAULT_ALERT_PATTERNS.get(condition, re.escape(condition))
    return [r for r in rules if re.fullmatch(pattern, str(r.get("name", "")), re.IGNORECASE)]


def _looked_for(names: list[str] | None, condition: str) -> str:
    return (", ".join(names) if names else
            f"an alert name matching /{DEFAULT_ALERT_PATTERNS.get(condition, condition)}/i")


def rule_health(ep: Endpoint, conditions: Mapping[str, list[str] | None]) -> dict[str, Measurement]:
    """Per required condition: the alerting rules that cover it with their health and last
    evaluation error.  Value: list of {name, health, lastError, query}; empty when no rule
    covers the condition."""
    started = time.monotonic()
    method = "GET /api/v1/rules?type=alert"
    try:
        rules = alerting_rules(ep)
    except ApiError as exc:
        return {c: Measurement.failed(exc.reason, _ev("monitoring.rules", ep, c, method, started=started))
                for c in conditions}
    out: dict[str, Measurement] = {}
    for cond, names in conditions.items():
        mine = rules_for(rules, names, cond)
        value = [{"name": r.get("name"), "health": r.get("health"), "lastError": r.get("lastError") or "",
                  "query": r.get("query"), "for_s": r.get("duration"), "file": r.get("file")} for r in mine]
        if not mine:
            loaded = ", ".join(sorted({str(r.get("name")) for r in rules}))[:300] or "none"
            display = f"no alerting rule for {cond} (looked for {_looked_for(names, cond)}; loaded: {loaded})"
        else:
            display = "; ".join(f"{v['name']}: health {v['health']}" + (f" ({v['lastError']})" if v["lastError"] else "")
                                for v in value)
        out[cond] = Measurement(value, display, _ev("monitoring.rules", ep, cond, method, display, started,
                                                    {"rules": value}), unit="rules")
    return out


# ----------------------------------------------------------------------------- Alertmanager


def alertmanager_config(ep: Endpoint) -> dict[str, Any]:
    """The configuration Alertmanager runs (``/api/v2/status`` config.original, parsed)."""
    body, _ = api.request(ep, "GET", "/api/v2/status")
    original = body.get("config", {}).get("original") if isinstance(body, dict) else None
    if not isinstance(original, str):
        raise ApiError(f"GET {ep.shown}/api/v2/status: no config.original in the answer")
    try:
        conf = yaml.safe_load(original)
    except yaml.YAMLError as exc:
        raise ApiError(f"GET {ep.shown}/api/v2/status: config.original is not YAML: {exc}") from None
    if not isinstance(conf, dict):
        raise ApiError(f"GET {ep.shown}/api/v2/status: config.original is not a mapping")
    return conf


def alert_routes(prom: Endpoint, am: Endpoint, conditions: Mapping[str, list[str] | None]) -> dict[str, Measurement]:
    """Per required condition: where Alertmanager sends its alerts.  Each covering rule's
    labels (alertname + the rule's static labels; a target-named alert without a loaded
    rule: alertname only) are routed through the running routing tree; value: list of
    {alert, receiver, integrations}.  A receiver without integrations delivers nothing."""
    started = time.monotonic()
    method = "GET /api/v1/rules (Prometheus) and /api/v2/status config.original (Alertmanager), routed by golive"
    try:
        rules = alerting_rules(prom)
        conf = alertmanager_config(am)
    except ApiError as exc:
        return {c: Measurement.failed(exc.reason, _ev("monitoring.routing", am, c, method, started=started))
                for c in conditions}
    out: dict[str, Measurement] = {}
    for cond, names in conditions.items():
        mine = rules_for(rules, names, cond)
        label_sets = [{**{str(k): str(v) for k, v in (r.get("labels") or {}).items()}, "alertname": str(r["name"])}
                      for r in mine] or [{"alertname": n} for n in names or []]
        ev = _ev("monitoring.routing", am, cond, method, started=started)
        if not label_sets:
            out[cond] = Measurement.failed(f"no alert rule for {cond} to route (looked for "
                                           f"{_looked_for(names, cond)}); see the alert-rules check", ev)
            continue
        value: list[dict[str, Any]] = []
        try:
            for labels in label_sets:
                for receiver, path in routing.route(conf, labels):
                    value.append({"alert": labels["alertname"], "labels": labels, "receiver": receiver,
                                  "route": ".".join(path), "integrations": routing.integrations(conf, receiver)})
        except (routing.RoutingError, re.error) as exc:
            out[cond] = Measurement.failed(f"cannot evaluate Alertmanager's routes: {exc}", ev)
            continue
        display = "; ".join(
            f"{v['alert']} -> {v['receiver'] or '(no receiver)'} "
            + (f"({', '.join(v['integrations'])})" if v["integrations"] else
               "(receiver not defined)" if v["integrations"] is None else "(no integration: delivers nothing)")
            for v in value)
        out[cond] = Measurement(value, display, _ev("monitoring.routing", am, cond, method, display, started,
                                                    {"routes": value}), unit="routes")
    return out


# ----------------------------------------------------------------------------- Grafana


def dashboards(ep: Endpoint, search: str | None = None) -> Measurement:
    """Dashboards Grafana lists (``GET /api/search?type=dash-db``, ``query`` = ``search``
    when given); value: their titles."""
    started = time.monotonic()
    params = {"type": "dash-db", **({"query": search} if search else {})}
    method = "GET /api/search?" + "&".join(f"{k}={v}" for k, v in params.items())
    try:
        body, _ = api.request(ep, "GET", "/api/search", params=params)
    except ApiError as exc:
        return Measurement.failed(exc.reason, _ev("monitoring.dashboards", ep, ep.shown, method, started=started))
    if not isinstance(body, list):
        return Measurement.failed(f"GET {ep.shown}/api/search: expected a list, got {str(body)[:100]}",
                                  _ev("monitoring.dashboards", ep, ep.shown, method, started=started))
    titles = [str(d.get("title")) for d in body if isinstance(d, dict)]
    display = (f"{len(titles)} dashboard(s): {', '.join(titles[:8])}" if titles else
               "no dashboard" + (f" matching {search!r}" if search else ""))
    return Measurement(titles, display, _ev("monitoring.dashboards", ep, ep.shown, method, display, started,
                                            {"titles": titles}), unit="dashboards")
