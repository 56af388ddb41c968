"""pyrt: resilient real-time connections for Python in the browser."""

from pyrt.backoff import Backoff

__all__ = ["Backoff"]
__version__ = "0.1.0"
