"""CORS: what the public entrypoint answers a browser's preflight and simple request from
allowed, disallowed, random and ``null`` origins.

``probes`` measures; ``family`` declares the checks and the target's ``cors:`` section
(features/cors.feature).
"""
