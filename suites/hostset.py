"""The target's hosts as testinfra hosts, and concurrent measurement across them.

A host whose connection cannot even be built gives an ``error`` measurement for every
fact, so one bad inventory line never hides the other hosts' results.
"""
from __future__ import annotations

import dataclasses
import threading
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
        """``fn(spec)`` for every host at once, keyed by host name.

        Daemon threads, at most MAX_PARALLEL at a time: a Ctrl-C ends the run at once
        instead of waiting for a hung host's probe to reach its own timeout."""
        results: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}
        gate = threading.Semaphore(MAX_PARALLEL)

        def work(spec: HostSpec) -> None:
            with gate:
                try:
                    results[spec.name] = fn(spec)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    errors[spec.name] = exc

        threads = [threading.Thread(target=work, args=(spec,), name=f"golive-host-{spec.name}", daemon=True)
                   for spec in self.specs]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
        if errors:
            raise next(iter(errors.values()))
        return {spec.name: results[spec.name] for spec in self.specs}
