@http
Feature: HTTP: redirect to HTTPS, HSTS, security headers and health
  Plain HTTP only redirects (permanently) to HTTPS on the same host; HTTPS responses carry
  Strict-Transport-Security with at least the tier's max-age and the security headers the
  profile lists; the health endpoint answers with the expected status.

  @high
  Scenario: Plain HTTP redirects to HTTPS
    When the plain HTTP endpoint is requested without following redirects
    Then it answers with a permanent redirect to https on the same host

  @high
  Scenario: HSTS is sent with a long enough max-age
    When an HTTPS response of the public endpoint is read
    Then it carries Strict-Transport-Security with at least the required max-age

  @medium
  Scenario: Security headers are present
    When the security headers of the public endpoint are read
    Then every header the profile lists is present

  @high
  Scenario: The health endpoint answers
    When the health endpoint is requested
    Then it answers with the expected status

  @high
  Scenario: Every page the deployment must serve answers
    When each page the profile requires and the target declares is requested
    Then each answers with its declared status, content type and body
