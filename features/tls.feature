@tls
Feature: TLS: protocol versions, cipher suites, certificate and known vulnerabilities
  Every TLS endpoint of the target (the public entrypoint, the health URL when it is served
  elsewhere, and endpoints.tls, which may name STARTTLS services such as PostgreSQL) is
  scanned once with sslyze; each item below reads that one scan.  A STARTTLS service upgrades
  the connection to TLS.  Obsolete protocol versions are refused, the oldest version offered meets the
  profile's minimum, TLS 1.3 is offered where the tier asks for it, no weak cipher suite is
  accepted, the certificate chains to a trusted root, names the host, is valid long enough
  and has a strong key, the ephemeral key exchange (DHE group, ECDHE curve) is strong enough,
  and no known TLS vulnerability is present.

  @critical
  Scenario: STARTTLS services offer TLS
    Given the target names STARTTLS services in endpoints.tls (postgres://, smtp://, ...)
    When each one is asked to upgrade its connection to TLS and a handshake is attempted
    Then every one of them upgrades (PostgreSQL answers 'S' to the SSLRequest)

  @critical
  Scenario: Obsolete protocol versions are refused
    When the TLS endpoints of the target are scanned
    Then no forbidden protocol version is offered

  @critical
  Scenario: The oldest protocol version offered meets the minimum
    When the TLS endpoints of the target are scanned
    Then the lowest protocol version offered is at least the profile's minimum

  @high
  Scenario: TLS 1.3 is offered
    When the TLS endpoints of the target are scanned
    Then TLS 1.3 is offered where the profile requires it

  @high
  Scenario: No weak cipher suite is accepted
    When the TLS endpoints of the target are scanned
    Then no weak cipher suite is accepted

  @critical
  Scenario: The certificate chain is trusted
    When the TLS endpoints of the target are scanned
    Then each certificate chains to a trusted root

  @critical
  Scenario: The certificate matches the host name
    When the TLS endpoints of the target are scanned
    Then each certificate names the host it is served for

  @critical
  Scenario: The certificate is valid for long enough
    When the TLS endpoints of the target are scanned
    Then each certificate has at least the required days left before it expires

  @high
  Scenario: The certificate key is strong enough
    When the TLS endpoints of the target are scanned
    Then each certificate key has at least the required size

  @critical
  Scenario: No known TLS vulnerability
    When the TLS endpoints of the target are scanned
    Then no known TLS vulnerability is found

  @high
  Scenario: The ephemeral key exchange is strong enough
    When the TLS endpoints of the target are scanned
    Then every DHE group and ECDHE curve offered is at least the profile's minimum size

  @high
  Scenario: The endpoint follows the Mozilla server-side TLS configuration
    When the TLS endpoints of the target are scanned with sslyze's Mozilla checker
    Then every rule of the configuration the profile names holds
