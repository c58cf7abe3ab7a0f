"""Adopting the constellation's codebook (``GET /api/omega/codebook``).

Patterns name content by codebook cell, so a device must hold the server's centroids
before its pushes mean anything there. The server may name a codebook as it likes; the
brain names it by a hash of its centroids, so the mapping between the two is recorded
and pushes carry the server's name.

The document comes sealed by a release key (as releases do): swapped centroids would
move every pattern to other titles, so a document that is not sealed by a trusted key
is refused (:class:`SignatureError`) before anything of it is used. The seal covers the
codebook's ``sequence`` too (higher for each later publication), and the brain keeps
the sequence of the newest codebook it adopted: an older document, however genuinely
sealed (a cache or a man in the middle replaying it), is refused with nothing changed.
"""

from __future__ import annotations

import asyncio

import msgspec

from omega.brain import DIM, Brain
from omega.brain.codebook import centroids_from_f16_bytes
from omega.errors import InputError, RemoteProtocolError, SignatureError
from omega.protocol import MAX_VERSION, signing
from omega.sync.cursors import CatalogOrder, CodebookLabel, ReleasePins
from omega.sync.releases import ReleaseTrust
from omega.sync.transport import Response

__all__ = ["CodebookDocument", "fetch_codebook"]


class CodebookDocument(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON the server answers with (``centroids_f16``: base64 of k·dim f16, LE).

    The same shape as ``omega.constellation.routes.manage.CodebookDocument``; declared
    here so a TV does not import the server.
    """

    codebook_id: str
    dim: int
    k: int
    centroids_f16: bytes
    #: The catalog's public item ids (the domain of popularity reports); may be empty.
    item_ids: list[str] = []
    #: Its place in the order of publications: higher for each later one.
    sequence: int = 0
    #: The release key's seal over ``signing.codebook_digest`` of the fields above.
    seal: signing.Seal | None = None


async def fetch_codebook(brain: Brain, answer: Response, trust: ReleaseTrust) -> bool:
    """Adopt the codebook in ``answer`` unless the brain already holds it; its seal is
    checked against ``trust`` first (keys it endorses are pinned)."""
    try:
        doc = msgspec.json.decode(answer.body, type=CodebookDocument)
    except msgspec.DecodeError as exc:
        raise RemoteProtocolError(f"malformed codebook document: {exc}") from None
    if trust.learn(_check_seal(doc, trust)):
        await asyncio.to_thread(ReleasePins.save, brain, trust.pins())
    if doc.dim != DIM or doc.k < 1 or len(doc.centroids_f16) != doc.k * doc.dim * 2:
        raise RemoteProtocolError(
            f"codebook {doc.codebook_id!r} is {doc.k}x{doc.dim} with "
            f"{len(doc.centroids_f16)} bytes; this brain needs {DIM}-dim f16 centroids"
        )
    _check_sequence(brain, doc)
    if CodebookLabel.adopted(brain, doc.codebook_id):
        if doc.item_ids and not CatalogOrder.same(brain, doc.item_ids):
            await asyncio.to_thread(CatalogOrder.record, brain, doc.item_ids)
        held = CodebookLabel.server_id(brain), CodebookLabel.sequence(brain)
        if (doc.codebook_id, doc.sequence) != held:  # e.g. the brain's own, now numbered
            await asyncio.to_thread(CodebookLabel.record, brain, doc.codebook_id, doc.sequence)
        return False
    centroids = centroids_from_f16_bytes(doc.centroids_f16, doc.dim)
    try:
        await asyncio.to_thread(brain.set_codebook, centroids)
    except InputError as exc:
        raise RemoteProtocolError(f"codebook {doc.codebook_id!r} is unusable: {exc}") from None
    await asyncio.to_thread(CodebookLabel.record, brain, doc.codebook_id, doc.sequence)
    await asyncio.to_thread(CatalogOrder.record, brain, doc.item_ids)
    return True


def _check_sequence(brain: Brain, doc: CodebookDocument) -> None:
    """Refuse a codebook older than the newest one adopted (a different one of the same
    sequence cannot come from one server's history either)."""
    held = CodebookLabel.sequence(brain)
    other = doc.codebook_id != CodebookLabel.server_id(brain)
    if doc.sequence < held or (doc.sequence == held and held and other):
        raise SignatureError(
            f"codebook {doc.codebook_id!r} is publication {doc.sequence}, but this device "
            f"holds publication {held} ({CodebookLabel.server_id(brain)!r}): an older "
            "codebook, replayed; refused, nothing changed"
        )


def _check_seal(doc: CodebookDocument, trust: ReleaseTrust) -> list[signing.Endorsement]:
    what = f"codebook {doc.codebook_id!r}"
    if doc.seal is None:
        raise SignatureError(
            f"{what} is not signed: this device adopts only a codebook signed by a release "
            "key it pinned"
        )
    if not 0 <= doc.sequence <= MAX_VERSION:
        raise RemoteProtocolError(f"{what}: sequence {doc.sequence} is out of range")
    digest = signing.codebook_digest(
        doc.codebook_id, doc.dim, doc.k, doc.centroids_f16, doc.item_ids, sequence=doc.sequence
    )
    return signing.verify_document(doc.seal, digest, trusted=trust.keys(), what=what)
