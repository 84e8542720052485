/*
 * README.md, "Using it from C": the split virtqueue snippet, both sides on one thread here
 * (tests/readme/snippets.sh).
 */
#include <refruntime.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    const uint64_t req_gpa = 0x40080000, resp_gpa = 0x40080010;   /* buffers in the region */
    const uint64_t my_token = 42;
    uint8_t in[8];
    const uint8_t out[2] = { 'o', 'k' };
    uint32_t n;
    int32_t notify;

    /* --- README snippet -------------------------------------------------------------- */
    rr_guestmem_t *mem;  rr_vq_driver_t *drv;  rr_vq_device_t *dev;  rr_vq_rings_t rings;
    rr_guestmem_create(1 << 20, 0x40000000, &mem);                 /* addressed by guest-physical addresses */
    rr_vq_driver_create(mem, 256, RR_VIRTIO_F_EVENT_IDX, 0, &drv); /* ring carved from the region */
    rr_vq_driver_rings(drv, &rings);                               /* what the device is told */
    rr_vq_device_create(mem, &rings, RR_VIRTIO_F_EVENT_IDX, RR_VQ_MALFORMED_BREAK, &dev);

    rr_vq_buf_t bufs[2] = {{req_gpa, 8, 0}, {resp_gpa, 2, 0}};     /* readable first, then writable */
    rr_vq_driver_add(drv, bufs, 1, 1, my_token);
    int32_t kick;  rr_vq_driver_publish(drv, &kick);               /* kick only when the device asked */

    rr_vq_chain_t c;                                               /* device side: every descriptor, */
    if (rr_vq_device_pop(dev, &c) == RR_OK) {                      /* address and length checked first */
        rr_vq_device_read(dev, in, sizeof in, &n);
        rr_vq_device_write(dev, out, 2, &n);
        rr_vq_device_add_used(dev, c.head, 2);
        rr_vq_device_publish(dev, &notify);
    }
    uint64_t token; uint32_t len;                                  /* driver side: the entry is validated; */
    rr_vq_driver_get_used(drv, &token, &len);                      /* a lying device gives RR_EIO, not a crash */
    /* --- end of snippet -------------------------------------------------------------- */

    void *resp;
    rr_guestmem_translate(mem, resp_gpa, 2, &resp);
    printf("token %llu, %u bytes: %.2s\n", (unsigned long long)token, len, (const char *)resp);
    /* EXPECT: token 42, 2 bytes: ok */
    int ok = token == my_token && len == 2 && memcmp(resp, "ok", 2) == 0;
    rr_vq_device_destroy(dev);
    rr_vq_driver_destroy(drv);
    ok = ok && rr_guestmem_destroy(mem) == RR_OK;
    return ok ? 0 : 1;
}
