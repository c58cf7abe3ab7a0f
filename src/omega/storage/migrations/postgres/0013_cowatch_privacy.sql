-- The ledger of central DP on released co-watch counts (omega.federation.cowatch_dp,
-- docs/cowatch.md): one row per private release, the (ε, δ) it spent (basic composition
-- adds them up), the pairs it drew noise for and released, the co-watch version after it.
CREATE TABLE cowatch_privacy (
    seq BIGSERIAL PRIMARY KEY,
    epsilon DOUBLE PRECISION NOT NULL,
    delta DOUBLE PRECISION NOT NULL,
    pairs INTEGER NOT NULL,
    released INTEGER NOT NULL,
    version BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
