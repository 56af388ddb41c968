"""AckFuture: the one place pyrt leans on asyncio internals. The canaries fail loudly, naming
the missing piece, when an asyncio release changes them; the other tests check the behaviour."""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any

import pytest

from pyrt.aio.ack_future import AckFuture, settle

pytestmark = pytest.mark.unit


def test_canary_asyncio_still_ships_the_pure_python_future() -> None:
    base = getattr(asyncio.futures, "_PyFuture", None)
    assert base is not None, "asyncio.futures._PyFuture is gone: pyrt.aio.ack_future needs another base"
    assert AckFuture.__mro__[1] is base


def test_canary_set_result_schedules_callbacks_through_the_name_mangled_method() -> None:
    base = asyncio.futures._PyFuture  # type: ignore[attr-defined]  # the private name under watch
    assert hasattr(base, "_Future__schedule_callbacks"), "Future.__schedule_callbacks was renamed"
    for method in ("set_result", "set_exception"):
        source = inspect.getsource(getattr(base, method))
        assert "__schedule_callbacks()" in source, f"Future.{method} no longer calls __schedule_callbacks"


def test_canary_callbacks_are_kept_as_callback_context_pairs() -> None:
    async def scenario() -> None:
        future = AckFuture(loop=asyncio.get_running_loop())
        future.add_done_callback(print)
        (entry,) = future._callbacks
        callback, context = entry
        assert callback is print
        assert hasattr(context, "run"), "Future._callbacks no longer holds (callback, context) pairs"
        future.cancel()

    asyncio.run(scenario())


def test_settled_outside_any_task_the_callbacks_run_at_once() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        future = AckFuture(loop=loop)
        seen: list[Any] = []
        future.add_done_callback(lambda f: seen.append(f.result()))
        done = loop.create_future()

        def from_a_socket_callback() -> None:  # like a transport: no task is running here
            settle(future, "ack", None)
            done.set_result(list(seen))

        loop.call_soon(from_a_socket_callback)
        assert await done == ["ack"]

    asyncio.run(scenario())


def test_settled_inside_a_task_the_callbacks_are_scheduled_as_usual() -> None:
    async def scenario() -> None:
        future = AckFuture(loop=asyncio.get_running_loop())
        seen: list[str] = []
        future.add_done_callback(lambda f: seen.append(type(f.exception()).__name__))
        settle(future, None, TimeoutError("late"))
        assert seen == []
        await asyncio.sleep(0)
        assert seen == ["TimeoutError"]

    asyncio.run(scenario())


def test_a_future_cancelled_by_its_waiter_is_left_alone() -> None:
    async def scenario() -> None:
        future = AckFuture(loop=asyncio.get_running_loop())
        future.cancel()
        settle(future, "too late", None)
        assert future.cancelled()
        assert asyncio.isfuture(future)

    asyncio.run(scenario())


def test_a_rejection_its_waiter_received_is_not_logged_as_never_retrieved() -> None:
    reported: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reported.append(context["message"]))
        future = AckFuture(loop=loop)
        loop.call_soon(settle, future, None, TimeoutError("no ack"))  # outside any task
        with pytest.raises(TimeoutError):
            await future

    asyncio.run(scenario())
    gc.collect()  # the future is gone now: it says nothing, its waiter had the exception
    assert reported == []


def test_a_rejection_nobody_looked_at_is_still_logged() -> None:
    reported: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reported.append(context["message"]))
        settle(AckFuture(loop=loop), None, TimeoutError("no ack"))

    asyncio.run(scenario())
    gc.collect()
    assert reported == ["AckFuture exception was never retrieved"]
