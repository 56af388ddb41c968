"""What outlives one :class:`~pyrt.aio.websocket.WebSocketClient` attempt, or one page: the
connection its sharing group holds (``share=``, :mod:`pyrt.aio.ws_share`) and its saved state
(``persist=``, :mod:`pyrt.aio.persistence`).

A client that persists loads its saved state before it connects (``connect()`` returns at once;
the engine connects when the load ends) and writes each change at the next turn of the event
loop; :meth:`Continuity.persisted` waits until that is done. Storage that cannot outlive the page
is reported through ``on_error`` (:class:`~pyrt.errors.StorageUnavailable`), and the client works
on with memory. A group that cannot be joined (no share channel in this runtime) is reported the
same way and the client connects alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from pyrt.aio.driver import Driver
from pyrt.engine.states import State
from pyrt.errors import InvalidStateError, ShareUnavailable, StorageUnavailable

if TYPE_CHECKING:
    from pyrt.aio.opening import UrlSource
    from pyrt.aio.persistence import Persistence
    from pyrt.aio.share import Participant, Sharing
    from pyrt.aio.websocket import WebSocketClient
    from pyrt.engine.websocket import WebSocketEngine
    from pyrt.persist.records import RecordStore, Storage
    from pyrt.ports.services import Services
    from pyrt.ports.transport import Transport
    from pyrt.share.channel import ShareChannel

__all__ = ["Continuity"]

log = logging.getLogger("pyrt.websocket")  # the client's logger: its reports read as the client's


class Continuity(Driver):
    """The sharing and persistence half of :class:`~pyrt.aio.websocket.WebSocketClient`."""

    url: UrlSource
    persist: str | None
    _engine: WebSocketEngine
    _transport: Transport | None
    _storage: Storage | RecordStore | None
    _persistence: Persistence | None
    _participant: Participant | None
    _loading: bool  # connect() waits for the saved state to load

    def _begin(self) -> None:
        raise NotImplementedError  # the client's: connect the engine and start pumping

    @property
    def sharing(self) -> Sharing | None:
        """With ``share``: the group, this client's role (``"leader"``, ``"follower"``,
        ``"joining"``) and how many tabs use the connection; ``None`` otherwise (or before
        :meth:`connect`, or where sharing is not possible)."""
        participant = self._participant
        return participant.sharing() if participant is not None else None

    @property
    def durable(self) -> bool:
        """True when ``persist`` state goes to storage that outlives the page (False without
        ``persist``, before :meth:`connect`, and where no durable storage exists)."""
        persistence = self._persistence
        return persistence is not None and persistence.durable

    @property
    def storage_kind(self) -> str | None:
        """Where ``persist`` state goes: ``"localStorage"``, ``"indexeddb"``, ``"file"``,
        ``"memory"`` (not durable), ``"storage"`` (yours); ``None`` before :meth:`connect`."""
        persistence = self._persistence
        return persistence.store.kind if persistence is not None else None

    def _join(self, share: str | ShareChannel, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        """Use the group's shared connection (see :mod:`pyrt.aio.ws_share`)."""
        joined = _join_group(self, share, services, loop)
        if joined is not None:
            self._participant, self._transport = joined
            self._participant.start()

    def _open_storage(self, key: str, services: Services, loop: asyncio.AbstractEventLoop) -> Persistence:
        from pyrt.aio.persistence import Persistence  # only clients that persist load it

        store, why = _record_store(self._storage, services, key)
        if why is not None:
            self._report(StorageUnavailable(why))
        return Persistence(store, key, loop, self._report)

    def _loaded(self, snapshot: Any) -> None:
        self._loading = False
        engine = self._engine
        if engine.state is not State.IDLE:
            return  # closed while loading
        engine.restore(snapshot)
        self._begin()

    def _report(self, error: Exception) -> None:
        log.warning("pyrt websocket: %s", error)
        self._handlers.emit("error", error)

    async def persisted(self) -> None:
        """Wait until every message sent and every offset delivered before this call is in
        durable storage (``persist``). Without it, a message is written at the next turn of the
        event loop, so a page killed sooner loses it; a careful app awaits this before telling
        its user "saved".

        Raises :class:`~pyrt.errors.StorageUnavailable` where no durable storage exists,
        :class:`~pyrt.errors.PersistenceError` when a write fails, and
        :class:`~pyrt.errors.InvalidStateError` without ``persist`` or before :meth:`connect`.
        """
        persistence = self._persistence
        if persistence is None:
            what = "was made without persist=" if self.persist is None else "is not connected yet"
            raise InvalidStateError(f"persisted() needs a client with saved state; this one {what}")
        while self._loading:
            await self._wake_future()
        if self._engine.save_now(self._now()):
            self._pump()
        await persistence.persisted()


def _join_group(
    client: Continuity, share: str | ShareChannel, services: Services, loop: asyncio.AbstractEventLoop
) -> tuple[Participant, Transport] | None:
    """The client's participant in its sharing group and the link end that becomes its
    transport; ``None`` (reported) where sharing is not possible."""
    from pyrt.aio.ws_share import join

    if isinstance(share, str):
        where = client.url if isinstance(client.url, str) else ""
        try:
            channel = services.share_channel(f"pyrt:ws:{share}:{where}")
        except ShareUnavailable as exc:
            client._report(ShareUnavailable(f"share={share!r}: {exc}; connecting alone"))
            return None
    else:
        channel = share
    assert client._transport is not None
    return join(cast("WebSocketClient", client), channel, client._transport, services, loop)


def _record_store(
    given: Storage | RecordStore | None, services: Services, key: str
) -> tuple[RecordStore, str | None]:
    """Where ``persist=key`` state goes, and why it will not survive a reload (``None``: it will)."""
    from pyrt.persist.records import MemoryRecordStore, as_record_store

    store = as_record_store(given) if given is not None else services.record_store()
    if store is not None and store.durable:
        return store, None
    where = "this runtime" if store is None else f"its {store.kind} store"
    why = (
        f"persist={key!r}: {where} has no durable storage (no localStorage, no IndexedDB); "
        "unacknowledged messages and offsets will not survive a reload"
    )
    return (store if store is not None else MemoryRecordStore()), why
