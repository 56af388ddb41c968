"""Helpers of the engine's tests: a harness on a fake server, the frames it sent, scripted peers."""

from __future__ import annotations

import json
from typing import Any

from pyrt.engine.states import State
from pyrt.testing import EngineHarness, FakePyrtServer
from pyrt.wire.limits import ServerLimits

NO_HB: dict[str, Any] = {"heartbeat": None}


HELLO = '{"type":"welcome","session":"s1"}'  # a welcome that advertises no limits


def online(server: FakePyrtServer | None = None, **kwargs: Any) -> EngineHarness:
    """A harness connected to a fake server (heartbeat off unless asked for)."""
    kwargs.setdefault("heartbeat", None)
    h = EngineHarness(server=server or FakePyrtServer(), **kwargs)
    h.connect()
    assert h.state is State.OPEN
    return h


def frames_of(h: EngineHarness, kind: str) -> list[dict[str, Any]]:
    out = []
    for frame in h.sent:
        if isinstance(frame, str) and frame.startswith("{"):
            obj = json.loads(frame)
            if obj.get("type") == kind:
                out.append(obj)
    return out


class Tokens:
    """A token callable that hands out ``t1``, ``t2``... and can be told to fail."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.failing = False

    def __call__(self) -> str:
        if self.failing:
            raise ConnectionError("auth service down")
        self.issued.append(f"t{len(self.issued) + 1}")
        return self.issued[-1]


def token_server(ttl: float = 40.0, refused: tuple[str, ...] = ()) -> FakePyrtServer:
    return FakePyrtServer(token_ttl=lambda token: None if token in refused else ttl)


SERVE_PY = ServerLimits(rate=200.0, burst=400, window=1000, max_bytes=1 << 20, subscriptions=256)


WELCOME = json.dumps({"type": "welcome", "session": "s1", "limits": SERVE_PY.to_wire()})


def paced(**kwargs: Any) -> EngineHarness:
    """Connected to a fake server that advertises and enforces serve.py's default limits."""
    server = kwargs.pop("server", None) or FakePyrtServer(limits=SERVE_PY)
    kwargs.setdefault("queue_limit", 100_000)
    return online(server, **kwargs)


def played(**kwargs: Any) -> EngineHarness:
    """Open, welcomed with serve.py's limits; the test plays the server."""
    kwargs.setdefault("heartbeat", None)
    kwargs.setdefault("queue_limit", 100_000)
    h = EngineHarness(**kwargs)
    h.connect()
    h.open()
    h.receive(WELCOME)
    return h


def ids_of(h: EngineHarness, frames: list[str | bytes] | None = None) -> list[Any]:
    return [json.loads(f).get("id") for f in (frames if frames is not None else h.sent)]


def refuse(h: EngineHarness, ack_id: Any, retry_after: float = 0.5) -> None:
    h.receive(json.dumps({"type": "error", "code": "rate_limited", "message": "slow down",
                          "id": ack_id, "retry_after": retry_after}))  # fmt: skip
