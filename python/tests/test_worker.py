"""The Python worker against a real coordinator, a real Rust worker and NATS with users."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import threading
import time
from typing import Annotated, Any, Literal, Optional, TypedDict

import nats
import pydantic

import weft
from conftest import eventually, record_until, step_error, unique


async def consumer(admin: nats.NATS, tool: str):  # type: ignore[no-untyped-def]
    return await admin.jetstream().consumer_info("WEFT_TASKS", weft.consumer_name(tool))


async def listen_results(admin: nats.NATS, run_id: str) -> Any:
    """Listens for the results workers publish into the run's log. Start it before the run:
    the coordinator compacts a finished run's log within a second, so reading it afterwards
    races the purge."""
    js = admin.jetstream()
    return await js.subscribe(f"weft.in.*.{run_id}.result", ordered_consumer=True, stream="WEFT_INPUTS")


async def results_of(sub: Any) -> list[nats.aio.msg.Msg]:
    """What `listen_results` heard (until a second goes by without more)."""
    out = []
    try:
        while True:
            out.append(await sub.next_msg(timeout=1.0))
    except nats.errors.TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return out


# ---------------------------------------------------------------------------------------


async def test_python_tool_feeds_the_rust_worker_and_back(client, start_worker):
    greet_name, shout_name = unique("greet"), unique("shout")

    @weft.tool(name=greet_name)
    async def greet(name: str, ctx: weft.Context, punctuation: str = "!") -> dict:
        ctx.report_usage("gpt-4o-mini", prompt_tokens=12, completion_tokens=3)
        return {"greeting": f"Hello, {name}{punctuation}"}

    @weft.tool(name=shout_name)
    def shout(text: str, ctx: weft.Context) -> dict:  # a sync tool: runs in a thread
        return {"text": text.upper(), "thread": threading.current_thread().name, "step": ctx.step_id}

    definition = {
        "name": unique("chain"),
        "steps": [
            {"id": "greet", "tool": greet_name, "params": {"name": "{input.who}"}},
            {"id": "relay", "tool": "echo", "params": {"message": "{greet.greeting}"}},
            {"id": "shout", "tool": shout_name, "params": {"text": "{relay.message}"}},
        ],
        "output": {"final": "{shout.text}", "thread": "{shout.thread}"},
    }
    async with start_worker(greet, shout):
        record = await client.run(definition, {"who": "Ada"}, timeout=30)
    assert record["status"] == "completed", record
    assert record["output"]["final"] == "HELLO, ADA!"
    assert record["output"]["thread"] != "MainThread"
    assert record["steps"]["relay"]["attempts"][0]["worker"] == "rust-w1"
    assert record["steps"]["greet"]["attempts"][0]["worker"].startswith("py_")
    assert record["steps"]["greet"]["attempts"][0]["usage"] == {
        "model": "gpt-4o-mini", "prompt_tokens": 12, "completion_tokens": 3,
    }


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(TypedDict):
    city: str
    zip: int


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


async def test_the_schema_is_advertised(client, start_worker, cluster):
    name = unique("rich")
    seen: dict = {}

    async def rich(
        title: Annotated[str, "what to call it"],
        count: int,
        ratio: float,
        enabled: bool,
        note: Optional[str],
        tags: list[str],
        weights: dict[str, float],
        mode: Literal["fast", "slow"],
        color: Color,
        address: Address,
        point: Point,
        limit: int = 10,
        ctx: weft.Context | None = None,
    ) -> dict:
        """A tool with every kind of parameter.

        Longer text that is not the description."""
        seen.update(color=color, point=point, ratio=ratio, ctx=ctx)
        return {"ok": True}

    async with start_worker(weft.tool(name=name, concurrency=3, version="7")(rich)) as worker:
        ads = [a for a in await client.tools() if a["spec"]["name"] == name]
        assert len(ads) == 1
        ad = ads[0]
        assert ad["worker"] == worker.worker_id
        assert ad["concurrency"] == 3
        assert isinstance(ad["at_ms"], int)
        assert ad["spec"]["version"] == "7"
        assert ad["spec"]["description"] == "A tool with every kind of parameter."
        assert ad["spec"]["params"] == {
            "type": "object",
            "properties": {
                "title": {"type": "string", "description": "what to call it"},
                "count": {"type": "integer"},
                "ratio": {"type": "number"},
                "enabled": {"type": "boolean"},
                "note": {"type": ["string", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "weights": {"type": "object", "additionalProperties": {"type": "number"}},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "color": {"type": "string", "enum": ["red", "green"]},
                "address": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
                    "required": ["city", "zip"],
                    "additionalProperties": False,
                },
                "point": {
                    "type": "object",
                    "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}},
                    "required": ["x"],
                    "additionalProperties": False,
                },
                "limit": {"type": "integer", "default": 10},
            },
            "required": [
                "title", "count", "ratio", "enabled", "note", "tags", "weights", "mode", "color", "address", "point",
            ],
            "additionalProperties": False,
        }
        # The coordinator checks literal params against the advertised schema at submit.
        bad = {"name": unique("bad"), "steps": [{"id": "a", "tool": name, "params": {"count": "x"}}]}
        try:
            await client.submit(bad)
            raise AssertionError("an invalid workflow was accepted")
        except weft.InvalidError as e:
            assert e.problems and all(p["code"] == "invalid_params" for p in e.problems)
        params = {
            "title": "t", "count": 2, "ratio": 1, "enabled": True, "note": None, "tags": ["a"],
            "weights": {"a": 0.5}, "mode": "fast", "color": "red", "address": {"city": "Oslo", "zip": 150},
            "point": {"x": 1},
        }
        record = await client.run({"name": unique("rich"), "steps": [{"id": "a", "tool": name, "params": params}]},
                                  timeout=30)
        assert record["status"] == "completed", record
        assert seen["color"] is Color.RED
        assert seen["point"] == Point(x=1.0, y=0.0)
        assert isinstance(seen["ratio"], float)
        assert isinstance(seen["ctx"], weft.Context)
        # the consumer exists with the name the doc gives, and its settings
        c = await consumer_via(cluster, name)
        assert c.config.filter_subject == f"weft.task.{name}"
        assert c.config.max_ack_pending == 1_000_000
        assert c.config.ack_policy in ("explicit", weft.worker.AckPolicy.EXPLICIT)
    # stopped: the advertisement is deleted
    assert not [a for a in await client.tools() if a["spec"]["name"] == name]


async def consumer_via(cluster, tool):  # type: ignore[no-untyped-def]
    nc = await nats.connect(cluster.admin_url)
    try:
        return await consumer(nc, tool)
    finally:
        await nc.close()


async def test_params_that_do_not_fit_are_bad_params_not_retried(client, start_worker):
    name = unique("typed")
    calls = []

    @weft.tool(name=name)
    async def typed(n: int) -> int:
        calls.append(n)
        return n * 2

    # the input is not checked against the tool's schema at submit: the worker checks it
    definition = {
        "name": unique("badparams"),
        "steps": [{"id": "a", "tool": name, "params": {"n": "{input.n}"}, "retry": {"max_attempts": 3}}],
    }
    async with start_worker(typed):
        record = await client.run(definition, {"n": "not a number"}, timeout=30)
    assert record["status"] == "failed"
    attempts = record["steps"]["a"]["attempts"]
    assert len(attempts) == 1
    err = attempts[0]["error"]
    assert err["code"] == "BAD_PARAMS"
    assert err["retryable"] is False
    assert "`n`" in err["message"] and "integer" in err["message"]
    assert calls == []


async def test_an_exception_fails_the_attempt_with_its_type_and_message(client, start_worker):
    name = unique("boom")

    @weft.tool(name=name)
    async def boom(what: str) -> dict:
        raise ValueError(f"cannot {what}")

    definition = {
        "name": unique("boom"),
        "steps": [{"id": "a", "tool": name, "params": {"what": "parse"},
                   "retry": {"max_attempts": 2, "backoff": "50ms"}}],
    }
    async with start_worker(boom):
        record = await client.run(definition, timeout=30)
    assert record["status"] == "failed"
    attempts = record["steps"]["a"]["attempts"]
    assert len(attempts) == 2  # retryable: retried
    for a in attempts:
        assert a["error"] == {"message": "ValueError: cannot parse", "code": "EXCEPTION", "retryable": True}


async def test_tool_error_and_non_json_output(client, start_worker):
    explicit, unserialisable, too_large = unique("explicit"), unique("unjson"), unique("large")

    @weft.tool(name=explicit)
    async def explicit_error() -> dict:
        raise weft.ToolError("upstream said 503", code="UNAVAILABLE", retryable=False, retry_after_ms=10)

    @weft.tool(name=unserialisable)
    async def non_json() -> dict:
        return {"when": {1, 2, 3}}

    @weft.tool(name=too_large)
    async def large() -> str:
        return "x" * 1_200_000

    definition = {
        "name": unique("errors"),
        "on_failure": "continue",
        "steps": [
            {"id": "e", "tool": explicit, "params": {}, "retry": {"max_attempts": 3}},
            {"id": "j", "tool": unserialisable, "params": {}, "retry": {"max_attempts": 3}},
            {"id": "l", "tool": too_large, "params": {}, "retry": {"max_attempts": 3}},
        ],
    }
    async with start_worker(explicit_error, non_json, large):
        record = await client.run(definition, timeout=30)
    assert record["status"] == "failed"
    for step in ("e", "j", "l"):
        assert len(record["steps"][step]["attempts"]) == 1, record["steps"][step]
    e = step_error(record, "e")
    assert e["code"] == "UNAVAILABLE" and e["message"] == "upstream said 503" and e["retryable"] is False
    j = step_error(record, "j")
    assert j["code"] == "BAD_OUTPUT" and "not JSON" in j["message"] and "set" in j["message"]
    assert j["retryable"] is False
    big = step_error(record, "l")
    assert big["code"] == "OUTPUT_TOO_LARGE" and "max_payload" in big["message"]


async def test_concurrency_limit_is_respected(client, start_worker, admin):
    name = unique("limited")
    intervals: list[tuple[float, float]] = []
    running = 0
    most = 0
    two_running = asyncio.Event()
    pending_seen: list[int] = []

    @weft.tool(name=name, concurrency=2)
    async def limited(i: int) -> int:
        nonlocal running, most
        start = time.monotonic()
        running += 1
        most = max(most, running)
        if running >= 2:
            two_running.set()
        info = await consumer(admin, name)
        pending_seen.append(info.num_ack_pending)
        # hold the first calls until two overlap (so the limit is reached, whatever the speed)
        try:
            await asyncio.wait_for(two_running.wait(), timeout=10)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.05)
        running -= 1
        intervals.append((start, time.monotonic()))
        return i

    definition = {
        "name": unique("fanout"),
        "steps": [{"id": "each", "for_each": {"items": "{input.items}", "as": "n",
                                              "do": [{"id": "call", "tool": name, "params": {"i": "{n}"}}]}}],
    }
    async with start_worker(limited):
        record = await client.run(definition, {"items": list(range(8))}, timeout=60)
    assert record["status"] == "completed", record
    assert record["output"]["each"] == list(range(8))
    assert len(intervals) == 8
    # the most calls that overlapped, from their recorded start and end
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    overlap = peak = 0
    for _, d in points:
        overlap += d
        peak = max(peak, overlap)
    assert peak == 2
    assert most == 2
    # the worker pulled only as many tasks as it had free slots
    assert max(pending_seen) <= 2


async def test_a_cancelled_run_cancels_the_running_tool(client, start_worker, admin):
    name = unique("long")
    started = asyncio.Event()
    outcome: dict = {}

    @weft.tool(name=name)
    async def long(ctx: weft.Context) -> dict:
        started.set()
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            outcome["cancelled"] = True
            outcome["flag"] = ctx.is_cancelled()
            raise
        return {"done": True}

    async with start_worker(long):
        run_id = str(weft.uuid7())
        heard = await listen_results(admin, run_id)
        await client.submit({"name": unique("cancel"), "steps": [{"id": "a", "tool": name, "params": {}}]}, run_id=run_id)
        await asyncio.wait_for(started.wait(), 30)
        await client.cancel(run_id, "no longer needed")
        record = await client.wait(run_id, timeout=30)
        assert record["status"] == "cancelled"
        await eventually("the tool saw its cancellation", lambda: outcome.get("cancelled"))
        assert outcome["flag"] is True
        # the worker answered CANCELLED and acked the task
        await eventually("the task acked", lambda: _no_pending(admin, name))
        results = await results_of(heard)
    assert len(results) == 1
    body = json.loads(results[0].data)
    assert body["outcome"]["err"]["code"] == "CANCELLED"
    assert body["outcome"]["err"]["retryable"] is False
    assert results[0].headers["Nats-Msg-Id"] == f"result:task:{run_id}:a:1"


async def _no_pending(admin, name):  # type: ignore[no-untyped-def]
    info = await consumer(admin, name)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_lost_race_cancels_its_python_branch(client, start_worker):
    name = unique("slowquote")
    cancelled = asyncio.Event()

    @weft.tool(name=name)
    async def slow_quote(ctx: weft.Context) -> dict:
        try:
            await asyncio.sleep(120)
        finally:
            if ctx.cancelled.is_set():
                cancelled.set()
        return {"price": 1}

    definition = {
        "name": unique("race"),
        "steps": [{"id": "quote", "race": {"branches": [
            {"id": "slow", "tool": name, "params": {}},
            {"id": "fast", "tool": "sleep", "params": {"ms": 300}},
        ]}}],
    }
    async with start_worker(slow_quote):
        record = await client.run(definition, timeout=30)
        assert record["status"] == "completed", record
        assert record["output"]["quote"] == {"slept_ms": 300}
        assert record["steps"]["slow"]["status"] == "cancelled"
        await asyncio.wait_for(cancelled.wait(), 30)


async def test_progress_acks_keep_a_long_tool_on_its_task(client, start_worker, admin):
    name = unique("patient")
    calls: list[int] = []

    @weft.tool(name=name)
    async def patient(ctx: weft.Context) -> dict:
        calls.append(ctx.delivered)
        await asyncio.sleep(4.0)  # four times the consumer's ack wait
        return {"delivered": ctx.delivered}

    # The consumer is created by this worker (the doc: "create it if it does not exist")
    # with a 1 s ack wait; +WPI every third of it keeps the task.
    async with start_worker(patient, ack_wait=1.0):
        info = await consumer(admin, name)
        assert info.config.ack_wait == 1.0
        record = await client.run({"name": unique("patient"), "steps": [{"id": "a", "tool": name, "params": {}}]},
                                  timeout=30)
        info = await consumer(admin, name)
    assert record["status"] == "completed", record
    assert record["output"]["a"] == {"delivered": 1}
    assert calls == [1]
    assert info.num_redelivered == 0


async def test_stop_hands_unfinished_tasks_back(client, start_worker, cluster):
    name = unique("handback")
    first_started = asyncio.Event()

    @weft.tool(name=name)
    async def hang(ctx: weft.Context) -> dict:
        if ctx.delivered == 1:
            first_started.set()
            await asyncio.sleep(120)
        return {"delivered": ctx.delivered}

    # a long ack wait: only the -NAK can bring the task back quickly
    first = weft.Worker(cluster.worker_url, tools=[hang], worker_id=unique("first"), ack_wait=60.0)
    await first.start()
    run_id = await client.submit({"name": unique("handback"), "steps": [{"id": "a", "tool": name, "params": {}}]})
    await asyncio.wait_for(first_started.wait(), 30)
    await first.stop(grace=0.2)
    assert not [a for a in await client.tools() if a["worker"] == first.worker_id]
    async with start_worker(hang) as second:
        record = await client.wait(run_id, timeout=30)
    assert record["status"] == "completed", json.dumps(record, indent=1)
    assert record["output"]["a"] == {"delivered": 2}
    assert record["steps"]["a"]["attempts"][-1]["worker"] == second.worker_id
    assert len(record["steps"]["a"]["attempts"]) == 1


async def test_dotted_tool_names_use_the_hashed_consumer(client, start_worker, admin):
    name = f"{unique('memory')}.create_entities"

    @weft.tool(name=name)
    async def create(entities: list[str]) -> dict:
        return {"created": len(entities)}

    async with start_worker(create):
        record = await client.run(
            {"name": unique("dotted"), "steps": [{"id": "a", "tool": name, "params": {"entities": ["x", "y"]}}]},
            timeout=30,
        )
        info = await consumer(admin, name)
    assert record["status"] == "completed", record
    assert record["output"]["a"] == {"created": 2}
    base = name.replace(".", "_")
    assert info.name == f"tool-{base}-{weft.fnv1a64(name.encode()):016x}"
    assert info.config.filter_subject == f"weft.task.{name}"


class Order(pydantic.BaseModel):
    item: str
    quantity: int = pydantic.Field(ge=1)


async def test_a_pydantic_model_parameter(client, start_worker):
    name = unique("order")

    @weft.tool(name=name)
    async def place(order: Order) -> Order:
        return Order(item=order.item.upper(), quantity=order.quantity * 2)

    async with start_worker(place):
        ad = [a for a in await client.tools() if a["spec"]["name"] == name][0]
        assert ad["spec"]["params"] == Order.model_json_schema()
        definition = {"name": unique("order"), "steps": [
            {"id": "ok", "tool": name, "params": {"item": "tea", "quantity": "{input.q}"}},
        ]}
        good = await client.run(definition, {"q": 2}, timeout=30)
        bad = await client.run(definition, {"q": 0}, timeout=30)
    assert good["status"] == "completed", good
    assert good["output"]["ok"] == {"item": "TEA", "quantity": 4}
    err = step_error(bad, "ok")
    assert err["code"] == "BAD_PARAMS" and "quantity" in err["message"]


async def test_compensation_calls_carry_their_flag(client, start_worker):
    name = unique("booking")
    calls: list[tuple[bool, str, dict]] = []

    @weft.tool(name=name)
    async def book(ctx: weft.Context, **params: object) -> dict:
        calls.append((ctx.compensation, ctx.idempotency_key, dict(params)))
        return {"booked": not ctx.compensation}

    definition = {
        "name": unique("saga"),
        "on_failure": "compensate",
        "steps": [
            {"id": "book", "tool": name, "params": {"seat": 1},
             "compensate": {"tool": name, "params": {"undo": "{book}"}}},
            {"id": "pay", "tool": "fail", "params": {"message": "card declined"}, "depends_on": "book"},
        ],
    }
    async with start_worker(book):
        record = await client.run(definition, timeout=30)
    assert record["status"] == "compensated", record
    assert record["steps"]["book"]["compensation"]["status"] == "completed"
    run_id = record["run_id"]
    assert calls == [
        (False, f"{run_id}/book", {"seat": 1}),
        (True, f"{run_id}/book/compensate", {"undo": {"booked": True}}),
    ]


async def test_a_task_delivered_too_often_fails_with_worker_lost(client, start_worker, admin):
    """Five deliveries that no worker answered (workers dying on it): the next worker to
    take it answers WORKER_LOST instead of calling the tool again."""
    from nats.js.api import AckPolicy, ConsumerConfig

    name = unique("deadly")
    calls: list[int] = []

    @weft.tool(name=name)
    async def deadly() -> dict:
        calls.append(1)
        return {}

    js = admin.jetstream()
    consumer_name = weft.consumer_name(name)
    await js.add_consumer("WEFT_TASKS", ConsumerConfig(
        name=consumer_name, durable_name=consumer_name, filter_subject=f"weft.task.{name}",
        ack_policy=AckPolicy.EXPLICIT, ack_wait=0.5, max_ack_pending=1_000_000,
    ))
    kv = await js.key_value("weft_tools")
    spec = weft.Tool(deadly, name=name).spec()
    await kv.put(f"{name}.ghost", json.dumps(
        {"spec": spec, "worker": "ghost", "concurrency": 1, "at_ms": int(time.time() * 1000)}).encode())
    run_id = await client.submit({"name": unique("lost"), "steps": [{"id": "a", "tool": name, "params": {}}]})
    sub = await js.pull_subscribe_bind(consumer_name, "WEFT_TASKS")
    for n in range(1, 6):  # five deliveries, none answered
        [msg] = await sub.fetch(1, timeout=10)
        assert msg.metadata.num_delivered == n
    await sub.unsubscribe()
    await kv.delete(f"{name}.ghost")
    async with start_worker(deadly):
        record = await client.wait(run_id, timeout=30)
    assert record["status"] == "failed"
    err = step_error(record, "a")
    assert err["code"] == "WORKER_LOST" and err["retryable"] is False
    assert "delivered 6 times" in err["message"]
    assert calls == []
