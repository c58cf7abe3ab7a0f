/*
 * omega.h — the Omega SDK for TVs (libomega.so), C99 and C++.
 *
 * One household's on-device recommender (the "brain": catalog, viewing history, learned
 * patterns, in one directory) and its sync with the constellation, behind opaque
 * handles. Build the library and this header with `omega sdk build --out DIR`; link
 * with `-Iinclude -Llib -lomega`. docs/sdk.md has the whole story; the short one:
 *
 *     omega_config *config;
 *     omega_brain *brain;
 *     omega_config_new(&config);
 *     omega_config_set_storage_path(config, "/data/omega");
 *     omega_config_set_constellation_url(config, "https://omega.example.com");
 *     if (omega_brain_open(config, &brain) != OMEGA_OK)
 *         fprintf(stderr, "omega: %s\n", omega_last_error());
 *     omega_config_free(config);
 *     ...
 *     omega_brain_close(brain);
 *
 * Status codes. Every function but the three that return text returns an omega_status:
 * OMEGA_OK (0), or an error code with the sentence in omega_last_error(). The codes are
 * the `omega` command's exit codes, plus OMEGA_E_BUFFER. Nothing here aborts or exits
 * the host process: a failure inside the library (a bug included) is a code and a
 * sentence.
 *
 * Memory. Every buffer is the caller's, with its size; what does not fit is
 * OMEGA_E_BUFFER, with the size needed written back, and nothing else is written. The
 * library keeps no pointer the caller passed after a call returns. Strings are UTF-8,
 * NUL-terminated. Handles are opaque numbers, not pointers into memory: a handle used
 * after it was freed or closed is OMEGA_E_INPUT, never a crash.
 *
 * Threads. Any thread may call any function, at any time, on any handle; calls on one
 * brain are serialised by the brain (and the interpreter inside the library lets one
 * thread run Omega's code at a time, except while it waits on the network, the disk or
 * the embedding model). omega_last_error() is per thread. Closing a brain while another
 * thread is still calling it is the one thing not to do (that call fails with a code).
 *
 * Inside: Omega's Python package, run by an embedded CPython (cffi's embedding mode).
 * The interpreter starts on the first call that needs it (omega_config_new, normally):
 * see docs/sdk.md for what a device needs at run time and what that first call costs.
 */
#ifndef OMEGA_H
#define OMEGA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(OMEGA_BUILDING) && defined(__GNUC__)
#define OMEGA_API __attribute__((visibility("default")))
#else
#define OMEGA_API
#endif

/* The SDK's version (the Omega package it was built from). */
#define OMEGA_VERSION "0.1.0"

/* A value of omega_track_view's watch_fraction or duration_s: "not known". */
#define OMEGA_UNKNOWN (-1.0)

/* -- api begin (the build reads what follows, to the end marker, as cffi declarations) */

/* What every call returns. The numbers are the `omega` command's exit codes. */
typedef enum omega_status {
    OMEGA_OK = 0,
    OMEGA_E_ERROR = 1,    /* unexpected: a bug of ours (the sentence says where) */
    OMEGA_E_CONFIG = 2,   /* a bad setting: storage path, URL, interval, certificate */
    OMEGA_E_INPUT = 3,    /* a bad argument: NULL, NaN, out of range, an unknown item,
                             a closed handle */
    OMEGA_E_STORAGE = 4,  /* the brain's files: full disk, damaged, newer schema */
    OMEGA_E_MODEL = 5,    /* the embedding model, or the library's Python runtime,
                             could not be loaded */
    OMEGA_E_NETWORK = 6,  /* no answer, or an error status (retryable) */
    OMEGA_E_AUTH = 7,     /* the constellation refused this TV (attestation, revoked) */
    OMEGA_E_PROTOCOL = 8, /* an answer that breaks the protocol or its signature */
    OMEGA_E_BUFFER = 9    /* a caller's buffer is too small: the size needed is set */
} omega_status;

/* Opaque handles. */
typedef struct omega_config omega_config;
typedef struct omega_brain omega_brain;

/* One title of a catalog (omega_import_catalog). Only item_id and title are required. */
typedef struct omega_item {
    const char *item_id;     /* the TV platform's id, unique in the catalog */
    const char *title;
    const char *genres;      /* '|'-separated ("Crime|Drama"); NULL or "": none */
    int year;                /* 0: not known */
    int runtime_min;         /* 0: not known */
    const char *description; /* NULL or "": none */
} omega_item;

/* When a recommendation is for. OMEGA_TIME_NOW / OMEGA_DAY_NOW: from the clock. */
typedef enum omega_time_bucket {
    OMEGA_TIME_NOW = 0,
    OMEGA_TIME_MORNING = 1,   /* 05:00-12:00 */
    OMEGA_TIME_AFTERNOON = 2, /* 12:00-17:00 */
    OMEGA_TIME_EVENING = 3,   /* 17:00-23:00 */
    OMEGA_TIME_NIGHT = 4
} omega_time_bucket;

typedef enum omega_day_type {
    OMEGA_DAY_NOW = 0,
    OMEGA_DAY_WEEKDAY = 1,
    OMEGA_DAY_WEEKEND = 2
} omega_day_type;

typedef struct omega_context {
    omega_time_bucket time_bucket;
    omega_day_type day_type;
} omega_context;

/* What to leave out of recommendations. */
typedef struct omega_filters {
    const char *genres;          /* only titles of these, '|'-separated; NULL or "": any */
    int max_runtime_min;         /* 0: any length */
    const char *const *exclude;  /* item ids to leave out */
    size_t exclude_count;
} omega_filters;

/* One recommendation. The three strings point into the caller's omega_results.text. */
typedef struct omega_recommendation {
    const char *item_id;
    const char *title;
    const char *reason;  /* e.g. "because you watched Heat" */
    double score;
} omega_recommendation;

/* The caller's buffers for omega_recommend. */
typedef struct omega_results {
    omega_recommendation *items; /* in: an array of `capacity` entries (at least k) */
    size_t capacity;
    char *text;                  /* in: where the strings are written */
    size_t text_size;            /* in: its size in bytes */
    size_t count;                /* out: recommendations written, best first (<= k); on
                                    OMEGA_E_BUFFER, the entries `items` needs */
    size_t text_needed;          /* out: bytes the strings take; on OMEGA_E_BUFFER, the
                                    `text_size` needed */
} omega_results;

/* What one sync did. */
typedef struct omega_sync_result {
    uint64_t pushed;           /* patterns sent */
    uint64_t accepted;         /* ... and accepted */
    uint64_t pulled;           /* collective patterns received */
    uint64_t version;          /* the constellation's release this brain now holds */
    uint64_t push_bytes;       /* bytes of the request */
    uint64_t pull_bytes;       /* bytes of the answers */
    uint64_t outbox_remaining; /* patterns still waiting to be sent */
    double next_sync_after;    /* seconds the constellation asks the TV to wait */
} omega_sync_result;

/* -- configuration: a builder, copied by omega_brain_open (free it after) -- */

/* A configuration with the defaults: no storage path (required), no constellation,
   sync every 1800 s, patterns shared from quality 0.7, at most 10000 kept. */
OMEGA_API omega_status omega_config_new(omega_config **config);
/* The brain's directory; made (with its parents) on first open. Required. */
OMEGA_API omega_status omega_config_set_storage_path(omega_config *config, const char *path);
/* The constellation's base URL, http:// or https://. Without one, nothing syncs. */
OMEGA_API omega_status omega_config_set_constellation_url(omega_config *config,
                                                          const char *url);
/* The periodic sync's pace in seconds (> 0; +- 10 % jitter; the constellation's own
   next_sync_after is a floor under it). */
OMEGA_API omega_status omega_config_set_sync_interval(omega_config *config, double seconds);
/* Only patterns at least this successful (0..1) leave the TV. */
OMEGA_API omega_status omega_config_set_min_quality(omega_config *config, double quality);
/* The most patterns the brain keeps (least valuable pruned first); >= 1. */
OMEGA_API omega_status omega_config_set_max_patterns(omega_config *config, size_t count);
/* The TV's attestation, for registering with a constellation that requires it: the
   device certificate and device key files `omega attest device` writes (device.cert,
   device.key). Both are read now. */
OMEGA_API omega_status omega_config_set_manufacturer_certificate(omega_config *config,
                                                                 const char *certificate_path,
                                                                 const char *device_key_path);
/* Frees a configuration; NULL is fine. */
OMEGA_API omega_status omega_config_free(omega_config *config);

/* -- the brain -- */

/* Opens (on first use, creates) the brain in the configuration's storage path. */
OMEGA_API omega_status omega_brain_open(const omega_config *config, omega_brain **brain);
/* Stops the periodic sync if it runs, flushes and closes; NULL is fine. */
OMEGA_API omega_status omega_brain_close(omega_brain *brain);

/* Adds or updates titles from a file: CSV with a header (item_id or movieId, title,
   genres 'A|B', year, runtime_min, description) or JSON lines (.jsonl) with the same
   keys. Titles are embedded on the TV by the MiniLM model (loaded on first use).
   `imported` (may be NULL) receives how many titles were read. */
OMEGA_API omega_status omega_import_catalog_file(omega_brain *brain, const char *path,
                                                 size_t *imported);
/* The same from the caller's records. */
OMEGA_API omega_status omega_import_catalog(omega_brain *brain, const omega_item *items,
                                            size_t count, size_t *imported);

/* -- what the household does -- */

/* A view: watch_fraction in 0..1, or duration_s watched (seconds), or OMEGA_UNKNOWN for
   either; completed: nonzero when watched to the end (then neither is needed). */
OMEGA_API omega_status omega_track_view(omega_brain *brain, const char *item_id,
                                        double watch_fraction, double duration_s,
                                        int completed);
/* A title started and abandoned `at_seconds` in. */
OMEGA_API omega_status omega_track_skip(omega_brain *brain, const char *item_id,
                                        double at_seconds);
/* A rating of 0.5..5 stars. */
OMEGA_API omega_status omega_track_rating(omega_brain *brain, const char *item_id,
                                          double stars);
/* A search: its query, the ids it showed, and the one chosen (NULL: none). */
OMEGA_API omega_status omega_track_search(omega_brain *brain, const char *query,
                                          const char *const *results, size_t result_count,
                                          const char *selected);
/* Titles browsed past without starting any. */
OMEGA_API omega_status omega_track_browse(omega_brain *brain, const char *const *items,
                                          size_t count);

/* -- recommending -- */

/* Up to k (1..1000) titles not yet watched or skipped, best first, each with a score and
   a reason, into the caller's `results`. context and filters may be NULL (now, none). */
OMEGA_API omega_status omega_recommend(omega_brain *brain, const omega_context *context,
                                       size_t k, const omega_filters *filters,
                                       omega_results *results);

/* -- sync with the constellation -- */

/* One sync now (push the outbox, pull the release), registering on first use; blocks
   until it is done. `result` may be NULL. With the periodic sync running, it asks that
   for a sync at once and waits for it. */
OMEGA_API omega_status omega_sync_now(omega_brain *brain, omega_sync_result *result);
/* Starts the periodic sync on a thread of its own: on the configured interval, backing
   off through outages without giving up, and running the brain's clock-driven loops. */
OMEGA_API omega_status omega_start_sync(omega_brain *brain);
/* Stops it (a sync in flight gets 10 s to finish). Returns the error that stopped it
   by itself, if one did (say OMEGA_E_AUTH: this TV was refused), else OMEGA_OK. */
OMEGA_API omega_status omega_stop_sync(omega_brain *brain);

/* -- introspection -- */

/* The brain's figures as one JSON object (items, episodes, patterns, outbox, footprint,
   memory tiers, loops, last sync, and the periodic sync's state under "sync") into the
   caller's buffer, NUL-terminated. `needed` (may be NULL) receives the bytes it takes,
   the NUL included; OMEGA_E_BUFFER when `size` is less. The figures change as time
   passes, so the size may too: leave room, or call again while OMEGA_E_BUFFER. */
OMEGA_API omega_status omega_stats(omega_brain *brain, char *json, size_t size,
                                   size_t *needed);

/* -- errors and version (plain C: these never start the interpreter) -- */

/* The sentence of this thread's last failed call ("" after a call that succeeded);
   valid until this thread's next call. */
OMEGA_API const char *omega_last_error(void);
/* "OMEGA_OK", "OMEGA_E_INPUT", ... ("OMEGA_E_UNKNOWN" for other numbers). */
OMEGA_API const char *omega_status_name(omega_status status);
/* OMEGA_VERSION of the library (compare with the header's). */
OMEGA_API const char *omega_version(void);

/* -- api end -- */

#ifdef __cplusplus
}
#endif

#endif /* OMEGA_H */
