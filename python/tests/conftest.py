"""Real processes for the tests: a nats-server with JetStream and the deployment's users
(deploy/nats/accounts.conf, so every role is confined as in production), a
weft-coordinator and a Rust weft-worker, started once per session.

Binaries: `$NATS_SERVER` (default /work/main/.weft/venv/bin/nats-server) and
`$WEFT_BIN_DIR` (default /work/main/target/debug) for weft-coordinator and weft-worker.
A missing binary fails the tests that need them, with the fix; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import weft

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NATS_SERVER = Path(os.environ.get("NATS_SERVER", str(REPO / ".weft/venv/bin/nats-server")))
BIN_DIR = Path(os.environ.get("WEFT_BIN_DIR", str(REPO / "target/debug")))
ACCOUNTS = REPO / "deploy/nats/accounts.conf"
ROLES = ("coordinator", "worker", "client", "admin")

PATIENCE = 30.0
"""How long a wait on what the system says lasts before the test fails (never a timing assertion)."""


def _need(path: Path, what: str, fix: str) -> None:
    if not path.exists():
        pytest.fail(f"{what} is missing: {path} ({fix})", pytrace=False)


class Proc:
    """A child process with its output in a log file, stopped by its pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._file = open(self.log, "wb")
        self.popen = subprocess.Popen(
            argv, stdout=self._file, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 10.0) -> int:
        if self.alive():
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.terminate(5)
        self._file.close()


class Cluster:
    """NATS (with users), a coordinator and a Rust worker."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="weft-py-tests-"))
        self.passwords = {role: secrets.token_hex(12) for role in ROLES}
        self.procs: list[Proc] = []
        self.port = 0
        # A port bound but never listening: the coordinator's OTLP exporter gets "refused",
        # and the coordinator puts `traceparent` on its tasks.
        self._otlp_sink = socket.socket()
        self._otlp_sink.bind(("127.0.0.1", 0))

    # -- urls -------------------------------------------------------------------------
    def url(self, role: str) -> str:
        return f"nats://{role}:{self.passwords[role]}@127.0.0.1:{self.port}"

    @property
    def worker_url(self) -> str:
        return self.url("worker")

    @property
    def client_url(self) -> str:
        return self.url("client")

    @property
    def admin_url(self) -> str:
        return self.url("admin")

    # -- processes ----------------------------------------------------------------------
    def start(self) -> None:
        _need(NATS_SERVER, "nats-server", "set NATS_SERVER, or run deploy/setup.sh")
        for b in ("weft-coordinator", "weft-worker"):
            _need(BIN_DIR / b, b, "set WEFT_BIN_DIR, or run `cargo build --workspace --bins`")
        _need(ACCOUNTS, "the NATS users' configuration", "deploy/nats/accounts.conf of the repository")
        shutil.copy(ACCOUNTS, self.dir / "accounts.conf")
        (self.dir / "ports").mkdir()
        (self.dir / "nats.conf").write_text(
            'include ./accounts.conf\n'
            f'jetstream {{ store_dir: "{self.dir / "js"}" }}\n'
        )
        env = {f"WEFT_{role.upper()}_PASSWORD": pw for role, pw in self.passwords.items()}
        nats = Proc(
            "nats",
            [str(NATS_SERVER), "-c", str(self.dir / "nats.conf"), "-a", "127.0.0.1", "-p", "-1", "-m", "-1",
             "--ports_file_dir", str(self.dir / "ports")],
            env,
            self.dir,
        )
        self.nats = nats
        self.procs.append(nats)
        ports_file = self.dir / "ports" / f"nats-server_{nats.pid}.ports"
        deadline = time.monotonic() + 20
        while True:
            try:
                ports = json.loads(ports_file.read_text())
                self.port = int(ports["nats"][0].rsplit(":", 1)[1])
                break
            except (OSError, ValueError, KeyError, IndexError):
                if not nats.alive() or time.monotonic() > deadline:
                    pytest.fail(f"nats-server did not start:\n{nats.text()}", pytrace=False)
                time.sleep(0.02)
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"nats-server does not listen:\n{nats.text()}", pytrace=False)
            time.sleep(0.02)
        otlp = f"http://127.0.0.1:{self._otlp_sink.getsockname()[1]}"
        self.coordinator = self.spawn(
            "coordinator",
            [str(BIN_DIR / "weft-coordinator")],
            {"NATS_URL": self.url("coordinator"), "WEFT_PIN_TIMEOUT": "2", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp},
        )
        # Workers start once the coordinator answers (it creates the streams and buckets;
        # workers only look them up), as the deployment does.
        asyncio.run(self._ready(need_worker=False))
        self.rust_worker = self.spawn(
            "rust-worker",
            [str(BIN_DIR / "weft-worker"), "--id", "rust-w1"],
            {"NATS_URL": self.worker_url},
        )
        asyncio.run(self._ready())

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env, self.dir)
        self.procs.append(proc)
        return proc

    async def _ready(self, need_worker: bool = True) -> None:
        client = await weft.Client.connect(self.client_url, timeout=5)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    await client.list(1)
                    if not need_worker:
                        return
                    tools = await client.tools()
                    if any(a["worker"] == "rust-w1" and a["spec"]["name"] == "echo" for a in tools):
                        return
                except weft.WeftError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the cluster did not get ready:\n{self.logs()}", pytrace=False)
                await asyncio.sleep(0.1)
        finally:
            await client.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.text()[-6000:]}" for p in self.procs)

    def permission_violations(self) -> list[str]:
        return [line for line in self.nats.text().splitlines() if "Violation" in line]

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.close()
        self._otlp_sink.close()


@pytest.fixture(scope="session")
def cluster() -> Any:
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
        if os.environ.get("WEFT_KEEP_LOGS"):
            print(f"logs kept in {c.dir}", file=sys.stderr)
        else:
            shutil.rmtree(c.dir, ignore_errors=True)


def unique(prefix: str) -> str:
    """A name no other test uses (tools of a test have their own consumers)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[weft.Client]:
    c = await weft.Client.connect(cluster.client_url, tool_wait=10.0)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def admin(cluster: Cluster) -> AsyncIterator[Any]:
    """A connection as `admin`, to look at consumers and the run log."""
    import nats

    nc = await nats.connect(cluster.admin_url)
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
def start_worker(cluster: Cluster) -> Any:
    """`async with start_worker(tool, ...) as worker`: a Python worker of the tests' tools,
    connected as the `worker` user; stopped at the end of the block."""

    @contextlib.asynccontextmanager
    async def start(*tools: Any, **options: Any) -> AsyncIterator[weft.Worker]:
        options.setdefault("worker_id", unique("py"))
        options.setdefault("grace", 5.0)
        w = weft.Worker(cluster.worker_url, tools=tools, **options)
        await w.start()
        try:
            yield w
        finally:
            await w.stop()

    return start


async def eventually(what: str, check: Callable[[], Any], patience: float = PATIENCE) -> Any:
    """Calls `check` (sync or async) until it returns something truthy; fails after `patience`."""
    deadline = time.monotonic() + patience
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"never {what} (last: {last!r})")
        await asyncio.sleep(0.05)


async def record_until(client: weft.Client, run_id: str, what: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Polls the run's record until `check` holds."""
    holder: dict[str, Any] = {}

    async def look() -> bool:
        holder["record"] = await client.status(run_id)
        return check(holder["record"])

    deadline = time.monotonic() + PATIENCE
    while not await look():
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} never {what}: {json.dumps(holder.get('record'), indent=1)}")
        await asyncio.sleep(0.05)
    return holder["record"]


def step_error(record: dict[str, Any], step: str, attempt: int = -1) -> dict[str, Any]:
    return record["steps"][step]["attempts"][attempt]["error"]  # type: ignore[no-any-return]
