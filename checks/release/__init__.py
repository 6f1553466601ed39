"""Release: the deployed version, documented endpoints, input validation, debug pages, anonymous uploads and the declared smoke test (``probes``); ``family`` declares the checks."""
