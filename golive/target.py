"""Targets: where the deployment is and how to reach it -- never what is required.

Secrets are never written in a target file: a value that looks like a secret (a key named
password/token/secret/api_key, or a password inside a URI) must be a ``${ENV_VAR}``
reference or come from a ``*_file`` key.  Secret values are registered for redaction.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from golive.blocks import Strict
from golive.redact import register_secret
from golive.urls import check_key, connection_uri, http_url, literal_url_credentials, starttls_url
from golive.validation import raise_config_error
from golive.yamlpos import ConfigError, PositionedYaml, load

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_KEY = re.compile(r"(?i)(password|passwd|token|secret|api[_-]?key|authorization|cookie|credentials?)$")
_LITERAL_AUTH_VALUE = re.compile(r"(?i)^\s*(bearer|basic|token|apikey)\s+\S")
# user:password@ -- the password may hold '/' (libpq reads it so); "host:8080/path@x" is a port
_URI_USERINFO_PW = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:(?!\d+(?:/|$))([^@\s]+)@")
CONNECTION_SCHEMES = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "ansible", "openshift", "lxc", "salt", "winrm")


class HostSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    connection: str = Field(description="testinfra URI: local://, ssh://user@host:port, docker://name, ...")
    roles: list[str] = Field(default_factory=list)
    data_path: str = "/"
    ssh_config: str | None = None
    ssh_identity_file: str | None = None
    sudo: bool = False
    timeout_s: float = Field(default=10, gt=0, le=600)
    known_hosts: str | list[str] | None = Field(default=None, description=(
        "host-key trust for ssh:// and paramiko://: a known_hosts file, or the host's pinned public keys "
        "('ssh-ed25519 AAAA...'); only these keys are accepted (docs/targets.md)"))
    source: str | None = Field(default=None, description="where the host came from (inventory file:line); set by golive")

    @field_validator("known_hosts")
    @classmethod
    def _known_hosts(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("known_hosts lists no key; give the host's public keys (ssh-keyscan HOST)")
            for k in v:
                check_key(k)
        elif isinstance(v, str) and not Path(v).expanduser().is_file():
            raise ValueError(f"known_hosts file {v} not found; give an existing known_hosts file or the pinned keys")
        return v

    @field_validator("connection")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme not in CONNECTION_SCHEMES:
            raise ValueError(f"connection '{v}' is not a testinfra URI; use one of "
                             + ", ".join(f"{s}://" for s in CONNECTION_SCHEMES))
        return connection_uri(v)


def _hostport(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{v}' is not host:port (e.g. 10.0.0.11:5432, [::1]:5432)")
    return v


class Endpoints(Strict):
    public: str | None = Field(default=None, description="https URL of the public entrypoint")
    http: str | None = Field(default=None, description="plain http URL that must redirect to https")
    health: str | None = None
    internal: list[str] = Field(default_factory=list, description="host:port that must NOT be reachable")
    public_ports: list[str] = Field(default_factory=list, description="extra host:port that must be open")
    ca_file: str | None = Field(default=None, description="CA bundle that signs the public certificate")
    server_name: str | None = None
    tls: list[str] = Field(default_factory=list, description=(
        "more TLS endpoints for the TLS checks: host:port, an https URL, or a STARTTLS service as "
        "protocol://host[:port] (postgres, smtp, imap, pop3, ftp, ldap, xmpp, xmpp-server, rdp)"))
    resolve: dict[str, str] = Field(default_factory=dict, description=(
        "name -> IP address to connect to instead of asking DNS (like curl --resolve): validate a deployment "
        "under its real name before DNS points at it"))

    @field_validator("resolve")
    @classmethod
    def _addresses(cls, v: dict[str, str]) -> dict[str, str]:
        import ipaddress

        for name, address in v.items():
            try:
                ipaddress.ip_address(address.strip("[]"))
            except ValueError:
                raise ValueError(f"resolve: '{address}' (for {name}) is not an IP address") from None
        return {name.lower(): address.strip("[]") for name, address in v.items()}

    @field_validator("tls")
    @classmethod
    def _tls_endpoints(cls, v: list[str]) -> list[str]:
        out = []
        for x in v:
            if x.startswith("https://"):
                out.append(http_url(x, ("https",)))
            elif "://" in x:
                starttls_url(x)
                out.append(x)
            else:
                out.append(_hostport(x))
        return out

    @field_validator("internal", "public_ports")
    @classmethod
    def _hostports(cls, v: list[str]) -> list[str]:
        return [_hostport(x) for x in v]

    @field_validator("public", "health")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        return None if v is None else http_url(v)

    @field_validator("http")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("http://"):
            raise ValueError(f"'{v}' must be a plain http:// URL (it is checked for the redirect to https)")
        return None if v is None else http_url(v, ("http",))


class ServiceSpec(Strict):
    """A service of the deployment on one of the target's hosts: its port (ports family) and
    how it runs (services family: the process, its account, workers, environment names,
    secret files, interpreter, and for a reverse proxy its configuration)."""

    name: str
    host: str
    port: int = Field(gt=0, lt=65536)
    bind: Literal["loopback", "any", "private"] = "loopback"
    user: str | None = Field(default=None, description="the account the service must run as")
    pidfile: str | None = Field(default=None, description="the master process's pidfile")
    unit: str | None = Field(default=None, description="systemd unit (its MainPID)")
    process: str | None = Field(default=None, description="pgrep -f pattern of the master process")
    workers: int | None = Field(default=None, ge=0, le=1024, description="worker processes under the master")
    env: list[str] = Field(default_factory=list, description="environment variable NAMES the process must have")
    files: list[str] = Field(default_factory=list, description="secret files: owned by user, not world-accessible")
    python: str | None = Field(default=None, description="the app's interpreter, for pip check")
    config: str | None = Field(default=None, description="reverse proxy: nginx configuration file")
    config_prefix: str | None = Field(default=None, description="reverse proxy: nginx -p prefix")
    proxy_to: list[str] = Field(default_factory=list, description="reverse proxy: upstream host:port it must use")

    @model_validator(mode="after")
    def _one_selector(self) -> ServiceSpec:
        chosen = [k for k in ("pidfile", "unit", "process") if getattr(self, k)]
        if len(chosen) > 1:
            raise ValueError(f"service '{self.name}': give one of pidfile, unit, process (got {', '.join(chosen)})")
        return self


class RequestTemplateSpec(Strict):
    """One request of the inference workload mix (docs/throughput.md, "The workload as
    data"): its share of the arrivals and how many analyses one success counts for.  The
    url, method, headers and success rule default to the inference endpoint's."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(default=1.0, gt=0)
    analyses: int = Field(default=1, ge=1, description="analyses one successful request counts for (OZ-PERF-00)")
    url: str | None = None
    method: Literal["GET", "POST", "PUT"] | None = None
    body: dict[str, Any] | list[Any] | None = None
    body_file: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class InferenceSpec(Strict):
    """The inference endpoint the throughput checks load (docs/throughput.md) -- and the
    HA drill's request when ``ha.request: inference``.

    A success is ``expect_status`` and, when ``success_field`` is set, that JSON field
    (dotted path) equal to ``success_value`` (truthy when ``success_value`` is unset):
    checks.request.judge, one rule for both families.
    """

    url: str
    method: Literal["GET", "POST", "PUT"] = "POST"
    body: dict[str, Any] | list[Any] | None = None
    body_file: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: int = 200
    success_field: str | None = None
    success_value: Any = None
    capacity_apm: float | None = None
    timeout_s: float = Field(default=30, gt=0, le=600, description="per-request timeout")
    max_duration_s: float | None = Field(
        default=None, gt=0, description="caps the profile's throughput duration and capacity steps (e.g. the lab)")
    warmup_s: float = Field(default=5, ge=0, le=600, description="warm-up before the ramp (not measured)")
    ramp_s: float = Field(default=5, ge=0, le=600, description="linear ramp to the rate (not measured)")
    connections: int | None = Field(
        default=None, ge=1, le=512, description="keep-alive connections (default: rate x latency bound + 2)")
    baseline_apm: float | None = Field(
        default=None, gt=0, description="rate offered when the profile sets no apm_min (default 60 APM)")
    baseline_dir: str | None = Field(default=None, description="latency baselines (default reports/baselines/)")
    analyses: int = Field(default=1, ge=1, description="analyses one successful request counts for (no mix)")
    requests: list[RequestTemplateSpec] = Field(
        default_factory=list, description="request mix: templates with weights and analyses (default: the one request)")
    workers: list[str] = Field(default_factory=list, description=(
        "worker commands that load slices of the schedule when the rate exceeds pacing_ceiling_rps: 'local' (a "
        "process on the checking host) or a command line starting `python -m checks.throughput.load --worker` "
        "on a worker host (ssh ..., ip netns exec ...)"))
    pacing_ceiling_rps: float = Field(default=5000, gt=0, description=(
        "requests per second one generator process is trusted to pace (measured: docs/throughput.md)"))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)


class HostDefaults(Strict):
    """Settings for every host an inventory source brings in (inventory variables win)."""

    roles: list[str] = Field(default_factory=list, description="roles added to every host of the source")
    data_path: str | None = None
    ssh_config: str | None = None
    ssh_identity_file: str | None = None
    sudo: bool | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    known_hosts: str | list[str] | None = Field(default=None, description="known_hosts file for every host of the source")


class InventorySpec(Strict):
    """Hosts from a file golive did not write (docs/fleets.md): exactly one of ``ansible``
    (an INI or YAML inventory; groups become roles) or ``ssh_config`` (each concrete
    ``Host`` entry is a host).  Paths are relative to the target file."""

    ansible: str | None = None
    ssh_config: str | None = None
    groups: list[str] = Field(default_factory=list, description="only hosts in one of these groups (ansible)")
    include: list[str] = Field(default_factory=list, description="only hosts whose name matches one of these globs")
    exclude: list[str] = Field(default_factory=list, description="leave out hosts whose name matches one of these globs")
    roles: dict[str, list[str]] = Field(default_factory=dict, description="role -> host-name globs given that role")
    defaults: HostDefaults = HostDefaults()

    @model_validator(mode="after")
    def _one_source(self) -> InventorySpec:
        if (self.ansible is None) == (self.ssh_config is None):
            raise ValueError("an inventory entry names exactly one of 'ansible' or 'ssh_config'; "
                             "write one list entry per file")
        if self.groups and self.ansible is None:
            raise ValueError("'groups' selects Ansible groups; an ssh_config has none (use include/roles)")
        return self


class HostSelection(Strict):
    """The ``--hosts`` / ``--roles`` filter a run was limited to."""

    patterns: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    selected: list[str] = Field(default_factory=list)
    left_out: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        parts = ([f"--hosts {','.join(self.patterns)}"] if self.patterns else []) + (
            [f"--roles {','.join(self.roles)}"] if self.roles else [])
        total = len(self.selected) + len(self.left_out)
        return f"{' '.join(parts)} ({len(self.selected)} of {total} hosts)"


class Target(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    environment: Literal["dev", "staging", "prod", "lab"] = "prod"
    hosts: list[HostSpec] = Field(default_factory=list)
    endpoints: Endpoints = Endpoints()
    services: list[ServiceSpec] = Field(default_factory=list)
    inference: InferenceSpec | None = None
    inventory: list[InventorySpec] = Field(default_factory=list,
                                           description="host sources, resolved into hosts when the target is loaded")
    _selection: HostSelection | None = PrivateAttr(default=None)

    @field_validator("inventory", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @property
    def selection(self) -> HostSelection | None:
        """The --hosts/--roles filter this run was limited to (None: every host)."""
        return self._selection

    @model_validator(mode="after")
    def _unique_hosts(self) -> Target:
        names = [h.name for h in self.hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for s in self.services:
            if s.host not in known:
                raise ValueError(f"service '{s.name}' names host '{s.host}', which is not in hosts")
        return self

    def hosts_with_role(self, role: str) -> list[HostSpec]:
        return [h for h in self.hosts if role in h.roles]


@functools.cache
def target_model() -> type[Target]:
    """:class:`Target` with every registered family's target fragment added under its
    family's name (golive.registry)."""
    from golive import registry

    extra: dict[str, Any] = {}
    for fam in registry.families():
        if fam.target_block is not None and fam.name not in Target.model_fields:
            tp = list[fam.target_block] if fam.target_many else fam.target_block | None  # type: ignore[name-defined]
            extra[fam.name] = (tp, Field(default_factory=list) if fam.target_many else None)
    if not extra:
        return Target
    model: type[Target] = create_model("Target", __base__=Target, **extra)
    return model


def resolve_path(name_or_path: str, directory: Path = TARGETS_DIR) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return p
    return directory / f"{name_or_path}.yaml"


def _expand(doc: PositionedYaml, value: Any, loc: tuple[Any, ...], env: dict[str, str]) -> Any:
    """Expand ``${VAR}``, refuse literal secrets, register secret values for redaction."""
    if isinstance(value, dict):
        return {k: _expand(doc, v, (*loc, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(doc, v, (*loc, i), env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    key = str(loc[-1]) if loc else ""
    line = doc.line_of(loc)
    if _SECRET_KEY.search(key) and not _ENV.search(value):
        raise ConfigError(doc.path, line, f"'{key}' holds a literal secret",
                          f"write it as ${{ENV_VAR}} or use '{key}_file:' with a path; secrets never go in target files")
    m = _URI_USERINFO_PW.match(value)
    if m and not _ENV.fullmatch(m.group(1)):
        raise ConfigError(doc.path, line, "a URI holds a literal password",
                          "replace the password with ${ENV_VAR}, e.g. postgresql://app:${PGPASSWORD}@db:5432/app")
    creds = literal_url_credentials(value)
    if creds:
        raise ConfigError(doc.path, line, f"a URL holds a literal credential in its query ('{creds[0]}=')",
                          f"write it as {creds[0]}=${{ENV_VAR}}; secrets never go in target files")
    if "headers" in loc[:-1] and _LITERAL_AUTH_VALUE.match(value) and not _ENV.search(value):
        raise ConfigError(doc.path, line, f"'{key}' holds a literal credential",
                          "write the credential part as ${ENV_VAR}, e.g. 'Bearer ${API_TOKEN}'")

    def sub(mm: re.Match[str]) -> str:
        var = mm.group(1)
        if var not in env:
            raise ConfigError(doc.path, line, f"environment variable {var} is not set (referenced by '{key}')",
                              f"export {var}=... before running golive")
        val = env[var]
        # by value, whatever the key: a ${ENV} value is masked wherever it would be written
        # (a URL query, userinfo, a library's error message), not only under secret-like keys
        register_secret(val)
        return val

    return _ENV.sub(sub, value)


def _read_secret_files(doc: PositionedYaml, value: Any, loc: tuple[Any, ...]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith("_file") and _SECRET_KEY.search(k[:-5]) and isinstance(v, str):
                try:
                    register_secret(Path(v).expanduser().read_text(encoding="utf-8").strip())
                except OSError as exc:
                    raise ConfigError(doc.path, doc.line_of((*loc, k)), f"cannot read secret file for '{k}': {exc.strerror}",
                                      "check the path and its permissions") from None
            _read_secret_files(doc, v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _read_secret_files(doc, v, (*loc, i))


def load_target(name_or_path: str, directory: Path = TARGETS_DIR, env: dict[str, str] | None = None) -> Target:
    path = resolve_path(name_or_path, directory)
    if not path.exists():
        available = ", ".join(p.stem for p in sorted(directory.glob("*.yaml")))
        raise ConfigError(path, None, f"target '{name_or_path}' not found",
                          f"use one of: {available} (or a path to a .yaml file)")
    doc = load(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(path, 1, "a target must be a mapping", "start with 'name:' and 'hosts:'")
    data = _expand(doc, doc.data, (), dict(os.environ) if env is None else env)
    _read_secret_files(doc, data, ())
    if data.get("inventory"):
        data = _resolve_inventory(doc, data)
    try:
        return target_model().model_validate(data)
    except ValidationError as exc:
        raise_config_error(doc, exc, kind="target", model=target_model())
        raise


def with_overrides(target: Target, overrides: dict[str, Any]) -> Target:
    """A copy of ``target`` with sections replaced (the embedded lab fills in its ports)."""
    data = target.model_dump()
    data.update(overrides)
    out = type(target).model_validate(data)
    out._selection = None if "hosts" in overrides else target.selection
    return out


# ----------------------------------------------------------------------------- fleets: inventories, selection

def _resolve_inventory(doc: PositionedYaml, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the hosts of every ``inventory:`` source appended to ``hosts:``.

    Each imported host is validated on its own, so a problem names the inventory file and
    line; a name defined twice names both places."""
    from golive.inventory_sources import InventoryError, matches, read_ansible, read_ssh_config

    class _One(Strict):
        inventory: InventorySpec

    class _Many(Strict):
        inventory: list[InventorySpec]

    raw = data["inventory"]
    try:  # validated in the shape written, so an error's line is the key's own line
        specs = ([_One.model_validate({"inventory": raw}).inventory] if isinstance(raw, dict)
                 else _Many.model_validate({"inventory": raw}).inventory)
    except ValidationError as exc:
        raise_config_error(doc, exc, kind="target", model=Target)
    base = doc.path.resolve().parent
    seen: dict[str, str] = {}
    for i, h in enumerate(data.get("hosts") or []):
        if isinstance(h, dict) and "name" in h:
            seen[str(h["name"])] = f"{doc.path}:{doc.line_of(('hosts', i)) or '?'}"
    imported: list[dict[str, Any]] = []
    for idx, spec in enumerate(specs):
        kind = "ansible" if spec.ansible else "ssh_config"
        rel = spec.ansible or spec.ssh_config or ""
        src = Path(rel).expanduser()
        src = src if src.is_absolute() else base / src
        line = doc.line_of(("inventory", kind) if isinstance(raw, dict) else ("inventory", idx, kind))
        if not src.is_file():
            raise ConfigError(doc.path, line, f"inventory file {src} not found",
                              "paths are relative to the target file's folder")
        try:
            hosts = read_ansible(src) if spec.ansible else read_ssh_config(src)
        except InventoryError as exc:
            raise ConfigError(exc.path, exc.line, exc.problem, exc.fix) from None
        d = spec.defaults
        for h in hosts:
            if spec.groups and not set(spec.groups) & set(h.groups):
                continue
            if (spec.include and not matches(h.name, spec.include)) or matches(h.name, spec.exclude):
                continue
            roles = list(dict.fromkeys([*h.groups, *d.roles,
                                        *(r for r, pats in spec.roles.items() if matches(h.name, pats))]))
            entry: dict[str, Any] = {"name": h.name, "connection": h.connection, "roles": roles,
                                     "source": h.origin}
            for key, value in (("data_path", h.data_path or d.data_path),
                               ("ssh_config", h.ssh_config or d.ssh_config),
                               ("ssh_identity_file", h.identity_file or d.ssh_identity_file),
                               ("sudo", h.sudo if h.sudo is not None else d.sudo),
                               ("timeout_s", h.timeout_s if h.timeout_s is not None else d.timeout_s),
                               ("known_hosts", d.known_hosts)):
                if value is not None:
                    entry[key] = str(Path(str(value)).expanduser()) if key in ("ssh_config", "ssh_identity_file") or \
                        (key == "known_hosts" and isinstance(value, str)) else value
            try:
                HostSpec.model_validate(entry)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                field = ".".join(str(p) for p in err["loc"])
                raise ConfigError(h.path, h.line, f"host '{h.name}' from {kind} inventory: {field}: "
                                  + err["msg"].removeprefix("Value error, "),
                                  "fix the inventory, or leave the host out with 'exclude:'") from None
            if h.name in seen:
                raise ConfigError(h.path, h.line, f"host '{h.name}' is defined twice: here and at {seen[h.name]}",
                                  "give it one definition, or leave one out with 'exclude:'")
            seen[h.name] = h.origin
            imported.append(entry)
        if not any(e["source"] and e["source"].startswith(str(src)) for e in imported):
            raise ConfigError(doc.path, line, f"inventory {src} gives no hosts"
                              + (" after groups/include/exclude" if spec.groups or spec.include or spec.exclude else ""),
                              "check the file and the filters")
    return {**data, "hosts": [*(data.get("hosts") or []), *imported]}


def select_hosts(target: Target, patterns: list[str], roles: list[str], source: str = "") -> Target:
    """``target`` limited to the hosts whose name matches one of ``patterns`` (shell globs;
    ``!glob`` leaves matches out) and that carry one of ``roles``.  Services on hosts left out
    are left out too.  Raises :class:`ConfigError` when nothing is left."""
    import fnmatch

    patterns = [p for p in patterns if p]
    roles = [r for r in roles if r]
    if not patterns and not roles:
        return target
    take = [p for p in patterns if not p.startswith("!")]
    drop = [p[1:] for p in patterns if p.startswith("!")]

    def chosen(h: HostSpec) -> bool:
        if take and not any(fnmatch.fnmatchcase(h.name, p) for p in take):
            return False
        if any(fnmatch.fnmatchcase(h.name, p) for p in drop):
            return False
        return not roles or bool(set(roles) & set(h.roles))

    kept = [h for h in target.hosts if chosen(h)]
    what = HostSelection(patterns=patterns, roles=roles, selected=[h.name for h in kept],
                         left_out=[h.name for h in target.hosts if not chosen(h)])
    if target.hosts and not kept:
        names = ", ".join(h.name for h in target.hosts[:12]) + (" ..." if len(target.hosts) > 12 else "")
        all_roles = ", ".join(sorted({r for h in target.hosts for r in h.roles})) or "none"
        raise ConfigError(source or target.name, None, f"{what.describe()} selects no host of target '{target.name}'",
                          f"hosts: {names}; roles: {all_roles}")
    chosen_names = set(what.selected)
    out = target.model_copy(update={"hosts": kept,
                                    "services": [s for s in target.services if s.host in chosen_names]})
    out._selection = what
    return out
