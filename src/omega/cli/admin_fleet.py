"""``omega admin stats|rounds|prune|release|consensus``: the fleet and its releases.

Each is one admin route (``routes/manage.py``, ``operator.py``, ``consensus.py``); a
command that finds nothing to do says so in a sentence on stderr and exits 0, so that a
cron job pruning or running rounds does not fail on a quiet day.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any

import typer

from omega.cli._admin_client import (
    DEFAULT_SERVER,
    AdminApi,
    ServerOption,
    TokenFileOption,
    TokenOption,
    connect,
    nothing_to_do,
)
from omega.cli._output import JsonOption, console, emit, emit_rows
from omega.errors import ConfigError, InputError, RemoteProtocolError
from omega.protocol.validation import MAX_ID_LENGTH

__all__ = ["attach"]

rounds = typer.Typer(help="Federation rounds: consolidate what TVs pushed.", no_args_is_help=True)
_NO_CODEBOOK = (
    "the server has no codebook, so a round has nothing to consolidate: publish one with "
    "`omega admin codebook publish --catalog FILE`"
)
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def attach(app: typer.Typer) -> None:
    app.command("stats")(stats)
    app.add_typer(rounds, name="rounds")
    app.command("prune")(prune)
    app.command("release")(release)
    app.command("consensus")(consensus)


def stats(
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Viewers, pending and live contributions, released patterns, the release version and
    the codebook, at a glance."""
    api = connect(server, admin_token, admin_token_file)
    counts = api.call("GET", "/api/omega/stats")
    summary = api.call_or_none("GET", "/api/omega/admin/codebook")
    counts["codebook_id"] = summary["codebook_id"] if summary else None
    emit(counts, as_json=as_json, title="constellation")


@rounds.command("run")
def run(
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Run rounds until no pushed contribution is left pending (a round applies "
            "a bounded batch).",
        ),
    ] = False,
    max_rounds: Annotated[
        int, typer.Option(help="With --wait: give up after this many rounds.", min=1)
    ] = 100,
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a federation round now on the server: apply what TVs pushed, consolidate, and
    publish a release if anything changed."""
    api = connect(server, admin_token, admin_token_file, timeout=600.0)
    done = 0
    applied = 0
    while True:
        answer = api.call("POST", "/api/omega/rounds")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise RemoteProtocolError(f"--server {server} answered a round without its result")
        done += 1
        applied += int(result.get("applied", 0))
        if result.get("status") == "no_codebook":
            raise InputError(_NO_CODEBOOK)
        if not wait or _pending(api) == 0:
            break
        if done >= max_rounds:
            raise InputError(
                f"{_pending(api)} contributions still pending after {done} rounds "
                "(--max-rounds): run again, or look at `omega admin stats`"
            )
    row = {"version": answer.get("version"), "rounds": done, **result}
    row["applied"] = applied
    row.pop("timings", None)
    emit(row, as_json=as_json, title="federation round")
    if applied == 0 and result.get("status") == "unchanged":
        nothing_to_do(
            "no TV pushed anything since the last round; the release stays at version "
            f"{answer.get('version')}"
        )


def _pending(api: AdminApi) -> int:
    return int(api.call("GET", "/api/omega/stats").get("pending_contributions", 0))


def prune(
    min_quality: Annotated[
        float | None,
        typer.Option(help="Forget live contributions whose quality is below this (0 < q ≤ 1)."),
    ] = None,
    max_age: Annotated[
        str | None,
        typer.Option(
            help="Forget live contributions not updated within this: 3600, 90m, 12h, 30d."
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget stale or weak live contributions; the next round releases what is left."""
    if min_quality is None and max_age is None:
        raise ConfigError("give --min-quality, --max-age or both")
    if min_quality is not None and not 0.0 < min_quality <= 1.0:
        raise ConfigError(f"--min-quality must be in (0, 1], got {min_quality}")
    body: dict[str, float] = {}
    if min_quality is not None:
        body["min_quality"] = min_quality
    if max_age is not None:
        body["max_age_s"] = _seconds(max_age)
    api = connect(server, admin_token, admin_token_file)
    pruned = api.call("POST", "/api/omega/admin/prune", body)
    emit(pruned, as_json=as_json, title="pruned")
    if not pruned.get("older") and not pruned.get("weaker"):
        nothing_to_do(f"no live contribution matched; {pruned.get('live_patterns', 0)} stay live")


def _seconds(text: str) -> float:
    """``--max-age`` in seconds: a number with an optional unit s, m, h or d."""
    found = _DURATION.fullmatch(text)
    seconds = float(found.group(1)) * _UNIT_S[found.group(2)] if found else 0.0
    if not 0.0 < seconds < 1e12:
        raise ConfigError(
            f"--max-age must be a positive duration such as 3600, 90m, 12h or 30d, got {text!r}"
        )
    return seconds


def release(
    limit: Annotated[int, typer.Option(help="How many patterns to list (1 … 1000).")] = 20,
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """The current release's patterns, heaviest first: the ids `consensus` explains."""
    if not 1 <= limit <= 1000:
        raise ConfigError(f"--limit must be 1 … 1000, got {limit}")
    api = connect(server, admin_token, admin_token_file)
    doc = api.call("GET", "/api/omega/admin/release", limit=limit)
    patterns = doc.get("patterns")
    if not isinstance(patterns, list):
        raise RemoteProtocolError(f"--server {server} answered a release without patterns")
    if as_json:
        emit(doc, as_json=True)
        return
    rows = [_pattern_row(p) for p in patterns]
    emit_rows(rows, as_json=False, title=f"release {doc.get('version')} ({doc.get('total')})")
    if not patterns:
        nothing_to_do("nothing has been released yet: TVs sync, then `omega admin rounds run`")


def _pattern_row(pattern: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "task", "cells", "success_rate", "support", "viewers", "version")
    return {key: pattern.get(key) for key in keep}


def consensus(
    pattern_id: Annotated[str, typer.Argument(help="A pattern id (`omega admin release`).")],
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Why a pattern is released or withheld: its voters, their agreement, the rules."""
    if not 1 <= len(pattern_id) <= MAX_ID_LENGTH:
        raise ConfigError(f"PATTERN_ID must be 1 … {MAX_ID_LENGTH} characters")
    api = connect(server, admin_token, admin_token_file)
    quoted = urllib.parse.quote(pattern_id, safe="")
    doc = api.call("GET", f"/api/omega/admin/consensus/{quoted}")
    reasons = doc.pop("reasons", [])
    if as_json:
        emit({**doc, "reasons": reasons}, as_json=True)
        return
    emit(doc, as_json=False, title=f"consensus on {pattern_id}")
    for reason in reasons:
        console.print(f"- {reason}")
