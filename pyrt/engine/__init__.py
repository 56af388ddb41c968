"""The client engines, sans I/O: every decision of a reconnecting WebSocket or SSE client.

States and their tables, backoff and the reconnect scheduler, heartbeats, the bounded queue,
pacing under the server's limits, acknowledgements, channels (subscriptions, presence, history),
token refresh and wake detection. Inputs carry ``now``; outputs are actions and the next
deadline. Imports the wire layer and :mod:`pyrt.persist`'s journal, never the clock, asyncio or
a runtime (``tests/unit/test_purity.py``).
"""
