"""What a tool call may know about the task it serves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Context"]


@dataclass
class Context:
    """The task behind a tool call. Declare a parameter annotated `weft.Context` to get it.

    `idempotency_key` (`<run>/<path>`, a compensation's `<run>/<path>/compensate`) is the
    same on every attempt and redelivery of the step: use it to make side effects happen
    once. `cancelled` is set when Weft asks the call to stop (the run was cancelled, a race
    was lost, the step timed out); an async tool is also cancelled (`asyncio.CancelledError`
    at its next `await`), a sync tool (run in a thread) should poll `is_cancelled()`.
    """

    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    tool: str
    worker_id: str
    compensation: bool = False
    timeout_ms: int | None = None
    delivered: int = 1
    """How many times JetStream has delivered this task (more than 1 after a worker died)."""
    traceparent: str | None = None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    usage: dict[str, Any] | None = None

    def is_cancelled(self) -> bool:
        """Whether the call was asked to stop (safe to call from a sync tool's thread)."""
        return self.cancelled.is_set()

    def report_usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Record what a model call made by this tool spent, for the run's budget."""
        self.usage = {
            "model": model,
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
        }
