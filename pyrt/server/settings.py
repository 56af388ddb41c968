"""Server settings: one frozen object, built from the command line or by the embedding app.

Every limit has a safe default; ``0`` turns a numeric limit off where that makes sense (noted).
docs/server.md ("Limits and abuse") lists them with their flags and the memory they bound.

Each option is declared once, as a field of :class:`Settings`: its metadata says how
``serve.py``'s command line sets it (:func:`flag`: the flag's name, its help, its metavar, how its
text is parsed when the field's type does not say) or that it is set through the API only
(:data:`API_ONLY`). ``pyrt.server.cli`` makes the flags from it, in the groups of
:data:`SECTIONS`; adding an option is adding a field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyrt.wire.limits import ServerLimits
from pyrt.wire.reconnect_window import DEFAULT_RECONNECT_RATE

__all__ = [
    "ADMIN_TOKEN_ENV",
    "API_ONLY",
    "FLAG",
    "REPO_ROOT",
    "SECTIONS",
    "TOKEN_SECRET_ENV",
    "Flag",
    "Settings",
    "flag",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The environment variable ``serve.py`` reads the token secret from when no flag gives one.
TOKEN_SECRET_ENV = "PYRT_TOKEN_SECRET"
#: The environment variable the admin token is read from when no flag gives one.
ADMIN_TOKEN_ENV = "PYRT_ADMIN_TOKEN"
#: The key of a field's metadata that holds its :class:`Flag` (``None``: API only).
FLAG = "flag"


@dataclass(frozen=True, slots=True)
class Flag:
    """How ``serve.py``'s command line sets one :class:`Settings` field.

    The field's type says the rest: ``int``, ``float``, ``str`` and ``Path`` take one value
    (``parse`` replaces the type's own conversion), ``bool`` gets ``--name``/``--no-name``, and
    ``tuple[str, ...]`` a flag that may be repeated, one item each time.
    """

    #: The flag, with its dashes (``"--max-message-bytes"``); it need not be the field's name.
    name: str
    help: str
    #: The value's name in the help (default: the flag's name in capitals).
    metavar: str | None = None
    #: How the flag's text becomes the value (default: the field's type).
    parse: Callable[[str], Any] | None = None
    #: An environment variable whose value is the default when the flag is not given.
    env: str | None = None


def flag(
    name: str,
    help: str,
    *,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    env: str | None = None,
) -> Mapping[str, Flag | None]:
    """The metadata of a field that ``serve.py``'s flag ``name`` sets (see :class:`Flag`)."""
    return {FLAG: Flag(name, help, metavar, parse, env)}


#: The metadata of a field no flag sets: only an embedding application sets it (``Settings(...)``).
API_ONLY: Mapping[str, Flag | None] = MappingProxyType({FLAG: None})


def _absolute(text: str) -> Path:
    """A folder given on the command line, made absolute (relative to the working directory)."""
    return Path(text).resolve()


#: The groups of ``serve.py --help``: each starts at its field and holds the fields after it.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("web_dir", "what it serves"),
    ("allowed_origins", "security"),
    ("max_message_bytes", "limits per connection (docs/server.md, 'Limits and abuse'; 0 turns most off)"),
    ("max_connections_per_ip", "limits per client identity (token subject, else address)"),
    ("history_bytes", "limits for the whole process"),
    ("max_connections", "serve.py's HTTP server (not used when the app is mounted in another server)"),
    ("heartbeat", "liveness"),
    ("retention", "brokers and dedup"),
    ("admin_token", "operators (docs/server.md, 'Admin endpoints')"),
    ("demo_tick", "demo"),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """What the server serves and how.

    ``web_dir`` holds the pages (the demo); ``node_modules`` the pinned Pyodide and PyScript
    (installed by ``npm ci``); ``package_dir`` the ``pyrt`` sources shipped to browsers as
    ``/pyrt.zip``, rebuilt whenever a source file changes.
    """

    web_dir: Path = field(
        default=REPO_ROOT / "web",
        metadata=flag(
            "--web-dir",
            "serve the pages in DIR (default: web/ of the pyrt checkout)",
            metavar="DIR",
            parse=_absolute,
        ),
    )
    node_modules: Path = field(
        default=REPO_ROOT / "node_modules",
        metadata=flag(
            "--node-modules",
            "where npm installed pyodide and @pyscript/core, served under /vendor/ "
            "(default: ./node_modules of the pyrt checkout)",
            metavar="DIR",
            parse=_absolute,
        ),
    )
    package_dir: Path = field(default=REPO_ROOT / "pyrt", metadata=API_ONLY)
    #: Serve ``/demo/*`` controls and publish the demo feed. Refused together with ``token_secret``:
    #: the controls break and read other clients' connections.
    demo: bool = field(
        default=False,
        metadata=flag(
            "--demo", "serve the demo controls and feed (default: off; refused with a token secret)"
        ),
    )
    #: Serve ``/echo`` (raw echo, for benchmarks and raw-mode tests).
    echo: bool = field(
        default=False,
        metadata=flag(
            "--echo", "serve /echo, a raw WebSocket echo for benchmarks and raw-mode tests (default: off)"
        ),
    )
    #: Name sent in ``welcome`` (defaults to ``pyrt-<pid>``).
    server_name: str = field(
        default="",
        metadata=flag("--name", "server name sent in welcome (default pyrt-<pid>)", metavar="NAME"),
    )

    # --- security -------------------------------------------------------------------------------
    #: Origins allowed besides the server's own (``"*"`` allows every origin, without credentials).
    #: Requests without an ``Origin`` header (non-browser clients) are allowed.
    allowed_origins: tuple[str, ...] = field(
        default_factory=tuple,
        metadata=flag(
            "--allowed-origin",
            "also allow browsers from ORIGIN (repeatable; '*' allows any, without credentials); "
            "the own origin always is",
            metavar="ORIGIN",
        ),
    )
    #: ``Host`` names the server answers to (DNS-rebinding guard). IP addresses, ``localhost`` and
    #: ``*.localhost`` are always accepted; ``".example.com"`` accepts every subdomain, ``"*"`` any.
    allowed_hosts: tuple[str, ...] = field(
        default_factory=tuple,
        metadata=flag(
            "--allowed-host",
            "a Host name this server answers to (repeatable; '.example.com' for a domain and its "
            "subdomains, '*' for any). IP addresses and localhost always work",
            metavar="NAME",
        ),
    )
    #: HMAC secret for tokens; empty: authentication is off.
    token_secret: str = field(
        default="",
        metadata=flag(
            "--token-secret",
            "require signed tokens (HMAC secret; or set $PYRT_TOKEN_SECRET). Without it auth is off",
            metavar="SECRET",
            env=TOKEN_SECRET_ENV,
        ),
    )
    #: Extra CSP ``connect-src`` sources for the pages (the server's own origin is always allowed).
    connect_src: tuple[str, ...] = field(
        default_factory=tuple,
        metadata=flag("--connect-src", "extra CSP connect-src source (repeatable)", metavar="SOURCE"),
    )

    # --- limits per connection ------------------------------------------------------------------
    #: Largest accepted WebSocket message / HTTP body, in bytes (larger: close 1009 / HTTP 413).
    max_message_bytes: int = field(
        default=1024 * 1024, metadata=flag("--max-message-bytes", "message / body size limit")
    )
    #: Sustained frames per second per WebSocket connection (token bucket rate); 0: unlimited.
    #: Over it a frame is refused (``rate_limited``) and the connection held (pyrt.session.admission).
    rate_limit: float = field(
        default=200.0, metadata=flag("--rate-limit", "frames/s per WebSocket connection (0: off)")
    )
    #: Token bucket size: frames accepted in a burst above the rate.
    rate_burst: int = field(default=400, metadata=flag("--rate-burst", "frames allowed in a burst"))
    #: Frames a client may have sent without an answer: more refused in one hold before the
    #: client answered the hold's ping closes it with 1008. Advertised in ``welcome``.
    rate_window: int = field(
        default=1000,
        metadata=flag(
            "--rate-window", "frames a client may have unanswered; more refused before it answers: close 1008"
        ),
    )
    #: Frames sent after reading a refusal and before its ``retry_after`` (refilled one per
    #: second) tolerated before closing with 1008. A pyrt client sends none.
    abuse_limit: int = field(
        default=100,
        metadata=flag(
            "--abuse-limit",
            "frames sent after reading a refusal, before its retry_after, tolerated before close 1008",
        ),
    )
    #: Bytes queued for one connection before it counts as a slow consumer (close 1013).
    send_queue_bytes: int = field(
        default=4 * 1024 * 1024, metadata=flag("--send-queue-bytes", "slow-consumer limit per connection")
    )
    #: Subscriptions one WebSocket connection may hold.
    max_subscriptions: int = field(
        default=256, metadata=flag("--max-subscriptions", "subscriptions per connection")
    )
    #: Channels whose presence one WebSocket connection may join.
    max_presence_joins: int = field(
        default=16, metadata=flag("--max-presence-joins", "presence joins per connection")
    )
    #: Bytes of one presence ``info`` (its JSON text), at most.
    max_presence_info_bytes: int = field(
        default=512, metadata=flag("--max-presence-info-bytes", "bytes of one presence info (JSON)")
    )
    #: ``refresh`` frames per second per WebSocket connection (each checks a token and every
    #: subscription and presence it allows); 0: unlimited. Over it: ``rate_limited``.
    refresh_rate: float = field(
        default=1.0, metadata=flag("--refresh-rate", "token refreshes/s per connection")
    )
    #: ``refresh`` frames a connection may send in a burst above ``refresh_rate``.
    refresh_burst: int = field(
        default=5, metadata=flag("--refresh-burst", "token refreshes in a burst per connection")
    )
    #: Seconds a client has to send each request head (the first one and every keep-alive one).
    handshake_timeout: float = field(
        default=10.0, metadata=flag("--handshake-timeout", "seconds to send a request head")
    )
    #: Bytes of received WebSocket messages (counted after inflating) one connection may have
    #: handled per second (in bursts of one second's worth, at least one message of
    #: ``max_message_bytes``); over it, the server reads nothing more from it until it is back
    #: within the rate: the client slows down, nothing is refused. 0: unlimited.
    receive_rate: int = field(
        default=4 * 1024 * 1024,
        metadata=flag(
            "--receive-rate",
            "bytes/s of received WebSocket messages (inflated) per connection; over it, reading waits",
        ),
    )
    #: A compressed WebSocket message may inflate to 16 KiB or to this many times its compressed
    #: size, whichever is larger; more: close 1009. 0: no cap. ``serve.py`` only (the ASGI
    #: server inflates).
    max_inflate_ratio: int = field(
        default=32,
        metadata=flag(
            "--max-inflate-ratio",
            "a compressed message inflates to at most 16 KiB or this many times its size (0: no cap)",
        ),
    )

    # --- limits per client identity (token subject, else address) --------------------------------
    #: Open connections (WebSocket + SSE; with ``serve.py`` every TCP connection) per client
    #: address; 0: unlimited.
    max_connections_per_ip: int = field(
        default=1000,
        metadata=flag(
            "--max-connections-per-ip",
            "open connections per client address (at most half of --max-connections; 0: no cap)",
        ),
    )
    #: Publications per second per identity (``publish`` frames and ``POST /publish`` together);
    #: 0: unlimited. Over it: ``rate_limited`` / HTTP 429 with ``Retry-After``.
    publish_rate: float = field(
        default=200.0, metadata=flag("--publish-rate", "publications/s per client identity")
    )
    #: Publications an identity may make in a burst above ``publish_rate``.
    publish_burst: int = field(
        default=1000, metadata=flag("--publish-burst", "publications in a burst per identity")
    )
    #: Bytes of publication data per second per identity (publications are retained for
    #: ``history_ttl``: one identity holds at most ``publish_bytes_burst`` + this rate x
    #: ``history_ttl`` of every broker's history); 0: unlimited. Over it: ``rate_limited`` / 429.
    publish_bytes_rate: int = field(
        default=16 * 1024,
        metadata=flag(
            "--publish-bytes-rate",
            "bytes/s of publication data per identity (what it can hold in history; 0: off)",
        ),
    )
    #: Bytes of publication data an identity may publish in a burst above ``publish_bytes_rate``.
    publish_bytes_burst: int = field(
        default=16 * 1024 * 1024,
        metadata=flag("--publish-bytes-burst", "bytes of publication data per identity in a burst"),
    )
    #: Message and publish ids one identity keeps in the dedup window (its oldest go first).
    dedup_per_identity: int = field(
        default=10_000, metadata=flag("--dedup-per-identity", "ids remembered per identity")
    )
    #: Bytes an identity's connections may hold on their way out before a large answer made for
    #: it (an ack, a pong, a reply over 64 KiB) cuts the connection off as a slow consumer; 0: off.
    identity_queue_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=flag(
            "--identity-queue-bytes",
            "bytes queued for one identity's connections before large answers are refused",
        ),
    )
    #: History and presence reads per second per identity (``history``/``presence`` frames and
    #: ``GET /history`` together); 0: unlimited. Over it: ``rate_limited`` / HTTP 429.
    query_rate: float = field(
        default=50.0, metadata=flag("--query-rate", "history/presence reads/s per identity")
    )
    #: Reads an identity may make in a burst above ``query_rate``.
    query_burst: int = field(default=200, metadata=flag("--query-burst", "history/presence reads in a burst"))
    #: Members one identity may have in one channel's presence (its tabs and devices).
    max_presence_per_identity: int = field(
        default=16,
        metadata=flag("--max-presence-per-identity", "members one identity may have in one channel"),
    )
    #: Distinct channels one identity's connections (WebSocket and SSE) may subscribe to
    #: together; 0: unlimited. Over it: ``forbidden`` / SSE 429.
    max_channels_per_identity: int = field(
        default=1024,
        metadata=flag(
            "--max-channels-per-identity",
            "distinct channels one identity's connections may subscribe to together",
        ),
    )
    #: Presence changes (``presence_join``, updates included, and ``presence_leave`` frames) per
    #: second per identity; 0: unlimited. Over it: ``rate_limited``. Every change is a diff sent
    #: to every presence subscriber of the channel.
    presence_rate: float = field(
        default=10.0, metadata=flag("--presence-rate", "presence joins/leaves/s per identity")
    )
    #: Presence changes an identity may make in a burst above ``presence_rate``.
    presence_burst: int = field(
        default=100, metadata=flag("--presence-burst", "presence changes in a burst per identity")
    )
    #: Bytes of received WebSocket messages (after inflating) one identity's connections may
    #: have handled per second together (bursts of one second's worth); over it they are read
    #: no more until back within it. 0: unlimited.
    identity_receive_rate: int = field(
        default=16 * 1024 * 1024,
        metadata=flag(
            "--receive-rate-per-identity", "bytes/s of received WebSocket messages (inflated) per identity"
        ),
    )

    # --- limits for the whole process -----------------------------------------------------------
    #: Bytes of publications retained for replay, all channels together (memory broker); the
    #: least recently published channels lose their oldest publications first.
    history_bytes: int = field(
        default=64 * 1024 * 1024, metadata=flag("--history-bytes", "bytes of history, all channels (memory)")
    )
    #: Channels with retained history (memory broker); the least recently published is forgotten.
    max_channels: int = field(
        default=10_000, metadata=flag("--max-channels", "channels with history (memory broker)")
    )
    #: Distinct channels this process's clients may subscribe to, all together (in Redis mode,
    #: the streams this instance follows); 0: unlimited. Over it: ``forbidden`` / SSE 429.
    max_subscribed_channels: int = field(
        default=50_000,
        metadata=flag(
            "--max-subscribed-channels", "distinct channels this process's clients may subscribe to together"
        ),
    )
    #: Seconds a publication is retained (both brokers; an idle channel disappears after it).
    history_ttl: float = field(
        default=600.0, metadata=flag("--history-ttl", "seconds a publication is retained")
    )
    #: Publications replayed per subscribe or SSE resume (the newest ones; ``recovered: false``
    #: when more were missed); 0: ``retention``.
    max_replay: int = field(
        default=0, metadata=flag("--max-replay", "publications per replay (0: --retention)")
    )
    #: Bytes replayed per subscribe or SSE resume, at most (the newest publications that fit).
    max_replay_bytes: int = field(
        default=16 * 1024 * 1024, metadata=flag("--max-replay-bytes", "bytes per replay")
    )
    #: Publications one history page holds at most (a query asking for more gets this many).
    history_page_limit: int = field(
        default=1000, metadata=flag("--max-history-page", "publications per history page")
    )
    #: Bytes of data one history page holds at most (at least one publication, whatever its size).
    history_page_bytes: int = field(
        default=1024 * 1024, metadata=flag("--max-history-page-bytes", "bytes of data per history page")
    )
    #: Members of one channel's presence, at most.
    max_presence: int = field(
        default=1000, metadata=flag("--max-presence", "members of one channel's presence")
    )
    #: Members of every channel's presence together (memory broker; Redis: see docs/server.md).
    max_presence_total: int = field(
        default=50_000, metadata=flag("--max-presence-total", "members in all (memory broker)")
    )
    #: Seconds over which presence changes are gathered into one diff per channel: however
    #: many members come and go, a presence subscriber gets at most one diff per channel per tick.
    presence_tick: float = field(
        default=0.1,
        metadata=flag(
            "--presence-tick", "seconds over which presence changes are gathered into one diff per channel"
        ),
    )
    #: Seconds a presence entry lives after its instance last refreshed it (every third of it):
    #: the members of an instance that died leave within 4/3 of this.
    presence_ttl: float = field(
        default=30.0, metadata=flag("--presence-ttl", "seconds a dead instance's members last")
    )
    #: Seconds the member of a connection lost without a close frame stays, so that a client
    #: that reconnects at once is not seen to leave and join again.
    presence_grace: float = field(
        default=5.0,
        metadata=flag(
            "--presence-grace", "seconds a member of a lost connection stays, awaiting its reconnect"
        ),
    )

    # --- serve.py's HTTP server (not used when the app is mounted in another server) -------------
    #: Open TCP connections in all (each costs a file descriptor); clamped below the process's
    #: file limit. A new connection over it is reset.
    max_connections: int = field(
        default=10_000, metadata=flag("--max-connections", "open TCP connections in all")
    )
    #: Bytes of received WebSocket messages waiting for the application, per client address and
    #: in all; over it, the server reads no more from those clients until it has caught up.
    address_inbox_bytes: int = field(
        default=32 * 1024 * 1024,
        metadata=flag("--inbox-bytes-per-ip", "received WebSocket bytes waiting to be handled, per address"),
    )
    total_inbox_bytes: int = field(
        default=256 * 1024 * 1024, metadata=flag("--inbox-bytes", "received WebSocket bytes waiting")
    )
    #: Bytes of one request head (request line and headers); larger: 431.
    max_head_bytes: int = field(
        default=32 * 1024, metadata=flag("--max-head-bytes", "bytes of a request head")
    )
    #: Share of one core that reading one client address's input may take (connections,
    #: requests, WebSocket messages and bytes, at estimated costs; docs/server.md, "The CPU
    #: budget"); over it, the address's connections are read one piece at a time, in turn, as
    #: the share allows. 0: no budget. Trusted proxies have none.
    cpu_share_per_ip: float = field(
        default=0.25,
        metadata=flag(
            "--cpu-share-per-ip", "share of one core that reading one address's input may take (0: no budget)"
        ),
    )
    #: Seconds of (estimated) work an address may have the server do at once.
    cpu_burst: float = field(
        default=0.05, metadata=flag("--cpu-burst", "seconds of work an address may cause at once")
    )
    #: Seconds a request body may take after its head; slower: 408.
    body_timeout: float = field(
        default=30.0, metadata=flag("--body-timeout", "seconds to send a request body")
    )

    # --- liveness -------------------------------------------------------------------------------
    #: WebSocket heartbeat interval in seconds, announced in ``welcome``. The server pings a
    #: connection that was silent this long and drops one silent for three intervals.
    heartbeat: float = field(default=20.0, metadata=flag("--heartbeat", "WebSocket heartbeat seconds"))
    #: Seconds between SSE comment heartbeats (``: hb``).
    sse_heartbeat: float = field(default=15.0, metadata=flag("--sse-heartbeat", "SSE heartbeat seconds"))
    #: SSE ``retry:`` sent at the start of every stream, in milliseconds.
    sse_retry_ms: int = field(default=1000, metadata=flag("--sse-retry", "SSE retry: milliseconds"))
    #: Compress SSE streams with gzip for clients that accept it (flushed after every write).
    sse_gzip: bool = field(
        default=True, metadata=flag("--sse-gzip", "gzip SSE streams for clients that accept it (default: on)")
    )
    #: Ship pyrt's bytecode for the page's Python in ``/pyrt.zip`` (compiled by the Pyodide in
    #: ``node_modules`` under Node.js, in the background, cached; pyrt.server.bytecode).
    bytecode: bool = field(
        default=True,
        metadata=flag(
            "--bytecode",
            "ship pyrt's bytecode for Pyodide's Python in /pyrt.zip, compiled by node_modules' Pyodide "
            "under Node.js when `node` is on the PATH (default: on)",
        ),
    )
    #: Seconds a graceful shutdown waits for clients to take their close frames.
    shutdown_grace: float = field(
        default=5.0,
        metadata=flag(
            "--shutdown-grace", "seconds a graceful shutdown waits for clients to take their close frames"
        ),
    )
    #: Clients per second a restart should take back (default 80): a shutdown asks the clients
    #: it closes to spread their reconnects over ``connections / reconnect_rate`` seconds (at
    #: most 60); 0: no spreading (everyone reconnects at once).
    reconnect_rate: float = field(
        default=DEFAULT_RECONNECT_RATE,
        metadata=flag(
            "--reconnect-rate",
            "clients per second a restart takes back: SIGTERM spreads reconnects over n/rate s (0: off)",
        ),
    )

    # --- brokers and dedup ----------------------------------------------------------------------
    #: Publications retained per channel for replay.
    retention: int = field(default=1000, metadata=flag("--retention", "publications kept per channel"))
    #: Seconds a message or publish id is remembered.
    dedup_ttl: float = field(default=600.0, metadata=flag("--dedup-ttl", "seconds ids are remembered"))
    #: Ids remembered at most, all identities together (memory broker).
    dedup_max: int = field(
        default=100_000, metadata=flag("--dedup-max", "ids remembered in all (memory broker)")
    )

    # --- operators ------------------------------------------------------------------------------
    #: The bearer token of ``/admin/trace`` and ``/admin/connections``; empty: they answer 404.
    admin_token: str = field(
        default="",
        metadata=flag(
            "--admin-token",
            "turn on /admin/trace and /admin/connections for requests with this bearer token "
            "(or set $PYRT_ADMIN_TOKEN; at least 16 characters). Without it they answer 404",
            metavar="TOKEN",
            env=ADMIN_TOKEN_ENV,
        ),
    )
    #: Put publication and message data in the trace (default: only their size).
    trace_payloads: bool = field(
        default=False,
        metadata=flag("--trace-payloads", "show payloads in /admin/trace (default: sizes only)"),
    )
    #: Events a trace reader may fall behind by; newer ones are dropped (and counted) meanwhile.
    trace_queue: int = field(
        default=1000, metadata=flag("--trace-queue", "events a slow /admin/trace reader may lag by")
    )
    #: Admin requests per second per address (a burst of ten).
    admin_rate: float = field(
        default=2.0, metadata=flag("--admin-rate", "admin requests/s per address (0: off)")
    )
    #: Trace readers at once, all addresses together.
    max_trace_readers: int = field(
        default=8, metadata=flag("--max-trace-readers", "open /admin/trace streams at most")
    )
    #: OpenTelemetry spans for ``message`` and ``publish`` frames, broker publishes and fan-outs,
    #: under the frame's ``traceparent`` when it has one (docs/server.md, "OpenTelemetry"). Needs
    #: ``pyrt[otel]``; off: nothing of OpenTelemetry is imported.
    otel: bool = field(
        default=False,
        metadata=flag(
            "--otel",
            "OpenTelemetry spans for frames, broker publishes and fan-outs (pip install pyrt[otel]; "
            "exporter from the OTEL_* environment variables)",
        ),
    )
    #: The ``TracerProvider`` the spans go to (``None``: the global one; when none is set, one made
    #: from the ``OTEL_*`` environment variables). For embedding applications and tests.
    otel_tracer_provider: Any = field(default=None, metadata=API_ONLY)

    # --- demo -----------------------------------------------------------------------------------
    #: Seconds between demo ``tick`` events on the ``feed`` channel (0: no demo feed).
    demo_tick: float = field(default=1.0, metadata=flag("--demo-tick", "seconds between feed ticks (0: off)"))

    def __post_init__(self) -> None:
        if not self.presence_ttl > 0 or self.presence_grace < 0 or self.presence_tick < 0:
            raise ValueError("presence_ttl must be > 0, presence_grace and presence_tick >= 0")
        for name in ("history_page_limit", "history_page_bytes", "max_presence", "max_presence_per_identity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.admin_token and len(self.admin_token) < 16:
            raise ValueError("admin_token must be at least 16 characters (a guessable token opens the trace)")
        if self.trace_queue < 1 or self.max_trace_readers < 1:
            raise ValueError("trace_queue and max_trace_readers must be at least 1")
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
