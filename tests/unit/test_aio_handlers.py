"""Handlers: registration order, the one property handler, error routing, async handlers
concurrent or ordered."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from pyrt.aio.handlers import Handlers
from tests.unit.loop_support import run, settle

pytestmark = pytest.mark.unit

EVENTS = ("message", "open", "error")


def make(**kwargs: Any) -> Handlers:
    return Handlers(EVENTS, log=logging.getLogger("test"), loop=asyncio.get_running_loop, **kwargs)


def test_handlers_run_in_the_order_they_were_added() -> None:
    async def scenario() -> None:
        handlers = make()
        seen: list[str] = []
        handlers.add("message", lambda m: seen.append(f"a{m}"))
        handlers.add("message", lambda m: seen.append(f"b{m}"))
        handlers.emit("message", 1)
        assert seen == ["a1", "b1"]

    run(scenario)


def test_the_property_handler_keeps_its_place_is_replaced_there_and_removed_by_none() -> None:
    async def scenario() -> None:
        handlers = make()
        seen: list[str] = []
        handlers.add("message", lambda m: seen.append("first"))
        handlers.set_property("message", lambda m: seen.append("prop1"), "on_message")
        handlers.add("message", lambda m: seen.append("last"))
        handlers.set_property("message", lambda m: seen.append("prop2"), "on_message")
        handlers.emit("message", None)
        assert seen == ["first", "prop2", "last"]
        handlers.set_property("message", None, "on_message")
        seen.clear()
        handlers.emit("message", None)
        assert seen == ["first", "last"]
        assert handlers.get_property("message") is None

    run(scenario)


def test_remove_takes_one_handler_or_all_of_an_event() -> None:
    async def scenario() -> None:
        handlers = make()
        seen: list[str] = []

        def a(_: object) -> None:
            seen.append("a")

        handlers.add("message", a)
        handlers.set_property("message", lambda m: seen.append("p"), "onmessage")
        handlers.remove("message", a)
        handlers.remove("message", print)  # not registered: ignored
        handlers.emit("message", None)
        assert seen == ["p"]
        handlers.remove("message")
        handlers.emit("message", None)
        assert seen == ["p"]
        assert handlers.get_property("message") is None

    run(scenario)


def test_misuse_fails_at_once_naming_the_fix() -> None:
    async def scenario() -> None:
        handlers = make()
        with pytest.raises(TypeError, match="on_message needs a callable, got str"):
            handlers.add("message", "print", "on_message")  # type: ignore[arg-type]  # the misuse under test
        with pytest.raises(TypeError, match="onmessage must be set to a callable or None, got int"):
            handlers.set_property("message", 3, "onmessage")  # type: ignore[arg-type]  # the misuse under test
        with pytest.raises(ValueError, match=r"unknown event 'mesage'; one of \('message', 'open', 'er"):
            handlers.add("mesage", print)

    run(scenario)


def test_open_ended_names_are_accepted_and_their_presence_is_reported() -> None:
    async def scenario() -> None:
        changes: list[tuple[str, bool]] = []
        handlers = make(open_ended=True, on_change=lambda name, present: changes.append((name, present)))
        handlers.add("tick", print)
        handlers.add("tick", repr)
        handlers.add("open", print)  # the client's own event: not a change of the stream's types
        handlers.remove("tick", print)
        handlers.remove("tick", repr)
        handlers.set_property("alert", print, "on('alert')")
        handlers.set_property("alert", None, "on('alert')")
        assert changes == [("tick", True), ("tick", False), ("alert", True), ("alert", False)]
        assert handlers.named() == set()
        with pytest.raises(ValueError, match="non-empty str"):
            handlers.add("", print)

    run(scenario)


def test_a_raising_handler_is_logged_and_reported_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        handlers = make()
        errors: list[Exception] = []
        seen: list[int] = []

        def broken(_: object) -> None:
            raise ValueError("bug")

        handlers.add("message", broken)
        handlers.add("message", seen.append)
        handlers.add("error", errors.append)
        handlers.emit("message", 1)
        assert seen == [1]
        assert [str(e) for e in errors] == ["bug"]
        assert "bug" in caplog.text

    run(scenario)


def test_an_error_handler_that_raises_is_logged_only(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        handlers = make()
        calls: list[int] = []

        def broken(_: object) -> None:
            calls.append(1)
            raise RuntimeError("error handler bug")

        async def broken_async(_: object) -> None:
            calls.append(2)
            raise RuntimeError("async error handler bug")

        handlers.add("error", broken)
        handlers.add("error", broken_async)
        handlers.emit("error", ValueError("x"))
        await settle()
        assert calls == [1, 2]  # no loop of errors reporting errors
        assert "async error handler bug" in caplog.text

    run(scenario)


def test_concurrent_async_handlers_start_in_order_and_interleave() -> None:
    async def scenario() -> None:
        handlers = make()
        seen: list[str] = []
        gate = asyncio.Event()

        async def handler(n: int) -> None:
            seen.append(f"start {n}")
            if n == 1:
                await gate.wait()
            seen.append(f"end {n}")

        handlers.add("message", handler)
        handlers.emit("message", 1)
        handlers.emit("message", 2)
        await settle()
        gate.set()
        await settle()
        assert seen == ["start 1", "start 2", "end 2", "end 1"]
        assert not handlers.tasks

    run(scenario)


def test_ordered_mode_finishes_each_call_before_the_next_starts_sync_ones_included() -> None:
    async def scenario() -> None:
        handlers = make(async_handlers="ordered")
        seen: list[str] = []
        gate = asyncio.Event()

        async def slow(n: int) -> None:
            seen.append(f"start {n}")
            if n == 1:
                await gate.wait()
            seen.append(f"end {n}")

        handlers.add("message", slow)
        handlers.add("open", lambda: seen.append("open"))
        handlers.emit("message", 1)
        assert handlers.pending is not None
        handlers.emit("open")  # a sync handler waits its turn too
        handlers.emit("message", 2)
        await settle()
        assert seen == ["start 1"]
        gate.set()
        await settle()
        assert seen == ["start 1", "end 1", "open", "start 2", "end 2"]
        assert handlers.pending is None

    run(scenario)


def test_ordered_mode_reports_a_failing_async_handler_and_goes_on() -> None:
    async def scenario() -> None:
        handlers = make(async_handlers="ordered")
        errors: list[Exception] = []
        seen: list[int] = []

        async def handler(n: int) -> None:
            await asyncio.sleep(0)
            if n == 1:
                raise ValueError("one")
            seen.append(n)

        handlers.add("message", handler)
        handlers.add("error", errors.append)
        handlers.emit("message", 1)
        handlers.emit("message", 2)
        await settle()
        assert seen == [2]
        assert [str(e) for e in errors] == ["one"]

    run(scenario)


def test_async_handlers_must_be_a_known_mode() -> None:
    async def scenario() -> None:
        with pytest.raises(ValueError, match="async_handlers must be one of"):
            make(async_handlers="serial")

    run(scenario)
