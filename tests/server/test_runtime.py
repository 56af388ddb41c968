"""The runtime's registry: connections by identity, and the budget of answers queued per identity."""

from __future__ import annotations

import asyncio
from typing import Any

from pyrt.server.application import echo_handler
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.connection import Connection
from pyrt.server.runtime import Runtime, default_channel_policy
from pyrt.server.settings import Settings


def test_identities_are_the_subject_or_else_the_address() -> None:
    assert Runtime.identity("alice", "1.2.3.4") == "sub:alice"
    assert Runtime.identity(None, "1.2.3.4") == "ip:1.2.3.4"


def test_an_identity_may_queue_answers_up_to_its_budget_across_its_connections() -> None:
    async def scenario() -> list[bool]:
        runtime = Runtime(
            Settings(identity_queue_bytes=1000), MemoryBroker(), echo_handler, default_channel_policy
        )

        async def never_sends(message: dict[str, Any]) -> None:
            await asyncio.Event().wait()

        def connection(identity: str) -> Connection:
            conn = Connection(
                "ws", never_sends, stats=runtime.stats, limit_bytes=10_000, session="s", identity=identity
            )
            runtime.register(conn)
            return conn

        first, second, other = connection("ip:a"), connection("ip:a"), connection("ip:b")
        first.push("x" * 600)
        verdicts = [
            runtime.room_for(second, 300),
            runtime.room_for(second, 500),
            runtime.room_for(other, 900),
        ]
        runtime.unregister(first)
        verdicts.append(runtime.room_for(second, 500))  # what a closed connection held is gone
        for conn in (first, second, other):
            conn.detach()
        assert "ip:a" in runtime.identities
        runtime.unregister(second)
        runtime.unregister(other)
        verdicts.append(runtime.identities == {})
        return verdicts

    assert asyncio.run(scenario()) == [True, False, True, True, True]
