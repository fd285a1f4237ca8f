"""A Weft worker: serves Python functions as tools over NATS JetStream (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ._connect import INBOX_WORKER, connect
from ._ids import consumer_name
from ._tracing import call_span
from .context import Context
from .errors import ToolError
from .tool import BadParams, Tool, as_tool, json_default

__all__ = ["Worker"]

log = logging.getLogger("weft.worker")

TASKS_STREAM = "WEFT_TASKS"
TOOLS_BUCKET = "weft_tools"
MAX_DELIVERIES = 5
"""A task delivered more often than this fails with `WORKER_LOST` (workers kept dying on it)."""
MAX_ACK_PENDING = 1_000_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _status(msg: Msg) -> str | None:
    """The status of a JetStream status message (`404`, `408`, `409`, `100`...), None for a task."""
    headers = msg.headers or {}
    status = headers.get("Status")
    if status:
        return status
    if not msg.data and headers.get("Description"):
        return "000"
    return None


def _header_bytes(headers: dict[str, str]) -> int:
    if not headers:
        return 0
    return len("NATS/1.0\r\n") + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2


def _error(message: str, code: str | None, retryable: bool, retry_after_ms: int | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "retryable": retryable}
    if code is not None:
        err["code"] = code
    if retry_after_ms is not None:
        err["retry_after_ms"] = retry_after_ms
    return {"err": err}


class _Call:
    """A task being served."""

    def __init__(self, msg: Msg, task: dict[str, Any], ctx: Context) -> None:
        self.msgs: list[Msg] = [msg]
        self.task = task
        self.ctx = ctx
        self.tool_task: asyncio.Future[Any] | None = None
        self.cancel_reason: str | None = None
        self.cancel_requested = False
        self.shutdown = False

    def cancel(self, reason: str | None) -> None:
        self.cancel_requested = True
        self.cancel_reason = reason
        self.ctx.cancelled.set()
        if self.tool_task is not None and not self.tool_task.done():
            self.tool_task.cancel()

    def hand_back(self) -> None:
        self.shutdown = True
        self.ctx.cancelled.set()
        if self.tool_task is not None and not self.tool_task.done():
            self.tool_task.cancel()


class _ToolRunner:
    """One tool: its consumer, its pull loop and its running calls."""

    def __init__(self, worker: Worker, tool: Tool) -> None:
        self.worker = worker
        self.tool = tool
        self.consumer = consumer_name(tool.name)
        self.ack_wait = worker.ack_wait
        self.free = tool.concurrency
        self.slot_freed = asyncio.Event()
        self.handlers: set[asyncio.Task[None]] = set()
        self.pull_task: asyncio.Task[None] | None = None

    # -- the consumer ------------------------------------------------------------------
    async def ensure_consumer(self) -> None:
        """Looks the tool's durable consumer up, creating it if missing; reads its ack wait."""
        js = self.worker.js
        delay = 0.2
        warned = False
        while True:
            try:
                try:
                    info = await js.consumer_info(TASKS_STREAM, self.consumer)
                except nats.js.errors.NotFoundError as e:
                    if e.err_code == 10059:  # stream not found
                        raise
                    config = ConsumerConfig(
                        name=self.consumer,
                        durable_name=self.consumer,
                        description=f"tasks of tool `{self.tool.name}`, shared by its workers",
                        deliver_policy=DeliverPolicy.ALL,
                        ack_policy=AckPolicy.EXPLICIT,
                        ack_wait=self.worker.ack_wait,
                        filter_subject=f"weft.task.{self.tool.name}",
                        max_ack_pending=MAX_ACK_PENDING,
                    )
                    try:
                        info = await js.add_consumer(TASKS_STREAM, config)
                        log.info("created consumer %s (ack wait %ss)", self.consumer, self.worker.ack_wait)
                    except nats.js.errors.BadRequestError:
                        # another worker created it at the same moment, with other settings
                        info = await js.consumer_info(TASKS_STREAM, self.consumer)
                ack_wait = info.config.ack_wait or 30.0
                if abs(ack_wait - self.worker.ack_wait) > 1e-3:
                    log.info(
                        "the consumer of tool `%s` exists with ack wait %ss; using it", self.tool.name, ack_wait
                    )
                self.ack_wait = ack_wait
                return
            except (
                nats.js.errors.NotFoundError,
                nats.js.errors.ServiceUnavailableError,
                nats.errors.NoRespondersError,
                nats.errors.TimeoutError,
                asyncio.TimeoutError,
            ) as e:
                if not warned:
                    log.warning(
                        "waiting for the stream %s (the coordinator creates it): %s", TASKS_STREAM, e
                    )
                    warned = True
                if self.worker._stopping:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- pulling -----------------------------------------------------------------------
    async def pull_loop(self) -> None:
        worker = self.worker
        nc = worker.nc
        loop = asyncio.get_running_loop()
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{TASKS_STREAM}.{self.consumer}"
        inbox = nc.new_inbox()
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        try:
            while not worker._stopping:
                if self.free <= 0:
                    self.slot_freed.clear()
                    await _wait_any(self.slot_freed, worker._stop_event)
                    continue
                batch = self.free
                expires = worker.pull_expires
                request = {"batch": batch, "expires": int(expires * 1e9)}
                try:
                    await nc.publish(subject, json.dumps(request).encode(), reply=inbox)
                except Exception as e:  # disconnected: try again in a moment
                    log.debug("pull request for %s failed: %s", self.tool.name, e)
                    await asyncio.sleep(0.5)
                    continue
                open_until = loop.time() + expires + 2.0
                got = 0
                while got < batch and not worker._stopping:
                    remaining = open_until - loop.time()
                    if remaining <= 0:
                        break
                    msg = await _get_or_stop(queue, remaining, worker._stop_event)
                    if msg is None:
                        break
                    status = _status(msg)
                    if status is None:
                        got += 1
                        self.take(msg)
                        continue
                    if status == "100":  # idle heartbeat
                        continue
                    if status in ("404", "408"):  # no messages / request expired
                        break
                    if status == "409":
                        description = (msg.headers or {}).get("Description", "")
                        log.info("pull of %s ended: 409 %s", self.tool.name, description)
                        if "deleted" in description.lower():
                            await self.ensure_consumer()
                        else:
                            await asyncio.sleep(0.2)
                        break
                    if status == "503":  # no responders: the consumer or stream is gone
                        log.warning("consumer %s does not answer; looking it up again", self.consumer)
                        await asyncio.sleep(0.5)
                        await self.ensure_consumer()
                        break
                    log.warning("pull of %s: unexpected status %s %s", self.tool.name, status, msg.headers)
                    break
            # Stopping. The server drops a pull request whose reply subject lost its
            # interest, so unsubscribing ends the open request at once; tasks it had
            # already delivered are handed back.
            await _quietly(sub.unsubscribe())
            await asyncio.sleep(0)
            while not queue.empty():
                msg = queue.get_nowait()
                if _status(msg) is None:
                    await _quietly(msg.nak())
        finally:
            await _quietly(sub.unsubscribe())

    def take(self, msg: Msg) -> None:
        if self.worker._stopping:
            asyncio.ensure_future(_quietly(msg.nak()))
            return
        self.free -= 1
        handler = asyncio.create_task(self._handle(msg), name=f"weft task {self.tool.name}")
        self.handlers.add(handler)
        handler.add_done_callback(self.handlers.discard)

    async def _handle(self, msg: Msg) -> None:
        try:
            await self._serve(msg)
        except Exception:
            log.exception("serving a task of %s failed", self.tool.name)
            await _quietly(msg.nak())
        finally:
            self.free += 1
            self.slot_freed.set()

    # -- one task ------------------------------------------------------------------------
    async def _serve(self, msg: Msg) -> None:
        worker = self.worker
        try:
            delivered = msg.metadata.num_delivered
        except Exception:
            delivered = 1
        task = _read_task(msg.data)
        if task is None:
            log.error(
                "garbage on weft.task.%s terminated: %r", self.tool.name, msg.data[:200]
            )
            await _quietly(msg.term())
            return
        compensation = bool(task.get("compensation", False))
        key = (task["run_id"], task["step_id"], task["attempt"], compensation)
        running = worker._calls.get(key)
        if running is not None:
            # Redelivered while this worker still serves it: answer both deliveries once.
            running.msgs.append(msg)
            return
        ctx = Context(
            run_id=task["run_id"],
            step_id=task["step_id"],
            attempt=task["attempt"],
            idempotency_key=str(task.get("idempotency_key", f"{task['run_id']}/{task['step_id']}")),
            tool=self.tool.name,
            worker_id=worker.worker_id,
            compensation=compensation,
            timeout_ms=task.get("timeout_ms"),
            delivered=delivered,
            traceparent=(msg.headers or {}).get("traceparent"),
        )
        call = _Call(msg, task, ctx)
        worker._calls[key] = call
        ticker = asyncio.create_task(self._progress(call))
        try:
            with call_span(
                msg.headers,
                tool=self.tool.name,
                run_id=ctx.run_id,
                step_id=ctx.step_id,
                attempt=ctx.attempt,
                worker=worker.worker_id,
                compensation=compensation,
                enabled=worker.trace,
            ) as span:
                started_ms = _now_ms()
                if delivered > MAX_DELIVERIES:
                    outcome: dict[str, Any] | None = _error(
                        f"the task was delivered {delivered} times and no worker answered: "
                        "its tool may crash the worker",
                        "WORKER_LOST",
                        False,
                    )
                elif task.get("tool", self.tool.name) != self.tool.name:
                    outcome = _error(
                        f"worker {worker.worker_id} has no tool `{task.get('tool')}`", "UNKNOWN_TOOL", False
                    )
                else:
                    outcome = await self._call(call)
                finished_ms = _now_ms()
                if outcome is None:  # handed back at shutdown
                    for m in call.msgs:
                        await _quietly(m.nak())
                    return
                if "err" in outcome:
                    span.record_error(outcome["err"].get("code"), outcome["err"].get("message", ""))
                headers = span.result_headers()
                payload = self._result(task, ctx, outcome, started_ms, finished_ms, headers)
            published = await self._publish(task["reply_to"], payload, headers, ctx)
            for m in call.msgs:
                if published:
                    await _quietly(m.ack())
                else:
                    await _quietly(m.nak())
        finally:
            ticker.cancel()
            worker._calls.pop(key, None)

    async def _call(self, call: _Call) -> dict[str, Any] | None:
        tool = self.tool
        ctx = call.ctx
        try:
            kwargs = tool.bind(call.task.get("params", {}))
        except BadParams as e:
            return _error(f"params do not fit the schema of tool `{tool.name}`: {e}", "BAD_PARAMS", False)
        if call.shutdown:
            return None
        if call.cancel_requested:
            return _error(f"cancelled: {call.cancel_reason or 'Weft asked the call to stop'}", "CANCELLED", False)
        call.tool_task = asyncio.ensure_future(tool.invoke(kwargs, ctx))
        timeout_ms = ctx.timeout_ms
        timeout = timeout_ms / 1000 if isinstance(timeout_ms, (int, float)) and timeout_ms > 0 else None
        done, _ = await asyncio.wait({call.tool_task}, timeout=timeout)
        if not done:
            call.tool_task.cancel()
            await asyncio.wait({call.tool_task}, timeout=1.0)
            if call.shutdown:
                return None
            return _error(f"the call ran past its timeout of {timeout_ms} ms", "TIMEOUT", True)
        try:
            value = call.tool_task.result()
        except asyncio.CancelledError:
            if call.shutdown:
                return None
            if call.cancel_requested:
                return _error(
                    f"cancelled: {call.cancel_reason or 'Weft asked the call to stop'}", "CANCELLED", False
                )
            return _error("the call was cancelled", "CANCELLED", False)
        except ToolError as e:
            return {"err": e.to_wire()}
        except Exception as e:
            log.info("tool %s raised %s: %s", tool.name, type(e).__name__, e)
            return _error(f"{type(e).__name__}: {e}", "EXCEPTION", True)
        except BaseException as e:  # SystemExit, KeyboardInterrupt in a tool: an error, not a crash
            return _error(f"{type(e).__name__}: {e}", "EXCEPTION", True)
        return {"ok": value}

    def _result(
        self,
        task: dict[str, Any],
        ctx: Context,
        outcome: dict[str, Any],
        started_ms: int,
        finished_ms: int,
        headers: dict[str, str],
    ) -> bytes:
        result: dict[str, Any] = {
            "run_id": task["run_id"],
            "step_id": task["step_id"],
            "attempt": task["attempt"],
        }
        if ctx.compensation:
            result["compensation"] = True
        result.update(
            worker=self.worker.worker_id,
            started_ms=started_ms,
            finished_ms=finished_ms,
            outcome=outcome,
            token=task.get("token", ""),
        )
        if ctx.usage:
            result["usage"] = ctx.usage
        try:
            payload = _dumps(result)
        except (TypeError, ValueError, RecursionError) as e:
            result["outcome"] = _error(f"the tool's output is not JSON: {e}", "BAD_OUTPUT", False)
            payload = _dumps(result)
        max_payload = self.worker.nc.max_payload
        size = len(payload) + _header_bytes({**headers, "Nats-Msg-Id": _msg_id(ctx)})
        if max_payload and size > max_payload:
            result["outcome"] = _error(
                f"the tool's output makes a result of {size} bytes, more than the server's "
                f"max_payload of {max_payload} bytes",
                "OUTPUT_TOO_LARGE",
                False,
            )
            payload = _dumps(result)
        return payload

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str], ctx: Context) -> bool:
        """Publishes the result with JetStream, again until it is stored (or the worker gives up)."""
        headers = {**headers, "Nats-Msg-Id": _msg_id(ctx)}
        delay = 0.1
        while True:
            try:
                await self.worker.js.publish(subject, payload, timeout=5.0, headers=headers)
                return True
            except (
                nats.errors.TimeoutError,
                asyncio.TimeoutError,
                nats.errors.NoRespondersError,
                nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError,
                nats.js.errors.ServiceUnavailableError,
            ) as e:
                log.warning("publishing the result of %s/%s failed (%s); again", ctx.run_id, ctx.step_id, e)
            except nats.js.errors.APIError as e:
                log.error("the run log refused the result of %s/%s: %s", ctx.run_id, ctx.step_id, e)
                return False
            if self.worker._hurry.is_set() or self.worker.nc.is_closed:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _progress(self, call: _Call) -> None:
        """`+WPI` every third of the consumer's ack wait, so a long call keeps its task."""
        interval = max(self.ack_wait / 3.0, 0.05)
        while True:
            await asyncio.sleep(interval)
            for m in list(call.msgs):
                try:
                    await m.in_progress()
                except Exception as e:
                    log.debug("progress ack failed: %s", e)


def _msg_id(ctx: Context) -> str:
    """`result:task:<run_id>:<step_id>:<attempt>` (`result:comp:...` for a compensation)."""
    kind = "comp" if ctx.compensation else "task"
    return f"result:{kind}:{ctx.run_id}:{ctx.step_id}:{ctx.attempt}"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=json_default, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()


def _read_task(data: bytes) -> dict[str, Any] | None:
    try:
        task = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(task, dict):
        return None
    for key, kind in (("run_id", str), ("step_id", str), ("attempt", int), ("reply_to", str)):
        if not isinstance(task.get(key), kind) or isinstance(task.get(key), bool):
            return None
    return task


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as e:
        log.debug("ignored: %s: %s", type(e).__name__, e)


async def _wait_any(*events: asyncio.Event | None) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events if e is not None]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _get_or_stop(queue: asyncio.Queue[Msg], timeout: float, stop: asyncio.Event | None) -> Msg | None:
    """The next message of `queue`, or None after `timeout` or once `stop` is set (when the
    queue is empty)."""
    if not queue.empty():
        return queue.get_nowait()
    getter = asyncio.ensure_future(queue.get())
    waiters: set[asyncio.Future[Any]] = {getter}
    stopper = None
    if stop is not None:
        stopper = asyncio.ensure_future(stop.wait())
        waiters.add(stopper)
    try:
        done, _ = await asyncio.wait(waiters, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopper is not None:
            stopper.cancel()
    if getter in done:
        return getter.result()
    getter.cancel()
    try:
        await getter
    except asyncio.CancelledError:
        pass
    else:  # got one as it was cancelled
        return getter.result()
    return None


class Worker:
    """Serves tools: pulls their tasks, calls them, publishes the results.

    ```python
    worker = weft.Worker("nats://worker:secret@127.0.0.1:4222")

    @worker.tool(concurrency=4)
    async def get_weather(location: str, units: Literal["C", "F"] = "C") -> dict:
        ...

    worker.run()  # until SIGTERM/SIGINT
    ```
    """

    def __init__(
        self,
        nats_url: str | list[str] | None = None,
        *,
        tools: Iterable[Any] = (),
        worker_id: str | None = None,
        inbox_prefix: str = INBOX_WORKER,
        ack_wait: float = 30.0,
        grace: float = 30.0,
        advertise_every: float = 10.0,
        pull_expires: float = 5.0,
        creds: str | None = None,
        connection: NATS | None = None,
        trace: bool = True,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self.nats_url = nats_url
        self.worker_id = worker_id or os.environ.get("WEFT_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}"
        if not self.worker_id or any(c.isspace() or c in "*>" for c in self.worker_id):
            raise ValueError(f"invalid worker id {self.worker_id!r}")
        self.inbox_prefix = inbox_prefix
        self.ack_wait = float(ack_wait)
        self.grace = float(grace)
        self.advertise_every = float(advertise_every)
        self.pull_expires = float(pull_expires)
        self.creds = creds
        self.trace = trace
        self.connect_options = dict(connect_options or {})
        self._tools: dict[str, Tool] = {}
        self._runners: dict[str, _ToolRunner] = {}
        self._calls: dict[tuple[str, str, int, bool], _Call] = {}
        self._nc: NATS | None = connection
        self._own_nc = connection is None
        self._js: Any = None
        self._kv: Any = None
        self._cancel_sub: Any = None
        self._advertiser: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._hurry = asyncio.Event()
        self._stopped: asyncio.Event | None = None
        for t in tools:
            self.add_tool(t)

    # -- tools -------------------------------------------------------------------------
    def add_tool(self, fn: Any, **options: Any) -> Tool:
        """Adds a tool: a `Tool`, a function decorated with `@weft.tool`, or a plain
        function (with `name`, `description`, `concurrency`, `version`, `params`)."""
        t = Tool(fn, **options) if options else as_tool(fn)
        if t.name in self._tools:
            raise ValueError(f"tool `{t.name}` is served twice by this worker")
        if self._started:
            raise RuntimeError("tools must be added before the worker starts")
        self._tools[t.name] = t
        return t

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        concurrency: int = 16,
        version: str = "1",
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Decorator serving a function as a tool (`@worker.tool` or `@worker.tool(...)`)."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            t = Tool(f, name=name, description=description, concurrency=concurrency, version=version, params=params)
            self.add_tool(t)
            f.__weft_tool__ = t  # type: ignore[attr-defined]
            return f

        if fn is not None:
            return register(fn)
        return register

    @property
    def tools(self) -> dict[str, Tool]:
        return dict(self._tools)

    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("the worker is not started")
        return self._nc

    @property
    def js(self) -> Any:
        return self._js

    @property
    def running_calls(self) -> int:
        return len(self._calls)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Connects, looks up (or creates) each tool's consumer, listens for cancels,
        advertises the tools and starts pulling. Returns once the tools are advertised."""
        if self._started:
            return
        if not self._tools:
            raise RuntimeError("a worker needs at least one tool")
        self._stop_event = asyncio.Event()
        self._stopped = asyncio.Event()
        self._hurry = asyncio.Event()
        try:
            await self._start()
        except BaseException:
            self._stopping = True
            self._stop_event.set()
            for runner in self._runners.values():
                if runner.pull_task is not None:
                    runner.pull_task.cancel()
            if self._own_nc and self._nc is not None:
                await _quietly(self._nc.close())
                self._nc = None
            self._stopping = False
            raise
        self._started = True
        log.info(
            "worker %s serving tools: %s", self.worker_id, ", ".join(sorted(self._tools))
        )

    async def _start(self) -> None:
        if self._nc is None:
            self._nc = await connect(
                self.nats_url,
                inbox_prefix=self.inbox_prefix,
                name=f"weft-py-worker {self.worker_id}",
                creds=self.creds,
                **self.connect_options,
            )
        self._js = self._nc.jetstream(timeout=5.0)
        self._kv = await self._tools_bucket()
        self._runners = {name: _ToolRunner(self, t) for name, t in self._tools.items()}
        for runner in self._runners.values():
            await runner.ensure_consumer()
        self._cancel_sub = await self._nc.subscribe("weft.cancel.>", cb=self._on_cancel)
        await self._advertise()
        for runner in self._runners.values():
            runner.pull_task = asyncio.create_task(runner.pull_loop(), name=f"weft pull {runner.tool.name}")
        self._advertiser = asyncio.create_task(self._advertise_loop(), name="weft advertise")

    async def _tools_bucket(self) -> Any:
        delay = 0.2
        warned = False
        while True:
            try:
                return await self._js.key_value(TOOLS_BUCKET)
            except (
                nats.js.errors.BucketNotFoundError,
                nats.js.errors.NotFoundError,
                nats.js.errors.ServiceUnavailableError,
                nats.errors.NoRespondersError,
                nats.errors.TimeoutError,
                asyncio.TimeoutError,
            ) as e:
                if not warned:
                    log.warning("waiting for the bucket %s (the coordinator creates it): %s", TOOLS_BUCKET, e)
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _advertisement(self, t: Tool, at_ms: int) -> bytes:
        return json.dumps(
            {"spec": t.spec(), "worker": self.worker_id, "concurrency": t.concurrency, "at_ms": at_ms},
            separators=(",", ":"),
        ).encode()

    async def _advertise(self) -> None:
        at_ms = _now_ms()
        for t in self._tools.values():
            await self._kv.put(f"{t.name}.{self.worker_id}", self._advertisement(t, at_ms))

    async def _advertise_loop(self) -> None:
        assert self._stop_event is not None
        while not self._stopping:
            try:
                await asyncio.wait_for(self._stop_event.wait(), timeout=self.advertise_every)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self._advertise()
            except Exception as e:
                log.warning("advertising the tools failed: %s", e)

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            cancel = json.loads(msg.data)
        except ValueError:
            log.warning("unreadable cancel on %s: %r", msg.subject, msg.data[:200])
            return
        if not isinstance(cancel, dict):
            return
        run_id = cancel.get("run_id") or msg.subject.removeprefix("weft.cancel.")
        step_id = cancel.get("step_id")
        attempt = cancel.get("attempt")
        reason = cancel.get("reason")
        for call in list(self._calls.values()):
            ctx = call.ctx
            if ctx.run_id != run_id:
                continue
            if step_id is not None and ctx.step_id != step_id:
                continue
            if attempt is not None and ctx.attempt != attempt:
                continue
            log.info("cancelling %s %s attempt %s", ctx.run_id, ctx.step_id, ctx.attempt)
            call.cancel(reason)

    async def stop(self, grace: float | None = None) -> None:
        """Stops gracefully: no more pulls; running calls get `grace` seconds (the
        worker's `grace`, 30 s by default) to finish; calls still running then are
        cancelled and their tasks handed back (`-NAK`); the advertisements are deleted."""
        if not self._started or self._stopped is None:
            return
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.grace if grace is None else grace
        assert self._stop_event is not None
        self._stop_event.set()
        log.info("worker %s stopping: %d call(s) running", self.worker_id, len(self._calls))
        if self._advertiser is not None:
            self._advertiser.cancel()
        pulls = [r.pull_task for r in self._runners.values() if r.pull_task is not None]
        handlers = {h for r in self._runners.values() for h in r.handlers}
        if handlers:
            all_done = asyncio.ensure_future(asyncio.wait(handlers))
            hurry = asyncio.ensure_future(self._hurry.wait())
            await asyncio.wait({all_done, hurry}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            hurry.cancel()
            all_done.cancel()
        self._hurry.set()  # results still being published after the grace are given up
        still = [c for c in self._calls.values()]
        if still:
            log.info("handing back %d unfinished task(s)", len(still))
        for call in still:
            call.hand_back()
        handlers = {h for r in self._runners.values() for h in r.handlers}
        if handlers:
            await asyncio.wait(handlers, timeout=5.0)
        if pulls:
            await asyncio.gather(*pulls, return_exceptions=True)
        for t in self._tools.values():
            try:
                await self._kv.delete(f"{t.name}.{self.worker_id}")
            except Exception as e:
                log.warning("deleting the advertisement of %s failed: %s", t.name, e)
            t.shutdown()
        if self._cancel_sub is not None:
            await _quietly(self._cancel_sub.unsubscribe())
        if self._own_nc and self._nc is not None:
            try:
                await self._nc.drain()
            except Exception:
                await _quietly(self._nc.close())
        self._stopped.set()
        log.info("worker %s stopped", self.worker_id)

    async def wait_stopped(self) -> None:
        if self._stopped is not None:
            await self._stopped.wait()

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Starts and serves until stopped: by SIGTERM/SIGINT (a second one hands the
        running tasks back at once) or by `stop()`."""
        await self.start()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:

            def on_signal(signum: signal.Signals) -> None:
                if self._stopping:
                    log.info("signal %s again: handing running tasks back now", signum)
                    self._hurry.set()
                    for call in list(self._calls.values()):
                        call.hand_back()
                    return
                log.info("signal %s: stopping gracefully (signal again to stop now)", signum)
                asyncio.ensure_future(self.stop())

            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        try:
            await self.wait_stopped()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def run(self) -> None:
        """`serve()` in a new event loop: blocks until the worker stops."""
        asyncio.run(self.serve())

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
