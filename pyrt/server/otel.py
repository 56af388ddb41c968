"""OpenTelemetry spans of the server, opt-in: ``serve.py --otel`` (``pip install pyrt[otel]``).

Imported only when the option is on (the runtime imports this module then): a server without it
loads nothing of OpenTelemetry, and its hot paths pay one ``None`` check.

Spans (docs/server.md, "OpenTelemetry"):

- ``pyrt publish`` (kind SERVER): the handling of one ``publish`` frame, from the session's go to
  the broker's answer; ``pyrt message`` (SERVER): of one ``message`` frame, the application's
  handler included. Each is a child of the frame's ``traceparent`` (W3C Trace Context, read with
  the W3C propagator whatever ``OTEL_PROPAGATORS`` says: the field is W3C by definition) when it
  carries one, else of the current context.
- ``pyrt broker.publish`` (CLIENT): one broker round trip, a child of the frame's span (``POST
  /publish`` makes them too); an error is recorded on it.
- ``pyrt fan_out`` (INTERNAL): one publication handed to this process's subscribers. With the
  memory broker it runs inside the broker's publish, so it is that span's child; with Redis it
  runs when the publication comes back from Redis, a trace of its own.

Where spans go: the ``TracerProvider`` in the settings (``otel_tracer_provider``), else the global
one, else one made here from the SDK's ``OTEL_*`` environment variables (``OTEL_SERVICE_NAME``,
``OTEL_TRACES_SAMPLER``, ...) with the exporters named by ``OTEL_TRACES_EXPORTER`` (``otlp`` by
default, ``console``, ``none``; any installed exporter's entry point name).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pyrt.server.brokers.base import Broker, Publication
from pyrt.server.hub import Hub
from pyrt.server.metrics import Stats
from pyrt.session import actions as act

__all__ = ["ServerTelemetry"]

log = logging.getLogger("pyrt.server")

_W3C = TraceContextTextMapPropagator()
_SYSTEM = "pyrt"


def _parent(traceparent: str | None) -> Context | None:
    """The context a frame's span starts in: under its ``traceparent`` when it has one."""
    if traceparent is None:
        return None
    return _W3C.extract({"traceparent": traceparent})


def _configured_provider() -> tuple[Any, bool]:
    """The global ``TracerProvider``, or one made from the ``OTEL_*`` environment variables
    (then ``True``: this module shuts it down)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current, False
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()  # resource and sampler from OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER...
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    for name in (part.strip() for part in names.split(",")):
        if not name or name == "none":
            continue
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning(
                "OpenTelemetry: no span exporter %r is installed (OTEL_TRACES_EXPORTER); "
                "its spans are dropped (for OTLP: pip install opentelemetry-exporter-otlp)",
                name,
            )
            continue
        exporter = next(iter(found)).load()()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider, True


class ServerTelemetry:
    """The spans of one runtime (made by it when ``settings.otel`` is on)."""

    def __init__(self, provider: Any = None) -> None:
        owned = False
        if provider is None:
            provider, owned = _configured_provider()
        self._provider = provider
        self._owned = owned
        self.tracer = trace.get_tracer("pyrt.server", tracer_provider=provider)

    # ------------------------------------------------------------------------------ frames

    @contextmanager
    def handling(self, action: act.Action, session: str) -> Iterator[Span | None]:
        """The span of a ``publish`` or ``message`` frame's handling (no span for other actions)."""
        if type(action) is act.Publish:
            assert isinstance(action, act.Publish)
            attributes: dict[str, Any] = {
                "messaging.system": _SYSTEM,
                "messaging.operation.name": "publish",
                "messaging.destination.name": action.channel,
                "pyrt.event": action.event,
                "pyrt.session": session,
            }
            name, parent = "pyrt publish", action.traceparent
        elif type(action) is act.HandleMessage:
            assert isinstance(action, act.HandleMessage)
            attributes = {"messaging.system": _SYSTEM, "pyrt.session": session}
            name, parent = "pyrt message", action.traceparent
        else:
            yield None
            return
        frame_id = action.id
        if frame_id is not None:
            attributes["pyrt.frame.id"] = frame_id
        with self.tracer.start_as_current_span(
            name, context=_parent(parent), kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            yield span

    # ------------------------------------------------------------------------------ broker

    def instrument(self, broker: Broker) -> None:
        """Make each of ``broker``'s publishes a ``pyrt broker.publish`` span."""
        publish = broker.publish
        tracer = self.tracer
        kind = type(broker).__name__

        async def traced(channel: str, event: str, data_json: str, **options: Any) -> tuple[str, bool]:
            with tracer.start_as_current_span(
                "pyrt broker.publish",
                kind=SpanKind.CLIENT,
                attributes={
                    "messaging.system": _SYSTEM,
                    "messaging.destination.name": channel,
                    "pyrt.broker": kind,
                    "pyrt.data_bytes": len(data_json),
                },
            ) as span:
                offset, duplicate = await publish(channel, event, data_json, **options)
                span.set_attribute("pyrt.offset", offset)
                span.set_attribute("pyrt.duplicate", duplicate)
                return offset, duplicate

        broker.publish = traced  # type: ignore[method-assign]

    # ------------------------------------------------------------------------------ fan-out

    def fan_out(self, hub: Hub, stats: Stats) -> Callable[[Publication], None]:
        """``hub.dispatch`` in a ``pyrt fan_out`` span (the broker's listener when tracing);
        ``stats``: the hub's counters (its deliveries make the span's ``pyrt.delivered``)."""
        dispatch = hub.dispatch
        tracer = self.tracer

        def traced(publication: Publication) -> None:
            with tracer.start_as_current_span(
                "pyrt fan_out",
                kind=SpanKind.INTERNAL,
                attributes={
                    "messaging.system": _SYSTEM,
                    "messaging.destination.name": publication.channel,
                    "pyrt.offset": publication.offset,
                    "pyrt.subscribers": hub.subscriber_count(publication.channel),
                },
            ) as span:
                before = stats.deliveries
                dispatch(publication)
                span.set_attribute("pyrt.delivered", stats.deliveries - before)

        return traced

    def shutdown(self) -> None:
        """Export what is buffered; shut down the provider this module made."""
        if self._owned:
            self._provider.shutdown()
