@cors
Feature: CORS: only the allowed origins, never a wildcard with credentials
  A browser's preflight (OPTIONS with Origin and Access-Control-Request-Method) and simple
  request are sent from each origin: the allowed origins of the target are allowed (with the
  methods and headers the profile lists), any other origin is not, "*" is never combined with
  credentials, the request's Origin is not reflected back and the opaque origin "null" is
  not allowed.

  @medium
  Scenario: Allowed origins are allowed
    When the allowed origins send a preflight and a simple request
    Then each allowed origin is allowed with the required methods and headers

  @high
  Scenario: A disallowed origin is refused
    When the disallowed origins send a preflight and a simple request
    Then no disallowed origin is allowed

  @critical
  Scenario: No wildcard origin together with credentials
    When an allowed and an unknown origin send a preflight and a simple request
    Then no answer allows any origin together with credentials

  @critical
  Scenario: The Origin header is not reflected
    When a random origin sends a preflight and a simple request
    Then the random origin is not echoed back as allowed

  @high
  Scenario: The null origin is not allowed
    When the origin null sends a preflight and a simple request
    Then the null origin is not allowed

  @critical
  Scenario: Origins that only look allowed are refused
    When attack origins derived from each allowed origin send a preflight and a simple request
    Then none of them is allowed, reflections vary on Origin and the preflight reflects no method or header
