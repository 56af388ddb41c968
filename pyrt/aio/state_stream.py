"""``await client.state_then_stream(channel, load, apply)``: application state kept in step with a
channel, loaded once and then followed, with nothing missed and nothing applied twice.

``load()`` (sync or async) returns ``(state, offset)``: the application's snapshot and the offset of
the last publication of ``channel`` it holds (``"0"`` when it holds none). ``apply(state,
publication)`` returns the state with one more publication applied. The decisions (what to apply,
drop, keep, and when to load again) are :class:`pyrt.engine.state_stream.StateStream`'s; this module calls
``load``, subscribes from the snapshot's offset and applies.

For state made of the channel itself (the newest messages of a chat, say) the history is the
snapshot: ``page = await client.history(channel, reverse=True)`` and ``page.offset``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pyrt.engine.state_stream import Decision, StateStream
from pyrt.wire.frames import Publication

if TYPE_CHECKING:
    from pyrt.aio.websocket import WebSocketClient

__all__ = ["SyncedState"]

log = logging.getLogger("pyrt.state")

S = TypeVar("S")
Loader = Callable[[], "tuple[S, str] | Awaitable[tuple[S, str]]"]

_RETRY_FIRST = 0.5  # seconds before loading again after a failed reload, doubled up to _RETRY_MAX
_RETRY_MAX = 30.0


class SyncedState(Generic[S]):
    """A state that follows a channel (see the module docstring). Read :attr:`state`; it changes
    only by ``apply`` and by loads, each reported to ``on_change(state)``.

    :attr:`loading` is true while a new snapshot is being loaded after a gap (the state is then
    behind; publications received meanwhile are applied once it is in). Failures of ``load`` or
    ``apply`` after the start go to ``on_error`` (and to the log); a failed load is tried again
    with backoff, a failed ``apply`` loads again. :meth:`close` ends the subscription.
    """

    def __init__(
        self,
        client: WebSocketClient,
        channel: str,
        load: Loader[S],
        apply: Callable[[S, Publication], S],
        on_change: Callable[[S], Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
        buffer_limit: int = 10_000,
    ) -> None:
        self.client = client
        self.channel = channel
        self._load = load
        self._apply = apply
        self._on_change = on_change
        self._on_error = on_error
        self._policy = StateStream(buffer_limit=buffer_limit)
        self._reloading: asyncio.Task[None] | None = None
        self._closed = False
        self.state: S | None = None

    @property
    def loading(self) -> bool:
        return self._policy.loading

    @property
    def reloads(self) -> int:
        """Snapshots loaded again after the first one (gaps, overflows)."""
        return self._policy.reloads

    @property
    def applied(self) -> int:
        """Publications applied to the state."""
        return self._policy.applied

    async def start(self) -> SyncedState[S]:
        """Load the first snapshot (its errors are raised here) and subscribe from its offset."""
        state, offset = await self._call_load()
        self._policy.loaded(offset)
        self._set(state)
        self.client.subscribe(self.channel, self._received, since=offset)
        return self

    def close(self) -> None:
        """Stop following: unsubscribe, and cancel a load under way."""
        self._closed = True
        if self._reloading is not None:
            self._reloading.cancel()
        self.client.unsubscribe(self.channel)

    # -- internals

    def _received(self, publication: Publication) -> None:
        decision = self._policy.received(publication)
        if decision is Decision.APPLY:
            self._apply_one(publication)
        elif decision is Decision.RELOAD and (self._reloading is None or self._reloading.done()):
            self._reloading = asyncio.get_running_loop().create_task(self._reload())

    def _apply_one(self, publication: Publication) -> bool:
        try:
            state = self._apply(self.state, publication)  # type: ignore[arg-type]
        except Exception as exc:
            self._report(exc)
            self._policy.doubt()  # the state is in doubt: load it again
            if self._reloading is None or self._reloading.done():
                self._reloading = asyncio.get_running_loop().create_task(self._reload())
            return False
        self._set(state)
        return True

    async def _reload(self) -> None:
        delay = _RETRY_FIRST
        while not self._closed:
            try:
                state, offset = await self._call_load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._report(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            newer, again = self._policy.loaded(offset)
            if again:
                continue
            self._set(state)
            for publication in newer:
                if not self._apply_one(publication):
                    return
            return

    async def _call_load(self) -> tuple[S, str]:
        loaded = self._load()
        if inspect.isawaitable(loaded):
            loaded = await loaded
        if not (isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[1], str)):
            raise TypeError("load() must return (state, offset): the offset a str such as '12-3' or '0'")
        return loaded

    def _set(self, state: S) -> None:
        self.state = state
        if self._on_change is not None:
            try:
                self._on_change(state)
            except Exception as exc:
                self._report(exc)

    def _report(self, exc: Exception) -> None:
        log.warning("pyrt state of %r: %s", self.channel, exc)
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:
                log.exception("on_error of the state of %r failed", self.channel)
