"""Throughput: the inference core sustains the tier's analyses per minute within the error
and latency limits, has capacity headroom, and has not regressed against its baseline.

``load`` is the probe (golive's open-loop load generator, also ``python -m
checks.throughput.load``); ``family`` declares the checks (features/throughput.feature is
their checklist).
"""
