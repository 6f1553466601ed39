"""Host log probes, run over the host's testinfra connection (``ctx.on_host``).

Each takes the testinfra host first and plain values after, runs bounded commands through
:func:`checks.connection.run` and returns a :class:`~golive.model.Measurement`.  A log
source is a path or shell glob on the host (no spaces in a glob) or ``journald:UNIT``.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections import Counter
from typing import Any

from testinfra.host import Host

from checks import connection
from checks.connection import ProbeError
from golive.model import Evidence, Measurement

JOURNALD = "journald:"
DEBUG_LEVELS = frozenset({"debug", "trace", "verbose", "all", "finest", "finer", "fine"})
_LEVEL_KEYS = ("level", "levelname", "severity", "log.level", "lvl")


def _word(path: str) -> str:
    """A path for the shell: quoted, unless it is a glob the shell must expand."""
    return path if any(c in path for c in "*?[") else shlex.quote(path)


def _ev(probe: str, host: Host, subject: str, method: str, raw: str = "", data: dict[str, Any] | None = None
        ) -> Evidence:
    return Evidence(probe=probe, subject=f"{connection.describe(host)} {subject}", method=method,
                    tool=connection.tool(host), raw=connection.redact(raw)[:600], data=data or {})


def newest_write(host: Host, sources: list[str], *, subject: str = "", timeout_s: float = 10) -> Measurement:
    """Seconds since the newest write to any of ``sources`` (file mtime against the host's
    clock; journald: the unit's newest entry).  None: no file exists / no entry."""
    files = [s for s in sources if not s.startswith(JOURNALD)]
    units = [s[len(JOURNALD):] for s in sources if s.startswith(JOURNALD)]
    parts = ["date +%s"]
    if files:
        parts.append(f"stat -c '%Y %n' -- {' '.join(_word(f) for f in files)} 2>/dev/null")
    for u in units:
        parts.append(f"echo \"journald {shlex.quote(u)} $(journalctl -u {shlex.quote(u)} -n 1 -o short-unix "
                     f"--no-pager -q 2>/dev/null | head -n 1 | cut -d' ' -f1)\"")
    cmd = "; ".join(parts) + "; true"
    method = f"`{cmd}` on the host"
    subject = ", ".join(sources) if not subject else f"{subject}: {', '.join(sources)}"
    try:
        res = connection.run(host, cmd, timeout_s=timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("monitoring.log_age", host, subject, method))
    lines = res.stdout.strip().splitlines()
    try:
        now = float(lines[0])
    except (IndexError, ValueError):
        return Measurement.failed(f"no clock reading from the host: {res.stdout[:100]!r} {res.stderr[:100]!r}",
                                  _ev("monitoring.log_age", host, subject, method, res.stdout))
    writes: dict[str, float] = {}
    for line in lines[1:]:
        if line.startswith("journald "):
            _, unit, stamp = ([*line.split(" ", 2), ""])[:3]
            if stamp.strip():
                try:
                    writes[JOURNALD + unit] = float(stamp)
                except ValueError:
                    continue
            continue
        stamp, _, name = line.partition(" ")
        try:
            writes[name] = float(stamp)
        except ValueError:
            continue
    data = {"sources": sources, "host_time": now, "writes": writes}
    if not writes:
        return Measurement(None, f"no log found ({subject})", _ev("monitoring.log_age", host, subject, method,
                                                                  res.stdout, data), unit="s")
    name, newest = max(writes.items(), key=lambda kv: kv[1])
    age = max(0.0, now - newest)
    data["newest"] = name
    return Measurement(round(age, 1), f"{name} last written {age:.0f} s ago",
                       _ev("monitoring.log_age", host, subject, method, res.stdout, data), unit="s")


def _level(obj: dict[str, Any]) -> str | None:
    for key in _LEVEL_KEYS:
        cur: Any = obj
        for part in key.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(cur, str) and cur:
            return cur.lower()
    return None


def last_lines(host: Host, sources: list[str], count: int = 100, *, subject: str = "", timeout_s: float = 10
               ) -> Measurement:
    """The last ``count`` lines of the newest application log: how many parse as a JSON
    object, and the levels they carry.  Value: {lines, json, levels: {level: n}, file}."""
    files = [s for s in sources if not s.startswith(JOURNALD)]
    subject = ", ".join(sources) if not subject else f"{subject}: {', '.join(sources)}"
    if not files:
        return Measurement.failed("only journald sources: their lines are structured by journald; "
                                  "name a log file to check its format",
                                  _ev("monitoring.log_lines", host, subject, "none"))
    # ls -t: the newest file of the globs; tail reads only its end.
    cmd = (f"f=$(ls -1t -- {' '.join(_word(f) for f in files)} 2>/dev/null | head -n 1); "
           f"[ -n \"$f\" ] || exit 3; echo \"$f\"; tail -n {int(count)} -- \"$f\"")
    method = f"`{cmd}` on the host"
    try:
        res = connection.run(host, cmd, timeout_s=timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("monitoring.log_lines", host, subject, method))
    if res.rc == 3:
        return Measurement.failed(f"no log file found ({subject})", _ev("monitoring.log_lines", host, subject, method))
    if res.rc != 0:
        return Measurement.failed(f"reading the log failed (exit {res.rc}): {res.stderr.strip()[:200]}",
                                  _ev("monitoring.log_lines", host, subject, method))
    out = res.stdout.splitlines()
    file, lines = (out[0], [ln for ln in out[1:] if ln.strip()]) if out else ("", [])
    parsed = 0
    levels: Counter[str] = Counter()
    bad: list[str] = []
    for ln in lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            parsed += 1
            lvl = _level(obj)
            if lvl:
                levels[lvl] += 1
        elif len(bad) < 3:
            bad.append(ln[:160])
    value = {"file": file, "lines": len(lines), "json": parsed, "levels": dict(levels)}
    display = (f"{parsed} of {len(lines)} lines of {file} are JSON objects"
               + (f"; levels {', '.join(f'{k}: {v}' for k, v in sorted(levels.items()))}" if levels else ""))
    raw = "not JSON: " + " | ".join(bad) if bad else (lines[-1][:300] if lines else "")
    return Measurement(value, display, _ev("monitoring.log_lines", host, subject, method, raw, value), unit="lines")


def _stanza_patterns(text: str) -> list[tuple[str, list[str]]]:
    """(config file, patterns) of each logrotate stanza in ``text`` (``==> FILE`` headers
    separate the files).  A stanza's patterns are the words before its ``{`` (they may span
    several lines)."""
    out: list[tuple[str, list[str]]] = []
    pending: list[str] = []
    current, depth = "", 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if raw.startswith("==> "):
            current, pending, depth = raw[4:].strip(), [], 0
            continue
        if not line:
            continue
        if depth == 0:
            if "{" in line:
                pending += line.split("{", 1)[0].split()
                if pending:
                    out.append((current, [p.strip('"') for p in pending]))
                pending = []
                depth += 1
                if "}" in line.split("{", 1)[1]:
                    depth -= 1
            elif line.startswith(("/", '"/')) :
                pending += line.split()
            else:
                pending = []
        elif "}" in line:
            depth = max(0, depth - 1)
        elif re.match(r"^(postrotate|prerotate|firstaction|lastaction|preremove)\b", line):
            continue
    return out


def logrotate_coverage(host: Host, sources: list[str], configs: list[str], *, subject: str = "",
                       timeout_s: float = 10) -> Measurement:
    """Whether a logrotate stanza covers each log file of ``sources``: the configuration
    files (and every file in configuration folders) of ``configs`` are read on the host and
    each existing log file is matched against the stanzas' path globs.  Value: {file: "config:
    pattern" or None}."""
    files = [s for s in sources if not s.startswith(JOURNALD)]
    subject = ", ".join(sources) if not subject else f"{subject}: {', '.join(sources)}"
    cmd = ("for f in " + " ".join(shlex.quote(c) for c in configs) + "; do "
           "if [ -d \"$f\" ]; then for g in \"$f\"/*; do [ -f \"$g\" ] && { echo \"==> $g\"; cat -- \"$g\"; }; done; "
           "elif [ -f \"$f\" ]; then echo \"==> $f\"; cat -- \"$f\"; fi; done; echo '==> (files)'; "
           f"ls -1d -- {' '.join(_word(f) for f in files)} 2>/dev/null; true")
    method = f"read logrotate configuration {', '.join(configs)} and list the log files on the host"
    try:
        res = connection.run(host, cmd, timeout_s=timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("monitoring.rotation", host, subject, method))
    conf_text, _, listing = res.stdout.rpartition("==> (files)\n")
    existing = [ln.strip() for ln in listing.splitlines() if ln.strip()]
    stanzas = _stanza_patterns(conf_text)
    covered: dict[str, str | None] = {}
    for f in existing:
        covered[f] = next((f"{conf}: {p}" for conf, pats in stanzas for p in pats if fnmatch.fnmatchcase(f, p)), None)
    data = {"configs": configs, "stanzas": [{"config": c, "patterns": p} for c, p in stanzas], "files": covered}
    if not existing:
        return Measurement.failed(f"no log file found ({subject})", _ev("monitoring.rotation", host, subject, method,
                                                                        res.stdout, data))
    missing = [f for f, c in covered.items() if c is None]
    display = (f"not rotated: {', '.join(missing)} (no logrotate stanza in {', '.join(configs)} covers it)" if missing
               else "rotated: " + "; ".join(f"{f} by {c}" for f, c in covered.items()))
    raw = "; ".join(f"{c}: {' '.join(p)}" for c, p in stanzas) or "no logrotate stanza found"
    return Measurement(covered, display, _ev("monitoring.rotation", host, subject, method, raw, data), unit="files")


def declared_level(host: Host, path: str, pattern: str, *, subject: str = "", timeout_s: float = 10) -> Measurement:
    """The log level a configuration file on the host declares: the first match of
    ``pattern``'s group 1 (e.g. ``LOG_LEVEL=(\\w+)``) in ``path``."""
    cmd = f"cat -- {shlex.quote(path)}"
    method = f"`{cmd}` on the host, level = group 1 of /{pattern}/"
    try:
        res = connection.run(host, cmd, timeout_s=timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev("monitoring.log_level", host, path, method))
    if res.rc != 0:
        return Measurement.failed(f"cannot read {path}: {res.stderr.strip()[:200]}",
                                  _ev("monitoring.log_level", host, path, method))
    m = re.search(pattern, res.stdout, re.MULTILINE)
    if not m or not m.groups():
        return Measurement.failed(f"/{pattern}/ does not match in {path}", _ev("monitoring.log_level", host, path,
                                                                               method))
    level = m.group(1).lower()
    return Measurement(level, f"{path} declares level {level}",
                       _ev("monitoring.log_level", host, path, method, m.group(0)), unit="level")
