"""Fixtures of the example: the server serves app/, and Pyodide pages get app/chat.py."""

from collections.abc import Callable
from pathlib import Path

import pytest

from pyrt.pytest_plugin import ServerProcess

APP = Path(__file__).parent / "app"


@pytest.fixture
def pyrt_page_files() -> list[Path]:
    """Every Pyodide page of these tests can ``import chat``."""
    return [APP / "chat.py"]


@pytest.fixture
def chat_server(pyrt_start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """pyrt's server with its default settings, serving the chat page (app/index.html)."""
    return pyrt_start_server("--web-dir", str(APP))
