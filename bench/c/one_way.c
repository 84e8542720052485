/*
 * Prints the one-way cross-CPU latency (a cache line handed from one thread to another and back,
 * halved; bench_ping_pong_one_way_ns in bench_common.h) as a number of nanoseconds on one line.
 * The C tables print it beside their two-thread figures; bench/ringtest.sh uses this program to
 * print it beside the Linux ring's table, which it does not measure itself. Run it under
 * `taskset -c A,B` to measure between two given CPUs.
 */
#define _GNU_SOURCE
#include "bench_common.h"

int main(void)
{
    printf("%.1f\n", bench_ping_pong_one_way_ns());
    return 0;
}
