"""golive: deployment validation and compliance checks before go-live."""
from __future__ import annotations

__version__ = "0.1.0"
