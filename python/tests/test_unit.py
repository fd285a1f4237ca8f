"""Pieces that need no server: names, ids, schemas, validation, conversion."""

from __future__ import annotations

import dataclasses
import enum
import time
import uuid
from typing import Any, Literal, Optional, TypedDict

import pydantic
import pytest

import weft
from weft._connect import masked, servers
from weft.schema import convert, schema_of, validate
from weft.tool import BadParams, Tool


def test_fnv1a64_vectors():
    assert weft.fnv1a64(b"") == 0xCBF29CE484222325
    assert weft.fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert weft.fnv1a64(b"foobar") == 0x85944171F73967E8


def test_consumer_names():
    assert weft.consumer_name("get_weather") == "tool-get_weather"
    assert weft.consumer_name("memory.create_entities") == (
        f"tool-memory_create_entities-{weft.fnv1a64(b'memory.create_entities'):016x}"
    )
    # the hash keeps `a.b_c` and `a_b.c` apart
    assert weft.consumer_name("a.b_c") != weft.consumer_name("a_b.c")
    for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a>", "é"]:
        assert not weft.valid_tool_name(bad)
        with pytest.raises(ValueError):
            weft.consumer_name(bad)


def test_uuid7():
    before = time.time_ns() // 1_000_000
    ids = [weft.uuid7() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids, key=lambda u: u.int) and len(set(ids)) == len(ids)
    assert before <= ids[0].int >> 80 <= after


class Mood(enum.Enum):
    HAPPY = 1
    SAD = 2


class Options(TypedDict, total=False):
    verbose: bool


@dataclasses.dataclass
class Inner:
    n: int
    tags: list[str] = dataclasses.field(default_factory=list)


def test_schemas_of_types():
    assert schema_of(str) == {"type": "string"}
    assert schema_of(Optional[int]) == {"type": ["integer", "null"]}
    assert schema_of(int | str) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert schema_of(list[Inner] | None) == {
        "anyOf": [{"type": "array", "items": schema_of(Inner)}, {"type": "null"}]
    }
    assert schema_of(Literal[1, 2]) == {"type": "integer", "enum": [1, 2]}
    assert schema_of(Literal["a", 1]) == {"enum": ["a", 1]}
    assert schema_of(Mood) == {"type": "integer", "enum": [1, 2]}
    assert schema_of(Options) == {
        "type": "object", "properties": {"verbose": {"type": "boolean"}}, "additionalProperties": False,
    }
    assert schema_of(Inner) == {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["n"],
        "additionalProperties": False,
    }
    assert schema_of(tuple[int, str])["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert schema_of(dict[str, Any]) == {"type": "object", "additionalProperties": {}}
    assert schema_of(None) == {"type": "null"}
    with pytest.raises(weft.SchemaError):
        schema_of(dict[int, str])
    with pytest.raises(weft.SchemaError):
        schema_of(complex)


def test_validation_messages():
    schema = schema_of(Inner)
    assert validate({"n": 1, "tags": ["a"]}, schema) == []
    assert validate({"n": True}, schema) == ["`n`: expected integer, found boolean true"]
    assert validate({"tags": [1]}, schema) == [
        "the params: missing required field `n`", "`tags[0]`: expected string, found integer 1",
    ]
    assert validate({"n": 1, "x": 2}, schema) == ["the params: unknown field `x` (allowed: `n`, `tags`)"]
    assert validate(3.0, {"type": "integer"}) == []
    assert validate("c", schema_of(Literal["a", "b"])) == ['the params: "c" is not one of "a", "b"']
    assert validate(None, schema_of(Optional[int])) == []


def test_conversion_to_annotated_types():
    assert convert({"n": 1}, Inner) == Inner(n=1)
    assert convert([{"n": 1, "tags": ["x"]}], list[Inner]) == [Inner(1, ["x"])]
    assert convert(2, Mood) is Mood.SAD
    assert convert(1, float) == 1.0 and isinstance(convert(1, float), float)
    assert convert(None, Optional[Inner]) is None
    assert convert([1, "a"], tuple[int, str]) == (1, "a")


def test_tool_definitions():
    async def ok(a: int, ctx: weft.Context, b: str = "x") -> None: ...

    t = Tool(ok, name="pkg.ok", concurrency=2)
    assert t.context_param == "ctx"
    assert t.schema["required"] == ["a"]
    assert t.schema["properties"]["b"] == {"type": "string", "default": "x"}
    assert t.bind({"a": 1}) == {"a": 1}
    with pytest.raises(BadParams):
        t.bind({"a": "1"})
    with pytest.raises(BadParams):
        t.bind([1])

    def positional(a: int, /) -> None: ...

    with pytest.raises(TypeError):
        Tool(positional)
    with pytest.raises(ValueError):
        Tool(ok, name="bad name")
    with pytest.raises(ValueError):
        Tool(ok, concurrency=0)

    def kw(**params: Any) -> None: ...

    assert Tool(kw).schema == {"type": "object", "properties": {}, "additionalProperties": True}
    assert Tool(ok, params={"type": "object"}).schema == {"type": "object"}


def test_decorators_keep_the_function_callable():
    @weft.tool
    def plain(x: int) -> int:
        """Doubles.

        More text."""
        return x * 2

    assert plain(2) == 4
    assert plain.__weft_tool__.name == "plain"
    assert plain.__weft_tool__.description == "Doubles."
    worker = weft.Worker("nats://127.0.0.1:1", worker_id="w")

    @worker.tool(name="double", concurrency=3)
    async def double(x: int) -> int:
        return x * 2

    worker.add_tool(plain)
    assert set(worker.tools) == {"double", "plain"}
    assert worker.tools["double"].concurrency == 3
    with pytest.raises(ValueError):
        worker.add_tool(plain)


class Payload(pydantic.BaseModel):
    name: str
    size: int = 1


def test_pydantic_parameter():
    async def use(p: Payload, ctx: weft.Context) -> Payload:
        return p

    t = Tool(use)
    assert t.schema == Payload.model_json_schema()
    assert t.bind({"name": "a"}) == {"p": Payload(name="a")}
    with pytest.raises(BadParams, match="size"):
        t.bind({"name": "a", "size": "big"})


def test_urls():
    assert servers("nats://u:p@a:4222, nats://b:4223") == ["nats://u:p@a:4222", "nats://u:p@b:4223"]
    assert servers("a:4222") == ["nats://a:4222"]
    assert masked("nats://u:secret@a:4222") == "nats://u:***@a:4222"
    assert masked("nats://tok@a:4222") == "nats://***@a:4222"


def test_api_errors_from_the_wire():
    e = weft.ApiError.from_wire({"code": "invalid", "message": "m", "problems": [{"path": "steps"}]})
    assert isinstance(e, weft.InvalidError) and e.problems == [{"path": "steps"}] and e.message == "m"
    assert type(weft.ApiError.from_wire({"code": "new_code", "message": "?"})) is weft.ApiError
    assert weft.ToolError("x", code="C", retry_after_ms=5).to_wire() == {
        "message": "x", "retryable": True, "code": "C", "retry_after_ms": 5,
    }
