"""Docker Engine and Compose deployments, read through the Engine API: engine and Compose
versions, every declared service running in its own Compose-created container, healthchecks
and restart policies, published ports, data on volumes, one network, non-root processes,
required environment variable names, no literal secrets, pinned images that match the
Compose file, rotated and non-empty logs, GPU access for GPU services."""
