"""Typed settings: a dataclass per settings block, each field with its default and a one-line doc
(`setting`). The JSON schema of a block is generated from the class (`block_schema`), so the
schema, the checker and the code that reads the settings cannot drift apart."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Literal

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


REQUIRED = dataclasses.MISSING  # `setting(REQUIRED, doc)`: a key the config must give
OPTIONAL = object()  # `setting(OPTIONAL, doc)`: a key that may be left out, with no default (None)
_NO_INERT = object()


def setting(default: Any, doc: str, *, inert: Any = _NO_INERT, **schema: Any) -> Any:
    """A dataclass field with its default and a one-line description (shown in the schema).
    ``schema``: JSON-schema keywords beyond the type (``minimum=1``, ``properties=...``).
    A list or dict default is copied for each instance; `REQUIRED` makes the key required.
    ``inert``: for a setting added to a kind that already has results, the value at which the code
    does what it did before the setting existed. While the setting holds it as its default, a job's
    params leave it out (`inert_at_default`), so adding it reruns nothing; another value, or a
    default moved away from it, reruns like any change."""
    meta = {"doc": doc, "schema": schema}
    if inert is not _NO_INERT:
        meta["inert"] = inert
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    if default is OPTIONAL:
        return dataclasses.field(default=None, metadata={**meta, "optional": True})
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def has_default(f: dataclasses.Field) -> bool:
    return not is_required(f) and not f.metadata.get("optional")


def defaults(cls) -> dict:
    """Every field's default (required and optional fields have none and are left out)."""
    return {f.name: field_default(f) for f in dataclasses.fields(cls) if has_default(f)}


def inert_at_default(cls, values: dict) -> dict:
    """`values` less the settings of `cls` that hold their inert value, it being their default:
    what a job's params keep (see `setting`)."""
    idle = {
        f.name: f.metadata["inert"]
        for f in dataclasses.fields(cls)
        if "inert" in f.metadata and has_default(f) and field_default(f) == f.metadata["inert"]
    }
    return {k: v for k, v in values.items() if not (k in idle and v == idle[k])}


def check_literals(obj) -> None:
    """Each ``Literal``-typed field of the settings dataclass ``obj`` holds one of its values (else a
    ValueError naming them): the schema's enum, enforced for callers that skip the schema."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        tp, value = hints[f.name], getattr(obj, f.name)
        if typing.get_origin(tp) is Literal and value not in (valid := typing.get_args(tp)):
            raise ValueError(f"{f.name} '{value}' is not one of {list(valid)}")


def resolve(cls, cfg, section: str) -> dict:
    """`cfg` (a config section, or None) with the defaults of `cls` filled in; an unknown key
    raises a ValueError naming the valid ones."""
    cfg = dict(cfg or {})
    valid = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(cfg) - set(valid))
    if unknown:
        raise ValueError(f"unknown {section} config keys {unknown}; valid keys: {valid}")
    return {**defaults(cls), **cfg}


def _type_schema(tp) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        parts = [_type_schema(a) for a in args if a is not type(None)]
        schema = parts[0] if len(parts) == 1 else {"anyOf": parts}
        if type(None) in args:
            if "type" in schema:
                schema = {**schema, "type": [schema["type"], "null"]}
            elif "enum" in schema:
                schema = {**schema, "enum": [*schema["enum"], None]}
            else:
                schema = {"anyOf": [*schema["anyOf"], {"type": "null"}]}
        return schema
    if origin in (tuple, list):
        item = args[0] if args else Any
        out = {"type": "array"}
        if item is not Any and item is not Ellipsis:
            out["items"] = _type_schema(item)
        if origin is tuple and args and Ellipsis not in args:
            out["minItems"] = out["maxItems"] = len(args)
        return out
    if tp is float:  # YAML writes 1 for 1.0
        return {"type": "number"}
    if tp is dict or origin is dict:
        return {"type": "object"}
    if tp in _JSON_TYPES:
        return {"type": _JSON_TYPES[tp]}
    raise TypeError(f"no JSON schema for settings type {tp!r}")


def _json_default(v):
    return list(v) if isinstance(v, tuple) else v


def block_schema(cls, description: str = "") -> dict:
    """The JSON schema of a settings dataclass: one property per field (type, default, doc)."""
    hints = typing.get_type_hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        if "doc" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} has no doc: declare it with settings.setting(default, doc)")
        props[f.name] = {**_type_schema(hints[f.name]), **f.metadata.get("schema", {})}
        if has_default(f):
            props[f.name]["default"] = _json_default(field_default(f))
        props[f.name]["description"] = f.metadata["doc"]
    required = [f.name for f in dataclasses.fields(cls) if is_required(f)]
    out = {"type": "object", **({"required": required} if required else {})}
    out.update({"properties": props, "additionalProperties": False})
    return {"description": description, **out} if description else out
