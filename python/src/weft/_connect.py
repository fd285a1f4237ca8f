"""Connecting to NATS as one of Weft's roles."""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client as NATS

log = logging.getLogger("weft")

INBOX_WORKER = "_INBOX_worker"
INBOX_CLIENT = "_INBOX_client"
INBOX_COORDINATOR = "_INBOX_coordinator"

DEFAULT_URL = "nats://127.0.0.1:4222"


def servers(url: str | list[str] | None) -> list[str]:
    """The server URLs of `url`: several may be given separated by commas (as Weft's
    binaries take them); credentials stay in each URL (`nats://user:password@host:4222`,
    `nats://token@host:4222`), which nats-py reads itself."""
    if url is None:
        url = os.environ.get("NATS_URL") or DEFAULT_URL
    if isinstance(url, str):
        parts = [u.strip() for u in url.split(",") if u.strip()]
    else:
        parts = [u.strip() for u in url if u.strip()]
    if not parts:
        raise ValueError("no NATS server URL")
    # A credential given only on the first URL applies to all of them, as the binaries do.
    first = urlsplit(parts[0] if "://" in parts[0] else "nats://" + parts[0])
    out = []
    for p in parts:
        u = urlsplit(p if "://" in p else "nats://" + p)
        if not u.username and first.username:
            netloc = first.netloc.rsplit("@", 1)[0] + "@" + u.netloc
            u = u._replace(netloc=netloc)
        out.append(urlunsplit(u))
    return out


def masked(url: str) -> str:
    """`url` with its password (or token) hidden, for logs."""
    u = urlsplit(url)
    if u.password:
        return urlunsplit(u._replace(netloc=f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")))
    if u.username:
        return urlunsplit(u._replace(netloc=f"***@{u.hostname}" + (f":{u.port}" if u.port else "")))
    return url


async def connect(
    url: str | list[str] | None,
    *,
    inbox_prefix: str,
    name: str,
    creds: str | None = None,
    connect_timeout: float = 10.0,
    **options: Any,
) -> NATS:
    """A connection whose replies arrive under `inbox_prefix` (without it, every
    JetStream call of a confined Weft user is refused)."""
    urls = servers(url)

    async def error_cb(e: Exception) -> None:
        log.warning("NATS: %s: %s", type(e).__name__, e)

    async def disconnected_cb() -> None:
        log.info("NATS: disconnected")

    async def reconnected_cb() -> None:
        log.info("NATS: reconnected")

    kwargs: dict[str, Any] = dict(
        servers=urls,
        name=name,
        inbox_prefix=inbox_prefix,
        connect_timeout=connect_timeout,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        allow_reconnect=True,
        error_cb=error_cb,
        disconnected_cb=disconnected_cb,
        reconnected_cb=reconnected_cb,
    )
    creds = creds or os.environ.get("NATS_CREDS") or None
    if creds:
        kwargs["user_credentials"] = creds
    kwargs.update(options)
    nc = await nats.connect(**kwargs)
    log.info("connected to NATS %s", ", ".join(masked(u) for u in urls))
    return nc
