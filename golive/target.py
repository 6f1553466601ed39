"""Targets: where the deployment is and how to reach it -- never what is required.

Secrets are never written in a target file: a value that looks like a secret (a key named
password/token/secret/api_key, or a password inside a URI) must be a ``${ENV_VAR}``
reference or come from a ``*_file`` key.  Secret values are registered for redaction.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from golive.redact import register_secret
from golive.validation import raise_config_error
from golive.yamlpos import ConfigError, PositionedYaml, load

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_KEY = re.compile(r"(?i)(password|passwd|token|secret|api_key|apikey|authorization|cookie)$")
_URI_USERINFO_PW = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:([^@/\s]+)@")
CONNECTION_SCHEMES = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "ansible", "openshift", "lxc", "salt", "winrm")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    connection: str = Field(description="testinfra URI: local://, ssh://user@host:port, docker://name, ...")
    roles: list[str] = Field(default_factory=list)
    data_path: str = "/"
    ssh_config: str | None = None
    ssh_identity_file: str | None = None
    sudo: bool = False
    timeout_s: float = Field(default=10, gt=0, le=600)

    @field_validator("connection")
    @classmethod
    def _scheme(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme not in CONNECTION_SCHEMES:
            raise ValueError(f"connection '{v}' is not a testinfra URI; use one of "
                             + ", ".join(f"{s}://" for s in CONNECTION_SCHEMES))
        return v


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
    tls: list[str] = Field(default_factory=list,
                           description="more TLS endpoints (host:port or https URL) for the TLS checks")

    @field_validator("tls")
    @classmethod
    def _tls_endpoints(cls, v: list[str]) -> list[str]:
        return [x if x.startswith("https://") else _hostport(x) for x in v]

    @field_validator("internal", "public_ports")
    @classmethod
    def _hostports(cls, v: list[str]) -> list[str]:
        return [_hostport(x) for x in v]

    @field_validator("public", "health")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError(f"'{v}' is not an http(s) URL")
        return v

    @field_validator("http")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("http://"):
            raise ValueError(f"'{v}' must be a plain http:// URL (it is checked for the redirect to https)")
        return v


class ServiceSpec(Strict):
    name: str
    host: str
    port: int = Field(gt=0, lt=65536)
    bind: Literal["loopback", "any", "private"] = "loopback"


class CorsSpec(Strict):
    allowed_origins: list[str] = Field(default_factory=list)
    path: str = "/"
    disallowed_origins: list[str] = Field(default_factory=lambda: ["https://evil.golive.test"],
                                          description="origins that must NOT be allowed (probe origins)")


class RateLimitSpec(Strict):
    """The rate limit the deployment declares for one path: ``requests_per_s`` sustained,
    plus ``burst`` requests of allowance (nginx ``limit_req rate=... burst=...``)."""

    path: str
    method: Literal["GET", "POST", "HEAD"] = "GET"
    requests_per_s: float = Field(gt=0)
    burst: int = Field(default=0, ge=0)


class AuthSpec(Strict):
    """How the API authenticates: paths that must refuse anonymous requests, the bearer
    token golive may use (``${ENV}`` or ``token_file``; never literal) and the declared rate
    limit."""

    protected_paths: list[str] = Field(default_factory=list, description="'/v1/x' or 'POST /v1/x'")
    token: str | None = None
    token_file: str | None = None
    scheme: str = "Bearer"
    rate_limit: RateLimitSpec | None = None


class InferenceSpec(Strict):
    url: str
    method: Literal["GET", "POST", "PUT"] = "POST"
    body: dict[str, Any] | list[Any] | None = None
    body_file: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: int = 200
    success_field: str | None = None
    success_value: Any = None
    capacity_apm: float | None = None


class BackupSpec(Strict):
    kind: Literal["postgres", "sqlite", "files"]
    location: str
    database: str | None = None
    offsite: str | None = None
    scratch: str | None = None


class HaInstance(Strict):
    name: str
    url: str | None = None
    stop: str | None = None
    start: str | None = None
    host: str | None = None


class HaSpec(Strict):
    entrypoint: str
    instances: list[HaInstance] = Field(default_factory=list)


class KubernetesSpec(Strict):
    """The cluster (kubeconfig + context; the token stays in the kubeconfig) and the
    namespace of the workloads.  ``timeout_s`` bounds every API request."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "default"
    timeout_s: float = Field(default=10, gt=0, le=120)


class LabSpec(Strict):
    """The embedded reference deployment: golive starts it for the run and stops it after."""

    variant: str = "compliant"
    cost_ms: float = Field(default=50, gt=0)
    instances: int | None = Field(default=None, ge=1, le=8)

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, v: str) -> str:
        from lab.variants import Variant

        try:
            return Variant.parse(v).key
        except ValueError as exc:
            raise ValueError(f"unknown lab variant '{v}'; `python -m lab variants` lists them") from exc


class Target(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    environment: Literal["dev", "staging", "prod", "lab"] = "prod"
    hosts: list[HostSpec] = Field(default_factory=list)
    endpoints: Endpoints = Endpoints()
    services: list[ServiceSpec] = Field(default_factory=list)
    cors: CorsSpec | None = None
    auth: AuthSpec | None = None
    inference: InferenceSpec | None = None
    backups: list[BackupSpec] = Field(default_factory=list)
    ha: HaSpec | None = None
    kubernetes: KubernetesSpec | None = None
    lab: LabSpec | None = None

    @model_validator(mode="after")
    def _unique_hosts(self) -> "Target":
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


def resolve_path(name_or_path: str, directory: Path = TARGETS_DIR) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return p
    return directory / f"{name_or_path}.yaml"


def _expand(doc: PositionedYaml, value: Any, loc: tuple[Any, ...], env: dict[str, str]) -> Any:
    """Expand ``${VAR}``, refuse literal secrets, register secret values for redaction."""
    if isinstance(value, dict):
        return {k: _expand(doc, v, loc + (k,), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(doc, v, loc + (i,), env) for i, v in enumerate(value)]
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

    def sub(mm: re.Match[str]) -> str:
        var = mm.group(1)
        if var not in env:
            raise ConfigError(doc.path, line, f"environment variable {var} is not set (referenced by '{key}')",
                              f"export {var}=... before running golive")
        val = env[var]
        register_secret(val) if _is_secretish(key, value) else None
        return val

    return _ENV.sub(sub, value)


def _is_secretish(key: str, raw: str) -> bool:
    return bool(_SECRET_KEY.search(key) or _URI_USERINFO_PW.match(raw))


def _read_secret_files(doc: PositionedYaml, value: Any, loc: tuple[Any, ...]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith("_file") and _SECRET_KEY.search(k[:-5]) and isinstance(v, str):
                try:
                    register_secret(Path(v).expanduser().read_text(encoding="utf-8").strip())
                except OSError as exc:
                    raise ConfigError(doc.path, doc.line_of(loc + (k,)), f"cannot read secret file for '{k}': {exc.strerror}",
                                      "check the path and its permissions") from None
            _read_secret_files(doc, v, loc + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _read_secret_files(doc, v, loc + (i,))


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
    try:
        return Target.model_validate(data)
    except ValidationError as exc:
        raise_config_error(doc, exc, kind="target", model=Target)
        raise


def with_overrides(target: Target, overrides: dict[str, Any]) -> Target:
    """A copy of ``target`` with sections replaced (the embedded lab fills in its ports)."""
    data = target.model_dump()
    data.update(overrides)
    return Target.model_validate(data)
