"""OpenTelemetry for pyrt clients (opt-in, ``pip install pyrt[otel]``).

A client made with ``traceparent=current_traceparent`` puts the W3C ``traceparent`` of the span
current where ``send``, ``send_with_ack`` or ``publish`` is called on the frame it sends (a
``message`` or ``publish`` frame, docs/protocol.md); a server run with ``--otel`` opens its spans
under it::

    from pyrt import WebSocketClient
    from pyrt.otel import current_traceparent

    client = WebSocketClient(url, traceparent=current_traceparent)
    with tracer.start_as_current_span("checkout"):
        await client.publish("orders", order)  # the server's spans join this trace

A client made without the option sends exactly the frames it sends otherwise. Outside a span
(or with no OpenTelemetry SDK configured) no ``traceparent`` is sent. Any callable returning a
``traceparent`` string (or ``None``) works as the option: this module is only the common one.
"""

from __future__ import annotations

from opentelemetry import propagate

__all__ = ["current_traceparent"]


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current OpenTelemetry context (the configured propagator's
    output, ``None`` when it writes none: no span, or an invalid one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")
