"""What the API fuzz tests share: schemathesis's settings, the tokens each operation's
security scheme asks for, and the msgpack bodies of the helper's calls.

A fixed budget, a fixed seed, derandomised: the same cases every run, so CI is stable
and a failure reproduces. Every built-in check runs. One is told what the API promises:
a request that matches the schema may still break a rule the schema cannot state (a
pattern's cell count by task, k·dim·2 centroid bytes, a bound) and is then refused with
a 422 problem naming the rule; a 400 for schema-valid data stays a failure.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import schemathesis

from omega.protocol import BINARY_MEDIA_TYPE, aggregation, codec, cowatch_wire, messages
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE

#: Cases per operation in the fuzzing phase (the examples and coverage phases add theirs).
MAX_EXAMPLES = 25
SEED = 15

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
        # Schema-valid data may still be refused for what a schema cannot say (a missing
        # token, another viewer's id, a rule, the rate limit); never with a 5xx, which
        # `not_a_server_error` fails in any case (tests/constellation/test_constellation_fuzz.py
        # shows it failing a documented 503).
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
            }
        },
    }
)


def auth_for(case: schemathesis.Case, tokens: dict[str, str]) -> dict[str, str]:
    """The Authorization header the operation's declared security scheme asks for."""
    for requirement in case.operation.definition.raw.get("security", []):
        for scheme in requirement:
            return {"Authorization": f"Bearer {tokens[scheme]}"}
    return {}


def _msgpack(ctx: schemathesis.SerializationContext, media: str, value: Any) -> bytes:
    """``value`` as msgpack of the message type the operation documents for ``media``
    (bytes fields are base64 in the JSON Schema, bin in msgpack); data that is no such
    message (a negative case) as JSON text, which the server must refuse."""
    body = ctx.case.operation.definition.raw["requestBody"]["content"][media]
    name = body["schema"]["$ref"].rsplit("/", 1)[-1]
    kind = (
        getattr(messages, name, None)
        or getattr(cowatch_wire, name, None)
        or getattr(aggregation, name)
    )
    try:
        return msgspec.msgpack.encode(msgspec.convert(_whole_numbers(value), kind))
    except (msgspec.ValidationError, OverflowError):  # not a message msgpack can carry
        return json.dumps(value).encode()


def _whole_numbers(node: Any) -> Any:
    """JSON's 5.0 where an integer is due is the integer 5 (JSON Schema generates both);
    msgpack tells them apart, so the msgpack form of the JSON value has an int."""
    if isinstance(node, float) and node.is_integer() and -(2**63) <= node < 2**64:
        return int(node)
    if isinstance(node, list):
        return [_whole_numbers(value) for value in node]
    if isinstance(node, dict):
        return {key: _whole_numbers(value) for key, value in node.items()}
    return node


@schemathesis.serializer(MSGPACK_MEDIA_TYPE)
def _helper_body(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    return _msgpack(ctx, MSGPACK_MEDIA_TYPE, value)


@schemathesis.deserializer(MSGPACK_MEDIA_TYPE)
def _helper_answer(
    ctx: schemathesis.DeserializationContext, response: schemathesis.Response
) -> Any:
    """A msgpack answer in JSON terms (bin as base64), to check against the JSON Schema."""
    return msgspec.to_builtins(msgspec.msgpack.decode(response.content))


@schemathesis.serializer(BINARY_MEDIA_TYPE)
def _frame(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """A generated message in a binary frame, as a device sends it."""
    return codec.frame(_msgpack(ctx, BINARY_MEDIA_TYPE, value))


@schemathesis.deserializer(BINARY_MEDIA_TYPE)
def _unframe(ctx: schemathesis.DeserializationContext, response: schemathesis.Response) -> Any:
    """A binary answer in JSON terms, to check against the same JSON Schema."""
    return msgspec.to_builtins(codec.decode(response.content, max_bytes=1 << 22))
