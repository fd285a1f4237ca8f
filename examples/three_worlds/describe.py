"""The Python world of examples/three_worlds: a Weft worker serving `describe_graph`.

    PYTHONPATH=examples/three_worlds .weft/venv/bin/python -m weft worker describe:worker

With OTEL_EXPORTER_OTLP_ENDPOINT set, its spans go to that OTLP (gRPC) receiver, children
of the coordinator's spans: the run is one trace across Rust, Python and the MCP server's
worker. With MARK_DIR set, each call leaves a file there as it starts (the tests use it to
kill the worker mid-tool).
"""

import asyncio
import os
from pathlib import Path

import weft


def _export_traces() -> None:
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "weft-python-worker"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(provider)


_export_traces()
worker = weft.Worker(ack_wait=float(os.environ.get("WEFT_ACK_WAIT_S", "30")))


@worker.tool(description="Describes the entities of a knowledge graph in one sentence")
async def describe_graph(ctx: weft.Context, entities: list[dict], pause_ms: int = 0) -> dict:
    marks = os.environ.get("MARK_DIR")
    if marks:
        Path(marks, f"started-{os.getpid()}-{ctx.delivered}").write_text(ctx.run_id)
    await asyncio.sleep(pause_ms / 1000)
    names = [f"{e.get('name')} ({'; '.join(e.get('observations', []))})" for e in entities]
    return {
        "sentence": f"The graph knows {len(entities)}: " + ", ".join(names),
        "count": len(entities),
        "worker": worker.worker_id,
        "delivered": ctx.delivered,
    }
