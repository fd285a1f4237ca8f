"""JSON Schemas of tool parameters from Python type hints, the conversion of JSON params
into the annotated Python values, and a validator of the schema subset generated here.

Supported hints: `str`, `int`, `float`, `bool`, `None`, `Optional[T]` / `T | None`,
unions, `list[T]` (and `Sequence[T]`, `set[T]`, `tuple[...]`), `dict[str, T]`,
`Literal[...]`, `Enum` subclasses, `TypedDict`, dataclasses, `Any`, and
`Annotated[T, "description"]`. A parameter with a default is not required.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import json
import math
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "schema_of",
    "params_schema",
    "convert",
    "validate",
    "SchemaError",
]

_NoneType = type(None)


class SchemaError(TypeError):
    """A type hint that has no JSON Schema here."""


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_validate")


def _json_type_of(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    kinds = {_json_type_of(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    schema["enum"] = values
    return schema


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


def _default_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value


def schema_of(tp: Any, _seen: frozenset[Any] = frozenset()) -> dict[str, Any]:
    """The JSON Schema of values of type `tp`."""
    if tp is Any or tp is object or tp is inspect.Parameter.empty:
        return {}
    if tp is None or tp is _NoneType:
        return {"type": "null"}
    if isinstance(tp, typing.TypeVar):
        return {}
    if isinstance(tp, str):
        raise SchemaError(f"unresolved forward reference {tp!r}")
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Annotated:
        schema = dict(schema_of(args[0], _seen))
        for meta in args[1:]:
            if isinstance(meta, str):
                schema["description"] = meta
            elif isinstance(meta, dict):
                schema.update(meta)
        return schema
    if origin is Union or origin is types.UnionType:
        members = list(args)
        nullable = _NoneType in members
        rest = [m for m in members if m is not _NoneType]
        schemas = [schema_of(m, _seen) for m in rest]
        if nullable:
            if len(schemas) == 1 and set(schemas[0]) == {"type"} and isinstance(schemas[0]["type"], str):
                return {"type": [schemas[0]["type"], "null"]}
            schemas.append({"type": "null"})
        if len(schemas) == 1:
            return schemas[0]
        return {"anyOf": schemas}
    if origin is Literal:
        return _enum_schema([_default_value(a) for a in args])
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([m.value for m in tp])
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if origin in (list, set, frozenset, collections.abc.Sequence, collections.abc.Set, collections.abc.Iterable):
        schema = {"type": "array"}
        if args:
            schema["items"] = schema_of(args[0], _seen)
        if origin in (set, frozenset, collections.abc.Set):
            schema["uniqueItems"] = True
        return schema
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0], _seen)}
        if args == ((),):
            return {"type": "array", "maxItems": 0}
        items = [schema_of(a, _seen) for a in args]
        return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items), "maxItems": len(items)}
    if tp in (list, set, frozenset, tuple):
        return {"type": "array"}
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        if args and args[0] is not str and args[0] is not Any:
            raise SchemaError(f"{tp!r}: JSON objects have string keys only")
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = schema_of(args[1], _seen)
        return schema
    if tp is dict:
        return {"type": "object"}
    if _is_typeddict(tp) or dataclasses.is_dataclass(tp):
        if tp in _seen:
            raise SchemaError(f"{tp.__qualname__} refers to itself: recursive types have no schema here")
        return _record_schema(tp, _seen | {tp})
    if _is_pydantic_model(tp):
        return tp.model_json_schema()  # type: ignore[no-any-return]
    raise SchemaError(f"no JSON Schema for the type {tp!r}")


def _record_schema(tp: Any, seen: frozenset[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(tp, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    if _is_typeddict(tp):
        for key, hint in hints.items():
            properties[key] = schema_of(_strip_required(hint), seen)
        required = [k for k in hints if k in tp.__required_keys__]
    else:
        for field in dataclasses.fields(tp):
            if not field.init:
                continue
            prop = schema_of(hints.get(field.name, Any), seen)
            if field.default is not dataclasses.MISSING:
                default = _default_value(field.default)
                if _jsonable(default):
                    prop = {**prop, "default": default}
            elif field.default_factory is dataclasses.MISSING:
                required.append(field.name)
            properties[field.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    doc = inspect.getdoc(tp)
    if doc and not (dataclasses.is_dataclass(tp) and doc.startswith(getattr(tp, "__name__", "") + "(")) and not _is_typeddict(tp):
        schema["description"] = doc
    return schema


def _strip_required(hint: Any) -> Any:
    wrappers = [typing.Required, typing.NotRequired]
    if hasattr(typing, "ReadOnly"):
        wrappers.append(typing.ReadOnly)
    origin = get_origin(hint)
    if origin is not None and origin in wrappers:
        return _strip_required(get_args(hint)[0])
    return hint


def params_schema(
    parameters: list[inspect.Parameter], hints: dict[str, Any], allow_extra: bool
) -> dict[str, Any]:
    """The object schema of a function's keyword parameters."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in parameters:
        hint = hints.get(p.name, Any)
        try:
            prop = schema_of(hint)
        except SchemaError as e:
            raise SchemaError(f"parameter `{p.name}`: {e}") from None
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            default = _default_value(p.default)
            if _jsonable(default):
                prop = {**prop, "default": default}
        properties[p.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = bool(allow_extra)
    return schema


# ---------------------------------------------------------------------------------------
# JSON -> Python values of the annotated types


def convert(value: Any, tp: Any) -> Any:
    """`value` (JSON, already validated) as a value of type `tp`: dataclasses built, enum
    members looked up, integers made floats where a float is asked for."""
    if tp is Any or tp is object or tp is inspect.Parameter.empty or isinstance(tp, (str, typing.TypeVar)):
        return value
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Annotated:
        return convert(value, args[0])
    if origin is Union or origin is types.UnionType:
        if value is None and _NoneType in args:
            return None
        rest = [a for a in args if a is not _NoneType]
        if len(rest) == 1:
            return convert(value, rest[0])
        for member in rest:  # the first member whose schema the value fits
            try:
                if not validate(value, schema_of(member)):
                    return convert(value, member)
            except SchemaError:
                continue
        return value
    if origin is Literal:
        for a in args:
            if isinstance(a, enum.Enum) and a.value == value:
                return a
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(tp, type) and origin is None:
        return value
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable) and isinstance(value, list):
        return [convert(v, args[0]) for v in value] if args else value
    if origin in (set, collections.abc.Set) and isinstance(value, list):
        return {convert(v, args[0]) for v in value} if args else set(value)
    if origin is frozenset and isinstance(value, list):
        return frozenset(convert(v, args[0]) for v in value) if args else frozenset(value)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0]) for v in value)
        return tuple(convert(v, a) for v, a in zip(value, args))
    if tp is tuple and isinstance(value, list):
        return tuple(value)
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping) and isinstance(value, dict):
        if len(args) == 2:
            return {k: convert(v, args[1]) for k, v in value.items()}
        return value
    if _is_typeddict(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp, include_extras=True)
        return {k: convert(v, _strip_required(hints.get(k, Any))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(value, dict):
        hints = typing.get_type_hints(tp, include_extras=True)
        kwargs = {
            f.name: convert(value[f.name], hints.get(f.name, Any))
            for f in dataclasses.fields(tp)
            if f.init and f.name in value
        }
        return tp(**kwargs)
    if _is_pydantic_model(tp) and isinstance(value, dict):
        return tp.model_validate(value)
    return value


# ---------------------------------------------------------------------------------------
# A validator of the subset of JSON Schema the generator above writes (and a little more)


def _type_matches(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return False


def _describe(value: Any) -> str:
    text = json.dumps(value, default=repr)
    if len(text) > 80:
        text = text[:77] + "..."
    kind = _json_type_of(value) or ("array" if isinstance(value, list) else "object")
    return f"{kind} {text}"


def _at(path: str) -> str:
    return f"`{path}`" if path else "the params"


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def validate(value: Any, schema: Any, path: str = "", root: Any = None) -> list[str]:
    """Every way `value` misses `schema`, each with its place (empty when it fits)."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{_at(path)}: no value is allowed here"]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        ref = schema["$ref"]
        target: Any = root
        if isinstance(ref, str) and ref.startswith("#"):
            for part in [p for p in ref[1:].split("/") if p]:
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return validate(value, target, path, root)
        return []
    errors: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_type_matches(value, k) for k in kinds):
            return [f"{_at(path)}: expected {' or '.join(kinds)}, found {_describe(value)}"]
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        choices = ", ".join(json.dumps(e) for e in schema["enum"])
        errors.append(f"{_at(path)}: {json.dumps(value, default=repr)} is not one of {choices}")
    if "const" in schema and not _json_equal(value, schema["const"]):
        errors.append(f"{_at(path)}: must be {json.dumps(schema['const'])}")
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        results = [validate(value, s, path, root) for s in options]
        fitting = sum(1 for r in results if not r)
        if fitting == 0:
            errors.append(f"{_at(path)}: {_describe(value)} fits none of the allowed schemas ({'; '.join(r[0] for r in results if r)})")
        elif "oneOf" in schema and fitting > 1:
            errors.append(f"{_at(path)}: fits more than one of the allowed schemas")
    for sub in schema.get("allOf", []):
        errors.extend(validate(value, sub, path, root))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{_at(path)}: {value} is less than the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{_at(path)}: {value} is more than the maximum {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{_at(path)}: {value} is not more than {schema['exclusiveMinimum']}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errors.append(f"{_at(path)}: {value} is not less than {schema['exclusiveMaximum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{_at(path)}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{_at(path)}: longer than {schema['maxLength']} characters")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{_at(path)}: missing required field `{key}`")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub_path = f"{path}.{key}" if path else str(key)
            if key in props:
                errors.extend(validate(item, props[key], sub_path, root))
            elif extra is False:
                allowed = ", ".join(f"`{k}`" for k in props) or "none"
                errors.append(f"{_at(path)}: unknown field `{key}` (allowed: {allowed})")
            elif isinstance(extra, dict):
                errors.extend(validate(item, extra, sub_path, root))
    if isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        items = schema.get("items", True)
        for i, item in enumerate(value):
            sub_path = f"{path}[{i}]"
            if i < len(prefix):
                errors.extend(validate(item, prefix[i], sub_path, root))
            else:
                errors.extend(validate(item, items, sub_path, root))
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{_at(path)}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{_at(path)}: more than {schema['maxItems']} items")
        if schema.get("uniqueItems"):
            seen: list[str] = []
            for item in value:
                key = json.dumps(item, sort_keys=True, default=repr)
                if key in seen:
                    errors.append(f"{_at(path)}: items are not unique")
                    break
                seen.append(key)
    return errors
