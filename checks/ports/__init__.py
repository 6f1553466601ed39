"""Ports: public entrypoints open, internal services closed and bound to loopback.

``probes`` measures (TCP connects and HTTP from the checking host's vantage);
``family`` declares the checks (features/ports.feature is their checklist).
"""
