"""The rules a message's types cannot say, checked after a constrained decode.

The sync path's messages carry their bounds as msgspec constraints (``messages``): a
decoder checks them in C while it builds the objects. :func:`rules_ok` checks what is
left, the rules across fields — a pattern names as many cells as its task wants, ids are
unique within a message, a push carries at most ``MAX_PATTERNS_PER_PUSH`` patterns in
all, a report's value lies below its bucket count, a sync names one viewer, key ids and
vectors are well formed — and gives every other message the whole of ``validation``.

It answers True or False and builds no error: a path string for every field of every
pattern would cost more than the checks. On False the codec decodes the body again
without constraints (``_lenient``) and ``validation`` names the broken rule. Only a
message a constrained decoder built may come here: a Struct built in Python has been
checked by nothing (the codec decodes what it encodes back first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from omega.errors import RemoteProtocolError
from omega.protocol._limits import CELLS_BY_TASK, KID_PATTERN, MAX_PATTERNS_PER_PUSH
from omega.protocol.messages import (
    ConsolidatedPattern,
    Message,
    Pattern,
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    SyncRequest,
    SyncResponse,
)
from omega.protocol.validation import validate, validate_vector

__all__ = ["rules_ok"]

_KID = re.compile(KID_PATTERN)


def rules_ok(msg: Message) -> bool:
    """Whether ``msg``, decoded with the constraints, keeps every protocol rule."""
    return _RULES.get(type(msg), _validates)(msg)


def _validates(msg: Any) -> bool:
    try:
        validate(msg)
    except RemoteProtocolError:
        return False
    return True


def _cells_fit(patterns: Sequence[Pattern] | Sequence[ConsolidatedPattern]) -> bool:
    arity = CELLS_BY_TASK  # every task is known: the type is a Literal
    for p in patterns:  # noqa: SIM110 (a loop costs half what all() over a generator does)
        if len(p.cells) != arity[p.task]:
            return False
    return True


def _push(m: PushRequest) -> bool:
    added, updated, removed = m.added, m.updated, m.removed
    patterns = len(added) + len(updated)
    if patterns > MAX_PATTERNS_PER_PUSH or not (_cells_fit(added) and _cells_fit(updated)):
        return False
    ids = {p.id for p in added}
    ids.update([p.id for p in updated])
    ids.update(removed)
    if len(ids) != patterns + len(removed):
        return False
    return all(r.value < r.buckets for r in m.reports)


def _pull_response(m: PullResponse) -> bool:
    patterns, removed = m.patterns, m.removed
    if not _cells_fit(patterns):
        return False
    if patterns or removed:
        ids = {p.id for p in patterns}
        ids.update(removed)
        if len(ids) != len(patterns) + len(removed):
            return False
    for update in m.content:
        try:
            validate_vector(update.embedding)
        except RemoteProtocolError:
            return False
    return True


def _sync(m: SyncRequest) -> bool:
    push = m.push
    if push is not None and (push.viewer_id != m.pull.viewer_id or not _push(push)):
        return False
    return all(_KID.fullmatch(kid) for kid in m.release_kids)


def _sync_response(m: SyncResponse) -> bool:
    return _pull_response(m.pull)


def _nothing_across(m: Any) -> bool:
    return True


_RULES: dict[type, Callable[[Any], bool]] = {
    PushRequest: _push,
    PullRequest: _nothing_across,
    PushAck: _nothing_across,
    PullResponse: _pull_response,
    SyncRequest: _sync,
    SyncResponse: _sync_response,
}
