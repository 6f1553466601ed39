"""PostgreSQL as a STARTTLS service, for the TLS family's self-test (``postgres://`` endpoints).

:func:`start_pg_tls` makes one PostgreSQL 15 cluster with the cluster tools of
:mod:`lab.datastores` (``pg_createcluster`` on a free loopback port, data in a private
``/tmp/golive-pg-*`` folder, a ``golive-lab-<pid>-<hex>`` name that
:func:`lab.postgres.reap_stale_clusters` recognises), serving a certificate of the lab CA
(:func:`lab.certs.write_tls_files`) and configured as one of :data:`PG_TLS_VARIANTS`:

- ``compliant``: ``ssl = on``, TLS 1.2 and 1.3 only, ECDHE with AEAD suites (the lab's
  modern nginx suites);
- ``ssl_off``: ``ssl = off``: the server answers 'N' to the SSLRequest (no TLS at all);
- ``tls10``: ``ssl_min_protocol_version = 'TLSv1'`` with ``DEFAULT:@SECLEVEL=0`` (OpenSSL 3
  offers TLS 1.0/1.1 only at security level 0, as the nginx ``legacy_tls`` variant).

No database, role or session is made: the TLS scan never logs in.  :meth:`RunningPgTls.stop`
(idempotent; also at exit and on SIGINT/SIGTERM) drops the cluster and removes its folder.
Needs root (pg_createcluster, chown).
"""
from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

from lab.certs import TlsFiles
from lab.datastores import RunningPgPair
from lab.postgres import PG_VERSION, reap_stale_clusters
from lab.procs import LabError, register
from lab.variants import LEGACY_CIPHERS, MODERN_CIPHERS

PG_TLS_VARIANTS: dict[str, str] = {
    "compliant": ("ssl = on\nssl_min_protocol_version = 'TLSv1.2'\n"
                  f"ssl_ciphers = '{MODERN_CIPHERS}'\n"),
    "ssl_off": "ssl = off\n",
    "tls10": f"ssl = on\nssl_min_protocol_version = 'TLSv1'\nssl_ciphers = '{LEGACY_CIPHERS}'\n",
}


class RunningPgTls(RunningPgPair):
    """One PostgreSQL cluster whose only purpose is its TLS (see the module doc); it reuses
    the pair's cluster creation (port retries), ``log_tail`` and ``stop``."""

    def __init__(self, workdir: Path, tls: TlsFiles, variant: str) -> None:
        if variant not in PG_TLS_VARIANTS:
            raise LabError(f"unknown PostgreSQL TLS variant {variant!r}; one of {', '.join(PG_TLS_VARIANTS)}")
        super().__init__(workdir)
        self.tls = tls
        self.variant = variant

    def _conf(self, name: str) -> None:
        assert self.base is not None
        conf = Path(f"/etc/postgresql/{PG_VERSION}/{name}/conf.d/golive-lab.conf")
        conf.write_text(
            "listen_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\n"
            f"ssl_cert_file = '{self.base / 'server.crt'}'\nssl_key_file = '{self.base / 'server.key'}'\n"
            f"max_connections = 20\nshared_buffers = 16MB\n{PG_TLS_VARIANTS[self.variant]}")

    def _certificate(self, pg: pwd.struct_passwd) -> None:
        """The lab certificate, readable by the postgres account only."""
        assert self.base is not None
        for src, dst in ((self.tls.chain_file, "server.crt"), (self.tls.key_file, "server.key")):
            path = self.base / dst
            shutil.copyfile(src, path)
            os.chown(path, pg.pw_uid, pg.pw_gid)
            path.chmod(0o600)

    def start(self) -> None:
        from lab.postgres import require_postgres

        pg = require_postgres()
        reap_stale_clusters()
        self.dir.mkdir(parents=True, exist_ok=True)
        register(self)
        self.base = Path(tempfile.mkdtemp(prefix=f"golive-pg-{os.getpid()}-", dir="/tmp"))
        os.chown(self.base, pg.pw_uid, pg.pw_gid)
        self.base.chmod(0o700)
        self._certificate(pg)
        self.port = self._create(self.primary, self.base / "primary", self.base / "primary.log")

    @property
    def endpoint(self) -> str:
        """The target's ``endpoints.tls`` entry for this server."""
        return f"postgres://127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return f"<RunningPgTls {self.primary} {self.variant} port={self.port} stopped={self._stopped}>"


def start_pg_tls(workdir: Path, tls: TlsFiles, variant: str = "compliant") -> RunningPgTls:
    """Start one cluster of ``variant`` serving ``tls``'s certificate; on any failure what was
    made is removed and :class:`LabError` says what failed."""
    server = RunningPgTls(Path(workdir).resolve(), tls, variant)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
