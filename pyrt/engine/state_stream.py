"""State then stream: load a snapshot of application state, then follow a channel from exactly the
offset the snapshot reflects, so that no update is missed and none is applied twice.

The pattern (the application's side is in docs/protocol.md, "State then stream"): the server
publishes every change to the state into a channel and keeps, with the state, the offset of the
last publication the state contains; one endpoint returns both, read together. A client:

1. loads ``(state, offset)``;
2. subscribes to the channel ``since=offset``: the server replays what was published after the
   snapshot, then sends what follows, each publication once and in order;
3. applies every publication to its state.

What can go wrong, and what :class:`StateStream` decides then:

- the snapshot's offset is no longer retained (it is too old, or the channel started a new life):
  the first publication arrives with ``recovered=False`` -> load again; publications that arrive
  while loading are kept and, once the new snapshot is in, those after its offset are applied;
- a reconnect: the subscription resumes after the last publication applied (pyrt's subscriptions
  do that by themselves), or, when the server no longer has what was missed, ``recovered=False``
  again -> load again;
- a publication at or before the offset of the state (a replay that overlaps it): dropped.

While loading, at most ``buffer_limit`` publications are kept; past it they are all dropped and
another load follows the current one (it would otherwise hold a hot channel in memory).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyrt.wire.frames import Publication
from pyrt.wire.offsets import OffsetKey, offset_key

__all__ = ["Decision", "StateStream"]


class Decision(enum.Enum):
    """What to do with one publication."""

    APPLY = "apply"  # apply it to the state now
    DROP = "drop"  # the state has it already
    WAIT = "wait"  # a snapshot is being loaded: kept, decided once it is in
    RELOAD = "reload"  # load a new snapshot (publications were missed); kept like WAIT


@dataclass(slots=True)
class StateStream:
    """The decisions of one state-then-stream follower (see the module docstring)."""

    buffer_limit: int = 10_000
    offset: OffsetKey | None = None  # of the last publication the state holds (None: loading)
    loading: bool = True
    reloads: int = 0  # loads after the first one
    applied: int = 0  # publications applied
    dropped: int = 0  # publications the state had already
    _buffer: list[Publication] = field(default_factory=list)
    _again: bool = False  # the buffer overflowed: load once more after this load

    def received(self, publication: Publication) -> Decision:
        """A publication of the channel arrived."""
        if not publication.recovered:
            self._keep(publication, fresh=True)
            if self.loading:
                return Decision.WAIT  # the load under way may already be too old: load again after it
            self.loading = True
            self.reloads += 1
            return Decision.RELOAD
        if self.loading:
            self._keep(publication)
            return Decision.WAIT
        key = _key(publication)
        if self.offset is not None and key <= self.offset:
            self.dropped += 1
            return Decision.DROP
        self.offset = key
        self.applied += 1
        return Decision.APPLY

    def loaded(self, offset: str) -> tuple[Sequence[Publication], bool]:
        """A snapshot at ``offset`` is in: the publications kept meanwhile that it does not hold,
        to apply in order, and whether to load again at once (the kept ones were too many, or a
        gap was announced while it loaded)."""
        key = offset_key(offset)
        if key is None:
            raise ValueError(f"a snapshot's offset must look like '12-3' or '0', got {offset!r}")
        self.offset = key
        if self._again:  # keep what came meanwhile: the next snapshot, read later, decides it
            self._again = False
            self.reloads += 1
            return (), True
        kept, self._buffer = self._buffer, []
        self.loading = False
        newer = []
        for publication in kept:  # in arrival order: a replay may repeat some
            if _key(publication) > self.offset:
                self.offset = _key(publication)
                newer.append(publication)
            else:
                self.dropped += 1
        self.applied += len(newer)
        return newer, False

    def doubt(self) -> None:
        """The state can no longer be trusted (applying a publication failed): load again;
        what arrives meanwhile is kept as for any load."""
        if not self.loading:
            self.loading = True
            self.reloads += 1
            self._buffer = []

    def _keep(self, publication: Publication, fresh: bool = False) -> None:
        if fresh and self.loading:
            self._again = True  # the gap came after the load started: that load may miss it
        if fresh and not self.loading:
            self._buffer = []
        if len(self._buffer) >= self.buffer_limit:
            self._buffer = []
            self._again = True
            return
        self._buffer.append(publication)


def _key(publication: Publication) -> OffsetKey:
    return (offset_key(publication.offset) if publication.offset else None) or (0, 0)
