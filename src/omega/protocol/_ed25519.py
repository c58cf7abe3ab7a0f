"""Ed25519 verification (RFC 8032), on every platform Omega runs on; no I/O.

On CPython it is cryptography's (OpenSSL), as everywhere else in Omega. In a browser's
Pyodide (``sys.platform == "emscripten"``) cryptography does not load: PyPI has no
WebAssembly build of it, and Pyodide's own comes only with Pyodide's full distribution,
not with its npm package. There it is python-ecdsa's pure-Python Ed25519 (maintained by
the tlsfuzzer project, no compiled code). Its arithmetic is not constant-time, which
matters only where a secret is handled: verification sees public data alone (a key, a
signature, a message), and nothing in Omega signs on this path.

Both reject a signature that is not 64 bytes, whose scalar is not reduced, or whose point
does not decode; both check ``[S]B = R + [k]A`` without the cofactor. A pinned key is the
constellation's, so no peer chooses the key a signature is checked against.
"""

from __future__ import annotations

import sys

__all__ = ["verify"]

if sys.platform == "emscripten":
    from ecdsa import BadSignatureError, Ed25519, VerifyingKey
    from ecdsa.errors import MalformedPointError

    def verify(public: bytes, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is the Ed25519 signature of ``message`` by ``public``."""
        try:
            key = VerifyingKey.from_string(public, curve=Ed25519)
            return bool(key.verify(signature, message))
        except (BadSignatureError, MalformedPointError):
            return False

else:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def verify(public: bytes, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is the Ed25519 signature of ``message`` by ``public``."""
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        except InvalidSignature:
            return False
        return True
