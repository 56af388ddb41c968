"""The reference pyrt server (CPython only): an ASGI app on Starlette.

``create_app()`` builds the app so it can be mounted into any Starlette/FastAPI application;
``serve.py`` at the repository root is the command-line entry point.
"""

from pyrt.server.app import create_app
from pyrt.server.settings import Settings

__all__ = ["Settings", "create_app"]
