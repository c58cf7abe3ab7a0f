"""Server settings, read from the environment (prefix ``OMEGA_``) only at the edge.

``Settings()`` reads ``OMEGA_DATA_DIR``, ``OMEGA_DB_URL``, ``OMEGA_RATE_LIMIT`` …;
the CLI and tests pass keyword arguments instead. Nothing here touches the disk.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything an operator can tune about one constellation process."""

    model_config = SettingsConfigDict(env_prefix="OMEGA_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("omega-data"), description="Keys, admin token, SQLite db.")
    db_url: str | None = Field(
        default=None, description="Storage URL; default sqlite:///<data_dir>/constellation.db."
    )

    # -- tokens (RFC 8725: pinned algorithm, typed tokens, short-lived access) ----------
    jwt_issuer: str = "omega-constellation"
    jwt_audience: str = "omega-api"
    jwt_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "kid -> PEM (Ed25519 or RSA; private keys sign and verify, public keys only "
            "verify). Empty: a key ring under <data_dir>/jwt-keys, created on first start."
        ),
    )
    jwt_signing_kid: str | None = Field(
        default=None, description="kid that signs new tokens; default the greatest private kid."
    )
    access_token_ttl: int = Field(default=15 * 60, gt=0, description="Seconds.")
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, gt=0, description="Seconds.")
    jwt_leeway: float = Field(default=5.0, ge=0, description="Clock skew allowed on exp/iat.")
    release_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "kid -> Ed25519 PEM that seals answers to devices (private keys sign and "
            "endorse newer keys; replicas must share them). Empty: a key ring under "
            "<data_dir>/release-keys, created on first start."
        ),
    )
    release_signing_kid: str | None = Field(
        default=None, description="kid that seals answers; default the greatest private kid."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for management; default <data_dir>/admin-token."
    )

    # -- limits ------------------------------------------------------------------------
    rate_limit: int = Field(default=60, gt=0, description="Requests per viewer per rate_window.")
    rate_window: int = Field(default=60, gt=0, description="Seconds.")
    rate_limit_url: str | None = Field(
        default=None,
        description=(
            "Where the rate limits count, so that they hold across replicas: redis://host:"
            "6379/0 (Redis), postgresql://… or memory:// (this process only); unset: the "
            "store's PostgreSQL, or memory with SQLite (omega.constellation.ratelimit_shared)."
        ),
    )
    registration_rate_limit: int = Field(
        default=30,
        ge=0,
        description=(
            "Registrations per client address per rate_window; 0 = unlimited. Behind a "
            "reverse proxy every device shares the proxy's address: let uvicorn believe the "
            "proxy's X-Forwarded-For (FORWARDED_ALLOW_IPS=<proxy address>), or raise this."
        ),
    )
    manufacturer_registration_limit: int = Field(
        default=1000,
        ge=0,
        description=(
            "Attested registrations per manufacturer per rate_window; 0 = unlimited. Bounds "
            "how fast a leaked manufacturer key mints identities until it is revoked; "
            "raise it for a launch day."
        ),
    )

    # -- attestation (omega.protocol.attestation) -----------------------------------------
    allow_unattested: bool = Field(
        default=False,
        description=(
            "Register devices that present no manufacturer-signed certificate. Off: such "
            "identities cost nothing to make (Sybils); on only for a closed test setup."
        ),
    )
    attestation_max_skew: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Seconds a registration's signing time may be from the server's clock.",
    )
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    max_decompressed_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    max_patterns_per_batch: int = Field(default=512, gt=0)
    max_pull_bytes: int = Field(default=1024 * 1024, gt=0, description="Cap on a pull's max_bytes.")
    min_pull_bytes: int = Field(default=1024, gt=0, description="Floor on a pull's max_bytes.")

    # -- pacing and background work -----------------------------------------------------
    sync_interval: float = Field(default=3600.0, gt=0, description="Base next_sync_after, seconds.")
    sync_jitter: float = Field(default=0.1, ge=0, le=1, description="± fraction of sync_interval.")
    target_syncs_per_second: float = Field(
        default=200.0, gt=0, description="Above this observed rate, next_sync_after grows."
    )
    federation_interval: float = Field(
        default=60.0, ge=0, description="Seconds between in-process rounds; 0 disables them."
    )
    helper_url: str | None = Field(
        default=None,
        description=(
            "Base URL of the helper (`omega helper serve`, run by another operator) that "
            "counts two-server popularity reports with this server; unset: such reports "
            "wait in the queue uncounted."
        ),
    )
    helper_secret_file: Path | None = Field(
        default=None,
        description="File holding the secret shared with the helper (hex; the helper "
        "writes it to its data dir on first start). Needed with helper_url.",
    )
    share_min_batch: int = Field(
        default=500,
        ge=1,
        le=2500,
        description="Two-server reports counted at once, at least (each batch adds the "
        "servers' noise once: fewer, larger batches keep the counts closer).",
    )
    share_noise_epsilon: float = Field(
        default=4.0, ge=0, le=20, description="ε of the noise this server adds per report."
    )
    share_noise_seed: int | None = Field(
        default=None,
        description="Seeds this server's noise: for simulations that must reproduce, "
        "never in production (unset: drawn from the OS).",
    )
    cowatch_threshold: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Distinct attested TVs before a co-watch pair can be read and released "
        "(docs/cowatch.md); 0 turns the co-watch step of rounds off.",
    )
    cowatch_top: int = Field(
        default=20, ge=1, le=200, description="Co-watch neighbours released per title."
    )
    cowatch_spread: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="The spread rule in the co-watch release: a pair backed by more than "
        "this × its neighbour's own best count as a source is not released (a title "
        "nobody goes on from, where a coalition points popular titles; docs/cowatch.md). "
        "0 (the default): off.",
    )
    cowatch_per_epoch: int = Field(
        default=128,
        ge=1,
        le=1000,
        description="Co-watch OPRF evaluations per TV per epoch: TVs read it and send at "
        "most this many pairs an epoch. Set the helper's --cowatch-per-epoch alike; the "
        "default is the TVs' own (BrainConfig.cowatch_pairs_per_epoch, docs/cowatch.md).",
    )
    cowatch_epoch_s: float = Field(
        default=7 * 86_400.0, ge=60, description="Seconds in a co-watch epoch."
    )
    cowatch_dp_epsilon: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="Central DP on released co-watch counts: ε of one private release (a "
        "round that folded a batch or owes a release), for one TV's pairs of one epoch; the "
        "ledger adds releases up (docs/cowatch.md). 0 (the default): off, counts released "
        "k-anonymous. Acts only with helper_url set and cowatch_threshold above 0.",
    )
    cowatch_dp_delta: float = Field(
        default=1e-6,
        gt=0,
        lt=1,
        description="δ of one private co-watch release (with cowatch_dp_epsilon > 0).",
    )
    release_poll_interval: float = Field(
        default=5.0, gt=0, description="How often to look for releases committed by other workers."
    )
    sse_ping_interval: float = Field(default=15.0, gt=0)
    http_keep_alive: int = Field(
        default=5,
        gt=0,
        description=(
            "Seconds an idle HTTP/1.1 keep-alive connection stays open (omega serve: "
            "uvicorn's timeout_keep_alive, whose default is 5). Each open connection costs "
            "the server memory and a file descriptor: docs/results.md, concurrent devices."
        ),
    )
    dashboard_sample_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between the /dashboard's samples (it keeps the last 720).",
    )
    gc_freeze: bool = Field(
        default=True,
        description=(
            "Once started, move every object alive into the garbage collector's permanent "
            "generation (gc.freeze): full collections then skip the ~100,000 objects of the "
            "loaded libraries. Without it each took 70-90 ms, every 2-3 s at 500 syncs/s, "
            "and stalled every request meanwhile. Off for an app embedded in a process "
            "that is not a server (the simulator, tests)."
        ),
    )

    # -- MCP (the operator's tools for AI assistants, docs/mcp.md) -------------------------
    mcp: bool = Field(
        default=True,
        description="Serve the operator's MCP tools at /mcp (streamable HTTP, admin token).",
    )
    mcp_allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"],
        description=(
            "Host headers /mcp answers (DNS-rebinding protection; 'name:*' is any port). "
            "Behind a proxy or on a public name, add the names it is reached by, e.g. "
            "['omega.example.com', 'omega.example.com:*']."
        ),
    )

    # -- other doors (omega.constellation.doors) ------------------------------------------
    grpc_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "TCP port of the gRPC door (sync.proto; docs/grpc.md); 0: any free port, written "
            "to <data_dir>/grpc-address; unset: no gRPC door."
        ),
    )
    grpc_host: str = Field(
        default="127.0.0.1", description="Interface the gRPC door listens on (omega serve: --host)."
    )
    grpc_stream_idle: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a StreamSync stream may wait for its next request before the "
        "server ends it (devices open a new one when they sync again).",
    )

    # -- the HTTP/3 door (omega.constellation.doors.http3) ---------------------------------
    quic_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the HTTP/3 door; with quic_key, opens it.",
    )
    quic_key: Path | None = Field(default=None, description="PEM private key of quic_cert.")
    quic_host: str = Field(default="127.0.0.1", description="Interface of the HTTP/3 door.")
    quic_port: int = Field(
        default=4433,
        ge=0,
        le=65535,
        description="UDP port of the HTTP/3 door; 0: any free one (see <data_dir>/http3-port).",
    )
    quic_session_tickets: int = Field(
        default=10_000,
        gt=0,
        description="TLS session tickets kept for 0-RTT resumption (newest; each used once).",
    )

    # -- crash testing -----------------------------------------------------------------
    failpoints: frozenset[str] = Field(
        default=frozenset(),
        description=(
            "Deliberate faults for reliability tests, e.g. ['stop-after-ingest'] stops the "
            "process (SIGSTOP) after a push commits and before it is answered, for the test "
            "to SIGKILL it there. Never in production."
        ),
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def storage_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'constellation.db').as_posix()}"

    @property
    def cowatch_rounds(self) -> bool:
        """Whether this server's rounds run the co-watch step: it needs the helper (whose
        batches it folds) and a threshold above 0 (``connect_cowatch``)."""
        return bool(self.helper_url) and self.cowatch_threshold > 0

    @property
    def cowatch_dp_on(self) -> bool:
        """Whether central DP on released co-watch counts is in effect."""
        return self.cowatch_rounds and self.cowatch_dp_epsilon > 0
