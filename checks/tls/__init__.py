"""TLS: protocol versions, cipher suites, the certificate and known vulnerabilities.

``probes`` measures (one sslyze scan of every TLS endpoint); ``family`` declares the
checks (features/tls.feature is their checklist).
"""
