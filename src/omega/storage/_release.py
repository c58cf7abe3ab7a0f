"""Release rules both backends share: stamping a new version and cutting a delta."""

from __future__ import annotations

import msgspec

from omega.errors import InputError
from omega.protocol.messages import ConsolidatedPattern, Trend

__all__ = ["check_limit", "delta_cut", "stamp_release"]


def stamp_release(
    upserted: list[ConsolidatedPattern], removed: list[str], trends: list[Trend], version: int
) -> tuple[list[ConsolidatedPattern], list[Trend]]:
    """The patterns and trends of release ``version``, each carrying that version.

    Rejects a release that names one id twice, or both upserts and removes it: the
    result would depend on the order the backend applies them.
    """
    ids = [p.id for p in upserted]
    if len(set(ids)) != len(ids):
        raise InputError("a release upserts the same pattern id more than once")
    both = set(ids).intersection(removed)
    if both:
        raise InputError(f"a release both upserts and removes {sorted(both)[:5]}")
    return (
        [msgspec.structs.replace(p, version=version) for p in upserted],
        [msgspec.structs.replace(t, version=version) for t in trends],
    )


def check_limit(limit: int) -> None:
    if limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")


def delta_cut(versions: list[int], *, limit: int, since: int, current: int) -> tuple[int, int]:
    """How many of the changed patterns to send, and the cursor version to send with them.

    ``versions`` are the versions of the first ``limit + 1`` patterns changed after
    ``since``, in delivery order. If they all fit, the answer is complete up to
    ``current``. Otherwise the first ``limit`` go out and the cursor is the last version
    that is completely inside them: one below the version of the first pattern left out.
    """
    if len(versions) <= limit:
        return len(versions), current
    return limit, max(since, versions[limit] - 1)
