/* Built twice (see Makefile): -DRR_BENCH_SUFFIX=export, and -DRR_INLINE -DRR_BENCH_SUFFIX=inline. */
#include "refcount_ops.h"

long RR_CAT(pair_loop_, RR_BENCH_SUFFIX)(rr_refcount_t *r, long n)
{
    long hits = 0;
    for (long i = 0; i < n; i++) {
        rr_refcount_inc(r);
        hits += rr_refcount_dec_and_test(r);
    }
    return hits;
}
