"""Server settings: one frozen object, built from the command line or by the embedding app.

Every limit has a safe default; ``0`` turns a numeric limit off where that makes sense (noted).
docs/server.md ("Limits and abuse") lists them with their flags and the memory they bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyrt.wire.limits import ServerLimits
from pyrt.wire.reconnect_window import DEFAULT_RECONNECT_RATE

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
    #: Serve ``/demo/*`` controls and publish the demo feed. Refused together with ``token_secret``:
    #: the controls break and read other clients' connections.
    demo: bool = False
    #: Serve ``/echo`` (raw echo, for benchmarks and raw-mode tests).
    echo: bool = False
    #: Name sent in ``welcome`` (defaults to ``pyrt-<pid>``).
    server_name: str = ""

    # --- security -------------------------------------------------------------------------------
    #: Origins allowed besides the server's own (``"*"`` allows every origin, without credentials).
    #: Requests without an ``Origin`` header (non-browser clients) are allowed.
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    #: ``Host`` names the server answers to (DNS-rebinding guard). IP addresses, ``localhost`` and
    #: ``*.localhost`` are always accepted; ``".example.com"`` accepts every subdomain, ``"*"`` any.
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    #: HMAC secret for tokens; empty: authentication is off.
    token_secret: str = ""
    #: Extra CSP ``connect-src`` sources for the pages (the server's own origin is always allowed).
    connect_src: tuple[str, ...] = field(default_factory=tuple)

    # --- limits per connection ------------------------------------------------------------------
    #: Largest accepted WebSocket message / HTTP body, in bytes (larger: close 1009 / HTTP 413).
    max_message_bytes: int = 1024 * 1024
    #: Sustained frames per second per WebSocket connection (token bucket rate); 0: unlimited.
    #: Over it a frame is refused (``rate_limited``) and the connection held (pyrt.session.admission).
    rate_limit: float = 200.0
    #: Token bucket size: frames accepted in a burst above the rate.
    rate_burst: int = 400
    #: Frames a client may have sent without an answer: more refused in one hold before the
    #: client answered the hold's ping closes it with 1008. Advertised in ``welcome``.
    rate_window: int = 1000
    #: Frames sent after reading a refusal and before its ``retry_after`` (refilled one per
    #: second) tolerated before closing with 1008. A pyrt client sends none.
    abuse_limit: int = 100
    #: Bytes queued for one connection before it counts as a slow consumer (close 1013).
    send_queue_bytes: int = 4 * 1024 * 1024
    #: Subscriptions one WebSocket connection may hold.
    max_subscriptions: int = 256
    #: Channels whose presence one WebSocket connection may join.
    max_presence_joins: int = 16
    #: Bytes of one presence ``info`` (its JSON text), at most.
    max_presence_info_bytes: int = 512
    #: ``refresh`` frames per second per WebSocket connection (each checks a token and every
    #: subscription and presence it allows); 0: unlimited. Over it: ``rate_limited``.
    refresh_rate: float = 1.0
    #: ``refresh`` frames a connection may send in a burst above ``refresh_rate``.
    refresh_burst: int = 5
    #: Seconds a client has to send each request head (the first one and every keep-alive one).
    handshake_timeout: float = 10.0
    #: Bytes of received WebSocket messages (counted after inflating) one connection may have
    #: handled per second (in bursts of one second's worth, at least one message of
    #: ``max_message_bytes``); over it, the server reads nothing more from it until it is back
    #: within the rate: the client slows down, nothing is refused. 0: unlimited.
    receive_rate: int = 4 * 1024 * 1024
    #: A compressed WebSocket message may inflate to 16 KiB or to this many times its compressed
    #: size, whichever is larger; more: close 1009. 0: no cap. ``serve.py`` only (the ASGI
    #: server inflates).
    max_inflate_ratio: int = 32

    # --- limits per client identity (token subject, else address) --------------------------------
    #: Open connections (WebSocket + SSE; with ``serve.py`` every TCP connection) per client
    #: address; 0: unlimited.
    max_connections_per_ip: int = 1000
    #: Publications per second per identity (``publish`` frames and ``POST /publish`` together);
    #: 0: unlimited. Over it: ``rate_limited`` / HTTP 429 with ``Retry-After``.
    publish_rate: float = 200.0
    #: Publications an identity may make in a burst above ``publish_rate``.
    publish_burst: int = 1000
    #: Bytes of publication data per second per identity (publications are retained for
    #: ``history_ttl``: one identity holds at most ``publish_bytes_burst`` + this rate x
    #: ``history_ttl`` of every broker's history); 0: unlimited. Over it: ``rate_limited`` / 429.
    publish_bytes_rate: int = 16 * 1024
    #: Bytes of publication data an identity may publish in a burst above ``publish_bytes_rate``.
    publish_bytes_burst: int = 16 * 1024 * 1024
    #: Message and publish ids one identity keeps in the dedup window (its oldest go first).
    dedup_per_identity: int = 10_000
    #: Bytes an identity's connections may hold on their way out before a large answer made for
    #: it (an ack, a pong, a reply over 64 KiB) cuts the connection off as a slow consumer; 0: off.
    identity_queue_bytes: int = 64 * 1024 * 1024
    #: History and presence reads per second per identity (``history``/``presence`` frames and
    #: ``GET /history`` together); 0: unlimited. Over it: ``rate_limited`` / HTTP 429.
    query_rate: float = 50.0
    #: Reads an identity may make in a burst above ``query_rate``.
    query_burst: int = 200
    #: Members one identity may have in one channel's presence (its tabs and devices).
    max_presence_per_identity: int = 16
    #: Distinct channels one identity's connections (WebSocket and SSE) may subscribe to
    #: together; 0: unlimited. Over it: ``forbidden`` / SSE 429.
    max_channels_per_identity: int = 1024
    #: Presence changes (``presence_join``, updates included, and ``presence_leave`` frames) per
    #: second per identity; 0: unlimited. Over it: ``rate_limited``. Every change is a diff sent
    #: to every presence subscriber of the channel.
    presence_rate: float = 10.0
    #: Presence changes an identity may make in a burst above ``presence_rate``.
    presence_burst: int = 100
    #: Bytes of received WebSocket messages (after inflating) one identity's connections may
    #: have handled per second together (bursts of one second's worth); over it they are read
    #: no more until back within it. 0: unlimited.
    identity_receive_rate: int = 16 * 1024 * 1024

    # --- limits for the whole process -----------------------------------------------------------
    #: Bytes of publications retained for replay, all channels together (memory broker); the
    #: least recently published channels lose their oldest publications first.
    history_bytes: int = 64 * 1024 * 1024
    #: Channels with retained history (memory broker); the least recently published is forgotten.
    max_channels: int = 10_000
    #: Distinct channels this process's clients may subscribe to, all together (in Redis mode,
    #: the streams this instance follows); 0: unlimited. Over it: ``forbidden`` / SSE 429.
    max_subscribed_channels: int = 50_000
    #: Seconds a publication is retained (both brokers; an idle channel disappears after it).
    history_ttl: float = 600.0
    #: Publications replayed per subscribe or SSE resume (the newest ones; ``recovered: false``
    #: when more were missed); 0: ``retention``.
    max_replay: int = 0
    #: Bytes replayed per subscribe or SSE resume, at most (the newest publications that fit).
    max_replay_bytes: int = 16 * 1024 * 1024
    #: Publications one history page holds at most (a query asking for more gets this many).
    history_page_limit: int = 1000
    #: Bytes of data one history page holds at most (at least one publication, whatever its size).
    history_page_bytes: int = 1024 * 1024
    #: Members of one channel's presence, at most.
    max_presence: int = 1000
    #: Members of every channel's presence together (memory broker; Redis: see docs/server.md).
    max_presence_total: int = 50_000
    #: Seconds over which presence changes are gathered into one diff per channel: however
    #: many members come and go, a presence subscriber gets at most one diff per channel per tick.
    presence_tick: float = 0.1
    #: Seconds a presence entry lives after its instance last refreshed it (every third of it):
    #: the members of an instance that died leave within 4/3 of this.
    presence_ttl: float = 30.0
    #: Seconds the member of a connection lost without a close frame stays, so that a client
    #: that reconnects at once is not seen to leave and join again.
    presence_grace: float = 5.0

    # --- serve.py's HTTP server (not used when the app is mounted in another server) -------------
    #: Open TCP connections in all (each costs a file descriptor); clamped below the process's
    #: file limit. A new connection over it is reset.
    max_connections: int = 10_000
    #: Bytes of received WebSocket messages waiting for the application, per client address and
    #: in all; over it, the server reads no more from those clients until it has caught up.
    address_inbox_bytes: int = 32 * 1024 * 1024
    total_inbox_bytes: int = 256 * 1024 * 1024
    #: Bytes of one request head (request line and headers); larger: 431.
    max_head_bytes: int = 32 * 1024
    #: Share of one core that reading one client address's input may take (connections,
    #: requests, WebSocket messages and bytes, at estimated costs; docs/server.md, "The CPU
    #: budget"); over it, the address's connections are read one piece at a time, in turn, as
    #: the share allows. 0: no budget. Trusted proxies have none.
    cpu_share_per_ip: float = 0.25
    #: Seconds of (estimated) work an address may have the server do at once.
    cpu_burst: float = 0.05
    #: Seconds a request body may take after its head; slower: 408.
    body_timeout: float = 30.0

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
    #: Clients per second a restart should take back (default 80): a shutdown asks the clients
    #: it closes to spread their reconnects over ``connections / reconnect_rate`` seconds (at
    #: most 60); 0: no spreading (everyone reconnects at once).
    reconnect_rate: float = DEFAULT_RECONNECT_RATE

    # --- brokers and dedup ----------------------------------------------------------------------
    #: Publications retained per channel for replay.
    retention: int = 1000
    #: Seconds a message or publish id is remembered.
    dedup_ttl: float = 600.0
    #: Ids remembered at most, all identities together (memory broker).
    dedup_max: int = 100_000

    # --- demo -----------------------------------------------------------------------------------
    #: Seconds between demo ``tick`` events on the ``feed`` channel (0: no demo feed).
    demo_tick: float = 1.0

    def __post_init__(self) -> None:
        if not self.presence_ttl > 0 or self.presence_grace < 0 or self.presence_tick < 0:
            raise ValueError("presence_ttl must be > 0, presence_grace and presence_tick >= 0")
        for name in ("history_page_limit", "history_page_bytes", "max_presence", "max_presence_per_identity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.demo and self.token_secret:
            raise ValueError(
                "demo mode cannot be combined with a token secret: the demo controls drop, stall "
                "and read other clients' connections. Turn one of them off."
            )

    @property
    def replay_limit(self) -> int:
        """Publications replayed per subscribe (``max_replay``, or ``retention`` when 0)."""
        return self.max_replay if self.max_replay > 0 else self.retention

    def advertised_limits(self) -> ServerLimits:
        """What ``welcome`` tells every WebSocket client it must respect."""
        limited = self.rate_limit > 0
        return ServerLimits(
            rate=self.rate_limit if limited else None,
            burst=self.rate_burst if limited else None,
            window=self.rate_window if limited else None,
            max_bytes=self.max_message_bytes,
            subscriptions=self.max_subscriptions,
            publish_rate=self.publish_rate if self.publish_rate > 0 else None,
            publish_burst=self.publish_burst if self.publish_rate > 0 else None,
        )
