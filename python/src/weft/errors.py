"""Errors: those a tool raises, and those the API answers."""

from __future__ import annotations

from typing import Any

__all__ = [
    "WeftError",
    "ToolError",
    "ApiError",
    "BadRequestError",
    "InvalidError",
    "NotFoundError",
    "ConflictError",
    "CorruptError",
    "UnavailableError",
    "InternalError",
    "RunTimeoutError",
]


class WeftError(Exception):
    """Base of the SDK's errors."""


class ToolError(WeftError):
    """Raised by a tool to fail its attempt with an error of its choosing.

    `code` lets a workflow's `retry.non_retryable` name it; `retryable=False` fails the step
    at once; `retry_after_ms` asks the retry to wait at least that long (as a provider's
    `Retry-After`).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = True,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms

    def to_wire(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "retryable": bool(self.retryable)}
        if self.code is not None:
            err["code"] = self.code
        if self.retry_after_ms is not None:
            err["retry_after_ms"] = int(self.retry_after_ms)
        return err

    def __repr__(self) -> str:
        return f"ToolError({self.message!r}, code={self.code!r}, retryable={self.retryable!r})"


class ApiError(WeftError):
    """An error answered by the coordinator's API (`{"error": {"code", "message", "problems"}}`)."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, problems: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.problems: list[Any] = list(problems or [])

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    @staticmethod
    def from_wire(error: Any) -> ApiError:
        if not isinstance(error, dict):
            return ApiError(f"unreadable error answer: {error!r}", code="internal")
        code = str(error.get("code", "internal"))
        message = str(error.get("message", ""))
        problems = error.get("problems") or []
        cls = _BY_CODE.get(code, ApiError)
        return cls(message, code=code, problems=problems)


class BadRequestError(ApiError):
    """`bad_request`: the request could not be read."""

    code = "bad_request"


class InvalidError(ApiError):
    """`invalid`: the workflow or its input is invalid; `problems` lists each with its place."""

    code = "invalid"


class NotFoundError(ApiError):
    """`not_found`: no such run (or registered definition)."""

    code = "not_found"


class ConflictError(ApiError):
    """`conflict`: the request cannot apply to the run as it is."""

    code = "conflict"


class CorruptError(ApiError):
    """`corrupt`: a stored record or definition cannot be read."""

    code = "corrupt"


class UnavailableError(ApiError):
    """`unavailable`: JetStream (or any coordinator) cannot be reached for now; nothing was done."""

    code = "unavailable"


class InternalError(ApiError):
    """`internal`: something failed inside the coordinator."""

    code = "internal"


_BY_CODE: dict[str, type[ApiError]] = {
    c.code: c
    for c in (
        BadRequestError,
        InvalidError,
        NotFoundError,
        ConflictError,
        CorruptError,
        UnavailableError,
        InternalError,
    )
}


class RunTimeoutError(WeftError, TimeoutError):
    """A run did not end within the time `Client.run`/`Client.wait` was given."""

    def __init__(self, run_id: str, timeout: float, record: dict[str, Any] | None = None) -> None:
        super().__init__(f"run {run_id} did not end within {timeout:g}s")
        self.run_id = run_id
        self.timeout = timeout
        self.record = record
