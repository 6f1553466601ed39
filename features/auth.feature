@auth
Feature: Authentication and rate limiting
  The API's protected paths refuse requests without credentials (401 or 403), and a bounded
  burst above the rate limit the target declares is answered with 429 (Too Many Requests).

  @critical
  Scenario: Protected paths refuse anonymous requests
    When the protected paths are requested without credentials
    Then each protected path refuses the request

  @high @disruptive
  Scenario: A burst above the declared rate limit is limited
    When a bounded burst above the declared rate limit is sent
    Then some requests of the burst are answered with the rate-limit status
