"""Host inventories golive did not write: Ansible inventories (INI or YAML) and OpenSSH
client configs, read into plain host records.

No Ansible installation is needed or used: the inventory formats are parsed here, with the
parts of Ansible's semantics that say *where a host is and how to log in*:

- groups (``[web]``, ``[prod:children]``, YAML ``children:``) -- every group a host belongs
  to, directly or through parents, except ``all`` and ``ungrouped``, becomes a role;
- host ranges (``web[01:20].example.com``, ``db-[a:c]``, with an optional stride);
- variables from ``[group:vars]``, YAML ``vars:``, inline host variables, and the
  ``group_vars/`` and ``host_vars/`` folders next to the inventory, with Ansible's
  precedence (``all`` < parent groups < child groups, ``ansible_group_priority`` breaking
  ties, < host variables; each inventory level < its ``*_vars/`` file);
- the variables honoured: ``ansible_host``, ``ansible_port``, ``ansible_user`` (and their
  ``ansible_ssh_*`` spellings), ``ansible_connection`` (ssh, smart, paramiko, local,
  docker), ``ansible_ssh_private_key_file``, ``ansible_become``, and golive's own
  ``golive_data_path`` and ``golive_timeout_s``.  Passwords (``ansible_password``,
  ``ansible_become_password``...) are never read: golive logs in with keys only.  A
  honoured value that is a Jinja template (``{{ ... }}``) is an error: it is not
  evaluated here.  Vault-encrypted files are skipped.

An ssh_config gives one host per concrete ``Host`` name (patterns with ``*``, ``?`` or
``!`` are settings, not hosts), following ``Include``.  ssh itself resolves the rest
(``ssh -G``, which reads the file and connects nowhere): names that resolve to the same
user, address and port are one host (``Host web1 web1.example.com``), the first name kept.

Everything that is wrong in such a file is an :class:`InventoryError` naming the file and
line.  Nothing here talks to a host.
"""
from __future__ import annotations

import ast
import dataclasses
import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import yaml

__all__ = ["InventoryError", "SourceHost", "expand_range", "read_ansible", "read_ssh_config"]


class InventoryError(Exception):
    """An inventory file is wrong; ``path``/``line`` say where, ``fix`` what to do."""

    def __init__(self, path: Path | str, line: int | None, problem: str, fix: str = "") -> None:
        self.path, self.line, self.problem, self.fix = str(path), line, problem, fix
        super().__init__(f"{self.path}:{line}: {problem}" if line else f"{self.path}: {problem}")


@dataclasses.dataclass(frozen=True)
class SourceHost:
    """One host as an inventory describes it.  ``connection`` is a testinfra URI;
    ``origin`` is ``file:line`` of its definition."""

    name: str
    connection: str
    groups: tuple[str, ...] = ()
    identity_file: str | None = None
    ssh_config: str | None = None
    sudo: bool | None = None
    data_path: str | None = None
    timeout_s: float | None = None
    path: str = ""
    line: int | None = None

    @property
    def origin(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


# ----------------------------------------------------------------------------- host ranges

_RANGE = re.compile(r"\[([^\]\[]+)\]")


def expand_range(pattern: str) -> list[str]:
    """Ansible host ranges: ``web[01:03]`` -> web01, web02, web03; ``db-[a:c]``; a third
    field is the stride (``[0:10:5]``).  Several ranges multiply out.  A name without
    brackets is returned as it is.  Raises ValueError for a malformed range."""
    m = _RANGE.search(pattern)
    if m is None:
        return [pattern]
    parts = m.group(1).split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"'{m.group(0)}' is not a range like [01:20] or [a:f]")
    start, end = parts[0], parts[1]
    stride = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    if stride < 1:
        raise ValueError(f"stride in '{m.group(0)}' must be a positive number")
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        if int(start) > int(end):
            raise ValueError(f"range '{m.group(0)}' starts after it ends")
        items = [str(i).zfill(width) for i in range(int(start), int(end) + 1, stride)]
    elif len(start) == 1 and len(end) == 1 and start in string.ascii_letters and end in string.ascii_letters:
        if ord(start) > ord(end):
            raise ValueError(f"range '{m.group(0)}' starts after it ends")
        items = [chr(c) for c in range(ord(start), ord(end) + 1, stride)]
    else:
        raise ValueError(f"'{m.group(0)}' is not a numeric or alphabetic range")
    head, tail = pattern[: m.start()], pattern[m.end():]
    return [name for item in items for name in expand_range(head + item + tail)]


# ----------------------------------------------------------------------------- Ansible model

@dataclasses.dataclass
class _Var:
    value: Any
    path: str
    line: int | None


@dataclasses.dataclass
class _Group:
    name: str
    vars: dict[str, _Var] = dataclasses.field(default_factory=dict)
    children: list[str] = dataclasses.field(default_factory=list)
    hosts: list[str] = dataclasses.field(default_factory=list)
    line: int | None = None


@dataclasses.dataclass
class _Host:
    name: str
    vars: dict[str, _Var] = dataclasses.field(default_factory=dict)
    path: str = ""
    line: int | None = None


class _Inventory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.groups: dict[str, _Group] = {"all": _Group("all"), "ungrouped": _Group("ungrouped")}
        self.hosts: dict[str, _Host] = {}

    def group(self, name: str, line: int | None) -> _Group:
        g = self.groups.get(name)
        if g is None:
            g = self.groups[name] = _Group(name, line=line)
        return g

    def add_host(self, pattern: str, group: str, variables: dict[str, _Var], line: int | None) -> None:
        try:
            names = expand_range(pattern)
        except ValueError as exc:
            raise InventoryError(self.path, line, f"host '{pattern}': {exc}") from None
        for name in names:
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = _Host(name, path=str(self.path), line=line)
            host.vars.update(variables)
            g = self.group(group, line)
            if name not in g.hosts:
                g.hosts.append(name)

    # ------------------------------------------------------------ resolution

    def parents(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {name: set() for name in self.groups}
        for g in self.groups.values():
            for child in g.children:
                out.setdefault(child, set()).add(g.name)
        return out

    def depths(self) -> dict[str, int]:
        parents = self.parents()
        depth: dict[str, int] = {}

        def walk(name: str, seen: tuple[str, ...]) -> int:
            if name in depth:
                return depth[name]
            if name in seen:
                g = self.groups[name]
                raise InventoryError(self.path, g.line, f"group '{name}' is its own ancestor",
                                     "remove the loop from the :children sections")
            d = 0 if name == "all" else 1 + max((walk(p, (*seen, name)) for p in parents.get(name, set())), default=0)
            depth[name] = d
            return d

        for name in self.groups:
            walk(name, ())
        return depth

    def groups_of(self, host: str) -> set[str]:
        parents = self.parents()
        direct = {g.name for g in self.groups.values() if host in g.hosts}
        found: set[str] = set()
        stack = list(direct)
        while stack:
            name = stack.pop()
            if name in found:
                continue
            found.add(name)
            stack.extend(parents.get(name, set()))
        found.add("all")
        if direct <= {"all", "ungrouped"} or not direct:
            found.add("ungrouped")
        return found


def _literal(text: str) -> Any:
    """An inline INI host value: a Python literal where it is one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _parse_ini(inv: _Inventory, text: str) -> None:
    section, kind = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            m = re.fullmatch(r"\[([^\]:\s]+)(?::(vars|children))?\]", line)
            if m is None:
                raise InventoryError(inv.path, lineno, f"section header '{line}' not understood",
                                     "write [group], [group:vars] or [group:children]")
            section, kind = m.group(1), m.group(2) or "hosts"
            inv.group(section, lineno)
            continue
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise InventoryError(inv.path, lineno, f"'{line}' in [{section}:vars] is not key=value")
            inv.group(section, lineno).vars[key.strip()] = _Var(value.strip(), str(inv.path), lineno)
        elif kind == "children":
            child = line.split()[0]
            inv.group(child, lineno)
            g = inv.group(section, lineno)
            if child not in g.children:
                g.children.append(child)
        else:
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as exc:
                raise InventoryError(inv.path, lineno, f"host line not understood: {exc}",
                                     "check the quotes on that line") from None
            if not tokens:
                continue
            pattern, variables = tokens[0], {}
            for token in tokens[1:]:
                key, sep, value = token.partition("=")
                if not sep:
                    raise InventoryError(inv.path, lineno, f"'{token}' after host '{pattern}' is not key=value")
                variables[key] = _Var(_literal(value), str(inv.path), lineno)
            m = re.fullmatch(r"([^:\[\]]+|[^:]*\[[^\]]*\][^:]*):(\d+)", pattern)
            if m and "ansible_port" not in variables:  # host:port (never an IPv6 address)
                pattern = m.group(1)
                variables["ansible_port"] = _Var(int(m.group(2)), str(inv.path), lineno)
            inv.add_host(pattern, section, variables, lineno)
    all_group = inv.groups["all"]
    for name in inv.groups:
        if name != "all" and name not in all_group.children:
            all_group.children.append(name)


def _yaml_lines(text: str, path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    from golive.yamlpos import ConfigError, loads

    try:
        doc = loads(text, path)
    except ConfigError as exc:
        raise InventoryError(path, exc.line, exc.problem, exc.fix) from None
    return doc.data, doc.lines


def _parse_yaml(inv: _Inventory, text: str) -> None:
    data, lines = _yaml_lines(text, inv.path)
    if not isinstance(data, dict):
        raise InventoryError(inv.path, 1, "a YAML inventory is a mapping of groups (all: {hosts:, children:})")

    def vars_of(value: Any, loc: tuple[Any, ...]) -> dict[str, _Var]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InventoryError(inv.path, lines.get(loc), "variables must be a mapping")
        return {str(k): _Var(v, str(inv.path), lines.get((*loc, k))) for k, v in value.items()}

    def group(name: str, body: Any, loc: tuple[Any, ...]) -> None:
        g = inv.group(name, lines.get(loc))
        if body is None:
            return
        if not isinstance(body, dict):
            raise InventoryError(inv.path, lines.get(loc), f"group '{name}' must be a mapping",
                                 "give it hosts:, vars: and/or children:")
        unknown = set(body) - {"hosts", "vars", "children"}
        if unknown:
            first = min(unknown)
            raise InventoryError(inv.path, lines.get((*loc, first)), f"unknown key '{first}' in group '{name}'",
                                 "a group has hosts:, vars: and children: only")
        g.vars.update(vars_of(body.get("vars"), (*loc, "vars")))
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise InventoryError(inv.path, lines.get((*loc, "hosts")), f"hosts of group '{name}' must be a mapping",
                                 "write each host as a key: 'web1:' or 'web1: {ansible_host: 10.0.0.1}'")
        for host, hvars in hosts.items():
            hloc = (*loc, "hosts", host)
            inv.add_host(str(host), name, vars_of(hvars, hloc), lines.get(hloc))
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise InventoryError(inv.path, lines.get((*loc, "children")), f"children of '{name}' must be a mapping")
        for child, cbody in children.items():
            if str(child) not in g.children:
                g.children.append(str(child))
            group(str(child), cbody, (*loc, "children", child))

    for name, body in data.items():
        group(str(name), body, (name,))
        if str(name) != "all" and str(name) not in inv.groups["all"].children:
            inv.groups["all"].children.append(str(name))
    for name in inv.groups:
        if name != "all" and name not in inv.groups["all"].children:
            inv.groups["all"].children.append(name)


def _vars_files(folder: Path, name: str) -> list[Path]:
    """``group_vars/NAME``, ``NAME.yml``/``.yaml``/``.json``, or every file in ``NAME/``."""
    out = [folder / f"{name}{ext}" for ext in ("", ".yml", ".yaml", ".json")]
    files = [p for p in out if p.is_file()]
    d = folder / name
    if d.is_dir():
        files += sorted(p for p in d.rglob("*") if p.is_file() and p.suffix in ("", ".yml", ".yaml", ".json"))
    return files


def _read_vars_file(path: Path) -> dict[str, _Var]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(path, None, f"cannot read variables file: {exc}") from None
    if text.startswith("$ANSIBLE_VAULT"):
        return {}
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InventoryError(path, None, f"not valid JSON: {exc}") from None
        lines: dict[tuple[Any, ...], int] = {}
    else:
        data, lines = _yaml_lines(text, path) if text.strip() else ({}, {})
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(path, 1, "a variables file must be a mapping")
    return {str(k): _Var(v, str(path), lines.get((k,))) for k, v in data.items()}


_TRUE = {"yes", "true", "on", "1", "y"}
_FALSE = {"no", "false", "off", "0", "n", ""}
_ALIASES = {
    "host": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "connection": ("ansible_connection",),
    "key": ("ansible_ssh_private_key_file", "ansible_private_key_file"),
    "become": ("ansible_become", "ansible_sudo"),
    "data_path": ("golive_data_path",),
    "timeout_s": ("golive_timeout_s",),
}
_CONNECTIONS = {"ssh": "ssh", "smart": "ssh", "paramiko": "paramiko", "paramiko_ssh": "paramiko",
                "local": "local", "docker": "docker", "community.docker.docker": "docker",
                "podman": "podman", "containers.podman.podman": "podman"}


def _pick(merged: dict[str, _Var], field: str) -> _Var | None:
    for key in _ALIASES[field]:
        if key in merged:
            return merged[key]
    return None


def _text(var: _Var | None, field: str, host: str) -> str | None:
    if var is None or var.value is None:
        return None
    value = str(var.value).strip()
    if "{{" in value or "{%" in value:
        raise InventoryError(var.path, var.line, f"{field} of host '{host}' is a Jinja template ({value})",
                             "golive does not evaluate templates: write the value, or set it in the golive target")
    return value


def _host_record(inv: _Inventory, host: _Host, order: list[str], host_vars_dir: Path,
                 group_files: dict[str, dict[str, _Var]]) -> SourceHost:
    groups = inv.groups_of(host.name)
    merged: dict[str, _Var] = {}
    for g in order:
        if g in groups:
            merged.update(inv.groups[g].vars)
            merged.update(group_files.get(g, {}))
    merged.update(host.vars)
    for path in _vars_files(host_vars_dir, host.name):
        merged.update(_read_vars_file(path))

    address = _text(_pick(merged, "host"), "ansible_host", host.name) or host.name
    user = _text(_pick(merged, "user"), "ansible_user", host.name)
    port_var = _pick(merged, "port")
    port_text = _text(port_var, "ansible_port", host.name)
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        assert port_var is not None
        raise InventoryError(port_var.path, port_var.line, f"ansible_port of host '{host.name}' is not a port: {port_text}")
    conn_var = _pick(merged, "connection")
    conn = _text(conn_var, "ansible_connection", host.name) or "ssh"
    scheme = _CONNECTIONS.get(conn)
    if scheme is None:
        assert conn_var is not None
        raise InventoryError(conn_var.path, conn_var.line, f"ansible_connection '{conn}' of host '{host.name}' "
                             "is not supported", "use ssh, paramiko, local or docker (or list the host in the target)")
    if scheme == "local":
        connection = "local://"
    elif scheme in ("docker", "podman"):
        connection = f"{scheme}://{(user + '@') if user else ''}{address}"
    else:
        netloc = f"[{address}]" if ":" in address else address
        connection = f"{scheme}://{(user + '@') if user else ''}{netloc}{(':' + port_text) if port_text else ''}"
    become_text = _text(_pick(merged, "become"), "ansible_become", host.name)
    sudo = None if become_text is None else become_text.lower() in _TRUE
    if become_text is not None and become_text.lower() not in _TRUE | _FALSE:
        var = _pick(merged, "become")
        assert var is not None
        raise InventoryError(var.path, var.line, f"ansible_become of host '{host.name}' is not a boolean: {become_text}")
    timeout_text = _text(_pick(merged, "timeout_s"), "golive_timeout_s", host.name)
    try:
        timeout = float(timeout_text) if timeout_text is not None else None
    except ValueError:
        var = _pick(merged, "timeout_s")
        assert var is not None
        raise InventoryError(var.path, var.line, f"golive_timeout_s of host '{host.name}' is not a number") from None
    key = _text(_pick(merged, "key"), "ansible_ssh_private_key_file", host.name)
    roles = tuple(g for g in order if g in groups and g not in ("all", "ungrouped"))
    return SourceHost(name=host.name, connection=connection, groups=roles,
                      identity_file=str(Path(key).expanduser()) if key else None, sudo=sudo,
                      data_path=_text(_pick(merged, "data_path"), "golive_data_path", host.name),
                      timeout_s=timeout, path=host.path, line=host.line)


def _is_yaml_inventory(path: Path, text: str) -> bool:
    if path.suffix in (".yml", ".yaml", ".json"):
        return True
    if path.suffix in (".ini", ".cfg", ".hosts"):
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and all(isinstance(v, dict) or v is None for v in data.values())


def read_ansible(path: Path | str) -> list[SourceHost]:
    """The hosts of an Ansible inventory file (INI or YAML), in file order."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise InventoryError(p, None, "inventory folders are not supported", "name the inventory file itself")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(p, None, "inventory file not found", "check the path (relative to the target file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(p, None, f"cannot read inventory: {exc}") from None
    if os.access(p, os.X_OK) and text.startswith("#!"):
        raise InventoryError(p, 1, "dynamic (script) inventories are not run",
                             "export it first: ansible-inventory -i SCRIPT --list --yaml > inventory.yml")
    inv = _Inventory(p)
    (_parse_yaml if _is_yaml_inventory(p, text) else _parse_ini)(inv, text)
    depth = inv.depths()
    prio: dict[str, int] = {}
    for name, g in inv.groups.items():
        v = g.vars.get("ansible_group_priority")
        try:
            prio[name] = int(v.value) if v is not None else 1
        except (TypeError, ValueError):
            prio[name] = 1
    order = sorted(inv.groups, key=lambda n: (depth[n], prio[n], n))
    group_files: dict[str, dict[str, _Var]] = {}
    for name in inv.groups:
        merged: dict[str, _Var] = {}
        for f in _vars_files(p.parent / "group_vars", name):
            merged.update(_read_vars_file(f))
        group_files[name] = merged
    return [_host_record(inv, h, order, p.parent / "host_vars", group_files) for h in inv.hosts.values()]


# ----------------------------------------------------------------------------- ssh_config

def _ssh_config_entries(path: Path, depth: int = 0) -> list[tuple[str, str, int]]:
    """(name, file, line) for each concrete Host name, following Include."""
    if depth > 16:
        raise InventoryError(path, None, "Include nested too deeply (a loop?)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(path, None, "ssh_config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(path, None, f"cannot read ssh_config: {exc}") from None
    out: list[tuple[str, str, int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(\S+?)\s*(?:=\s*|\s+)(.*)$", line)
        if m is None:
            continue
        keyword, rest = m.group(1).lower(), m.group(2)
        try:
            args = shlex.split(rest, comments=True)
        except ValueError:
            raise InventoryError(path, lineno, f"'{line}' not understood (quotes?)") from None
        if keyword == "host":
            out += [(a, str(path), lineno) for a in args if not set(a) & set("*?!")]
        elif keyword == "include":
            for pattern in args:
                full = Path(pattern).expanduser()
                if not full.is_absolute():
                    full = Path("~/.ssh").expanduser() / pattern  # OpenSSH: relative to ~/.ssh
                for inc in sorted(glob.glob(str(full))):
                    out += _ssh_config_entries(Path(inc), depth + 1)
    return out


def _resolve(config: Path, name: str) -> tuple[str, str, str] | None:
    """(user, hostname, port) as ``ssh -G`` resolves ``name`` with ``config`` (no connection)."""
    if shutil.which("ssh") is None:
        return None
    try:
        res = subprocess.run(["ssh", "-G", "-F", str(config), name], capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    opts = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    return opts.get("user", ""), opts.get("hostname", name), opts.get("port", "22")


def read_ssh_config(path: Path | str) -> list[SourceHost]:
    """One host per concrete ``Host`` name of an OpenSSH client config (see module doc).
    The connection is ``ssh://NAME`` with this file as the host's ``ssh_config``."""
    p = Path(path).expanduser().resolve()
    seen_names: set[str] = set()
    seen_targets: dict[tuple[str, str, str], str] = {}
    hosts: list[SourceHost] = []
    for name, file, line in _ssh_config_entries(p):
        if name in seen_names:
            continue
        seen_names.add(name)
        resolved = _resolve(p, name)
        if resolved is not None and resolved in seen_targets:
            continue  # another alias of a host already taken
        if resolved is not None:
            seen_targets[resolved] = name
        hosts.append(SourceHost(name=name, connection=f"ssh://{name}", ssh_config=str(p), path=file, line=line))
    return hosts


def matches(name: str, patterns: list[str]) -> bool:
    """Does ``name`` match any of the shell-style ``patterns`` (case-sensitive)?"""
    return any(fnmatch.fnmatchcase(name, pat) for pat in patterns)
