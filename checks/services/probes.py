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


# Boot start.  With a unit on a host that runs systemd: ``systemctl is-enabled`` (a unit-file
# query that needs no running manager, hence also ``--root`` for an image or chroot).
# Otherwise: the process manager that is the master's parent, and its restart policy.
_BOOT = r"""
unit={unit}
root={root}
if [ -n "$unit" ]; then
  if [ -n "$root" ] || [ -d /run/systemd/system ]; then
    if [ -n "$root" ]; then out=$(systemctl --root="$root" is-enabled -- "$unit" 2>&1); rc=$?
    else out=$(systemctl is-enabled -- "$unit" 2>&1); rc=$?
         echo "RESTART $(systemctl show -p Restart --value -- "$unit" 2>/dev/null)"
    fi
    echo "ENABLED $rc $(printf '%s' "$out" | head -3 | tr '\n' ' ')"
    exit 0
  fi
  echo "NOSYSTEMD"
fi
pid=''
what={what}
{find}
case "$pid" in ''|0|*[!0-9]*) echo "NOPROC $what"; exit 0;; esac
[ -d "/proc/$pid" ] || {{ echo "NOPROC pid $pid is not running"; exit 0; }}
p=$pid; i=0
while [ $i -lt 4 ]; do
  pp=$(ps -o ppid= -p "$p" | tr -d ' ')
  case "$pp" in ''|0|1|*[!0-9]*) break;; esac
  echo "ANC$i $pp $(cat "/proc/$pp/comm" 2>/dev/null)"
  tr '\000' '\n' < "/proc/$pp/cmdline" 2>/dev/null | head -60 | cut -c1-300 | sed "s/^/ARG$i /"
  p=$pp; i=$((i+1))
done
"""

#: ``systemctl is-enabled`` states that mean "started at boot" (generated: units made by a
#: generator from fstab or an init script, started like enabled ones)
BOOT_STATES = ("enabled", "generated")
#: restart policies of a supervisor that bring a service back (compose/Docker, systemd names)
RESTART_POLICIES = ("always", "unless-stopped", "on-failure", "on-abnormal", "on-abort", "on-watchdog")
_IS_ENABLED_STATES = ("enabled", "enabled-runtime", "linked", "linked-runtime", "alias", "masked",
                      "masked-runtime", "static", "indirect", "disabled", "generated", "transient", "bad",
                      "not-found")  # newer systemd prints not-found itself


def boot_start(host: Any, unit: str | None, pidfile: str | None, process: str | None, root: str | None = None, *,
               subject: str | None = None, timeout_s: float = 10) -> Measurement:
    """Whether the service is brought up without a person: for a systemd ``unit`` (host
    running systemd, or ``root`` an offline unit tree) the ``systemctl is-enabled`` state
    (enabled, disabled, static, masked, not-found...) and the unit's ``Restart=``;
    otherwise the restart policy of the process manager that is the master's parent (the
    lab's supervisor: its ``--restart``).  Value: {"manager", "state", "restart"}."""
    find, what = ("", "") if unit and not (pidfile or process) else _finder(pidfile, None, process)
    script = _BOOT.format(unit=shlex.quote(unit or ""), root=shlex.quote(root or ""), find=find,
                          what=shlex.quote(what))
    method = (f"systemctl{' --root=' + root if root else ''} is-enabled {unit}; systemctl show -p Restart"
              if unit else "the restart policy of the master's parent process manager (/proc/PPID/cmdline)")
    ev = Evidence(probe="services.boot_start", subject=subject or "", method=method, tool=tool(host))
    try:
        res = run(host, f"sh -c {shlex.quote(script)}", timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=method, tool=ev.tool, raw=res.stdout[:1500])
    lines = res.stdout.splitlines()
    tags = {line.partition(" ")[0]: line.partition(" ")[2] for line in lines}
    if "ENABLED" in tags:
        rc, _, out = tags["ENABLED"].partition(" ")
        first = out.split()[0] if out.split() else ""
        if first in _IS_ENABLED_STATES:
            state = first
        elif "No such file" in out or "not found" in out.lower():
            state = "not-found"
        else:
            return Measurement.failed(f"systemctl is-enabled {unit} answered (exit {rc}): {out.strip()[:200]}", ev)
        restart = tags.get("RESTART", "").strip() or None
        value = {"manager": "systemd", "state": state, "restart": restart}
        return Measurement(value, f"{unit}: {state}" + (f" (Restart={restart})" if restart else ""), ev)
    no_systemd = "NOSYSTEMD" in tags
    if no_systemd and not (pidfile or process):
        return Measurement.failed(f"unit {unit}: the host does not run systemd (no /run/systemd/system), so "
                                  "nothing starts the unit at boot; declare pidfile: or process: instead so "
                                  "the restart policy of the manager that runs it can be read", ev)
    if "NOPROC" in tags:
        return Measurement.failed(f"no process to ask its manager about: {tags['NOPROC'] or 'not running'}", ev)
    # the manager may sit a few levels up (runuser, sh -c, an init shim between them)
    parents = [tags[f"ANC{i}"] for i in range(4) if f"ANC{i}" in tags]
    manager = None
    for i in range(len(parents)):
        manager = _supervisor([line.partition(" ")[2] for line in lines if line.startswith(f"ARG{i} ")])
        if manager is not None:
            break
    if manager is None:
        chain = " <- ".join(f"{a.partition(' ')[2] or '?'}[{a.partition(' ')[0]}]" for a in parents) or "init"
        return Measurement.failed(
            ("the host does not run systemd and " if no_systemd else "")
            + f"no process manager golive reads (systemd unit, lab.supervisor) runs the service (parents: {chain}); "
            "nothing shows it starts again", ev)
    name, restart = manager
    value = {"manager": name, "state": None, "restart": restart}
    return Measurement(value, f"{name}: restart {restart}", ev)


def _supervisor(argv: list[str]) -> tuple[str, str] | None:
    """(manager, restart policy) from a parent's command line, for the managers golive knows."""
    own = argv[:argv.index("--")] if "--" in argv else argv
    if "lab.supervisor" in own or any(a.endswith("lab/supervisor.py") for a in own):
        policy = "always"  # the supervisor's default (python -m lab.supervisor --help)
        for i, arg in enumerate(own):
            if arg == "--restart" and i + 1 < len(own):
                policy = own[i + 1]
            elif arg.startswith("--restart="):
                policy = arg.split("=", 1)[1]
        return "lab.supervisor", policy
    return None


# Pending security updates (Debian/Ubuntu).  apt only simulates (-s) and never locks, writes
# its cache or fetches: the lists are whatever the host's last ``apt-get update`` left.
_APT = r"""
command -v apt-get >/dev/null 2>&1 || {{ echo "NOAPT $(command -v dnf yum zypper 2>/dev/null | head -1)"; exit 0; }}
eval "$(apt-config {opts} shell LISTS Dir::State::Lists/d)"
echo "LISTS $LISTS"
newest=0
for f in "$LISTS"*_Packages "$LISTS"*_Packages.*; do
  [ -f "$f" ] || continue
  m=$(stat -c %Y "$f"); [ "$m" -gt "$newest" ] && newest=$m
done
echo "NEWEST $newest"
echo "NOW $(date +%s)"
[ "$newest" -gt 0 ] || exit 0
apt-get -s -q {opts} -o Debug::NoLocking=1 -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= dist-upgrade 2>&1
echo "APTRC $?"
"""
_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) (.*?)(?: \[[^\]]*\])?\)")


def security_updates(host: Any, apt_options: list[str] | None = None, *, subject: str | None = None,
                     timeout_s: float = 60) -> Measurement:
    """Security updates the host's package manager would install now: ``apt-get -s
    dist-upgrade`` (simulated, no lock, no cache written, never ``apt-get update``) and the
    packages whose candidate comes from a ``*-security`` origin.  Value: {"pending":
    [{"package", "installed", "candidate", "origin", "since"}], "lists_age_s"}; ``since``
    is None where the package manager does not say when the update appeared (apt).  No
    package lists at all is an error (the host cannot know what is pending)."""
    opts = " ".join(f"-o {shlex.quote(o)}" for o in apt_options or [])
    script = _APT.format(opts=opts)
    method = "apt-get -s dist-upgrade (simulated, read-only; origins *-security)"
    ev = Evidence(probe="services.security_updates", subject=subject or "", method=method, tool=tool(host))
    try:
        res = run(host, f"sh -c {shlex.quote(script)}", timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    out = res.stdout
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=method, tool=ev.tool,
                  raw="\n".join(x for x in out.splitlines() if x.startswith(("Inst ", "LISTS", "NEWEST", "APTRC",
                                                                             "E:", "W:")))[:3000])
    tags = {line.partition(" ")[0]: line.partition(" ")[2].strip() for line in out.splitlines()}
    if "NOAPT" in tags:
        other = tags["NOAPT"] or "no known package manager"
        return Measurement.failed(f"not supported: the host has no apt-get ({other}); golive reads pending "
                                  "security updates through apt only", ev)
    newest, now = int(tags.get("NEWEST", "0") or 0), int(tags.get("NOW", "0") or 0)
    if newest == 0:
        return Measurement.failed(f"no apt package lists in {tags.get('LISTS', '?')} (apt-get update never ran "
                                  "or the lists were cleaned): what is pending cannot be known", ev)
    if tags.get("APTRC", "0") != "0":
        errors = [x for x in out.splitlines() if x.startswith("E:")]
        return Measurement.failed(f"apt-get -s exited {tags.get('APTRC')}: {'; '.join(errors)[:300] or 'no reason'}",
                                  ev)
    pending: list[dict[str, Any]] = []
    for line in out.splitlines():
        m = _INST.match(line)
        if m and "security" in m.group(4).lower():
            pending.append({"package": m.group(1), "installed": m.group(2) or None, "candidate": m.group(3),
                            "origin": m.group(4), "since": None})
    value = {"pending": pending, "lists_age_s": max(0, now - newest)}
    names = ", ".join(str(p["package"]) for p in pending[:10]) + (" ..." if len(pending) > 10 else "")
    shown = f"{len(pending)} pending: {names}" if pending else "none pending"
    return Measurement(value, shown, ev, unit="packages")


def reboot_required(host: Any, flag: str = "/var/run/reboot-required", *, subject: str | None = None,
                    timeout_s: float = 10) -> Measurement:
    """Whether installed updates wait for a reboot: Debian's and Ubuntu's flag file (written
    by the packages' hooks, e.g. a new kernel or libc) and the packages it names
    (``FLAG.pkgs``).  Value: {"required": bool, "packages": [...]}.  A host without the
    flag mechanism (no /var/lib/dpkg) is an error: its absence proves nothing there."""
    q = shlex.quote(flag)
    cmd = (f"[ -d /var/lib/dpkg ] || {{ echo NODPKG; exit 0; }}; "
           f"if [ -e {q} ]; then echo REBOOT; cat {q}.pkgs 2>/dev/null | head -50; else echo NOREBOOT; fi")
    ev = Evidence(probe="services.reboot_required", subject=subject or "", method=f"test -e {flag}; cat {flag}.pkgs",
                  tool=tool(host))
    try:
        res = run(host, f"sh -c {shlex.quote(cmd)}", timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, ev)
    lines = [x.strip() for x in res.stdout.splitlines() if x.strip()]
    ev = Evidence(probe=ev.probe, subject=ev.subject, method=ev.method, tool=ev.tool, raw=res.stdout[:1000])
    if not lines or lines[0] == "NODPKG":
        return Measurement.failed(f"not supported: no dpkg on the host, so no {flag} flag to read", ev)
    if lines[0] == "NOREBOOT":
        return Measurement({"required": False, "packages": []}, "no reboot pending", ev)
    pkgs = sorted(set(lines[1:]))
    return Measurement({"required": True, "packages": pkgs},
                       "reboot pending" + (f" for {', '.join(pkgs[:10])}" if pkgs else ""), ev)
