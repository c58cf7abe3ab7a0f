"""``omega admin viewers list|show|revoke``: the viewer registry (``routes/registry.py``)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated

import typer

from omega.cli._admin_client import (
    DEFAULT_SERVER,
    ServerOption,
    TokenFileOption,
    TokenOption,
    connect,
    nothing_to_do,
)
from omega.cli._output import JsonOption, emit, emit_rows
from omega.errors import ConfigError, RemoteProtocolError

__all__ = ["attach"]

viewers = typer.Typer(help="The viewers registered with the constellation.", no_args_is_help=True)
#: What a viewer id may hold (ids the server makes, and those an operator provisions).
_VIEWER_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def attach(app: typer.Typer) -> None:
    app.add_typer(viewers, name="viewers")


def _path(viewer_id: str) -> str:
    """The viewer's admin path; an id that is not one is refused here, naming VIEWER_ID."""
    if not _VIEWER_ID.fullmatch(viewer_id):
        raise ConfigError(f"VIEWER_ID must be 1-128 of A-Za-z0-9._-, got {viewer_id!r}")
    return "/api/omega/admin/viewers/" + urllib.parse.quote(viewer_id, safe="")


@viewers.command("list")
def list_viewers(
    limit: Annotated[int, typer.Option(help="How many viewers (1 … 1000).")] = 100,
    after: Annotated[
        str, typer.Option(help="Start after this viewer id (the last one of a page).")
    ] = "",
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """A page of viewers by id, with their region, model and standing."""
    if not 1 <= limit <= 1000:
        raise ConfigError(f"--limit must be 1 … 1000, got {limit}")
    api = connect(server, admin_token, admin_token_file)
    page = api.call("GET", "/api/omega/admin/viewers", limit=limit, after=after)
    found = page.get("viewers")
    if not isinstance(found, list):
        raise RemoteProtocolError(f"--server {server} answered without a list of viewers")
    if as_json:
        emit(page, as_json=True)
        return
    emit_rows(found, as_json=False, title="viewers")
    if page.get("next_after"):
        print(f"more: --after {page['next_after']}")
    elif not found:
        nothing_to_do("no viewer is registered" + (f" after {after!r}" if after else ""))


@viewers.command("show")
def show(
    viewer_id: Annotated[str, typer.Argument(help="e.g. v_CwSKcZ7S2uyw8QEkUiYNLA")],
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """One viewer's registry entry."""
    path = _path(viewer_id)
    api = connect(server, admin_token, admin_token_file)
    emit(api.call("GET", path), as_json=as_json, title=f"viewer {viewer_id}")


@viewers.command("revoke")
def revoke(
    viewer_id: Annotated[str, typer.Argument(help="The viewer to revoke.")],
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a viewer: it gets no new tokens, its pushes are refused and its patterns
    leave the next release. There is no undo (a TV registers again as a new viewer)."""
    path = _path(viewer_id) + "/revoke"
    api = connect(server, admin_token, admin_token_file)
    emit(api.call("POST", path), as_json=as_json, title="revoked viewer")
