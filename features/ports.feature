@ports
Feature: Ports: public entrypoints open, internal services closed
  Only the public entrypoints answer from the checking host's vantage; internal services
  (application servers, databases, admin APIs) cannot be reached from there and listen on
  loopback addresses only.

  @critical
  Scenario: Public HTTPS entrypoint is open
    When the public entrypoints are probed over TCP
    Then every public entrypoint accepts connections

  @high
  Scenario: Plain HTTP port answers
    When the plain HTTP endpoint is requested
    Then it answers with an HTTP status

  @critical
  Scenario: Internal ports are not reachable from outside
    When the internal ports are probed over TCP from the checking host
    Then none of them accepts a connection

  @high
  Scenario: Internal services listen on loopback only
    When the listening addresses of the internal services are read on their hosts
    Then each internal service listens on loopback addresses only

  @high
  Scenario: Every listener on a host is accounted for
    When every TCP and UDP listener on each host is read with its owning process
    Then each one on a non-loopback address is in the target's declared list
