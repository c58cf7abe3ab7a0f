"""Bounds every message must respect (see ``validation``)."""

from __future__ import annotations

EMBEDDING_DIM = 384
"""Every vector on the wire is an all-MiniLM-L6-v2 embedding."""
MAX_VECTOR_DIM = 4096
MAX_INT8_SCALE = 2.0**120
"""Keeps ``127 * scale`` well inside float32."""
MAX_CELL = 65_536
"""Cells are codebook indices in ``[0, MAX_CELL)``."""
MAX_ID_LENGTH = 128
MAX_SHORT_TEXT = 256
MAX_TOKEN_LENGTH = 4096
MAX_DETAIL_LENGTH = 4096
MAX_PATTERNS_PER_PUSH = 512
"""``added`` + ``updated`` in one push."""
MAX_REMOVED = 1024
MAX_ACK_IDS = MAX_PATTERNS_PER_PUSH + MAX_REMOVED
MAX_PATTERNS_PER_PULL = 4096
MAX_TRENDS = 1024
MAX_CONTENT_UPDATES = 256
MAX_REPORTS_PER_PUSH = 1
MAX_POPULAR_PER_PULL = 1000
#: Co-watch rows in one pull, neighbours in one row, and the largest catalog position.
MAX_COWATCH_PER_PULL = 1000
MAX_COWATCH_NEIGHBOURS = 200
MAX_POSITION = 2**32 - 1
MAX_REPORT_SEED = 2**63 - 1
MAX_REPORT_BUCKETS = 100_000
MAX_REPORT_EPSILON = 20.0
#: Shared (two-server) reports: per push, catalog size, and byte sizes of the parts.
MAX_SHARES_PER_PUSH = 1
MAX_SHARED_CATALOG = 1 << 20
MAX_SHARE_PART = 512
MAX_INTERESTS = 256
MAX_EVENT_FIELDS = 64
MAX_COUNT = 2**31 - 1
MAX_VERSION = 2**63 - 1
MAX_PULL_BYTES = 1 << 22
MAX_SYNC_AFTER = 30 * 86_400.0
MAX_EXPIRES_IN = 366 * 86_400
#: Device attestation (``omega.protocol.attestation``): Ed25519 key and signature sizes.
ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
MAX_TIME = 2**62
"""Seconds since the epoch, in certificates."""
MAX_NONCE = 64
NONCE_BYTES = 16
"""Random bytes a device puts in each sync request: no two requests are alike, so no old
answer fits a new one (``SyncRequest``)."""
MAX_RELEASE_KEYS = 16
"""Release keys a registration answer lists, or a sync request names as trusted."""
RELEASE_KEY_BYTES = 32
"""A raw Ed25519 public key."""
KID_PATTERN = r"[A-Za-z0-9._-]{1,64}"
"""A key id (release keys, JWT keys, manufacturers and their keys): what may name a key
file, and nothing else. Match it whole (``re.fullmatch``): ``^…$`` would let a trailing
newline through."""

CELLS_BY_TASK = {"preference": 1, "recommendation": 2, "discovery": 1, "behaviour": 1}
"""Pattern shapes (see ``messages``): a recommendation names (from, to), others one cell."""
TIME_BUCKETS = frozenset({"morning", "afternoon", "evening", "night", "any"})
DAY_TYPES = frozenset({"weekday", "weekend", "any"})
