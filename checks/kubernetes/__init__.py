"""Kubernetes: the cluster's version, platform components, shared storage and the
workloads of the target's namespace, read from the API server with GET requests only.

``probes`` measures (the official kubernetes client, imported only when a probe runs);
``family`` declares the checks (features/kubernetes.feature is their checklist).
"""
