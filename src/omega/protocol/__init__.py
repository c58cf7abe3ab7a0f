"""The wire protocol: message types, validation, the binary codec and vector quantisation.

Sans-IO (as h11): everything here maps values to bytes and back, with no sockets or files.
The two-server counting parts (``shares``, ``aggregation``, ``noise``, ``dpf``), the
release seals (``signing``) and vector quantisation (``quantize``) are used through their
modules. Importing this package needs msgspec and zstd alone, no numpy nor cryptography:
it runs in a browser's Pyodide too (``omega.wasm``, docs/sdk.md).
"""

from __future__ import annotations

from omega.protocol._limits import (
    CELLS_BY_TASK,
    KID_PATTERN,
    MAX_PULL_BYTES,
    MAX_REPORTS_PER_PUSH,
    MAX_SHARED_CATALOG,
    MAX_SHARES_PER_PUSH,
    MAX_VERSION,
    NONCE_BYTES,
)
from omega.protocol.codec import (
    BINARY_MEDIA_TYPE,
    COMPRESS_THRESHOLD,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DECOMPRESSED,
    FLAG_ZSTD,
    decode,
    decode_json,
    encode,
    encode_json,
)
from omega.protocol.messages import *  # noqa: F403
from omega.protocol.messages import __all__ as _messages_all
from omega.protocol.validation import (
    EMBEDDING_DIM,
    MAX_CELL,
    MAX_CONTENT_UPDATES,
    MAX_ID_LENGTH,
    MAX_INT8_SCALE,
    MAX_PATTERNS_PER_PULL,
    MAX_PATTERNS_PER_PUSH,
    MAX_REMOVED,
    MAX_TRENDS,
    MAX_VECTOR_DIM,
    validate,
    validate_vector,
)

__all__ = [
    *_messages_all,
    "BINARY_MEDIA_TYPE",
    "CELLS_BY_TASK",
    "COMPRESS_THRESHOLD",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DECOMPRESSED",
    "EMBEDDING_DIM",
    "FLAG_ZSTD",
    "KID_PATTERN",
    "MAX_CELL",
    "MAX_PULL_BYTES",
    "MAX_CONTENT_UPDATES",
    "MAX_ID_LENGTH",
    "MAX_INT8_SCALE",
    "MAX_PATTERNS_PER_PULL",
    "MAX_PATTERNS_PER_PUSH",
    "MAX_REMOVED",
    "MAX_REPORTS_PER_PUSH",
    "MAX_SHARED_CATALOG",
    "MAX_SHARES_PER_PUSH",
    "MAX_TRENDS",
    "MAX_VECTOR_DIM",
    "MAX_VERSION",
    "NONCE_BYTES",
    "decode",
    "decode_json",
    "encode",
    "encode_json",
    "validate",
    "validate_vector",
]
