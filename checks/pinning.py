"""Address pinning for the load engine and the HA drill: the target's ``endpoints.resolve``
(name -> IP address, like curl's ``--resolve``) decides where a connection to a pinned name
goes, while the URL, the ``Host`` header, TLS SNI and certificate validation keep the name.

Two clients use it: the open-loop generator's connections (:func:`address_for`, in
checks/throughput/wire.py: the throughput runs, their worker processes and the HA drill's
request stream) and the HA drill's httpx health polls (:func:`route`).  The HTTP, CORS
and TLS families pin through their own clients (checks/http/probes.py, checks/tls/probes.py) with the same semantics.
Names that are not pinned resolve as usual.
"""
from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any


def normalise(resolve: Mapping[str, str] | None) -> dict[str, str]:
    """Names lower-cased without a trailing dot, addresses without IPv6 brackets."""
    return {k.lower().rstrip("."): v.strip("[]") for k, v in (resolve or {}).items()}


def address_for(url: str, resolve: Mapping[str, str] | None) -> str | None:
    """The pinned address of ``url``'s host, or None when it is not pinned."""
    host = urllib.parse.urlsplit(url).hostname
    return normalise(resolve).get(host.rstrip(".")) if host else None


def words(url: str, resolve: Mapping[str, str] | None) -> str:
    """The evidence's sentence for a pinned URL ('' when the URL's host is not pinned)."""
    address = address_for(url, resolve)
    if address is None:
        return ""
    name = urllib.parse.urlsplit(url).hostname
    return f"connected to {address} (pinned in endpoints.resolve; Host and SNI stay {name})"


def route(url: str, resolve: Mapping[str, str] | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """For an httpx request: (URL to connect to, headers, request extensions).  A pinned
    host is replaced by its address in the URL; the ``Host`` header and the TLS SNI /
    certificate name (httpx's ``sni_hostname`` extension) stay the name."""
    u = urllib.parse.urlsplit(url)
    address = address_for(url, resolve)
    if address is None or not u.hostname:
        return url, {}, {}
    shown = f"[{address}]" if ":" in address else address
    netloc = shown + (f":{u.port}" if u.port else "")
    headers = {"Host": u.netloc.rpartition("@")[2]}
    ext: dict[str, Any] = {"sni_hostname": u.hostname} if u.scheme == "https" else {}
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment)), headers, ext
