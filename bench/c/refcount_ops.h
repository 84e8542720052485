/* The refcount pair measured by refcount_bench.c, compiled once per mode (export / RR_INLINE):
 * RR_BENCH_SUFFIX names the functions. */
#include <refruntime.h>

#define RR_CAT2(a, b) a##b
#define RR_CAT(a, b) RR_CAT2(a, b)

/* One inc + dec_and_test pair per iteration, @n iterations; returns how many tests were true. */
long RR_CAT(pair_loop_, RR_BENCH_SUFFIX)(rr_refcount_t *r, long n);
