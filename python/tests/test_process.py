"""Python workers as processes: killed with SIGKILL mid-tool (the task goes to another
worker), stopped with SIGTERM (the running tool finishes first)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import weft
from conftest import HERE, eventually, unique


def spawn_worker(cluster, name: str, tool: str, marks: Path, **env: str):  # type: ignore[no-untyped-def]
    return cluster.spawn(
        name,
        [sys.executable, "-m", "weft", "worker", "proc_app:make", "--id", name],
        {
            "NATS_URL": cluster.worker_url,
            "PYTHONPATH": str(HERE / "apps"),
            "TOOL_NAME": tool,
            "MARK_DIR": str(marks),
            **env,
        },
    )


async def advertised(client: weft.Client, worker: str) -> bool:
    return any(a["worker"] == worker for a in await client.tools())


async def test_a_killed_worker_s_task_is_redelivered_to_another(cluster, client, start_worker, tmp_path):
    tool = unique("crashy")
    first = unique("doomed")
    proc = spawn_worker(cluster, first, tool, tmp_path, MODE="hang", ACK_WAIT="2")
    await eventually("the first worker advertises", lambda: advertised(client, first))
    run_id = await client.submit({"name": unique("crash"), "steps": [{"id": "a", "tool": tool, "params": {}}]})
    mark = tmp_path / f"1-{proc.pid}"
    await eventually("the first worker runs the tool", mark.exists)
    proc.kill()  # SIGKILL: no result, no ack, no goodbye

    @weft.tool(name=tool)
    async def survivor(ctx: weft.Context, ms: int = 0) -> dict:
        return {"pid": os.getpid(), "delivered": ctx.delivered}

    async with start_worker(survivor) as second:
        record = await client.wait(run_id, timeout=30)
    assert record["status"] == "completed", record
    assert record["output"]["a"] == {"pid": os.getpid(), "delivered": 2}
    attempts = record["steps"]["a"]["attempts"]
    assert len(attempts) == 1  # a redelivery, not a retry
    assert attempts[0]["worker"] == second.worker_id


async def test_sigterm_lets_the_running_tool_finish(cluster, client, tmp_path):
    tool = unique("graceful")
    name = unique("terminated")
    proc = spawn_worker(cluster, name, tool, tmp_path, GRACE="30")
    await eventually("the worker advertises", lambda: advertised(client, name))
    run_id = await client.submit(
        {"name": unique("term"), "steps": [{"id": "a", "tool": tool, "params": {"ms": 1500}}]}
    )
    await eventually("the worker runs the tool", (tmp_path / f"1-{proc.pid}").exists)
    os.kill(proc.pid, signal.SIGTERM)
    record = await client.wait(run_id, timeout=30)
    assert record["status"] == "completed", record
    assert record["output"]["a"] == {"pid": proc.pid, "delivered": 1}
    assert (tmp_path / f"done-1-{proc.pid}").exists()
    code = await asyncio.to_thread(proc.popen.wait, 30)
    assert code == 0, proc.text()
    assert not await advertised(client, name)
