"""W3C trace context: the task's `traceparent` (the coordinator traces: it exports to an
OTLP endpoint) becomes the parent of the call's span, whose `traceparent` the result
carries; without tracing the incoming one is passed through."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import weft
from conftest import unique
from test_worker import listen_results, results_of

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    yield provider


def _parts(traceparent: str) -> tuple[str, str]:
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return trace_id, span_id


async def test_the_call_span_is_a_child_of_the_task_span(client, start_worker, admin):
    name = unique("traced")
    seen: dict = {}

    @weft.tool(name=name)
    async def traced(ctx: weft.Context) -> dict:
        seen["traceparent"] = ctx.traceparent
        seen["span"] = trace.get_current_span().get_span_context()
        return {}

    run_id = str(weft.uuid7())
    heard = await listen_results(admin, run_id)
    async with start_worker(traced):
        record = await client.run({"name": unique("trace"), "steps": [{"id": "a", "tool": name, "params": {}}]},
                                  timeout=30, run_id=run_id)
    assert record["status"] == "completed", record
    assert seen["traceparent"], "the coordinator sent no traceparent"
    task_trace, task_span = _parts(seen["traceparent"])
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == f"tool {name}"]
    assert len(spans) == 1
    span = spans[0]
    assert format(span.context.trace_id, "032x") == task_trace
    assert span.parent is not None and format(span.parent.span_id, "016x") == task_span
    assert span.attributes["weft.run_id"] == record["run_id"]
    assert span.kind == trace.SpanKind.CONSUMER
    [result] = await results_of(heard)
    result_trace, result_span = _parts(result.headers["traceparent"])
    assert result_trace == task_trace
    assert result_span == format(span.context.span_id, "016x") != task_span


async def test_without_tracing_the_traceparent_is_passed_through(client, start_worker, admin):
    name = unique("untraced")
    seen: dict = {}

    @weft.tool(name=name)
    async def untraced(ctx: weft.Context) -> dict:
        seen["traceparent"] = ctx.traceparent
        return {}

    run_id = str(weft.uuid7())
    heard = await listen_results(admin, run_id)
    async with start_worker(untraced, trace=False):
        record = await client.run({"name": unique("trace"), "steps": [{"id": "a", "tool": name, "params": {}}]},
                                  timeout=30, run_id=run_id)
    assert record["status"] == "completed", record
    [result] = await results_of(heard)
    assert result.headers["traceparent"] == seen["traceparent"]
    assert result.headers["Nats-Msg-Id"] == f"result:task:{record['run_id']}:a:1"
    body = json.loads(result.data)
    assert body["outcome"] == {"ok": {}}
    assert body["run_id"] == record["run_id"] and body["step_id"] == "a" and body["attempt"] == 1
