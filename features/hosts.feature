@hosts
Feature: Host hardware and software
  Every host of the target is sized for its role as the tier requires, runs a supported
  operating system, and has the software versions the profile names. Facts are read from
  the live host over its testinfra connection (local, ssh, docker, ...).

  @critical
  Scenario: Each role has the number of hosts the tier requires
    Given the hosts of the target
    When the hosts are counted by role
    Then each role has as many hosts as the profile requires

  @high
  Scenario: CPU cores
    Given the hosts of the target
    When the CPU cores of each host are measured
    Then each host has at least the CPU cores its role requires

  @high
  Scenario: Memory
    Given the hosts of the target
    When the memory of each host is measured
    Then each host has at least the memory its role requires

  @high
  Scenario: Disk size of the data path
    Given the hosts of the target
    When the filesystem holding each host's data path is measured
    Then each data filesystem is at least the size its role requires

  @medium
  Scenario: Storage is solid-state
    Given the hosts of the target
    When the storage device behind each host's data path is identified
    Then each data device is of the kind its role requires

  @medium
  Scenario: Network interface speed
    Given the hosts of the target
    When the link speed of each host's network interfaces is read
    Then each host has a link at least as fast as its role requires

  @high
  Scenario: GPU presence and memory
    Given the hosts of the target
    When the GPUs of each host are listed
    Then each host has the GPUs its role requires

  @medium
  Scenario: Operating system
    Given the hosts of the target
    When the operating system of each host is read
    Then each host runs the operating system family the profile requires

  @high
  Scenario: Software versions
    Given the hosts of the target
    When the versions of the software the profile names are read on each host
    Then each host has at least the versions the profile requires
