@ha
Feature: High availability: redundant instances and a failover drill
  The service runs on enough instances behind a load balancer that checks their health, and
  losing one instance does not take the service down: requests keep succeeding within the
  profile's tolerance, full success returns within failover_max, and where the profile asks
  for a restart policy the stopped instance comes back by itself.

  The drill is an experiment: steady state, method (stop one instance at a time), rollback
  (the target's start action), steady state again. The rollback runs on every exit path -
  failure, error, Ctrl-C, SIGTERM, the drill's own time and request bounds - and every
  action is journaled in the evidence.

  @high
  Scenario: Enough instances are declared and each is healthy
    When each declared instance's own health URL is requested
    Then at least min_instances instances are healthy
    And every declared instance is healthy

  @high @disruptive
  Scenario: Failover drill: stopping one instance at a time keeps the service up
    Given a failover drill planned from the target's ha section and the profile's bounds
    When the drill runs: steady state, each instance stopped and restored in turn, steady state
    Then the steady state held before and after the drill
    And the service was fully successful again within failover_max after each stop
    And the failed share of requests during each failover stayed within error_rate_max
    And each stopped instance came back by itself where the profile requires a restart policy
    And every stopped instance was restored and is healthy
