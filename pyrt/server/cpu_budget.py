"""The CPU time each client address may have ``serve.py`` spend on it, and its turns.

The time the server spends on a client is measured and charged to its address: its protocol's
callbacks (reading, parsing, inflating) and every step of the application task serving each of
its connections (a request, a WebSocket session; :class:`Timed` measures them), plus
:data:`EVENT_OVERHEAD` per callback for the event loop's own work. An address has a share of one
core (``cpu_share``, in bursts of ``cpu_burst`` seconds); over it, its connections are read no
more until it is back within it, and then take turns (first come, first served) one piece at a
time: a client at the per-address connection cap gets its share, and other clients are served
between its pieces. ``serve.py``'s protocols (:mod:`pyrt.server.uvicorn_private`) do the reading;
this module keeps the accounts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pyrt.server.limits import Meter

__all__ = ["CONNECTION_OVERHEAD", "EVENT_OVERHEAD", "RECONCILE", "CpuBudget", "Timed"]

log = logging.getLogger("pyrt.server")

#: Seconds charged per protocol callback on top of what it measurably took: the event loop's
#: work around it (polling, scheduling), which no callback sees.
EVENT_OVERHEAD = 30e-6
#: Seconds charged per connection on top of its ``connection_made``: accepting it and closing it
#: (system calls, asyncio's transport), which no callback of ours sees.
CONNECTION_OVERHEAD = 200e-6
#: Seconds between two reconciliations of what the CPU budget charged with the CPU really used.
RECONCILE = 0.25


class Timed:
    """Runs a coroutine as an awaitable, charging the time each of its steps takes."""

    __slots__ = ("_charge", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, Any], charge: Callable[[float], None]) -> None:
        self._coro = coro
        self._charge = charge

    def __await__(self) -> Timed:
        return self

    def __iter__(self) -> Timed:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._coro.send(value)
        finally:
            self._charge(time.perf_counter() - started)

    def throw(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._coro.throw(*args)
        finally:
            self._charge(time.perf_counter() - started)

    def close(self) -> None:
        self._coro.close()


class _Account:
    __slots__ = ("busy", "measured", "meter", "timer", "waiting")

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.measured = 0.0  # seconds charged since the last reconciliation
        self.waiting: dict[int, Callable[[], None]] = {}  # connections waiting for a turn, in order
        self.timer: asyncio.Handle | None = None  # the next turn, scheduled
        self.busy = False  # a piece of its input was read in this turn of the event loop


class CpuBudget:
    """The CPU time each client address may have the server spend on it, and its turns.

    An address reads at most one piece of its input (a request head with what follows it, 4 KiB
    of WebSocket data) per turn of the event loop, whatever its number of connections: other
    clients are served between its pieces. And it has a share of one core: :meth:`charge`
    records the work done for it (seconds, measured); in debt, it reads nothing until the debt
    is paid back. Every :data:`RECONCILE` seconds what was charged is scaled to the CPU time the
    event loop's thread really used meanwhile: work no measurement sees (the loop's own, tasks
    and callbacks a client's requests set off) is shared out in proportion, and time a
    measurement counted while the process was not running (a busy machine) is given back.
    A connection that may not read now (:meth:`begin` is false) holds what it
    received and calls :meth:`wait` with a ``turn`` callback; turns come one per loop turn, in
    the order the connections asked, and ``turn`` must call ``begin(..., granted=True)`` and read
    what it held at once.
    """

    def __init__(self, share: float, burst: float) -> None:
        self.rate = max(0.0, share)  # seconds of work per second
        self.burst = max(0.0, burst)
        self._accounts: dict[str, _Account] = {}
        self._measured = 0.0  # seconds charged since the last reconciliation, every address
        self._cpu = 0.0  # the loop thread's CPU time at the last reconciliation
        self._reconciling: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _account(self, address: str, now: float) -> _Account:
        account = self._accounts.get(address)
        if account is None:
            if len(self._accounts) > 4096:  # forget the addresses idle and back within budget
                for key in [
                    k for k, a in self._accounts.items() if not a.waiting and not a.busy and a.meter.full(now)
                ]:
                    del self._accounts[key]
            account = self._accounts[address] = _Account(Meter(self.rate, self.burst, now))
        return account

    def charge(self, address: str, seconds: float, now: float) -> None:
        if self.rate > 0:
            account = self._account(address, now)
            account.meter.charge(seconds, now)
            account.measured += seconds
            self._measured += seconds
            if self._reconciling is None:
                self._cpu = time.thread_time()
                self._reconciling = asyncio.get_running_loop().call_later(RECONCILE, self._reconcile)

    def _reconcile(self) -> None:
        self._reconciling = None
        cpu = time.thread_time()
        used, self._cpu = cpu - self._cpu, cpu
        measured, self._measured = self._measured, 0.0
        if measured <= 0:
            return  # nothing charged: stop until the next charge
        # at most 3 times: the little a client was charged must not make it pay for a long pause
        # of work nobody's requests set off (a fan-out, housekeeping)
        factor = min(used / measured, 3.0)
        now = asyncio.get_running_loop().time()
        for account in self._accounts.values():
            if account.measured:
                account.meter.charge(account.measured * (factor - 1), now)  # less than 0: a refund
                account.measured = 0.0
        self._cpu = time.thread_time()
        self._reconciling = asyncio.get_running_loop().call_later(RECONCILE, self._reconcile)

    def begin(self, address: str, now: float, *, granted: bool = False) -> bool:
        """Whether ``address`` may read a piece of its input now (then it has had its turn);
        ``granted``: it is the turn a :meth:`wait` was given."""
        if self.rate <= 0:
            return True
        account = self._account(address, now)
        if not granted and (account.busy or account.waiting or account.meter.wait(now) > 0):
            return False
        if not account.busy:
            account.busy = True
            asyncio.get_running_loop().call_soon(self._release, address)
        return True

    def wait(self, address: str, key: int, turn: Callable[[], None]) -> None:
        """Call ``turn`` when it is the turn of connection ``key`` of ``address``."""
        loop = asyncio.get_running_loop()
        account = self._account(address, loop.time())
        account.waiting.setdefault(key, turn)
        if not account.busy and account.timer is None:
            self._schedule(address, account, loop)

    def waiting(self, address: str) -> bool:
        """Whether connections of ``address`` are waiting for their turn."""
        account = self._accounts.get(address)
        return account is not None and bool(account.waiting)

    def forget(self, address: str, key: int) -> None:
        """Connection ``key`` is gone: it waits no more."""
        account = self._accounts.get(address)
        if account is not None:
            account.waiting.pop(key, None)

    def _schedule(self, address: str, account: _Account, loop: asyncio.AbstractEventLoop) -> None:
        delay = account.meter.wait(loop.time())
        if delay > 0:
            account.timer = loop.call_later(delay, self._next, address)
        else:
            account.timer = loop.call_soon(self._next, address)

    def _release(self, address: str) -> None:
        account = self._accounts.get(address)
        if account is not None:
            account.busy = False
            if account.waiting and account.timer is None:
                self._schedule(address, account, asyncio.get_running_loop())

    def _next(self, address: str) -> None:
        account = self._accounts.get(address)
        if account is None:
            return
        account.timer = None
        loop = asyncio.get_running_loop()
        if account.busy or account.meter.wait(loop.time()) > 0:
            if account.waiting and not account.busy:
                self._schedule(address, account, loop)
            return
        while account.waiting and not account.busy:
            key = next(iter(account.waiting))
            turn = account.waiting.pop(key)
            try:
                turn()  # reads what the connection held (begin, granted): the address is busy
            except Exception:
                log.exception("reading a held connection failed")
