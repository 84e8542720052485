/*
 * The device side as a back-end uses it, from C: guest memory lent to an rr_guestmap_t in two
 * adjacent regions (the driver side uses the same bytes through its rr_guestmem_t), a queue
 * configured after creation with the driver's ring addresses, many chains held at once and
 * completed in any order through their segments, a stop and a restart at a non-zero index, a
 * region removed while a chain still points into it, and a memfd region mapped from its descriptor.
 */
#define _GNU_SOURCE
#include <refruntime.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rr_test.h"

#define GPA 0x100000ull
#define HALF 32768ull
#define USER 0x7e0000000000ull

static int released[2];
static void release_a(void *ctx) { (void)ctx; released[0]++; }
static void release_b(void *ctx) { (void)ctx; released[1]++; }

struct backend {
    rr_guestmem_t *mem;
    unsigned char *host;
    rr_guestmap_t *map;
    rr_vq_driver_t *drv;
    rr_vq_device_t *dev;
};

static uint64_t user_of(uint64_t gpa) { return USER + (gpa - GPA); }

static void open_backend(struct backend *b, uint32_t n)
{
    released[0] = released[1] = 0;
    CHECK_EQ(rr_guestmem_create(2 * HALF, GPA, &b->mem), RR_OK);
    void *host = NULL;
    CHECK_EQ(rr_guestmem_translate(b->mem, GPA, 2 * HALF, &host), RR_OK);
    b->host = host;
    CHECK_EQ(rr_guestmap_create(8, &b->map), RR_OK);
    rr_guestmap_region_t a = {GPA, HALF, USER, 0}, r = {GPA + HALF, HALF, USER + HALF, 0};
    CHECK_EQ(rr_guestmap_add_host(b->map, &a, b->host, release_a, NULL), RR_OK);
    CHECK_EQ(rr_guestmap_add_host(b->map, &r, b->host + HALF, release_b, NULL), RR_OK);
    CHECK_EQ(rr_vq_driver_create(b->mem, n, RR_VIRTIO_F_EVENT_IDX, 0, &b->drv), RR_OK);
    rr_vq_rings_t rings;
    CHECK_EQ(rr_vq_driver_rings(b->drv, &rings), RR_OK);
    rr_vq_rings_t user = {n, 0, user_of(rings.desc), user_of(rings.avail), user_of(rings.used)};
    CHECK_EQ(rr_vq_device_create_on_map(b->map, 256, 0, RR_VQ_MALFORMED_RETURN_EMPTY, &b->dev), RR_OK);
    CHECK_EQ(rr_vq_device_set_rings(b->dev, &user, RR_VQ_ADDR_USER), RR_OK);
    CHECK_EQ(rr_vq_device_set_features(b->dev, RR_VIRTIO_F_EVENT_IDX), RR_OK);
    char err[128];
    CHECK_EQ(rr_vq_device_start(b->dev, err, sizeof err), RR_OK);
}

static void close_backend(struct backend *b)
{
    CHECK_EQ(rr_vq_device_destroy(b->dev), RR_OK);
    CHECK_EQ(rr_vq_driver_destroy(b->drv), RR_OK);
    CHECK_EQ(rr_guestmap_destroy(b->map), RR_OK);
    CHECK_EQ(released[0], 1);
    CHECK_EQ(released[1], 1);
    CHECK_EQ(rr_guestmem_destroy(b->mem), RR_OK);
}

static void publish(struct backend *b)
{
    int32_t notify;
    CHECK_EQ(rr_vq_driver_publish(b->drv, &notify), RR_OK);
}

/* Queue depth 32 on a 128-entry ring: every chain held, completed in reverse order via its segments. */
static void depth32_out_of_order(void)
{
    struct backend b;
    open_backend(&b, 128);
    enum { DEPTH = 32 };
    for (int i = 0; i < DEPTH; i++) {
        uint64_t req = GPA + HALF + (uint64_t)i * 128;
        memset(b.host + (req - GPA), i, 16);
        rr_vq_buf_t bufs[3] = {{req, 16, 0}, {req + 32, 8, 0}, {req + 64, 8, 0}};
        CHECK_EQ(rr_vq_driver_add(b.drv, bufs, 1, 2, (uint64_t)i), RR_OK);
    }
    publish(&b);
    uint32_t heads[DEPTH];
    rr_vq_chain_t c;
    for (int i = 0; i < DEPTH; i++) {
        CHECK_EQ(rr_vq_device_pop(b.dev, &c), RR_OK);
        heads[i] = c.head;
    }
    CHECK_EQ(rr_vq_device_pop(b.dev, &c), RR_ENOENT);
    rr_vq_state_t st;
    CHECK_EQ(rr_vq_device_state(b.dev, &st), RR_OK);
    CHECK_EQ(st.held, DEPTH);
    for (int i = DEPTH - 1; i >= 0; i--) {
        rr_vq_segment_t seg;
        CHECK_EQ(rr_vq_device_chain(b.dev, heads[i], &c), RR_OK);
        CHECK_EQ(c.n_readable, 1);
        CHECK_EQ(c.n_writable, 2);
        CHECK_EQ(rr_vq_device_chain_segment(b.dev, heads[i], 0, &seg), RR_OK);
        CHECK_EQ(seg.len, 16);
        CHECK_EQ(seg.flags & RR_VQ_SEGMENT_WRITABLE, 0);
        CHECK_EQ(((unsigned char *)seg.host)[15], i); /* zero copy: the guest's bytes */
        CHECK_EQ(rr_vq_device_chain_segment(b.dev, heads[i], 3, &seg), RR_ENOENT);
        unsigned char tag = 0;
        uint32_t n = 0;
        CHECK_EQ(rr_vq_device_chain_read(b.dev, heads[i], 15, &tag, 1, &n), RR_OK);
        CHECK_EQ(n, 1);
        unsigned char out[6] = {tag, tag, tag, tag, tag, tag};
        CHECK_EQ(rr_vq_device_chain_write(b.dev, heads[i], 5, out, sizeof out, &n), RR_OK); /* across both writable segments */
        CHECK_EQ(n, 6);
        CHECK_EQ(rr_vq_device_add_used(b.dev, heads[i], 11), RR_OK);
        CHECK_EQ(rr_vq_device_chain_read(b.dev, heads[i], 0, &tag, 1, &n), RR_EINVAL); /* returned */
    }
    int32_t notify;
    CHECK_EQ(rr_vq_device_publish(b.dev, &notify), RR_OK);
    for (int i = 0; i < DEPTH; i++) {
        uint64_t token = 0;
        uint32_t len = 0;
        CHECK_EQ(rr_vq_driver_get_used(b.drv, &token, &len), RR_OK);
        CHECK_EQ(len, 11);
        uint64_t req = GPA + HALF + token * 128;
        CHECK_EQ(b.host[req + 32 + 7 - GPA], (unsigned char)token);
        CHECK_EQ(b.host[req + 64 + 2 - GPA], (unsigned char)token);
    }
    close_backend(&b);
}

/* Stop keeps the indices; a restart at that non-zero index continues; a held chain is dropped. */
static void restart_at_nonzero_index(void)
{
    struct backend b;
    open_backend(&b, 8);
    rr_vq_chain_t c;
    for (int i = 0; i < 5; i++) {
        rr_vq_buf_t buf = {GPA + HALF + (uint64_t)i * 64, 8, 0};
        CHECK_EQ(rr_vq_driver_add(b.drv, &buf, 0, 1, (uint64_t)i), RR_OK);
        publish(&b);
        CHECK_EQ(rr_vq_device_pop(b.dev, &c), RR_OK);
        CHECK_EQ(rr_vq_device_add_used(b.dev, c.head, 0), RR_OK);
        int32_t notify;
        CHECK_EQ(rr_vq_device_publish(b.dev, &notify), RR_OK);
        uint64_t token;
        uint32_t len;
        CHECK_EQ(rr_vq_driver_get_used(b.drv, &token, &len), RR_OK);
    }
    rr_vq_buf_t held = {GPA + HALF + 4096, 8, 0};
    CHECK_EQ(rr_vq_driver_add(b.drv, &held, 0, 1, 99), RR_OK);
    publish(&b);
    CHECK_EQ(rr_vq_device_pop(b.dev, &c), RR_OK);
    rr_vq_state_t st;
    CHECK_EQ(rr_vq_device_state(b.dev, &st), RR_OK);
    CHECK_EQ(st.next_avail, 6);
    CHECK_EQ(st.next_used, 5);
    CHECK_EQ(rr_vq_device_stop(b.dev), RR_OK);
    CHECK_EQ(rr_vq_device_state(b.dev, &st), RR_OK);
    CHECK_EQ(st.held, 0);
    CHECK_EQ(st.flags & RR_VQ_STATE_READY, 0);
    CHECK_EQ(st.next_avail, 6);
    CHECK_EQ(rr_vq_device_set_indices(b.dev, 6, 0), RR_OK);
    CHECK_EQ(rr_vq_device_start(b.dev, NULL, 0), RR_OK);
    CHECK_EQ(rr_vq_device_sync_used(b.dev), RR_OK);
    CHECK_EQ(rr_vq_device_state(b.dev, &st), RR_OK);
    CHECK_EQ(st.next_used, 5);
    uint64_t lost = 0;
    CHECK_EQ(rr_vq_driver_detach_unused(b.drv, &lost), RR_OK); /* the driver reclaims the dropped chain */
    CHECK_EQ(lost, 99);
    rr_vq_buf_t buf = {GPA + HALF, 8, 0};
    CHECK_EQ(rr_vq_driver_add(b.drv, &buf, 0, 1, 7), RR_OK);
    publish(&b);
    CHECK_EQ(rr_vq_device_pop(b.dev, &c), RR_OK);
    CHECK_EQ(rr_vq_device_add_used(b.dev, c.head, 0), RR_OK);
    close_backend(&b);
}

/* A region removed while a held chain points into it is given back only after the chain returns. */
static void region_removed_under_held_chain(void)
{
    struct backend b;
    open_backend(&b, 8);
    rr_vq_buf_t buf = {GPA + HALF + 100, 8, 0};
    CHECK_EQ(rr_vq_driver_add(b.drv, &buf, 0, 1, 1), RR_OK);
    publish(&b);
    rr_vq_chain_t c;
    CHECK_EQ(rr_vq_device_pop(b.dev, &c), RR_OK);
    CHECK_EQ(rr_guestmap_remove(b.map, GPA + HALF, HALF, 0), RR_OK);
    uint32_t n = 0, pending = 0;
    CHECK_EQ(rr_guestmap_count(b.map, &n, &pending), RR_OK);
    CHECK_EQ(n, 1);
    CHECK_EQ(pending, 1);
    CHECK_EQ(released[1], 0);
    uint32_t written = 0;
    CHECK_EQ(rr_vq_device_chain_write(b.dev, c.head, 0, "held", 4, &written), RR_OK);
    CHECK_EQ(written, 4);
    CHECK_EQ(rr_vq_device_add_used(b.dev, c.head, 4), RR_OK);
    CHECK_EQ(released[1], 1);
    CHECK_EQ(memcmp(b.host + HALF + 100, "held", 4), 0);
    rr_guestmap_region_t r = {GPA + HALF, HALF, USER + HALF, 0};
    CHECK_EQ(rr_guestmap_add_host(b.map, &r, b.host + HALF, release_b, NULL), RR_OK);
    released[1] = 0;
    close_backend(&b);
}

/* A region mapped from a memfd: what the back-end writes, the descriptor's owner sees. */
static void memfd_region(void)
{
    int fd = memfd_create("rr-test", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(ftruncate(fd, 65536), 0);
    unsigned char *mine = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(mine != MAP_FAILED);
    rr_guestmap_t *m = NULL;
    CHECK_EQ(rr_guestmap_create(4, &m), RR_OK);
    rr_guestmap_region_t r = {0x200000, 4096, 0x9000000, 8192};
    rr_guestmap_region_t too_big = {0x300000, 65536, 0xa000000, 4096}; /* offset + size past the file */
    CHECK_EQ(rr_guestmap_add_fd(m, &too_big, fd), RR_EINVAL);
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    CHECK_EQ(rr_guestmap_add_fd(m, &r, pipefd[0]), RR_EINVAL);
    close(pipefd[0]);
    close(pipefd[1]);
    CHECK_EQ(rr_guestmap_add_fd(m, &r, fd), RR_OK);
    CHECK_EQ(rr_guestmap_write(m, 0x200000 + 10, "shared", 6), RR_OK);
    CHECK_EQ(memcmp(mine + 8192 + 10, "shared", 6), 0);
    mine[8192 + 100] = 42;
    unsigned char got = 0;
    CHECK_EQ(rr_guestmap_read(m, 0x200000 + 100, &got, 1), RR_OK);
    CHECK_EQ(got, 42);
    CHECK_EQ(rr_guestmap_remove(m, 0x200000, 4096, 0x9000000), RR_OK);
    CHECK_EQ(rr_guestmap_read(m, 0x200000 + 100, &got, 1), RR_EINVAL);
    CHECK_EQ(rr_guestmap_destroy(m), RR_OK);
    munmap(mine, 65536);
    close(fd);
}

static void nothing_left(void) { CHECK_EQ(rr_debug_live_handles(), 0); }

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"depth32_out_of_order", depth32_out_of_order},
        {"restart_at_nonzero_index", restart_at_nonzero_index},
        {"region_removed_under_held_chain", region_removed_under_held_chain},
        {"memfd_region", memfd_region},
        {"nothing_left", nothing_left},
    };
    return rr_test_main("vq_backend_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
