"""The admin API as ``omega admin …`` speaks it: the options every subcommand takes
(``--server``, the admin token from a flag, ``OMEGA_ADMIN_TOKEN`` or a file) and one
request that turns the server's problems into Omega errors, each one sentence."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from omega.errors import (
    AuthError,
    ConfigError,
    InputError,
    RemoteProtocolError,
    ServerError,
    TransportError,
)

__all__ = [
    "AdminApi",
    "ServerOption",
    "TokenFileOption",
    "TokenOption",
    "connect",
    "nothing_to_do",
    "read_token_file",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"

ServerOption = Annotated[
    str, typer.Option("--server", envvar="OMEGA_SERVER", help="The constellation's URL.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        envvar="OMEGA_ADMIN_TOKEN",
        help="The admin token (or --admin-token-file).",
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--admin-token-file",
        envvar="OMEGA_ADMIN_TOKEN_FILE",
        help="A file holding the admin token: `omega serve` writes <data-dir>/admin-token.",
    ),
]


@dataclass(frozen=True, slots=True)
class AdminApi:
    """One constellation's admin API: ``server`` (its URL) and the admin ``token``."""

    server: str
    token: str
    timeout: float = 30.0

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        """One admin request; its JSON object, or the Omega error its problem stands for."""
        return _answer(self.server, self._send(method, path, body, params))

    def call_or_none(self, method: str, path: str) -> dict[str, Any] | None:
        """As :meth:`call`, but None where the server answers 404."""
        answer = self._send(method, path, None, {})
        return None if answer.status_code == 404 else _answer(self.server, answer)

    def _send(self, method: str, path: str, body: Any, params: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = self.server.rstrip("/") + path
        try:
            return httpx.request(
                method, url, json=body, params=params, headers=headers, timeout=self.timeout
            )
        except httpx.InvalidURL as exc:
            raise ConfigError(f"--server {self.server!r} is not a URL: {exc}") from None
        except httpx.UnsupportedProtocol:
            raise ConfigError(
                f"--server {self.server!r} is not an http:// or https:// URL"
            ) from None
        except httpx.TimeoutException:
            raise TransportError(
                f"the constellation at {self.server} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise TransportError(
                f"cannot reach the constellation at {self.server} ({exc or type(exc).__name__}):"
                " is `omega serve` running there? (--server or OMEGA_SERVER)"
            ) from None


def connect(
    server: str, token: str | None, token_file: Path | None, *, timeout: float = 30.0
) -> AdminApi:
    """The admin API at ``server`` with the token given by flag, environment or file."""
    if token and token_file is not None:
        raise ConfigError(
            "give --admin-token (or OMEGA_ADMIN_TOKEN) or --admin-token-file, not both"
        )
    if token_file is not None:
        token = read_token_file(token_file)
    if not token:
        raise ConfigError(
            "give the admin token: --admin-token, OMEGA_ADMIN_TOKEN, or --admin-token-file "
            "(`omega serve` writes it to <data-dir>/admin-token)"
        )
    return AdminApi(server, token.strip(), timeout)


def read_token_file(path: Path) -> str:
    """The admin token kept in ``path`` (``--admin-token-file``); ConfigError if unreadable
    or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--admin-token-file {path}: cannot read it ({exc})") from None
    if not token:
        raise ConfigError(f"--admin-token-file {path} is empty")
    return token


def _answer(server: str, answer: httpx.Response) -> dict[str, Any]:
    doc = _object(answer)
    if answer.status_code < 400:
        if doc is None:
            raise RemoteProtocolError(
                f"--server {server} answered {answer.status_code} with "
                f"{answer.headers.get('content-type') or 'untyped data'}, not the JSON object "
                "a constellation sends: is it an Omega constellation?"
            )
        return doc
    detail = str(doc.get("detail", answer.text)) if doc is not None else answer.text[:300]
    if answer.status_code == 401:
        raise AuthError(
            f"the server refused the admin token ({detail}): give the one in its "
            "<data-dir>/admin-token (--admin-token-file) or its OMEGA_ADMIN_TOKEN"
        )
    if answer.status_code < 500:
        raise InputError(detail)
    raise ServerError(answer.status_code, detail)


def _object(answer: httpx.Response) -> dict[str, Any] | None:
    """The answer's body if it is a JSON object."""
    try:
        doc = answer.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def nothing_to_do(sentence: str) -> None:
    """Say on stderr that a command found nothing to do (it still succeeded: exit 0)."""
    from omega.cli._output import err_console

    err_console.print(f"nothing to do: {sentence}")
    sys.stderr.flush()
