"""Identifiers and names of the wire protocol: UUID v7 run ids, tool names, consumer names."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

__all__ = ["uuid7", "fnv1a64", "consumer_name", "valid_tool_name", "check_tool_name"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A UUID version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then random bits.

    Ids made in the same millisecond by this process keep their order: the 12 bits after
    the version hold a counter started at a random value (as RFC 9562's method 1), and
    the clock is never allowed to run backwards.
    """
    global _last_ms, _counter
    if hasattr(uuid, "uuid7"):  # Python 3.14+
        return uuid.uuid7()  # type: ignore[attr-defined,no-any-return,unused-ignore]
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leave room to count
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
            ms = _last_ms
        rand_a = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rand_a << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a of `data`."""
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


_SEGMENT = r"[A-Za-z0-9_-]+"
_TOOL_NAME = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})*$")


def valid_tool_name(name: str) -> bool:
    """Whether `name` is one or more segments of letters, digits, `_` and `-`, joined by `.`."""
    return bool(_TOOL_NAME.match(name))


def check_tool_name(name: str) -> str:
    if not isinstance(name, str) or not valid_tool_name(name):
        raise ValueError(
            f"invalid tool name {name!r}: one or more segments of letters, digits, `_` and `-`, separated by `.`"
        )
    return name


def consumer_name(tool: str) -> str:
    """The durable consumer the workers of `tool` share on WEFT_TASKS.

    `tool-T` when `T` has no `.`; otherwise `tool-` + `T` with every `.` made `_` + `-` +
    the FNV-1a 64 hash of `T` as 16 lowercase hex digits.
    """
    check_tool_name(tool)
    if "." not in tool:
        return f"tool-{tool}"
    return f"tool-{tool.replace('.', '_')}-{fnv1a64(tool.encode('utf-8')):016x}"
