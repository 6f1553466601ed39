@services
Feature: Services: what runs, as whom, with what
  Each service the target declares runs on its host as its own unprivileged account, with the
  workers it is configured for, holding its own port, with the environment variables it needs;
  its secret files are private to it, its Python environment has no broken requirements, and
  the reverse proxy's configuration is valid and points at the application; services come back
  at boot or after a crash, and their hosts have no security updates or reboots left pending. Facts are read
  over each host's connection; environment values never leave the host, only names do.

  Scenario: Each declared service is running
    When the master process of each service is found from its pidfile, unit or pattern
    Then every service has a running process

  Scenario: Services run as their own non-root account
    When the account of each service's process is read
    Then it is the declared account, and not root

  Scenario: Each service runs its configured workers
    When the worker processes under each service's master are counted
    Then there are as many as configured

  Scenario: Each service holds its own port
    When the processes listening on each service's port are read
    Then only the service's own processes hold it

  Scenario: Services have the environment variables they need
    When the names of each service process's environment variables are read on its host
    Then every required name is present

  Scenario: Secret files are private to the service's account
    When the owner and mode of each declared secret file are read
    Then each is owned by the service's account and not readable by others

  Scenario: The Python environment has no broken requirements
    When pip check runs in each service's interpreter
    Then it reports no broken requirements

  Scenario: The reverse proxy configuration is valid and points at the app
    When nginx checks the proxy's configuration
    Then it is valid and proxies to the application's port

  Scenario: Services start at boot or are restarted by their manager
    When each service's systemd unit is asked whether it is enabled at boot
    And a service run without systemd has its process manager's restart policy read
    Then every unit is enabled, and every other service has a restart policy that brings it back

  Scenario: No security updates are left pending
    When the package manager of each service host simulates an upgrade from its current lists
    And nothing is updated, downloaded or installed
    Then no update from a security origin is pending beyond the window
    And package lists too old to tell are reported as not verified

  Scenario: No installed update waits for a reboot
    When each service host's reboot-required flag is read
    Then no installed update waits for a reboot
