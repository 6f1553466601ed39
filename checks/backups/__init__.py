"""Backups and recovery probes (features/backups.feature, docs/backups.md).

- :mod:`checks.backups.location` -- where backups are (local, ssh://, HOST:/path) and reading them;
- :mod:`checks.backups.inventory` -- listing a location: backups, their class (full or
  incremental), age and the host's clock; manifests;
- :mod:`checks.backups.content` -- format sniffing, encryption verdict, decrypt/decompress and
  complete read-back of local copies;
- :mod:`checks.backups.probes` -- integrity, encryption, off-site copy, completeness;
- :mod:`checks.backups.postgres` -- psql, the WAL archiver (PITR), row counts;
- :mod:`checks.backups.drill` -- the restore drill (disruptive), cleaned up on every exit path.

Probes return :class:`golive.model.Measurement`; they never decide pass or fail.
"""
from __future__ import annotations

from checks.backups.drill import DrillInterrupted, restore_postgres, restore_sqlite
from checks.backups.inventory import BackupFile, Inventory, full_count, list_location, newest_age, subject
from checks.backups.location import Location, parse_location
from checks.backups.postgres import archiver, connection
from checks.backups.probes import completeness, encryption, integrity, offsite, source_times

__all__ = [
    "BackupFile", "DrillInterrupted", "Inventory", "Location", "archiver", "completeness", "connection",
    "encryption", "full_count", "integrity", "list_location", "newest_age", "offsite", "parse_location",
    "restore_postgres", "restore_sqlite", "source_times", "subject",
]
