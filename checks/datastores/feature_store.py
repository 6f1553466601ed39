"""A feature store file (STRV's ``features.h5``: HDF5 with the image feature vectors and the
image paths) on the host that serves it, read over that host's connection
(``checks.connection.run``), bounded in time, read-only:

- ``stat`` of the file (type, owner name and uid, group, mode, size);
- whether the service user can read it: ``test -r`` run as that user (directly when the
  connection is that user; ``setpriv`` as root, which also takes a bare uid -- a container's
  user often has no account on the host; else ``sudo -n -u``);
- the file's contents, read by :mod:`checks.datastores.feature_store_reader` run with the
  host's own Python (the file is read where it lives, with the h5py the application uses
  there): opens as HDF5, the vectors' dataset and its dimension, the image paths' dataset,
  and whether a sample of the stored image paths exists on the host's storage.

:func:`inspect` returns one :class:`~golive.model.Measurement` holding every fact; the
family's three checks judge parts of it.
"""
from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from checks.connection import ProbeError, describe, redact, run, tool
from golive.model import Evidence, Measurement

PROBE = "datastores.feature_store"

_READABLE = """
f={p}; u={u}
if [ "$(id -u)" = "$u" ] || [ "$(id -un)" = "$u" ]; then how=self; r() {{ test -r "$f"; }}
elif [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  how=setpriv; g=$(id -g "$u" 2>/dev/null || echo "$u")
  r() {{ setpriv --reuid="$u" --regid="$g" --clear-groups test -r "$f"; }}
elif command -v sudo >/dev/null 2>&1 && sudo -n -u "$u" true 2>/dev/null; then how=sudo; r() {{ sudo -n -u "$u" test -r "$f"; }}
else echo how=none; exit 0; fi
echo "how=$how"; if r; then echo read=yes; else echo read=no; fi
"""


def _ev(host: Any, path: str, method: str, started: float, data: dict[str, Any], subject: str | None,
        raw: str = "") -> Evidence:
    return Evidence(probe=PROBE, subject=f"{subject or describe(host)}:{path}", method=method, tool=tool(host),
                    raw=redact(raw[-400:]), duration_s=round(time.monotonic() - started, 3), data=data)


def _reader_source() -> str:
    return Path(__file__).with_name("feature_store_reader.py").read_text(encoding="utf-8")


def summary(value: dict[str, Any]) -> str:
    """One line a person reads: what the file is."""
    path = value.get("path", "?")
    if not value.get("exists"):
        return f"{path} does not exist"
    head = f"{path}: {value.get('owner')}:{value.get('group')} mode {value.get('mode')}, {value.get('size')} bytes"
    if not value.get("hdf5"):
        return f"{head}; not HDF5 ({value.get('error') or 'no HDF5 signature'})"
    vec = (f"{value.get('features')} {value.get('count')} x {value.get('dimension')}" if value.get("features")
           else "no vectors dataset")
    return f"{head}; HDF5, {vec}"


def inspect(host: Any, path: str, user: str, features: str = "features", paths: str = "image_paths",
            sample: int = 20, image_root: str | None = None, python: str = "python3", min_timeout_s: float = 30.0,
            *, timeout_s: float = 10.0, subject: str | None = None) -> Measurement:
    """The facts of the feature store file at ``path`` on ``host`` (see the module docstring).

    Value: ``{"path", "exists"}`` when the file is missing; otherwise also ``type``,
    ``owner``, ``uid``, ``group``, ``mode`` ("0640"), ``size``, ``user``, ``readable_by_user``,
    ``hdf5``, ``datasets``, ``features``, ``count``, ``dimension``, ``paths``,
    ``paths_count``, ``sampled``, ``missing_count``, ``missing`` (the first ones).
    Could not verify (``Measurement.failed``): the host does not answer, the connection user
    may not stat or read the file, no Python or no h5py on the host, no way to act as the
    service user.  Each command is bounded by the larger of ``timeout_s`` (the host's) and
    ``min_timeout_s`` (the target's, for large files)."""
    started = time.monotonic()
    timeout_s = max(timeout_s, min_timeout_s)
    method = (f"stat -c '%F|%U|%u|%G|%a|%s' {path}; test -r as {user}; {python} with h5py opens it read-only "
              f"(datasets, vectors' dimension, {sample} sampled image paths tested with os.path.isfile)")
    data: dict[str, Any] = {}
    q = shlex.quote(path)
    try:
        st = run(host, f"LC_ALL=C stat -c '%F|%U|%u|%G|%a|%s' {q}", timeout_s=timeout_s)
        if st.rc != 0:
            err = st.stderr.strip()
            if "No such file" in err:
                gone: dict[str, Any] = {"path": path, "exists": False}
                return Measurement(gone, summary(gone), _ev(host, path, method, started, gone, subject, err))
            return Measurement.failed(f"stat {path}: {err[-200:] or f'exit {st.rc}'}",
                                      _ev(host, path, method, started, data, subject, err))
        kind, owner, uid, group, mode, size = st.stdout.strip().split("|")
        value: dict[str, Any] = {"path": path, "exists": True, "type": kind, "owner": owner, "uid": int(uid),
                                 "group": group, "mode": f"{int(mode, 8):04o}", "size": int(size), "user": user}
        rd = run(host, _READABLE.format(p=q, u=shlex.quote(user)), timeout_s=timeout_s)
        facts = dict(line.split("=", 1) for line in rd.stdout.split() if "=" in line)
        data["read_as"] = facts.get("how")
        if facts.get("how") in (None, "none"):
            return Measurement.failed(f"cannot act as {user} on the host to test that it can read {path}: connect "
                                      f"as {user} or as root, or allow sudo -n -u {user}",
                                      _ev(host, path, method, started, data, subject, rd.stdout + rd.stderr))
        value["readable_by_user"] = facts.get("read") == "yes"
        argv = [path, features, paths, str(sample), image_root or ""]
        cmd = f"{shlex.quote(python)} -c {shlex.quote(_reader_source())} " + " ".join(shlex.quote(a) for a in argv)
        rr = run(host, cmd, timeout_s=timeout_s)
    except ProbeError as exc:
        return Measurement.failed(exc.reason, _ev(host, path, method, started, data, subject))
    raw = rr.stdout.strip()
    try:
        read = json.loads(raw.splitlines()[-1]) if raw else None
    except ValueError:
        read = None
    if not isinstance(read, dict):
        why = (rr.stderr.strip() or raw)[-300:] or f"exit {rr.rc}"
        if rr.rc == 127:
            why = f"{python} not found on the host"
        return Measurement.failed(f"could not read {path} with {python}: {why}",
                                  _ev(host, path, method, started, data, subject, rr.stderr))
    if read.get("h5py_missing"):
        return Measurement.failed(f"{python} on the host has no h5py ({read['h5py_missing']}): install it where the "
                                  "application runs (pip install h5py / apt-get install python3-h5py) or name "
                                  "the application's interpreter (datastores.feature_store.python)",
                                  _ev(host, path, method, started, data, subject, raw))
    err = str(read.get("error") or "")
    if "Permission denied" in err or "errno = 13" in err:
        return Measurement.failed(f"the connection user may not read {path}: {err[-200:]}",
                                  _ev(host, path, method, started, data, subject, raw))
    value.update({k: v for k, v in read.items() if k not in ("path", "exists")})
    data.update(value)
    return Measurement(value, summary(value), _ev(host, path, method, started, data, subject, raw))
