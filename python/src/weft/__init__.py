"""Weft's Python SDK: tool workers and an API client, speaking Weft's wire protocol
(JSON over NATS JetStream, docs/protocol.md).

```python
import weft

worker = weft.Worker("nats://127.0.0.1:4222")

@worker.tool
async def greet(name: str) -> dict:
    return {"greeting": f"Hello, {name}!"}

worker.run()
```
"""

from ._ids import consumer_name, fnv1a64, uuid7, valid_tool_name
from .client import TERMINAL_STATUSES, Client, RequestTimeoutError, SyncClient
from .context import Context
from .errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    CorruptError,
    InternalError,
    InvalidError,
    NotFoundError,
    RunTimeoutError,
    ToolError,
    UnavailableError,
    WeftError,
)
from .schema import SchemaError, schema_of
from .tool import Tool, tool
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Context",
    "CorruptError",
    "InternalError",
    "InvalidError",
    "NotFoundError",
    "RequestTimeoutError",
    "RunTimeoutError",
    "SchemaError",
    "SyncClient",
    "TERMINAL_STATUSES",
    "Tool",
    "ToolError",
    "UnavailableError",
    "WeftError",
    "Worker",
    "consumer_name",
    "fnv1a64",
    "schema_of",
    "tool",
    "uuid7",
    "valid_tool_name",
]
