"""The reference pyrt server (CPython only): an ASGI app on Starlette.

``create_app()`` builds the app so it can be mounted into any Starlette/FastAPI application;
``serve.py`` at the repository root (or ``python -m pyrt.server``) is the command-line entry point.
"""

from pyrt.server.app import PyrtApp, create_app
from pyrt.server.application import Handler, HandlerError, IncomingMessage, echo_handler
from pyrt.server.auth import make_token, verify_token
from pyrt.server.brokers import Broker, MemoryBroker
from pyrt.server.settings import Settings

__all__ = [
    "Broker",
    "Handler",
    "HandlerError",
    "IncomingMessage",
    "MemoryBroker",
    "PyrtApp",
    "Settings",
    "create_app",
    "echo_handler",
    "make_token",
    "verify_token",
]
