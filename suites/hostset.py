"""The target's hosts as testinfra hosts, and concurrent measurement across them.

A host whose connection cannot even be built gives an ``error`` measurement for every
fact, so one bad inventory line never hides the other hosts' results.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Callable

from checks.connection import ProbeError, get_host
from golive.model import Evidence, Measurement
from golive.target import HostSpec, Target

MAX_PARALLEL = 16


def probe_host(spec: HostSpec, probe: Callable[..., Measurement], *args: Any) -> Measurement:
    """``probe(host, *args, subject=..., timeout_s=...)`` on the host ``spec`` names."""
    try:
        host = get_host(spec.connection, ssh_config=spec.ssh_config, ssh_identity_file=spec.ssh_identity_file,
                        sudo=spec.sudo, timeout_s=spec.timeout_s)
    except ProbeError as exc:
        ev = Evidence(probe=getattr(probe, "__name__", "probe"), subject=spec.name, method=spec.connection)
        return Measurement.failed(exc.reason, ev)
    return probe(host, *args, subject=spec.name, timeout_s=spec.timeout_s)


@dataclasses.dataclass
class HostSet:
    specs: list[HostSpec]

    @classmethod
    def from_target(cls, target: Target) -> "HostSet":
        return cls(list(target.hosts))

    def measure(self, probe: Callable[..., Measurement], *args: Any) -> dict[str, Measurement]:
        """The same probe on every host at once."""
        return self.measure_each(lambda spec: probe_host(spec, probe, *args))

    def measure_each(self, fn: Callable[[HostSpec], Any]) -> dict[str, Any]:
        """``fn(spec)`` for every host at once, keyed by host name."""
        if not self.specs:
            return {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(self.specs)),
                                                   thread_name_prefix="golive-host") as pool:
            futures = {spec.name: pool.submit(fn, spec) for spec in self.specs}
            return {name: fut.result() for name, fut in futures.items()}
