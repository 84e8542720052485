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
 *               rr_vq_device_add_used_batch): one export per batch instead of per buffer on
 *               those three, rr_vq_device_pop still per chain;
 * plus the one-way cross-CPU latency of the same run. Prints a table; with a file argument,
 * writes CSV rows (benchmark,variant,threads,ns_per_op,ratio_vs_baseline,latency_ns).
 */
#define _GNU_SOURCE
#include <refruntime.h>
#include <stdatomic.h>
#include <string.h>

#include "bench_common.h"

#define QSIZE 256
#define ITEMS (1 << 20)

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
    while (served < ITEMS) {
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
    pthread_t t;
    pthread_create(&t, NULL, spsc_device, NULL);
    struct item buf[32];
    long sent = 0, done = 0;
    int inflight = 0;
    atomic_store(&go_flag, 1);
    double t0 = bench_now_ns();
    while (done < ITEMS) {
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
    double ns = (bench_now_ns() - t0) / ITEMS;
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
    while (served < ITEMS) {
        int n = 0;
        rr_vq_chain_t c;
        while (n < g_batch && rr_vq_device_pop(g_dev, &c) == RR_OK) {
            if (g_batched)
                heads[n] = c.head;
            else
                rr_vq_device_add_used(g_dev, c.head, 0);
            n++;
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

static double vq_run(int batch)
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
    g_batch = batch;
    atomic_store(&go_flag, 0);
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
    while (done < ITEMS) {
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
    double ns = (bench_now_ns() - t0) / ITEMS;
    pthread_join(t, NULL);
    rr_vq_driver_destroy(g_drv);
    rr_vq_device_destroy(g_dev);
    rr_guestmem_destroy(g_mem);
    return ns;
}

static double median_of(double (*fn)(int), int batch)
{
    double s[5];
    fn(batch); /* warm-up */
    for (int k = 0; k < 5; k++)
        s[k] = fn(batch);
    return bench_median(s, 5);
}

/* The batch sizes of the sweep (the throughput-by-batch-size curve). */
static const int k_batches[] = {1, 2, 4, 8, 16, 32};
#define N_BATCHES (int)(sizeof k_batches / sizeof k_batches[0])

int main(int argc, char **argv)
{
    FILE *csv;
    if (bench_open_csv(argc, argv, &csv) != 0)
        return 1;
    double lat0 = bench_ping_pong_one_way_ns();
    double floor_ns[N_BATCHES], vq_ns[N_BATCHES], vqb_ns[N_BATCHES];
    for (int b = 0; b < N_BATCHES; b++) {
        floor_ns[b] = median_of(spsc_run, k_batches[b]);
        g_batched = 0;
        vq_ns[b] = median_of(vq_run, k_batches[b]);
        g_batched = 1;
        vqb_ns[b] = median_of(vq_run, k_batches[b]);
    }
    g_batched = 0;
    double lat = 0.5 * (lat0 + bench_ping_pong_one_way_ns());
    printf("queue round trip per buffer, 2 threads polling, C host (median of 5 runs of %d)\n", ITEMS);
    printf("cross-CPU one-way latency in this run: %.1f ns\n", lat);
    printf("%-6s %22s %28s %22s\n", "batch", "spsc_floor (plain C)", "rr_vq (exports per buffer)", "rr_vq_batch (calls)");
    for (int b = 0; b < N_BATCHES; b++)
        printf("%-6d %19.1f ns %17.1f ns %7.2fx %11.1f ns %7.2fx\n", k_batches[b], floor_ns[b], vq_ns[b],
               vq_ns[b] / floor_ns[b], vqb_ns[b], vqb_ns[b] / floor_ns[b]);
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
