@containers
Feature: Containers: Docker Engine and Compose deployments
  The deployment runs on a supported Docker Engine as a Docker Compose project. Each
  declared service runs in its own container, healthy, restarted by the engine, publishing
  only the declared ports, keeping data on volumes, as an unprivileged user, with its
  secrets outside the Compose file, pinned images and rotated logs. golive reads all of it
  through the Docker Engine API and changes nothing.

  Background:
    Given the target names the Docker Engine, the Compose project and its declared services

  @high
  Scenario: Docker Engine version is supported
    When the engine's version is read
    Then it is at least the tier's minimum version

  @medium
  Scenario: Docker Compose version is supported
    When the Compose version that created the project's containers is read from their labels
    Then it is at least the tier's minimum version

  @high
  Scenario: Services are installed as a Docker Compose project
    When the containers of each declared service are listed
    Then each was created by Docker Compose for the project, on a plain Docker Engine

  @critical
  Scenario: Every declared service runs in its own container
    When the containers of each declared service are listed with their state
    Then each service has its own container and every one of them is running

  @high
  Scenario: Each service has a healthcheck and is healthy
    When each container's healthcheck settings and health status are read
    Then a healthcheck is defined within the tier's interval, timeout and retries
    And the engine reports the container healthy

  @high
  Scenario: Restart policy is as required
    When each container's restart policy is read
    Then it is one the tier allows

  @critical
  Scenario: Published ports are exactly the declared ones
    When each container's published ports are read
    Then they are exactly the ports the target declares, on the declared addresses
    And no other service publishes anything

  @critical
  Scenario: Stateful services keep their data on volumes
    When the mounts of each stateful service's container are read
    Then every declared data path is on a named volume or a bind mount

  @medium
  Scenario: All services share one user-defined network
    When the networks of every container of the project are read
    Then one user-defined network holds all of them

  @high
  Scenario: Container processes do not run as root
    When the user ids of each container's processes are read
    Then none of them is root

  @high
  Scenario: Required environment variables are set
    When the names of each container's environment variables are read, without their values
    Then every variable the target requires for the service is set

  @critical
  Scenario: No literal secrets in the Compose deployment
    When the Compose file and its env files are inspected
    Then no secret is written literally into the Compose file
    And the env files are private and not tracked by git

  @medium
  Scenario: Images are pinned to a version
    When each container's image reference is read
    Then it names a version tag other than latest, or a digest

  @medium
  Scenario: Running images are the ones the Compose file names
    When each container's image is compared with the Compose file's
    Then reference and image id are the same

  @medium
  Scenario: Container logs are rotated
    When each container's logging configuration is read
    Then its logs are rotated or shipped off the host

  @low
  Scenario: Every service writes logs
    When the recent logs of each container are measured, without keeping their text
    Then every service has written log output

  @high
  Scenario: GPU services have GPU access
    When each GPU service's device requests are read and nvidia-smi runs inside its container
    Then the container requests a GPU and sees one

  @medium
  Scenario: Services start after the services they depend on
    When each service's depends_on is read from the Compose file, in list or mapping form with its condition
    Then it lists every service the target says this one must start after

  @high
  Scenario: Services reach each other by Compose service name
    When the host part of each declared connection variable is read from the Compose file, without the rest of its value
    And the networks of both services' containers are read with the names the engine's DNS answers to there
    Then the host is the target's Compose service name or an alias the Compose file declares, not an address, localhost or a container name
    And both containers share a user-defined network on which the target answers to that name
