"""The one generic binding of declared families' checklists to their checks.

Every family registered in golive.registry has a Gherkin checklist in features/ whose
scenarios are named like its checks (``Check.title``).  This module turns each scenario into
a pytest item; its steps only bind: a When step measures the scenario's check, a Then step
judges it (golive.checkdef.evaluate); Given steps are the auditor's prose.  No policy lives
here: what is measured, expected and passed is the check's declaration.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from golive import checkdef, registry
from golive.plugin import INFO_KEY, Environment, StepContext
from suites.hostset import HostSet, plan, probe_host

_MEASURED = pytest.StashKey[Any]()

_features = [str(registry.feature_path(f)) for f in registry.families() if f.feature]
if _features:
    scenarios(*_features)


def _checks_of(request: pytest.FixtureRequest) -> tuple[checkdef.Family, tuple[checkdef.Check, ...]]:
    info = request.node.stash[INFO_KEY]
    family = registry.family_for_feature(info.feature_file)
    checks = family.for_scenario(info.scenario) if family is not None else ()
    if family is None or not checks:  # tests/test_registry.py keeps features and declarations in step
        raise LookupError(f"scenario '{info.scenario}' of {Path(info.feature_file).name} names no declared check")
    return family, checks


def _req(env: Environment, family: checkdef.Family) -> Any:
    return getattr(env.profile.req, family.name, None) if env.profile is not None else None


def _fanout(specs: Any, fn: Any) -> dict[str, Any]:
    return HostSet(list(specs)).measure_each(fn)


def _printer(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Progress lines on the terminal while a long probe runs (through pytest's terminal
    reporter with capture suspended; stderr when there is none, e.g. an xdist worker)."""
    config = request.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def show(line: str) -> None:
        suspend = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
        with suspend:
            if reporter is not None:
                reporter.write_line(line)
            else:
                sys.stderr.write(line + "\n")

    return show


def _context(golive: StepContext, family: checkdef.Family, request: pytest.FixtureRequest) -> checkdef.CheckContext:
    env = golive.env
    return checkdef.CheckContext(req=_req(env, family), spec=getattr(env.target, family.name, None),
                                 target=env.target, profile_name=env.profile.name if env.profile else "",
                                 allow_disruptive=env.allow_disruptive, host_runner=probe_host,
                                 memo=env.memo, memo_lock=env.memo_lock, fanout=_fanout,
                                 progress=_printer(request))


@pytest.fixture(scope="module", autouse=True)
def _gather_plan(request: pytest.FixtureRequest, golive_env: Environment) -> None:
    """Plan, for every host, the commands the selected checks will run there first
    (``Check.gathers``), so the first probe on a host gathers them all in one ssh session
    (suites/hostset.py).  Only selected scenarios count: -k/-m/--hosts narrow the plan."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry as templates

    chosen: list[checkdef.Check] = []
    for item in request.session.items:
        template = templates.get(getattr(item, "obj", None))
        family = registry.family_for_feature(template.feature.rel_filename) if template is not None else None
        if family is not None:
            chosen += [c for c in family.for_scenario(template.name) if c.gathers is not None]
    for spec in golive_env.target.hosts:
        commands: list[str] = []
        for check in chosen:
            req = _req(golive_env, registry.load(check.family))
            if req is not None:
                commands += [c for c in check.gathers(req, spec) if c not in commands]  # type: ignore[misc]
        if commands:
            plan(spec, commands)


def _measure(golive: StepContext, request: pytest.FixtureRequest) -> list[tuple[checkdef.Check, checkdef.CheckContext,
                                                                                 Any]]:
    """The scenario's checks with what each measured (in declared order; checks that judge
    one shared measurement get it once through ctx.memo)."""
    if _MEASURED not in request.node.stash:
        family, checks = _checks_of(request)
        ctx = _context(golive, family, request)
        request.addfinalizer(ctx.run_cleanups)
        measured = [(c, ctx, checkdef.measure(c, ctx)) for c in checks]
        request.node.stash[_MEASURED] = measured
        if ctx.stop_reason:  # like Ctrl-C, but after this scenario's results are recorded
            request.session.shouldstop = ctx.stop_reason
    return request.node.stash[_MEASURED]  # type: ignore[no-any-return]


@given(parsers.re(r"(?P<text>.+)"))
def scene(text: str) -> None:
    """Given steps describe the setting for the auditor; the target file supplies it."""


@when(parsers.re(r"(?P<text>.+)"))
def measure_check(golive: StepContext, request: pytest.FixtureRequest, text: str) -> None:
    """Measure the scenario's check (once per scenario, whatever the number of When steps)."""
    _measure(golive, request)


@then(parsers.re(r"(?P<text>.+)"))
def judge_check(golive: StepContext, request: pytest.FixtureRequest, text: str) -> None:
    """Judge the scenario's checks and record their results (once per scenario)."""
    measured = _measure(golive, request)
    if golive.checks.results:
        return
    for check, ctx, value in measured:
        checkdef.judge(check, ctx, value, golive.checks)
