"""SQLite as deployed on a single-server host: the database file at its configured path, its
owner and mode, ``PRAGMA integrity_check``, and whether the service user can write it --
all run on the host over its testinfra connection (``checks.connection.run``), bounded in
time.  Nothing is written: integrity is checked on a read-only open, writability with
``test -w`` as the service user.
"""
from __future__ import annotations

import shlex
import time
from typing import Any

from checks.connection import ProbeError, describe, redact, run, tool
from golive.model import Evidence, Measurement


def _ev(probe: str, host: Any, path: str, method: str, started: float, data: dict[str, Any],
        subject: str | None, raw: str = "") -> Evidence:
    return Evidence(probe=probe, subject=f"{subject or describe(host)}:{path}", method=method, tool=tool(host),
                    raw=redact(raw[-400:]), duration_s=round(time.monotonic() - started, 3), data=data)


def file_facts(host: Any, path: str, timeout_s: float = 10.0, subject: str | None = None) -> Measurement:
    """``stat`` of the database file on the host.

    Value: ``{"exists": bool, "type", "owner", "group", "mode": "0640", "size"}`` (only
    ``exists`` when it is missing).  A host that does not answer, or a path the connection
    user may not stat, is ``Measurement.failed``."""
    started = time.monotonic()
    method = f"stat -c '%F|%U|%G|%a|%s' {path}"
    data: dict[str, Any] = {}
    try:
        res = run(host, f"LC_ALL=C stat -c '%F|%U|%G|%a|%s' {shlex.quote(path)}", timeout_s=timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("datastores.sqlite_file", host, path, method, started, data, subject))
    if res.rc != 0:
        err = res.stderr.strip()
        if "No such file" in err:
            data["exists"] = False
            return Measurement({"exists": False}, f"{path} does not exist",
                               _ev("datastores.sqlite_file", host, path, method, started, data, subject, err))
        return Measurement.failed(f"stat {path}: {err[-200:] or f'exit {res.rc}'}",
                                  _ev("datastores.sqlite_file", host, path, method, started, data, subject, err))
    kind, owner, group, mode, size = res.stdout.strip().split("|")
    value = {"exists": True, "type": kind, "owner": owner, "group": group, "mode": f"{int(mode, 8):04o}",
             "size": int(size)}
    data.update(value)
    display = f"{path}: {kind}, {owner}:{group}, mode {value['mode']}, {size} bytes"
    return Measurement(value, display, _ev("datastores.sqlite_file", host, path, method, started, data, subject, res.stdout))


_INTEGRITY = """
if command -v sqlite3 >/dev/null 2>&1; then
  echo 'tool=sqlite3'; sqlite3 -readonly {p} 'PRAGMA integrity_check;' 2>&1; echo "rc=$?"
elif command -v python3 >/dev/null 2>&1; then
  echo 'tool=python3'
  python3 -c 'import sqlite3,sys
try:
    c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
    print("\\n".join(r[0] for r in c.execute("PRAGMA integrity_check")))
except sqlite3.Error as e:
    print("Error:", e); sys.exit(1)' {p} 2>&1; echo "rc=$?"
else
  echo 'tool=none'; echo 'rc=9'
fi
"""


def integrity(host: Any, path: str, timeout_s: float = 60.0, subject: str | None = None) -> Measurement:
    """``PRAGMA integrity_check`` on a read-only open of the file, on the host (sqlite3 CLI,
    else python3's sqlite3).  Value: ``"ok"`` or the first problems SQLite reports
    (``"file is not a database"`` included).  No tool on the host, a file that cannot be
    opened (permission, missing) or a host that does not answer: ``Measurement.failed``."""
    started = time.monotonic()
    method = f"sqlite3 -readonly {path} 'PRAGMA integrity_check;' (on the host)"
    data: dict[str, Any] = {}
    try:
        res = run(host, _INTEGRITY.format(p=shlex.quote(path)), timeout_s=max(timeout_s, 60.0))
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("datastores.sqlite_integrity", host, path, method, started, data, subject))
    lines = res.stdout.strip().splitlines()
    used = lines[0].removeprefix("tool=") if lines else "?"
    rc_line = lines[-1] if lines else ""
    body = [ln for ln in lines[1:-1] if ln.strip()]
    data.update(tool=used, exit_status=rc_line.removeprefix("rc="))
    ev = _ev("datastores.sqlite_integrity", host, path, method, started, data, subject, res.stdout)
    if used == "none":
        return Measurement.failed("neither sqlite3 nor python3 is installed on the host", ev)
    text = "\n".join(body)
    if "unable to open" in text or "readonly database" in text or "authorization denied" in text:
        return Measurement.failed(f"cannot open {path}: {body[-1][-200:]}", ev)
    if rc_line == "rc=0" and body == ["ok"]:
        return Measurement("ok", "integrity_check: ok", ev)
    problems = [ln.removeprefix("Error: ").removeprefix("Parse error: ").removeprefix("Runtime error: ")
                for ln in body[:5]] or [f"exit {rc_line.removeprefix('rc=')}"]
    problems = [p.removeprefix("in prepare, ").strip() for p in problems]
    return Measurement("; ".join(problems), f"integrity_check: {'; '.join(problems)[:300]}", ev)


_WRITABLE = """
f={p}; d=$(dirname -- "$f"); u={u}
if [ "$(id -un)" = "$u" ]; then how=self; w() {{ test -w "$1"; }}
elif [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1; then how=runuser; w() {{ runuser -u "$u" -- test -w "$1"; }}
elif command -v sudo >/dev/null 2>&1 && sudo -n -u "$u" true 2>/dev/null; then how=sudo; w() {{ sudo -n -u "$u" test -w "$1"; }}
else echo "how=none"; exit 0; fi
id -u "$u" >/dev/null 2>&1 || {{ echo "how=nouser"; exit 0; }}
echo "how=$how"; if w "$f"; then echo file=yes; else echo file=no; fi; if w "$d"; then echo dir=yes; else echo dir=no; fi
"""


def writable(host: Any, path: str, user: str, timeout_s: float = 10.0, subject: str | None = None) -> Measurement:
    """Can ``user`` (the service user) write the database file and its folder (SQLite
    writes its journal beside the file)?  ``test -w`` run as that user on the host: directly
    when the connection is that user, else ``runuser`` (root) or ``sudo -n -u``.

    Value: ``{"file": bool, "dir": bool, "as": user}``.  No way to act as the user, or an
    unknown user, is ``Measurement.failed``."""
    started = time.monotonic()
    method = f"test -w {path} && test -w $(dirname {path}), as {user} (on the host)"
    data: dict[str, Any] = {"as": user}
    try:
        res = run(host, _WRITABLE.format(p=shlex.quote(path), u=shlex.quote(user)), timeout_s=timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("datastores.sqlite_writable", host, path, method, started, data, subject))
    facts = dict(line.split("=", 1) for line in res.stdout.split() if "=" in line)
    data.update(facts)
    ev = _ev("datastores.sqlite_writable", host, path, method, started, data, subject, res.stdout)
    if facts.get("how") == "none":
        return Measurement.failed(f"cannot act as {user} on the host: connect as {user} or as root, "
                                  f"or allow sudo -n -u {user}", ev)
    if facts.get("how") == "nouser":
        return Measurement.failed(f"there is no user {user} on the host", ev)
    if "file" not in facts or "dir" not in facts:
        return Measurement.failed(f"no answer from test -w: {(res.stdout + res.stderr).strip()[-200:]}", ev)
    value = {"file": facts["file"] == "yes", "dir": facts["dir"] == "yes", "as": user}
    display = (f"{user} can {'write' if value['file'] else 'NOT write'} {path} and "
               f"{'write' if value['dir'] else 'NOT write'} its folder (journal)")
    return Measurement(value, display, ev)
