"""Token refresh in place: the feature that keeps a connection's token fresh without dropping it.

The schedule is :class:`~pyrt.engine.credentials.TokenRefresh` (when to refresh, when to try
again, which answer counts); this feature carries it out on the connection:

- a ``welcome`` that names the token's ``ttl`` starts the schedule;
- when a refresh is due it asks the adapter for a token (:class:`FetchToken`, numbered);
- the adapter's answer (:meth:`TokenRefresher.fetched`) goes out at once in a ``refresh`` frame,
  a :class:`RefreshRequest`: never persisted, never sent again (an unanswered one fails and a new
  token is fetched), forgotten with its connection;
- the server's answer names the next ``ttl``; a refusal, a failed callable or no answer in time
  is reported (:class:`~pyrt.errors.TokenError`) and tried again later;
- a lost connection resets the schedule: the next one starts from its own ``welcome``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pyrt.engine.actions import FetchToken, ReportError
from pyrt.engine.credentials import TokenRefresh
from pyrt.engine.requests import Request, Requests
from pyrt.engine.states import State
from pyrt.errors import TokenError
from pyrt.wire.frames import Ack, Welcome

if TYPE_CHECKING:
    from pyrt.engine.connection import ConnectionCore

__all__ = ["RefreshRequest", "TokenRefresher"]


@dataclass(slots=True, eq=False)
class RefreshRequest(Request):
    """A ``refresh`` frame carrying a new token for the open connection."""

    name: ClassVar[str] = "refresh"
    persisted: ClassVar[bool] = False
    resent: ClassVar[bool] = False  # the next connection carries a fresh token anyway
    owner: TokenRefresher | None = None

    def answered(self, requests: Requests, ack: Ack, now: float) -> None:
        assert self.owner is not None
        self.owner.answered(ack, now)

    def refused(self, requests: Requests, code: str | None, message: str, now: float) -> None:
        assert self.owner is not None
        self.owner.failed(now, TokenError(f"the server refused the refreshed token: {message}"))

    def timed_out(self, requests: Requests, now: float) -> None:
        """A new token is fetched instead of sending this one again."""
        assert self.owner is not None
        requests.acks.discard(self)
        self.owner.failed(now, TokenError("the server did not answer the token refresh in time"))


class TokenRefresher:
    """The token refresh of one client made with ``token_refresh=True`` (see the module docstring)."""

    __slots__ = ("core", "schedule")

    def __init__(self, core: ConnectionCore) -> None:
        self.core = core
        self.schedule = TokenRefresh()

    def welcomed(self, welcome: Welcome, now: float) -> None:
        if welcome.ttl is not None:
            self.schedule.expires_in(welcome.ttl, now)
            self.core._rearm = True

    def tick(self, now: float) -> None:
        schedule = self.schedule
        if schedule.due(now):
            self.core._actions.append(FetchToken(schedule.started()))

    def fetched(self, token: str, now: float, request: int | None) -> None:
        core = self.core
        if core._sm.state is not State.OPEN or not self.schedule.takes(request):
            return
        requests = core.requests
        ack_id = requests.ids.next()
        frame = core.protocol.encode_refresh(ack_id, token)
        requests.send_now(RefreshRequest(ack_id, frame, None, core.ack_timeout, owner=self), now)

    def fetch_failed(self, error: Exception, now: float, request: int | None) -> None:
        if not self.schedule.takes(request):
            return
        if not isinstance(error, TokenError):
            wrapped = TokenError(f"the token callable failed: {error}")
            wrapped.__cause__ = error
            error = wrapped
        self.failed(now, error)

    def failed(self, now: float, error: Exception) -> None:
        self.schedule.failed(now)
        self.core._actions.append(ReportError(error))

    def answered(self, ack: Ack, now: float) -> None:
        if not ack.ok:
            self.failed(now, TokenError(f"the server refused the refreshed token: {ack.error}"))
            return
        data = ack.data if isinstance(ack.data, dict) else {}
        ttl = data.get("ttl")
        if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl >= 0:
            self.schedule.expires_in(float(ttl), now)
            self.core._rearm = True
        else:
            self.schedule.reset()  # the server says the connection does not expire
        self.core.stats.token_refreshes += 1

    def lost(self) -> None:
        self.schedule.reset()

    def next_deadline(self) -> float | None:
        return self.schedule.next_deadline()
