"""Auth: protected paths refuse anonymous requests; a burst above the declared rate limit
is limited.

``probes`` measures; ``family`` declares the checks and the target's ``auth:`` section
(features/auth.feature).
"""
