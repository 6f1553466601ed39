@release
Feature: Release: the intended version, working endpoints, safe errors, private uploads, a passing smoke test
  The last items an operator ticks before go-live: the release that was meant to ship is the
  one running, every documented endpoint works, bad input is refused without crashing,
  errors reveal nothing of the code, stored files are not public, and the functional smoke
  test passes end to end. Writes (valid samples to POST/PUT endpoints, the bad-input probe
  and the smoke sequence) happen only with --allow-disruptive.

  Scenario: The intended release is deployed
    Given the intended version from the target or the CI environment
    When the running service's version endpoint and the host's checkout are read
    Then both are the intended version

  Scenario: Every documented endpoint answers a valid request
    Given the service's OpenAPI document
    When each operation is called once with a valid sample built from its schema
    Then none answers with a server error

  Scenario: Bad input is rejected with 4xx, never 5xx
    Given the service's OpenAPI document
    When malformed, wrong-type, incomplete and oversized input is sent to each operation
    Then every bad input is answered with a 4xx status

  Scenario: Errors show no stack trace or debug page
    When requests meant to make the service fail are sent
    Then no answer shows a stack trace or a framework's debug page

  Scenario: Stored uploads are not served anonymously
    When each stored upload is requested without credentials
    Then each is refused or not found

  Scenario: The declared smoke test passes
    When the target's smoke sequence runs step by step
    Then every step answers as declared

  Scenario: Manual release items are attested
    Given the manual items the tier requires (security test report, rollback plan, staging pass, ...)
    When their attestations are read
    Then each has a valid, unexpired attestation with its evidence
