"""The pytest plugin: options, config loading, the lab, result collection, reports, exit code.

pytest is the runner; this module binds it to golive's contracts (architecture.md).  It
does not measure (``checks/``) and does not render (``reports/``).
"""
from __future__ import annotations

import datetime as dt
import getpass
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from golive import __version__ as GOLIVE_VERSION
from golive.model import Severity, Status, utcnow
from golive.profile import ResolvedProfile, list_profiles
from golive.recorder import Checks, ScenarioInfo
from golive.redact import redact
from golive.selection import Selection, SelectionTracker, from_config, refuse_cache_selection
from golive.target import Target, with_overrides
from golive.verdict import Verdict, decide_dicts
from golive.waivers import Waivers

ROOT = Path(__file__).resolve().parent.parent
MARKERS = {
    "critical": "severity: a failure blocks go-live at every --fail-on level",
    "high": "severity high (blocks go-live with the default --fail-on high)",
    "medium": "severity medium",
    "low": "severity low (recommendations)",
    "hosts": "host hardware and software checks",
    "ports": "open and closed ports, listen addresses",
    "tls": "TLS protocol, cipher and certificate checks",
    "http": "HTTP redirect, HSTS and security header checks",
    "cors": "CORS policy checks",
    "auth": "authentication and rate limiting checks",
    "throughput": "throughput of the inference core (disruptive)",
    "backups": "backup freshness, integrity and restore checks",
    "ha": "high-availability failover drill (disruptive)",
    "kubernetes": "Kubernetes platform checks",
    "disruptive": "changes or loads the target; needs --allow-disruptive",
}


class GoliveRun:
    """Everything the run knows: config, the started target, collected results."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.profile: ResolvedProfile | None = None
        self.target: Target | None = None
        self.target_path = ""
        self.waivers = Waivers()
        self.fail_on = Severity(config.getoption("golive_fail_on"))
        self.allow_disruptive: bool = config.getoption("golive_allow_disruptive")
        self.started_at = utcnow()
        self.results: list[dict[str, Any]] = []
        self.golive_items = 0
        self.lab: Any = None
        self.run_dir: Path | None = None
        self.verdict: Verdict | None = None
        self.previous: dict[str, Any] | None = None  # --compare: an earlier report.json
        self.compare_path = ""
        self.sign_key: Any = None  # --sign-key: the operator's Ed25519 key, kept in memory only
        self.doc: dict[str, Any] | None = None  # the report document once written
        self.startup_marked = False
        self.selection = Selection()  # what part of the profile this run checks (golive.selection)
        self.require_complete: bool = config.getoption("golive_require_complete")
        self.attestations: Any = None  # golive.attestations.Attestations, when a file is given or found

    @property
    def active(self) -> bool:
        return self.profile is not None


RUN_KEY = pytest.StashKey[GoliveRun]()
INFO_KEY = pytest.StashKey[ScenarioInfo]()
CHECKS_KEY = pytest.StashKey[Checks]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("golive", "golive: deployment validation (see docs/usage.md)")
    g.addoption("--profile", dest="golive_profile", default=None, metavar="NAME|PATH",
                help="tier requirements: a name in profiles/ or a YAML path; 'list' lists the profiles")
    g.addoption("--list-profiles", dest="golive_list_profiles", action="store_true",
                help="list the profiles with their descriptions and exit")
    g.addoption("--target", dest="golive_target", default="lab", metavar="NAME|PATH",
                help="inventory: a name in targets/ or a YAML path (default: lab, the embedded reference deployment)")
    g.addoption("--report-dir", dest="golive_report_dir", default=None, metavar="DIR",
                help="where the run folder is written (default: reports/runs/)")
    g.addoption("--waivers", dest="golive_waivers", default=None, metavar="PATH",
                help="waiver file (default: waivers.yaml next to the target file, if present)")
    g.addoption("--allow-disruptive", dest="golive_allow_disruptive", action="store_true",
                help="permit checks that change or load the target (drills, load tests, restores)")
    g.addoption("--fail-on", dest="golive_fail_on", default="high", choices=[s.value for s in Severity],
                help="lowest severity whose failure or error makes the verdict NO-GO (default: high)")
    g.addoption("--roles", dest="golive_roles", action="append", default=[], metavar="ROLE[,ROLE]",
                help="check only hosts with one of these roles (with --hosts GLOB[,GLOB], which golive reads "
                     "as host-name globs when --profile is given; docs/fleets.md)")
    g.addoption("--compare", dest="golive_compare", default=None, metavar="PREVIOUS.json",
                help="compare with an earlier run's report.json: newly failing, fixed, changed (in report.json and report.html)")
    g.addoption("--sign-key", dest="golive_sign_key", default=None, metavar="PATH",
                help="Ed25519 private key (PEM) to sign the run folder: manifest.json.sig and report.json.sig "
                     "(golive keygen makes one)")
    g.addoption("--require-complete", dest="golive_require_complete", action="store_true",
                help="exit 1 unless the whole profile ran: a partial run (-k, -m, --hosts, ...) that passed "
                     "(PASS-PARTIAL) fails the gate too (use it in CI; docs/ci.md)")
    g.addoption("--attestations", dest="golive_attestations", default=None, metavar="PATH",
                help="attestation file for checks no probe can read (default: attestations.yaml next to the "
                     "target file, if present; docs/attestations.md)")


def _print_profiles() -> None:
    rows = list_profiles()
    width = max(len(r[0]) for r in rows)
    print("golive profiles (profiles/*.yaml):")
    for name, desc, parent in rows:
        ext = f"  [extends {parent}]" if parent else ""
        print(f"  {name:<{width}}  {desc}{ext}")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("golive_list_profiles") or config.getoption("golive_profile") == "list":
        _print_profiles()
        return 0
    return None


def _family_markers() -> dict[str, str]:
    """Markers of the declared families: the family's name, and each check's id (so
    ``-m``/``-k`` select by the ids the report shows)."""
    from golive import registry

    out: dict[str, str] = {}
    for fam in registry.families():
        out[fam.name] = fam.title
        for c in fam.checks:
            out[c.id] = f"{c.title} ({c.severity.value})"
    return out


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from golive import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in {**MARKERS, **_family_markers()}.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.pluginmanager.register(_DeclaredMarks(), "golive-declared-marks")
    run = GoliveRun(config)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(ResultCollector(run), "golive-results")
    profile = config.getoption("golive_profile")
    if not profile:
        return
    refuse_cache_selection(config)
    run.selection = from_config(config)
    config.pluginmanager.register(SelectionTracker(run.selection, _is_golive_item), "golive-selection")
    from golive.runconfig import ConfigErrors, load_run_config

    hosts, roles = _host_filters(config)
    try:
        rc = load_run_config(profile, config.getoption("golive_target"), config.getoption("golive_waivers"),
                             config.getoption("golive_attestations"), hosts, roles)
    except ConfigErrors as exc:
        raise pytest.UsageError(str(exc)) from None
    run.profile, run.target, run.target_path = rc.profile, rc.target, rc.target_path
    run.waivers, run.attestations = rc.waivers, rc.attestations
    _load_compare_and_key(run, config)
    if not hasattr(config, "workerinput"):
        from golive import signals
        from golive.rundir import RunDirError

        try:  # before any probe runs: made exclusively, proven writable (golive/rundir.py)
            run.run_dir = _run_dir(run)
        except RunDirError as exc:
            raise pytest.UsageError(str(exc)) from None
        signals.install()  # SIGTERM/SIGHUP end the run like Ctrl-C (golive/signals.py)


def pytest_unconfigure(config: pytest.Config) -> None:
    from golive import signals
    from golive.rundir import release_if_empty

    signals.uninstall()
    release_if_empty(config.stash[RUN_KEY].run_dir)  # a run that wrote no report leaves nothing


def _load_compare_and_key(run: GoliveRun, config: pytest.Config) -> None:
    """--compare and --sign-key are read before any probe runs: a bad file is a usage error."""
    cpath = config.getoption("golive_compare")
    if cpath:
        from golive.manifest import check_input
        from golive.report import ReportError

        try:
            run.previous, run.compare_path = check_input(Path(cpath)), str(cpath)
        except ReportError as exc:
            raise pytest.UsageError(f"--compare: {exc}") from None
    kpath = config.getoption("golive_sign_key")
    if kpath:
        from golive.signing import SigningError, load_private_key

        try:
            run.sign_key = load_private_key(kpath)
        except SigningError as exc:
            raise pytest.UsageError(f"--sign-key: {exc}") from None


def _host_filters(config: pytest.Config) -> tuple[list[str], list[str]]:
    """--hosts (testinfra's option, read here as host-name globs) and --roles."""
    patterns = [p.strip() for p in (config.getoption("hosts", None) or "").split(",") if p.strip()]
    roles = [r.strip() for v in config.getoption("golive_roles") for r in v.split(",") if r.strip()]
    return patterns, roles


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: count what will run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash[RUN_KEY]
    golive_items = [i for i in items if _is_golive_item(i)]
    run.golive_items = len(golive_items)
    if golive_items and not run.active:
        raise pytest.UsageError(
            "--profile is required to run golive checks\n  fix: pytest --profile poc --target lab "
            "(pytest --profile list shows the profiles)")


class _DeclaredMarks:
    """Marks each declared check's scenario with its family, its check id and its declared
    severity before -k/-m deselect anything, so selection matches what the report shows
    (a feature-file tag cannot disagree with the declaration)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from pytest_bdd.scenario import scenario_wrapper_template_registry

        from golive import registry

        for item in items:
            func = getattr(item, "function", None)
            template = scenario_wrapper_template_registry.get(func) if func is not None else None
            if template is None:
                continue
            family = registry.family_for_feature(template.feature.rel_filename)
            checks = family.for_scenario(template.name) if family is not None else ()
            if family is None or not checks:
                continue
            item.add_marker(family.name)
            for check in checks:
                item.add_marker(check.id)
            # every declared severity of the scenario's checks (the "Operating system" scenario
            # holds a medium and a low check: -m low must select it); feature tags do not count
            severities = {c.severity.value for c in checks}
            item.own_markers[:] = [m for m in item.own_markers
                                   if m.name not in Severity._value2member_map_ or m.name in severities]
            for sev in sorted(severities - {m.name for m in item.own_markers}):
                item.add_marker(sev)
            if any(c.disruptive for c in checks):
                item.add_marker("disruptive")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """``GOLIVE_STARTUP_MARK=FILE``: write the wall-clock time at which the first check
    starts (benchmarks/bench_startup.py measures golive's fixed start-up with it)."""
    mark = os.environ.get("GOLIVE_STARTUP_MARK")
    run = item.config.stash[RUN_KEY]
    if mark and not run.startup_marked and _is_golive_item(item):
        run.startup_marked = True
        Path(mark).write_text(f"{time.time():.6f}\n")


def _is_golive_item(item: pytest.Item) -> bool:
    """A golive check is a pytest-bdd scenario (its steps use the ``golive`` fixture, which
    pytest-bdd resolves at run time, so ``fixturenames`` cannot tell)."""
    names = getattr(item, "fixturenames", ())
    return "_pytest_bdd_example" in names or "golive" in names


# ----------------------------------------------------------------------------- fixtures

class Environment:
    """What step functions see: the profile, the (started) target, run options."""

    def __init__(self, run: GoliveRun, target: Target) -> None:
        self.profile = run.profile
        self.target = target
        self.allow_disruptive = run.allow_disruptive
        self.lab = run.lab
        self.memo: dict[Any, Any] = {}  # declared checks share probe runs through CheckContext.memo
        self.memo_lock = threading.Lock()


@pytest.fixture(scope="session")
def golive_env(request: pytest.FixtureRequest) -> Iterator[Environment]:
    """The target, with the embedded lab started first when the target asks for it."""
    run = request.config.stash[RUN_KEY]
    if not run.active or run.target is None:
        pytest.skip("golive checks need --profile")
    target = run.target
    started = request.config.hook.pytest_golive_start_target(config=request.config, target=target)
    if started is not None:
        run.lab = started
        try:
            target = with_overrides(target, started.target_overrides())
        except BaseException:
            started.stop()
            raise
    try:
        yield Environment(run, target)
    finally:
        if run.lab is not None:
            run.lab.stop()


@pytest.fixture
def golive(request: pytest.FixtureRequest, golive_env: Environment) -> StepContext:
    """Per-scenario context: profile, target and the recorder for results."""
    info = request.node.stash.get(INFO_KEY, None) or ScenarioInfo(nodeid=request.node.nodeid)
    run = request.config.stash[RUN_KEY]
    checks = Checks(info, run.waivers, run.attestations)
    request.node.stash[CHECKS_KEY] = checks
    return StepContext(golive_env, checks)


class StepContext:
    def __init__(self, env: Environment, checks: Checks) -> None:
        self.env = env
        self.checks = checks
        self.profile = env.profile
        self.req = env.profile.req if env.profile else None
        self.target = env.target


# ----------------------------------------------------------------------------- pytest-bdd hooks

def pytest_bdd_before_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    tags = tuple(sorted(set(scenario.tags) | set(feature.tags)))
    request.node.stash[INFO_KEY] = ScenarioInfo(feature=feature.name, feature_file=feature.rel_filename,
                                                 scenario=scenario.name, tags=tags, nodeid=request.node.nodeid)
    checks = request.node.stash.get(CHECKS_KEY, None)
    if checks is not None:
        checks.info = request.node.stash[INFO_KEY]


def pytest_bdd_after_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    """Turn the scenario's results into its pytest outcome (fail > error > skip > pass)."""
    if sys.exc_info()[0] is not None:
        return
    checks = request.node.stash.get(CHECKS_KEY, None)
    if checks is None or not checks.results:
        return
    bad = [r for r in checks.results if r.status in (Status.FAIL, Status.ERROR)]
    if bad:
        lines = [f"{r.status.value.upper()} {r.id}: expected {r.expected}, measured {r.measured}"
                 + (f" ({r.reason})" if r.reason else "") for r in bad]
        pytest.fail("\n".join(lines), pytrace=False)
    if all(r.status == Status.SKIP for r in checks.results):
        pytest.skip("; ".join(sorted({r.reason for r in checks.results})))


# ----------------------------------------------------------------------------- collection of results

EMITTED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Generator[None, object | None, object | None]:
    """A scenario cut short by SIGINT/SIGTERM/SIGHUP has no report of its own (pytest
    re-raises the KeyboardInterrupt): record it here as ``error: interrupted``."""
    try:
        return (yield)
    except KeyboardInterrupt as exc:
        run = item.config.stash[RUN_KEY]
        if run.active and _is_golive_item(item) and not item.stash.get(EMITTED_KEY, False):
            from golive.signals import describe

            info = item.stash.get(INFO_KEY, None) or ScenarioInfo(nodeid=item.nodeid, scenario=item.name)
            checks = item.stash.get(CHECKS_KEY, None) or Checks(info, run.waivers)
            checks.error(_scenario_id(info, item), describe(exc))
            run.results.extend(r.to_dict() for r in checks.results)
        raise

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                               ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    run = item.config.stash[RUN_KEY]
    if not run.active or not _is_golive_item(item):
        return report
    checks = item.stash.get(CHECKS_KEY, None)
    info = item.stash.get(INFO_KEY, None) or ScenarioInfo(nodeid=item.nodeid, scenario=item.name)
    if checks is None:
        checks = Checks(info, run.waivers, run.attestations)
        item.stash[CHECKS_KEY] = checks
    emit = False
    if report.when == "setup" and report.failed:
        checks.error(_scenario_id(info, item), f"set-up failed: {_short(call.excinfo)}")
        emit = True
    elif report.when == "setup" and report.skipped and not checks.results:
        reason = _skip_reason(report)
        checks.skip(_scenario_id(info, item), reason)
        emit = True
    elif report.when == "call":
        if report.failed and not any(r.status in (Status.FAIL, Status.ERROR) for r in checks.results):
            checks.error(_scenario_id(info, item), f"the check itself failed: {_short(call.excinfo)}")
        elif report.skipped and not checks.results:
            checks.skip(_scenario_id(info, item), _skip_reason(report))
        emit = True
    if emit:
        report.user_properties.append(("golive_results", [r.to_dict() for r in checks.results]))
        item.stash[EMITTED_KEY] = True
    return report


def _scenario_id(info: ScenarioInfo, item: pytest.Item) -> str:
    """The id a result of this scenario carries when no step recorded one (a skip or a
    set-up failure): its declared check's id, else one derived from the scenario's name."""
    if info.feature_file and info.scenario:
        from golive import registry

        family = registry.family_for_feature(info.feature_file)
        check = family.by_title(info.scenario) if family is not None else None
        if check is not None:
            return check.id
    base = Path(info.feature_file).stem if info.feature_file else item.module.__name__.rsplit(".", 1)[-1]  # type: ignore[attr-defined]
    return f"{base.removeprefix('test_')}.{(info.scenario or item.name).lower().replace(' ', '_')}"


def _short(excinfo: Any) -> str:
    if excinfo is None:
        return "unknown error"
    return redact(f"{excinfo.typename}: {excinfo.value}")[:500]


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


class ResultCollector:
    """Gathers results from test reports -- in this process, or from pytest-xdist workers,
    whose reports (with their user_properties) reach the controller."""

    def __init__(self, run: GoliveRun) -> None:
        self.run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == "golive_results" and isinstance(value, list):
                self.run.results.extend(value)


# ----------------------------------------------------------------------------- the end of the run

def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             check=False)
        sha = out.stdout.strip()
        if out.returncode == 0 and sha:
            dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5, check=False).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _metadata(run: GoliveRun, finished_at: str, exitstatus: int) -> dict[str, Any]:
    assert run.profile is not None and run.target is not None
    operator = os.environ.get("GOLIVE_OPERATOR") or getpass.getuser()
    target: dict[str, Any] = {"name": run.target.name, "environment": run.target.environment, "file": run.target_path,
              "description": run.target.description}
    if run.lab is not None:
        target.update(run.lab.describe())
    if run.target.selection is not None:
        target["selection"] = run.target.selection.model_dump()
    return {
        "golive": {"version": GOLIVE_VERSION, "git_sha": _git_sha()},
        "run": {"started_at": run.started_at, "finished_at": finished_at, "operator": operator,
                "checking_host": socket.gethostname(), "platform": platform.platform(),
                "python": platform.python_version(), "pytest": pytest.__version__,
                "args": [redact(a) for a in run.config.invocation_params.args],
                "allow_disruptive": run.allow_disruptive, "pytest_exitstatus": int(exitstatus),
                "selection": run.selection.to_dict(), "require_complete": run.require_complete},
        "profile": {"name": run.profile.name, "description": run.profile.profile.description,
                    "sha256": run.profile.sha256, "files": run.profile.files,
                    "source": run.profile.profile.source, "notes": run.profile.profile.notes},
        "target": target,
    }


def _run_dir(run: GoliveRun) -> Path:
    from golive.rundir import claim

    assert run.profile is not None and run.target is not None
    base = run.config.getoption("golive_report_dir")
    root = Path(base) if base else ROOT / "reports" / "runs"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return claim(root, f"{stamp}_{run.profile.name}_{run.target.name}")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash[RUN_KEY]
    if not run.active or hasattr(session.config, "workerinput"):
        return
    if session.config.option.collectonly:  # --co: pytest's listing, no run, no report
        return
    if run.golive_items == 0 and not run.results:  # e.g. `-m` selected nothing
        return
    from reports import write_run

    results = sorted(run.results, key=lambda r: (r["nodeid"], r["id"]))
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    sel = run.selection
    if run.target is not None and run.target.selection is not None and run.target.selection.left_out:
        sel.host_filter = {**run.target.selection.model_dump(), "describe": run.target.selection.describe()}
    partial = None if sel.complete else {"ran": sel.selected, "of": sel.collected, "reasons": sel.reasons}
    run.verdict = decide_dicts(results, run.fail_on, complete=not interrupted, partial=partial)
    finished = utcnow()
    meta = _metadata(run, finished, exitstatus)
    assert run.run_dir is not None  # claimed in pytest_configure
    run.doc = write_run(run.run_dir, meta, run.verdict.to_dict(), results, run.waivers.summary(),
                        previous=run.previous, previous_path=run.compare_path, sign_key=run.sign_key,
                        attestations=run.attestations.summary() if run.attestations is not None else None)
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        ok = run.verdict.go or (run.verdict.passed and not run.require_complete)
        session.exitstatus = pytest.ExitCode.OK if ok else pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash[RUN_KEY]
    if run.verdict is None or run.run_dir is None:
        return
    from reports.terminal import summary_lines

    tr = terminalreporter
    tr.section("golive verdict", sep="=", bold=True)
    for line, style in summary_lines(run.verdict.to_dict(), run.results, run.run_dir, run.doc):
        tr.write_line(redact(line), **style)
