"""``omega bench cowatch``: what private co-watch costs, measured, and what a new TV pulls.

Three parts, each real:

- **STAR costs** (``omega.protocol.cowatch``): a TV's OPRF round (blind, both servers'
  evaluations, unblind) and report (make, seal), each server's work per report, the
  constellation's recovery per tag, and the bytes on the wire;
- **Poplar, estimated**: two-server heavy hitters over the pair domain (2^27 for a
  9,742-title catalog) evaluate each report's DPF at two children of every surviving
  prefix, level by level. The figure multiplies the DPF's measured cost per tree node
  (``omega.protocol.dpf.full_eval`` over the catalog) by the nodes the released table's
  prefixes need per report — a lower bound: it leaves out the per-level sketch checks and
  the 27 rounds of requests between the servers;
- **A new TV's download**: the k-anonymous table a fleet of the dataset's viewers would
  release (ordered pairs within ``window`` steps, ≥ ``k`` distinct viewers, top ``top``
  neighbours per title, counts quantised), put into a real constellation store, and pulled
  by a new TV through the real app (sealed answers, 5 KB budget): total bytes, answers,
  syncs — for several fleet sizes (subsets of the viewers) and for a full table (every
  title with ``top`` neighbours: what a large fleet tends to).
"""

from __future__ import annotations

import asyncio
import csv
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import SecretStr

from omega.errors import InputError
from omega.protocol import dpf, oprf
from omega.protocol.cowatch import (
    Share,
    make_report,
    open_report,
    pair_input,
    quantise,
    recover,
    seal_report,
)

if TYPE_CHECKING:
    from omega.storage import Storage

__all__ = ["cowatch_table", "run_cowatch_bench"]

Table = dict[int, list[tuple[int, int]]]


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 4)


def _timed(job: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        job()
        samples.append(time.perf_counter() - start)
    return _ms(samples)


def star_costs(n: int = 200, k: int = 3) -> dict[str, Any]:
    """Median milliseconds of each step, and the bytes a report and an OPRF point take."""
    k1, k2, leader = oprf.new_key(), oprf.new_key(), X25519PrivateKey.generate()
    data = pair_input(123, 4567)
    blinded = oprf.blind(data)
    half = oprf.evaluate(k1, blinded.point)
    whole = oprf.evaluate(k2, half)
    r = oprf.finalize(blinded, whole)
    sealed = [seal_report(make_report(r, 123, 4567, k=k), leader.public_key()) for _ in range(k)]
    report, shares = sealed[0], [open_report(x, leader) for x in sealed]
    return {
        "tv_blind_ms": _timed(lambda: oprf.blind(data), n),
        "tv_unblind_ms": _timed(lambda: oprf.finalize(blinded, whole), n),
        "tv_make_seal_ms": _timed(
            lambda: seal_report(make_report(r, 123, 4567, k=k), leader.public_key()), n
        ),
        "server_oprf_eval_ms": _timed(lambda: oprf.evaluate(k1, blinded.point), n),
        "leader_open_ms": _timed(lambda: open_report(report, leader), n),
        "leader_recover_per_tag_ms": _timed(lambda: recover(report.tag, shares, k=k), n),
        "report_bytes": len(report.tag) + len(report.sealed),
        "oprf_point_bytes": oprf.POINT_BYTES,
    }


def _dpf_ns_per_node(catalog: int = 9742, n: int = 20) -> float:
    bits = (catalog - 1).bit_length()
    keys = dpf.gen(5, bits)
    seconds = _timed(lambda: dpf.full_eval(0, keys.seed0, keys.public, catalog), n) / 1e3
    return float(seconds / (1 << (bits + 1)) * 1e9)


def poplar_estimate(table_pairs: list[tuple[int, int]], catalog: int) -> dict[str, Any]:
    """Per-report DPF nodes a Poplar-style search needs to find ``table_pairs``, and what
    they cost at the DPF's measured speed here."""
    bits = 2 * (catalog - 1).bit_length()
    codes = sorted({(a << (bits // 2)) | b for a, b in table_pairs})
    nodes = 0
    for level in range(1, bits + 1):
        parents = len({c >> (bits - level + 1) for c in codes}) if level > 1 else 1
        nodes += 2 * parents
    ns = _dpf_ns_per_node(catalog)
    return {
        "pair_domain_bits": bits,
        "dpf_ns_per_node": round(ns, 2),
        "nodes_per_report": nodes,
        "ms_per_report_per_server": round(nodes * ns / 1e6, 2),
        "levels_each_a_server_round_trip": bits,
    }


def cowatch_table(
    ratings: Path,
    *,
    fraction: float = 1.0,
    k: int = 3,
    top: int = 20,
    window: int = 5,
    seed: int = 0,
) -> tuple[Table, int, int]:
    """The table a fleet of ``fraction`` of the dataset's viewers releases; with the
    number of viewers and of pairs released."""
    if not ratings.is_file():
        raise InputError(f"no ratings file at {ratings} (give the dataset's directory)")
    history: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with ratings.open(newline="") as f:
        for row in csv.DictReader(f):
            history[row["userId"]].append((int(row["timestamp"]), row["movieId"]))
    users = sorted(history)
    random.Random(seed).shuffle(users)
    users = users[: max(1, round(len(users) * fraction))]
    positions: dict[str, int] = {}
    tvs: dict[tuple[int, int], int] = defaultdict(int)
    for user in users:
        titles = [positions.setdefault(m, len(positions)) for _, m in sorted(history[user])]
        seen = {
            (a, b) for i, a in enumerate(titles) for b in titles[i + 1 : i + 1 + window] if a != b
        }
        for pair in seen:
            tvs[pair] += 1
    released: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (a, b), count in tvs.items():
        if count >= k:
            released[a].append((b, count))
    table = {
        a: [(b, quantise(c)) for b, c in sorted(v, key=lambda p: (-p[1], p[0]))[:top]]
        for a, v in released.items()
    }
    return table, len(users), sum(len(v) for v in released.values())


async def _download(table: Table) -> dict[str, Any]:
    """A new TV pulling ``table`` from a real in-process constellation (sealed answers)."""
    from omega.clock import ManualClock
    from omega.constellation import create_app
    from omega.constellation.settings import Settings
    from omega.storage import open_storage
    from omega.sync import AsgiTransport

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(
            data_dir=data,
            admin_token=SecretStr("bench-admin-token-0123456789"),
            federation_interval=0,
            rate_limit=1_000_000,
            allow_unattested=True,
            registration_rate_limit=0,
            gc_freeze=False,
        )
        async with AsgiTransport(create_app(settings, clock=ManualClock())) as transport:
            store = open_storage(f"sqlite:///{data / 'constellation.db'}")
            try:
                _fill(store, table)
            finally:
                store.close()
            return await _pull_all(transport)


def _fill(store: Storage, table: Table) -> None:
    """Put ``table`` into the store as a round would (one fold; tags stand for pairs)."""
    from omega.federation.cowatch import Ranking
    from omega.storage.cowatch import StoredPair

    def resolve(tag: bytes, shares: list[Share], known: object) -> StoredPair:
        a, i = int.from_bytes(tag[:4], "big"), int.from_bytes(tag[4:8], "big")
        b, count = table[a][i]
        return StoredPair(a, b, 1, count)

    points = [
        (a.to_bytes(4, "big") + i.to_bytes(4, "big") + bytes(8), Share(1, 1, b""))
        for a, row in table.items()
        for i in range(len(row))
    ]

    # the counts are quantised already (quantising again keeps them) and rows are ≤ 200
    store.cowatch.fold(points, resolve=resolve, rank=Ranking(200), now=0.0)


async def _pull_all(transport: Any, max_pages: int = 8) -> dict[str, Any]:
    """Register, then pull (``max_pages`` answers a sync, as ``SyncClient``) until done."""
    import secrets

    from omega.protocol import codec
    from omega.protocol.messages import (
        CowatchCursor,
        PullRequest,
        Registration,
        RegistrationResponse,
        SyncRequest,
    )
    from omega.sync.replies import decode_reply, open_sealed, read_sync_reply

    binary = {"Content-Type": codec.BINARY_MEDIA_TYPE, "Accept": codec.BINARY_MEDIA_TYPE}
    answer = await transport.request(
        "POST", "/api/omega/viewers", body=codec.encode(Registration()), headers=binary
    )
    reg = decode_reply(answer, RegistrationResponse)
    auth = binary | {"Authorization": f"Bearer {reg.access_token}"}
    cursor, sizes, rows, answers_in_sync, syncs = CowatchCursor(), [], 0, 0, 1
    while True:
        pull = PullRequest(viewer_id=reg.viewer_id, cowatch=cursor)
        body = codec.encode(SyncRequest(pull=pull, nonce=secrets.token_bytes(16)))
        answer = await transport.request("POST", "/api/omega/sync", body=body, headers=auth)
        open_sealed(answer, request=body, trusted=reg.release_keys)
        reply = read_sync_reply(answer, batch_id=None).pull
        sizes.append(len(answer.body))
        if reply.cowatch is not None:
            rows += len(reply.cowatch.rows)
            cursor = reply.cowatch.cursor
        if not reply.more:
            break
        answers_in_sync += 1
        if answers_in_sync == max_pages:
            syncs, answers_in_sync = syncs + 1, 0
    return {
        "rows": rows,
        "bytes_total": sum(sizes),
        "answers": len(sizes),
        "syncs": syncs,
        "answer_bytes_max": max(sizes),
        "answer_bytes_median": statistics.median(sizes),
    }


def _full_table(catalog: int, top: int, seed: int) -> Table:
    rng = random.Random(seed)
    return {
        a: sorted(
            ((rng.randrange(catalog), quantise(rng.randrange(3, 400))) for _ in range(top)),
            key=lambda p: -p[1],
        )
        for a in range(catalog)
    }


def run_cowatch_bench(
    *,
    dataset: Path | None,
    fractions: tuple[float, ...] = (0.25, 0.5, 1.0),
    k: int = 3,
    top: int = 20,
    window: int = 5,
    seed: int = 0,
    catalog: int = 9742,
) -> dict[str, Any]:
    """Every figure of the module docstring, as one JSON-able dict."""
    result: dict[str, Any] = {"star": star_costs(k=k), "fleets": []}
    table_pairs: list[tuple[int, int]] = []
    if dataset is not None:
        for fraction in fractions:
            table, viewers, pairs = cowatch_table(
                dataset / "ratings.csv", fraction=fraction, k=k, top=top, window=window, seed=seed
            )
            row = {"viewers": viewers, "pairs_released": pairs, "titles_with_rows": len(table)}
            row |= asyncio.run(_download(table))
            result["fleets"].append(row)
            if fraction == max(fractions):
                table_pairs = [(a, b) for a, v in table.items() for b, _ in v]
    full = asyncio.run(_download(_full_table(catalog, top, seed)))
    result["full_table"] = {"titles_with_rows": catalog, "neighbours": top} | full
    if table_pairs:
        result["poplar"] = poplar_estimate(table_pairs, catalog)
    return result
