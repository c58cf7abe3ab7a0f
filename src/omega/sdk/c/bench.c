/*
 * bench.c — `omega bench sdk`'s C side: a TV process using libomega.so on a brain the
 * bench made. Prints one JSON object: how long the first calls took (the interpreter
 * starting, the brain opening, the first recommendation, the first title embedded:
 * the model loading), the latency of each timed omega_recommend (ns), and this
 * process's resident memory before the model loaded and at the end.
 *
 *     bench BRAIN_DIR CALLS WARMUP K
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omega.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static long status_kb(const char *field)
{
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    FILE *status = fopen("/proc/self/status", "r");
    if (status == NULL) return -1;
    while (fgets(line, sizeof line, status) != NULL)
        if (strncmp(line, field, n) == 0) kb = strtol(line + n, NULL, 10);
    fclose(status);
    return kb;
}

static int fail(const char *what, omega_status status)
{
    fprintf(stderr, "%s: %s: %s\n", what, omega_status_name(status), omega_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    omega_config *config = NULL;
    omega_brain *brain = NULL;
    omega_recommendation items[100];
    char text[65536];
    omega_item fresh = {"sdk-bench-new", "A Title Nobody Has Seen", "Drama", 2024, 95,
                        "A title added during the bench: the model embeds it."};
    long calls, warmup, i;
    size_t k;
    double t0, t_config, t_open, t_first, t_import;
    long rss_before_model;
    omega_status status;
    if (argc != 5) {
        fprintf(stderr, "usage: %s BRAIN_DIR CALLS WARMUP K\n", argv[0]);
        return 2;
    }
    calls = strtol(argv[2], NULL, 10);
    warmup = strtol(argv[3], NULL, 10);
    k = (size_t)strtoul(argv[4], NULL, 10);
    if (calls < 1 || warmup < 0 || k < 1 || k > 100) return 2;

    t0 = now_ms();
    status = omega_config_new(&config); /* starts the interpreter, imports Omega */
    if (status != OMEGA_OK) return fail("omega_config_new", status);
    t_config = now_ms();
    status = omega_config_set_storage_path(config, argv[1]);
    if (status == OMEGA_OK) status = omega_brain_open(config, &brain);
    if (status != OMEGA_OK) return fail("omega_brain_open", status);
    omega_config_free(config);
    t_open = now_ms();
    {
        omega_results results = {items, 100, text, sizeof text, 0, 0};
        status = omega_recommend(brain, NULL, k, NULL, &results);
        if (status != OMEGA_OK) return fail("omega_recommend", status);
    }
    t_first = now_ms();
    rss_before_model = status_kb("VmRSS:");
    status = omega_import_catalog(brain, &fresh, 1, NULL); /* loads the model */
    if (status != OMEGA_OK) return fail("omega_import_catalog", status);
    t_import = now_ms();

    printf("{\"config_new_ms\": %.3f, \"brain_open_ms\": %.3f, \"first_recommend_ms\": %.3f, "
           "\"first_import_ms\": %.3f, \"recommend_ns\": [",
           t_config - t0, t_open - t_config, t_first - t_open, t_import - t_first);
    for (i = 0; i < warmup + calls; i++) {
        omega_results results = {items, 100, text, sizeof text, 0, 0};
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        status = omega_recommend(brain, NULL, k, NULL, &results);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (status != OMEGA_OK) return fail("omega_recommend", status);
        if (i >= warmup)
            printf("%s%lld", i > warmup ? ", " : "",
                   (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    }
    printf("], \"rss_before_model_kb\": %ld, \"rss_kb\": %ld, \"peak_rss_kb\": %ld}\n",
           rss_before_model, status_kb("VmRSS:"), status_kb("VmHWM:"));
    status = omega_brain_close(brain);
    return status == OMEGA_OK ? 0 : fail("omega_brain_close", status);
}
