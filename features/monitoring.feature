@monitoring
Feature: Monitoring, alerting and logging: will the operator know when it breaks?
  Prometheus scrapes every host and service and holds fresh series for the signals the
  tier names; alert rules for high error rate, unavailability and resource exhaustion are
  loaded and evaluate without error; Alertmanager routes them to a receiver that delivers;
  each host writes its application, access and error logs, structured, rotated and not at
  debug level in production; Grafana shows a dashboard.

  @high
  Scenario: Every host and service is scraped by Prometheus and up
    Given the target's hosts and services, each mapped to its scrape target by address or labels
    When Prometheus' active scrape targets and the up series are read
    Then each host and service has a scrape target whose up is 1

  @high
  Scenario: Host metrics are present and fresh
    Given the host signals the profile names (CPU, memory, disk I/O, network)
    When the timestamp of each signal's newest sample is queried for each host
    Then every signal is present and younger than the allowed number of scrape intervals

  @high
  Scenario: Service metrics are present and fresh
    Given the service signals the profile names (latency, success rate, queue length, processing time)
    When the timestamp of each signal's newest sample is queried for each service
    Then every signal is present and younger than the allowed number of scrape intervals

  @high
  Scenario: Alert rules for the required conditions are loaded and healthy
    Given the alert conditions the profile requires (high error rate, unavailability, resource exhaustion)
    When Prometheus' loaded alerting rules are read
    Then each condition has a rule whose health is ok and which has no evaluation error

  @high
  Scenario: Alertmanager routes the required alerts to a receiver
    Given the alerting rules of the required conditions
    When their labels are walked through the routing tree Alertmanager runs
    Then each reaches a receiver with at least one integration

  @high @disruptive
  Scenario: A synthetic alert reaches a receiver
    Given golive may disturb the deployment (--allow-disruptive)
    When a synthetic alert is posted to Alertmanager
    Then a receiver has it within the allowed time and the alert is resolved afterwards

  @high @disruptive
  Scenario: Stopping an instance fires the unavailability alert in time
    Given golive may disturb the deployment (--allow-disruptive)
    When one instance is stopped with the target's stop action
    Then the unavailability alert fires within its for plus evaluation interval plus one scrape
    And the instance is started again and scraped up

  @medium
  Scenario: Application, access and error logs are written
    When the newest write of each log on each host is read
    Then every log kind the profile names was written within the allowed age

  @medium
  Scenario: Application logs are structured
    When the last application log lines on each host are read
    Then each of them is a JSON object

  @medium
  Scenario: Logs are rotated
    When the logrotate configuration on each host is read
    Then every log file is covered by a rotation stanza or declared handler limits

  @medium
  Scenario: Production logs are not at debug level
    Given a production target
    When the level of the last application log lines, or the declared level, is read on each host
    Then no log is more verbose than the profile's minimum level

  @low
  Scenario: A Grafana dashboard exists
    Given the target names Grafana
    When Grafana's dashboard search is queried
    Then at least one dashboard is listed
