"""A Python worker run as its own process by the tests (`python -m weft worker
proc_app:make`): serves tool `$TOOL_NAME`; each call writes a file into `$MARK_DIR`
named `<delivered>-<pid>` when it starts, `done-<delivered>-<pid>` when it ends; with
`MODE=hang` it never ends by itself."""

import asyncio
import os
from pathlib import Path

import weft


def make() -> weft.Worker:
    marks = Path(os.environ["MARK_DIR"])
    mode = os.environ.get("MODE", "")

    async def slow(ctx: weft.Context, ms: int = 0) -> dict:
        marks.joinpath(f"{ctx.delivered}-{os.getpid()}").write_text(ctx.run_id)
        if mode == "hang":
            await asyncio.sleep(3600)
        await asyncio.sleep(ms / 1000)
        marks.joinpath(f"done-{ctx.delivered}-{os.getpid()}").write_text(ctx.run_id)
        return {"pid": os.getpid(), "delivered": ctx.delivered}

    return weft.Worker(
        tools=[weft.tool(name=os.environ["TOOL_NAME"])(slow)],
        ack_wait=float(os.environ.get("ACK_WAIT", "30")),
        grace=float(os.environ.get("GRACE", "30")),
    )
