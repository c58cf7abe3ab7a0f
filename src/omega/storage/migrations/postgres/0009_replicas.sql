-- What several `omega serve` replicas on one database share besides the store itself.
--
-- rate_hits: each rate-limited key's hits in its moving window (epoch seconds), one row
-- per key, updated by one upsert per request (omega.constellation.ratelimit_shared).
-- UNLOGGED: no WAL for a counter; a crash empties it, which forgets at most one window.
CREATE UNLOGGED TABLE rate_hits (
    key     TEXT PRIMARY KEY,
    hits    DOUBLE PRECISION[] NOT NULL,
    allowed BOOLEAN NOT NULL
);

-- A committed release wakes every replica's release watcher at once (LISTEN
-- omega_release; omega.constellation.release_listener), whoever committed it: a server's
-- round or an `omega worker`. NOTIFY is delivered on commit, never for a rolled-back one.
CREATE FUNCTION omega_release_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('omega_release', NEW.version::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER release_state_notify AFTER UPDATE OF version ON release_state
    FOR EACH ROW EXECUTE FUNCTION omega_release_notify();
