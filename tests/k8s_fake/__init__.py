"""A stand-in for a Kubernetes API server (none can run on golive's build machines):
``server.FakeApiServer`` serves ``clusters.cluster(...)`` over HTTPS with a bearer token."""
