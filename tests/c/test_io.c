/*
 * rr_io_* MMIO windows through the real librefruntime.so, built twice (RR_INLINE accesses plain
 * windows directly in this program; the export build goes through rr_io_read / rr_io_write).
 * Byte order per width, bad offsets, device callbacks as an exact trace, bad handles. Spec: docs/mmio.md.
 */
#define _GNU_SOURCE
#include <refruntime.h>

#include <stdint.h>

#include "rr_test.h"


static void byte_order_per_width(void)
{
    _Alignas(64) uint8_t mem[64] = {0};
    rr_io_t *io = NULL;
    CHECK_EQ(rr_io_wrap(mem, sizeof mem, &io), RR_OK);
    CHECK_EQ(rr_io_write_le32(io, 0, 0x11223344u), RR_OK);
    CHECK(mem[0] == 0x44 && mem[1] == 0x33 && mem[2] == 0x22 && mem[3] == 0x11);
    CHECK_EQ(rr_io_write_be32(io, 4, 0x11223344u), RR_OK);
    CHECK(mem[4] == 0x11 && mem[5] == 0x22 && mem[6] == 0x33 && mem[7] == 0x44);
    uint32_t w = 0;
    CHECK_EQ(rr_io_read_be32(io, 0, &w), RR_OK);
    CHECK_EQ(w, 0x44332211u);
    CHECK_EQ(rr_io_write_le16(io, 8, 0xA1B2), RR_OK);
    CHECK(mem[8] == 0xB2 && mem[9] == 0xA1);
    uint16_t h = 0;
    CHECK_EQ(rr_io_read_be16(io, 8, &h), RR_OK);
    CHECK_EQ(h, 0xB2A1);
    CHECK_EQ(rr_io_write_be64(io, 16, 0x0102030405060708ull), RR_OK);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(mem[16 + i], i + 1);
    uint64_t q = 0;
    CHECK_EQ(rr_io_read_le64(io, 16, &q), RR_OK);
    CHECK(q == 0x0807060504030201ull);
    CHECK_EQ(rr_io_write_8(io, 63, 0xEE), RR_OK);
    uint8_t b = 0;
    CHECK_EQ(rr_io_read_8_relaxed(io, 63, &b), RR_OK);
    CHECK_EQ(b, 0xEE);
    uint32_t r1 = 0, r2 = 0;
    CHECK_EQ(rr_io_read_le32(io, 0, &r1), RR_OK);
    CHECK_EQ(rr_io_read_le32_relaxed(io, 0, &r2), RR_OK);
    CHECK_EQ(r1, r2);
    CHECK_EQ(rr_io_destroy(io), RR_OK);
}

static void bad_offsets_and_values_are_refused(void)
{
    rr_io_t *io = NULL;
    CHECK_EQ(rr_io_alloc(64, &io), RR_OK);
    uint32_t w = 0xdead;
    CHECK_EQ(rr_io_read_le32(io, 64, &w), RR_EINVAL); /* past the end */
    CHECK_EQ(w, 0);
    CHECK_EQ(rr_io_read_le32(io, 62, &w), RR_EINVAL); /* straddles */
    CHECK_EQ(rr_io_write_le32(io, 2, 1), RR_EINVAL);  /* misaligned */
    CHECK_EQ(rr_io_write_le64(io, 4, 1), RR_EINVAL);
    CHECK_EQ(rr_io_write_8(io, UINT64_MAX, 1), RR_EINVAL);      /* overflow */
    CHECK_EQ(rr_io_read_le32(io, UINT64_MAX - 1, &w), RR_EINVAL);
    CHECK_EQ(rr_io_write(io, 0, RR_IO_8, 0x100), RR_EINVAL);    /* value wider than the access */
    CHECK_EQ(rr_io_write(io, 0, 3, 1), RR_EINVAL);              /* no such width */
    CHECK_EQ(rr_io_read(io, 0, RR_IO_32, NULL), RR_EINVAL);
    uint64_t q = 1;
    for (uint64_t off = 0; off < 64; off += 8) {
        CHECK_EQ(rr_io_read_le64(io, off, &q), RR_OK);
        CHECK(q == 0); /* nothing above wrote anything */
    }
    rr_io_t *none = (rr_io_t *)(void *)1;
    CHECK_EQ(rr_io_alloc(0, &none), RR_EINVAL);
    CHECK(none == NULL); /* out is cleared on failure */
    CHECK_EQ(rr_io_destroy(io), RR_OK);
    static _Alignas(64) uint8_t mem[16];
    CHECK_EQ(rr_io_wrap(mem + 1, 8, &io), RR_EINVAL);
    CHECK_EQ(rr_io_wrap(NULL, 8, &io), RR_EINVAL);
    CHECK_EQ(rr_io_wrap(mem, 0, &io), RR_EINVAL);
}

/* A device model in C: read-to-clear at 0, write-1-to-clear at 4, a trace of every access. */
struct dev {
    uint32_t events, status;
    char trace[256];
    int len;
};

static uint64_t dev_read(void *ctx, uint64_t off, int32_t width)
{
    struct dev *d = ctx;
    d->len += snprintf(d->trace + d->len, sizeof d->trace - (size_t)d->len, "R%d@%x ", width * 8, (unsigned)off);
    if (off == 0) {
        uint32_t e = d->events;
        d->events = 0;
        return e;
    }
    return off == 4 ? d->status : 0;
}

static void dev_write(void *ctx, uint64_t off, int32_t width, uint64_t value)
{
    struct dev *d = ctx;
    d->len += snprintf(d->trace + d->len, sizeof d->trace - (size_t)d->len, "W%d@%x=%x ", width * 8,
                       (unsigned)off, (unsigned)value);
    if (off == 4)
        d->status &= ~(uint32_t)value;
}

static void device_window_dispatches_each_access(void)
{
    struct dev d = {0xB, 0xF, {0}, 0};
    rr_io_t *io = NULL;
    CHECK_EQ(rr_io_create_device(0x100, dev_read, dev_write, &d, &io), RR_OK);
    uint32_t v = 0;
    CHECK_EQ(rr_io_read_le32(io, 0, &v), RR_OK);
    CHECK_EQ(v, 0xB);
    CHECK_EQ(rr_io_read_le32(io, 0, &v), RR_OK);
    CHECK_EQ(v, 0); /* read-to-clear */
    CHECK_EQ(rr_io_write_le32(io, 4, 0x5), RR_OK);
    CHECK_EQ(rr_io_read_le32(io, 4, &v), RR_OK);
    CHECK_EQ(v, 0xA); /* write-1-to-clear */
    CHECK_EQ(rr_io_write_be16(io, 8, 0x1234), RR_OK); /* the model sees bus (LE) order */
    CHECK_EQ(rr_io_read_le32(io, 0x1fe, &v), RR_EINVAL); /* refused before the model */
    CHECK(strcmp(d.trace, "R32@0 R32@0 W32@4=5 R32@4 W16@8=3412 ") == 0);
    if (strcmp(d.trace, "R32@0 R32@0 W32@4=5 R32@4 W16@8=3412 ") != 0)
        fprintf(stderr, "  trace: %s\n", d.trace);
    CHECK_EQ(rr_io_destroy(io), RR_OK);
    CHECK_EQ(rr_io_create_device(0x100, NULL, dev_write, &d, &io), RR_EINVAL);
}

static void bad_handles_are_refused(void)
{
    static _Alignas(64) uint8_t junk[128];
    rr_io_t *fake = (rr_io_t *)(void *)junk;
    uint32_t v = 0;
    CHECK_EQ(rr_io_read_le32(fake, 0, &v), RR_EBADHANDLE);
    CHECK_EQ(rr_io_write_le32(fake, 0, 1), RR_EBADHANDLE);
    CHECK_EQ(rr_io_read_le32(NULL, 0, &v), RR_EINVAL);
    CHECK_EQ(rr_io_destroy(fake), RR_EBADHANDLE);
    CHECK_EQ(rr_io_destroy(NULL), RR_EINVAL);
    rr_debug_set_poison(true, true);
    rr_io_t *io = NULL;
    CHECK_EQ(rr_io_alloc(16, &io), RR_OK);
    CHECK_EQ(rr_io_destroy(io), RR_OK);
    CHECK_EQ(rr_io_write_le32(io, 0, 1), RR_EBADHANDLE); /* destroyed */
    rr_debug_release_quarantine();
    rr_debug_set_poison(false, false);
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"byte_order_per_width", byte_order_per_width},
        {"bad_offsets_and_values_are_refused", bad_offsets_and_values_are_refused},
        {"device_window_dispatches_each_access", device_window_dispatches_each_access},
        {"bad_handles_are_refused", bad_handles_are_refused},
    };
    return rr_test_main("io_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
