"""The seams between the asyncio layer and a runtime: what a client needs from the browser or
CPython (sockets, fetch, EventSource), as protocols the adapters and the fakes implement.
"""
