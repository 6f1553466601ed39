"""A check is a declaration; a family is a folder of them.

A :class:`Check` says what it reads (its family's profile block, with catalogue ids), when
it applies, how it measures (a probe returning a frozen :class:`~golive.model.Measurement`),
what is expected, the pass rule and the remediation.  A :class:`Family` declares its checks,
its profile and target fragments and its Gherkin checklist in one module,
``checks/<family>/family.py`` (the registry finds it: :mod:`golive.registry`).

:func:`evaluate` judges a check in a :class:`CheckContext` and records its results; it is
the only place a declared check becomes pass / fail / error / skip.  The pytest-bdd binding
(``suites/test_families.py``) calls it, and so can a unit test, without pytest or a
subprocess.  This module is core: it imports nothing from families, renderers or the lab.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from golive.model import CheckResult, Evidence, Measurement, Severity

MeasureResult = Measurement | Mapping[str, "Measurement | Skipped | Judged"]
HostRunner = Callable[..., Measurement]


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A subject a check does not judge, with the reason (a value in the mapping a
    ``measure`` returns: ``{"app-2": Skipped("was not stopped")}``)."""

    reason: str


@dataclasses.dataclass(frozen=True)
class Judged:
    """A subject judged against its own requirement: e.g. a host against its role's sizing
    (``req`` is the block the pass rule, severity and catalogue ids come from; ``expected``
    the requirement in words for this subject)."""

    measurement: Measurement
    req: Any
    expected: str
    passes: Callable[[Any], bool] | None = None  # a rule over the value for this subject (else Check.passes)


class NotApplicable(Exception):
    """Raised by a check's ``measure`` when the target gives it nothing to judge (the
    result is ``skip`` with this reason, never ``pass``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Check:
    """One checklist item, declared.

    ``id``: ``family.check``; ``title``: the Gherkin scenario's name in the family's
    feature file (how the binding finds the check; several checks may share one scenario
    when they judge one measurement, e.g. a drill, in the declared order); ``severity``: what a failure weighs
    (a profile block's ``severity`` overrides it); ``refs``: the catalogue rows the check
    answers; ``measures``: what is measured and how, in words (``golive checks`` lists it).

    ``measure(ctx)`` returns one measurement (one result, id ``family.check``) or a mapping
    subject -> measurement (one result per subject, ``family.check[subject]``).
    ``expected(req)`` says the requirement in words; ``passes(req, value)`` is the pass rule
    over the measured value; ``remediation`` is the fix for a failure; ``verify_hint`` says
    how to make the item verifiable when it could not be measured.  ``applies(ctx)`` returns
    ``None`` when the check applies, else the reason it does not.
    """

    id: str
    title: str
    severity: Severity
    measures: str
    measure: Callable[[CheckContext], MeasureResult]
    expected: str | Callable[[Any], str]
    passes: Callable[[Any, Any], bool] | None = None  # None: every subject is Judged with its own rule
    remediation: str | Callable[[Any, Measurement], str] = ""
    refs: tuple[str, ...] = ()
    applies: Callable[[CheckContext], str | None] | None = None
    disruptive: bool = False
    empty: str = "nothing to check on this target"
    verify_hint: str = ""
    data: Callable[[CheckContext, str, Measurement], dict[str, Any]] | None = None  # (ctx, subject, m): result data
    subjects: Callable[[CheckContext], Sequence[str]] | None = None  # what a skip names (ids stay per subject)
    gathers: Callable[[Any, Any], Sequence[str]] | None = None  # (req, host spec): commands to gather up front

    def __post_init__(self) -> None:
        family, sep, name = self.id.partition(".")
        if not sep or not family or not name:
            raise ValueError(f"check id '{self.id}' must be 'family.check'")

    @property
    def family(self) -> str:
        return self.id.partition(".")[0]

    def expected_text(self, req: Any) -> str:
        return self.expected if isinstance(self.expected, str) else self.expected(req)

    def remediation_text(self, req: Any, m: Measurement) -> str:
        return self.remediation if isinstance(self.remediation, str) else self.remediation(req, m)


@dataclasses.dataclass(frozen=True)
class Family:
    """A check family: ``name`` is the folder under checks/, the profile key under
    ``requirements:``, the target key and the pytest marker; ``feature`` its checklist in
    features/; ``profile_block`` / ``target_block`` its schema fragments (pydantic models
    derived from :class:`golive.blocks.Block` / :class:`golive.blocks.Strict`)."""

    name: str
    title: str
    feature: str
    checks: tuple[Check, ...]
    profile_block: type[Any] | None = None
    target_block: type[Any] | None = None
    target_many: bool = False  # the target key holds a list of target_block
    merge_replace: tuple[str, ...] = ()  # keys of the profile block a child profile replaces as a whole

    def __post_init__(self) -> None:
        ids = [c.id for c in self.checks]
        for c in self.checks:
            if c.family != self.name:
                raise ValueError(f"check '{c.id}' is declared in family '{self.name}'")
        if len(set(ids)) != len(ids):
            raise ValueError(f"family '{self.name}' declares a check id twice")

    def by_title(self, title: str) -> Check | None:
        return next((c for c in self.checks if c.title == title), None)

    def for_scenario(self, title: str) -> tuple[Check, ...]:
        """The checks a scenario holds (one, or several judging one shared measurement)."""
        return tuple(c for c in self.checks if c.title == title)

    def by_id(self, check_id: str) -> Check | None:
        return next((c for c in self.checks if c.id == check_id), None)


class CheckContext:
    """What a check's functions see: its family's requirement block (``req``) and target
    fragment (``spec``), the whole target, the run's options, a per-run memo so several
    checks share one probe run, and ``on_host`` to run a host probe over the host's
    connection (with golive's once-per-run reachability handling)."""

    def __init__(self, *, req: Any, spec: Any, target: Any, profile_name: str = "", allow_disruptive: bool = False,
                 host_runner: HostRunner | None = None, memo: dict[Any, Any] | None = None,
                 memo_lock: threading.Lock | None = None,
                 fanout: Callable[[Sequence[Any], Callable[[Any], Any]], dict[str, Any]] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.req = req
        self.spec = spec
        self.target = target
        self.profile_name = profile_name
        self.allow_disruptive = allow_disruptive
        self._host_runner = host_runner
        self._memo = memo if memo is not None else {}
        self._memo_lock = memo_lock or threading.Lock()
        self._fanout = fanout
        self._cleanups: list[Callable[[], None]] = []
        self.stop_reason: str | None = None
        self._progress = progress

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the scenario ends, on every exit path (a disruptive check's
        restore, in addition to the restore on its own exit paths)."""
        self._cleanups.append(fn)

    def run_cleanups(self) -> None:
        while self._cleanups:
            self._cleanups.pop()()

    def stop_run(self, reason: str) -> None:
        """Ask the runner to stop after this scenario (e.g. a drill interrupted by SIGTERM:
        its results are recorded, then the run ends as for Ctrl-C)."""
        self.stop_reason = reason

    def progress(self, line: str) -> None:
        """Show a progress line on the operator's terminal while a long probe runs (a load
        test, a drill); silent where the run has no terminal.  Never fails the check."""
        if self._progress is not None:
            with contextlib.suppress(Exception):
                self._progress(line)

    @classmethod
    def for_test(cls, *, req: Any = None, spec: Any = None, target: Any = None, allow_disruptive: bool = False,
                 host_runner: HostRunner | None = None) -> CheckContext:
        """A context for unit tests: no pytest, a private memo."""
        return cls(req=req, spec=spec, target=target, profile_name="test", allow_disruptive=allow_disruptive,
                   host_runner=host_runner)

    @property
    def host_specs(self) -> list[Any]:
        return list(getattr(self.target, "hosts", []) or [])

    def host(self, name: str) -> Any:
        for h in self.host_specs:
            if h.name == name:
                return h
        raise KeyError(f"host '{name}' is not in the target")

    def on_host(self, host: Any, probe: Callable[..., Measurement], *args: Any) -> Measurement:
        """Run ``probe(testinfra_host, *args)`` on a target host (a name or a host spec)."""
        spec = self.host(host) if isinstance(host, str) else host
        if self._host_runner is None:
            raise RuntimeError("this context has no host runner (CheckContext.for_test(host_runner=...))")
        return self._host_runner(spec, probe, *args)

    def each_host(self, fn: Callable[[Any], Any], specs: Sequence[Any] | None = None) -> dict[str, Any]:
        """``fn(host_spec)`` for every host of the target at once (the binding fans out over
        threads; sequential without one), keyed by host name in inventory order."""
        specs = list(self.host_specs if specs is None else specs)
        if self._fanout is not None:
            return self._fanout(specs, fn)
        return {s.name: fn(s) for s in specs}

    def memo(self, key: Any, fn: Callable[[], Any]) -> Any:
        """``fn()`` once per run and key (shared by every check of the run in this process)."""
        with self._memo_lock:
            if key in self._memo:
                return self._memo[key]
            lock = self._memo.setdefault(("__lock__", key), threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = fn()
            return self._memo[key]


class Recorder(Protocol):
    """What :func:`evaluate` records into (golive.recorder.Checks implements it)."""

    def record(self, check_id: str, *, block: Any, expected: str, measurement: Measurement,
               ok: Callable[[Any], bool], remediation: str = "", severity: Severity | None = None,
               data: dict[str, Any] | None = None, refs: Sequence[str] | None = None,
               verify_hint: str = "") -> CheckResult: ...

    def skip(self, check_id: str, reason: str, *, block: Any = None, expected: str = "",
             severity: Severity | None = None, refs: Sequence[str] | None = None) -> CheckResult: ...

    def error(self, check_id: str, reason: str, *, block: Any = None, expected: str = "",
              evidence: Evidence | None = None, severity: Severity | None = None,
              refs: Sequence[str] | None = None, verify_hint: str = "") -> CheckResult: ...


def when_flag(flag: str) -> Callable[[CheckContext], str | None]:
    """``Check.applies`` for a check the profile switches with a boolean field of its
    family's block: it applies when ``req.<flag>`` is true, else the skip reason names it."""
    def applies(ctx: CheckContext) -> str | None:
        return None if getattr(ctx.req, flag) else f"profile '{ctx.profile_name}' does not require this ({flag})"
    return applies


DISRUPTIVE_NOT_ALLOWED = "disruptive, not allowed"


def not_applicable(check: Check, ctx: CheckContext) -> str | None:
    """Why ``check`` does not run in ``ctx`` (None: it runs)."""
    if ctx.req is None:
        return f"profile '{ctx.profile_name}' does not require {check.family} (no requirements.{check.family})"
    if check.disruptive and not ctx.allow_disruptive:
        return DISRUPTIVE_NOT_ALLOWED
    if check.applies is not None:
        return check.applies(ctx)
    return None


def severity_of(check: Check, req: Any) -> Severity:
    override = getattr(req, "severity", None)
    return override if isinstance(override, Severity) else check.severity


def refs_of(check: Check, req: Any) -> tuple[str, ...]:
    """The catalogue ids a result cites: the profile block's ids that this check answers;
    the block's own ids when none of them is the check's (never ids of another system the
    profile does not cite); the check's ids only when the block cites none."""
    block_refs = tuple(getattr(req, "ref", ()) or ())
    if not check.refs:
        return block_refs
    both = tuple(r for r in block_refs if r in check.refs)
    return both or block_refs or check.refs


def measure(check: Check, ctx: CheckContext) -> MeasureResult | str:
    """The check's measurement(s), or the reason it does not run."""
    reason = not_applicable(check, ctx)
    if reason is not None:
        return reason
    try:
        return check.measure(ctx)
    except NotApplicable as exc:
        return exc.reason


def judge(check: Check, ctx: CheckContext, measured: MeasureResult | str, recorder: Recorder) -> list[CheckResult]:
    """Record the results of ``check`` for what :func:`measure` returned."""
    req = ctx.req
    sev = severity_of(check, req)
    refs = refs_of(check, req)
    if isinstance(measured, str):
        expected = check.expected_text(req) if req is not None else ""
        names: Sequence[str] = ()
        if check.subjects is not None and ctx.req is not None:
            try:
                names = check.subjects(ctx)
            except Exception:
                names = ()
        return [recorder.skip(f"{check.id}[{n}]" if n else check.id, measured, block=req, severity=sev, refs=refs,
                              expected=expected) for n in (names or [""])]
    expected = check.expected_text(req)
    items = {"": measured} if isinstance(measured, Measurement) else dict(measured)
    if not items:
        return [recorder.skip(check.id, check.empty, block=req, expected=expected, severity=sev, refs=refs)]
    out = []
    for subject, m in items.items():
        # a subject starting with "." or "[" is appended as written: hosts.software.python[app-1]
        cid = check.id + subject if subject.startswith((".", "[")) else f"{check.id}[{subject}]" if subject else check.id
        if isinstance(m, Skipped):
            out.append(recorder.skip(cid, m.reason, block=req, expected=expected, severity=sev, refs=refs))
            continue
        sub_req, sub_expected, sub_sev, sub_refs = req, expected, sev, refs
        rule: Callable[[Any], bool] | None = None
        if isinstance(m, Judged):
            sub_req, sub_expected, rule, m = m.req, m.expected, m.passes, m.measurement
            sub_sev = severity_of(check, sub_req) if getattr(sub_req, "severity", None) else sev
            sub_refs = refs_of(check, sub_req) if getattr(sub_req, "ref", None) else refs
        data = check.data(ctx, subject, m) if check.data is not None and m.error is None else None
        out.append(recorder.record(cid, block=sub_req, expected=sub_expected, measurement=m,
                                   ok=rule or _bound(check, sub_req),
                                   remediation=check.remediation_text(sub_req, m), severity=sub_sev, refs=sub_refs,
                                   verify_hint=check.verify_hint, data=data))
    return out


def _bound(check: Check, req: Any) -> Callable[[Any], bool]:
    """The check's pass rule bound to one requirement block."""
    def ok(value: Any) -> bool:
        return _rule(check)(req, value)
    return ok


def _rule(check: Check) -> Callable[[Any, Any], bool]:
    if check.passes is None:
        raise ValueError(f"{check.id} declares no pass rule for this subject")
    return check.passes


def evaluate(check: Check, ctx: CheckContext, recorder: Recorder | None = None) -> list[CheckResult]:
    """Measure and judge ``check`` in ``ctx``; the results are also recorded in ``recorder``
    (a fresh one with no waivers when None)."""
    if recorder is None:
        from golive.recorder import Checks, ScenarioInfo
        from golive.waivers import Waivers

        recorder = Checks(ScenarioInfo(scenario=check.title), Waivers())
    return judge(check, ctx, measure(check, ctx), recorder)
