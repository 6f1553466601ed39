"""Backups and recovery (features/backups.feature, docs/backups.md).

- :mod:`checks.backups.family` -- the declared checks;
- :mod:`checks.backups.spec` -- the ``requirements.backups`` block and the target's ``backups:``
  entries (:class:`~checks.backups.spec.BackupSpec`);
- :mod:`checks.backups.location` -- where backups are (local, ssh://, HOST:/path) and reading them;
- :mod:`checks.backups.inventory` -- listing a location: backups, their class (full or
  incremental), age and the host's clock; manifests;
- :mod:`checks.backups.content` -- format sniffing, encryption verdict, decrypt/decompress and
  complete read-back of local copies;
- :mod:`checks.backups.probes` -- integrity, encryption, off-site copy, completeness;
- :mod:`checks.backups.postgres` -- psql, the WAL archiver (PITR), row counts;
- :mod:`checks.backups.drill` -- the restore drill (disruptive), cleaned up on every exit path.

Probes return :class:`golive.model.Measurement`; they never decide pass or fail.  This module
imports nothing, so declaring the family (registry) loads none of the probes or testinfra.
"""
