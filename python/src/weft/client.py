"""The API client: submit, follow and steer runs (docs/protocol.md, The API and Events)."""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ._connect import INBOX_CLIENT, connect
from ._ids import uuid7
from .errors import ApiError, InvalidError, RunTimeoutError, UnavailableError, WeftError

__all__ = ["Client", "SyncClient", "TERMINAL_STATUSES", "RequestTimeoutError"]

log = logging.getLogger("weft.client")

TERMINAL_STATUSES = frozenset(
    {"completed", "failed", "timed_out", "cancelled", "compensated", "compensation_failed"}
)
"""A run's status once it has ended (`run_finished`'s `status`)."""

EVENTS_STREAM = "WEFT_EVENTS"
STATUS_EVERY = 5.0
"""`run`/`wait` ask for the record this often as well as listening to the events."""

T = TypeVar("T")


# API verbs that only read, so asking again is harmless, and how long one try of them waits.
_READS = frozenset({"status", "list", "pools"})
_READ_ATTEMPT = 5.0

class RequestTimeoutError(WeftError, TimeoutError):
    """No answer in time: the request may or may not have been applied."""


def _definition(definition: Any) -> Any:
    """A workflow definition as JSON data: a dict, JSON text, or a path to a JSON file."""
    if isinstance(definition, dict):
        return definition
    if isinstance(definition, os.PathLike):
        return json.loads(Path(definition).read_text())
    if isinstance(definition, (str, bytes)):
        text = definition.decode() if isinstance(definition, bytes) else definition
        if text.lstrip().startswith("{"):
            return json.loads(text)
        if Path(text).is_file():
            return json.loads(Path(text).read_text())
        raise ValueError(f"a definition is a dict, JSON text or the path of a JSON file, not {text[:60]!r}")
    raise TypeError(f"a definition is a dict, JSON text or a path, not {type(definition).__name__}")


def _run_id(run_id: Any) -> str:
    if isinstance(run_id, UUID):
        return str(run_id)
    if isinstance(run_id, str) and run_id:
        return run_id
    raise TypeError(f"a run id is a str or UUID, not {run_id!r}")


class Client:
    """An async client of Weft's API (core NATS request/reply on `weft.api.<verb>`).

    ```python
    async with await weft.Client.connect("nats://client:secret@127.0.0.1:4222") as client:
        record = await client.run(definition, {"user_id": "123"}, timeout=60)
    ```
    """

    def __init__(
        self, nc: NATS, *, timeout: float = 10.0, own_connection: bool = False, tool_wait: float = 0.0
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=timeout)
        self.timeout = timeout
        self.tool_wait = tool_wait
        """How long `submit` tries again while the only problems are tools no worker
        offers yet (a worker just started: the coordinator sees new advertisements after
        a moment). 0: refuse at once."""
        self._own = own_connection

    @classmethod
    async def connect(
        cls,
        url: str | list[str] | None = None,
        *,
        inbox_prefix: str = INBOX_CLIENT,
        timeout: float = 10.0,
        creds: str | None = None,
        tool_wait: float = 0.0,
        **options: Any,
    ) -> Client:
        """Connects as a client (replies under `_INBOX_client`). `url` may carry
        credentials (`nats://client:password@host:4222`) and list several servers
        separated by commas; None reads `NATS_URL`."""
        nc = await connect(url, inbox_prefix=inbox_prefix, name="weft-py-client", creds=creds, **options)
        return cls(nc, timeout=timeout, own_connection=True, tool_wait=tool_wait)

    @property
    def nc(self) -> NATS:
        return self._nc

    async def close(self) -> None:
        if self._own and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except Exception:
                await self._nc.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- requests ------------------------------------------------------------------------
    async def request(self, verb: str, body: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Sends `{"verb": verb, ...body}` to `weft.api.<verb>` and returns the answer.

        Rides out an absent coordinator (no responders) and `unavailable` answers (nothing
        was done) until `timeout`; other errors raise `ApiError` subclasses. A request
        without an answer in time raises `RequestTimeoutError`.
        """
        loop = asyncio.get_running_loop()
        timeout = self.timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        payload = json.dumps({"verb": verb, **(body or {})}, separators=(",", ":")).encode()
        delay = 0.1
        # A read sent to a coordinator that has just died (its subscription not yet gone
        # from the server) is never answered: it is asked again after a short wait; a
        # command, which may have been carried out, waits its whole timeout.
        read = verb in _READS
        while True:
            remaining = deadline - loop.time()
            wait = min(remaining, _READ_ATTEMPT) if read else remaining
            try:
                msg = await self._nc.request(f"weft.api.{verb}", payload, timeout=max(wait, 0.05))
            except nats.errors.NoRespondersError:
                if loop.time() + delay >= deadline:
                    raise UnavailableError(
                        f"no coordinator answers on weft.api.{verb} (waited {timeout:g}s)", code="unavailable"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                if read and loop.time() < deadline - 0.05:
                    continue
                raise RequestTimeoutError(f"no answer on weft.api.{verb} within {timeout:g}s") from None
            try:
                answer = json.loads(msg.data)
            except ValueError:
                raise ApiError(f"unreadable answer on weft.api.{verb}: {msg.data[:200]!r}", code="internal") from None
            if isinstance(answer, dict) and "error" in answer:
                error = ApiError.from_wire(answer["error"])
                if isinstance(error, UnavailableError) and loop.time() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                raise error
            return answer

    @staticmethod
    def _expect(answer: Any, key: str, verb: str) -> Any:
        if isinstance(answer, dict) and key in answer:
            return answer[key]
        raise ApiError(f"unexpected answer to {verb}: {answer!r}", code="internal")

    @staticmethod
    def _expect_ok(answer: Any, verb: str) -> None:
        if answer != "ok":
            raise ApiError(f"unexpected answer to {verb}: {answer!r}", code="internal")

    # -- runs ---------------------------------------------------------------------------
    async def submit(self, definition: Any, input: Any = None, *, run_id: str | UUID | None = None) -> str:
        """Submits a run; returns its id (a new UUID v7 unless `run_id` is given) once the
        coordinator stored it."""
        rid = _run_id(run_id) if run_id is not None else str(uuid7())
        body = {"run_id": rid, "definition": _definition(definition), "input": {} if input is None else input}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.tool_wait
        while True:
            try:
                answer = await self.request("submit", body)
                break
            except InvalidError as e:
                only_tools = bool(e.problems) and all(
                    isinstance(p, dict) and p.get("code") == "unknown_tool" for p in e.problems
                )
                if not only_tools or loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.05)
        accepted = self._expect(answer, "accepted", "submit")
        return str(accepted.get("run_id", rid))

    async def run(
        self,
        definition: Any,
        input: Any = None,
        *,
        timeout: float | None = None,
        run_id: str | UUID | None = None,
    ) -> dict[str, Any]:
        """Submits a run and waits for its end; returns its final record (whatever its
        status: check `record["status"]`). Raises `RunTimeoutError` after `timeout`."""
        rid = _run_id(run_id) if run_id is not None else str(uuid7())
        sub = await self._nc.subscribe(f"weft.events.{rid}")
        try:
            await self.submit(definition, input, run_id=rid)
            return await self._wait(rid, sub, timeout)
        finally:
            await _quietly(sub.unsubscribe())

    async def wait(self, run_id: str | UUID, *, timeout: float | None = None) -> dict[str, Any]:
        """Waits for a run's end (listening to `weft.events.<run>`, asking for the record
        every 5 s as well); returns the final record."""
        rid = _run_id(run_id)
        sub = await self._nc.subscribe(f"weft.events.{rid}")
        try:
            return await self._wait(rid, sub, timeout, check_first=True)
        finally:
            await _quietly(sub.unsubscribe())

    async def _wait(self, run_id: str, sub: Any, timeout: float | None, check_first: bool = False) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        record: dict[str, Any] | None = None
        finished_seen = False
        if check_first:
            record = await self.status(run_id)
            if record.get("status") in TERMINAL_STATUSES:
                return record
        next_status = loop.time() + STATUS_EVERY
        while True:
            now = loop.time()
            if deadline is not None and now >= deadline:
                raise RunTimeoutError(run_id, timeout or 0.0, record)
            wait_for = next_status - now
            if finished_seen:
                wait_for = min(wait_for, 0.05)
            if deadline is not None:
                wait_for = min(wait_for, deadline - now)
            try:
                msg = await sub.next_msg(timeout=max(wait_for, 0.001))
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                msg = None
            if msg is not None:
                try:
                    event = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event") == "run_finished":
                    finished_seen = True
                else:
                    continue
            record = await self.status(run_id)
            next_status = loop.time() + STATUS_EVERY
            if record.get("status") in TERMINAL_STATUSES:
                return record

    async def status(self, run_id: str | UUID) -> dict[str, Any]:
        """The run's record (`{"run_id", "workflow", "status", "input", "output", "steps", ...}`)."""
        answer = await self.request("status", {"run_id": _run_id(run_id)})
        return self._expect(answer, "run", "status")  # type: ignore[no-any-return]

    async def list(self, limit: int = 20) -> builtins.list[dict[str, Any]]:
        """Recent runs, newest first (`{"run_id", "workflow", "status", "created_ms", ...}`)."""
        answer = await self.request("list", {"limit": int(limit)})
        return self._expect(answer, "runs", "list")  # type: ignore[no-any-return]

    async def cancel(self, run_id: str | UUID, reason: str | None = None, *, compensate: bool = False) -> None:
        """Cancels a run (`compensate=True`: run the compensations of its completed steps)."""
        body: dict[str, Any] = {"run_id": _run_id(run_id), "reason": reason or "cancelled by a client"}
        if compensate:
            body["compensate"] = True
        self._expect_ok(await self.request("cancel", body), "cancel")

    async def redrive(self, run_id: str | UUID, definition: Any = None) -> None:
        """Carries a failed, timed-out or cancelled run on from where it stopped: its
        completed steps keep their outputs, the others run again (the next attempt numbers,
        the same idempotency keys). A run submitted inline needs `definition`, the one it
        was submitted with. Returns once logged; `wait` follows the run to its new end."""
        body: dict[str, Any] = {"run_id": _run_id(run_id)}
        if definition is not None:
            body["definition"] = _definition(definition)
        self._expect_ok(await self.request("redrive", body), "redrive")

    async def rerun(
        self, run_id: str | UUID, from_step: str, input: Any = None, *, definition: Any = None
    ) -> str:
        """Starts a new run of an ended run's workflow from its top-level step `from_step`:
        it and what waits for it run, the other steps' outputs are carried over (`input`:
        the new run's, default the old one's; `definition`: an inline run's). Returns the
        new run's id; its record's `rerun_of` names the old run."""
        new_id = str(uuid7())
        body: dict[str, Any] = {"run_id": _run_id(run_id), "from": from_step, "new_run_id": new_id}
        if input is not None:
            body["input"] = input
        if definition is not None:
            body["definition"] = _definition(definition)
        accepted = self._expect(await self.request("rerun", body), "accepted", "rerun")
        return str(accepted.get("run_id", new_id))

    async def pause(self, run_id: str | UUID) -> None:
        """Pauses a run: running steps finish, nothing new starts until `resume`."""
        self._expect_ok(await self.request("pause", {"run_id": _run_id(run_id)}), "pause")

    async def resume(
        self, run_id: str | UUID, *, add_tokens: int | None = None, add_cost: float | None = None
    ) -> None:
        """Resumes a paused run, or one out of budget (adding to its budget)."""
        body: dict[str, Any] = {"run_id": _run_id(run_id)}
        if add_tokens is not None:
            body["add_tokens"] = int(add_tokens)
        if add_cost is not None:
            body["add_cost"] = float(add_cost)
        self._expect_ok(await self.request("resume", body), "resume")

    async def signal(self, run_id: str | UUID, name: str, data: Any = None) -> None:
        """Sends `data` to the run's `signal` step waiting for `name`."""
        body = {"run_id": _run_id(run_id), "name": name, "data": data}
        self._expect_ok(await self.request("signal", body), "signal")

    async def deploy(self, definition: Any) -> None:
        """Registers a workflow under its name and version (for `workflow` steps)."""
        self._expect_ok(await self.request("deploy", {"definition": _definition(definition)}), "deploy")

    async def pools(self) -> builtins.list[dict[str, Any]]:
        """Resource pools: capacity, holders and waiters."""
        return self._expect(await self.request("pools"), "pools", "pools")  # type: ignore[no-any-return]

    async def set_pool(self, name: str, capacity: int) -> None:
        """Sets a resource pool's capacity."""
        self._expect_ok(await self.request("set_pool", {"name": name, "capacity": int(capacity)}), "set_pool")

    # -- buckets clients may read -------------------------------------------------------
    async def tools(self) -> builtins.list[dict[str, Any]]:
        """The live advertisements of KV `weft_tools` (`{"spec", "worker", "concurrency", "at_ms"}`)."""
        return [value for _, value in await self._bucket_entries("weft_tools")]

    async def definitions(self) -> dict[str, Any]:
        """The registered workflows of KV `weft_definitions`, by key `<name>.<version>`."""
        return dict(await self._bucket_entries("weft_definitions"))

    async def _bucket_entries(self, bucket: str) -> builtins.list[tuple[str, Any]]:
        """The live entries of a KV bucket, read with an ephemeral push consumer of the
        last message per key (what a client's user may do: create a consumer on the
        bucket's stream; no consumer info, no pull)."""
        stream = f"KV_{bucket}"
        prefix = f"$KV.{bucket}."
        inbox = self._nc.new_inbox()
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await self._nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        entries: dict[str, Any] = {}
        try:
            info = await self._js.add_consumer(
                stream,
                ConsumerConfig(
                    deliver_subject=inbox,
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                    ack_policy=AckPolicy.NONE,
                    filter_subject=f"{prefix}>",
                    inactive_threshold=5.0,
                    mem_storage=True,
                    num_replicas=1,
                    max_deliver=1,
                ),
            )
            remaining = int(info.num_pending or 0)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            while remaining > 0:
                try:
                    msg = await asyncio.wait_for(queue.get(), max(deadline - loop.time(), 0.001))
                except asyncio.TimeoutError:
                    raise RequestTimeoutError(f"reading the bucket {bucket} took over {self.timeout:g}s") from None
                if (msg.headers or {}).get("Status"):
                    continue
                try:
                    remaining = int(msg.metadata.num_pending or 0)
                except Exception:
                    remaining -= 1
                key = msg.subject[len(prefix):]
                if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not msg.data:
                    entries.pop(key, None)
                    continue
                try:
                    entries[key] = json.loads(msg.data)
                except ValueError:
                    log.warning("unreadable entry %s of %s", key, bucket)
        finally:
            await _quietly(sub.unsubscribe())
        return sorted(entries.items())

    # -- events ---------------------------------------------------------------------------
    async def watch(self, run_id: str | UUID, *, until_finished: bool = True) -> AsyncIterator[dict[str, Any]]:
        """The run's events from its first, replayed from `WEFT_EVENTS` through an ordered
        (pull) consumer, then live; ends after `run_finished` (unless `until_finished` is
        false). The server removes the consumer 30 s after the watch ends."""
        rid = _run_id(run_id)
        subject = f"weft.events.{rid}"
        nc = self._nc
        loop = asyncio.get_running_loop()
        inbox = nc.new_inbox()
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        last_stream_seq = 0
        try:
            while True:
                consumer = await self._events_consumer(subject, last_stream_seq)
                next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.{consumer}"
                expected = 1  # the consumer's own sequence of the next message
                reset = False
                while not reset:
                    batch = 256
                    expires = 5.0
                    await nc.publish(
                        next_subject,
                        json.dumps({"batch": batch, "expires": int(expires * 1e9)}).encode(),
                        reply=inbox,
                    )
                    until = loop.time() + expires + 3.0
                    got = 0
                    while got < batch:
                        try:
                            msg = await asyncio.wait_for(queue.get(), max(until - loop.time(), 0.001))
                        except asyncio.TimeoutError:
                            reset = True  # the request got lost (a reconnect): start over
                            break
                        status = (msg.headers or {}).get("Status")
                        if status == "100":
                            continue
                        if status in ("404", "408"):
                            break
                        if status is not None:  # 409 (consumer deleted, ...), 503 (no responders)
                            if status == "503":
                                await asyncio.sleep(0.5)
                            reset = True
                            break
                        got += 1
                        try:
                            meta = msg.metadata
                            consumer_seq, stream_seq = meta.sequence.consumer, meta.sequence.stream
                        except Exception:
                            consumer_seq, stream_seq = expected, last_stream_seq + 1
                        if consumer_seq != expected:  # a gap: an ordered consumer starts again
                            reset = True
                            break
                        expected += 1
                        last_stream_seq = stream_seq
                        try:
                            event = json.loads(msg.data)
                        except ValueError:
                            log.warning("unreadable event on %s: %r", msg.subject, msg.data[:200])
                            continue
                        yield event
                        if until_finished and isinstance(event, dict) and event.get("event") == "run_finished":
                            return
                # drop what is left of the consumer being abandoned
                while not queue.empty():
                    queue.get_nowait()
        finally:
            await _quietly(sub.unsubscribe())

    async def _events_consumer(self, subject: str, after_stream_seq: int) -> str:
        config = ConsumerConfig(
            filter_subject=subject,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL if after_stream_seq == 0 else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if after_stream_seq == 0 else after_stream_seq + 1,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
            max_deliver=1,
        )
        delay = 0.1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                info = await self._js.add_consumer(EVENTS_STREAM, config)
                return str(info.name)
            except (
                nats.errors.NoRespondersError,
                nats.errors.TimeoutError,
                asyncio.TimeoutError,
                nats.js.errors.ServiceUnavailableError,
            ) as e:
                if loop.time() > deadline:
                    raise UnavailableError(f"cannot read the events stream: {e}", code="unavailable") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as e:
        log.debug("ignored: %s: %s", type(e).__name__, e)


class SyncClient:
    """The client for code without an event loop: runs a `Client` on its own loop in a
    background thread. Same methods, blocking; `watch` is a plain iterator.

    ```python
    with weft.SyncClient("nats://client:secret@127.0.0.1:4222") as client:
        record = client.run(definition, {"x": 1}, timeout=60)
    ```
    """

    def __init__(
        self,
        url: str | list[str] | None = None,
        *,
        inbox_prefix: str = INBOX_CLIENT,
        timeout: float = 10.0,
        creds: str | None = None,
        tool_wait: float = 0.0,
        **options: Any,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="weft-sync-client", daemon=True)
        self._thread.start()
        try:
            self._client: Client = self._call(
                Client.connect(
                    url, inbox_prefix=inbox_prefix, timeout=timeout, creds=creds, tool_wait=tool_wait, **options
                )
            )
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def client(self) -> Client:
        """The async client underneath (use it only on this facade's loop)."""
        return self._client

    def submit(self, definition: Any, input: Any = None, *, run_id: str | UUID | None = None) -> str:
        return self._call(self._client.submit(definition, input, run_id=run_id))

    def run(
        self, definition: Any, input: Any = None, *, timeout: float | None = None, run_id: str | UUID | None = None
    ) -> dict[str, Any]:
        return self._call(self._client.run(definition, input, timeout=timeout, run_id=run_id))

    def wait(self, run_id: str | UUID, *, timeout: float | None = None) -> dict[str, Any]:
        return self._call(self._client.wait(run_id, timeout=timeout))

    def status(self, run_id: str | UUID) -> dict[str, Any]:
        return self._call(self._client.status(run_id))

    def list(self, limit: int = 20) -> builtins.list[dict[str, Any]]:
        return self._call(self._client.list(limit))

    def cancel(self, run_id: str | UUID, reason: str | None = None, *, compensate: bool = False) -> None:
        self._call(self._client.cancel(run_id, reason, compensate=compensate))

    def redrive(self, run_id: str | UUID, definition: Any = None) -> None:
        self._call(self._client.redrive(run_id, definition))

    def rerun(self, run_id: str | UUID, from_step: str, input: Any = None, *, definition: Any = None) -> str:
        return self._call(self._client.rerun(run_id, from_step, input, definition=definition))

    def pause(self, run_id: str | UUID) -> None:
        self._call(self._client.pause(run_id))

    def resume(self, run_id: str | UUID, *, add_tokens: int | None = None, add_cost: float | None = None) -> None:
        self._call(self._client.resume(run_id, add_tokens=add_tokens, add_cost=add_cost))

    def signal(self, run_id: str | UUID, name: str, data: Any = None) -> None:
        self._call(self._client.signal(run_id, name, data))

    def deploy(self, definition: Any) -> None:
        self._call(self._client.deploy(definition))

    def pools(self) -> builtins.list[dict[str, Any]]:
        return self._call(self._client.pools())

    def set_pool(self, name: str, capacity: int) -> None:
        self._call(self._client.set_pool(name, capacity))

    def tools(self) -> builtins.list[dict[str, Any]]:
        return self._call(self._client.tools())

    def definitions(self) -> dict[str, Any]:
        return self._call(self._client.definitions())

    def request(self, verb: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(self._client.request(verb, body))

    def watch(self, run_id: str | UUID, *, until_finished: bool = True) -> Iterator[dict[str, Any]]:
        events: Any = self._client.watch(run_id, until_finished=until_finished)

        async def step() -> tuple[bool, Any]:
            try:
                return True, await events.__anext__()
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, event = self._call(step())
                if not more:
                    return
                yield event
        finally:
            if self._loop.is_running():
                self._call(events.aclose())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self._client.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
