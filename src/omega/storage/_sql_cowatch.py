"""The co-watch store's SQL, written once for both backends (``omega.storage.cowatch``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from omega.protocol import oprf
from omega.protocol.cowatch import Share
from omega.storage._release import check_limit
from omega.storage._sql import Engine, Tx
from omega.storage.cowatch import (
    CowatchFold,
    CowatchKeys,
    CowatchRow,
    CowatchStore,
    Noise,
    OprfOverBudget,
    PrivacyLedger,
    PrivacySpend,
    PrivateRelease,
    Rank,
    Resolve,
    StoredPair,
)

__all__ = ["SQLCowatchStore"]

_ELEMENT = 32
_neighbours = msgspec.msgpack.Decoder(list[tuple[int, int]])


def _b(value: int) -> bytes:
    return value.to_bytes(_ELEMENT, "big")


def _i(value: object) -> int:
    return int.from_bytes(bytes(value), "big")  # type: ignore[call-overload]


class SQLCowatchStore(CowatchStore):
    """``standing``: raises unless a viewer may contribute (registered, not revoked, not
    attested under a revoked key); checked in the OPRF charge's transaction."""

    def __init__(self, db: Engine, *, standing: Callable[[Tx, str], None]) -> None:
        self._db = db
        self._standing = standing

    def keys(self) -> CowatchKeys:
        with self._db.read() as tx:
            row = tx.row("SELECT oprf_key, hpke_key FROM cowatch_keys WHERE id = 1")
        if row is None:
            hpke = X25519PrivateKey.generate().private_bytes(
                Encoding.Raw, PrivateFormat.Raw, NoEncryption()
            )

            def make(tx: Tx) -> tuple[object, ...]:
                tx.run(
                    "INSERT INTO cowatch_keys (id, oprf_key, hpke_key) VALUES (1, ?, ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    (oprf.new_key(), hpke),
                )
                return tx.one("SELECT oprf_key, hpke_key FROM cowatch_keys WHERE id = 1")

            row = self._db.write(make)
        return CowatchKeys(oprf_key=bytes(row[0]), hpke_key=bytes(row[1]))  # type: ignore[arg-type]

    def charge_oprf(
        self, viewer_id: str, *, epoch: int, points: Sequence[bytes], bound: int
    ) -> int:
        def charge(tx: Tx) -> int:
            self._standing(tx, viewer_id)
            tx.run(
                "DELETE FROM cowatch_points WHERE viewer_id = ? AND epoch < ?", (viewer_id, epoch)
            )
            new = sum(
                tx.run(
                    "INSERT INTO cowatch_points (viewer_id, epoch, digest) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (viewer_id, epoch, digest),
                )
                for digest in {hashlib.sha256(p).digest() for p in points}
            )
            row = tx.row(
                "SELECT used FROM cowatch_usage WHERE viewer_id = ? AND epoch = ?",
                (viewer_id, epoch),
            )
            used = int(row[0]) if row else 0
            if used + new > bound:
                raise OprfOverBudget(
                    f"a TV has at most {bound} co-watch OPRF evaluations per epoch; "
                    f"{bound - used} left, {new} asked"
                )
            tx.run(
                "INSERT INTO cowatch_usage (viewer_id, epoch, used) VALUES (?, ?, ?)"
                " ON CONFLICT (viewer_id, epoch) DO UPDATE SET used = excluded.used",
                (viewer_id, epoch, used + new),
            )
            return bound - used - new

        return self._db.write(charge)

    def fold(
        self, points: list[tuple[bytes, Share]], *, resolve: Resolve, rank: Rank | None, now: float
    ) -> CowatchFold:
        return self._db.write(lambda tx: _fold(tx, points, resolve, rank, now))

    def release_private(
        self, *, noise: Noise, rank: Rank, spend: PrivacySpend, now: float, owed: bool = False
    ) -> PrivateRelease | None:
        return self._db.write(lambda tx: _release_private(tx, noise, rank, spend, now, owed))

    def unreleased_folds(self) -> int:
        with self._db.read() as tx:
            return int(tx.one("SELECT folds FROM cowatch_unreleased WHERE id = 1")[0])

    def privacy_ledger(self) -> PrivacyLedger:
        with self._db.read() as tx:
            n, epsilon, delta = tx.one(
                "SELECT count(*), coalesce(sum(epsilon), 0), coalesce(sum(delta), 0)"
                " FROM cowatch_privacy"
            )
        return PrivacyLedger(int(n), float(epsilon), float(delta))

    def version(self) -> int:
        with self._db.read() as tx:
            return int(tx.one("SELECT coalesce(max(version), 0) FROM cowatch_rows")[0])

    def rows_after(self, *, version: int, source: int, limit: int) -> list[CowatchRow]:
        check_limit(limit)
        with self._db.read() as tx:
            rows = tx.rows(
                "SELECT version, source, neighbours FROM cowatch_rows"
                " WHERE version > ? OR (version = ? AND source > ?)"
                " ORDER BY version, source LIMIT ?",
                (version, version, source, limit),
            )
        return [CowatchRow(int(v), int(s), _neighbours.decode(bytes(n))) for v, s, n in rows]

    def pending_tags(self) -> int:
        with self._db.read() as tx:
            return int(
                tx.one(
                    "SELECT count(DISTINCT tag) FROM cowatch_shares"
                    " WHERE tag NOT IN (SELECT tag FROM cowatch_pairs)"
                )[0]
            )


def _fold(
    tx: Tx, points: list[tuple[bytes, Share]], resolve: Resolve, rank: Rank | None, now: float
) -> CowatchFold:
    # First, the row a private release also locks first: folds and releases take turns
    # (PostgreSQL, READ COMMITTED), so a fold re-ranks from every pair and best count
    # committed before it, and no two folds release rows under one version.
    tx.run("UPDATE cowatch_unreleased SET folds = folds WHERE id = 1")
    stored = 0
    for tag, s in points:
        stored += tx.run(
            "INSERT INTO cowatch_shares (tag, x, y, ciphertext, received_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (tag, x) DO NOTHING",
            (tag, _b(s.x), _b(s.y), s.ciphertext, now),
        )
    sources: set[int] = set()
    rose: set[int] = set()  # sources whose best count rose: rows pointing at them may change
    changed = 0
    for tag in sorted({tag for tag, _ in points}):
        known = _pair(tx, tag)
        shares = [
            Share(_i(x), _i(y), bytes(c))
            for x, y, c in tx.rows(
                "SELECT x, y, ciphertext FROM cowatch_shares WHERE tag = ?", (tag,)
            )
        ]
        pair = resolve(tag, shares, known)
        if pair is None or pair == known:
            continue
        if rank is not None and rank.follows and pair.tvs > _best(tx, pair.a):
            rose.add(pair.a)
        tx.run(
            "INSERT INTO cowatch_pairs (tag, a, b, secret, tvs) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (tag) DO UPDATE SET tvs = excluded.tvs",
            (tag, pair.a, pair.b, _b(pair.secret), pair.tvs),
        )
        changed += 1
        sources.add(pair.a)
    version = _version(tx)
    if rank is None:
        # A private release owes only what changed: a batch handed out again (its ack was
        # lost) or one whose pairs stayed under k adds nothing, and a second release of
        # the same counts would spend ε on fresh noise over them for no new pair.
        if changed:
            tx.run("UPDATE cowatch_unreleased SET folds = folds + 1 WHERE id = 1")
        return CowatchFold(stored, changed, 0, version)
    sources |= _pointing_at(tx, rose)
    if tx.one("SELECT policy FROM cowatch_ranking WHERE id = 1")[0] != rank.policy:
        tx.run("UPDATE cowatch_ranking SET policy = ? WHERE id = 1", (rank.policy,))
        sources |= {int(a) for (a,) in tx.rows("SELECT DISTINCT a FROM cowatch_pairs")}
        sources |= {int(s) for (s,) in tx.rows("SELECT source FROM cowatch_rows")}
    rows = sum(
        _publish(tx, source, rank(_pairs_of(tx, source)), version + 1) for source in sorted(sources)
    )
    return CowatchFold(stored, changed, rows, version + 1 if rows else version)


def _release_private(
    tx: Tx, noise: Noise, rank: Rank, spend: PrivacySpend, now: float, owed: bool
) -> PrivateRelease | None:
    # First, so its row lock orders it against a concurrent fold (PostgreSQL, READ
    # COMMITTED): a fold that commits after this point counts as unreleased again. It
    # orders it against a concurrent release too: the second one re-reads the count the
    # first committed (0, unless a fold came since) and, ``owed``, stops here.
    reset = tx.run(
        "UPDATE cowatch_unreleased SET folds = 0 WHERE id = 1" + (" AND folds > 0" if owed else "")
    )
    if owed and not reset:
        return None
    pairs = [
        (int(a), int(b), int(t))
        for a, b, t in tx.rows("SELECT a, b, tvs FROM cowatch_pairs ORDER BY tag")
    ]
    counts = noise([t for _, _, t in pairs])
    kept: dict[int, list[tuple[int, int]]] = {}
    best: dict[int, int] = {}
    for (a, b, _), count in zip(pairs, counts, strict=True):
        if count is not None:
            kept.setdefault(a, []).append((b, count))
            best[a] = max(best.get(a, 0), count)
    published = {int(s) for (s,) in tx.rows("SELECT source FROM cowatch_rows")}
    version = _version(tx)
    rows = sum(
        _publish(
            tx,
            source,
            rank([(b, count, best.get(b, 0)) for b, count in kept.get(source, [])]),
            version + 1,
        )
        for source in sorted(published | kept.keys())
    )
    after = version + 1 if rows else version
    tx.run(
        "INSERT INTO cowatch_privacy (epsilon, delta, pairs, released, version, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (spend.epsilon, spend.delta, len(pairs), sum(map(len, kept.values())), after, now),
    )
    return PrivateRelease(len(pairs), sum(map(len, kept.values())), rows, after)


def _version(tx: Tx) -> int:
    return int(tx.one("SELECT coalesce(max(version), 0) FROM cowatch_rows")[0])


def _pair(tx: Tx, tag: bytes) -> StoredPair | None:
    row = tx.row("SELECT a, b, secret, tvs FROM cowatch_pairs WHERE tag = ?", (tag,))
    return None if row is None else StoredPair(int(row[0]), int(row[1]), _i(row[2]), int(row[3]))


def _best(tx: Tx, source: int) -> int:
    return int(tx.one("SELECT coalesce(max(tvs), 0) FROM cowatch_pairs WHERE a = ?", (source,))[0])


def _pointing_at(tx: Tx, targets: set[int]) -> set[int]:
    """The sources with a pair whose neighbour is one of ``targets``."""
    return {
        int(a)
        for target in sorted(targets)
        for (a,) in tx.rows("SELECT DISTINCT a FROM cowatch_pairs WHERE b = ?", (target,))
    }


def _pairs_of(tx: Tx, source: int) -> list[tuple[int, int, int]]:
    """``source``'s pairs as (neighbour, TVs, the neighbour's best TVs as a source)."""
    return [
        (int(b), int(tvs), int(best))
        for b, tvs, best in tx.rows(
            "SELECT p.b, p.tvs, coalesce((SELECT max(q.tvs) FROM cowatch_pairs q"
            " WHERE q.a = p.b), 0) FROM cowatch_pairs p WHERE p.a = ?",
            (source,),
        )
    ]


def _publish(tx: Tx, source: int, neighbours: list[tuple[int, int]], version: int) -> bool:
    """Store ``source``'s row at ``version`` if it changed (no neighbours and no row
    published: nothing to withdraw)."""
    body = msgspec.msgpack.encode(neighbours)
    old = tx.row("SELECT neighbours FROM cowatch_rows WHERE source = ?", (source,))
    if (bytes(old[0]) if old is not None else msgspec.msgpack.encode([])) == body:
        return False
    tx.run(
        "INSERT INTO cowatch_rows (source, neighbours, version) VALUES (?, ?, ?)"
        " ON CONFLICT (source) DO UPDATE SET neighbours = excluded.neighbours,"
        " version = excluded.version",
        (source, body, version),
    )
    return True
