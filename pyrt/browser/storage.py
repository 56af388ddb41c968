"""``persist=`` in the browser: ``localStorage`` on a page's main thread, IndexedDB everywhere else.

:func:`default_store` picks, once per client: :class:`LocalStorageStore` when the context has a
usable ``localStorage`` (a page's main thread; synchronous, so a record is written before the
page can go away), else :class:`IndexedDBStore` (Web Workers: JupyterLite kernels, PyScript
``<script type="py" worker>``), else ``None`` — the client then keeps its state in memory and
says so through ``on_error``. Pass ``storage=IndexedDBStore()`` to use IndexedDB on the main
thread too (more room than ``localStorage``'s few megabytes).

Both keep one entry per record (see :mod:`pyrt.persist.records`), so a batch writes only what changed:

- ``localStorage``: ``pyrt:<key>:<seq>`` per message and ``pyrt:<key>:offsets``; a snapshot an
  older pyrt wrote under ``<key>`` itself is taken over on the first load;
- IndexedDB: database ``pyrt``, object store ``records``, keys ``[<key>, <seq>]`` and
  ``[<key>, "offsets"]``, values the records' JSON text. Each batch is one ``readwrite``
  transaction, committed at once (``commit()``): it applies as a whole or not at all.

:class:`IndexedDBStore` owns its proxies (:class:`~pyrt.browser.proxies.ProxyOwner`): two that
serve every write transaction (one is in flight at a time) and one-shot ones for opening and
loading, each destroyed when its request is done; :meth:`IndexedDBStore.dispose` destroys the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import js
from pyodide.ffi import JsException, to_js

from pyrt.browser.proxies import ProxyOwner
from pyrt.persist.records import (
    Changes,
    RecordStore,
    SavedFrame,
    Snapshot,
    is_snapshot_text,
    loads,
    offsets_from_text,
    offsets_text,
    record_from_text,
    record_text,
)

__all__ = ["IndexedDBStore", "LocalStorageStore", "default_store", "usable_local_storage"]

DB_NAME = "pyrt"
DB_VERSION = 1
OBJECT_STORE = "records"


def usable_local_storage() -> Any:
    """``localStorage`` when this context has one that works (not a worker, not a sandboxed
    frame that throws on access), else ``None``."""
    try:
        storage = js.localStorage
        if storage is None:
            return None
        storage.getItem("pyrt:probe")
    except (AttributeError, JsException):
        return None
    return storage


def default_store() -> RecordStore | None:
    """The store ``persist=`` uses by default here (see the module docstring)."""
    storage = usable_local_storage()
    if storage is not None:
        return LocalStorageStore(storage)
    factory = getattr(js, "indexedDB", None)
    if factory is not None:
        return IndexedDBStore(factory)
    return None


def _error(what: str, error: Any) -> Exception:
    """A Python exception for a DOMException (or anything else) a request failed with."""
    if error is None:
        return RuntimeError(f"{what} failed")
    name = getattr(error, "name", "Error")
    message = getattr(error, "message", str(error))
    return RuntimeError(f"{what} failed: {name}: {message}")


def _detach(requests: tuple[Any, ...]) -> None:
    for request in requests:
        request.onupgradeneeded = None
        request.onsuccess = None
        request.onerror = None


class LocalStorageStore:
    """Records in ``localStorage`` (see the module docstring); every call is synchronous."""

    kind = "localStorage"
    durable = True

    def __init__(self, storage: Any = None) -> None:
        self.storage = storage if storage is not None else js.localStorage

    def load(self, key: str, done: Callable[[Snapshot], None], failed: Callable[[Exception], None]) -> None:
        try:
            snapshot = self._read(key)
        except JsException as exc:
            failed(exc)
            return
        done(snapshot)

    def _read(self, key: str) -> Snapshot:
        storage = self.storage
        prefix = f"pyrt:{key}:"
        records: dict[int, SavedFrame] = {}
        offsets: dict[str, str] = {}
        for name in js.Object.keys(storage).to_py():
            if not name.startswith(prefix):
                continue
            suffix = name[len(prefix) :]
            if suffix == "offsets":
                offsets = offsets_from_text(storage.getItem(name))
            elif suffix.isdigit():
                saved = record_from_text(storage.getItem(name) or "")
                if saved is not None and saved.seq == int(suffix):
                    records[saved.seq] = saved
        older = storage.getItem(key)
        if is_snapshot_text(older):  # an older pyrt wrote one snapshot under the key: take it over
            legacy = loads(older)
            seq = max(records, default=0)
            moved = Changes(offsets={**legacy.offsets, **offsets})
            for saved in legacy.frames:
                seq += 1
                moved.puts[seq] = SavedFrame(saved.frame, saved.ack_id, saved.kind, seq)
            self._apply(key, moved)
            storage.removeItem(key)
            records.update(moved.puts)
            offsets = moved.offsets or {}
        return Snapshot(tuple(records[seq] for seq in sorted(records)), offsets)

    def write(self, key: str, changes: Changes, done: Callable[[Exception | None], None]) -> None:
        try:
            self._apply(key, changes)
        except JsException as exc:  # QuotaExceededError: the batch is retried whole later
            done(exc)
            return
        done(None)

    def _apply(self, key: str, changes: Changes) -> None:
        storage = self.storage
        prefix = f"pyrt:{key}:"
        for seq in changes.deletes:  # first: it frees room for the puts
            storage.removeItem(f"{prefix}{seq}")
        for seq, saved in changes.puts.items():
            storage.setItem(f"{prefix}{seq}", record_text(saved))
        if changes.offsets is not None:
            storage.setItem(f"{prefix}offsets", offsets_text(changes.offsets))

    def dispose(self) -> None:
        """Nothing to release."""


class IndexedDBStore:
    """Records in IndexedDB (see the module docstring). ``factory``: an ``IDBFactory``
    (default: this context's ``indexedDB``)."""

    kind = "indexeddb"
    durable = True

    def __init__(self, factory: Any = None) -> None:
        self._factory = factory if factory is not None else js.indexedDB
        self._owner = ProxyOwner()  # the two proxies every write transaction reuses
        self._db: Any = None
        self._opening: list[Callable[[Exception | None], None]] = []
        self._tx: Any = None  # the write transaction in flight
        self._tx_done: Callable[[Exception | None], None] | None = None
        self._on_complete: Any = None
        self._on_abort: Any = None
        self._requests: list[tuple[tuple[Any, ...], ProxyOwner]] = []  # open and load requests under way
        self._disposed = False

    # -- opening

    def _open(self, then: Callable[[Exception | None], None]) -> None:
        if self._db is not None:
            then(None)
            return
        self._opening.append(then)
        if len(self._opening) > 1:
            return  # an open request is under way already
        try:
            request = self._factory.open(DB_NAME, DB_VERSION)
        except JsException as exc:  # SecurityError (opaque origins, some private modes)
            self._opened(exc)
            return
        owner = ProxyOwner()

        def upgrade(event: Any) -> None:
            db = request.result
            if not db.objectStoreNames.contains(OBJECT_STORE):
                db.createObjectStore(OBJECT_STORE)

        def success(event: Any) -> None:
            self._finish_request(owner)
            if self._disposed:
                request.result.close()
                return
            self._db = request.result
            self._opened(None)

        def failure(event: Any) -> None:
            self._finish_request(owner)
            self._opened(_error("opening IndexedDB", request.error))

        request.onupgradeneeded = owner.proxy(upgrade)
        request.onsuccess = owner.proxy(success)
        request.onerror = owner.proxy(failure)
        self._requests.append(((request,), owner))

    def _opened(self, error: Exception | None) -> None:
        waiting, self._opening = self._opening, []
        for then in waiting:
            then(error)

    def _finish_request(self, owner: ProxyOwner) -> None:
        """Detach the handlers of the requests ``owner`` serves and destroy its proxies."""
        for requests, other in self._requests:
            if other is owner:
                _detach(requests)
        self._requests = [(r, o) for r, o in self._requests if o is not owner]
        owner.destroy_all()

    # -- RecordStore

    def load(self, key: str, done: Callable[[Snapshot], None], failed: Callable[[Exception], None]) -> None:
        def opened(error: Exception | None) -> None:
            if error is not None:
                failed(error)
                return
            try:
                store = self._db.transaction(OBJECT_STORE, "readonly").objectStore(OBJECT_STORE)
                numbers = js.IDBKeyRange.bound(to_js([key, 0]), to_js([key, js.Number.MAX_VALUE]))
                records = store.getAll(numbers)
                offsets = store.get(to_js([key, "offsets"]))
            except JsException as exc:
                failed(exc)
                return
            owner = ProxyOwner()

            def success(event: Any) -> None:
                self._finish_request(owner)
                texts = records.result.to_py()
                found = (record_from_text(text) for text in texts if isinstance(text, str))
                frames = tuple(saved for saved in found if saved is not None and saved.seq is not None)
                stored = offsets.result
                done(Snapshot(frames, offsets_from_text(stored if isinstance(stored, str) else None)))

            def failure(event: Any) -> None:
                self._finish_request(owner)
                failed(_error("reading IndexedDB", records.error or offsets.error))

            # Requests of one transaction succeed in order: the last one's success means both did.
            fail = owner.proxy(failure)
            records.onerror = fail
            offsets.onerror = fail
            offsets.onsuccess = owner.proxy(success)
            self._requests.append(((records, offsets), owner))

        self._open(opened)

    def write(self, key: str, changes: Changes, done: Callable[[Exception | None], None]) -> None:
        if self._tx is not None:
            raise RuntimeError("a write is already in flight (one at a time)")

        def opened(error: Exception | None) -> None:
            if error is not None:
                done(error)
                return
            tx = None
            try:
                tx = self._db.transaction(OBJECT_STORE, "readwrite")
                store = tx.objectStore(OBJECT_STORE)
                for seq in changes.deletes:
                    store.delete(to_js([key, seq]))
                for seq, saved in changes.puts.items():
                    store.put(record_text(saved), to_js([key, seq]))
                if changes.offsets is not None:
                    store.put(offsets_text(changes.offsets), to_js([key, "offsets"]))
                if self._on_complete is None:
                    self._on_complete = self._owner.proxy(self._complete)
                    self._on_abort = self._owner.proxy(self._abort)
                tx.oncomplete = self._on_complete
                tx.onabort = self._on_abort
                self._tx, self._tx_done = tx, done
                commit = getattr(tx, "commit", None)
                if commit is not None:
                    commit()  # start committing now, not when this task ends
            except JsException as exc:
                if tx is not None:
                    tx.oncomplete = None
                    tx.onabort = None
                    with contextlib.suppress(JsException):
                        tx.abort()
                self._tx, self._tx_done = None, None
                done(exc)

        self._open(opened)

    def _complete(self, event: Any) -> None:
        self._settle(None)

    def _abort(self, event: Any) -> None:
        tx = self._tx
        self._settle(_error("writing IndexedDB", tx.error if tx is not None else None))

    def _settle(self, error: Exception | None) -> None:
        tx, done = self._tx, self._tx_done
        self._tx, self._tx_done = None, None
        if tx is not None:
            tx.oncomplete = None
            tx.onabort = None
        if done is not None:
            done(error)

    def dispose(self) -> None:
        """Destroy every proxy and close the database (a write in flight still commits: a
        connection closes once its transactions are done, but nothing is reported)."""
        self._disposed = True
        if self._tx is not None:
            self._tx.oncomplete = None
            self._tx.onabort = None
            self._tx, self._tx_done = None, None
        for requests, owner in self._requests:
            _detach(requests)
            owner.destroy_all()
        self._requests = []
        self._opening = []
        self._owner.destroy_all()
        self._on_complete = self._on_abort = None
        if self._db is not None:
            self._db.close()
            self._db = None
