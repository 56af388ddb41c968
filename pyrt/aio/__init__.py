"""The asyncio layer: the three public clients and the one driver they share.

- :mod:`pyrt.aio.driver` — the pump around an engine (one timer, the actions, ``async for``,
  ``wait_open``/``wait_closed``) and the event API every client has;
- :mod:`pyrt.aio.handlers` — registering and calling handlers (concurrent or ordered);
- :mod:`pyrt.aio.websocket`, :mod:`pyrt.aio.eventsource`, :mod:`pyrt.aio.fetch_event_source`
  (with :mod:`pyrt.aio.sse_client`) — the clients;
- :mod:`pyrt.aio.ack_future` — the future of acked sends (the one use of asyncio internals);
- :mod:`pyrt.aio.runtime` — the one place that picks the browser's or CPython's transports.

This layer imports asyncio and the pure core, never ``js``, ``pyodide``, ``websockets`` or
``httpx`` (tests/unit/test_purity.py); see docs/architecture.md.
"""
