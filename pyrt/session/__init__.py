"""The server's side of one connection, sans I/O: admission (a token bucket and a hold after each
refusal) and the session that validates, authorizes and answers frames. ``serve.py`` and
:class:`pyrt.testing.FakePyrtServer` drive the same code.
"""
