"""Data stores as deployed (features/datastores.feature, docs/datastores.md).

- :mod:`checks.datastores.postgres` -- PostgreSQL with the read-only role the target names:
  version, expected tables with rows, migrations at head, the app role's privileges, TLS of
  the app's sessions, streaming replication, connection headroom; reachability from each
  app host's own vantage (run over that host's connection);
- :mod:`checks.datastores.redis` -- Redis: reachable with credentials, refusing anonymous
  clients, listening addresses, AOF/RDB persistence, cluster mode and slot coverage;
- :mod:`checks.datastores.sqlite` -- an SQLite file on its host: owner and mode,
  ``integrity_check``, writable by the service user;
- :mod:`checks.datastores.feature_store` -- a feature store file (HDF5: vectors and image
  paths) on its host: owner, mode, readable by the service user; opened with the host's own
  h5py (:mod:`checks.datastores.feature_store_reader`): the vectors' dimension and a sample
  of the stored image paths tested for existence;
- :mod:`checks.datastores.family` -- the declarations (requirements, target, checks).

Probes return :class:`golive.model.Measurement`; they never decide pass or fail.
"""
from __future__ import annotations
