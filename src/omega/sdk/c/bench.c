/*
 * bench.c — `omega bench sdk`'s C side: a TV process using libomega.so on a brain the
 * bench made. Prints one JSON object: how long the first calls took (the interpreter
 * starting, the brain opening, the first recommendation, the first title embedded:
 * the model loading, last, so that the timed calls run before it), the latency of
 * each timed omega_recommend and of as many trivial calls (a setter: the cost of
 * crossing into the library), in ns, and this process's resident memory before the
 * model loaded and at the end.
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

static double elapsed_ns(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e9 + (double)(b->tv_nsec - a->tv_nsec);
}

/* The time of one trivial call (a setter): the C wrapper, the GIL, the handle, and back. */
static int time_calls(omega_config *config, long calls)
{
    long i;
    printf("\"setter_ns\": [");
    for (i = 0; i < calls; i++) {
        struct timespec a, b;
        omega_status status;
        clock_gettime(CLOCK_MONOTONIC, &a);
        status = omega_config_set_min_quality(config, 0.7);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (status != OMEGA_OK) return fail("omega_config_set_min_quality", status);
        printf("%s%.0f", i ? ", " : "", elapsed_ns(&a, &b));
    }
    printf("], ");
    return 0;
}

static int time_recommend(omega_brain *brain, long calls, long warmup, size_t k)
{
    static omega_recommendation items[100];
    static char text[65536];
    long i;
    printf("\"recommend_ns\": [");
    for (i = 0; i < warmup + calls; i++) {
        omega_results results = {items, 100, text, sizeof text, 0, 0};
        struct timespec a, b;
        omega_status status;
        clock_gettime(CLOCK_MONOTONIC, &a);
        status = omega_recommend(brain, NULL, k, NULL, &results);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (status != OMEGA_OK) return fail("omega_recommend", status);
        if (i >= warmup) printf("%s%.0f", i > warmup ? ", " : "", elapsed_ns(&a, &b));
    }
    printf("], ");
    return 0;
}

int main(int argc, char **argv)
{
    omega_config *config = NULL;
    omega_brain *brain = NULL;
    omega_recommendation items[100];
    char text[65536];
    omega_results results = {items, 100, text, sizeof text, 0, 0};
    omega_item fresh = {"sdk-bench-new", "A Title Nobody Has Seen", "Drama", 2024, 95,
                        "A title added during the bench: the model embeds it."};
    long calls, warmup;
    size_t k;
    double t0, t_config, t_open, t_first, t_import;
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
    t_open = now_ms();
    status = omega_recommend(brain, NULL, k, NULL, &results);
    if (status != OMEGA_OK) return fail("omega_recommend", status);
    t_first = now_ms();

    printf("{");
    if (time_calls(config, calls) || time_recommend(brain, calls, warmup, k)) return 1;
    printf("\"rss_before_model_kb\": %ld, ", status_kb("VmRSS:"));
    t_import = now_ms();
    status = omega_import_catalog(brain, &fresh, 1, NULL); /* loads the model */
    if (status != OMEGA_OK) return fail("omega_import_catalog", status);
    printf("\"config_new_ms\": %.3f, \"brain_open_ms\": %.3f, \"first_recommend_ms\": %.3f, "
           "\"first_import_ms\": %.3f, \"rss_kb\": %ld, \"peak_rss_kb\": %ld}\n",
           t_config - t0, t_open - t_config, t_first - t_open, now_ms() - t_import,
           status_kb("VmRSS:"), status_kb("VmHWM:"));
    omega_config_free(config);
    status = omega_brain_close(brain);
    return status == OMEGA_OK ? 0 : fail("omega_brain_close", status);
}
