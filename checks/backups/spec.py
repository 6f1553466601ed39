"""The backups family's profile block and target fragment.

Profile ``requirements.backups`` (:class:`BackupsReq`): maximum ages, retention, the
contents the backups must hold, and which of integrity, encryption, off-site copies, PITR
and the restore drill's RTO the tier requires.  Target ``backups:`` (a list of
:class:`BackupSpec`): one entry per backup location, with what the probes need to list,
read, decrypt and restore it.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from golive.blocks import Block, Strict
from golive.units import Duration
from golive.urls import connection_uri

BackupContent = Literal["database", "config", "keys", "code", "features"]


class BackupAge(Strict):
    incremental: Duration | None = None
    full: Duration | None = None


class BackupsReq(Block):
    """What the tier requires of its backups (docs/backups.md)."""

    max_age: BackupAge | None = None
    retention_full_min: int | None = Field(default=None, ge=1, le=100000)
    contents: list[BackupContent] = Field(default_factory=list)
    integrity: bool = True
    encryption: bool = False
    offsite: bool = False
    pitr: bool = False
    rpo: Duration | None = Field(default=None, description="max age of the last archived WAL segment (pitr)")
    rto: Duration | None = None


class BackupSpec(Strict):
    """One backup location (docs/backups.md).  A *location* is a local path (``/var/backups``,
    ``local:///var/backups``), ``ssh://user@host[:port]/path`` (read through testinfra with
    ``ssh_config``/``ssh_identity_file``/``timeout_s`` below) or ``HOST:/path`` where HOST is
    a name in ``hosts:`` (its connection options apply)."""

    kind: Literal["postgres", "sqlite", "files"]
    location: str
    database: str | None = Field(default=None, description=(
        "postgres: postgresql://user@host:port/db (password as ${ENV} or password_file); "
        "sqlite: the live database file (a location)"))
    password_file: str | None = Field(default=None, description="file holding the database password (postgres)")
    offsite: str | None = Field(default=None, description="second location, on another host, holding copies")
    scratch: str | None = Field(default=None, description=(
        "restore drill: scratch database name (postgres; must not exist) or folder on the checking host (sqlite)"))
    pattern: str = Field(default="*", description="glob of the backup files in the location")
    full_pattern: str | None = Field(default=None, description="glob of full backups (default: every backup)")
    incremental_pattern: str | None = Field(default=None, description="glob of incremental backups (default: none)")
    manifest: str | None = Field(default=None, description=(
        "checksum manifest in the location (default: manifest.json or SHA256SUMS when present)"))
    contents: list[BackupContent] | None = Field(default=None, description=(
        "what the backups hold (default: database for postgres/sqlite, nothing for files)"))
    sources: list[str] = Field(default_factory=list, description=(
        "files the backups cover (configs, keys, code, features); each must be older than the newest backup"))
    wal_archive: str | None = Field(default=None, description="postgres: the location archive_command copies WAL to")
    decrypt_command: str | None = Field(default=None, description=(
        "shell command run on the checking host: encrypted backup on stdin, plaintext on stdout "
        "(e.g. 'age -d -i /etc/golive/backup.key')"))
    ssh_config: str | None = None
    ssh_identity_file: str | None = None
    timeout_s: float = Field(default=30, gt=0, le=3600, description="bound on each command on a location's host")
    restore_timeout_s: float = Field(default=1800, gt=0, le=86400, description="bound on the restore drill")

    @field_validator("location", "offsite")
    @classmethod
    def _location(cls, v: str | None) -> str | None:
        return None if v is None else connection_uri(v)

    @field_validator("decrypt_command")
    @classmethod
    def _no_inline_secret(cls, v: str | None) -> str | None:
        if v is not None and re.search(r"-pass\s+pass:|--passphrase[\s=]|(?:^|\s)-k\s", v):
            raise ValueError("decrypt_command holds a literal passphrase; read it from a file "
                             "(e.g. openssl ... -pass file:/path, gpg --passphrase-file /path, age -i /path/key)")
        return v
