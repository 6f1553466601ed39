"""High availability: instance health and the failover drill (``probes``), the target fragment (``spec``) and the declared checks (``family``)."""
