"""The client against the real coordinator, as the `client` user."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import weft
from conftest import record_until, unique


def echo_workflow(**extra):  # type: ignore[no-untyped-def]
    return {
        "name": unique("echoes"),
        "steps": [
            {"id": "a", "tool": "echo", "params": {"x": "{input.x}"}},
            {"id": "b", "tool": "echo", "params": {"y": "{a.x}"}},
        ],
        "output": {"y": "{b.y}"},
        **extra,
    }


async def test_submit_status_list_and_watch(client):
    definition = echo_workflow()
    run_id = await client.submit(definition, {"x": 41})
    parsed = uuid.UUID(run_id)
    assert parsed.version == 7
    events = [e async for e in client.watch(run_id)]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "run_started"
    assert events[-1] == {**events[-1], "event": "run_finished", "status": "completed"}
    assert {(e["event"], e.get("step_id")) for e in events} >= {
        ("step_started", "a"), ("step_completed", "a"), ("step_started", "b"), ("step_completed", "b"),
    }
    assert all(e["run_id"] == run_id for e in events)
    record = await client.status(run_id)
    assert record["status"] == "completed"
    assert record["output"] == {"y": 41}
    assert record["workflow"] == definition["name"]
    runs = await client.list(50)
    assert any(r["run_id"] == run_id and r["status"] == "completed" for r in runs)
    # a watch of a finished run replays it the same
    again = [e async for e in client.watch(run_id)]
    assert again == events


async def test_run_returns_the_final_record_and_keeps_a_given_id(client):
    run_id = str(weft.uuid7())
    record = await client.run(echo_workflow(), {"x": "hi"}, timeout=30, run_id=run_id)
    assert record["run_id"] == run_id
    assert record["status"] == "completed"
    assert record["output"] == {"y": "hi"}
    with pytest.raises(weft.ConflictError) as e:
        await client.submit(echo_workflow(), {"x": 1}, run_id=run_id)
    assert run_id in e.value.message


async def test_api_errors(client):
    with pytest.raises(weft.NotFoundError) as nf:
        await client.status(str(weft.uuid7()))
    assert nf.value.code == "not_found"
    bad = {"name": unique("bad"), "steps": [{"id": "a", "tool": unique("nosuchtool"), "params": {}}]}
    client.tool_wait = 0.0
    with pytest.raises(weft.InvalidError) as inv:
        await client.submit(bad)
    assert inv.value.problems[0]["code"] == "unknown_tool"
    assert inv.value.problems[0]["path"] == "steps[0].tool"
    with pytest.raises(weft.BadRequestError) as br:  # a definition that does not parse
        await client.submit({"name": unique("typo"), "stepz": []})
    assert "stepz" in br.value.message
    with pytest.raises(weft.BadRequestError):
        await client.request("status", {})
    # a finished run cannot be cancelled
    record = await client.run(echo_workflow(), {"x": 1}, timeout=30)
    with pytest.raises(weft.ConflictError):
        await client.cancel(record["run_id"], "too late")
    assert isinstance(nf.value, weft.ApiError)


async def test_signal_and_cancel(client):
    definition = {
        "name": unique("approval"),
        "steps": [
            {"id": "approval", "signal": {"name": "approve", "timeout": "5m"}},
            {"id": "after", "tool": "echo", "params": {"approved": "{approval.approved}"}},
        ],
        "output": "{after.approved}",
    }
    run_id = await client.submit(definition)
    await record_until(client, run_id, "waits for its signal", lambda r: "approval" in r["steps"])
    with pytest.raises(weft.InvalidError):  # no signal step waits for that name
        await client.signal(run_id, "nope", 1)
    await client.signal(run_id, "approve", {"approved": True})
    record = await client.wait(run_id, timeout=30)
    assert record["status"] == "completed", record
    assert record["output"] is True
    with pytest.raises(weft.ConflictError):  # the run has ended
        await client.signal(run_id, "approve", {"approved": False})

    waiting = await client.submit({"name": unique("waiting"), "steps": [{"id": "w", "wait": {"duration": "10m"}}]})
    await client.cancel(waiting, "changed my mind")
    record = await client.wait(waiting, timeout=30)
    assert record["status"] == "cancelled"
    assert any("changed my mind" in e for e in record.get("errors", []))


async def test_pause_and_resume(client, start_worker):
    gate_name = unique("gate")
    release = asyncio.Event()
    entered = asyncio.Event()

    @weft.tool(name=gate_name)
    async def gate() -> dict:
        entered.set()
        await release.wait()
        return {"open": True}

    definition = {
        "name": unique("pausable"),
        "steps": [
            {"id": "first", "tool": gate_name, "params": {}},
            {"id": "second", "tool": "echo", "params": {"after": "{first.open}"}},
        ],
    }
    async with start_worker(gate):
        run_id = await client.submit(definition)
        await asyncio.wait_for(entered.wait(), 30)
        await client.pause(run_id)
        await record_until(client, run_id, "paused", lambda r: r["status"] == "paused")
        release.set()
        record = await record_until(
            client, run_id, "finished its running step", lambda r: r["steps"]["first"]["status"] == "completed"
        )
        assert record["status"] == "paused"
        assert "second" not in record["steps"] or record["steps"]["second"]["status"] != "completed"
        await client.resume(run_id)
        record = await client.wait(run_id, timeout=30)
    assert record["status"] == "completed", record
    events = [e["event"] async for e in client.watch(run_id)]
    assert "run_paused" in events and "run_resumed" in events


async def test_deploy_and_run_a_sub_workflow(client):
    child = {
        "name": unique("child"),
        "version": 3,
        "steps": [{"id": "inner", "tool": "echo", "params": {"v": "{input.v}"}}],
        "output": "{inner.v}",
    }
    await client.deploy(child)
    definitions = await client.definitions()
    assert f"{child['name']}.3" in definitions
    parent = {
        "name": unique("parent"),
        "steps": [{"id": "sub", "workflow": {"name": child["name"], "version": 3, "input": {"v": "{input.v}"}}}],
        "output": "{sub}",
    }
    record = await client.run(parent, {"v": [1, 2]}, timeout=30)
    assert record["status"] == "completed", record
    assert record["output"] == [1, 2]


async def test_run_times_out_with_the_record(client):
    run_id = str(weft.uuid7())
    with pytest.raises(weft.RunTimeoutError) as e:
        await client.run({"name": unique("slow"), "steps": [{"id": "w", "wait": {"duration": "10m"}}]},
                         timeout=0.5, run_id=run_id)
    assert e.value.run_id == run_id
    await client.cancel(run_id, "test over")


def test_the_sync_facade(cluster):
    with weft.SyncClient(cluster.client_url) as client:
        record = client.run(echo_workflow(), {"x": 7}, timeout=30)
        assert record["status"] == "completed"
        assert record["output"] == {"y": 7}
        assert client.status(record["run_id"])["status"] == "completed"
        events = list(client.watch(record["run_id"]))
        assert events[-1]["event"] == "run_finished"
        run_id = client.submit({"name": unique("sync"), "steps": [{"id": "w", "wait": {"duration": "10m"}}]})
        client.cancel(run_id, "sync cancel")
        assert client.wait(run_id, timeout=30)["status"] == "cancelled"
        assert any(r["run_id"] == run_id for r in client.list(20))
        assert any(a["spec"]["name"] == "echo" for a in client.tools())
        with pytest.raises(weft.NotFoundError):
            client.status(str(weft.uuid7()))


async def test_redrive_carries_a_failed_run_on(client):
    definition = {
        "name": unique("redrive"),
        "steps": [
            {"id": "a", "tool": "echo", "params": {"n": 1}},
            {"id": "b", "tool": "fail", "params": {"message": "not yet", "times": 1}, "depends_on": ["a"]},
        ],
        "output": "{b}",
    }
    failed = await client.run(definition, timeout=30)
    assert failed["status"] == "failed", failed
    with pytest.raises(weft.InvalidError):  # submitted inline: its definition is needed
        await client.redrive(failed["run_id"])
    await client.redrive(failed["run_id"], definition)
    record = await client.wait(failed["run_id"], timeout=30)
    assert record["status"] == "completed", record
    assert record["output"] == {"attempt": 2}
    assert record["steps"]["a"]["attempts"] == failed["steps"]["a"]["attempts"]
    with pytest.raises(weft.ConflictError):  # it completed: nothing to carry on
        await client.redrive(failed["run_id"], definition)


async def test_rerun_from_a_step_carries_over_what_comes_before(client):
    definition = {
        "name": unique("rerun"),
        "steps": [
            {"id": "a", "tool": "echo", "params": {"n": "{input.n}"}},
            {"id": "b", "tool": "echo", "params": {"m": "{a.n}"}},
        ],
        "output": "{b.m}",
    }
    old = await client.run(definition, {"n": 1}, timeout=30)
    new_id = await client.rerun(old["run_id"], "b", {"n": 2}, definition=definition)
    new = await client.wait(new_id, timeout=30)
    assert new["status"] == "completed", new
    assert new["rerun_of"] == {"run_id": old["run_id"], "from": "b"}
    assert new["output"] == 1  # b read a's carried-over output
    assert "attempts" not in new["steps"]["a"]
