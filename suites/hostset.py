"""The target's hosts as testinfra hosts, and concurrent measurement across them.

Fan-out: :meth:`HostSet.measure` runs a probe on every host at once in a thread pool
(``GOLIVE_HOST_PARALLEL`` threads, default 16); each host's own probes stay sequential, so
its one ssh connection (ControlMaster, :func:`checks.connection.get_host`) is never raced.

Reachability is settled once per host and per process: the first probe on a host first runs
the gathering session below there, or ``true`` when nothing is planned, within the host's
``timeout_s`` (which also opens the ControlMaster connection later commands reuse).  A host
that does not answer -- refused, key refused, silent until the timeout -- gives an ``error``
measurement for every fact, with the reason and the evidence of that one attempt (its time
and duration); later probes on it return the same outcome at once instead of waiting for the
timeout again.  So a dead host
costs its own timeout once per run (once per pytest-xdist worker), and never delays the
other hosts beyond that.  A host whose connection cannot even be built (bad URI) is handled
the same way, so one bad inventory line never hides the other hosts' results.

Gathering: bindings :func:`plan` the commands their selected scenarios will run on a host;
the first probe on that host runs all of them in one remote shell
(:func:`checks.connection.prefetch`) -- that session is also the connection check -- and
each probe's own command is then answered from there.  Fifteen ssh sessions per host become
one, which is most of what a large fleet costs (docs/fleets.md).  Commands planned after
that (another feature's) are gathered the same way by the next probe on the host.
``GOLIVE_GATHER=0`` turns gathering off: every command is then its own session.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from checks.connection import ProbeError, Session, describe, get_host, prefetch, run, tool
from golive.model import Evidence, Measurement, utcnow
from golive.target import HostSpec, Target

MAX_PARALLEL = max(1, int(os.environ.get("GOLIVE_HOST_PARALLEL", "16") or 16))
GATHER = os.environ.get("GOLIVE_GATHER", "1").strip().lower() not in ("0", "no", "false", "off")
CONNECT_COMMAND = "true"

__all__ = ["CONNECT_COMMAND", "MAX_PARALLEL", "HostSet", "Reachability", "connect", "forget_reachability",
           "plan", "probe_host", "selected_steps"]


@dataclasses.dataclass(frozen=True)
class Reachability:
    """The outcome of the one connection attempt made to a host in this process."""

    host: str
    ok: bool
    reason: str | None
    method: str
    tool: str
    at: str
    duration_s: float
    timeout_s: float

    def evidence(self, probe: str, *, reused: bool) -> Evidence:
        """Evidence for a fact that could not be measured because the host did not answer."""
        how = f"{self.method} (the first command on the host, bounded by its timeout_s={self.timeout_s:g} s)"
        if reused:
            how += "; the host is tried once per run, later checks reuse that outcome"
        return Evidence(probe=probe, subject=self.host, method=how, tool=self.tool, raw=self.reason or "",
                        measured_at=self.at, duration_s=round(self.duration_s, 3),
                        data={"connect": {"ok": self.ok, "at": self.at, "duration_s": round(self.duration_s, 3),
                                          "timeout_s": self.timeout_s, "reused": reused}})


_reach: dict[tuple[Any, ...], Reachability] = {}
_reach_locks: dict[tuple[Any, ...], threading.Lock] = {}
_reach_guard = threading.Lock()


def _key(spec: HostSpec) -> tuple[Any, ...]:
    return (spec.connection, spec.ssh_config, spec.ssh_identity_file, spec.sudo, float(spec.timeout_s))


def forget_reachability() -> None:
    """Drop the remembered outcomes (tests that restart hosts within one process)."""
    with _reach_guard:
        _reach.clear()


_planned: dict[tuple[Any, ...], list[str]] = {}


def plan(spec: HostSpec, commands: list[str] | tuple[str, ...]) -> None:
    """Commands the coming checks will run on ``spec``'s host: gathered in one session by
    the next probe there (after the connection check), unless gathering is off."""
    if not GATHER or not commands:
        return
    with _reach_guard:
        _planned.setdefault(_key(spec), []).extend(commands)


def _host_lock(key: tuple[Any, ...]) -> threading.Lock:
    """The lock that serialises connecting and gathering on one host."""
    with _reach_guard:
        return _reach_locks.setdefault(key, threading.Lock())


def _gather_planned(key: tuple[Any, ...], spec: HostSpec, host: Any) -> Session | None:
    """Run the host's planned commands in one session (the caller holds the host's lock, so
    no probe runs a planned command while it is in flight); None when nothing is planned."""
    with _reach_guard:
        commands = _planned.pop(key, [])
    return prefetch(host, commands, spec.timeout_s) if commands else None


def _gather(spec: HostSpec, host: Any) -> None:
    """Gather what was planned for the host since its last session (new plans, a new one)."""
    key = _key(spec)
    with _host_lock(key):
        _gather_planned(key, spec, host)


def connect(spec: HostSpec) -> tuple[Reachability, bool]:
    """The host's reachability, trying it now if this process has not yet; returns
    ``(outcome, reused)``.  Concurrent callers for the same host wait for one attempt."""
    key = _key(spec)
    with _host_lock(key):
        known = _reach.get(key)
        if known is not None:
            return known, True
        at, started = utcnow(), time.monotonic()
        method, used = f"connect to {spec.connection}", "golive"
        try:
            host = get_host(spec.connection, ssh_config=spec.ssh_config, ssh_identity_file=spec.ssh_identity_file,
                            sudo=spec.sudo, timeout_s=spec.timeout_s, known_hosts=spec.known_hosts)
            used = tool(host)
            session = _gather_planned(key, spec, host)
            if session is not None:  # the planned commands' session is the connection check: one session, not two
                method = f"open a shell over {describe(host)} and run the {session.commands} planned commands there"
                if not session.reached:
                    raise ProbeError(session.reason or "no answer")
            else:
                method = f"run `{CONNECT_COMMAND}` over {describe(host)}"
                run(host, CONNECT_COMMAND, spec.timeout_s)
            ok, reason = True, None
        except ProbeError as exc:
            ok, reason = False, exc.reason
        outcome = Reachability(host=spec.name, ok=ok, reason=reason, method=method, tool=used, at=at,
                               duration_s=time.monotonic() - started, timeout_s=spec.timeout_s)
        _reach[key] = outcome
        return outcome, False


def selected_steps(request: Any) -> set[str]:
    """The step texts of the scenarios selected in ``request``'s module (after -k, -m,
    --hosts...): what the bindings will run there, so they can plan what to gather."""
    try:
        from pytest_bdd.scenario import scenario_wrapper_template_registry as templates
    except ImportError:  # pragma: no cover - pytest-bdd moved it: no plan, commands run one by one
        return set()
    steps: set[str] = set()
    for item in request.session.items:
        func = getattr(item, "obj", None)
        if func is None or getattr(item, "module", None) is not request.module:
            continue
        template = templates.get(func)
        if template is not None:
            steps.update(step.name for step in template.steps)
    return steps


def _probe_name(probe: Callable[..., Measurement]) -> str:
    family = getattr(probe, "__module__", "").rsplit(".", 1)[-1]
    name = getattr(probe, "__name__", "probe")
    return f"{family}.{name}" if family and family != "__main__" else name


def probe_host(spec: HostSpec, probe: Callable[..., Measurement], *args: Any) -> Measurement:
    """``probe(host, *args, subject=..., timeout_s=...)`` on the host ``spec`` names, or an
    ``error`` measurement when the host does not answer (see the module doc)."""
    reach, reused = connect(spec)
    if not reach.ok:
        return Measurement.failed(f"host unreachable: {reach.reason}", reach.evidence(_probe_name(probe), reused=reused))
    try:
        host = get_host(spec.connection, ssh_config=spec.ssh_config, ssh_identity_file=spec.ssh_identity_file,
                        sudo=spec.sudo, timeout_s=spec.timeout_s, known_hosts=spec.known_hosts)
        _gather(spec, host)
        return probe(host, *args, subject=spec.name, timeout_s=spec.timeout_s)
    except Exception as exc:
        reason = f"probe {_probe_name(probe)} crashed: {type(exc).__name__}: {exc}"
        return Measurement.failed(reason, Evidence(probe=_probe_name(probe), subject=spec.name,
                                                   method=spec.connection))


@dataclasses.dataclass
class HostSet:
    specs: list[HostSpec]

    @classmethod
    def from_target(cls, target: Target) -> HostSet:
        return cls(list(target.hosts))

    def measure(self, probe: Callable[..., Measurement], *args: Any) -> dict[str, Measurement]:
        """The same probe on every host at once."""
        return self.measure_each(lambda spec: probe_host(spec, probe, *args))

    def measure_each(self, fn: Callable[[HostSpec], Any]) -> dict[str, Any]:
        """``fn(spec)`` for every host at once, keyed by host name (in inventory order).

        Daemon threads, at most MAX_PARALLEL at a time: a Ctrl-C ends the run at once
        instead of waiting for a hung host's probe to reach its own timeout."""
        results: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}
        gate = threading.Semaphore(MAX_PARALLEL)

        def work(spec: HostSpec) -> None:
            with gate:
                try:
                    results[spec.name] = fn(spec)
                except BaseException as exc:
                    errors[spec.name] = exc

        threads = [threading.Thread(target=work, args=(spec,), name=f"golive-host-{spec.name}", daemon=True)
                   for spec in self.specs]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
        if errors:
            raise next(iter(errors.values()))
        return {spec.name: results[spec.name] for spec in self.specs}
