"""W3C trace context of tool calls.

With the `opentelemetry` package (API) importable, each call is a span, child of the
task's `traceparent` (the coordinator's span of the step), and the result carries the
call span's `traceparent`. Without it, the task's `traceparent`/`tracestate` are passed on
to the result unchanged, so the trace still links the step to its result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

try:  # optional
    from opentelemetry import trace as _otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator as _Propagator

    OTEL = True
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]
    _Propagator = None  # type: ignore[assignment,misc]
    OTEL = False

__all__ = ["call_span", "OTEL"]


def _incoming(headers: dict[str, str] | None) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for key in ("traceparent", "tracestate"):
        value = (headers or {}).get(key)
        if value:
            carrier[key] = value
    return carrier


class CallSpan:
    """The trace of one call: the headers to put on its result, and the span (if any)."""

    def __init__(self, carrier: dict[str, str], span: Any = None) -> None:
        self._carrier = carrier
        self.span = span

    def result_headers(self) -> dict[str, str]:
        if self.span is None or _Propagator is None or _otel_trace is None:
            return dict(self._carrier)
        out: dict[str, str] = {}
        _Propagator().inject(out, context=_otel_trace.set_span_in_context(self.span))
        return out or dict(self._carrier)

    def record_error(self, code: str | None, message: str) -> None:
        if self.span is None or _otel_trace is None:
            return
        try:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("weft.outcome", "error")
            if code:
                self.span.set_attribute("weft.error.code", code)
            self.span.set_status(Status(StatusCode.ERROR, message))
        except Exception:  # never let tracing fail a call
            pass


@contextlib.contextmanager
def call_span(
    headers: dict[str, str] | None,
    *,
    tool: str,
    run_id: str,
    step_id: str,
    attempt: int,
    worker: str,
    compensation: bool,
    enabled: bool = True,
) -> Iterator[CallSpan]:
    carrier = _incoming(headers)
    if not (enabled and OTEL and _otel_trace is not None and _Propagator is not None):
        yield CallSpan(carrier)
        return
    parent = _Propagator().extract(carrier)
    tracer = _otel_trace.get_tracer("weft-sdk")
    with tracer.start_as_current_span(
        f"tool {tool}",
        context=parent,
        kind=_otel_trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.destination.name": f"weft.task.{tool}",
            "weft.tool": tool,
            "weft.run_id": run_id,
            "weft.step_id": step_id,
            "weft.attempt": attempt,
            "weft.worker": worker,
            "weft.compensation": compensation,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield CallSpan(carrier, span)
