/*
 * C-host guarded access to a hot-unpluggable resource, beside the lock-based designs a C driver
 * would otherwise write (one run, 1 and 2 threads on the same object):
 *   rwlock             pthread_rwlock_rdlock, check the resource pointer, read a field, unlock
 *                      (the baseline: removal takes the write lock and clears the pointer)
 *   mutex              the same under a pthread_mutex
 *   revocable_inline   rr_revocable_try_access / rr_revocable_release with RR_INLINE
 *   revocable_export   the same through the exported functions
 *   gate_inline        rr_gate_enter / rr_gate_leave with RR_INLINE (no call into the library)
 *   gate_export        the same through the exported functions (a handle-table lookup each)
 * Usage: revoke_bench [CSV|-] [iterations]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "bench_common.h"
#include "ops.h"
#include <refruntime.h>

struct rr_bench_node *rr_bench_published;

struct locked_resource {
    pthread_rwlock_t rw;
    pthread_mutex_t mu;
    struct rr_bench_node *_Atomic node; /* NULL once removed */
};

static long rwlock_access(void *obj, long n)
{
    struct locked_resource *l = obj;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        pthread_rwlock_rdlock(&l->rw);
        struct rr_bench_node *node = atomic_load_explicit(&l->node, memory_order_relaxed);
        if (node)
            sum += node->value;
        pthread_rwlock_unlock(&l->rw);
    }
    return sum;
}

static long mutex_access(void *obj, long n)
{
    struct locked_resource *l = obj;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&l->mu);
        struct rr_bench_node *node = atomic_load_explicit(&l->node, memory_order_relaxed);
        if (node)
            sum += node->value;
        pthread_mutex_unlock(&l->mu);
    }
    return sum;
}

static struct locked_resource g_locked;
static rr_rcu_domain_t *g_domain;

static void *make_obj(size_t variant)
{
    void *o = NULL;
    switch (variant) {
    case 0:
    case 1:
        return &g_locked;
    case 2:
    case 3:
        if (rr_revocable_create(g_domain, rr_bench_published, NULL, NULL, (rr_revocable_t **)&o) != RR_OK)
            abort();
        return o;
    default:
        if (rr_gate_create((rr_gate_t **)&o) != RR_OK)
            abort();
        return o;
    }
}

static void free_obj(size_t variant, void *o)
{
    if (variant == 2 || variant == 3)
        rr_revocable_destroy(o);
    else if (variant >= 4)
        rr_gate_destroy(o);
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 4000000;
    FILE *csv;
    if (bench_open_csv(argc, argv, &csv) != 0)
        return 1;
    if (rr_bench_publish_node() != 0)
        return 1;
    pthread_rwlock_init(&g_locked.rw, NULL);
    pthread_mutex_init(&g_locked.mu, NULL);
    atomic_store(&g_locked.node, rr_bench_published);
    if (rr_rcu_domain_create(&g_domain) != RR_OK)
        return 1;
    static const struct bench_variant v[] = {
        {"rwlock", rwlock_access},
        {"mutex", mutex_access},
        {"revocable_inline", revocable_access_inline},
        {"revocable_export", revocable_access_export},
        {"gate_inline", gate_call_inline},
        {"gate_export", gate_call_export},
    };
    bench_run_table("guarded access to a removable resource (access, read, release)", "guarded_access", v, 6,
                    make_obj, free_obj, n, csv);
    if (csv)
        fclose(csv);
    rr_rcu_domain_destroy(g_domain);
    free(rr_bench_published);
    return 0;
}
