"""Disruptive alerting drills (run only with ``--allow-disruptive``), bounded and restoring.

:func:`synthetic_alert` posts one alert golive made up (``alertname=GoliveSyntheticAlert``
and a unique ``golive_drill`` label) to Alertmanager's ``/api/v2/alerts`` and waits until a
receiver got it: the target's ``receiver_url`` (a URL that lists what the receiver
recorded) mentions the drill id, or -- without one -- Alertmanager's own
``alertmanager_notifications_total`` grew with no growth of
``alertmanager_notifications_failed_total``.  The alert is resolved (posted again with
``endsAt`` = now) whatever happens, and it expires on its own after ``ALERT_TTL_S``.

:func:`unavailability_alert` stops one instance with the target's stop action (the HA
drill's action model: :func:`checks.ha.probes.plan_action`, run and journalled by
:class:`checks.ha.probes.Journal`), watches Prometheus' ``/api/v1/alerts`` until the
unavailability alert for that instance fires, then runs the start action and waits until
the instance's ``up`` is 1 again.  The allowed time is the rule's ``for`` + its group's
evaluation interval + the target's scrape interval and scrape timeout (Prometheus only
sees the instance down at the first scrape after the stop) + golive's polling step.

Both return a Measurement whose evidence carries the timeline (``data["timeline"]``: one
entry per event with seconds since the drill began and UTC time).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

import httpx

from checks.ha.probes import Action, Journal, journal_text
from checks.monitoring import api, probes
from checks.monitoring.api import ApiError, Endpoint
from golive.model import Evidence, Measurement, utcnow
from golive.redact import redact

ALERT_TTL_S = 300  # the synthetic alert resolves itself after this even if golive is killed
POLL_S = 0.25
SYNTHETIC_ALERT = "GoliveSyntheticAlert"


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []

    def mark(self, text: str, **extra: Any) -> float:
        t = round(time.monotonic() - self.t0, 3)
        self.events.append({"t": t, "at": utcnow(), "event": redact(text), **extra})
        return t

    def text(self) -> str:
        return "\n".join(f"+{e['t']:.2f} s {e['at']} {e['event']}" for e in self.events)


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _notification_counts(am: Endpoint) -> tuple[float, float]:
    """(sum of alertmanager_notifications_total, sum of ..._failed_total) from /metrics."""
    headers = {"Authorization": f"Bearer {am.token}"} if am.token else {}
    auth = httpx.BasicAuth(am.username, am.password or "") if am.username and not am.token else None
    try:
        with httpx.Client(timeout=am.timeout_s, trust_env=False, verify=am.ca_file or True) as c:
            resp = c.get(am.url.rstrip("/") + "/metrics", headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        raise ApiError(redact(f"GET {am.shown}/metrics: {type(exc).__name__}: {exc}")) from None
    if resp.status_code != 200:
        raise ApiError(f"GET {am.shown}/metrics: HTTP {resp.status_code}", resp.status_code)
    total = failed = 0.0
    for line in resp.text.splitlines():
        m = re.match(r"^alertmanager_notifications(_failed)?_total(\{[^}]*\})?\s+([0-9.eE+-]+)", line)
        if m:
            if m.group(1):
                failed += float(m.group(3))
            else:
                total += float(m.group(3))
    return total, failed


def _receiver_has(receiver_url: str, needle: str, timeout_s: float) -> bool:
    with httpx.Client(timeout=timeout_s, trust_env=False) as c:
        resp = c.get(receiver_url)
    return resp.status_code == 200 and needle in resp.text


def synthetic_alert(am: Endpoint, *, labels: Mapping[str, str] | None = None, receiver_url: str | None = None,
                    timeout_s: float = 60) -> Measurement:
    """Seconds from posting a synthetic alert until a receiver had it (None: not within
    ``timeout_s``)."""
    drill_id = f"golive-{uuid.uuid4().hex[:12]}"
    alert_labels = {"alertname": SYNTHETIC_ALERT, "severity": "critical", **dict(labels or {}), "golive_drill": drill_id}
    tl = Timeline()
    how = (f"GET {redact(receiver_url)} until it mentions the drill id" if receiver_url else
           "alertmanager_notifications_total on Alertmanager's /metrics grows, failed_total does not")
    method = (f"POST {am.shown}/api/v2/alerts one synthetic alert {alert_labels}; then {how}; "
              f"resolved afterwards (endsAt = now)")
    data: dict[str, Any] = {"labels": alert_labels, "timeline": tl.events, "receiver_url": redact(receiver_url or "")}

    def evidence(raw: str = "") -> Evidence:
        return Evidence(probe="monitoring.synthetic_alert", subject=am.shown, method=method, tool=api.tool(),
                        raw=(raw or tl.text())[:1500], duration_s=round(time.monotonic() - tl.t0, 3), data=data)

    def post(ends: float) -> None:
        body = [{"labels": alert_labels, "annotations": {
            "summary": "golive alert-delivery drill: a synthetic alert, resolves itself",
            "description": f"drill {drill_id}"}, "startsAt": _iso(started_at), "endsAt": _iso(ends)}]
        api.request(am, "POST", "/api/v2/alerts", json_body=body)

    started_at = time.time()
    delivered: float | None = None
    try:
        before = None if receiver_url else _notification_counts(am)
        post(started_at + ALERT_TTL_S)
        tl.mark(f"posted {SYNTHETIC_ALERT} ({drill_id}) to Alertmanager")
        seen = False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not seen:
                found, _ = api.request(am, "GET", "/api/v2/alerts", params={"filter": f'golive_drill="{drill_id}"'})
                if isinstance(found, list) and found:
                    receivers = [r.get("name") for r in found[0].get("receivers", [])]
                    tl.mark(f"Alertmanager holds the alert, routed to {', '.join(map(str, receivers)) or 'nothing'}",
                            receivers=receivers)
                    data["receivers"] = receivers
                    seen = True
            if receiver_url:
                got = _receiver_has(receiver_url, drill_id, am.timeout_s)
            else:
                assert before is not None
                now_counts = _notification_counts(am)
                got = now_counts[0] > before[0] and now_counts[1] == before[1]
                data["notifications"] = {"before": before, "after": now_counts}
            if got:
                delivered = tl.mark("a receiver got the alert")
                break
            time.sleep(POLL_S)
        else:
            tl.mark(f"not delivered within {timeout_s:g} s")
    except (ApiError, httpx.HTTPError) as exc:
        reason = exc.reason if isinstance(exc, ApiError) else redact(f"{type(exc).__name__}: {exc}")
        tl.mark(f"drill stopped: {reason}")
        _resolve(post, tl)
        return Measurement.failed(reason, evidence())
    _resolve(post, tl)
    if delivered is None:
        return Measurement(None, f"not delivered to a receiver within {timeout_s:g} s", evidence(), unit="s")
    return Measurement(delivered, f"delivered to a receiver {delivered:.1f} s after it was posted", evidence(),
                       unit="s")


def _resolve(post: Any, tl: Timeline) -> None:
    try:
        post(time.time())
        tl.mark("resolved the synthetic alert (endsAt = now)")
    except ApiError as exc:
        tl.mark(f"could not resolve the synthetic alert ({exc.reason}); it expires after {ALERT_TTL_S} s")


@contextlib.contextmanager
def _interruptible(tl: Timeline) -> Iterator[dict[str, str]]:
    """While the instance is down, SIGINT/SIGTERM end the watch (not the process): the
    start action still runs.  ``state["by"]`` names the signal once one came."""
    state: dict[str, str] = {}
    if threading.current_thread() is not threading.main_thread():
        yield state  # only the main thread gets signals; KeyboardInterrupt still reaches `finally`
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if "by" not in state:
            state["by"] = name
            tl.mark(f"{name} received: ending the drill and starting the instance again")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _firing(prom: Endpoint, names: list[str], selector: Mapping[str, str]) -> dict[str, str]:
    """{alertname: state} of the named alerts whose labels match ``selector``."""
    data = api.prom_get(prom, "/api/v1/alerts")
    out: dict[str, str] = {}
    for a in (data or {}).get("alerts", []) if isinstance(data, dict) else []:
        lab = a.get("labels") or {}
        if lab.get("alertname") in names and probes._selected(lab, selector):
            state = str(a.get("state"))
            if out.get(lab["alertname"]) != "firing":
                out[lab["alertname"]] = state
    return out


def _up(prom: Endpoint, selector: Mapping[str, str]) -> float | None:
    _, res = api.query(prom, f"up{{{probes.matchers(selector)}}}")
    return min(float(s["value"][1]) for s in res) if res else None


def unavailability_alert(prom: Endpoint, *, instance: str, selector: Mapping[str, str], alerts: list[str] | None,
                         stop: Action, start: Action, am: Endpoint | None = None, timeout_s: float = 120,
                         restore_timeout_s: float = 60) -> Measurement:
    """Stop ``instance``; value {fired_after_s (None: did not fire), allowed_s, alert}."""
    tl = Timeline()
    journal = Journal(tl.t0)
    data: dict[str, Any] = {"instance": instance, "selector": dict(selector), "timeline": tl.events}
    method = (f"stop {instance} ({stop.description or stop.command}), poll GET {prom.shown}/api/v1/alerts every "
              f"{POLL_S:g} s until the unavailability alert for {{{probes.matchers(selector)}}} fires, then start it "
              f"({start.description or start.command}) and wait for up == 1")

    def evidence() -> Evidence:
        data["journal"] = journal.entries()
        raw = tl.text() + ("\n" + journal_text(journal.entries()) if journal.entries() else "")
        return Evidence(probe="monitoring.unavailability_alert", subject=instance, method=method,
                        tool=api.tool(), raw=raw[:2000], duration_s=round(time.monotonic() - tl.t0, 3), data=data)

    try:
        rules = probes.alerting_rules(prom)
        mine = probes.rules_for(rules, alerts, "unavailable")
        if not mine:
            return Measurement.failed(f"no unavailability alert rule loaded (looked for "
                                      f"{probes._looked_for(alerts, 'unavailable')})", evidence())
        targets = probes.active_targets(prom)
        scrape = probes.scrape_interval_s(targets, selector, 0.0)
        timeouts = [probes._duration_s(str(t.get("scrapeTimeout"))) for t in targets
                    if probes._selected(t.get("labels") or {}, selector) and t.get("scrapeTimeout")]
        if scrape == 0.0:
            return Measurement.failed(f"{instance} is not a scrape target ({{{probes.matchers(selector)}}})", evidence())
        names = [str(r["name"]) for r in mine]
        # for + evaluation interval + the scrape that sees the instance down + golive's poll step
        allowed = {str(r["name"]): float(r.get("duration") or 0) + float(r.get("group_interval_s") or 0) + scrape
                   + (max(timeouts) if timeouts else scrape) + POLL_S for r in mine}
        data.update(rules=[{"name": r["name"], "for_s": r.get("duration"), "evaluation_interval_s":
                            r.get("group_interval_s"), "query": r.get("query")} for r in mine],
                    scrape_interval_s=scrape, allowed_s=allowed)
        if _up(prom, selector) != 1:
            return Measurement.failed(f"{instance} is not up before the drill; nothing was stopped", evidence())
        already = _firing(prom, names, selector)
        if any(s == "firing" for s in already.values()):
            return Measurement.failed(f"{', '.join(already)} already firing for {instance}; nothing was stopped",
                                      evidence())
    except (ApiError, ValueError) as exc:
        return Measurement.failed(exc.reason if isinstance(exc, ApiError) else str(exc), evidence())

    fired: tuple[str, float] | None = None
    seen: dict[str, str] = {}
    problem: str | None = None
    stopped_at = 0.0
    with _interruptible(tl) as interrupted:
        try:
            entry = journal.action("stop", instance, stop)
            stopped_at = tl.mark(f"stopped {instance}: {'ok' if entry['ok'] else 'FAILED'} "
                                 f"(exit {entry.get('exit_status')})")
            if not entry["ok"]:
                problem = f"the stop action failed: {entry.get('output') or entry.get('exit_status')}"
            else:
                fired = _watch(prom, am, names, selector, tl, stopped_at, seen, interrupted,
                               min(timeout_s, 2 * max(allowed.values()) + 5))
                if fired is None and "by" not in interrupted:
                    tl.mark("the alert did not fire before the drill's deadline")
        except ApiError as exc:
            problem = exc.reason
            tl.mark(f"watching stopped: {exc.reason}")
        finally:
            restored = _restore(prom, instance, selector, start, journal, tl, restore_timeout_s)
    if "by" in interrupted:
        data["interrupted_by"] = interrupted["by"]
        if problem is None and fired is None:
            problem = f"interrupted by {interrupted['by']} before the alert fired"
    if problem is not None:
        return Measurement.failed(problem + ("" if restored else "; and the instance was NOT restored"), evidence())
    if not restored:
        return Measurement.failed(f"{instance} was not up again within {restore_timeout_s:g} s after the start "
                                  "action: restore it by hand", evidence())
    value = {"alert": fired[0] if fired else None, "fired_after_s": fired[1] if fired else None,
             "allowed_s": round(allowed[fired[0]] if fired else min(allowed.values()), 3)}
    data["result"] = value
    display = (f"{fired[0]} fired {fired[1]:.1f} s after {instance} stopped (allowed {value['allowed_s']:g} s)"
               if fired else f"no unavailability alert fired for {instance} within the drill")
    return Measurement(value, display, evidence(), unit="s")


def _watch(prom: Endpoint, am: Endpoint | None, names: list[str], selector: Mapping[str, str], tl: Timeline,
           stopped_at: float, seen: dict[str, str], interrupted: dict[str, str], limit_s: float
           ) -> tuple[str, float] | None:
    """Poll Prometheus' alerts until one of ``names`` fires for ``selector`` (and, with an
    Alertmanager, until it holds it too), ``limit_s`` passes or a signal came."""
    fired: tuple[str, float] | None = None
    in_am = False
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and "by" not in interrupted:
        for name, state in _firing(prom, names, selector).items():
            if seen.get(name) != state:
                seen[name] = state
                t = tl.mark(f"{name} {state} in Prometheus")
                if state == "firing" and fired is None:
                    fired = (name, round(t - stopped_at, 3))
        if fired and am is not None and not in_am:
            got, _ = api.request(am, "GET", "/api/v2/alerts", params={"filter": f'alertname="{fired[0]}"'})
            if isinstance(got, list) and any(probes._selected(a.get("labels") or {}, selector) for a in got):
                tl.mark(f"{fired[0]} received by Alertmanager")
                in_am = True
        if fired and (am is None or in_am):
            break
        time.sleep(POLL_S)
    return fired


def _restore(prom: Endpoint, instance: str, selector: Mapping[str, str], start: Action, journal: Journal,
             tl: Timeline, restore_timeout_s: float) -> bool:
    entry = journal.action("start", instance, start)
    tl.mark(f"started {instance}: {'ok' if entry['ok'] else 'FAILED'} (exit {entry.get('exit_status')})")
    deadline = time.monotonic() + restore_timeout_s
    while time.monotonic() < deadline:
        try:
            if _up(prom, selector) == 1:
                tl.mark(f"{instance} up again")
                return True
        except ApiError:
            pass
        time.sleep(POLL_S)
    tl.mark(f"{instance} not up within {restore_timeout_s:g} s")
    return False
