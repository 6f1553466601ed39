@backups
Feature: Backups and recovery
  Backups exist where the target says, are recent and kept long enough, hold everything the
  profile lists, read back completely, are encrypted and copied off-site where required;
  PostgreSQL archives its WAL for point-in-time recovery; and the newest backup really
  restores, within the recovery time objective.  Locations are read through testinfra (local
  paths, ssh://); backup contents are only ever opened as copies on the checking host.

  @high
  Scenario: The newest backups are recent enough
    When the backup locations are listed
    Then the newest full backup in each location is younger than the profile's full-backup age
    And the newest restore point in each location is younger than the profile's incremental age

  @medium
  Scenario: Enough full backups are retained
    When the backup locations are listed
    Then each location keeps at least the profile's minimum of full backups

  @high
  Scenario: The backup set is complete and current
    When the backup locations are listed
    And the files the backups cover are inspected on their hosts
    Then every kind of content the profile lists is backed up after its last change

  @critical
  Scenario: The newest backups are intact
    When the backup locations are listed
    And the newest backup in each location is copied and read back
    Then each newest backup matches its manifest and reads back completely

  @high
  Scenario: Backups are encrypted where required
    When the backup locations are listed
    And the first bytes of the newest backup in each location are read
    Then no newest backup is stored in plaintext

  @high
  Scenario: A copy of the newest backup is kept off-site
    When the backup locations are listed
    And each off-site location is searched for the newest backup
    Then every newest backup has an identical copy on another host

  @high
  Scenario: PostgreSQL point-in-time recovery is armed
    When the WAL archiver of each PostgreSQL database is queried
    Then archiving is on, not failing, and recent enough

  @disruptive @high
  Scenario: The newest backup restores within the recovery time objective
    When the backup locations are listed
    And the newest backup of each database is restored into its scratch space
    Then the restored tables hold the source's row counts within the profile's RTO
