/* Timing helpers shared by the C-host benchmarks: monotonic clock, repeated runs, medians. */
#ifndef RR_BENCH_COMMON_H
#define RR_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of @n samples (sorts in place). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline void bench_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Keeps the compiler from deleting a loop whose result is otherwise unused. */
#define BENCH_KEEP(x) __asm__ volatile("" : : "r"(x) : "memory")

#include <pthread.h>
#include <stdatomic.h>

#define BENCH_REPS 15

/* A measured loop: @n iterations of one operation on @obj; returns something to keep. */
typedef long (*bench_loop_fn)(void *obj, long n);

/* ns per iteration of @fn on one thread, median of BENCH_REPS runs (after a warm-up). */
static inline double bench_time_single(bench_loop_fn fn, void *obj, long n)
{
    double s[BENCH_REPS];
    fn(obj, n / 10);
    for (int k = 0; k < BENCH_REPS; k++) {
        double t0 = bench_now_ns();
        BENCH_KEEP(fn(obj, n));
        s[k] = (bench_now_ns() - t0) / (double)n;
    }
    return bench_median(s, BENCH_REPS);
}

struct bench_contended {
    bench_loop_fn fn;
    void *obj;
    long n;
    _Atomic int *go;
    double ns;
};

static void *bench_contended_thread(void *arg)
{
    struct bench_contended *c = arg;
    while (!atomic_load(c->go))
        ;
    double t0 = bench_now_ns();
    BENCH_KEEP(c->fn(c->obj, c->n));
    c->ns = (bench_now_ns() - t0) / (double)c->n;
    return NULL;
}

/* ns per iteration per thread with two threads running @fn on the same @obj, median of
 * BENCH_REPS runs. */
static inline double bench_time_two_threads(bench_loop_fn fn, void *obj, long n)
{
    double s[BENCH_REPS];
    for (int k = 0; k < BENCH_REPS; k++) {
        _Atomic int go = 0;
        struct bench_contended c[2] = {{fn, obj, n, &go, 0}, {fn, obj, n, &go, 0}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, bench_contended_thread, &c[i]);
        atomic_store(&go, 1);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        s[k] = 0.5 * (c[0].ns + c[1].ns);
    }
    return bench_median(s, BENCH_REPS);
}

/* One-way cache-line transfer latency between two threads (round trip / 2), median of 5 runs of
 * up to 200000 round trips. A run ends after 100 ms: on a busy machine a round trip can wait for a
 * time slice (milliseconds), and the reading should say so, not take minutes. */
static _Atomic int bench_pp_flag;
static _Atomic int bench_pp_stop;

static void *bench_pong(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&bench_pp_stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&bench_pp_flag, memory_order_acquire) == 1)
            atomic_store_explicit(&bench_pp_flag, 0, memory_order_release);
    }
    return NULL;
}

static inline double bench_ping_pong_one_way_ns(void)
{
    const long n = 200000;
    double s[5];
    for (int k = 0; k < 5; k++) {
        pthread_t t;
        atomic_store(&bench_pp_flag, 0);
        atomic_store(&bench_pp_stop, 0);
        pthread_create(&t, NULL, bench_pong, NULL);
        double t0 = bench_now_ns(), cutoff = t0 + 100e6;
        long i = 0;
        int late = 0;
        for (; i < n && !late; i++) {
            atomic_store_explicit(&bench_pp_flag, 1, memory_order_release);
            for (unsigned spins = 1; atomic_load_explicit(&bench_pp_flag, memory_order_acquire) != 0; spins++) {
                if ((spins & 1023) == 0 && bench_now_ns() > cutoff) {
                    late = 1; /* the partner is not running: this run ends here */
                    break;
                }
            }
            if ((i & 255) == 255 && bench_now_ns() > cutoff)
                late = 1;
        }
        s[k] = (bench_now_ns() - t0) / (2.0 * (double)i);
        atomic_store(&bench_pp_stop, 1);
        pthread_join(t, NULL);
    }
    return bench_median(s, 5);
}

/* CPU time between two snapshots of the kernel's counters (proc(5): the cpu line of /proc/stat,
 * utime + stime of /proc/self/stat, both in clock ticks): what share of all CPUs' time other
 * processes used (busy time not ours), and what share the hypervisor took (steal). ok == 0 where
 * /proc cannot be read. */
struct bench_cpu {
    long long busy, steal, total, self;
    int ok;
};

static inline struct bench_cpu bench_cpu_now(void)
{
    struct bench_cpu c = {0, 0, 0, 0, 0};
    long long f[8] = {0};
    FILE *st = fopen("/proc/stat", "r");
    if (!st)
        return c;
    int got = fscanf(st, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &f[0], &f[1], &f[2], &f[3], &f[4],
                     &f[5], &f[6], &f[7]);
    fclose(st);
    char buf[1024];
    FILE *me = fopen("/proc/self/stat", "r");
    if (got < 7 || !me) {
        if (me)
            fclose(me);
        return c;
    }
    size_t len = fread(buf, 1, sizeof buf - 1, me);
    fclose(me);
    buf[len] = 0;
    /* Fields after the ")" that ends the command name start at field 3; utime and stime are
     * fields 14 and 15. */
    char *p = strrchr(buf, ')');
    long long utime, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &utime, &stime) != 2)
        return c;
    c.busy = f[0] + f[1] + f[2] + f[5] + f[6];
    c.steal = f[7];
    c.total = c.busy + c.steal + f[3] + f[4];
    c.self = utime + stime;
    c.ok = 1;
    return c;
}

static inline void bench_cpu_between(struct bench_cpu a, struct bench_cpu b, double *others, double *steal)
{
    double total = (double)(b.total - a.total > 0 ? b.total - a.total : 1);
    long long theirs = (b.busy - a.busy) - (b.self - a.self);
    *others = (double)(theirs > 0 ? theirs : 0) / total;
    *steal = (double)(b.steal - a.steal) / total;
}

struct bench_variant {
    const char *name;
    bench_loop_fn fn;
};

/* Runs every variant on one thread and on two, prints the table (ratios against variant 0),
 * and appends CSV rows to @csv (if not NULL). @make_obj/@free_obj give each variant its object. */
static inline void bench_run_table(const char *title, const char *csv_name, const struct bench_variant *v,
                                   size_t nv, void *(*make_obj)(size_t variant), void (*free_obj)(size_t variant, void *obj),
                                   long n, FILE *csv)
{
    double one[16], two[16];
    double lat0 = bench_ping_pong_one_way_ns();
    for (size_t i = 0; i < nv && i < 16; i++) {
        void *o = make_obj(i);
        one[i] = bench_time_single(v[i].fn, o, n);
        two[i] = bench_time_two_threads(v[i].fn, o, n / 4);
        free_obj(i, o);
    }
    double lat = 0.5 * (lat0 + bench_ping_pong_one_way_ns());
    printf("%s, C host, ns per iteration (median of %d runs of %ld)\n", title, BENCH_REPS, n);
    printf("cross-CPU one-way latency in this run: %.1f ns\n", lat);
    printf("%-20s %12s %10s %14s %10s\n", "variant", "1 thread", "ratio", "2 threads", "ratio");
    for (size_t i = 0; i < nv; i++)
        printf("%-20s %12.2f %9.2fx %14.2f %9.2fx\n", v[i].name, one[i], one[i] / one[0], two[i],
               two[i] / two[0]);
    if (csv) {
        for (size_t i = 0; i < nv; i++) {
            fprintf(csv, "%s,%s,1,%.3f,%.3f,\n", csv_name, v[i].name, one[i], one[i] / one[0]);
            fprintf(csv, "%s,%s,2,%.3f,%.3f,%.1f\n", csv_name, v[i].name, two[i], two[i] / two[0], lat);
        }
    }
}

/* Opens the CSV file named by argv[1] (absent or "-": no CSV) and writes the header row.
 * Returns 0 on success (with *@out NULL when there is no CSV), -1 if the file cannot be opened. */
static inline int bench_open_csv(int argc, char **argv, FILE **out)
{
    *out = NULL;
    if (argc < 2 || strcmp(argv[1], "-") == 0)
        return 0;
    *out = fopen(argv[1], "w");
    if (!*out) {
        perror(argv[1]);
        return -1;
    }
    fprintf(*out, "benchmark,variant,threads,ns_per_op,ratio_vs_baseline,latency_ns\n");
    return 0;
}

#endif
