/*
 * stress.c — the SDK from C threads and through many opens (tests/sdk/test_sdk_stress.py).
 *
 * Both take a brain the test made (titles m1, m2, ...):
 *
 *   stress threads BRAIN_DIR ITERATIONS
 *       two threads on one brain at once, ITERATIONS calls each: one recommends, the
 *       other tracks views; prints one JSON line of counts and exits 0 if every call
 *       answered OMEGA_OK.
 *   stress cycles BRAIN_DIR CYCLES
 *       opens, tracks a view, recommends and closes CYCLES times; prints one JSON line
 *       with this process's resident memory (VmRSS, kB) after each cycle.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omega.h"

struct worker {
    omega_brain *brain;
    long iterations;
    long ok;
    omega_status first_failure;
    char sentence[512];
};

static void failed(struct worker *w, omega_status status)
{
    if (w->first_failure == OMEGA_OK) {
        w->first_failure = status;
        snprintf(w->sentence, sizeof w->sentence, "%s", omega_last_error());
    }
}

static void *recommender(void *arg)
{
    struct worker *w = arg;
    omega_recommendation items[10];
    char text[8192];
    long i;
    for (i = 0; i < w->iterations; i++) {
        omega_results results = {items, 10, text, sizeof text, 0, 0};
        omega_status status = omega_recommend(w->brain, NULL, 10, NULL, &results);
        if (status == OMEGA_OK && results.count > 0 && items[0].title[0] != '\0')
            w->ok++;
        else
            failed(w, status);
    }
    return NULL;
}

static void *tracker(void *arg)
{
    struct worker *w = arg;
    static const char *const ids[] = {"m1", "m2", "m3", "m4", "m5", "m6"};
    long i;
    for (i = 0; i < w->iterations; i++) {
        omega_status status = omega_track_view(w->brain, ids[i % 6], 0.2 + 0.1 * (double)(i % 8),
                                               OMEGA_UNKNOWN, 0);
        if (status == OMEGA_OK)
            w->ok++;
        else
            failed(w, status);
    }
    return NULL;
}

static long rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *status = fopen("/proc/self/status", "r");
    if (status == NULL) return -1;
    while (fgets(line, sizeof line, status) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(status);
    return kb;
}

static omega_status open_brain(const char *directory, omega_brain **brain)
{
    omega_config *config = NULL;
    omega_status status = omega_config_new(&config);
    if (status == OMEGA_OK) status = omega_config_set_storage_path(config, directory);
    if (status == OMEGA_OK) status = omega_brain_open(config, brain);
    omega_config_free(config);
    return status;
}

static int fail(const char *what, omega_status status)
{
    printf("{\"error\": \"%s: %s: %s\"}\n", what, omega_status_name(status), omega_last_error());
    return 1;
}

static int threads(const char *directory, long iterations)
{
    omega_brain *brain = NULL;
    struct worker a, b;
    pthread_t ta, tb;
    omega_status status = open_brain(directory, &brain);
    if (status != OMEGA_OK) return fail("open", status);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.brain = b.brain = brain;
    a.iterations = b.iterations = iterations;
    pthread_create(&ta, NULL, recommender, &a);
    pthread_create(&tb, NULL, tracker, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    status = omega_brain_close(brain);
    printf("{\"recommend_ok\": %ld, \"track_ok\": %ld, \"close\": \"%s\", "
           "\"recommend_failure\": \"%s\", \"track_failure\": \"%s\"}\n",
           a.ok, b.ok, omega_status_name(status), a.sentence, b.sentence);
    return a.ok == iterations && b.ok == iterations && status == OMEGA_OK ? 0 : 1;
}

static int cycles(const char *directory, long count)
{
    static const char *const ids[] = {"m1", "m2", "m3", "m4", "m5", "m6"};
    omega_brain *brain = NULL;
    omega_recommendation items[10];
    char text[8192];
    omega_status status;
    long i;
    printf("{\"rss_kb\": [");
    for (i = 0; i < count; i++) {
        omega_results results = {items, 10, text, sizeof text, 0, 0};
        status = open_brain(directory, &brain);
        if (status == OMEGA_OK) status = omega_track_view(brain, ids[i % 6], 0.9, OMEGA_UNKNOWN, 1);
        if (status == OMEGA_OK) status = omega_recommend(brain, NULL, 10, NULL, &results);
        if (status == OMEGA_OK) status = omega_brain_close(brain);
        if (status != OMEGA_OK) {
            printf("]}\n");
            return fail("cycle", status);
        }
        printf("%s%ld", i ? ", " : "", rss_kb());
    }
    printf("]}\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "threads") == 0)
        return threads(argv[2], strtol(argv[3], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "cycles") == 0)
        return cycles(argv[2], strtol(argv[3], NULL, 10));
    fprintf(stderr, "usage: %s threads|cycles BRAIN_DIR N\n", argv[0]);
    return 2;
}
