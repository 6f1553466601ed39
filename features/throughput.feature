@throughput @disruptive
Feature: Throughput: the inference core sustains the tier's load
  The inference endpoint is loaded at a constant arrival rate (open loop) for the profile's
  duration: the tier's rate in analyses per minute (APM) when the profile sets one, otherwise
  the target's baseline rate.  Latency is measured from each request's scheduled send time,
  so a target that falls behind cannot hide its queue.  A success is the expected HTTP status
  and, where the target names one, the expected value in the JSON answer.  These checks load
  the target and run only with --allow-disruptive.

  @high
  Scenario: The inference core sustains the tier's APM within the error and latency limits
    When the inference endpoint is loaded at the tier's rate for the profile's duration
    Then the achieved rate is at least the tier's APM
    And the error rate is at most the profile's maximum
    And the p95 latency is at most the profile's limit

  @medium
  Scenario: Capacity headroom above the tier's APM
    When the highest rate the inference endpoint sustains within the limits is searched
    Then the capacity is at least the required headroom over the tier's APM

  @high
  Scenario: Latency has not regressed against the stored baseline
    When the inference endpoint is loaded at the baseline rate for the profile's duration
    Then the p95 latency has not regressed more than the profile allows against the stored baseline
