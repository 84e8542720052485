/*
 * Cross-thread buffer throughput for C hosts, polling mode, two threads: a driver thread sends
 * N items and collects each back; a device thread takes each item and returns it. At most 256
 * in flight, at batch sizes 1..32 (a batch publishes once; the device publishes once per
 * drained batch of up to the same size). Designs:
 *   spsc_floor  two plain C single-producer/single-consumer rings of 16-byte items (request and
 *               completion), head/tail on their own cache lines: the floor for a shared-memory
 *               queue between two CPUs;
 *   rr_vq       RefRuntime's split virtqueue through the C ABI (rr_vq_driver_add / publish /
 *               get_used, rr_vq_device_pop / add_used / publish; every call an export);
 *   rr_vq_batch the same with the batch calls (rr_vq_driver_add_chains, _get_used_batch,
 *               rr_vq_device_pop_batch, _add_used_batch): one export per batch instead of per
 *               buffer on each of the four;
 * plus what the machine did meanwhile: the one-way cross-CPU latency before and after, the CPU
 * time other processes and the hypervisor took, and how far the 5 runs of a cell were apart. Two
 * polling threads need both CPUs; when they do not get them, that is said under the table.
 * Prints the table (progress on stderr while it runs, on a terminal); with a file argument,
 * writes CSV rows (benchmark,variant,threads,ns_per_op,ratio_vs_baseline,latency_ns).
 *
 * `vq_bench --cost` instead measures the CPU work per buffer with one thread playing both sides
 * at batch 32 (no cross-CPU transfer at all): the plain C rings, the ring through the batch
 * calls, and through the per-buffer exports; the C counterpart of the .NET
 * VirtqueueCostBenchmarks. Median of 5 runs.
 */
#define _GNU_SOURCE
#include <refruntime.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"

#define QSIZE 256
#ifndef ITEMS
#define ITEMS (1 << 20) /* buffers per run (-DITEMS=... for a quick look at the output) */
#endif

struct item {
    uint64_t addr;
    uint32_t len;
    uint32_t id;
};

/* A single-producer/single-consumer ring: the producer owns tail, the consumer owns head. */
struct spsc {
    _Alignas(64) _Atomic uint32_t tail;
    _Alignas(64) _Atomic uint32_t head;
    _Alignas(64) struct item slot[QSIZE];
};

static struct spsc to_dev, to_drv;
static _Atomic int go_flag;
static int g_batch;
/* A run ends after ITEMS buffers or RUN_LIMIT_NS, whichever comes first: on a quiet VM every run
 * finishes its buffers in well under a second; on a busy one a run of polling threads can take
 * minutes, and the time per buffer of what did finish is the figure. The driver side sets the
 * flag; the device side reads it on its own cache line. */
#define RUN_LIMIT_NS 1e9
static _Alignas(64) _Atomic int g_stop;

/* Push up to @n items from @src; returns how many fit. Publishes tail once. */
static int spsc_push(struct spsc *q, const struct item *src, int n)
{
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    int room = QSIZE - (int)(t - h), k = 0;
    for (; k < n && k < room; k++)
        q->slot[(t + (uint32_t)k) & (QSIZE - 1)] = src[k];
    if (k)
        atomic_store_explicit(&q->tail, t + (uint32_t)k, memory_order_release);
    return k;
}

static int spsc_pop(struct spsc *q, struct item *dst, int n)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    int avail = (int)(t - h), k = 0;
    for (; k < n && k < avail; k++)
        dst[k] = q->slot[(h + (uint32_t)k) & (QSIZE - 1)];
    if (k)
        atomic_store_explicit(&q->head, h + (uint32_t)k, memory_order_release);
    return k;
}

static void *spsc_device(void *arg)
{
    (void)arg;
    struct item buf[32];
    long served = 0;
    while (!atomic_load(&go_flag))
        ;
    while (served < ITEMS && !atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        int n = spsc_pop(&to_dev, buf, g_batch);
        int off = 0;
        while (off < n)
            off += spsc_push(&to_drv, buf + off, n - off);
        served += n;
    }
    return NULL;
}

static double spsc_run(int batch)
{
    memset(&to_dev, 0, sizeof to_dev);
    memset(&to_drv, 0, sizeof to_drv);
    g_batch = batch;
    atomic_store(&go_flag, 0);
    atomic_store(&g_stop, 0);
    pthread_t t;
    pthread_create(&t, NULL, spsc_device, NULL);
    struct item buf[32];
    long sent = 0, done = 0;
    int inflight = 0;
    atomic_store(&go_flag, 1);
    double t0 = bench_now_ns();
    for (unsigned loops = 1; done < ITEMS; loops++) {
        if ((loops & 1023) == 0 && bench_now_ns() - t0 > RUN_LIMIT_NS)
            break;
        int want = batch;
        if (want > QSIZE - inflight)
            want = QSIZE - inflight;
        if (want > ITEMS - sent)
            want = (int)(ITEMS - sent);
        for (int k = 0; k < want; k++)
            buf[k] = (struct item){0x1000, 16, (uint32_t)(sent + k)};
        int pushed = want > 0 ? spsc_push(&to_dev, buf, want) : 0;
        sent += pushed;
        inflight += pushed;
        int got;
        while ((got = spsc_pop(&to_drv, buf, 32)) > 0) {
            done += got;
            inflight -= got;
        }
    }
    double ns = (bench_now_ns() - t0) / (double)(done ? done : 1);
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    return ns;
}

/* ---- the RefRuntime virtqueue through the C ABI ---- */

static rr_guestmem_t *g_mem;
static rr_vq_driver_t *g_drv;
static rr_vq_device_t *g_dev;
static uint64_t g_buf;

static int g_batched;

static void *vq_device(void *arg)
{
    (void)arg;
    long served = 0;
    uint32_t heads[32], lens[32] = {0}, added;
    while (!atomic_load(&go_flag))
        ;
    while (served < ITEMS && !atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        int n = 0;
        rr_vq_chain_t c;
        if (g_batched) {
            rr_vq_chain_t cs[32];
            uint32_t got = 0;
            rr_vq_device_pop_batch(g_dev, cs, (uint32_t)g_batch, &got);
            for (n = 0; n < (int)got; n++)
                heads[n] = cs[n].head;
        } else {
            while (n < g_batch && rr_vq_device_pop(g_dev, &c) == RR_OK) {
                rr_vq_device_add_used(g_dev, c.head, 0);
                n++;
            }
        }
        if (n) {
            if (g_batched)
                rr_vq_device_add_used_batch(g_dev, heads, lens, (uint32_t)n, &added);
            rr_vq_device_publish(g_dev, NULL);
            served += n;
        }
    }
    return NULL;
}

/* A region, a queue of QSIZE with both sides in polling mode, and QSIZE 16-byte buffers. */
static void vq_open(void)
{
    rr_vq_rings_t rings;
    if (rr_guestmem_create(1 << 20, 0x40000000ull, &g_mem) != RR_OK ||
        rr_vq_driver_create(g_mem, QSIZE, RR_VIRTIO_F_EVENT_IDX, 0, &g_drv) != RR_OK ||
        rr_vq_driver_rings(g_drv, &rings) != RR_OK ||
        rr_vq_device_create(g_mem, &rings, RR_VIRTIO_F_EVENT_IDX, RR_VQ_MALFORMED_BREAK, &g_dev) != RR_OK ||
        rr_guestmem_alloc(g_mem, 16 * QSIZE, 64, &g_buf) != RR_OK) {
        fprintf(stderr, "virtqueue setup failed\n");
        exit(1);
    }
    rr_vq_driver_disable_cb(g_drv);
    rr_vq_device_disable_notify(g_dev);
}

static void vq_close(void)
{
    rr_vq_driver_destroy(g_drv);
    rr_vq_device_destroy(g_dev);
    rr_guestmem_destroy(g_mem);
}

static double vq_run(int batch)
{
    vq_open();
    g_batch = batch;
    atomic_store(&go_flag, 0);
    atomic_store(&g_stop, 0);
    pthread_t t;
    pthread_create(&t, NULL, vq_device, NULL);
    long sent = 0, done = 0;
    rr_vq_buf_t bufs[32];
    uint32_t ones[32], zeros[32] = {0}, lens[32], n;
    uint64_t tokens[32];
    for (int k = 0; k < 32; k++)
        ones[k] = 1;
    atomic_store(&go_flag, 1);
    double t0 = bench_now_ns();
    for (unsigned loops = 1; done < ITEMS; loops++) {
        if ((loops & 1023) == 0 && bench_now_ns() - t0 > RUN_LIMIT_NS)
            break;
        int added = 0;
        if (g_batched) {
            int want = batch < ITEMS - sent ? batch : (int)(ITEMS - sent);
            for (int k = 0; k < want; k++) {
                bufs[k] = (rr_vq_buf_t){g_buf + 16 * (uint64_t)((sent + k) & (QSIZE - 1)), 16, 0};
                tokens[k] = (uint64_t)(sent + k);
            }
            uint32_t got = 0;
            rr_vq_driver_add_chains(g_drv, bufs, ones, zeros, tokens, (uint32_t)want, &got);
            added = (int)got;
            sent += got;
        } else {
            while (added < batch && sent < ITEMS) {
                rr_vq_buf_t b = {g_buf + 16 * (uint64_t)(sent & (QSIZE - 1)), 16, 0};
                if (rr_vq_driver_add(g_drv, &b, 1, 0, (uint64_t)sent) != RR_OK)
                    break;
                sent++;
                added++;
            }
        }
        if (added)
            rr_vq_driver_publish(g_drv, NULL);
        if (g_batched) {
            while (rr_vq_driver_get_used_batch(g_drv, tokens, lens, 32, &n) == RR_OK)
                done += n;
        } else {
            uint64_t tok;
            uint32_t len;
            while (rr_vq_driver_get_used(g_drv, &tok, &len) == RR_OK)
                done++;
        }
    }
    double ns = (bench_now_ns() - t0) / (double)(done ? done : 1);
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    vq_close();
    return ns;
}

/* The median of 5 runs after a warm-up; *spread (if larger) becomes the slowest run / the fastest. */
static double median_of(double (*fn)(int), int batch, double *spread)
{
    double s[5];
    fn(batch); /* warm-up */
    for (int k = 0; k < 5; k++)
        s[k] = fn(batch);
    double m = bench_median(s, 5); /* sorts s */
    if (s[4] / s[0] > *spread)
        *spread = s[4] / s[0];
    return m;
}

/* A duration in the unit that shows it. */
static const char *fmt_ns(double ns, char *buf, size_t n)
{
    if (ns < 1e4)
        snprintf(buf, n, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, n, "%.1f us", ns / 1e3);
    else
        snprintf(buf, n, "%.1f ms", ns / 1e6);
    return buf;
}

/* One progress line on stderr, rewritten in place; only on a terminal. */
static void progress(const char *fmt, int a, int b)
{
    if (!isatty(2))
        return;
    fprintf(stderr, "\r  measuring... ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\033[K");
    if (a == 0 && b == 0)
        fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

/* ---- --cost: one thread, both sides, batch 32 ------------------------------------------------ */

#define COST_BATCHES 200000

static double cost_floor(void)
{
    memset(&to_dev, 0, sizeof to_dev);
    memset(&to_drv, 0, sizeof to_drv);
    struct item in[32], mid[32], out[32];
    long sum = 0;
    double t0 = bench_now_ns();
    for (long b = 0; b < COST_BATCHES; b++) {
        for (int k = 0; k < 32; k++)
            in[k] = (struct item){0x40000000ull + 16 * (uint64_t)k, 16, (uint32_t)k};
        spsc_push(&to_dev, in, 32);
        int n = spsc_pop(&to_dev, mid, 32);
        spsc_push(&to_drv, mid, n);
        n = spsc_pop(&to_drv, out, 32);
        for (int k = 0; k < n; k++)
            sum += out[k].id;
    }
    double ns = (bench_now_ns() - t0) / (32.0 * COST_BATCHES);
    return sum < 0 ? -1 : ns;
}

static double cost_vq(int batched)
{
    vq_open();
    rr_vq_buf_t bufs[32];
    uint32_t ones[32], zeros[32] = {0}, lens[32] = {0}, heads[32], n, got, added;
    uint64_t tokens[32];
    rr_vq_chain_t cs[32];
    for (int k = 0; k < 32; k++)
        ones[k] = 1;
    long done = 0;
    double t0 = bench_now_ns();
    for (long b = 0; b < COST_BATCHES; b++) {
        /* Buffers as in the two-thread loop: slot (sent + k) mod the ring size. */
        for (int k = 0; k < 32; k++) {
            bufs[k] = (rr_vq_buf_t){g_buf + 16 * (uint64_t)((32 * b + k) & (QSIZE - 1)), 16, 0};
            tokens[k] = (uint64_t)k;
        }
        if (batched) {
            rr_vq_driver_add_chains(g_drv, bufs, ones, zeros, tokens, 32, &got);
            rr_vq_driver_publish(g_drv, NULL);
            rr_vq_device_pop_batch(g_dev, cs, 32, &got);
            for (uint32_t k = 0; k < got; k++)
                heads[k] = cs[k].head;
            rr_vq_device_add_used_batch(g_dev, heads, lens, got, &added);
            rr_vq_device_publish(g_dev, NULL);
            while (rr_vq_driver_get_used_batch(g_drv, tokens, lens, 32, &n) == RR_OK)
                done += n;
        } else {
            for (int k = 0; k < 32; k++)
                rr_vq_driver_add(g_drv, &bufs[k], 1, 0, tokens[k]);
            rr_vq_driver_publish(g_drv, NULL);
            rr_vq_chain_t c;
            while (rr_vq_device_pop(g_dev, &c) == RR_OK)
                rr_vq_device_add_used(g_dev, c.head, 0);
            rr_vq_device_publish(g_dev, NULL);
            uint64_t tok;
            uint32_t len;
            while (rr_vq_driver_get_used(g_drv, &tok, &len) == RR_OK)
                done++;
        }
    }
    double ns = (bench_now_ns() - t0) / (double)(done ? done : 1);
    if (done != 32L * COST_BATCHES) {
        fprintf(stderr, "cost run lost buffers: %ld of %ld\n", done, 32L * COST_BATCHES);
        exit(1);
    }
    vq_close();
    return ns;
}

static double cost_vq_batched(int unused) { (void)unused; return cost_vq(1); }
static double cost_vq_exports(int unused) { (void)unused; return cost_vq(0); }
static double cost_floor_run(int unused) { (void)unused; return cost_floor(); }

static int cost_main(void)
{
    double spread = 1.0;
    double f = median_of(cost_floor_run, 32, &spread);
    double b = median_of(cost_vq_batched, 32, &spread);
    double e = median_of(cost_vq_exports, 32, &spread);
    printf("CPU work per buffer, one thread playing both sides, batch 32 (median of 5 runs of %d batches)\n",
           COST_BATCHES);
    printf("%-34s %8s %8s\n", "design", "ns", "x floor");
    printf("%-34s %8.2f %7.2fx\n", "two plain C SPSC rings (floor)", f, 1.0);
    printf("%-34s %8.2f %7.2fx\n", "rr_vq, batch calls", b, b / f);
    printf("%-34s %8.2f %7.2fx\n", "rr_vq, per-buffer exports", e, e / f);
    printf("runs: the widest slowest/fastest ratio %.1fx\n", spread);
    return 0;
}

/* The batch sizes of the sweep (the throughput-by-batch-size curve). */
static const int k_batches[] = {1, 2, 4, 8, 16, 32};
#define N_BATCHES (int)(sizeof k_batches / sizeof k_batches[0])

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--cost") == 0)
        return cost_main();
    FILE *csv;
    if (bench_open_csv(argc, argv, &csv) != 0)
        return 1;
    double lat0 = bench_ping_pong_one_way_ns();
    struct bench_cpu cpu0 = bench_cpu_now();
    double floor_ns[N_BATCHES], vq_ns[N_BATCHES], vqb_ns[N_BATCHES], spread[N_BATCHES];
    for (int b = 0; b < N_BATCHES; b++) {
        progress("batch %d (%d of 6)", k_batches[b], b + 1);
        spread[b] = 1.0;
        floor_ns[b] = median_of(spsc_run, k_batches[b], &spread[b]);
        g_batched = 0;
        vq_ns[b] = median_of(vq_run, k_batches[b], &spread[b]);
        g_batched = 1;
        vqb_ns[b] = median_of(vq_run, k_batches[b], &spread[b]);
    }
    g_batched = 0;
    struct bench_cpu cpu1 = bench_cpu_now();
    double lat1 = bench_ping_pong_one_way_ns();
    double lat = 0.5 * (lat0 + lat1);
    progress("", 0, 0);

    printf("queue round trip per buffer, 2 threads polling, C host (median of 5 runs of %d buffers)\n", ITEMS);
    printf("  floor       = two plain C SPSC rings of 16-byte items (request, completion)\n");
    printf("  rr_vq       = the split virtqueue through the C ABI, one export per buffer and side\n");
    printf("  rr_vq_batch = the same with the batch calls (add_chains, get_used_batch, pop_batch, add_used_batch)\n");
    printf("  ns: per buffer; x floor: that time / the floor's; runs: the widest slowest/fastest ratio of a cell's 5 runs\n");
    printf("%5s %10s %10s %8s %15s %8s %6s\n", "batch", "floor ns", "rr_vq ns", "x floor", "rr_vq_batch ns", "x floor",
           "runs");
    double worst = 1.0;
    for (int b = 0; b < N_BATCHES; b++) {
        printf("%5d %10.1f %10.1f %7.2fx %15.1f %7.2fx %5.1fx\n", k_batches[b], floor_ns[b], vq_ns[b],
               vq_ns[b] / floor_ns[b], vqb_ns[b], vqb_ns[b] / floor_ns[b], spread[b]);
        if (spread[b] > worst)
            worst = spread[b];
    }

    /* What the machine did meanwhile, and whether that disturbs the table. */
    char busy[256] = "";
    size_t used = 0;
    printf("machine meanwhile: ");
    if (cpu0.ok && cpu1.ok) {
        double others, steal;
        bench_cpu_between(cpu0, cpu1, &others, &steal);
        printf("other processes used %.0f%% of the %ld CPUs' time, the hypervisor %.0f%%; ", 100 * others,
               sysconf(_SC_NPROCESSORS_ONLN), 100 * steal);
        if (others >= 0.25)
            used += (size_t)snprintf(busy + used, sizeof busy - used, "%sother processes used %.0f%% of the CPUs",
                                     used ? ", " : "", 100 * others);
        if (steal >= 0.05)
            used += (size_t)snprintf(busy + used, sizeof busy - used, "%sthe hypervisor took %.0f%%", used ? ", " : "",
                                     100 * steal);
    }
    char t0[32], t1[32];
    printf("cross-CPU one-way latency %s before, %s after (a quiet 2-vCPU VM: 40-190 ns)\n", fmt_ns(lat0, t0, sizeof t0),
           fmt_ns(lat1, t1, sizeof t1));
    if (lat0 > 250 || lat1 > 250)
        used += (size_t)snprintf(busy + used, sizeof busy - used, "%scross-CPU latency up to %s", used ? ", " : "",
                                 lat0 > lat1 ? t0 : t1);
    if (worst > 2.0)
        snprintf(busy + used, sizeof busy - used, "%sruns of a row %.1fx apart", used ? ", " : "", worst);
    if (busy[0])
        printf("machine busy (%s): a polling thread waited for a CPU, so this run's ratios are disturbed; rerun on a quiet machine\n",
               busy);
    if (csv) {
        for (int b = 0; b < N_BATCHES; b++) {
            fprintf(csv, "vq_batch%d,spsc_floor,2,%.2f,1.000,%.1f\n", k_batches[b], floor_ns[b], lat);
            fprintf(csv, "vq_batch%d,rr_export,2,%.2f,%.3f,%.1f\n", k_batches[b], vq_ns[b], vq_ns[b] / floor_ns[b], lat);
            fprintf(csv, "vq_batch%d,rr_export_batched,2,%.2f,%.3f,%.1f\n", k_batches[b], vqb_ns[b], vqb_ns[b] / floor_ns[b], lat);
        }
        fclose(csv);
    }
    return 0;
}
