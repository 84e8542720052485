/*
 * C-host benchmark of the refcount pair (inc + dec_and_test) against C11 atomics, in one run:
 *   c11_atomics   atomic_fetch_add(relaxed) + atomic_fetch_sub(release)/acquire fence: baseline
 *   rr_inline     the header's RR_INLINE fast paths (same layout, saturation checks included)
 *   rr_export     the exported functions of librefruntime.so (NativeAOT [UnmanagedCallersOnly])
 *   rr_version    an empty export call: the bare cost of the C -> NativeAOT transition
 * Uncontended (one thread), and with 2 threads hammering the same counter. Prints a table and
 * writes CSV to the path in argv[1] (optional). Each figure is the median of REPS runs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "bench_common.h"
#include <refruntime.h>

long pair_loop_export(rr_refcount_t *r, long n);
long pair_loop_inline(rr_refcount_t *r, long n);

#define REPS 15

static long pair_loop_c11(rr_refcount_t *r, long n)
{
    _Atomic int32_t *a = (_Atomic int32_t *)&r->refs;
    long hits = 0;
    for (long i = 0; i < n; i++) {
        atomic_fetch_add_explicit(a, 1, memory_order_relaxed);
        if (atomic_fetch_sub_explicit(a, 1, memory_order_release) == 1) {
            atomic_thread_fence(memory_order_acquire);
            hits++;
        }
    }
    return hits;
}

static long empty_export_loop(rr_refcount_t *r, long n)
{
    long acc = 0;
    (void)r;
    for (long i = 0; i < n; i++)
        acc += rr_version();
    return acc;
}

typedef long (*loop_fn)(rr_refcount_t *, long);

struct variant {
    const char *name;
    loop_fn fn;
};

static const struct variant variants[] = {
    {"c11_atomics", pair_loop_c11},
    {"rr_inline", pair_loop_inline},
    {"rr_export", pair_loop_export},
    {"empty_export_call", empty_export_loop},
};
#define NVARIANTS (sizeof variants / sizeof variants[0])

/* ns per iteration of @fn on one thread, median of REPS. */
static double time_single(loop_fn fn, long n)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(1);
    double s[REPS];
    fn(&r, n / 10); /* warm-up */
    for (int k = 0; k < REPS; k++) {
        double t0 = bench_now_ns();
        BENCH_KEEP(fn(&r, n));
        s[k] = (bench_now_ns() - t0) / (double)n;
    }
    if (rr_refcount_read(&r) != 1)
        fprintf(stderr, "warning: counter ended at %d\n", rr_refcount_read(&r));
    return bench_median(s, REPS);
}

struct contended {
    loop_fn fn;
    rr_refcount_t *r;
    long n;
    _Atomic int *go;
    double ns;
};

static void *contended_thread(void *arg)
{
    struct contended *c = arg;
    while (!atomic_load(c->go))
        ;
    double t0 = bench_now_ns();
    BENCH_KEEP(c->fn(c->r, c->n));
    c->ns = (bench_now_ns() - t0) / (double)c->n;
    return NULL;
}

/* ns per iteration per thread with 2 threads on one counter, median of REPS. */
static double time_two_threads(loop_fn fn, long n)
{
    double s[REPS];
    for (int k = 0; k < REPS; k++) {
        rr_refcount_t r = RR_REFCOUNT_INIT(1);
        _Atomic int go = 0;
        struct contended c[2] = {{fn, &r, n, &go, 0}, {fn, &r, n, &go, 0}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, contended_thread, &c[i]);
        atomic_store(&go, 1);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        s[k] = 0.5 * (c[0].ns + c[1].ns);
    }
    return bench_median(s, REPS);
}

/* One-way cache-line transfer latency between two threads (ping-pong / 2), median of REPS. */
static _Atomic int pp_flag;
static void *pong(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        while (atomic_load_explicit(&pp_flag, memory_order_acquire) != 1)
            ;
        atomic_store_explicit(&pp_flag, 0, memory_order_release);
    }
    return NULL;
}

static double ping_pong_one_way_ns(void)
{
    const long n = 200000;
    double s[5];
    for (int k = 0; k < 5; k++) {
        long nn = n;
        pthread_t t;
        atomic_store(&pp_flag, 0);
        pthread_create(&t, NULL, pong, &nn);
        double t0 = bench_now_ns();
        for (long i = 0; i < n; i++) {
            atomic_store_explicit(&pp_flag, 1, memory_order_release);
            while (atomic_load_explicit(&pp_flag, memory_order_acquire) != 0)
                ;
        }
        s[k] = (bench_now_ns() - t0) / (2.0 * (double)n);
        pthread_join(t, NULL);
    }
    return bench_median(s, 5);
}

int main(int argc, char **argv)
{
    long n = 2000000;
    if (argc > 2)
        n = atol(argv[2]);
    double one[NVARIANTS], two[NVARIANTS];
    double latency_before = ping_pong_one_way_ns();
    for (size_t v = 0; v < NVARIANTS; v++)
        one[v] = time_single(variants[v].fn, n);
    for (size_t v = 0; v < NVARIANTS; v++)
        two[v] = time_two_threads(variants[v].fn, n / 4);
    double latency_after = ping_pong_one_way_ns();

    printf("refcount inc+dec_and_test pair, C host, ns per pair (median of %d runs of %ld)\n", REPS, n);
    printf("cross-CPU one-way latency: %.1f ns before, %.1f ns after\n", latency_before, latency_after);
    printf("%-18s %12s %10s %14s %10s\n", "variant", "1 thread", "ratio", "2 threads", "ratio");
    for (size_t v = 0; v < NVARIANTS; v++)
        printf("%-18s %12.2f %9.2fx %14.2f %9.2fx\n", variants[v].name, one[v], one[v] / one[0],
               two[v], two[v] / two[0]);
    if (argc > 1 && strcmp(argv[1], "-") != 0) {
        FILE *f = fopen(argv[1], "w");
        if (!f) {
            perror(argv[1]);
            return 1;
        }
        fprintf(f, "benchmark,variant,threads,ns_per_op,ratio_vs_baseline,latency_ns\n");
        for (size_t v = 0; v < NVARIANTS; v++) {
            fprintf(f, "refcount_pair,%s,1,%.3f,%.3f,\n", variants[v].name, one[v], one[v] / one[0]);
            fprintf(f, "refcount_pair,%s,2,%.3f,%.3f,%.1f\n", variants[v].name, two[v], two[v] / two[0],
                    0.5 * (latency_before + latency_after));
        }
        fclose(f);
    }
    return 0;
}
