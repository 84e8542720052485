/* The loops measured by rr_bench.c. ops.c is compiled twice: once calling the exported
 * functions (suffix _export) and once with RR_INLINE (suffix _inline). */
#ifndef RR_BENCH_OPS_H
#define RR_BENCH_OPS_H

#include <stdlib.h>

#define RR_CAT2(a, b) a##b
#define RR_CAT(a, b) RR_CAT2(a, b)

#define RR_DECLARE_OPS(suffix)                                                                   \
    long RR_CAT(refcount_pair_, suffix)(void *counter, long n);                                  \
    long RR_CAT(arc_clone_drop_, suffix)(void *payload, long n);                                 \
    long RR_CAT(arc_upgrade_drop_, suffix)(void *weak, long n);                                  \
    long RR_CAT(rcu_read_section_, suffix)(void *domain, long n);                             \
    long RR_CAT(revocable_access_, suffix)(void *revocable, long n);                            \
    long RR_CAT(gate_call_, suffix)(void *gate, long n);

/* The shared object every RCU read-side section dereferences (set up by the benchmark). */
struct rr_bench_node {
    long value;
};
extern struct rr_bench_node *rr_bench_published;

/* Allocates and publishes that node (value 42); 0 on success. */
static inline int rr_bench_publish_node(void)
{
    rr_bench_published = calloc(1, sizeof *rr_bench_published);
    if (!rr_bench_published)
        return -1;
    rr_bench_published->value = 42;
    return 0;
}

RR_DECLARE_OPS(export)
RR_DECLARE_OPS(inline)

#endif
