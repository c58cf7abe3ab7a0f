"""Omega's exceptions: one root, a small tree.

::

    OmegaError                      root of everything Omega raises on purpose
    ├── ConfigError                 bad option, path or setting given to us
    ├── InputError                  a caller passed bad data (unknown item, NaN, range)
    ├── ModelError                  the embedding model could not be loaded or run
    ├── StoreError                  local storage failed
    │   ├── CorruptStoreError       the database or index file is damaged
    │   └── SchemaVersionError      the store was written by a newer Omega
    ├── ProtocolError               wire protocol violations
    │   ├── LocalProtocolError      we tried to send something invalid (our bug)
    │   └── RemoteProtocolError     the peer sent garbage (their bug or an attack)
    │       ├── PayloadTooLargeError  body or decompressed size over the limit
    │       ├── SignatureError      a release not signed by a key this device trusts
    │       └── InvalidMessageError   a well-formed message that breaks a protocol rule
    ├── TransportError              the network failed (retryable)
    │   └── ServerError             the server answered with an error status
    ├── AuthError                   missing, bad or expired credentials
    │   └── RevokedError            valid credentials of a TV whose maker's key was revoked
    │       └── ViewerRevokedError  …or of a viewer the operator revoked
    └── ConflictError               idempotency key reused with another payload

"Local" errors mean we did wrong; "Remote" errors mean the peer sent garbage.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "CorruptStoreError",
    "InputError",
    "InvalidMessageError",
    "LocalProtocolError",
    "ModelError",
    "OmegaError",
    "PayloadTooLargeError",
    "ProtocolError",
    "RemoteProtocolError",
    "RevokedError",
    "SchemaVersionError",
    "ServerError",
    "SignatureError",
    "StoreError",
    "TransportError",
    "ViewerRevokedError",
    "error_code",
]


class OmegaError(Exception):
    """Root of every error Omega raises on purpose."""


class ConfigError(OmegaError):
    """A bad option, path or setting."""


class InputError(OmegaError, ValueError):
    """A caller passed bad data; nothing was stored.

    ``param``: the argument at fault, by its name in the function's signature, when the
    error is about one (the ``omega`` command rewords the sentence to name its flag)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelError(OmegaError):
    """The embedding model could not be loaded or run. Never silently replaced."""


class StoreError(OmegaError):
    """Local storage failed."""


class CorruptStoreError(StoreError):
    """The database or index file is damaged."""


class SchemaVersionError(StoreError):
    """The store's schema is newer than this Omega understands."""


class ProtocolError(OmegaError):
    """A wire protocol violation."""


class LocalProtocolError(ProtocolError):
    """We tried to send something invalid."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes we cannot accept."""


class PayloadTooLargeError(RemoteProtocolError):
    """A body, or its decompressed form, is over the limit."""


class SignatureError(RemoteProtocolError):
    """A signed answer failed its check (no seal, a bad signature, a key not trusted, an
    answer to another request): nothing from it may be applied."""


class InvalidMessageError(RemoteProtocolError):
    """A message of the right shape that breaks a rule of the protocol (a bound, a NaN,
    a pattern's cell arity): the server answers 422, where garbage is a 400."""


class TransportError(OmegaError):
    """The network failed; the operation may be retried."""


class ServerError(TransportError):
    """The server answered with an error status."""

    def __init__(self, status: int, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"server answered {status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class AuthError(OmegaError):
    """Missing, malformed or expired credentials."""


class RevokedError(AuthError):
    """Credentials that check out, of a viewer whose device was attested under a
    manufacturer key since revoked: what it pushes is refused (the server answers 403)."""


class ViewerRevokedError(RevokedError):
    """Credentials of a viewer the operator revoked (``omega admin viewers revoke``)."""


class ConflictError(OmegaError):
    """An idempotency key was reused with a different payload."""


#: The number each kind of error stands for wherever one is reported as a number — the
#: ``omega`` command's exit codes and the C SDK's status codes (``omega.h``) — checked in
#: this order (a subclass before its base). Anything else is 1.
_CODES: tuple[tuple[type[OmegaError], int], ...] = (
    (ConfigError, 2),
    (InputError, 3),
    (StoreError, 4),
    (ModelError, 5),
    (TransportError, 6),
    (AuthError, 7),
    (ProtocolError, 8),
)


def error_code(error: BaseException) -> int:
    """``error``'s number (see ``_CODES``): 2 config … 8 protocol, 1 for anything else."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return 1
