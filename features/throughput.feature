@throughput @disruptive
Feature: Throughput: the inference core sustains the tier's load
  The inference endpoint is loaded at a constant arrival rate (open loop) for the profile's
  duration: the tier's rate in analyses per minute (APM) when the profile sets one, otherwise
  the target's baseline rate.  Warm-up, ramp and steady phase are one continuous arrival
  schedule.  Latency is measured from each request's scheduled send time, so a target that
  falls behind cannot hide its queue; a percentile is judged only from enough requests for a
  confidence bound.  A success is the expected HTTP status and, where the target names one,
  the expected value in the JSON answer; a request mix counts analyses, not requests.  These
  checks load the target and run only with --allow-disruptive.

  @high
  Scenario: The inference core sustains the tier's APM
    Given the target's inference endpoint and its request mix
    When the endpoint is loaded at the tier's rate for the profile's duration
    Then the analyses completed per minute are at least the tier's APM

  @high
  Scenario: The error rate under the tier's load is at most the profile's maximum
    When the endpoint is loaded at the tier's rate for the profile's duration
    Then the share of requests failing the success rule is at most the profile's maximum

  @high
  Scenario: The p95 latency under the tier's load is at most the profile's limit
    When the endpoint is loaded at the tier's rate until the p95 has enough samples
    Then the p95 latency from the scheduled send time is at most the profile's limit

  @medium
  Scenario: Capacity headroom above the tier's APM
    When the knee is searched by doubling and bisection between the last good and the first bad rate
    Then the capacity is at least the required headroom over the tier's APM

  @high
  Scenario: Latency has not regressed against the stored baseline
    When the endpoint is loaded at the baseline rate for the profile's duration
    Then the p95 latency has not regressed more than the profile allows against the stored baseline
