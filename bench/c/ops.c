/* Built twice (Makefile): -DRR_BENCH_SUFFIX=export, and -DRR_INLINE -DRR_BENCH_SUFFIX=inline. */
#include <refruntime.h>

#include "ops.h"

/* inc + dec_and_test on an rr_refcount_t. */
long RR_CAT(refcount_pair_, RR_BENCH_SUFFIX)(void *counter, long n)
{
    rr_refcount_t *r = counter;
    long hits = 0;
    for (long i = 0; i < n; i++) {
        rr_refcount_inc(r);
        hits += rr_refcount_dec_and_test(r);
    }
    return hits;
}

/* rr_arc_clone + rr_arc_drop on a payload the caller keeps alive. */
long RR_CAT(arc_clone_drop_, RR_BENCH_SUFFIX)(void *payload, long n)
{
    long errors = 0;
    for (long i = 0; i < n; i++) {
        errors += rr_arc_clone(payload) != RR_OK;
        errors += rr_arc_drop(payload) != RR_OK;
    }
    return errors;
}

/* rr_weak_upgrade + rr_arc_drop through an rr_weak_t the caller keeps. */
long RR_CAT(arc_upgrade_drop_, RR_BENCH_SUFFIX)(void *weak, long n)
{
    rr_weak_t w = *(rr_weak_t *)weak;
    long misses = 0;
    for (long i = 0; i < n; i++) {
        void *p = NULL;
        rr_weak_upgrade(w, &p);
        if (p)
            rr_arc_drop(p);
        else
            misses++;
    }
    return misses;
}

/* A read-mostly section: lock, dereference the published node, read a field, unlock. */
long RR_CAT(rcu_read_section_, RR_BENCH_SUFFIX)(void *domain, long n)
{
    rr_rcu_domain_t *d = domain;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        rr_rcu_read_lock(d);
        struct rr_bench_node *node = RR_RCU_DEREFERENCE(rr_bench_published);
        sum += node->value;
        rr_rcu_read_unlock(d);
    }
    return sum;
}

/* A guarded access to a hot-unpluggable resource: try_access, read a field, release. */
long RR_CAT(revocable_access_, RR_BENCH_SUFFIX)(void *revocable, long n)
{
    rr_revocable_t *r = revocable;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        struct rr_bench_node *node = rr_revocable_try_access(r);
        if (node) {
            sum += node->value;
            rr_revocable_release(r);
        }
    }
    return sum;
}

/* A driver call through a call-draining gate: enter, read the device's field, leave. The export
 * build calls into the library twice per call; the RR_INLINE build runs both inline (the handle
 * checked in the library's handle table, the gate's domain entered, the handle checked again). */
long RR_CAT(gate_call_, RR_BENCH_SUFFIX)(void *gate, long n)
{
    rr_gate_t *g = gate;
    long sum = 0;
    for (long i = 0; i < n; i++) {
        if (rr_gate_enter(g) == RR_OK) {
            sum += rr_bench_published->value;
            rr_gate_leave(g);
        }
    }
    return sum;
}
