"""Service probes over a host's testinfra connection: the process behind a service (its
account, workers, environment variable names, the ports it holds), its secret files, its
Python environment (``pip check``) and a reverse proxy's configuration (``nginx -t``).

Every value that reaches golive is a fact about the process, never a secret: the
environment is reduced to variable NAMES on the host itself (``cut -d= -f1``) before
anything is sent back.  All target values are shell-quoted.
"""
from __future__ import annotations

import re
import shlex
from typing import Any

from checks.connection import ProbeError, run, tool
from golive.model import Evidence, Measurement

# One shell script: find the master pid, then print facts, one per line, names only for the
# environment.  Exit status 0 whatever it finds; "NOPROC why" when there is no process.
_FACTS = r"""
pid=''
what={what}
{find}
case "$pid" in ''|0|*[!0-9]*) echo "NOPROC $what"; exit 0;; esac
kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ] || {{ echo "NOPROC pid $pid is not running"; exit 0; }}
echo "PID $pid"
echo "USER $(ps -o user= -p "$pid" | tr -d ' ')"
echo "CHILDREN $(pgrep -P "$pid" | tr '\n' ' ')"
echo "CMD $(tr '\000' ' ' < "/proc/$pid/cmdline" | cut -c1-300)"
if env_names=$(tr '\000' '\n' < "/proc/$pid/environ" 2>/dev/null | cut -d= -f1 | tr '\n' ' '); then
  echo "ENV $env_names"
else
  echo "ENVERR cannot read /proc/$pid/environ (permission denied: connect as root or the service's user, or sudo)"
fi
"""


def _finder(pidfile: str | None, unit: str | None, process: str | None) -> tuple[str, str]:
    if pidfile:
        return f"pid=$(cat {shlex.quote(pidfile)} 2>/dev/null | tr -dc 0-9)", f"no pid in {pidfile}"
    if unit:
        return (f"pid=$(systemctl show -p MainPID --value {shlex.quote(unit)} 2>/dev/null)",
                f"unit {unit} has no main process")
    if process:
        return f"pid=$(pgrep -o -f {shlex.quote(process)})", f"no process matches '{process}'"
    raise ValueError("a service needs pidfile, unit or process to find its process")


def process_facts(host: Any, pidfile: str | None, unit: str | None, process: str | None, *,
                  subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """The service's master process: pid, user, child pids, command line, environment
    variable names.  Value: a dict; ``pid`` None when no process was found (a fact, not an
    error: the service is not running)."""
    try:
        find, what = _finder(pidfile, unit, process)
    except ValueError as exc:
        return Measurement.failed(str(exc), Evidence(probe="services.process", subject=subject or "", method="-"))
    # ``what`` names target values: quoted into a variable, never inside double quotes
    # (where $(...) and backticks would run)
    script = _FACTS.format(find=find, what=shlex.quote(what))
    ev = Evidence(probe="services.process", subject=subject or "", tool=tool(host),
                  method=f"{find}; ps -o user=; pgrep -P; /proc/PID/cmdline; /proc/PID/environ names only "
                         "(cut -d= -f1 on the host)")
    try:
        res = run(host, f"sh -c {shlex.quote(script)}", timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    facts: dict[str, Any] = {"pid": None, "user": None, "children": [], "cmd": "", "env_names": None,
                             "env_error": None, "why": None}
    for line in res.stdout.splitlines():
        key, _, rest = line.partition(" ")
        if key == "NOPROC":
            facts["why"] = rest
        elif key == "PID":
            facts["pid"] = int(rest)
        elif key == "USER":
            facts["user"] = rest.strip() or None
        elif key == "CHILDREN":
            facts["children"] = [int(x) for x in rest.split()]
        elif key == "CMD":
            facts["cmd"] = rest.strip()
        elif key == "ENV":
            facts["env_names"] = sorted(set(rest.split()))
        elif key == "ENVERR":
            facts["env_error"] = rest
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=ev.method, tool=ev.tool,
                  raw="\n".join(x for x in res.stdout.splitlines() if not x.startswith("ENV ")),
                  data={k: facts[k] for k in ("pid", "user", "children")})
    if facts["pid"] is None:
        return Measurement(facts, f"not running ({facts['why'] or 'no process'})", ev)
    return Measurement(facts, f"pid {facts['pid']} as {facts['user']}, {len(facts['children'])} child processes", ev)


def listeners(host: Any, port: int, *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """The processes listening on TCP ``port``: [{"address", "process", "pid"}] from ``ss -ltnpH``."""
    cmd = f"ss -ltnpH 'sport = :{int(port)}'"
    ev = Evidence(probe="services.listeners", subject=subject or "", method=cmd, tool=tool(host))
    try:
        res = run(host, cmd, timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    if res.rc != 0:
        return Measurement.failed(f"ss exited {res.rc}: {res.stderr.strip()[:200]}", ev)
    found = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        owners = re.findall(r'\("([^"]+)",pid=(\d+)', line)
        if not owners:
            found.append({"address": parts[3], "process": None, "pid": None})
        for name, pid in owners:
            found.append({"address": parts[3], "process": name, "pid": int(pid)})
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=cmd, tool=ev.tool, raw=res.stdout[:1000])
    shown = ", ".join(f"{f['address']} {f['process'] or '?'}[{f['pid'] or '?'}]" for f in found)
    return Measurement(found, shown or f"nothing listens on {port}", ev)


def file_modes(host: Any, paths: list[str], *, subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """Owner and permission bits of each file: {path: {"owner", "uid", "mode"}} (mode None:
    missing).  ``owner`` is ``UNKNOWN`` for a uid without an account (a container's user)."""
    cmd = "for f in " + " ".join(shlex.quote(p) for p in paths) + \
          "; do stat -c '%U %u %a %n' \"$f\" 2>/dev/null || echo \"- - - $f\"; done"
    ev = Evidence(probe="services.file_modes", subject=subject or "", method="stat -c '%U %u %a %n' FILE ...",
                  tool=tool(host))
    try:
        res = run(host, cmd, timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    out: dict[str, dict[str, Any]] = {}
    for line in res.stdout.splitlines():
        owner, uid, mode, path = ([*line.split(" ", 3), "", "", "", ""])[:4]
        out[path] = {"owner": None if owner == "-" else owner, "uid": None if uid == "-" else int(uid),
                     "mode": None if mode == "-" else int(mode, 8)}
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=ev.method, tool=ev.tool, raw=res.stdout[:1000])
    shown = "; ".join(f"{p}: " + (f"{v['owner']} {v['mode']:04o}" if v["mode"] is not None else "missing")
                      for p, v in out.items())
    return Measurement(out, shown, ev)


def pip_check(host: Any, python: str, *, subject: str | None = None, timeout_s: float = 60) -> Measurement:
    """``PYTHON -m pip check`` in the app's environment.  Value: the problems pip reports ([] = clean)."""
    cmd = f"{shlex.quote(python)} -m pip check --disable-pip-version-check"
    ev = Evidence(probe="services.pip_check", subject=subject or "", method=cmd, tool=tool(host))
    try:
        res = run(host, cmd, timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=cmd, tool=ev.tool, raw=(res.stdout + res.stderr)[:2000])
    if res.rc == 127 or "No module named pip" in res.stderr:
        return Measurement.failed(f"cannot run pip with {python}: {res.stderr.strip()[:200]}", ev)
    problems = [x for x in res.stdout.splitlines() if x.strip() and not x.startswith("No broken requirements")]
    if res.rc == 0:
        return Measurement([], "no broken requirements", ev)
    return Measurement(problems or [f"pip check exited {res.rc}"], "; ".join(problems[:5]) or f"exit {res.rc}", ev)


def nginx_config(host: Any, config: str, prefix: str | None, *, subject: str | None = None,
                 timeout_s: float = 20) -> Measurement:
    """``nginx -t`` of the configuration, and the upstream addresses it proxies to
    (``proxy_pass http://H:P`` and ``server H:P`` in upstream blocks).  Value:
    {"syntax_ok", "upstreams", "output"}."""
    pre = f" -p {shlex.quote(prefix)}" if prefix else ""
    cmd = f"nginx -t{pre} -c {shlex.quote(config)} 2>&1; echo \"RC $?\"; cat {shlex.quote(config)}"
    ev = Evidence(probe="services.nginx_config", subject=subject or "", method=f"nginx -t{pre} -c {config}; read it",
                  tool=tool(host))
    try:
        res = run(host, cmd, timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    head, _, body = res.stdout.partition("\nRC ")
    rc_line, _, text = body.partition("\n")
    ok = rc_line.strip() == "0"
    ups = sorted(set(re.findall(r"proxy_pass\s+https?://([\w.\-\[\]:]+?)(?:/[^;]*)?;", text))
                 | set(re.findall(r"^\s*server\s+([\w.\-\[\]]+:\d+)", text, flags=re.MULTILINE)))
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=ev.method, tool=ev.tool, raw=head[-1500:])
    value = {"syntax_ok": ok, "upstreams": ups, "output": head.strip()[-300:]}
    return Measurement(value, ("configuration ok" if ok else "nginx -t FAILED") + f"; upstreams {', '.join(ups) or 'none'}",
                       ev)
