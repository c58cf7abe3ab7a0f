"""The messages without their msgspec constraints, to say what a refused body broke.

A decoder of the constrained messages (``messages``) stops at the first bound broken
and says so in msgspec's words; ``validation`` names the field and the rule in Omega's,
and tells a broken rule (:class:`~omega.errors.InvalidMessageError`) from bytes that are
no message at all. So the codec decodes a refused body once more into these twins — the
same Structs, tags and defaults, without a single ``Meta`` — makes the real messages of
them (a Struct's constructor checks no constraint) and hands those to ``validation``.
Only refused bodies come here; the twins are built once, on first use.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Annotated, Any, Literal, Union

import msgspec

__all__ = ["real", "twin"]

#: Each twin Struct's message type.
_REAL: dict[type, type[msgspec.Struct]] = {}


@functools.cache
def twin(kind: Any) -> Any:
    """``kind`` (a message type, a union of them, or any type inside one) with every
    constraint dropped."""
    origin = typing.get_origin(kind)
    if origin is Annotated:
        return twin(typing.get_args(kind)[0])
    if origin is None:
        is_struct = isinstance(kind, type) and issubclass(kind, msgspec.Struct)
        return _struct_twin(kind) if is_struct else kind
    if origin is Literal:
        return kind
    args = tuple(a if a is Ellipsis else twin(a) for a in typing.get_args(kind))
    if origin in (Union, types.UnionType):
        return Union[args]  # noqa: UP007 (built from a tuple)
    return origin[args]


def _struct_twin(kind: type[msgspec.Struct]) -> type[msgspec.Struct]:
    hints = typing.get_type_hints(kind, include_extras=True)
    config = kind.__struct_config__
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(kind):
        if field.encode_name != field.name:
            raise TypeError(f"{kind.__name__}.{field.name}: renamed fields have no twin")
        lenient = twin(hints[field.name])
        if field.default is not msgspec.NODEFAULT:
            fields.append((field.name, lenient, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append(
                (field.name, lenient, msgspec.field(default_factory=field.default_factory))
            )
        else:
            fields.append((field.name, lenient))
    made = msgspec.defstruct(
        kind.__name__,
        fields,
        module=__name__,
        kw_only=True,
        frozen=config.frozen,
        array_like=config.array_like,
        tag=config.tag,
        tag_field=config.tag_field,
        forbid_unknown_fields=config.forbid_unknown_fields,
        omit_defaults=config.omit_defaults,
    )
    _REAL[made] = kind
    return made


def real(value: Any) -> Any:
    """``value`` decoded into twins, as the messages themselves (unchecked)."""
    kind = _REAL.get(type(value))
    if kind is not None:
        return kind(**{name: real(getattr(value, name)) for name in value.__struct_fields__})
    if type(value) is list:
        return [real(v) for v in value]
    if type(value) is tuple:
        return tuple(real(v) for v in value)
    if type(value) is dict:
        return {k: real(v) for k, v in value.items()}
    return value
