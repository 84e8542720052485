/*
 * The split virtqueue from C (rr_guestmem_*, rr_vq_*, rr_doorbell_*): a C host as the driver
 * side and as the device side, a round trip with bytes checked, event-index kicks, a device that
 * lies about a used entry (RR_EIO and the reset path), a driver that builds a looping chain,
 * bad handles, and a two-thread run with doorbells. Spec: docs/virtqueue.md.
 */
#define _GNU_SOURCE
#include <refruntime.h>
#include <pthread.h>
#include <stdint.h>

#include "rr_test.h"


#define GPA 0x40000000ull

struct pair {
    rr_guestmem_t *mem;
    rr_vq_driver_t *drv;
    rr_vq_device_t *dev;
    rr_vq_rings_t rings;
};

static void pair_open(struct pair *p, uint32_t n, uint64_t features, uint32_t indirect, uint32_t policy)
{
    CHECK_EQ(rr_guestmem_create(1 << 20, GPA, &p->mem), RR_OK);
    CHECK_EQ(rr_vq_driver_create(p->mem, n, features, indirect, &p->drv), RR_OK);
    CHECK_EQ(rr_vq_driver_rings(p->drv, &p->rings), RR_OK);
    CHECK_EQ(p->rings.size, n);
    CHECK_EQ(rr_vq_device_create(p->mem, &p->rings, features, policy, &p->dev), RR_OK);
}

static void pair_close(struct pair *p)
{
    CHECK_EQ(rr_guestmem_destroy(p->mem), RR_EBUSY); /* queues still attached */
    CHECK_EQ(rr_vq_driver_destroy(p->drv), RR_OK);
    CHECK_EQ(rr_vq_device_destroy(p->dev), RR_OK);
    CHECK_EQ(rr_guestmem_destroy(p->mem), RR_OK);
}

static void *host(struct pair *p, uint64_t gpa, uint64_t len)
{
    void *h = NULL;
    CHECK_EQ(rr_guestmem_translate(p->mem, gpa, len, &h), RR_OK);
    return h;
}

static void round_trip(void)
{
    struct pair p;
    pair_open(&p, 16, RR_VIRTIO_F_EVENT_IDX | RR_VIRTIO_F_INDIRECT_DESC, 4, RR_VQ_MALFORMED_BREAK);
    uint64_t req, resp;
    CHECK_EQ(rr_guestmem_alloc(p.mem, 8, 8, &req), RR_OK);
    CHECK_EQ(rr_guestmem_alloc(p.mem, 4, 4, &resp), RR_OK);
    memcpy(host(&p, req, 8), "ping-req", 8);
    rr_vq_buf_t bufs[3] = {{req, 4, 0}, {req + 4, 4, 0}, {resp, 4, 0}};
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 2, 1, 0x1234), RR_OK);
    int32_t notify = -1;
    CHECK_EQ(rr_vq_driver_publish(p.drv, &notify), RR_OK);
    CHECK_EQ(notify, 1); /* avail_event starts at 0: the first chain kicks */

    rr_vq_chain_t c;
    CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_OK);
    CHECK_EQ(c.n_readable, 2);
    CHECK_EQ(c.n_writable, 1);
    CHECK_EQ(c.readable_bytes, 8);
    char in[16] = {0};
    uint32_t got = 0;
    CHECK_EQ(rr_vq_device_read(p.dev, in, sizeof in, &got), RR_OK);
    CHECK_EQ(got, 8);
    CHECK(memcmp(in, "ping-req", 8) == 0);
    CHECK_EQ(rr_vq_device_write(p.dev, "pong", 4, &got), RR_OK);
    CHECK_EQ(got, 4);
    CHECK_EQ(rr_vq_device_add_used(p.dev, c.head, 5), RR_EINVAL); /* more than writable */
    CHECK_EQ(rr_vq_device_add_used(p.dev, c.head, 4), RR_OK);
    CHECK_EQ(rr_vq_device_publish(p.dev, &notify), RR_OK);
    CHECK_EQ(notify, 1);
    CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_ENOENT);

    uint64_t token = 0;
    uint32_t len = 0;
    CHECK_EQ(rr_vq_driver_get_used(p.drv, &token, &len), RR_OK);
    CHECK_EQ(token, 0x1234);
    CHECK_EQ(len, 4);
    CHECK(memcmp(host(&p, resp, 4), "pong", 4) == 0);
    CHECK_EQ(rr_vq_driver_get_used(p.drv, &token, &len), RR_ENOENT);
    pair_close(&p);
}

static void need_event_wraps(void)
{
    CHECK(rr_vring_need_event(0, 1, 0));
    CHECK(!rr_vring_need_event(1, 1, 0));
    CHECK(rr_vring_need_event(65535, 2, 65534));
    CHECK(rr_vring_need_event(0, 2, 65534));
    CHECK(!rr_vring_need_event(2, 2, 65534));
}

/* A device that returns an id that was never a head: RR_EIO, the reason, then reset. */
static void lying_device_breaks_then_resets(void)
{
    struct pair p;
    pair_open(&p, 8, RR_VIRTIO_F_EVENT_IDX, 0, RR_VQ_MALFORMED_BREAK);
    uint64_t b;
    CHECK_EQ(rr_guestmem_alloc(p.mem, 16, 8, &b), RR_OK);
    rr_vq_buf_t bufs[2] = {{b, 8, 0}, {b + 8, 8, 0}};
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 1, 1, 7), RR_OK);
    CHECK_EQ(rr_vq_driver_publish(p.drv, NULL), RR_OK);
    /* Forge used.ring[0] = {id 1 (mid-chain), len 0}, used.idx = 1. */
    uint8_t *used = host(&p, p.rings.used, 4 + 8 * 8);
    uint32_t id = 1, zero = 0;
    memcpy(used + 4, &id, 4);
    memcpy(used + 8, &zero, 4);
    uint16_t one = 1;
    memcpy(used + 2, &one, 2);
    uint64_t token;
    uint32_t len;
    CHECK_EQ(rr_vq_driver_get_used(p.drv, &token, &len), RR_EIO);
    char why[128];
    CHECK_EQ(rr_vq_driver_error(p.drv, why, sizeof why), RR_OK);
    CHECK(strstr(why, "not a head") != NULL);
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 1, 1, 8), RR_EIO);
    CHECK_EQ(rr_vq_driver_reset(p.drv), RR_OK);
    CHECK_EQ(rr_vq_device_reset(p.dev), RR_OK);
    CHECK_EQ(rr_vq_driver_error(p.drv, why, sizeof why), RR_ENOENT);
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 1, 1, 9), RR_OK);
    CHECK_EQ(rr_vq_driver_publish(p.drv, NULL), RR_OK);
    rr_vq_chain_t c;
    CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_OK);
    pair_close(&p);
}

/* A driver that writes a looping chain by hand: the device refuses it (both policies). */
/* Writes descriptor @i of a raw table as a misbehaving driver would. */
static void put_desc(uint8_t *desc, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    memcpy(desc + 16 * i, &addr, 8);
    memcpy(desc + 16 * i + 8, &len, 4);
    memcpy(desc + 16 * i + 12, &flags, 2);
    memcpy(desc + 16 * i + 14, &next, 2);
}

/* A queue of 4 whose descriptors and avail ring the test writes by hand, plus one 8-byte buffer. */
static void hand_written_pair_open(struct pair *p, uint32_t policy, uint64_t *b, uint8_t **desc, uint8_t **avail)
{
    pair_open(p, 4, 0, 0, policy);
    CHECK_EQ(rr_guestmem_alloc(p->mem, 8, 8, b), RR_OK);
    *desc = host(p, p->rings.desc, 16 * 4);
    *avail = host(p, p->rings.avail, 6 + 2 * 4);
}

static void looping_chain_refused(void)
{
    for (uint32_t policy = 0; policy <= 1; policy++) {
        struct pair p;
        uint64_t b;
        uint8_t *desc, *avail;
        hand_written_pair_open(&p, policy, &b, &desc, &avail);
        uint16_t idx = 1;
        put_desc(desc, 0, b, 8, RR_VRING_DESC_F_NEXT, 0); /* 0 -> 0 */
        memcpy(avail + 2, &idx, 2);                        /* head 0 in ring[0] (already zero) */
        rr_vq_chain_t c;
        char why[128];
        if (policy == RR_VQ_MALFORMED_BREAK) {
            CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_EIO);
            CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_EIO);
        } else {
            CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_EBADMSG);
            CHECK_EQ(c.head, 0);
            CHECK_EQ(rr_vq_device_add_used(p.dev, c.head, 0), RR_OK);
            CHECK_EQ(rr_vq_device_publish(p.dev, NULL), RR_OK);
        }
        CHECK_EQ(rr_vq_device_error(p.dev, why, sizeof why), RR_OK);
        CHECK(strstr(why, "more than N") != NULL);
        pair_close(&p);
    }
}

/* A batch pop ends at a malformed chain: counted as its last entry (RETURN_EMPTY, RR_EBADMSG),
 * or not taken at all when the queue breaks (RR_EIO); the chains before it are held either way. */
static void malformed_chain_ends_batch(void)
{
    for (uint32_t policy = 0; policy <= 1; policy++) {
        struct pair p;
        uint64_t b;
        uint8_t *desc, *avail;
        hand_written_pair_open(&p, policy, &b, &desc, &avail);
        for (uint16_t i = 0; i < 3; i++) {
            put_desc(desc, i, b, 8, i == 1 ? RR_VRING_DESC_F_NEXT : 0, i == 1 ? 1 : 0); /* 1 -> 1 */
            memcpy(avail + 4 + 2 * i, &i, 2);
        }
        uint16_t idx = 3;
        memcpy(avail + 2, &idx, 2);
        rr_vq_chain_t cs[4];
        uint32_t n = 99;
        if (policy == RR_VQ_MALFORMED_BREAK) {
            CHECK_EQ(rr_vq_device_pop_batch(p.dev, cs, 4, &n), RR_EIO);
            CHECK_EQ(n, 1);
            CHECK_EQ(cs[0].head, 0);
        } else {
            CHECK_EQ(rr_vq_device_pop_batch(p.dev, cs, 4, &n), RR_EBADMSG);
            CHECK_EQ(n, 2);
            CHECK_EQ(cs[0].head, 0);
            CHECK_EQ(cs[0].readable_bytes, 8);
            CHECK_EQ(cs[1].head, 1); /* the malformed one: back with length 0 */
            CHECK_EQ(cs[1].readable_bytes, 0);
            CHECK_EQ(rr_vq_device_pop_batch(p.dev, cs + 2, 4, &n), RR_OK);
            CHECK_EQ(n, 1);
            CHECK_EQ(cs[2].head, 2);
            uint32_t heads[3] = {0, 1, 2}, lens[3] = {0, 0, 0}, added = 0;
            CHECK_EQ(rr_vq_device_add_used_batch(p.dev, heads, lens, 3, &added), RR_OK);
            CHECK_EQ(added, 3);
            CHECK_EQ(rr_vq_device_publish(p.dev, NULL), RR_OK);
        }
        pair_close(&p);
    }
}

static void bad_arguments(void)
{
    struct pair p;
    pair_open(&p, 8, 0, 0, 0);
    rr_vq_buf_t outside = {GPA + (1 << 20) - 4, 8, 0};
    CHECK_EQ(rr_vq_driver_add(p.drv, &outside, 1, 0, 1), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add(p.drv, NULL, 1, 0, 1), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add(p.drv, &outside, 0, 0, 1), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add((rr_vq_driver_t *)p.dev, &outside, 1, 0, 1), RR_EBADHANDLE);
    CHECK_EQ(rr_vq_device_pop((rr_vq_device_t *)p.drv, NULL), RR_EINVAL);
    rr_vq_chain_t c;
    CHECK_EQ(rr_vq_device_pop((rr_vq_device_t *)p.drv, &c), RR_EBADHANDLE);
    rr_vq_driver_t *other = (rr_vq_driver_t *)&c;
    CHECK_EQ(rr_vq_driver_create(p.mem, 3, 0, 0, &other), RR_EINVAL);
    CHECK(other == NULL);
    rr_vq_rings_t misaligned = p.rings;
    misaligned.desc += 8;
    rr_vq_device_t *dev2 = NULL;
    CHECK_EQ(rr_vq_device_create(p.mem, &misaligned, 0, 0, &dev2), RR_EINVAL);
    CHECK_EQ(rr_vq_device_create(p.mem, &p.rings, 0, 7, &dev2), RR_EINVAL);
    void *h = NULL;
    CHECK_EQ(rr_guestmem_translate(p.mem, GPA - 1, 2, &h), RR_EINVAL);
    CHECK(h == NULL);
    pair_close(&p);
    CHECK_EQ(rr_vq_driver_destroy(p.drv), RR_EBADHANDLE);
    CHECK_EQ(rr_guestmem_destroy(p.mem), RR_EBADHANDLE);
}

/* The batch calls: several chains in one add (stopping at the first that does not fit), used
 * entries in one call on each side (stopping at the first refused). */
static void batch_calls(void)
{
    struct pair p;
    pair_open(&p, 4, RR_VIRTIO_F_EVENT_IDX, 0, RR_VQ_MALFORMED_BREAK);
    uint64_t b;
    CHECK_EQ(rr_guestmem_alloc(p.mem, 64, 8, &b), RR_OK);
    rr_vq_buf_t bufs[3] = {{b, 8, 0}, {b + 8, 8, 0}, {b + 16, 4, 0}};
    uint32_t nr[2] = {1, 1}, nw[2] = {1, 0};
    uint64_t tokens[2] = {10, 11};
    uint32_t added = 99;
    CHECK_EQ(rr_vq_driver_add_chains(p.drv, bufs, nr, nw, tokens, 2, &added), RR_OK);
    CHECK_EQ(added, 2); /* 3 of 4 descriptors in use */
    uint64_t tokens2[2] = {12, 13};
    CHECK_EQ(rr_vq_driver_add_chains(p.drv, bufs, nr, nw, tokens2, 2, &added), RR_ENOSPC);
    CHECK_EQ(added, 0); /* a two-buffer chain does not fit in one descriptor */
    CHECK_EQ(rr_vq_driver_add_chains(p.drv, bufs + 2, nr + 1, nw + 1, tokens2 + 1, 1, &added), RR_OK);
    CHECK_EQ(added, 1);
    CHECK_EQ(rr_vq_driver_publish(p.drv, NULL), RR_OK);

    uint32_t heads[3], lens[3] = {8, 0, 1};
    uint32_t n = 99;
    memcpy(host(&p, b, 8), "batchreq", 8);
    rr_vq_chain_t cs[3];
    CHECK_EQ(rr_vq_device_pop_batch(p.dev, cs, 0, &n), RR_OK); /* nothing asked, nothing taken */
    CHECK_EQ(n, 0);
    CHECK_EQ(rr_vq_device_pop_batch(p.dev, cs, 2, &n), RR_OK); /* stops at cap */
    CHECK_EQ(n, 2);
    CHECK_EQ(rr_vq_device_pop_batch(p.dev, cs + 2, 8, &n), RR_OK); /* stops when the ring is empty */
    CHECK_EQ(n, 1);
    CHECK_EQ(rr_vq_device_pop_batch(p.dev, cs, 8, &n), RR_ENOENT);
    CHECK_EQ(n, 0);
    CHECK_EQ(cs[0].n_readable, 1);
    CHECK_EQ(cs[0].n_writable, 1);
    CHECK_EQ(cs[0].readable_bytes, 8);
    CHECK_EQ(cs[0].writable_bytes, 8);
    CHECK_EQ(cs[1].n_writable, 0);
    CHECK_EQ(cs[2].readable_bytes, 4);
    /* Every chain of a batch is held: the first one's bytes by its head. */
    char in[8] = {0};
    uint32_t got_bytes = 0;
    CHECK_EQ(rr_vq_device_chain_read(p.dev, cs[0].head, 0, in, sizeof in, &got_bytes), RR_OK);
    CHECK_EQ(got_bytes, 8);
    CHECK(memcmp(in, "batchreq", 8) == 0);
    for (n = 0; n < 3; n++)
        heads[n] = cs[n].head;
    CHECK_EQ(rr_vq_device_add_used_batch(p.dev, heads, lens, 3, &added), RR_EINVAL);
    CHECK_EQ(added, 2); /* the third has no writable byte: refused */
    lens[2] = 0;
    CHECK_EQ(rr_vq_device_add_used_batch(p.dev, heads + 2, lens + 2, 1, &added), RR_OK);
    CHECK_EQ(rr_vq_device_publish(p.dev, NULL), RR_OK);

    uint64_t got[8];
    uint32_t got_len[8];
    CHECK_EQ(rr_vq_driver_get_used_batch(p.drv, got, got_len, 2, &n), RR_OK);
    CHECK_EQ(n, 2);
    CHECK_EQ(got[0], 10);
    CHECK_EQ(got_len[0], 8);
    CHECK_EQ(got[1], 11);
    CHECK_EQ(rr_vq_driver_get_used_batch(p.drv, got, got_len, 8, &n), RR_OK);
    CHECK_EQ(n, 1);
    CHECK_EQ(got[0], 13);
    CHECK_EQ(rr_vq_driver_get_used_batch(p.drv, got, got_len, 8, &n), RR_ENOENT);
    CHECK_EQ(n, 0);
    CHECK_EQ(rr_vq_driver_get_used_batch(p.drv, NULL, NULL, 8, &n), RR_EINVAL);
    pair_close(&p);
}

struct thread_args {
    struct pair *p;
    rr_doorbell_t *kick, *call;
    int rounds;
    int errors;
};

/* Device thread: sleep on the kick doorbell, serve everything, ring the call doorbell. */
static void *device_thread(void *arg)
{
    struct thread_args *a = arg;
    int served = 0;
    while (served < a->rounds) {
        rr_vq_chain_t c;
        int32_t st = rr_vq_device_pop(a->p->dev, &c);
        if (st == RR_ENOENT) {
            int32_t pending = 0;
            rr_vq_device_enable_notify(a->p->dev, &pending);
            if (!pending)
                rr_doorbell_wait(a->kick, 1000);
            continue;
        }
        if (st != RR_OK) {
            a->errors++;
            return NULL;
        }
        uint64_t v = 0;
        uint32_t got = 0;
        rr_vq_device_read(a->p->dev, &v, sizeof v, &got);
        v = ~v;
        rr_vq_device_write(a->p->dev, &v, sizeof v, &got);
        rr_vq_device_add_used(a->p->dev, c.head, 8);
        int32_t notify = 0;
        rr_vq_device_publish(a->p->dev, &notify);
        if (notify)
            rr_doorbell_ring(a->call);
        served++;
    }
    return NULL;
}

static void two_threads_with_doorbells(void)
{
    struct pair p;
    pair_open(&p, 32, RR_VIRTIO_F_EVENT_IDX, 0, 0);
    struct thread_args a = {&p, NULL, NULL, 20000, 0};
    CHECK_EQ(rr_doorbell_create(200, &a.kick), RR_OK);
    CHECK_EQ(rr_doorbell_create(200, &a.call), RR_OK);
    uint64_t slots;
    CHECK_EQ(rr_guestmem_alloc(p.mem, 32 * 16, 16, &slots), RR_OK);
    pthread_t t;
    pthread_create(&t, NULL, device_thread, &a);
    int sent = 0, done = 0, bad = 0;
    uint64_t free_mask = 0xFFFFFFFFull;
    while (done < a.rounds && a.errors == 0) {
        while (sent < a.rounds && free_mask) {
            int s = __builtin_ctzll(free_mask);
            uint64_t gpa = slots + 16ull * s, v = (uint64_t)sent * 2654435761u;
            memcpy(host(&p, gpa, 8), &v, 8);
            rr_vq_buf_t bufs[2] = {{gpa, 8, 0}, {gpa + 8, 8, 0}};
            if (rr_vq_driver_add(p.drv, bufs, 1, 1, ((uint64_t)s << 32) | (uint32_t)sent) != RR_OK)
                break;
            free_mask &= ~(1ull << s);
            sent++;
        }
        int32_t kick = 0;
        rr_vq_driver_publish(p.drv, &kick);
        if (kick)
            rr_doorbell_ring(a.kick);
        uint64_t token;
        uint32_t len;
        int got_any = 0;
        while (rr_vq_driver_get_used(p.drv, &token, &len) == RR_OK) {
            int s = (int)(token >> 32);
            uint64_t v = (uint64_t)(uint32_t)token * 2654435761u, r;
            memcpy(&r, host(&p, slots + 16ull * s + 8, 8), 8);
            if (r != ~v || len != 8)
                bad++;
            free_mask |= 1ull << s;
            done++;
            got_any = 1;
        }
        if (!got_any) {
            int32_t pending = 0;
            rr_vq_driver_enable_cb(p.drv, &pending);
            if (!pending)
                rr_doorbell_wait(a.call, 1000);
        }
    }
    pthread_join(t, NULL);
    CHECK_EQ(a.errors, 0);
    CHECK_EQ(bad, 0);
    CHECK_EQ(done, a.rounds);
    CHECK_EQ(rr_doorbell_destroy(a.kick), RR_OK);
    CHECK_EQ(rr_doorbell_destroy(a.call), RR_OK);
    CHECK_EQ(rr_doorbell_ring(a.call), RR_EBADHANDLE);
    pair_close(&p);
}

/* Once a chain is returned with add_used its buffers belong to the driver again (it may already
 * be reusing them): read and write on it are refused with RR_ENOENT and touch nothing. */
static void read_write_after_add_used_refused(void)
{
    struct pair p;
    pair_open(&p, 8, RR_VIRTIO_F_EVENT_IDX, 0, RR_VQ_MALFORMED_BREAK);
    uint64_t req, resp;
    CHECK_EQ(rr_guestmem_alloc(p.mem, 8, 8, &req), RR_OK);
    CHECK_EQ(rr_guestmem_alloc(p.mem, 4, 4, &resp), RR_OK);
    memcpy(host(&p, req, 8), "request!", 8);
    rr_vq_buf_t bufs[2] = {{req, 8, 0}, {resp, 4, 0}};
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 1, 1, 1), RR_OK);
    CHECK_EQ(rr_vq_driver_publish(p.drv, NULL), RR_OK);
    rr_vq_chain_t c;
    CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_OK);
    uint32_t n = 0;
    CHECK_EQ(rr_vq_device_write(p.dev, "done", 4, &n), RR_OK);
    CHECK_EQ(n, 4);
    CHECK_EQ(rr_vq_device_add_used(p.dev, c.head, 4), RR_OK);
    CHECK_EQ(rr_vq_device_publish(p.dev, NULL), RR_OK);
    uint64_t token = 0;
    uint32_t len = 0;
    CHECK_EQ(rr_vq_driver_get_used(p.drv, &token, &len), RR_OK);

    /* The driver reuses its buffers at once. */
    memcpy(host(&p, req, 8), "secret!!", 8);
    memcpy(host(&p, resp, 4), "mine", 4);
    char in[8] = {0};
    n = 99;
    CHECK_EQ(rr_vq_device_read(p.dev, in, sizeof in, &n), RR_ENOENT);
    CHECK_EQ(n, 0);
    CHECK(memcmp(in, "\0\0\0\0\0\0\0\0", 8) == 0);
    n = 99;
    CHECK_EQ(rr_vq_device_write(p.dev, "late", 4, &n), RR_ENOENT);
    CHECK_EQ(n, 0);
    CHECK(memcmp(host(&p, resp, 4), "mine", 4) == 0);

    /* The next chain popped is served normally. */
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 1, 1, 2), RR_OK);
    CHECK_EQ(rr_vq_driver_publish(p.drv, NULL), RR_OK);
    CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_OK);
    CHECK_EQ(rr_vq_device_read(p.dev, in, sizeof in, &n), RR_OK);
    CHECK_EQ(n, 8);
    CHECK(memcmp(in, "secret!!", 8) == 0);
    CHECK_EQ(rr_vq_device_add_used(p.dev, c.head, 0), RR_OK);
    pair_close(&p);
}

/* The reserved fields of rr_vq_buf_t and rr_vq_rings_t must be 0 (kept for later use). */
static void reserved_fields_refused(void)
{
    struct pair p;
    pair_open(&p, 8, RR_VIRTIO_F_EVENT_IDX, 0, RR_VQ_MALFORMED_BREAK);
    uint64_t b;
    CHECK_EQ(rr_guestmem_alloc(p.mem, 16, 8, &b), RR_OK);
    rr_vq_buf_t bufs[2] = {{b, 8, 0}, {b + 8, 8, 1}};
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 1, 1, 1), RR_EINVAL);
    uint32_t nr = 1, nw = 1, added = 99;
    uint64_t token = 2;
    CHECK_EQ(rr_vq_driver_add_chains(p.drv, bufs, &nr, &nw, &token, 1, &added), RR_EINVAL);
    CHECK_EQ(added, 0);
    CHECK_EQ(rr_vq_driver_publish(p.drv, NULL), RR_OK);
    rr_vq_chain_t c;
    CHECK_EQ(rr_vq_device_pop(p.dev, &c), RR_ENOENT); /* nothing was added */

    rr_vq_rings_t rings = p.rings;
    rings.reserved = 0x80000000u;
    rr_vq_device_t *dev2 = (rr_vq_device_t *)&c;
    CHECK_EQ(rr_vq_device_create(p.mem, &rings, RR_VIRTIO_F_EVENT_IDX, RR_VQ_MALFORMED_BREAK, &dev2), RR_EINVAL);
    CHECK(dev2 == NULL);

    bufs[1].reserved = 0;
    CHECK_EQ(rr_vq_driver_add(p.drv, bufs, 1, 1, 3), RR_OK);
    pair_close(&p);
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"round_trip", round_trip},
        {"need_event_wraps", need_event_wraps},
        {"lying_device_breaks_then_resets", lying_device_breaks_then_resets},
        {"looping_chain_refused", looping_chain_refused},
        {"malformed_chain_ends_batch", malformed_chain_ends_batch},
        {"bad_arguments", bad_arguments},
        {"two_threads_with_doorbells", two_threads_with_doorbells},
        {"batch_calls", batch_calls},
        {"read_write_after_add_used_refused", read_write_after_add_used_refused},
        {"reserved_fields_refused", reserved_fields_refused},
    };
    return rr_test_main("virtio." MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
