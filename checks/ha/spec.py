"""The ha family's profile block and target fragment.

Profile ``requirements.ha`` (:class:`HaReq`): the thresholds and the drill's bounds.
Target ``ha:`` (:class:`HaSpec`): the entrypoint through the load balancer, the instances
with their own health URLs, and the actions that stop and start them.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from golive.blocks import Block, Strict, also_accepts
from golive.units import Duration
from golive.urls import http_url


class HaReq(Block):
    """High availability: enough healthy instances, and a failover drill (docs/ha.md).

    Thresholds: ``min_instances``, ``failover_max`` (stop -> full success again),
    ``error_rate_max`` (failed share of the drill's requests from the stop until the service
    is steady again after the restore), ``auto_restart`` within ``restart_max``.  The rest
    bounds the drill itself: its request ``rate``, the ``stable`` run of full success that
    counts as recovered, ``steady`` (the steady-state windows), ``max_duration`` and
    ``max_requests`` for the whole drill, and ``drill_instances`` (how many instances are
    stopped, one at a time, in the target's order; default every one)."""

    min_instances: int = Field(default=2, ge=1, le=10000)
    failover_max: Duration = 30.0
    error_rate_max: float = Field(default=0.05, ge=0, le=1)
    auto_restart: bool = False
    restart_max: Duration = Field(default=60.0, description="auto_restart: healthy again by itself within this "
                                                             "(ST-HA-01: 2 x 30 s)")
    rate: float = Field(default=10, gt=0, le=200, description="requests per second of the drill's open-loop stream")
    stable: Duration = Field(default=3.0, description="consecutive full success that counts as recovered")
    steady: Duration = Field(default=2.0, description="length of each steady-state window")
    max_duration: Duration = Field(default=300.0, description="hard bound on the whole drill")
    max_requests: int = Field(default=5000, ge=10, le=1_000_000, description="hard bound on the drill's requests")
    drill_instances: int | None = Field(default=None, ge=1, le=10000, description="instances stopped (default: each)")


class HaAction(Strict):
    """How the failover drill stops or starts an instance: exactly one of ``command`` (a shell
    command), ``pidfile`` (send ``signal`` to the pid it holds), ``systemd`` (a unit:
    ``systemctl stop|start UNIT``) or ``pod`` (``kubectl delete pod``; starting is left to
    the controller).  A plain string is a ``command``.  Actions run on the instance's
    ``host`` (a target host name) or, without one, on the checking host."""

    command: str | None = None
    pidfile: str | None = None
    signal: str = Field(default="TERM", pattern=r"^(SIG)?[A-Z][A-Z0-9+-]*$|^[0-9]{1,2}$")
    systemd: str | None = Field(default=None, description="unit name, e.g. oz-api.service")
    pod: str | None = Field(default=None, description="pod name (kubectl delete pod NAME)")
    namespace: str | None = None
    context: str | None = None
    timeout_s: float = Field(default=30, gt=0, le=600)

    # a plain string is the command (the JSON Schema says so too)
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=also_accepts({"type": "string"}))

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        return {"command": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_kind(self) -> HaAction:
        kinds = [k for k in ("command", "pidfile", "systemd", "pod") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("an HA action needs exactly one of command, pidfile (+ signal), systemd, pod; "
                             f"got {', '.join(kinds) or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("command", "pidfile", "systemd", "pod") if getattr(self, k))


class HaInstance(Strict):
    """One instance behind the load balancer: its own health URL (checked directly, not
    through the entrypoint) and the actions that stop and start it."""

    name: str
    url: str | None = Field(default=None, description="the instance's own health URL (2xx = healthy)")
    stop: HaAction | None = None
    start: HaAction | None = None
    host: str | None = Field(default=None, description="target host the actions run on (default: the checking host)")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else http_url(v)


class HaSpec(Strict):
    """The load-balanced service: ``entrypoint`` (a URL through the load balancer, GET, 2xx)
    and its instances.  ``request: inference`` makes the drill's stream send the target's
    ``inference`` request instead of GET entrypoint."""

    entrypoint: str
    instances: list[HaInstance] = Field(default_factory=list)
    ca_file: str | None = Field(default=None, description="CA bundle for https URLs here (default: endpoints.ca_file)")
    request: Literal["entrypoint", "inference"] = "entrypoint"
    timeout_s: float = Field(default=2, gt=0, le=60, description="per request of the drill's stream")
    restore_timeout_s: float = Field(default=60, gt=0, le=900,
                                     description="bound on a restore: start action + instance healthy again")

    @field_validator("entrypoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)
