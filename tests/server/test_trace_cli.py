"""python -m pyrt.server trace: tails a real server's trace in a terminal, one line per event."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Callable

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.trace_cli import describe
from tests.server.wsclient import Client, run

ADMIN = secrets.token_urlsafe(24)


def test_an_event_reads_as_one_line_with_time_session_and_fields() -> None:
    line = describe({"event": "refusal", "at": 0.5, "session": "s1", "user": "al", "code": "rate_limited"})
    assert line == "00:00:00.500 s1(al)       refusal code=rate_limited"
    publication = {
        "event": "publication",
        "at": 0,
        "channel": "c",
        "offset": "1-2",
        "subscribers": 2,
        "bytes": 5,
    }
    assert describe(publication) == "00:00:00.000 *            publication c@1-2 subscribers=2 bytes=5"


def test_the_command_tails_a_channel_and_refuses_without_a_token(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0", "--admin-token", ADMIN)
    command = [sys.executable, "-m", "pyrt.server", "trace", "--url", srv.url, "--channel", "news"]
    env = {k: v for k, v in os.environ.items() if k != "PYRT_ADMIN_TOKEN"}

    async def scenario() -> None:
        refused = await asyncio.create_subprocess_exec(
            *command, "--token", "wrong" * 4, env=env, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(refused.communicate(), 30)
        assert refused.returncode == 1
        assert b"401" in err
        tail = await asyncio.create_subprocess_exec(
            *command, env={**env, "PYRT_ADMIN_TOKEN": ADMIN}, stdout=asyncio.subprocess.PIPE
        )
        assert tail.stdout is not None
        try:
            client = await Client.connect(srv.ws_url)
            await client.send({"type": "subscribe", "channel": "news"})
            await client.expect("subscribed")
            lines: list[str] = []

            async def read() -> None:
                assert tail.stdout is not None
                while line := await tail.stdout.readline():
                    lines.append(line.decode())

            reading = asyncio.get_running_loop().create_task(read())
            async with asyncio.timeout(30):  # publish until the terminal shows one (it starts slowly)
                while not any(" publication news@" in line for line in lines):
                    await client.send(
                        {"type": "publish", "channel": "news", "id": f"n{len(lines)}", "data": 1}
                    )
                    await client.expect("ack")
                    await asyncio.sleep(0.2)
            reading.cancel()
            assert any(" publish channel=news id=n" in line for line in lines), lines
            await client.close()
        finally:
            tail.terminate()
            await tail.wait()

    run(scenario())
