"""High availability: instance health, and the failover drill (a disruptive experiment).

Read-only probes: :func:`instance_health` (GET an instance's own health URL) and
:func:`healthy_count`.

The drill (:class:`Drill`) is an experiment in Chaos Toolkit's sense:

1. **steady state** -- an open-loop request stream (constant arrival rate, latency measured
   from each request's *scheduled* time, so a slow service is not hidden by a waiting
   client) succeeds, the entrypoint answers, every instance's own health URL answers.  The
   stream is the throughput family's load engine (``checks.throughput.load.Stream``): one
   request spec, one success rule (``checks.request``), one scheduler loop and pool;
2. **method**, for each instance in turn -- run the target's *stop* action, keep the stream
   going and poll the instance, until the service has been fully successful for ``stable``
   seconds (or ``failover_max + stable`` has passed), and, when a restart policy is
   required, until the instance came back by itself (or ``restart_max`` has passed);
3. **rollback** -- run the target's *start* action and wait (bounded) until the instance
   is healthy; then wait until the stream is fully successful again before the next
   instance is stopped: the drill never takes down a second instance while the first is
   not back;
4. **steady state** again.

Safety, on every exit path: the rollback of every instance that was stopped and not yet
restored runs in ``finally`` -- after a failure, an exception, SIGINT/SIGTERM (caught while
the drill runs; the drill aborts and restores, then the caller stops the run) and the
drill's own bounds (``max_duration`` seconds, ``max_requests`` requests).  Every action is
journaled (activity, command, host, start/end UTC, exit status, output) as evidence.

Actions (``checks.ha.spec.HaAction``) run through testinfra (``checks.connection``) on the
instance's host (ssh without connection sharing: a master connection breaks when addresses
move) or on the checking host: ``command`` as given; ``pidfile``: ``kill -SIGNAL`` to the pid
read from the file, on that host; ``systemd``: ``systemctl stop|start UNIT``; ``pod``:
``kubectl delete pod NAME --wait=false`` (there is no start: the controller replaces it).

Pinned addresses (the target's ``endpoints.resolve``, ``checks.pinning``) apply to the stream,
the entrypoint check and the instance health polls: connections go to the address, Host and
SNI stay the name.

The probe measures; thresholds are judged by the declared checks (``checks/ha/family.py``).  The
numbers the drill needs to know *how long to watch* (``failover_max``, ``restart_max``,
``stable``) come in the :class:`DrillPlan`.
"""
from __future__ import annotations

import dataclasses
import shlex
import signal
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from types import FrameType
from typing import TYPE_CHECKING, Any

import httpx

from checks import connection, pinning
from checks.connection import ProbeError, redact
from checks.ha.spec import HaAction, HaInstance
from golive.deadline import http_client
from golive.model import Evidence, Measurement, utcnow

if TYPE_CHECKING:
    from checks.throughput import load
    from checks.throughput.load import Outcome as Sample

POLL_S = 0.1  # instance health polling while an instance is stopped
NOT_DOWN_GRACE_S = 5.0  # a stop that left the instance healthy this long did nothing
HEALTH_TIMEOUT_S = 1.0
START_AGAIN_S = (5.0, 15.0, 30.0)  # re-run a start action while the instance is not healthy yet
OUTPUT_LIMIT = 2000  # characters of an action's output kept in the journal
LOCAL = "local://"


def _tool() -> str:
    try:
        testinfra = metadata.version("pytest-testinfra")
    except metadata.PackageNotFoundError:  # pragma: no cover
        testinfra = "unknown"
    from checks.throughput import wire

    return (f"golive HA drill (request stream: golive open-loop generator, {wire.client_name()}; "
            f"health polls: httpx {httpx.__version__}; actions: pytest-testinfra {testinfra})")


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    text = str(exc).strip() or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not trusted: {text}"
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return redact(f"{type(exc).__name__}: {text}")[:200]


# ----------------------------------------------------------------------------- read-only


def instance_health(url: str, *, ca_file: str | None = None, timeout_s: float = 5,
                    resolve: Mapping[str, str] | None = None, through: str = "directly, not through the load balancer",
                    ) -> Measurement:
    """Whether an instance's own health URL answers 2xx (GET, no redirects).

    True: 2xx.  False: another status, or the connection was refused (the instance is down:
    nothing listens).  Error: no answer at all (timeout, DNS, TLS failure), which cannot tell
    a down instance from a broken path.  A host pinned in ``resolve`` (the target's
    ``endpoints.resolve``) is connected to at its address; Host and SNI stay the name.
    """
    shown = redact(url)
    started = time.monotonic()
    pinned = pinning.words(url, resolve)

    def evidence(raw: str = "") -> Evidence:
        return Evidence(probe="ha.instance_health", subject=shown,
                        method=f"GET {shown} {through} (whole request bounded by {timeout_s:g} s)"
                               + (f"; {pinned}" if pinned else ""),
                        tool=f"httpx {httpx.__version__}", raw=raw, duration_s=round(time.monotonic() - started, 3))

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return Measurement.failed(f"not an http(s) URL: {shown}", evidence())
    client = None
    target_url, headers, extensions = pinning.route(url, resolve)
    try:
        # the whole request, body included, is bounded by timeout_s (golive.deadline)
        with http_client(timeout_s, verify=_ssl_context(ca_file)) as client:
            resp = client.get(target_url, headers=headers, extensions=extensions)
    except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
        if client is not None and client.deadline.expired:
            return Measurement.failed(client.deadline.message(), evidence())
        if not isinstance(exc, httpx.ConnectError):
            return Measurement.failed(_short_error(exc), evidence())
        reason = _short_error(exc)
        if reason == "connection refused":
            return Measurement(False, "down (connection refused)", evidence(reason))
        return Measurement.failed(reason, evidence(reason))
    ok = 200 <= resp.status_code < 300
    elapsed = round(resp.elapsed.total_seconds() * 1000, 1)
    return Measurement(ok, f"{'healthy' if ok else 'unhealthy'} (HTTP {resp.status_code}, {elapsed:g} ms)",
                       evidence(f"HTTP {resp.status_code} {resp.reason_phrase}: {resp.text[:200]}"))


def healthy_count(declared: Sequence[str], health: dict[str, Measurement]) -> Measurement:
    """How many of the declared instances answered healthy.  An instance without a health
    URL is not counted (it cannot be shown to be healthy)."""
    healthy = [n for n in declared if n in health and health[n].ok and health[n].value is True]
    others = [f"{n}: {health[n].error or health[n].display}" if n in health else f"{n}: no health url"
              for n in declared if n not in healthy]
    ev = Evidence(probe="ha.instances", subject=", ".join(declared) or "(none)",
                  method="the target's ha.instances, each checked at its own health URL", tool=f"httpx {httpx.__version__}",
                  raw="; ".join([f"{n}: healthy" for n in healthy] + others),
                  data={"declared": list(declared), "healthy": healthy})
    return Measurement(len(healthy), f"{len(healthy)} healthy of {len(declared)} declared", ev, unit="instances")


# ----------------------------------------------------------------------------- actions


@dataclasses.dataclass(frozen=True)
class HostRef:
    """Where an action runs: a testinfra connection and its options."""

    connection: str = LOCAL
    label: str = "checking host"
    ssh_config: str | None = None
    ssh_identity_file: str | None = None
    sudo: bool = False
    timeout_s: float = 10
    known_hosts: str | tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Action:
    """A stop or start action, ready to run: ``kind`` and the shell command it becomes."""

    kind: str  # command | signal | systemd | kubectl | none
    command: str
    host: HostRef
    timeout_s: float = 30
    description: str = ""


def _kubectl(context: str | None, namespace: str | None) -> str:
    out = "kubectl"
    if context:
        out += f" --context {shlex.quote(context)}"
    if namespace:
        out += f" -n {shlex.quote(namespace)}"
    return out


def plan_action(spec: HaAction, verb: str, host: HostRef) -> Action:
    """Turn a target's ``HaAction`` into the command that runs for ``verb`` (stop/start)."""
    kind = str(spec.kind)
    if kind == "command":
        return Action("command", str(spec.command), host, spec.timeout_s, "shell command")
    if kind == "pidfile":
        sig = str(spec.signal).removeprefix("SIG")
        pidfile = shlex.quote(str(spec.pidfile))
        # One round trip: read the pid, refuse anything but a number, signal it, say which.
        # The path is quoted once, into a variable: it never appears unquoted or inside
        # double quotes, where $(...) and backticks would run.
        cmd = (f"f={pidfile}; pid=$(cat -- \"$f\") || exit 3; case \"$pid\" in ''|*[!0-9]*) "
               f"printf 'no pid in %s: %s\\n' \"$f\" \"$pid\" >&2; exit 3;; esac; "
               f"kill -{sig} \"$pid\" && printf 'sent SIG{sig} to pid %s (from %s)\\n' \"$pid\" \"$f\"")
        return Action("signal", cmd, host, spec.timeout_s, f"SIG{sig} to the pid in {spec.pidfile}")
    if kind == "systemd":
        unit = shlex.quote(str(spec.systemd))
        systemctl_verb = "start" if verb == "start" else "stop"
        return Action("systemd", f"systemctl {systemctl_verb} {unit}", host, spec.timeout_s,
                      f"systemctl {systemctl_verb} {spec.systemd}")
    if kind == "pod":
        if verb == "start":
            return Action("none", "", host, spec.timeout_s,
                          "no start action: the controller replaces a deleted pod")
        cmd = f"{_kubectl(spec.context, spec.namespace)} delete pod {shlex.quote(str(spec.pod))} --wait=false"
        return Action("kubectl", cmd, host, spec.timeout_s, f"kubectl delete pod {spec.pod}")
    raise ValueError(f"unknown action kind {kind!r}")


class Journal:
    """Every activity of a drill, in order: actions (with command, host, start/end UTC,
    exit status, output) and events (marks, signals, aborts).  Written only from the
    drill's own thread (and its signal handler: hence the re-entrant lock)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.RLock()

    def _t(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def event(self, text: str, **extra: Any) -> None:
        with self._lock:
            self._entries.append({"type": "event", "t": self._t(), "at": utcnow(), "text": redact(text), **extra})

    def action(self, activity: str, instance: str, action: Action) -> dict[str, Any]:
        """Run ``action`` and journal it; the entry (``ok``: exit status 0)."""
        entry: dict[str, Any] = {
            "type": "action", "activity": activity, "instance": instance, "kind": action.kind,
            "host": action.host.label, "command": redact(action.command), "description": action.description,
            "t": self._t(), "started_at": utcnow(),
        }
        started = time.monotonic()
        if action.kind == "none":
            entry.update(exit_status=None, output=action.description, ok=True)
        else:
            try:
                host = connection.get_host(action.host.connection, ssh_config=action.host.ssh_config,
                                           ssh_identity_file=action.host.ssh_identity_file, sudo=action.host.sudo,
                                           timeout_s=action.host.timeout_s, multiplex=False,
                                           known_hosts=action.host.known_hosts)
                result = connection.run(host, action.command, timeout_s=action.timeout_s)
                output = (result.stdout + ("\n" if result.stdout and result.stderr else "") + result.stderr).strip()
                entry.update(exit_status=result.rc, output=redact(output)[:OUTPUT_LIMIT], ok=result.rc == 0)
            except ProbeError as exc:
                entry.update(exit_status=None, output=redact(exc.reason), ok=False)
        entry.update(finished_at=utcnow(), duration_s=round(time.monotonic() - started, 3))
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self, instance: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries if instance is None or e.get("instance") in (instance, None)]


def journal_text(entries: Sequence[dict[str, Any]]) -> str:
    """One line per journal entry, for the evidence's raw excerpt."""
    lines = []
    for e in entries:
        if e["type"] == "action":
            status = "no exit status" if e["exit_status"] is None else f"exit {e['exit_status']}"
            out = " ".join(str(e.get("output") or "").split())[:160]
            lines.append(f"{e['started_at']} {e['activity']} {e['instance']} on {e['host']}: {e['command']} "
                         f"-> {status}{': ' + out if out else ''}")
        else:
            lines.append(f"{e['at']} {e['text']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the request stream
# The drill's stream is the throughput generator's engine (checks.throughput.load.Stream): one
# request spec (load.RequestSpec), one success rule (checks.request), one open-loop scheduler with
# its bounded pool, and the target's pinned addresses.  Each request's outcome is a
# load.Outcome (scheduled time, ok, latency from the scheduled time, status, error).


def entrypoint_request(url: str) -> load.RequestSpec:
    """The stream's default request: GET the entrypoint, any 2xx is a success."""
    from checks.throughput import load

    return load.RequestSpec(url=url, method="GET", expect_status=None)


# ----------------------------------------------------------------------------- the drill


@dataclasses.dataclass(frozen=True)
class InstancePlan:
    name: str
    url: str | None
    stop: Action | None
    start: Action | None


@dataclasses.dataclass(frozen=True)
class DrillPlan:
    """Everything a drill needs; no thresholds except the watch windows."""

    request: load.RequestSpec  # its ca_file, timeout and pins come from this plan
    entrypoint: str
    instances: tuple[InstancePlan, ...]
    drill: tuple[str, ...]  # names of the instances to stop, one at a time, in order
    ca_file: str | None = None
    rate: float = 10
    steady_s: float = 2
    stable_s: float = 3
    failover_max_s: float = 30
    restart_max_s: float | None = None  # None: a restart policy is not required
    steady_tolerance: float = 0.0  # failed share that still counts as steady
    max_duration_s: float = 300
    max_requests: int = 5000
    timeout_s: float = 2
    restore_timeout_s: float = 60
    resolve: Mapping[str, str] = dataclasses.field(default_factory=dict)  # endpoints.resolve: name -> address


@dataclasses.dataclass
class InstanceRun:
    """What happened to one instance during the drill (times in s since the drill began)."""

    name: str
    stop_t: float | None = None
    stop_ok: bool | None = None
    down_t: float | None = None  # first seen down after the stop
    back_t: float | None = None  # healthy again by itself (before the restore)
    observe_end_t: float | None = None
    observe_reason: str = ""
    restore_t: float | None = None
    restore_ok: bool | None = None
    healthy_t: float | None = None
    settled_t: float | None = None  # fully successful again after the restore
    settle_end_t: float | None = None  # when waiting for that ended (settled or not)
    error: str | None = None  # why the measurements of this instance cannot be trusted
    not_run: str | None = None  # why the instance was not stopped


@dataclasses.dataclass
class SteadyState:
    """One steady-state probe: the stream over a window, the entrypoint, every instance."""

    label: str
    t_from: float
    t_to: float
    total: int = 0
    failed: int = 0
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    entrypoint: str = ""
    entrypoint_ok: bool = False
    instances: dict[str, str] = dataclasses.field(default_factory=dict)
    unhealthy: list[str] = dataclasses.field(default_factory=list)
    holds: bool = False


@dataclasses.dataclass(frozen=True)
class DrillRecord:
    """The outcome of a drill: the timeline, marks, journal and what each phase found."""

    plan: DrillPlan
    samples: tuple[Sample, ...]
    marks: tuple[dict[str, Any], ...]
    journal: tuple[dict[str, Any], ...]
    before: SteadyState | None
    after: SteadyState | None
    instances: tuple[InstanceRun, ...]
    aborted: str | None
    interrupted_by: str | None
    started_at: str
    finished_at: str
    duration_s: float
    requests_sent: int
    not_restored: tuple[str, ...]
    #: The stream's per-second series (the engine's: sent, ok, err, p95_ms; t in drill seconds).
    series: tuple[dict[str, Any], ...] = ()

    def instance(self, name: str) -> InstanceRun | None:
        return next((r for r in self.instances if r.name == name), None)


class _Abort(Exception):
    """Raised inside the drill's own waits to leave the method for the rollback."""


class Drill:
    """One failover drill.  :meth:`run` never leaves an instance it stopped unrestored
    (short of SIGKILL); :meth:`restore_all` may be called again (a fixture finaliser does)
    and does nothing when every instance is back."""

    def __init__(self, plan: DrillPlan) -> None:
        self.plan = plan
        self.t0 = time.monotonic()
        self.journal = Journal(self.t0)
        self.marks: list[dict[str, Any]] = []
        self.runs: dict[str, InstanceRun] = {n: InstanceRun(n) for n in plan.drill}
        self.before: SteadyState | None = None
        self.after: SteadyState | None = None
        self._stopped: dict[str, InstancePlan] = {}  # stopped and not yet restored
        self._restore_attempts: dict[str, int] = {}
        self._abort: str | None = None
        self._soft_abort: str | None = None
        self.interrupted_by: str | None = None
        self.stream: load.Stream | None = None
        self._deadline = self.t0 + plan.max_duration_s
        self._by_name = {i.name: i for i in plan.instances}
        # How long an answer may take before a waiting request counts against stability:
        # twice the steady state's 90th percentile latency, at least 0.25 s.
        self._grace = 0.25
        self.started_at = utcnow()

    # -- helpers ------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _mark(self, label: str) -> None:
        t = round(self._now(), 3)
        self.marks.append({"t": t, "label": label})
        self.journal.event(f"mark: {label}")

    def _check(self) -> None:
        if self._abort is None:
            if time.monotonic() > self._deadline:
                self._abort = f"max duration {self.plan.max_duration_s:g} s reached"
            elif self.stream is not None and self.stream.exhausted:
                self._abort = f"request budget used up ({self.plan.max_requests} requests)"
            elif self.stream is not None and self.stream.crashed:
                self._abort = f"request stream failed: {self.stream.crashed}"
            if self._abort is not None:
                self.journal.event(f"abort: {self._abort}")
        if self._abort is not None:
            raise _Abort(self._abort)

    def _wait(self, seconds: float) -> None:
        """Sleep, but leave for the rollback as soon as the drill must stop."""
        end = time.monotonic() + seconds
        while True:
            self._check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def _healthy(self, inst: InstancePlan) -> bool | None:
        if not inst.url:
            return None
        try:
            # each operation within HEALTH_TIMEOUT_S, the whole poll within three times that
            url, headers, extensions = pinning.route(inst.url, self.plan.resolve)
            with http_client(3 * HEALTH_TIMEOUT_S, timeout_s=HEALTH_TIMEOUT_S,
                             verify=_ssl_context(self.plan.ca_file)) as client:
                return 200 <= client.get(url, headers=headers, extensions=extensions).status_code < 300
        except (httpx.HTTPError, ssl.SSLError, OSError):
            return False

    def _stable_since(self, since: float) -> bool:
        """Full success since ``since``: every request scheduled from then until ``grace``
        ago has its answer and succeeded, and enough of them did.  A request still waiting
        longer than ``grace`` (a backend that hangs, a load balancer retrying a dead one)
        means "not yet": it may still fail."""
        assert self.stream is not None
        horizon = self._now() - self._grace
        oldest = self.stream.oldest_pending()
        if oldest is not None and oldest < horizon:
            return False
        window = [s for s in self.stream.outcomes() if since <= s.t < horizon]
        need = max(1, int(self.plan.rate * (horizon - since) * 0.5))
        return len(window) >= need and all(s.ok for s in window)

    def _settle(self, t_from: float, t_to: float) -> list[Sample]:
        """The samples scheduled in [t_from, t_to), after waiting (bounded) for them."""
        assert self.stream is not None
        end = time.monotonic() + self.plan.timeout_s + 1
        while time.monotonic() < end:
            oldest = self.stream.oldest_pending()
            if oldest is None or oldest >= t_to:
                break
            time.sleep(0.05)
        return [s for s in self.stream.outcomes() if t_from <= s.t < t_to]

    # -- signals ------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.interrupted_by is None:
            self.interrupted_by = name
            if self._abort is None:
                self._abort = f"interrupted by {name}"
            self.journal.event(f"{name} received: stopping the drill and restoring every stopped instance")
        else:
            self.journal.event(f"{name} received again: the restore continues (bounded by "
                               f"{self.plan.restore_timeout_s:g} s per instance)")

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread gets signals; KeyboardInterrupt still reaches `finally`
            return
        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- the experiment -------------------------------------------------------

    def run(self) -> DrillRecord:
        """Run the experiment; always returns a record (an unexpected error becomes the
        record's ``aborted`` reason), except for KeyboardInterrupt/SystemExit outside the
        main thread, which are re-raised after the rollback."""
        self.journal.event(f"drill begins: instances to stop, in order: {', '.join(self.plan.drill) or 'none'}; "
                           f"stream {self.plan.rate:g} req/s to {redact(self.plan.request.url)}; bounds "
                           f"{self.plan.max_duration_s:g} s, {self.plan.max_requests} requests")
        with self._signals():
            try:
                self._experiment()
            except _Abort:
                pass
            except Exception as exc:
                self._abort = f"unexpected error: {type(exc).__name__}: {exc}"
                self.journal.event(f"abort: {self._abort}")
            except BaseException as exc:
                self._abort = f"interrupted ({type(exc).__name__})"
                self.journal.event(f"abort: {self._abort}")
                self.restore_all("exit path: " + self._abort)
                self._stop_stream()
                raise
            finally:
                self.restore_all("exit path: " + (self._abort or "end of drill"))
                self._stop_stream()
        self.journal.event("drill ends" + (f" (aborted: {self._abort})" if self._abort else "")
                           + (f"; NOT RESTORED: {', '.join(self._stopped)}" if self._stopped else ""))
        return self._record()

    def stream_request(self) -> load.RequestSpec:
        """The plan's request with the drill's per-request timeout, CA file and pins."""
        plan = self.plan
        return dataclasses.replace(plan.request, timeout_s=plan.timeout_s, ca_file=plan.request.ca_file or plan.ca_file,
                                   resolve=dict(plan.request.resolve or plan.resolve))

    def _stop_stream(self) -> None:
        if self.stream is not None and self.stream.is_alive():
            self.stream.stop(self.plan.timeout_s + 2)

    def _experiment(self) -> None:
        from checks.throughput import load

        plan = self.plan
        self.stream = load.Stream(self.stream_request(), rate=plan.rate, t0=self.t0, max_requests=plan.max_requests,
                                  max_s=plan.max_duration_s)
        self.stream.start()
        self.before = self._steady_state("before")
        latencies = sorted(s.latency_ms for s in self._settle(self.before.t_from, self.before.t_to) if s.ok)
        if latencies:
            p90 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.9))] / 1000
            self._grace = min(plan.timeout_s, max(0.25, 2 * p90))
        if not self.before.holds:
            self._soft_abort = "the steady state did not hold before the drill: nothing was stopped"
            self.journal.event(self._soft_abort)
            return
        for name in plan.drill:
            run = self.runs[name]
            inst = self._by_name[name]
            if self._soft_abort:
                run.not_run = self._soft_abort
                continue
            if inst.stop is None:
                run.not_run = "the target declares no stop action for this instance"
                continue
            unhealthy = [i.name for i in plan.instances if self._healthy(i) is False]
            if unhealthy:
                self._soft_abort = (f"not stopping {name}: {', '.join(unhealthy)} not healthy "
                                    "(never more than one instance down)")
                self.journal.event(self._soft_abort)
                run.not_run = self._soft_abort
                continue
            self._drill_one(inst, run)
        self.after = self._steady_state("after")

    def _steady_state(self, label: str) -> SteadyState:
        t_from = self._now()
        self._mark(f"steady state {label}")
        self._wait(self.plan.steady_s)
        t_to = self._now()
        samples = self._settle(t_from, t_to)
        state = SteadyState(label, round(t_from, 3), round(t_to, 3), total=len(samples),
                            failed=sum(1 for s in samples if not s.ok))
        for s in samples:
            if s.error:
                state.errors[s.error] = state.errors.get(s.error, 0) + 1
        health = instance_health(self.plan.entrypoint, ca_file=self.plan.ca_file, timeout_s=self.plan.timeout_s,
                                 resolve=self.plan.resolve, through="through the load balancer")
        state.entrypoint = health.error or health.display
        state.entrypoint_ok = health.ok and health.value is True
        for inst in self.plan.instances:
            ok = self._healthy(inst)
            state.instances[inst.name] = "no health url" if ok is None else ("healthy" if ok else "not healthy")
            if ok is False:
                state.unhealthy.append(inst.name)
        rate = state.failed / state.total if state.total else 1.0
        state.holds = (state.total > 0 and rate <= self.plan.steady_tolerance and state.entrypoint_ok
                       and not state.unhealthy)
        self.journal.event(f"steady state {label}: {state.total - state.failed}/{state.total} requests ok, "
                           f"entrypoint {state.entrypoint}, instances {state.instances} -> "
                           f"{'holds' if state.holds else 'does NOT hold'}")
        return state

    def _drill_one(self, inst: InstancePlan, run: InstanceRun) -> None:
        plan = self.plan
        assert inst.stop is not None
        self._stopped[inst.name] = inst  # before acting: a half-done stop is rolled back too
        run.stop_t = round(self._now(), 3)
        self._mark(f"stop {inst.name}")
        entry = self.journal.action("stop", inst.name, inst.stop)
        run.stop_ok = bool(entry["ok"])
        if not run.stop_ok:
            run.error = f"the stop action failed ({entry['output'] or 'exit status ' + str(entry['exit_status'])})"
            run.observe_end_t = round(self._now(), 3)
            self._restore(inst, "after a failed stop")
            return
        stop_mono = self.t0 + run.stop_t
        while True:
            self._check()
            elapsed = time.monotonic() - stop_mono
            healthy = self._healthy(inst)
            if healthy is False and run.down_t is None:
                run.down_t = round(self._now(), 3)
                self._mark(f"{inst.name} down")
            if healthy and run.down_t is not None and run.back_t is None:
                run.back_t = round(self._now(), 3)
                self._mark(f"{inst.name} back by itself")
            if healthy and run.down_t is None and elapsed >= NOT_DOWN_GRACE_S:
                run.error = (f"the stop action did not take {inst.name} down: its health URL kept answering "
                             f"for {NOT_DOWN_GRACE_S:g} s")
                run.observe_reason = "instance never went down"
                break
            recovered = elapsed >= plan.stable_s and self._stable_since(self._now() - plan.stable_s)
            service_done = recovered or elapsed >= plan.failover_max_s + plan.stable_s
            restart_done = plan.restart_max_s is None or run.back_t is not None or elapsed >= plan.restart_max_s
            seen = run.down_t is not None or inst.url is None
            if service_done and restart_done and seen:
                run.observe_reason = ("full success for the stable window" if recovered else
                                      f"failover_max + stable ({plan.failover_max_s + plan.stable_s:g} s) elapsed")
                break
            time.sleep(POLL_S)
        run.observe_end_t = round(self._now(), 3)
        self._restore(inst, "rollback")
        # Wait (bounded) until the service is fully successful again before going on.
        end = time.monotonic() + plan.failover_max_s + plan.stable_s
        settle_from = self._now()
        while time.monotonic() < end:
            self._wait(POLL_S)
            if self._now() - settle_from >= plan.stable_s and self._stable_since(self._now() - plan.stable_s):
                run.settled_t = run.settle_end_t = round(self._now(), 3)
                self._mark(f"steady again after {inst.name}")
                return
        run.settle_end_t = round(self._now(), 3)
        self._soft_abort = f"the service did not return to full success after restoring {inst.name}"
        self.journal.event(self._soft_abort + ": no further instance is stopped")

    def _restore(self, inst: InstancePlan, why: str) -> None:
        """Run the start action and wait (bounded, not interruptible) until the instance is
        healthy.  Idempotent: nothing happens for an instance that is not stopped."""
        if inst.name not in self._stopped:
            return
        attempt = self._restore_attempts.get(inst.name, 0) + 1
        if attempt > 2:
            return  # tried twice already: reported as not restored
        self._restore_attempts[inst.name] = attempt
        run = self.runs.get(inst.name)
        if run is not None and run.restore_t is None:
            run.restore_t = round(self._now(), 3)
        self._mark(f"restore {inst.name}" + (f" (again: {why})" if attempt > 1 else ""))
        start_ok = True
        if inst.start is not None:
            entry = self.journal.action("restore", inst.name, inst.start)
            start_ok = bool(entry["ok"])
        else:
            self.journal.event(f"restore {inst.name}: no start action declared; waiting for it to come back",
                               instance=inst.name)
        if inst.url is None:
            ok = start_ok
            self.journal.event(f"restore {inst.name}: no health URL, taken as restored when the start action "
                               f"succeeded ({'it did' if ok else 'it did not'})", instance=inst.name)
        else:
            ok = False
            began = time.monotonic()
            end = began + self.plan.restore_timeout_s
            again = [began + s for s in START_AGAIN_S]
            while time.monotonic() < end:
                if self._healthy(inst):
                    ok = True
                    break
                if inst.start is not None and again and time.monotonic() >= again[0]:
                    # A start that came while the instance was still on its way down may
                    # have been a no-op: start actions are idempotent, so ask again.
                    again.pop(0)
                    self.journal.action("restore (again: still not healthy)", inst.name, inst.start)
                time.sleep(0.1)
        if ok:
            del self._stopped[inst.name]
            if run is not None:
                run.restore_ok, run.healthy_t = True, round(self._now(), 3)
            self._mark(f"{inst.name} healthy")
        else:
            if run is not None:
                run.restore_ok = False
            self.journal.event(f"restore {inst.name} FAILED ({why}): not healthy within "
                               f"{self.plan.restore_timeout_s:g} s", instance=inst.name)

    def restore_all(self, why: str) -> list[str]:
        """Restore every instance still stopped; the names still not restored after it."""
        for inst in list(self._stopped.values()):
            self._restore(inst, why)
        return list(self._stopped)

    def _record(self) -> DrillRecord:
        samples = tuple(sorted(self.stream.outcomes(), key=lambda s: s.t)) if self.stream else ()
        return DrillRecord(
            plan=self.plan, samples=samples, marks=tuple(self.marks), journal=tuple(self.journal.entries()),
            before=self.before, after=self.after, instances=tuple(self.runs.values()),
            aborted=self._abort or self._soft_abort, interrupted_by=self.interrupted_by,
            started_at=self.started_at, finished_at=utcnow(), duration_s=round(self._now(), 3),
            requests_sent=self.stream.sent if self.stream else 0, not_restored=tuple(self._stopped),
            series=tuple(self.stream.series()) if self.stream else ())


# ----------------------------------------------------------------------------- measurements


def _evidence(rec: DrillRecord, probe: str, subject: str, method: str, instance: str | None,
              data: dict[str, Any]) -> Evidence:
    entries = [e for e in rec.journal if instance is None or e.get("instance") in (instance, None)]
    return Evidence(probe=probe, subject=subject, method=method, tool=_tool(), raw=journal_text(entries),
                    measured_at=rec.finished_at, duration_s=rec.duration_s,
                    data={"journal": entries, "drill": {"started_at": rec.started_at, "finished_at": rec.finished_at,
                                                        "requests_sent": rec.requests_sent, "aborted": rec.aborted,
                                                        "interrupted_by": rec.interrupted_by,
                                                        "not_restored": list(rec.not_restored)}, **data})


def _stream_words(plan: DrillPlan) -> str:
    pinned = pinning.words(plan.request.url, plan.request.resolve or plan.resolve)
    return (f"open-loop stream of {plan.request.method} {redact(plan.request.url)} at {plan.rate:g} req/s "
            f"(golive's load engine, constant arrivals, latency from the scheduled time; timeout {plan.timeout_s:g} s "
            f"each; success = {plan.request.success_words()})" + (f" ({pinned})" if pinned else ""))


def _not_measured(rec: DrillRecord, run: InstanceRun | None) -> str | None:
    """Why nothing can be said about an instance, or None."""
    if run is None:
        return "the instance is not part of the drill"
    if run.not_run:
        return f"not run: {run.not_run}"
    if run.error:
        return run.error
    if run.stop_t is None:
        return f"not run: {rec.aborted or 'drill ended first'}"
    if run.observe_end_t is None:
        return f"the drill stopped ({rec.aborted or 'unknown reason'}) while {run.name} was being observed"
    return None


def _window(rec: DrillRecord, t_from: float, t_to: float | None) -> list[Sample]:
    end = t_to if t_to is not None else float("inf")
    return [s for s in rec.samples if t_from <= s.t < end]


def timeline_data(rec: DrillRecord, name: str) -> dict[str, Any]:
    """The instance's part of the timeline (from 1 s before its stop to steady again) with
    its marks, in the keys the report draws as a failover chart."""
    run = rec.instance(name)
    if run is None or run.stop_t is None:
        return {}
    t_from = max(0.0, run.stop_t - 1.0)
    t_to = run.settle_end_t or run.healthy_t or run.observe_end_t or rec.duration_s
    return {"timeline": [s.to_dict() for s in rec.samples if t_from <= s.t <= t_to],
            "marks": [m for m in rec.marks if t_from <= m["t"] <= t_to],
            "series": [p for p in rec.series if t_from - 1 <= p["t"] <= t_to]}


def steady_state(rec: DrillRecord, which: str) -> Measurement:
    """The steady state ``before`` or ``after`` the drill: value ``{"error_rate", "failed",
    "total", "entrypoint_ok", "unhealthy"}``; error when it was not probed or nothing
    answered at all (an unreachable entrypoint)."""
    state = rec.before if which == "before" else rec.after
    plan = rec.plan
    method = (f"{_stream_words(plan)} for {plan.steady_s:g} s, GET {redact(plan.entrypoint)}, and GET each "
              "instance's own health URL")
    data: dict[str, Any] = {"steady": dataclasses.asdict(state)} if state else {}
    ev = _evidence(rec, "ha.steady_state", which, method, None, data)
    if state is None:
        return Measurement.failed(f"not probed: {rec.aborted or 'the drill ended first'}", ev)
    answered = state.total - sum(n for err, n in state.errors.items() if not err.startswith("HTTP"))
    if state.total and answered == 0 and not state.entrypoint_ok:
        top = max(state.errors, key=lambda e: state.errors[e])
        return Measurement.failed(f"entrypoint unreachable: {state.total} of {state.total} requests got no "
                                  f"HTTP answer ({top}); entrypoint: {state.entrypoint}", ev)
    rate = state.failed / state.total if state.total else 1.0
    parts = [f"{state.total - state.failed}/{state.total} requests ok ({rate * 100:.1f} % failed)",
             f"entrypoint {state.entrypoint}"]
    parts.append("instances healthy: " + ", ".join(n for n, s in state.instances.items() if s == "healthy")
                 if not state.unhealthy else "NOT healthy: " + ", ".join(state.unhealthy))
    return Measurement({"error_rate": rate, "failed": state.failed, "total": state.total,
                        "entrypoint_ok": state.entrypoint_ok, "unhealthy": list(state.unhealthy)},
                       "; ".join(parts), ev)


def failover(rec: DrillRecord, name: str) -> Measurement:
    """Seconds from the stop until the service answered fully again: the first successful
    request after the last failed one (0 when no request failed); None when it had not
    recovered when the observation ended (after failover_max + stable)."""
    run = rec.instance(name)
    plan = rec.plan
    method = (f"stop {name} with the target's stop action during an {_stream_words(plan)}; recovery = first "
              "successful request after the last failed one, counted from the stop (scheduled times)")
    ev = _evidence(rec, "ha.failover", name, method, name, {})
    why = _not_measured(rec, run)
    if why or run is None or run.stop_t is None:
        return Measurement.failed(why or "not run", ev)
    window = _window(rec, run.stop_t, run.observe_end_t)
    failed = [s for s in window if not s.ok]
    ev = dataclasses.replace(ev, data={**ev.data, "window": {"from": run.stop_t, "to": run.observe_end_t,
                                                             "requests": len(window), "failed": len(failed),
                                                             "ended": run.observe_reason}})
    if not window:
        return Measurement.failed("no request was scheduled while the instance was stopped", ev)
    if not failed:
        return Measurement(0.0, f"0 s (no failed request; {len(window)} requests while {name} was stopped)", ev,
                           unit="s")
    last = failed[-1].t
    after = [s for s in window if s.ok and s.t > last]
    if not after:  # the observation ran its full length (failover_max + stable) without recovery
        span = (run.observe_end_t or rec.duration_s) - run.stop_t
        return Measurement(None, f"not recovered within {span:.1f} s ({len(failed)} of {len(window)} requests "
                           "failed)", ev, unit="s")
    recovery = round(after[0].t - run.stop_t, 2)
    return Measurement(recovery, f"{recovery:g} s ({len(failed)} of {len(window)} requests failed, last failure "
                       f"at +{last - run.stop_t:.2f} s)", ev, unit="s")


def error_rate(rec: DrillRecord, name: str) -> Measurement:
    """Share of failed requests from the stop of ``name`` until the service was fully
    successful again after its restore (failover and failback both count)."""
    run = rec.instance(name)
    plan = rec.plan
    method = (f"{_stream_words(plan)}; failed share of the requests scheduled from the stop of {name} until "
              "the service was fully successful again after its restore")
    ev = _evidence(rec, "ha.error_rate", name, method, name, {})
    why = _not_measured(rec, run)
    if why or run is None or run.stop_t is None:
        return Measurement.failed(why or "not run", ev)
    end = run.settle_end_t
    if end is None:
        return Measurement.failed(f"the drill stopped ({rec.aborted or 'unknown reason'}) before the service was "
                                  "steady again after the restore", ev)
    window = _window(rec, run.stop_t, end)
    if not window:
        return Measurement.failed("no request was scheduled while the instance was stopped", ev)
    failed = [s for s in window if not s.ok]
    errors: dict[str, int] = {}
    for s in failed:
        errors[s.error or "failed"] = errors.get(s.error or "failed", 0) + 1
    rate = len(failed) / len(window)
    ev = dataclasses.replace(ev, data={**ev.data, "window": {"from": run.stop_t, "to": end, "requests": len(window),
                                                             "failed": len(failed), "errors": errors}})
    top = ", ".join(f"{n} x {e}" for e, n in sorted(errors.items(), key=lambda kv: -kv[1])[:3])
    return Measurement(round(rate, 4), f"{rate * 100:.1f} % ({len(failed)} of {len(window)} requests failed"
                       + (f": {top})" if top else ")"), ev)


def auto_restart(rec: DrillRecord, name: str) -> Measurement:
    """Seconds from the stop until the instance answered healthy again *by itself* (before
    the restore ran); None when it had not within ``restart_max``."""
    run = rec.instance(name)
    plan = rec.plan
    method = (f"after the stop, GET the instance's own health URL every {POLL_S:g} s until it answers again, "
              f"before any start action (up to {plan.restart_max_s or 0:g} s)")
    ev = _evidence(rec, "ha.auto_restart", name, method, name, {})
    why = _not_measured(rec, run)
    if why or run is None or run.stop_t is None:
        return Measurement.failed(why or "not run", ev)
    if not (inst := next((i for i in plan.instances if i.name == name), None)) or not inst.url:
        return Measurement.failed(f"{name} has no health URL: whether it came back cannot be observed", ev)
    if run.back_t is not None:
        took = round(run.back_t - run.stop_t, 2)
        return Measurement(took, f"back by itself after {took:g} s", ev, unit="s")
    watched = (run.observe_end_t or rec.duration_s) - run.stop_t
    if plan.restart_max_s is not None and watched < plan.restart_max_s - POLL_S * 2:
        return Measurement.failed(f"the drill stopped ({rec.aborted or run.observe_reason}) after {watched:.1f} s, "
                                  "before the instance came back", ev)
    return Measurement(None, f"not back by itself within {watched:.1f} s", ev, unit="s")


def restored(rec: DrillRecord, name: str) -> Measurement:
    """Whether the instance was restored (start action, then healthy) after the drill."""
    run = rec.instance(name)
    ev = _evidence(rec, "ha.restore", name, "the target's start action, then GET the instance's own health URL "
                   f"until it answers (up to {rec.plan.restore_timeout_s:g} s)", name, {})
    if run is None or run.stop_t is None:
        return Measurement.failed(f"not run: {(run.not_run if run else None) or rec.aborted or 'not stopped'}", ev)
    if name in rec.not_restored or not run.restore_ok:
        return Measurement(False, f"NOT restored: {name} is not healthy after the start action (see the journal)", ev)
    took = round((run.healthy_t or 0) - (run.restore_t or 0), 2)
    return Measurement(True, f"restored: healthy {took:g} s after the restore began", ev)


def plan_instances(instances: Sequence[HaInstance], hosts: dict[str, HostRef]) -> tuple[InstancePlan, ...]:
    """Plan the target's ``ha.instances``; ValueError for an instance naming an unknown host."""
    out = []
    for inst in instances:
        host = HostRef()
        if inst.host:
            if inst.host not in hosts:
                raise ValueError(f"ha instance {inst.name} names host '{inst.host}', which is not in the target's hosts")
            host = hosts[inst.host]
        stop = plan_action(inst.stop, "stop", host) if inst.stop is not None else None
        start = plan_action(inst.start, "start", host) if inst.start is not None else None
        out.append(InstancePlan(inst.name, inst.url, stop, start))
    return tuple(out)

