"""What the OpenAPI documents of the constellation and the helper say beyond FastAPI's own.

The routes parse their bodies by hand (binary frames or JSON, both decoded by msgspec),
so the bodies, their replies and every problem a route answers with are described here:
``schemathesis`` checks each live server against its document in CI
(``tests/constellation/test_constellation_fuzz.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import FastAPI

from omega.constellation.problems import PROBLEM_MEDIA_TYPE, problem_title
from omega.protocol import BINARY_MEDIA_TYPE

__all__ = [
    "body_doc",
    "document_components",
    "json_body_doc",
    "json_reply_doc",
    "media_body_doc",
    "media_reply_doc",
    "problem_responses",
    "reply_doc",
]

_REF = "#/components/schemas/{name}"
#: Standard base64 with padding, as msgspec decodes a ``bytes`` field from JSON.
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _content(name: str) -> dict[str, Any]:
    """The message ``name`` in a binary frame (``omega.protocol.codec``: header, checksum,
    msgpack, maybe zstd) or as JSON: one shape, two encodings."""
    return {BINARY_MEDIA_TYPE: {"schema": _ref(name)}, "application/json": {"schema": _ref(name)}}


def body_doc(name: str, *, required: bool = True) -> dict[str, Any]:
    """A request body: the message ``name`` as a binary frame or as JSON."""
    return {"requestBody": {"required": required, "content": _content(name)}}


def json_body_doc(name: str) -> dict[str, Any]:
    """A request body in JSON only."""
    return media_body_doc("application/json", name)


def media_body_doc(media: str, name: str) -> dict[str, Any]:
    """A request body: the JSON Schema ``name`` in the one encoding ``media``."""
    return {"requestBody": {"required": True, "content": {media: {"schema": _ref(name)}}}}


def reply_doc(name: str, status: int = 200, description: str = "OK") -> dict[int | str, Any]:
    """A reply: the message ``name`` as a binary frame or as JSON (as the request was)."""
    return {status: {"description": description, "content": _content(name)}}


def json_reply_doc(name: str, status: int = 200, description: str = "OK") -> dict[int | str, Any]:
    return media_reply_doc("application/json", name, status, description)


def media_reply_doc(
    media: str, name: str, status: int = 200, description: str = "OK"
) -> dict[int | str, Any]:
    """A reply: the JSON Schema ``name`` in the one encoding ``media``."""
    return {status: {"description": description, "content": {media: {"schema": _ref(name)}}}}


def problem_responses(*statuses: int) -> dict[int | str, Any]:
    """The problem answers a route may give, each an RFC 9457 ``ProblemDetail``."""
    content = {PROBLEM_MEDIA_TYPE: {"schema": _ref("ProblemDetail")}}
    return {s: {"description": problem_title(s), "content": content} for s in statuses}


def document_components(app: FastAPI, types: list[Any]) -> None:
    """Add the JSON Schemas of msgspec ``types`` (and what they reference) to ``app``'s
    OpenAPI components, and drop FastAPI's 422 validation body: the problem handlers
    answer a bad parameter with a 400 problem, which the routes document."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _drop_fastapi_validation(schema)
            _, components = msgspec.json.schema_components(types, ref_template=_REF)
            for component in components.values():
                _tag_optional(component)
                _wire_formats(component)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _tag_optional(component: dict[str, Any]) -> None:
    """A message's ``msg`` tag is optional in a request: each route decodes one message
    type, so msgspec checks the tag only when it is there (answers always carry it)."""
    if "msg" in component.get("properties", {}) and "msg" in component.get("required", []):
        required = [name for name in component["required"] if name != "msg"]
        if required:
            component["required"] = required
        else:
            del component["required"]


def _wire_formats(node: Any) -> None:
    """What msgspec's schema leaves out: which strings decode as base64 ``bytes``, and
    that an integer is a 64-bit one (msgpack and msgspec carry no larger)."""
    if isinstance(node, dict):
        if node.get("contentEncoding") == "base64":
            node["pattern"] = _BASE64
        if node.get("type") == "integer":
            node.setdefault("format", "int64")
            node.setdefault("minimum", -(2**63))
            node.setdefault("maximum", 2**63 - 1)
        for value in node.values():
            _wire_formats(value)
    elif isinstance(node, list):
        for value in node:
            _wire_formats(value)


def _drop_fastapi_validation(schema: dict[str, Any]) -> None:
    fastapi_422 = _ref("HTTPValidationError")
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            if answer.get("content", {}).get("application/json", {}).get("schema") == fastapi_422:
                del operation["responses"]["422"]
    schemas = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
