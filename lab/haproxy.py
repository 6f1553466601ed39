"""haproxy for the lab: the load balancer between nginx and the inference instances.

nginx terminates TLS and proxies to one upstream, this haproxy, which balances over the
instances round-robin with **active health checks** (``option httpchk GET /health``, every
200 ms, down after 2 failures, up after 2 successes) and retries a refused connection on
another instance (``retries 3`` + ``option redispatch``).  That is what makes the compliant
lab survive an instance being stopped with no failed request: the failover drill
(``checks/ha.py``) measures it.

The ``no_lb_health_check`` variant (knob ``lb_health_check=False``) drops both the health
checks and the redispatch: a stopped instance stays in rotation and every request sent to it
fails until it is back -- what a load balancer configured without health checks does.

haproxy (Debian package ``haproxy``, 2.6) runs in the foreground (``-db``) as a lab child in
its own process group; every path is inside its run folder.  Its log (server state changes
only, not one line per request) goes to stderr, i.e. the lab's ``haproxy.log``.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.procs import LabError

INSTALL_HINT = "install it with `apt-get install haproxy` (Debian/Ubuntu)"

#: Active health check timing: a dead instance leaves rotation within FALL x INTER.
CHECK_INTER = "200ms"
CHECK_FALL = 2
CHECK_RISE = 2


def find_haproxy() -> str:
    """Path of the haproxy binary (PATH, then /usr/sbin); :class:`LabError` with the install
    command when it is missing."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise LabError(f"haproxy not found: {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class HaproxyLayout:
    """Where haproxy's files go inside its run folder."""

    run_dir: Path

    @property
    def conf(self) -> Path:
        return self.run_dir / "haproxy.cfg"

    @property
    def log(self) -> Path:
        return self.run_dir / "haproxy.log"


def argv(haproxy_bin: str, layout: HaproxyLayout) -> list[str]:
    """Foreground haproxy (``-db``: no daemon, no background) with the lab's config."""
    return [haproxy_bin, "-db", "-f", str(layout.conf)]


def render_config(*, port: int, servers: Sequence[tuple[str, str, int]], health_checks: bool = True) -> str:
    """The haproxy.cfg text: a frontend on ``127.0.0.1:port`` and one backend with
    ``servers`` (name, host, port).  ``health_checks=False`` is the broken variant."""
    if not servers:
        raise ValueError("haproxy needs at least one server")
    check = " check" if health_checks else ""
    lines = "".join(f"    server {name} {host}:{srv_port}{check}\n" for name, host, srv_port in servers)
    if health_checks:
        checks = (
            "    option httpchk GET /health\n"
            "    http-check expect status 200\n"
            f"    default-server inter {CHECK_INTER} fall {CHECK_FALL} rise {CHECK_RISE}\n"
        )
        redispatch = "    option redispatch 1\n"
        comment = "active health checks; a refused connection is retried on another server"
    else:
        checks = ""
        redispatch = ""
        comment = "BROKEN VARIANT: no health checks, no redispatch - a dead server stays in rotation"
    return f"""\
# golive lab haproxy config (generated): {comment}
global
    log stderr format raw daemon notice
    maxconn 4096
    nbthread 1

defaults
    mode http
    log global
    option dontlognull
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    timeout queue 300s
    timeout http-request 30s
    timeout http-keep-alive 30s
    retries 3
{redispatch}
frontend inference_in
    bind 127.0.0.1:{port}
    default_backend inference

backend inference
    balance roundrobin
{checks}{lines}"""
