"""Tool definitions: a Python function, its name, JSON Schema, validation and call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import enum
import functools
import inspect
import json
import types
import typing
from typing import Any, Callable, TypeVar, overload

from ._ids import check_tool_name
from .context import Context
from .errors import ToolError
from .schema import SchemaError, convert, params_schema, validate

__all__ = ["Tool", "tool", "BadParams", "BadOutput"]

F = TypeVar("F", bound=Callable[..., Any])


class BadParams(Exception):
    """Params that do not fit the tool's schema."""


class BadOutput(Exception):
    """A return value that is not JSON."""


def _is_context(hint: Any) -> bool:
    if hint is Context:
        return True
    if typing.get_origin(hint) is typing.Annotated:
        return _is_context(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_context(a) for a in typing.get_args(hint) if a is not type(None))
    return False


def _is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_validate")


def _jsonschema_validator(schema: dict[str, Any]) -> Callable[[Any], list[str]] | None:
    """A validator from the `jsonschema` package, if it is installed."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        checker = cls(schema)
    except Exception:
        return None

    def check(value: Any) -> list[str]:
        out = []
        for err in sorted(checker.iter_errors(value), key=lambda e: list(e.absolute_path)):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path).lstrip(".")
            out.append(f"`{where}`: {err.message}" if where else f"the params: {err.message}")
        return out

    return check


def json_default(value: Any) -> Any:
    """`json.dumps` default: dataclasses, enums, pydantic models, tuples and sets of JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump(mode="json")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return doc.strip().split("\n\n", 1)[0].strip().replace("\n", " ")


class Tool:
    """A tool a worker serves: built by `@weft.tool` or `@worker.tool`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        concurrency: int = 16,
        version: str = "1",
        params: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a tool is a function, not {fn!r}")
        self.fn = fn
        self.name = check_tool_name(name or str(getattr(fn, "__name__", "")))
        self.description = description if description is not None else _first_paragraph(inspect.getdoc(fn))
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"tool `{self.name}`: concurrency must be an integer >= 1, not {concurrency!r}")
        self.concurrency = concurrency
        self.version = str(version)
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

        signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as e:  # an unresolved forward reference
            raise SchemaError(f"tool `{self.name}`: cannot read the type hints of {fn!r}: {e}") from e
        self.context_param: str | None = None
        self.model: Any = None
        self.model_param: str | None = None
        plain: list[inspect.Parameter] = []
        allow_extra = False
        for p in signature.parameters.values():
            hint = hints.get(p.name, inspect.Parameter.empty)
            if _is_context(hint):
                if self.context_param is not None:
                    raise TypeError(f"tool `{self.name}`: more than one `weft.Context` parameter")
                self.context_param = p.name
                continue
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                allow_extra = True
                continue
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
                raise TypeError(
                    f"tool `{self.name}`: parameter `{p.name}` cannot be given by name; "
                    "tools are called with keyword arguments"
                )
            plain.append(p)
        self.hints = {p.name: hints.get(p.name, Any) for p in plain}
        self.parameters = plain
        if len(plain) == 1 and not allow_extra and _is_pydantic_model(self.hints[plain[0].name]):
            self.model = self.hints[plain[0].name]
            self.model_param = plain[0].name
            schema = self.model.model_json_schema()
        else:
            schema = params_schema(plain, self.hints, allow_extra)
        if params is not None:
            schema = params
        self.schema: dict[str, Any] = schema
        self._check = _jsonschema_validator(schema) or functools.partial(validate, schema=schema)

    # -- what the worker advertises --------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "params": self.schema,
        }

    # -- validation and call -------------------------------------------------------------
    def bind(self, params: Any) -> dict[str, Any]:
        """The keyword arguments of a call with `params`; `BadParams` if they do not fit."""
        if self.model is not None:
            try:
                instance = self.model.model_validate(params)
            except Exception as e:  # pydantic.ValidationError
                errors = getattr(e, "errors", None)
                if callable(errors):
                    parts = []
                    for err in errors():
                        loc = ".".join(str(x) for x in err.get("loc", ()))
                        parts.append(f"`{loc}`: {err.get('msg')}" if loc else str(err.get("msg")))
                    raise BadParams("; ".join(parts) or str(e)) from None
                raise BadParams(str(e)) from None
            return {self.model_param: instance}  # type: ignore[dict-item]
        if not isinstance(params, dict):
            raise BadParams(f"params must be an object, found {json.dumps(params, default=repr)[:80]}")
        problems = self._check(params)
        if problems:
            raise BadParams("; ".join(problems))
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            hint = self.hints.get(key, Any)
            try:
                kwargs[key] = convert(value, hint)
            except Exception as e:
                raise BadParams(f"`{key}`: {e}") from None
        return kwargs

    async def invoke(self, kwargs: dict[str, Any], ctx: Context) -> Any:
        """Calls the function (a sync one in this tool's threads)."""
        if self.context_param is not None:
            kwargs = {**kwargs, self.context_param: ctx}
        if self.is_async:
            return await self.fn(**kwargs)
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix=f"weft-{self.name}"
            )
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, self.fn, **kwargs)
        result = await loop.run_in_executor(self._executor, call)
        if inspect.isawaitable(result):
            result = await result
        return result

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, version={self.version!r}, concurrency={self.concurrency})"


def as_tool(obj: Any) -> Tool:
    """A `Tool` from a `Tool`, or a function decorated with `@weft.tool`, or a plain function."""
    if isinstance(obj, Tool):
        return obj
    existing = getattr(obj, "__weft_tool__", None)
    if isinstance(existing, Tool):
        return existing
    return Tool(obj)


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    concurrency: int = 16,
    version: str = "1",
    params: dict[str, Any] | None = None,
) -> Callable[[F], F]: ...


def tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    concurrency: int = 16,
    version: str = "1",
    params: dict[str, Any] | None = None,
) -> Any:
    """Marks a function as a Weft tool, for `Worker(tools=[...])`.

    The function stays callable as it was; its `Tool` is `fn.__weft_tool__`. `params`
    replaces the schema made from the type hints.
    """

    def wrap(f: F) -> F:
        f.__weft_tool__ = Tool(  # type: ignore[attr-defined]
            f, name=name, description=description, concurrency=concurrency, version=version, params=params
        )
        return f

    if fn is not None:
        return wrap(fn)
    return wrap
