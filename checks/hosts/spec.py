"""The hosts family's profile block: sizing per role or per layout, host counts, the
operating system and software versions (``requirements.hosts``).

Sizing is replaced as a whole by a child profile, never max-merged (catalogue §16: the Oz
numbers are not monotonic, so merging would invent requirements no seed states): the
family declares those keys in ``Family.merge_replace``.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from golive.blocks import Block, Strict, also_accepts
from golive.units import Rate, Size


class GpuReq(Strict):
    count: int = Field(ge=0, le=256)
    memory: Size | None = None


class DiskReq(Strict):
    """The filesystem holding the host's data path (the target says which path)."""

    size: Size | None = None
    media: Literal["any", "ssd", "nvme"] = "any"


class Sizing(Block):
    """Hardware of one host (or every host of a role)."""

    cpu_cores: int | None = Field(default=None, ge=1, le=65536)
    memory: Size | None = None
    disk: DiskReq | None = None
    nic_speed: Rate | None = None
    gpu: GpuReq | None = None


class NodeCount(Block):
    min: int = Field(ge=0, le=100000)
    max: int | None = Field(default=None, ge=1, le=100000)


class OsReq(Block):
    family: Literal["linux"] = "linux"
    recommended: list[str] = Field(default_factory=list, description="e.g. ['ubuntu>=20.04', 'centos>=8']")


class SoftwareReq(Block):
    model_config = ConfigDict(extra="forbid", frozen=True,
                              json_schema_extra=also_accepts({"type": "string"}, {"type": "number"}))  # '1.18'
    version: str = Field(description="minimum version, e.g. '1.18'")
    required: bool = True

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        if isinstance(v, (str, int, float)):
            return {"version": str(v)}
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        v = v.strip().removeprefix(">=").rstrip("+").strip()
        parts = v.split(".")
        if not v or not all(p.isdigit() for p in parts):
            raise ValueError(f"version '{v}' is not dotted numbers; write e.g. '1.18'")
        return v


SOFTWARE = ("python", "pip", "nginx", "gunicorn", "uvicorn", "postgresql", "docker", "sqlite", "openssl", "haproxy")


class Layout(Strict):
    """Sizing for one node-count layout (Oz Medium Load: 2, 3 or 4 nodes, each different)."""

    default: Sizing | None = None
    roles: dict[str, Sizing] = Field(default_factory=dict)


class HostsReq(Block):
    memory_tolerance: float = Field(default=0.95, gt=0, le=1,
                                    description="MemTotal passes at >= tolerance x required (kernel reservation)")
    default: Sizing | None = None
    roles: dict[str, Sizing] = Field(default_factory=dict)
    layouts: dict[int, Layout] = Field(default_factory=dict, description="sizing by number of hosts")
    count: dict[str, NodeCount] = Field(default_factory=dict, description="hosts per role ('all' = every host)")
    os: OsReq | None = None
    software: dict[str, SoftwareReq] = Field(default_factory=dict)

    @field_validator("software")
    @classmethod
    def _known_software(cls, v: dict[str, SoftwareReq]) -> dict[str, SoftwareReq]:
        for name in v:
            if name not in SOFTWARE:
                raise ValueError(f"unknown software '{name}'; golive measures: {', '.join(SOFTWARE)}")
        return v

    def sizing_for(self, roles: list[str], host_count: int) -> tuple[Sizing | None, str]:
        """The sizing that applies to a host with these roles, and where it comes from.
        A layout for this many hosts wins; then the first role with its own sizing; then
        ``default``."""
        default, by_role, origin = self.default, self.roles, ""
        if host_count in self.layouts:
            lay = self.layouts[host_count]
            default, by_role, origin = lay.default, lay.roles, f"{host_count}-host layout, "
        for role in roles:
            if role in by_role:
                return by_role[role], f"{origin}role '{role}'"
        return default, f"{origin}default"
