"""The wire: what travels between a pyrt client and a pyrt server, for both roles.

The frame types and their one codec, the names grammar (channels, events, ids), offsets, the
limits a server advertises, which refusals are transient, a restarting server's reconnect hint,
and the Server-Sent Events parser and encoder. Pure: imports only the standard library,
:mod:`pyrt.errors` and itself. The client's engine, the server's session, the sharing relay
and the fake server all speak frames through it; no other module writes or parses a frame.
"""
