"""Code of the README, run as written on CPython against a real ``serve.py`` with its default settings."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from collections.abc import Callable
from typing import Any

import httpx

from pyrt import WebSocketClient
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.wire.offsets import offset_key
from tests import REPO
from tests.server.cpython_support import run


def readme_block(containing: str) -> str:
    """The README's Python code block that contains ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    (found,) = [block for block in blocks if containing in block]
    return str(found)


def test_the_history_example_prints_each_items_offset_event_and_data_newest_first(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    published = [
        ({"headline": "hello"}, None),
        ({"headline": "pyrt ships"}, None),
        ({"headline": "a correction"}, "fix"),
    ]
    offsets = [
        httpx.post(
            f"{server.url}/publish",
            json={"channel": "news", "data": data, **({"event": event} if event else {})},
        ).json()["offset"]
        for data, event in published
    ]
    code = readme_block('client.history("news", limit=2, reverse=True)')
    scope: dict[str, Any] = {}
    exec(f"async def example(client):\n{textwrap.indent(code, '    ')}", scope)
    printed = io.StringIO()

    async def scenario() -> None:
        async with WebSocketClient(f"{server.ws_url}/ws") as client:
            with contextlib.redirect_stdout(printed):
                await scope["example"](client)

    run(scenario)
    assert printed.getvalue().splitlines() == [
        f"{offsets[2]} fix {{'headline': 'a correction'}}",
        f"{offsets[1]} message {{'headline': 'pyrt ships'}}",
    ]
    # Opaque strings the server made and orders, as the README says: not 1, 2, 3.
    assert all(re.fullmatch(r"\d{10,}-\d+", offset) for offset in offsets)
    keys = [offset_key(offset) for offset in offsets]
    assert keys == sorted(keys)
    assert offsets != ["1", "2", "3"]


def test_the_array_example_delivers_an_equal_array(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    import numpy as np

    server = pyrt_start_server()
    drawn: list[Any] = []

    async def scenario() -> None:
        async with WebSocketClient(f"{server.ws_url}/ws", heartbeat=None) as client:
            code = textwrap.indent(readme_block('publish("plot"'), "    ")
            namespace: dict[str, Any] = {"client": client, "draw": drawn.append}
            exec(f"async def example():\n{code}", namespace)
            await namespace["example"]()
            while not drawn:
                await client.history("plot", limit=1)  # a round trip: the publication is out by then
        assert np.array_equal(drawn[0], np.linspace(0, 1, 100_000, dtype=np.float32))
        assert drawn[0].dtype == np.float32

    run(scenario)
