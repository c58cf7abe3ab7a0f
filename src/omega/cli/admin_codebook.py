"""``omega admin codebook publish|show``: the content cells TVs and the constellation share.

``publish --catalog FILE`` computes the cells as the simulator does
(:func:`omega.sim.content.embed_texts` with the real MiniLM model, then
:func:`omega.brain.codebook.build_codebook`) and publishes them with the catalog's item
ids; ``publish --codebook FILE`` publishes a codebook document (what
``GET /api/omega/codebook`` answers) or a ``.npy`` array of centroids as it is.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from omega.cli._admin_client import (
    DEFAULT_SERVER,
    ServerOption,
    TokenFileOption,
    TokenOption,
    connect,
)
from omega.cli._output import JsonOption, console, emit
from omega.errors import ConfigError, InputError

__all__ = ["attach"]

codebook = typer.Typer(
    help="The codebook: content cells that patterns name instead of titles.", no_args_is_help=True
)
_NO_CODEBOOK = (
    "no codebook has been published yet: publish one with "
    "`omega admin codebook publish --catalog FILE`"
)


def attach(app: typer.Typer) -> None:
    app.add_typer(codebook, name="codebook")


@codebook.command("publish")
def publish(
    catalog: Annotated[
        Path | None,
        typer.Option(help="The catalog TVs import (CSV or JSONL): embed it and compute cells."),
    ] = None,
    codebook_file: Annotated[
        Path | None,
        typer.Option(
            "--codebook",
            help="Publish this codebook instead: a JSON codebook document, or .npy centroids.",
        ),
    ] = None,
    cells: Annotated[int, typer.Option(help="With --catalog: how many cells (k).")] = 256,
    seed: Annotated[int, typer.Option(help="With --catalog: the k-means seed.")] = 0,
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish a new codebook; TVs adopt it at their next sync (and relearn their patterns
    in its cells). Give --catalog or --codebook."""
    if (catalog is None) == (codebook_file is None):
        raise ConfigError("give exactly one of --catalog and --codebook")
    if cells < 1:
        raise ConfigError(f"--cells must be at least 1, got {cells}")
    api = connect(server, admin_token, admin_token_file, timeout=300.0)
    api.call("GET", "/api/omega/stats")  # the server and token checked before the model runs
    if catalog is not None:
        document = _from_catalog(catalog, cells, seed, quiet=as_json)
    else:
        assert codebook_file is not None
        document = _from_file(codebook_file)
    published = api.call("POST", "/api/omega/codebook", document)
    published["items"] = len(document.get("item_ids") or [])
    emit(published, as_json=as_json, title="codebook published")


@codebook.command("show")
def show(
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """The current codebook: its id, cells (k), dimension, sequence and catalog size."""
    api = connect(server, admin_token, admin_token_file)
    summary = api.call_or_none("GET", "/api/omega/admin/codebook")
    if summary is None:
        raise InputError(_NO_CODEBOOK)
    emit(summary, as_json=as_json, title="codebook")


def _from_catalog(path: Path, cells: int, seed: int, *, quiet: bool) -> dict[str, Any]:
    """The codebook document of a catalog file, computed here."""
    from omega.brain.catalog import item_text
    from omega.brain.catalog_file import read_catalog
    from omega.brain.codebook import build_codebook, codebook_id
    from omega.sim.content import embed_texts

    if not path.is_file():
        raise InputError(f"--catalog {path}: no such file")
    items = read_catalog(path)
    if not items:
        raise InputError(f"--catalog {path} holds no titles")
    texts = [item_text(item) for item in items]
    if quiet:
        matrix = embed_texts(texts, cache_dir=None)
    else:
        with console.status(f"embedding {len(texts)} titles…"):
            matrix = embed_texts(texts, cache_dir=None)
    centroids = build_codebook(matrix, cells, seed=seed)
    return _document(codebook_id(centroids), centroids, [item.item_id for item in items])


def _from_file(path: Path) -> dict[str, Any]:
    """A codebook document read from ``path`` (JSON document or ``.npy`` centroids)."""
    import numpy as np

    from omega.brain.codebook import codebook_id

    try:
        if path.suffix == ".npy":
            centroids = np.load(path, allow_pickle=False)
            if centroids.ndim != 2 or not np.issubdtype(centroids.dtype, np.floating):
                raise InputError(f"--codebook {path}: need a 2-d float array (k, dim)")
            return _document(codebook_id(centroids), centroids, [])
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"--codebook {path}: cannot read it ({exc})") from None
    return _checked_document(path, doc)


def _checked_document(path: Path, doc: Any) -> dict[str, Any]:
    needed = ("codebook_id", "dim", "k", "centroids_f16")
    if not isinstance(doc, dict) or any(key not in doc for key in needed):
        raise InputError(
            f"--codebook {path}: not a codebook document (a JSON object with "
            + ", ".join(needed)
            + ", as GET /api/omega/codebook answers)"
        )
    try:
        base64.b64decode(str(doc["centroids_f16"]), validate=True)
    except binascii.Error:
        raise InputError(f"--codebook {path}: centroids_f16 is not base64") from None
    keep = (*needed, "item_ids")
    return {key: doc[key] for key in keep if key in doc}


def _document(name: str, centroids: Any, item_ids: list[str]) -> dict[str, Any]:
    from omega.brain.codebook import centroids_to_f16_bytes

    return {
        "codebook_id": name,
        "dim": int(centroids.shape[1]),
        "k": int(centroids.shape[0]),
        "centroids_f16": base64.b64encode(centroids_to_f16_bytes(centroids)).decode(),
        "item_ids": item_ids,
    }
