/*
 * tv.c — what a TV's firmware does with the Omega SDK: configure, open the household's
 * brain, import the catalog, track a viewing session, show recommendations with their
 * reasons, sync with the constellation, print the brain's figures, close.
 *
 *     omega sdk build --out sdk-build
 *     gcc -std=c99 -Wall -Wextra -Isdk-build/include sdk/examples/tv.c -o tv \
 *         -Lsdk-build/lib -lomega -Wl,-rpath,sdk-build/lib
 *     ./tv /tmp/tv-brain sdk/examples/catalog.csv \
 *         [http://127.0.0.1:8000 [tv-0042/device.cert tv-0042/device.key]]
 *
 * Exits 0 when every step worked, 1 with the library's sentence when one did not.
 */
#include <stdio.h>
#include <stdlib.h>

#include "omega.h"

/* Every call returns a status; the sentence is omega_last_error()'s. */
#define CHECK(call)                                                                  \
    do {                                                                             \
        omega_status status_ = (call);                                               \
        if (status_ != OMEGA_OK) {                                                   \
            fprintf(stderr, "%s failed: %s: %s\n", #call, omega_status_name(status_), \
                    omega_last_error());                                             \
            return 1;                                                                \
        }                                                                            \
    } while (0)

static int configure(int argc, char **argv, omega_config **config)
{
    CHECK(omega_config_new(config));
    CHECK(omega_config_set_storage_path(*config, argv[1]));
    CHECK(omega_config_set_min_quality(*config, 0.7));
    CHECK(omega_config_set_max_patterns(*config, 5000));
    if (argc > 3) {
        CHECK(omega_config_set_constellation_url(*config, argv[3]));
        CHECK(omega_config_set_sync_interval(*config, 1800.0));
    }
    if (argc > 5) CHECK(omega_config_set_manufacturer_certificate(*config, argv[4], argv[5]));
    return 0;
}

/* One evening: two films watched, one abandoned, one rated, a search, a browse. */
static int watch_an_evening(omega_brain *brain)
{
    const char *shown[] = {"m4", "m12", "m2"};
    const char *browsed[] = {"m8", "m9"};
    CHECK(omega_track_view(brain, "m1", 0.97, OMEGA_UNKNOWN, 1));
    CHECK(omega_track_view(brain, "m3", OMEGA_UNKNOWN, 150 * 60.0, 0));
    CHECK(omega_track_skip(brain, "m5", 95.0));
    CHECK(omega_track_rating(brain, "m1", 5.0));
    CHECK(omega_track_search(brain, "mob films", shown, 3, "m4"));
    CHECK(omega_track_view(brain, "m4", 0.9, OMEGA_UNKNOWN, 0));
    CHECK(omega_track_browse(brain, browsed, 2));
    printf("tracked 7 events\n");
    /* A mistake is a code and a sentence, never a crash. */
    if (omega_track_view(brain, "no-such-title", 0.5, OMEGA_UNKNOWN, 0) == OMEGA_E_INPUT)
        printf("an unknown title: OMEGA_E_INPUT (%s)\n", omega_last_error());
    return 0;
}

static int recommend(omega_brain *brain)
{
    omega_recommendation items[5];
    char text[4096];
    omega_results results = {items, 5, text, sizeof text, 0, 0};
    omega_context evening = {OMEGA_TIME_EVENING, OMEGA_DAY_NOW};
    size_t i;
    CHECK(omega_recommend(brain, &evening, 5, NULL, &results));
    printf("recommendations:\n");
    for (i = 0; i < results.count; i++)
        printf("  %zu. %s (%.3f) %s\n", i + 1, items[i].title, items[i].score,
               items[i].reason);
    return 0;
}

static int sync_with_constellation(omega_brain *brain)
{
    omega_sync_result sync;
    CHECK(omega_sync_now(brain, &sync));
    printf("synced: pushed %llu, accepted %llu, pulled %llu, release version %llu, "
           "%llu bytes up, %llu down\n",
           (unsigned long long)sync.pushed, (unsigned long long)sync.accepted,
           (unsigned long long)sync.pulled, (unsigned long long)sync.version,
           (unsigned long long)sync.push_bytes, (unsigned long long)sync.pull_bytes);
    /* The periodic sync runs on its own thread while the TV goes on. */
    CHECK(omega_start_sync(brain));
    CHECK(omega_track_view(brain, "m2", 0.8, OMEGA_UNKNOWN, 0));
    CHECK(omega_stop_sync(brain));
    printf("periodic sync: started and stopped\n");
    return 0;
}

static int print_stats(omega_brain *brain)
{
    size_t size = 0, needed = 0;
    char *json = NULL;
    omega_status status;
    /* A buffer too small says how big it must be; the figures move on meanwhile (time
       passes), so ask again until it fits. */
    while ((status = omega_stats(brain, json, size, &needed)) == OMEGA_E_BUFFER) {
        free(json);
        size = needed + 256;
        json = malloc(size);
        if (json == NULL) return 1;
    }
    if (status == OMEGA_OK) printf("stats (%zu bytes): %.160s...\n", needed, json);
    else fprintf(stderr, "omega_stats failed: %s\n", omega_last_error());
    free(json);
    return status != OMEGA_OK;
}

int main(int argc, char **argv)
{
    omega_config *config = NULL;
    omega_brain *brain = NULL;
    size_t imported = 0;
    int failed;
    if (argc < 3 || argc == 5) {
        fprintf(stderr, "usage: %s BRAIN_DIR CATALOG [CONSTELLATION_URL [CERT KEY]]\n", argv[0]);
        return 2;
    }
    printf("omega %s\n", omega_version());
    if (configure(argc, argv, &config) != 0) return 1;
    CHECK(omega_brain_open(config, &brain));
    CHECK(omega_config_free(config)); /* the brain keeps its own copy */
    CHECK(omega_import_catalog_file(brain, argv[2], &imported));
    printf("imported %zu titles\n", imported);
    failed = watch_an_evening(brain) || recommend(brain) ||
             (argc > 3 && sync_with_constellation(brain)) || print_stats(brain);
    CHECK(omega_brain_close(brain));
    printf(failed ? "failed\n" : "closed\n");
    return failed;
}
