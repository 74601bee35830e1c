"""thermact: per-person action detection on low-resolution ceiling thermal sensors."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
