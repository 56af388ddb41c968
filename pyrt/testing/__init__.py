"""Fakes for testing code built on pyrt, with no network, no browser and no real time.

- :class:`FakeClock` — time that moves only when told.
- :class:`FakePyrtServer` — an in-memory peer speaking the pyrt protocol: acks with dedup by id,
  channels with offsets, replay on resubscribe, limited retention, token refresh, history and
  presence (a conformance test runs the same frame scripts against it and against
  ``serve.py``), and optionally the advertised limits of ``serve.py`` enforced by the same rules
  (:mod:`pyrt.session.admission`).
- :class:`EngineHarness` — runs a :class:`~pyrt.engine.websocket.WebSocketEngine` the way an adapter
  does, against :class:`FakeSocket` objects and an optional :class:`FakePyrtServer`, and records
  what a user would see (messages, publications, ack results, states, reconnects, errors).
- :class:`FakeTransport` — ``WebSocketClient(url, transport=FakeTransport(server))``.
- :class:`FakeFetchTransport` and :class:`FakeEventSourceTransport` — ``FetchEventSource(url,
  transport=...)`` and ``EventSourceClient(url, transport=...)``, the test playing the server.
- :class:`FakeServices` — the runtime around a client (page events the test fires, a record store
  for ``persist=``, the loop's timers, a share bus); every fake transport carries one
  (``transport.services``), which a client given no ``services=`` uses.
- :class:`FakeShareBus` — tabs sharing one connection: ``WebSocketClient(url, share=bus.channel(),
  transport=FakeTransport(server))`` per "tab"; :meth:`FakeShareBus.crash` kills one.

Example::

    server = FakePyrtServer()
    h = EngineHarness(server=server, heartbeat=None)
    h.connect()
    reply = h.send_with_ack({"n": 1})
    h.drop()                      # the network breaks
    h.advance(1.0)                # the client reconnects by itself
    assert reply.value == {"n": 1} and server.handled == [{"n": 1}]
"""

from pyrt.testing.clock import FakeClock
from pyrt.testing.fake_server import FakePyrtServer, ServerConnection
from pyrt.testing.harness import AckWaiter, EngineHarness
from pyrt.testing.services import FakeServices
from pyrt.testing.share_bus import FakeShareBus, FakeShareChannel
from pyrt.testing.sse_transports import FakeEventSourceTransport, FakeFetchTransport, FakeRequest, FakeSource
from pyrt.testing.transports import FakeSocket, FakeTransport
from pyrt.testing.waiting import until

__all__ = [
    "AckWaiter",
    "EngineHarness",
    "FakeClock",
    "FakeEventSourceTransport",
    "FakeFetchTransport",
    "FakePyrtServer",
    "FakeRequest",
    "FakeServices",
    "FakeShareBus",
    "FakeShareChannel",
    "FakeSocket",
    "FakeSource",
    "FakeTransport",
    "ServerConnection",
    "until",
]
