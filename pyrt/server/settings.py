"""Server settings: one frozen object, built from the command line or by the embedding app.

Every limit has a safe default; ``0`` turns a numeric limit off where that makes sense (noted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["REPO_ROOT", "Settings"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the server serves and how.

    ``web_dir`` holds the pages (the demo); ``node_modules`` the pinned Pyodide and PyScript
    (installed by ``npm ci``); ``package_dir`` the ``pyrt`` sources shipped to browsers as
    ``/pyrt.zip``, rebuilt whenever a source file changes.
    """

    web_dir: Path = REPO_ROOT / "web"
    node_modules: Path = REPO_ROOT / "node_modules"
    package_dir: Path = REPO_ROOT / "pyrt"
    #: Serve ``/demo/*`` controls and publish the demo feed.
    demo: bool = True
    #: Name sent in ``welcome`` (defaults to ``pyrt-<pid>``).
    server_name: str = ""

    # --- security -------------------------------------------------------------------------------
    #: Origins allowed besides the server's own (``"*"`` allows every origin). Requests without
    #: an ``Origin`` header (non-browser clients) are allowed.
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    #: HMAC secret for tokens; empty: authentication is off.
    token_secret: str = ""
    #: Extra CSP ``connect-src`` sources for the pages (the server's own origin is always allowed).
    connect_src: tuple[str, ...] = field(default_factory=tuple)

    # --- limits ---------------------------------------------------------------------------------
    #: Largest accepted WebSocket message / HTTP body, in bytes (larger: close 1009 / HTTP 413).
    max_message_bytes: int = 1024 * 1024
    #: Sustained frames per second per WebSocket connection (token bucket rate); 0: unlimited.
    rate_limit: float = 200.0
    #: Token bucket size: frames accepted in a burst above the rate.
    rate_burst: int = 400
    #: Refused frames (beyond the rate) tolerated in a burst before closing with 1008.
    abuse_limit: int = 100
    #: Open connections (WebSocket + SSE) per client IP; 0: unlimited.
    max_connections_per_ip: int = 1000
    #: Bytes queued for one connection before it counts as a slow consumer (close 1013).
    send_queue_bytes: int = 4 * 1024 * 1024
    #: Seconds for a client to send its request headers before the server drops the socket.
    handshake_timeout: float = 10.0

    # --- liveness -------------------------------------------------------------------------------
    #: WebSocket heartbeat interval in seconds, announced in ``welcome``. The server pings a
    #: connection that was silent this long and drops one silent for three intervals.
    heartbeat: float = 20.0
    #: Seconds between SSE comment heartbeats (``: hb``).
    sse_heartbeat: float = 15.0
    #: SSE ``retry:`` sent at the start of every stream, in milliseconds.
    sse_retry_ms: int = 1000
    #: Compress SSE streams with gzip for clients that accept it (flushed after every write).
    sse_gzip: bool = True
    #: Seconds a graceful shutdown waits for clients to take their close frames.
    shutdown_grace: float = 5.0

    # --- brokers and dedup ----------------------------------------------------------------------
    #: Publications retained per channel for replay.
    retention: int = 1000
    #: Seconds a message or publish id is remembered.
    dedup_ttl: float = 600.0
    #: Ids remembered at most (memory broker).
    dedup_max: int = 100_000

    # --- demo -----------------------------------------------------------------------------------
    #: Seconds between demo ``tick`` events on the ``feed`` channel (0: no demo feed).
    demo_tick: float = 1.0
