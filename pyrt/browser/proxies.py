"""Ownership of JavaScript proxies.

Every ``create_proxy`` made by pyrt goes through a :class:`ProxyOwner`: one owner per adapter
object, and each proxy is destroyed exactly once — by :meth:`ProxyOwner.release` when the adapter
lets go of one native object (a socket replaced on reconnect), or by
:meth:`ProxyOwner.destroy_all` on close. :func:`live_count` reports how many pyrt proxies are
alive in this interpreter, so tests (and curious users) can check that nothing leaks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyodide.ffi import JsProxy, create_proxy

__all__ = ["ProxyOwner", "live_count"]

_live = 0


def live_count() -> int:
    """How many proxies created through any :class:`ProxyOwner` are not destroyed yet."""
    return _live


class ProxyOwner:
    """Creates proxies and destroys each one exactly once.

    After :meth:`destroy_all` the owner can be used again (a reconnecting client reuses its owner).
    """

    __slots__ = ("_proxies",)

    def __init__(self) -> None:
        self._proxies: list[JsProxy] = []

    def __len__(self) -> int:
        return len(self._proxies)

    def proxy(self, func: Callable[..., Any]) -> JsProxy:
        """A JS-callable proxy of ``func``, owned until released or destroyed."""
        global _live
        proxy = create_proxy(func)
        self._proxies.append(proxy)
        _live += 1
        return proxy

    def release(self, proxy: JsProxy) -> None:
        """Destroy one proxy this owner made. Releasing a proxy it does not own raises."""
        global _live
        for index, owned in enumerate(self._proxies):
            if owned is proxy:
                del self._proxies[index]
                _live -= 1
                proxy.destroy()
                return
        raise ValueError("this proxy is not owned here (already released, or made elsewhere)")

    def destroy_all(self) -> None:
        """Destroy every proxy still owned, newest first."""
        global _live
        while self._proxies:
            proxy = self._proxies.pop()
            _live -= 1
            proxy.destroy()
