/*
 * C-host RCU benchmarks beside liburcu's memb flavour (Debian liburcu-dev), in one run:
 *   read section    lock, dereference a published node, read a field, unlock; 1 and 2 threads
 *                   (baseline: liburcu memb with its inline read side, _LGPL_SOURCE)
 *   synchronize     with idle readers (registered, outside any section)
 *   call            call_rcu throughput: N calls then a barrier, per call
 * Variants: rr_inline (RR_INLINE read side), rr_export (exported functions).
 *
 * Usage: rcu_bench [CSV|-] [iterations]
 */
#define _GNU_SOURCE
#define _LGPL_SOURCE /* liburcu's inline read side: the fastest form it offers */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "bench_common.h"
#include "ops.h"
#include <refruntime.h>

struct rr_bench_node *rr_bench_published;

static long urcu_read_section(void *unused, long n)
{
    (void)unused;
    long sum = 0;
    urcu_memb_register_thread();
    for (long i = 0; i < n; i++) {
        urcu_memb_read_lock();
        struct rr_bench_node *node = rcu_dereference(rr_bench_published);
        sum += node->value;
        urcu_memb_read_unlock();
    }
    urcu_memb_unregister_thread();
    return sum;
}

static rr_rcu_domain_t *g_domain;

static void *make_domain(size_t v)
{
    (void)v;
    return g_domain;
}

static void keep_domain(size_t v, void *o)
{
    (void)v;
    (void)o;
}

/* ---- synchronize with idle readers ------------------------------------------------------ */

static _Atomic int idle_stop;
static _Atomic int idle_ready;

static void *idle_reader(void *arg)
{
    bool liburcu = arg == NULL;
    if (liburcu)
        urcu_memb_register_thread();
    else {
        rr_rcu_read_lock(g_domain); /* creates this thread's record, then idles outside */
        rr_rcu_read_unlock(g_domain);
    }
    atomic_fetch_add(&idle_ready, 1);
    while (!atomic_load(&idle_stop))
        bench_sleep_ms(1);
    if (liburcu)
        urcu_memb_unregister_thread();
    return NULL;
}

static double time_synchronize(bool liburcu, int rounds)
{
    pthread_t t[2];
    atomic_store(&idle_stop, 0);
    atomic_store(&idle_ready, 0);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, idle_reader, liburcu ? NULL : (void *)1);
    while (atomic_load(&idle_ready) < 2)
        bench_sleep_ms(1);
    double s[BENCH_REPS];
    for (int k = 0; k < BENCH_REPS; k++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < rounds; i++) {
            if (liburcu)
                urcu_memb_synchronize_rcu();
            else
                rr_rcu_synchronize(g_domain);
        }
        s[k] = (bench_now_ns() - t0) / rounds;
    }
    atomic_store(&idle_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return bench_median(s, BENCH_REPS);
}

/* ---- call throughput -------------------------------------------------------------------- */

static _Atomic long calls_done;

static void urcu_cb(struct rcu_head *h)
{
    (void)h;
    atomic_fetch_add_explicit(&calls_done, 1, memory_order_relaxed);
}

static void rr_cb(rr_rcu_head_t *h)
{
    (void)h;
    atomic_fetch_add_explicit(&calls_done, 1, memory_order_relaxed);
}

static double time_calls(bool liburcu, long n)
{
    double s[5];
    if (liburcu)
        urcu_memb_register_thread();
    for (int k = 0; k < 5; k++) {
        void *heads = calloc((size_t)n, liburcu ? sizeof(struct rcu_head) : sizeof(rr_rcu_head_t));
        atomic_store(&calls_done, 0);
        double t0 = bench_now_ns();
        for (long i = 0; i < n; i++) {
            if (liburcu)
                urcu_memb_call_rcu((struct rcu_head *)heads + i, urcu_cb);
            else
                rr_rcu_call(g_domain, (rr_rcu_head_t *)heads + i, rr_cb);
        }
        if (liburcu)
            urcu_memb_barrier();
        else
            rr_rcu_barrier(g_domain);
        s[k] = (bench_now_ns() - t0) / (double)n;
        if (atomic_load(&calls_done) != n)
            fprintf(stderr, "warning: %ld of %ld callbacks ran\n", atomic_load(&calls_done), n);
        free(heads);
    }
    if (liburcu)
        urcu_memb_unregister_thread();
    return bench_median(s, 5);
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 4000000;
    FILE *csv;
    if (bench_open_csv(argc, argv, &csv) != 0)
        return 1;
    if (rr_bench_publish_node() != 0)
        return 1;
    if (rr_rcu_domain_create(&g_domain) != RR_OK)
        return 1;

    static const struct bench_variant read[] = {
        {"liburcu_memb", urcu_read_section},
        {"rr_inline", rcu_read_section_inline},
        {"rr_export", rcu_read_section_export},
    };
    bench_run_table("rcu read section (lock, dereference, read, unlock)", "rcu_read", read, 3, make_domain, keep_domain, n, csv);
    printf("\n");

    double sync_urcu = time_synchronize(true, 2000);
    double sync_rr = time_synchronize(false, 2000);
    double call_urcu = time_calls(true, 200000);
    double call_rr = time_calls(false, 200000);
    printf("rcu writers, C host (median of runs)\n");
    printf("%-34s %12s %12s %10s\n", "operation", "liburcu", "RefRuntime", "ratio");
    printf("%-34s %10.0f ns %10.0f ns %9.2fx\n", "synchronize, 2 idle readers", sync_urcu, sync_rr, sync_rr / sync_urcu);
    printf("%-34s %10.1f ns %10.1f ns %9.2fx\n", "call + barrier, per callback", call_urcu, call_rr, call_rr / call_urcu);
    if (csv) {
        fprintf(csv, "rcu_synchronize_idle,liburcu_memb,1,%.1f,1.000,\n", sync_urcu);
        fprintf(csv, "rcu_synchronize_idle,rr_export,1,%.1f,%.3f,\n", sync_rr, sync_rr / sync_urcu);
        fprintf(csv, "rcu_call,liburcu_memb,1,%.2f,1.000,\n", call_urcu);
        fprintf(csv, "rcu_call,rr_export,1,%.2f,%.3f,\n", call_rr, call_rr / call_urcu);
        fclose(csv);
    }
    rr_rcu_domain_destroy(g_domain);
    free(rr_bench_published);
    return 0;
}
