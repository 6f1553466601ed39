"""The services family, declared: each service the target declares (``services:``, shared
with the ports family) is running, as its own non-root account, with its workers, holding
its port, with the environment variable names it needs, its secret files private to it, a
clean Python environment, and -- for a reverse proxy -- a valid configuration that points
at the application.  Judged against ``requirements.services``.

Only what a service declares is checked: a service without ``user:`` has no account check.
Facts are read over each service's host connection (``ctx.on_host``), once per service
(``ctx.memo``).  Environment values never leave the host: only names are read.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from golive.blocks import Block
from golive.checkdef import Check, CheckContext, Family, Judged, NotApplicable, Skipped, when_flag
from golive.model import Evidence, Measurement, Severity
from golive.units import Duration


class ServicesReq(Block):
    """Which service checks the tier requires (each on once the block is present)."""

    process: bool = True
    non_root: bool = True
    workers: bool = True
    port_owner: bool = True
    env: bool = True
    secret_files: bool = True
    pip_check: bool = True
    proxy: bool = True
    boot_start: bool = True
    security_updates: bool = True
    reboot_required: bool = True
    secret_mode_max: str = "0640"
    security_window: Duration | None = Field(default=None, description=(
        "how long a security update may stay pending (unset: none may be pending; an update whose "
        "publication date the package manager does not give -- apt -- counts as older than any window)"))
    apt_lists_max_age: Duration = Field(default=7 * 86400.0, description=(
        "package lists older than this cannot show what is pending: could not verify"))


def _probes() -> Any:
    from checks.services import probes
    return probes


def _selected(ctx: CheckContext, wanted: str) -> list[Any]:
    services = [s for s in ctx.target.services if getattr(s, wanted)]
    if not services:
        raise NotApplicable(f"the target declares no service with {wanted}: (services[].{wanted})")
    return services


def _facts(ctx: CheckContext, svc: Any) -> Measurement:
    p = _probes()
    return ctx.memo(("services.facts", svc.host, svc.name),  # type: ignore[no-any-return]
                    lambda: ctx.on_host(svc.host, p.process_facts, svc.pidfile, svc.unit, svc.process))


def _per_service(ctx: CheckContext, services: list[Any], judge: Any) -> dict[str, Any]:
    return {f"{s.name}@{s.host}": judge(s) for s in services}


def _findable(ctx: CheckContext) -> list[Any]:
    return [s for s in ctx.target.services if s.pidfile or s.unit or s.process]


def _nothing(what: str) -> Measurement:
    """The tier requires the check and the target gives nothing to verify it against: an
    error, never a skip that would let the run pass unverified."""
    return Measurement.failed(f"the target declares no service with {what}: nothing to verify",
                              Evidence(probe="services", subject="target", method="the target's services"))


def _process(ctx: CheckContext) -> Measurement | dict[str, Any]:
    services = _findable(ctx)
    if not services:
        return _nothing("pidfile:, unit: or process:")
    return _per_service(ctx, services, lambda s: _facts(ctx, s))


def _non_root(ctx: CheckContext) -> Measurement | dict[str, Any]:
    services = [s for s in _findable(ctx) if s.user]
    if not services:
        return _nothing("user: and a way to find its process (pidfile:, unit:, process:)")

    def judge(s: Any) -> Judged | Skipped | Measurement:
        m = _facts(ctx, s)
        if m.ok and m.value["pid"] is None:
            return Skipped("the service is not running (services.process)")
        return Judged(m, ctx.req, f"runs as '{s.user}' (not root)",
                      passes=lambda v: v["user"] == s.user and v["user"] != "root")
    return _per_service(ctx, services, judge)


def _workers(ctx: CheckContext) -> dict[str, Any]:
    services = [s for s in _findable(ctx) if s.workers is not None]
    if not services:
        raise NotApplicable("the target declares no service with workers:")

    def judge(s: Any) -> Judged | Skipped:
        m = _facts(ctx, s)
        if m.ok and m.value["pid"] is None:
            return Skipped("the service is not running (services.process)")
        return Judged(m, ctx.req, f"a master with {s.workers} worker processes",
                      passes=lambda v: len(v["children"]) == s.workers)
    return _per_service(ctx, services, judge)


def _port_owner(ctx: CheckContext) -> Measurement | dict[str, Any]:
    services = _findable(ctx)
    if not services:
        return _nothing("pidfile:, unit: or process:")
    p = _probes()

    def judge(s: Any) -> Judged | Skipped | Measurement:
        facts = _facts(ctx, s)
        if not facts.ok:
            return facts
        if facts.value["pid"] is None:
            return Skipped("the service is not running (services.process)")
        pids = {facts.value["pid"], *facts.value["children"]}
        m = ctx.on_host(s.host, p.listeners, s.port)
        if m.ok and m.value and all(f["process"] == "docker-proxy" for f in m.value):
            # a port Docker publishes is held on the host by its proxy, never by the container's
            # process: which container it reaches is the containers family's question
            return Skipped(f"port {s.port} is published by Docker (held by docker-proxy); "
                           "containers.published_ports judges what it publishes")
        return Judged(m, ctx.req, f"port {s.port} held by {s.name} (pid {facts.value['pid']} or its workers) only",
                      passes=lambda found: bool(found) and all(f["pid"] in pids for f in found))
    return _per_service(ctx, services, judge)


def _env(ctx: CheckContext) -> Measurement | dict[str, Any]:
    services = [s for s in _findable(ctx) if s.env]
    if not services:
        return _nothing("env: (required variable names) and a way to find its process")

    def judge(s: Any) -> Judged | Skipped | Measurement:
        m = _facts(ctx, s)
        if m.ok and m.value["pid"] is None:
            return Skipped("the service is not running (services.process)")
        if m.ok and m.value["env_names"] is None:
            return Measurement.failed(m.value["env_error"] or "environment not readable", m.evidence)
        names = ", ".join(s.env)
        return Judged(m, ctx.req, f"variables set: {names}",
                      passes=lambda v: set(s.env) <= set(v["env_names"]))
    return _per_service(ctx, services, judge)


def _files(ctx: CheckContext) -> Measurement | dict[str, Any]:
    services = [s for s in ctx.target.services if s.files]
    if not services:
        return _nothing("files: (secret files)")
    limit = int(ctx.req.secret_mode_max, 8)
    p = _probes()
    out: dict[str, Any] = {}
    for s in services:
        m = ctx.on_host(s.host, p.file_modes, list(s.files))
        for path in s.files:
            sub = Measurement(m.value.get(path) if m.ok else None,
                              (f"{m.value[path]['owner']} {m.value[path]['mode']:04o}"
                               if m.ok and m.value.get(path, {}).get("mode") is not None else
                               "missing" if m.ok else m.display), m.evidence, error=m.error)
            owner = s.user or "the service's account"
            out[f"{path}@{s.host}"] = Judged(
                sub, ctx.req, f"exists, owned by {owner}, mode <= {ctx.req.secret_mode_max}",
                passes=_private(limit, s.user))
    return out


def _private(limit: int, user: str | None) -> Any:
    """Exists, no permission bit beyond ``limit``, owned by ``user`` (an account name, or a
    uid such as a container's user without an account on the host) when one is declared."""
    def ok(v: Any) -> bool:
        return (v is not None and v["mode"] is not None and v["mode"] & ~limit == 0
                and (user is None or user in (v["owner"], str(v.get("uid")))))
    return ok


def _pip(ctx: CheckContext) -> dict[str, Any]:
    services = _selected(ctx, "python")
    p = _probes()
    return _per_service(ctx, services, lambda s: ctx.on_host(s.host, p.pip_check, s.python))


def _proxy(ctx: CheckContext) -> dict[str, Any]:
    services = _selected(ctx, "config")
    p = _probes()

    def judge(s: Any) -> Judged:
        m = ctx.on_host(s.host, p.nginx_config, s.config, s.config_prefix)
        want = list(s.proxy_to)
        return Judged(m, ctx.req, "nginx -t ok" + (f", upstream {', '.join(want)}" if want else ""),
                      passes=lambda v: bool(v["syntax_ok"]) and set(want) <= set(v["upstreams"]))
    return _per_service(ctx, services, judge)


def _boot(ctx: CheckContext) -> Measurement | dict[str, Any]:
    services = [s for s in ctx.target.services if s.unit or s.pidfile or s.process]
    if not services:
        return _nothing("unit:, pidfile: or process: (how it is started)")
    p = _probes()
    return _per_service(ctx, services, lambda s: ctx.on_host(s.host, p.boot_start, s.unit, s.pidfile, s.process))


def _starts_again(req: Any, v: Any) -> bool:
    from checks.services.probes import BOOT_STATES, RESTART_POLICIES
    if v["manager"] == "systemd":
        return v["state"] in BOOT_STATES
    return v["restart"] in RESTART_POLICIES


def _updates(ctx: CheckContext) -> dict[str, Any]:
    hosts = sorted({s.host for s in ctx.target.services} or {h.name for h in ctx.target.hosts})
    if not hosts:
        raise NotApplicable("the target declares no hosts")
    p = _probes()
    req = ctx.req

    def judge(host: str) -> Judged | Measurement:
        m = ctx.on_host(host, p.security_updates)
        if m.ok and m.value["lists_age_s"] > req.apt_lists_max_age:
            return Measurement.failed(
                f"the package lists are {m.value['lists_age_s'] / 86400:.1f} days old (apt_lists_max_age "
                f"{req.apt_lists_max_age / 86400:g} d): run apt-get update on the host (golive never does); "
                "what is pending cannot be known from them", m.evidence)
        return Judged(m, req, _window_text(req), passes=lambda v: not _overdue(req, v))
    return {host: judge(host) for host in hosts}


def _reboot(ctx: CheckContext) -> dict[str, Any]:
    hosts = sorted({s.host for s in ctx.target.services} or {h.name for h in ctx.target.hosts})
    if not hosts:
        raise NotApplicable("the target declares no hosts")
    p = _probes()
    return {host: ctx.on_host(host, p.reboot_required) for host in hosts}


def _window_text(req: Any) -> str:
    return ("no security update pending" if req.security_window is None else
            f"no security update pending longer than {req.security_window / 86400:g} d")


def _overdue(req: Any, value: Any) -> list[str]:
    """Pending security updates beyond the window; one without a date is beyond any window."""
    import time
    return [p["package"] for p in value["pending"]
            if p["since"] is None or req.security_window is None or time.time() - p["since"] > req.security_window]


FAMILY = Family(
    name="services",
    title="services as they run: process, account, workers, ports, environment, secret files, proxy",
    feature="services.feature",
    profile_block=ServicesReq,
    checks=(
        Check(id="services.process", title="Each declared service is running", severity=Severity.CRITICAL,
              refs=("DS-OPS-03", "ST-SYS-04", "AW-MU-SW-02"), applies=when_flag("process"),
              measures="the master process from the service's pidfile, systemd unit or pgrep pattern",
              measure=_process, expected="running", passes=lambda req, v: v["pid"] is not None,
              remediation=lambda req, m: f"start {m.evidence.subject}'s service (and enable it at boot)"),
        Check(id="services.non_root", title="Services run as their own non-root account", severity=Severity.HIGH,
              refs=("ST-AUTH-03", "ST-SYS-04"), applies=when_flag("non_root"),
              measures="the account of the service's master process (ps -o user=)", measure=_non_root,
              expected="the declared account, not root",
              remediation="run the service as its own unprivileged account (systemd User=, gunicorn --user)"),
        Check(id="services.workers", title="Each service runs its configured workers", severity=Severity.MEDIUM,
              refs=("DS-OPS-03", "ST-SYS-04"), applies=when_flag("workers"),
              measures="the child processes of the service's master (pgrep -P)", measure=_workers,
              expected="the configured number of workers",
              remediation="set the worker count (gunicorn -w / --workers, uvicorn --workers) and restart"),
        Check(id="services.port_owner", title="Each service holds its own port", severity=Severity.HIGH,
              refs=("ST-OPS-03",), applies=when_flag("port_owner"),
              measures="the processes listening on the service's port (ss -ltnp) against the master and its workers",
              measure=_port_owner, expected="held by the service",
              remediation="stop the process that holds the service's port, or move one of them"),
        Check(id="services.env", title="Services have the environment variables they need",
              severity=Severity.HIGH, refs=("DS-AUTH-02", "ST-AUTH-05", "AW-AUTH-01"), applies=when_flag("env"),
              measures="the NAMES in /proc/PID/environ of the master (values are cut off on the host)",
              measure=_env, expected="the declared variable names",
              remediation="set the missing variables in the unit's Environment=/EnvironmentFile= (or the .env) "
                          "and restart",
              verify_hint="read the environment as root or the service's account (target host sudo: true)"),
        Check(id="services.secret_files", title="Secret files are private to the service's account",
              severity=Severity.HIGH, refs=("ST-AUTH-04", "VO-AUTH-01"), applies=when_flag("secret_files"),
              measures="owner and permission bits of each declared secret file (stat)", measure=_files,
              expected="owned by the service's account, mode <= 0640",
              remediation="chown the file to the service's account and chmod 600 (or 640)"),
        Check(id="services.pip_check", title="The Python environment has no broken requirements",
              severity=Severity.MEDIUM, refs=("DS-OPS-02",), applies=when_flag("pip_check"),
              measures="python -m pip check in the service's interpreter", measure=_pip,
              expected="no broken requirements", passes=lambda req, problems: not problems,
              remediation="install the missing or conflicting requirements (pip install -r requirements.txt) "
                          "and run pip check again"),
        Check(id="services.proxy", title="The reverse proxy configuration is valid and points at the app",
              severity=Severity.HIGH, refs=("DS-OPS-03", "AW-MU-SW-02"), applies=when_flag("proxy"),
              measures="nginx -t of the proxy's configuration and its proxy_pass / upstream servers",
              measure=_proxy, expected="nginx -t ok, upstream to the application",
              remediation="fix the configuration (nginx -t shows the error) and point proxy_pass at the app's port"),
        Check(id="services.boot_start", title="Services start at boot or are restarted by their manager",
              severity=Severity.HIGH, refs=("DS-OPS-05",), applies=when_flag("boot_start"),
              measures="systemctl is-enabled of the service's unit (host running systemd), else the restart "
                       "policy of the process manager above its master process",
              measure=_boot, passes=_starts_again,
              expected="unit enabled at boot, or a restart policy (always, unless-stopped, on-failure)",
              remediation="systemctl enable UNIT (WantedBy=multi-user.target), or give the service a restart "
                          "policy (Restart=always, restart: always)"),
        Check(id="services.security_updates", title="No security updates are left pending",
              severity=Severity.HIGH, refs=("DS-HTTP-03",), applies=when_flag("security_updates"),
              measures="the security updates apt would install now (apt-get -s dist-upgrade, read-only, "
                       "origins *-security) on each service host",
              measure=_updates, expected=_window_text,
              remediation="install the pending security updates (apt-get upgrade) within the window; "
                          "unattended-upgrades keeps them from piling up"),
        Check(id="services.reboot_required", title="No installed update waits for a reboot",
              severity=Severity.MEDIUM, refs=("DS-HTTP-03",), applies=when_flag("reboot_required"),
              measures="the reboot-required flag that Debian and Ubuntu packages set (/var/run/reboot-required "
                       "and the packages it names) on each service host",
              measure=_reboot, expected="no reboot pending", passes=lambda req, v: not v["required"],
              remediation="reboot the host in a maintenance window so the updated kernel and libraries run"),
    ),
)
