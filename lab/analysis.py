"""One analysis of the lab's inference stand-ins: real CPU work of a known cost.

Standard library only: :mod:`lab.inference` (the reference lab's aiohttp service) and the
Oz Compose lab's BIO container (:mod:`lab.systems.oz_bio`, run by the image's Debian
Python, which has no aiohttp) share it, so both labs' APM is set the same way.
"""
from __future__ import annotations

import hashlib
import time


def burn_cpu(seed: bytes, cost_ms: float) -> str:
    """Hash a SHA-256 chain until this thread has used ``cost_ms`` of CPU time.

    Returns the final digest (hex).  ``time.thread_time`` counts only this thread's CPU, so
    the event loop thread's work is not deducted from the analysis.
    """
    deadline = time.thread_time() + cost_ms / 1000.0
    digest = hashlib.sha256(seed).digest()
    while True:
        for _ in range(200):
            digest = hashlib.sha256(digest).digest()
        if time.thread_time() >= deadline:
            return digest.hex()
