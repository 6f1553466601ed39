"""HTTP: the plain-HTTP redirect to HTTPS, HSTS, security headers and the health endpoint.

``probes`` measures (single requests, no redirects followed; ``send`` is shared with the
CORS and auth probes); ``family`` declares the checks (features/http.feature).
"""
