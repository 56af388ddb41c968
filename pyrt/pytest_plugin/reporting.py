"""What the test resources saw, attached to the report of a test that fails.

Servers, proxies and pages register themselves here when they start (whoever starts them: a
fixture, a test, any code of the test's). When a test begins, the registry forgets the resources
that finished before it and notes where every live one stands (:meth:`Reportable.mark`); when the test fails,
each resource says what happened *during that test* (a server its log lines, a page its console,
uncaught errors and blocked requests, a proxy its fault events), and the plugin adds one report
section per resource. A page also reports *violations* (a request that tried to leave localhost):
the plugin fails an otherwise passing test with them.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["REGISTRY", "Registry", "Reportable", "tail"]


class Reportable(Protocol):
    """A test resource that can say what it saw."""

    @property
    def report_title(self) -> str:
        """The report section's title, such as ``pyrt server http://127.0.0.1:41234``."""
        ...

    @property
    def finished(self) -> bool:
        """True once stopped or closed (forgotten when the next test begins)."""
        ...

    def mark(self) -> object:
        """An opaque position: where the resource stands now."""
        ...

    def report(self, since: object | None) -> str:
        """What happened after ``since`` (a :meth:`mark`; None: since the start), or ``""``."""
        ...

    def violations(self, since: object | None) -> list[str]:
        """Problems after ``since`` that fail a test by themselves (blocked requests)."""
        ...


def tail(lines: list[str], limit: int) -> list[str]:
    """The last ``limit`` lines, with a note of how many were left out."""
    if len(lines) <= limit:
        return lines
    return [f"... {len(lines) - limit} earlier lines left out ...", *lines[-limit:]]


class Registry:
    """The live resources, in the order they started, and where each stood when the test began."""

    def __init__(self) -> None:
        self._live: dict[int, Reportable] = {}
        self._marks: dict[int, object] = {}

    def track(self, resource: Reportable) -> None:
        self._live[id(resource)] = resource

    def resources(self) -> list[Reportable]:
        return list(self._live.values())

    def begin_test(self) -> None:
        """Forget what finished before this test; mark where every live resource stands."""
        self._live = {key: r for key, r in self._live.items() if not r.finished}
        self._marks = {key: r.mark() for key, r in self._live.items()}

    def _since(self, resource: Reportable) -> object | None:
        return self._marks.get(id(resource))  # None: it started during this test

    def sections(self, skip: tuple[Reportable, ...] = ()) -> list[tuple[str, str]]:
        """``(title, text)`` for every resource with something to say about this test."""
        out = []
        for resource in self._live.values():
            if any(resource is skipped for skipped in skip):
                continue
            text = resource.report(self._since(resource))
            if text:
                out.append((resource.report_title, text))
        return out

    def violations(self) -> list[tuple[str, list[str]]]:
        """``(title, problems)`` for every resource with violations during this test."""
        out = []
        for resource in self._live.values():
            problems = resource.violations(self._since(resource))
            if problems:
                out.append((resource.report_title, problems))
        return out


#: The registry the plugin reports from; resources add themselves when they start.
REGISTRY = Registry()
