"""An inspector's live view in a page: HTML rendered into a DOM element.

:class:`DomView` adds one ``<div>`` to the element it is given and replaces its ``innerHTML``
with each refresh (the inspector throttles them, :data:`pyrt.aio.inspector.REFRESH`).
It registers no JavaScript callback: the refreshes run on the event loop's timers, so it
creates no proxy at all, and :meth:`DomView.close` removes the ``<div>`` and lets go of both
elements (their ``JsProxy`` references are plain references, released with them).
"""

from __future__ import annotations

from typing import Any

import js

__all__ = ["DomView"]


class DomView:
    """A ``<div class="pyrt-inspector-view">`` appended to ``target`` (an element, or a CSS
    selector that must match one)."""

    __slots__ = ("_box", "_element")

    def __init__(self, target: Any) -> None:
        element = js.document.querySelector(target) if isinstance(target, str) else target
        if element is None:
            raise ValueError(f"mount({target!r}): no element matches")
        box = js.document.createElement("div")
        box.className = "pyrt-inspector-view"
        element.appendChild(box)
        self._element: Any = element
        self._box: Any = box

    def update(self, html: str) -> None:
        """Show ``html`` (a fragment every value of which is escaped: pyrt.engine.inspect_render)."""
        if self._box is not None:
            self._box.innerHTML = html

    def close(self) -> None:
        """Remove the view from the page. Closing twice does nothing."""
        box, self._box, self._element = self._box, None, None
        if box is not None:
            box.remove()
