"""Host-key trust for ssh:// and paramiko:// connections.

A target may give, per host, ``known_hosts``: a known_hosts file, or the host's public
keys pinned inline (``ssh-ed25519 AAAA...``).  Then:

- ``ssh://`` runs ssh with ``-o UserKnownHostsFile=FILE -o StrictHostKeyChecking=yes``
  (pinned keys are written to a private file first): a host whose key is not listed is
  refused ("Host key verification failed"), whatever the ssh_config says;
- ``paramiko://`` loads them and rejects any other key.

Without ``known_hosts``, ssh keeps its own configuration (BatchMode: an unknown host is
refused), and paramiko -- whose testinfra backend accepts any key with a warning -- loads
the user's ``~/.ssh/known_hosts`` and rejects unknown keys too, unless the host's
ssh_config says ``StrictHostKeyChecking no`` explicitly.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paramiko
from testinfra.backend.paramiko import IgnorePolicy, ParamikoBackend

from golive.urls import KEY_LINE

KnownHosts = str | Sequence[str] | None


def host_patterns(host: str, port: int | None) -> list[str]:
    """How known_hosts names ``host``: ``host`` on port 22, ``[host]:port`` otherwise."""
    return [host] if not port or port == 22 else [f"[{host}]:{port}"]


def pinned_lines(keys: Sequence[str], host: str, port: int | None) -> list[str]:
    """known_hosts lines for pinned ``TYPE BASE64`` keys; ValueError for a malformed key."""
    out: list[str] = []
    for k in keys:
        m = KEY_LINE.match(k.strip())
        if not m:
            raise ValueError(f"not a public key line (TYPE BASE64): {k[:40]!r}")
        out.extend(f"{pattern} {m.group('type')} {m.group('key')}" for pattern in host_patterns(host, port))
    return out


def known_hosts_file(known: KnownHosts, host: str, port: int | None, private_dir: str) -> str | None:
    """A known_hosts file for ssh: the given path, or a file in ``private_dir`` holding the
    pinned keys (None when the target gives nothing)."""
    if known is None:
        return None
    if isinstance(known, str):
        return os.path.expanduser(known)
    fd, path = tempfile.mkstemp(prefix="known_hosts-", dir=private_dir)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(pinned_lines(known, host, port)) + "\n")
    return path


def ssh_options(path: str) -> list[str]:
    """ssh options that trust exactly the keys in ``path`` (quoted: testinfra hands the
    extra arguments to a shell)."""
    return [f"-o UserKnownHostsFile={shlex.quote(path)}", "-o StrictHostKeyChecking=yes"]


class _TrustingOnlyKnownKeys(paramiko.SSHClient):  # type: ignore[misc]  # paramiko ships no types
    """An SSHClient that rejects unknown host keys; testinfra's WarningPolicy is ignored."""

    def __init__(self, known: KnownHosts, host: str, port: int | None) -> None:
        super().__init__()
        self._pinned = known is not None
        if known is None:
            with contextlib.suppress(OSError, paramiko.SSHException):
                self.load_system_host_keys()
        elif isinstance(known, str):
            self.load_host_keys(os.path.expanduser(known))
        else:
            store = self.get_host_keys()
            for line in pinned_lines(known, host, port):
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
                if entry is not None and entry.key is not None:
                    for name in entry.hostnames:
                        store.add(name, entry.key.get_name(), entry.key)
        super().set_missing_host_key_policy(paramiko.RejectPolicy())

    def set_missing_host_key_policy(self, policy: Any) -> None:
        # testinfra sets WarningPolicy (accept any key) on every client: refused.  An
        # explicit "StrictHostKeyChecking no" in the host's ssh_config (IgnorePolicy) is the
        # operator's choice, honoured only when the target pins no keys.
        if isinstance(policy, IgnorePolicy) and not self._pinned:
            super().set_missing_host_key_policy(policy)


class StrictParamikoBackend(ParamikoBackend):  # type: ignore[misc]  # testinfra's backends are untyped here
    """testinfra's paramiko backend, trusting only known host keys (see the module doc)."""

    def __init__(self, hostspec: str, known_hosts: KnownHosts = None, **kwargs: Any) -> None:
        super().__init__(hostspec, **kwargs)
        self.known_hosts = known_hosts

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        port = int(self.host.port) if self.host.port else 22
        client = _TrustingOnlyKnownKeys(self.known_hosts, self.host.name, port)
        cfg: dict[str, Any] = {"hostname": self.host.name, "port": port, "username": self.host.user,
                               "timeout": self.timeout, "password": self.host.password}
        config_path = self.ssh_config or os.path.join(os.path.expanduser("~"), ".ssh", "config")
        if Path(config_path).is_file():
            ssh_config = paramiko.SSHConfig()
            with open(config_path) as fh:
                ssh_config.parse(fh)
            self._load_ssh_config(client, cfg, ssh_config, os.path.dirname(config_path))
        if cfg["hostname"] != self.host.name and isinstance(self.known_hosts, list | tuple):
            # an ssh_config HostName alias: the pinned keys belong to the real address too
            for line in pinned_lines(self.known_hosts, cfg["hostname"], cfg["port"]):
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
                if entry is not None and entry.key is not None:
                    for name in entry.hostnames:
                        client.get_host_keys().add(name, entry.key.get_name(), entry.key)
        if self.ssh_identity_file:
            cfg["key_filename"] = self.ssh_identity_file
        client.connect(**cfg)
        return client
