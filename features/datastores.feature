@datastores
Feature: Data stores as deployed: PostgreSQL, Redis, SQLite and feature store files
  The databases the application runs on are checked as they are deployed, not only as they
  are backed up: reachable from where the application runs, initialised and migrated, with
  a least-privileged application role, encrypted application sessions, replication and
  connection headroom where the tier asks for them; Redis locked down and persistent; an
  SQLite file private to the service user and intact; a feature store file (HDF5) private to
  the service user, with the vector dimension the application is configured for and image
  paths that exist.  golive reads with its own read-only
  role; no password it uses ever appears in a report.

  @high
  Scenario: PostgreSQL answers and its version is supported
    Given the target's PostgreSQL DSN and golive's read-only role
    When golive connects and reads server_version_num
    Then the server answers and its version is at least the tier's minimum

  @critical
  Scenario: PostgreSQL is reachable from every app host
    Given the target's app hosts
    When pg_isready (or a TCP connect) runs on each app host towards the database
    Then every app host reaches a server accepting connections

  @high
  Scenario: The expected tables exist and hold rows
    Given the tables the application needs, from the target
    When each table is looked up and probed for one row
    Then every table exists and holds at least one row

  @high
  Scenario: Schema migrations are at the release's head
    Given the release's migration revision, from the target
    When the migrations table is read
    Then it holds exactly that revision

  @critical
  Scenario: The app's database role has least privilege
    Given the application's database role
    When its attributes and the schemas and databases it owns are read
    Then it is no superuser, cannot create roles or databases, and owns only its own objects

  @high
  Scenario: The app's connections to PostgreSQL are encrypted
    Given the application is connected to PostgreSQL
    When pg_stat_ssl is read for the application role's sessions
    Then every TCP session of the application uses TLS

  @high
  Scenario: PostgreSQL streams to its replicas
    Given the primary and the replicas the target declares
    When pg_stat_replication is read on the primary and pg_is_in_recovery() on each replica
    Then the primary streams to at least the required number of replicas and each replica is a standby

  @medium
  Scenario: PostgreSQL connections stay below max_connections
    When the client connections in use and max_connections are read
    Then the connections in use leave room below max_connections

  @high
  Scenario: Redis answers with the target's credentials
    When golive authenticates to Redis and sends PING and INFO server
    Then Redis answers PONG

  @critical
  Scenario: Redis refuses unauthenticated clients
    When a client sends PING without authenticating
    Then Redis refuses it with NOAUTH

  @high
  Scenario: Redis listens only on its declared addresses
    When Redis's bind setting is read
    Then it lists only the declared addresses and no wildcard

  @medium
  Scenario: Redis persists data as the tier requires
    When Redis's AOF and RDB settings and their last write status are read
    Then the persistence the tier requires is on and working

  @high
  Scenario: Redis cluster mode is as the tier requires
    When INFO cluster and CLUSTER INFO are read
    Then Redis runs in the mode the tier requires, a cluster with every slot covered or standalone

  @high
  Scenario: The SQLite file belongs to the service user and is not readable by others
    Given the database file's path and the service user, from the target
    When the file is stat'ed on its host
    Then it is a regular file owned by the service user with no permission beyond the tier's maximum mode

  @high
  Scenario: The SQLite database passes integrity_check
    When PRAGMA integrity_check runs on a read-only open of the file on its host
    Then SQLite answers ok

  @high
  Scenario: The service user can write the SQLite database
    When test -w runs as the service user on the file and its folder
    Then both are writable

  @high
  Scenario: Several app hosts share one network database
    Given the target's app hosts and declared databases
    When they are counted
    Then one app host uses any database, several share one network database and no SQLite

  @critical
  Scenario: The feature store file opens as HDF5 with the configured vector dimension
    Given the feature store file's path, from the target, and the vector dimension, from the profile
    When the file is opened read-only on its host with the host's own Python and h5py
    Then it is an HDF5 file whose vectors' dataset has the configured dimension

  @high
  Scenario: The feature store file belongs to the service user and is not readable by others
    Given the feature store file's path and the service user, from the target
    When the file is stat'ed on its host and test -r runs as the service user
    Then it is a regular file owned by the service user, readable by it, with no permission beyond the tier's maximum mode

  @high
  Scenario: Image paths stored in the feature store exist on storage
    Given the feature store file and the folder relative image paths resolve against
    When a sample of the stored image paths is tested on the file's host
    Then every sampled image path exists
