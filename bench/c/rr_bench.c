/*
 * C-host benchmarks: each RefRuntime operation beside the C baseline a user would write,
 * measured in the same run, on one thread and with two threads on the same object, with the
 * cross-CPU latency of the run printed beside.
 *
 *   refcount pair   inc + dec_and_test     baseline: C11 atomic_fetch_add / atomic_fetch_sub
 *   arc clone+drop                         baseline: a hand-written C11-atomics Arc
 *   arc upgrade+drop                       baseline: the same Arc's CAS-loop upgrade
 * Variants: rr_inline (the header's RR_INLINE fast paths), rr_export (the library's exported
 * functions), and for the refcount an empty export call (the bare C -> NativeAOT transition).
 *
 * Usage: rr_bench [CSV|-] [iterations]
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "ops.h"
#include <refruntime.h>

struct rr_bench_node *rr_bench_published;

/* ---- C baselines ------------------------------------------------------------------------ */

static long c11_refcount_pair(void *obj, long n)
{
    _Atomic int32_t *a = obj;
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

static long empty_export_call(void *obj, long n)
{
    long acc = 0;
    (void)obj;
    for (long i = 0; i < n; i++)
        acc += rr_version();
    return acc;
}

/* The Arc a C programmer writes by hand: std's algorithm with C11 atomics, no saturation. */
struct c11_arc {
    _Atomic int32_t strong;
    _Atomic int32_t weak;
    long payload;
};

static void c11_arc_drop(struct c11_arc *a)
{
    if (atomic_fetch_sub_explicit(&a->strong, 1, memory_order_release) == 1) {
        atomic_thread_fence(memory_order_acquire);
        if (atomic_fetch_sub_explicit(&a->weak, 1, memory_order_release) == 1) {
            atomic_thread_fence(memory_order_acquire);
            free(a);
        }
    }
}

static long c11_arc_clone_drop(void *obj, long n)
{
    struct c11_arc *a = obj;
    for (long i = 0; i < n; i++) {
        atomic_fetch_add_explicit(&a->strong, 1, memory_order_relaxed);
        c11_arc_drop(a);
    }
    return 0;
}

static long c11_arc_upgrade_drop(void *obj, long n)
{
    struct c11_arc *a = obj;
    long misses = 0;
    for (long i = 0; i < n; i++) {
        int32_t cur = atomic_load_explicit(&a->strong, memory_order_relaxed);
        bool ok = false;
        while (cur != 0) {
            if (atomic_compare_exchange_weak_explicit(&a->strong, &cur, cur + 1, memory_order_acquire,
                                                      memory_order_relaxed)) {
                ok = true;
                break;
            }
        }
        if (ok)
            c11_arc_drop(a);
        else
            misses++;
    }
    return misses;
}

/* ---- objects ------------------------------------------------------------------------------ */

static void *make_counter(size_t v)
{
    (void)v;
    rr_refcount_t *r = aligned_alloc(64, 64);
    rr_refcount_set(r, 1);
    return r;
}

static void free_plain(size_t v, void *o)
{
    (void)v;
    free(o);
}

static void *make_clone_obj(size_t v)
{
    if (v == 0) {
        struct c11_arc *a = aligned_alloc(64, 64);
        atomic_init(&a->strong, 1);
        atomic_init(&a->weak, 1);
        return a;
    }
    void *p = NULL;
    if (rr_arc_new(8, 64, NULL, NULL, &p) != RR_OK)
        abort();
    return p;
}

static void free_clone_obj(size_t v, void *o)
{
    if (v == 0)
        c11_arc_drop(o);
    else
        rr_arc_drop(o);
}

struct weak_box {
    rr_weak_t w;
    void *strong;
};

static void *make_upgrade_obj(size_t v)
{
    if (v == 0)
        return make_clone_obj(0);
    struct weak_box *b = malloc(sizeof *b);
    b->strong = make_clone_obj(1);
    rr_arc_downgrade(b->strong, &b->w);
    return b; /* the loops read b->w (first member) */
}

static void free_upgrade_obj(size_t v, void *o)
{
    if (v == 0) {
        c11_arc_drop(o);
        return;
    }
    struct weak_box *b = o;
    rr_weak_drop(b->w);
    rr_arc_drop(b->strong);
    free(b);
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 2000000;
    FILE *csv;
    if (bench_open_csv(argc, argv, &csv) != 0)
        return 1;
    rr_refcount_set_warn_handler(NULL, NULL);

    static const struct bench_variant refcount[] = {
        {"c11_atomics", c11_refcount_pair},
        {"rr_inline", refcount_pair_inline},
        {"rr_export", refcount_pair_export},
        {"empty_export_call", empty_export_call},
    };
    bench_run_table("refcount inc+dec_and_test pair", "refcount_pair", refcount, 4, make_counter, free_plain, n, csv);
    printf("\n");

    static const struct bench_variant clone[] = {
        {"c11_arc", c11_arc_clone_drop},
        {"rr_inline", arc_clone_drop_inline},
        {"rr_export", arc_clone_drop_export},
    };
    bench_run_table("arc clone+drop", "arc_clone_drop", clone, 3, make_clone_obj, free_clone_obj, n, csv);
    printf("\n");

    static const struct bench_variant upgrade[] = {
        {"c11_arc", c11_arc_upgrade_drop},
        {"rr_inline", arc_upgrade_drop_inline},
        {"rr_export", arc_upgrade_drop_export},
    };
    bench_run_table("arc upgrade+drop", "arc_upgrade_drop", upgrade, 3, make_upgrade_obj, free_upgrade_obj, n, csv);

    if (csv)
        fclose(csv);
    return 0;
}
