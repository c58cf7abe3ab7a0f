"""OpenAPI descriptions of the msgspec bodies the routes parse by hand."""

from __future__ import annotations

from typing import Any

import msgspec

from omega.protocol import BINARY_MEDIA_TYPE

__all__ = ["body_doc", "message_components", "reply_doc"]

_REF = "#/components/schemas/{name}"


def message_components(types: list[type[msgspec.Struct]]) -> dict[str, Any]:
    """JSON Schemas of ``types`` and everything they reference, for ``components.schemas``."""
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    return components


def _content(name: str) -> dict[str, Any]:
    ref = {"$ref": _REF.format(name=name)}
    return {
        BINARY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": ref},
    }


def body_doc(name: str, *, required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": _content(name)}}


def reply_doc(name: str, status: int = 200, description: str = "OK") -> dict[int | str, Any]:
    return {status: {"description": description, "content": _content(name)}}
