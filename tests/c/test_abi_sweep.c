/*
 * The C ABI sweep (issue #11): every exported function is called with NULL, stale (destroyed),
 * double-destroyed, wrong-kind, corrupted and made-up handles or pointers, and with out-of-range
 * sizes, offsets, lines and flags. Each call must return its documented error and change
 * nothing; the library must never crash or abort the host, and must stay usable afterwards (each
 * case ends with a working round trip, and the suite with no live handle left).
 *
 * check_exports.sh checks that every function the header declares is named in this file.
 */
#define _GNU_SOURCE
#include <refruntime.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdint.h>

#include "rr_test.h"

#define GPA 0x40000000ull

/* Zeroed, aligned memory that is no RefRuntime object: a "made-up" pointer of any kind. */
static alignas(64) unsigned char not_an_object[256];

static void *made_up(void) { return not_an_object + 64; }

/* The calls of one opaque handle kind, each given @h and otherwise valid arguments. */
typedef void (*kind_calls_fn)(void *h, int32_t expect);

/*
 * Runs @calls with every bad handle of one kind: NULL (RR_EINVAL), a destroyed one, a handle of
 * another kind, the live handle with each of its 64 bits flipped, a pointer to zeroed memory, a
 * stack address and small integers (all RR_EBADHANDLE). @live must still work afterwards.
 */
static void sweep_handles(kind_calls_fn calls, void *live, void *stale, void *other_kind)
{
    calls(NULL, RR_EINVAL);
    calls(stale, RR_EBADHANDLE);
    calls(other_kind, RR_EBADHANDLE);
    for (int bit = 0; bit < 64; bit++)
        calls((void *)((uintptr_t)live ^ ((uintptr_t)1 << bit)), RR_EBADHANDLE);
    calls(made_up(), RR_EBADHANDLE);
    int on_stack[4] = {0};
    calls(on_stack, RR_EBADHANDLE);
    calls((void *)(uintptr_t)1, RR_EBADHANDLE);
    calls((void *)(uintptr_t)0xB, RR_EBADHANDLE);
    calls((void *)UINTPTR_MAX, RR_EBADHANDLE);
}

static int actions_run;
static void count_action(void *data) { (void)data; actions_run++; }
static void irq_fn(void *ctx, int32_t line) { (void)ctx; (void)line; }

/* ---- gate ---------------------------------------------------------------------------------- */

static void gate_calls(void *h, int32_t st)
{
    rr_gate_t *g = h;
    CHECK_EQ(rr_gate_enter(g), st);
    CHECK_EQ(rr_gate_leave(g), st);
    CHECK_EQ(rr_gate_disconnect(g), st);
    CHECK_EQ(rr_gate_destroy(g), st);
}

static void gate_handles(void)
{
    rr_gate_t *live, *stale;
    rr_devres_t *other;
    CHECK_EQ(rr_gate_create(&live), RR_OK);
    CHECK_EQ(rr_gate_create(&stale), RR_OK);
    CHECK_EQ(rr_gate_destroy(stale), RR_OK);
    CHECK_EQ(rr_gate_destroy(stale), RR_EBADHANDLE); /* double destroy */
    CHECK_EQ(rr_devres_create(&other), RR_OK);
    sweep_handles(gate_calls, live, stale, other);
    CHECK_EQ(rr_gate_create(NULL), RR_EINVAL);
    CHECK(rr_handle_table() != NULL); /* what the RR_INLINE gate calls read */
    CHECK(rr_handle_table() == rr_handle_table());
    /* Still usable: */
    CHECK_EQ(rr_gate_enter(live), RR_OK);
    CHECK_EQ(rr_gate_leave(live), RR_OK);
    CHECK_EQ(rr_gate_leave(live), RR_EINVAL); /* not inside a call */
    CHECK_EQ(rr_gate_disconnect(live), RR_OK);
    CHECK_EQ(rr_gate_enter(live), RR_ENODEV);
    CHECK_EQ(rr_gate_destroy(live), RR_OK);
    CHECK_EQ(rr_devres_destroy(other, NULL), RR_OK);
}

/* ---- devres -------------------------------------------------------------------------------- */

static void devres_calls(void *h, int32_t st)
{
    rr_devres_t *d = h;
    uint64_t id = 0;
    uint32_t n = 0;
    CHECK_EQ(rr_devres_add_action(d, count_action, NULL), st);
    int before = actions_run;
    CHECK_EQ(rr_devres_add_action_or_reset(d, count_action, NULL), st);
    CHECK_EQ(actions_run, before + 1); /* not registered: run at once, so released exactly once */
    CHECK_EQ(rr_devres_remove_action(d, count_action, NULL), st);
    CHECK_EQ(rr_devres_release_action(d, count_action, NULL), st);
    CHECK_EQ(rr_devres_open_group(d, &id), st);
    CHECK_EQ(rr_devres_close_group(d, 1), st);
    CHECK_EQ(rr_devres_remove_group(d, 1), st);
    CHECK_EQ(rr_devres_release_group(d, 1, &n), st);
    CHECK_EQ(rr_devres_release_all(d, &n), st);
    CHECK_EQ(rr_devres_destroy(d, &n), st);
}

static void devres_handles(void)
{
    rr_devres_t *live, *stale;
    rr_gate_t *other;
    CHECK_EQ(rr_devres_create(&live), RR_OK);
    CHECK_EQ(rr_devres_create(&stale), RR_OK);
    CHECK_EQ(rr_devres_destroy(stale, NULL), RR_OK);
    CHECK_EQ(rr_devres_destroy(stale, NULL), RR_EBADHANDLE);
    CHECK_EQ(rr_gate_create(&other), RR_OK);
    actions_run = 0;
    sweep_handles(devres_calls, live, stale, other);
    CHECK_EQ(rr_devres_create(NULL), RR_EINVAL);
    /* Out-of-range arguments on a live list: */
    uint64_t id = 0;
    CHECK_EQ(rr_devres_add_action(live, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_devres_open_group(live, NULL), RR_EINVAL);
    CHECK_EQ(rr_devres_close_group(live, 0), RR_ENOENT);
    CHECK_EQ(rr_devres_remove_group(live, 12345), RR_ENOENT);
    CHECK_EQ(rr_devres_release_group(live, 12345, NULL), RR_ENOENT);
    CHECK_EQ(rr_devres_remove_action(live, count_action, NULL), RR_ENOENT);
    /* Still usable: */
    actions_run = 0;
    CHECK_EQ(rr_devres_open_group(live, &id), RR_OK);
    CHECK_EQ(rr_devres_add_action(live, count_action, NULL), RR_OK);
    CHECK_EQ(rr_devres_close_group(live, id), RR_OK);
    CHECK_EQ(rr_devres_add_action(live, count_action, NULL), RR_OK);
    uint32_t released = 0;
    CHECK_EQ(rr_devres_destroy(live, &released), RR_OK);
    CHECK_EQ(released, 2);
    CHECK_EQ(actions_run, 2);
    CHECK_EQ(rr_gate_destroy(other), RR_OK);
}

/* ---- PL061 model and GPIO chip ------------------------------------------------------------- */

static void model_calls(void *h, int32_t st)
{
    rr_pl061_model_t *m = h;
    uint8_t outputs = 0;
    rr_gpio_chip_t *chip = NULL;
    CHECK_EQ(rr_pl061_model_set_input(m, 0, true), st);
    CHECK_EQ(rr_pl061_model_outputs(m, &outputs), st);
    CHECK_EQ(rr_pl061_probe_model(m, &chip), st);
    CHECK(chip == NULL);
    CHECK_EQ(rr_pl061_model_destroy(m), st);
}

static void chip_calls(void *h, int32_t st)
{
    rr_gpio_chip_t *c = h;
    int32_t dir = 0;
    bool v = false;
    rr_gpio_irq_stats_t stats;
    memset(&stats, 0xEE, sizeof stats);
    CHECK_EQ(rr_gpio_irq_stats(c, 0, &stats), st);
    CHECK_EQ(stats.handled, 0); /* zeroed on refusal too */
    CHECK_EQ(stats.disabled, 0);
    CHECK_EQ(rr_gpio_get_direction(c, 0, &dir), st);
    CHECK_EQ(rr_gpio_direction_input(c, 0), st);
    CHECK_EQ(rr_gpio_direction_output(c, 0, true), st);
    CHECK_EQ(rr_gpio_get(c, 0, &v), st);
    CHECK_EQ(rr_gpio_set(c, 0, true), st);
    CHECK_EQ(rr_gpio_set_irq_type(c, 0, RR_GPIO_IRQ_EDGE_RISING), st);
    CHECK_EQ(rr_gpio_set_irq_handler(c, 0, irq_fn, NULL), st);
    CHECK_EQ(rr_gpio_interrupt(c, true), st);
    CHECK_EQ(rr_gpio_suspend(c), st);
    CHECK_EQ(rr_gpio_resume(c), st);
    CHECK_EQ(rr_gpio_remove(c), st);
    CHECK_EQ(rr_gpio_chip_get(c), st);
    CHECK_EQ(rr_gpio_destroy(c), st);
}

static void gpio_handles(void)
{
    rr_pl061_model_t *model, *stale_model;
    rr_gpio_chip_t *chip, *stale_chip;
    CHECK_EQ(rr_pl061_model_create(&model), RR_OK);
    CHECK_EQ(rr_pl061_model_create(&stale_model), RR_OK);
    CHECK_EQ(rr_pl061_probe_model(stale_model, &stale_chip), RR_OK);
    CHECK_EQ(rr_gpio_destroy(stale_chip), RR_OK);
    CHECK_EQ(rr_gpio_destroy(stale_chip), RR_EBADHANDLE);
    CHECK_EQ(rr_pl061_model_destroy(stale_model), RR_OK);
    CHECK_EQ(rr_pl061_model_destroy(stale_model), RR_EBADHANDLE);
    CHECK_EQ(rr_pl061_probe_model(model, &chip), RR_OK);

    sweep_handles(model_calls, model, stale_model, chip);
    sweep_handles(chip_calls, chip, stale_chip, model);
    CHECK_EQ(rr_pl061_model_create(NULL), RR_EINVAL);
    CHECK_EQ(rr_pl061_probe_model(model, NULL), RR_EINVAL);

    /* Out-of-range lines, types and NULL outputs on live handles: nothing changes. */
    int32_t dir = 0;
    bool v = false;
    uint8_t out = 0;
    int32_t lines[] = {-1, 8, 1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int32_t l = lines[i];
        CHECK_EQ(rr_pl061_model_set_input(model, l, true), RR_EINVAL);
        CHECK_EQ(rr_gpio_get_direction(chip, l, &dir), RR_EINVAL);
        CHECK_EQ(rr_gpio_direction_input(chip, l), RR_EINVAL);
        CHECK_EQ(rr_gpio_direction_output(chip, l, true), RR_EINVAL);
        CHECK_EQ(rr_gpio_get(chip, l, &v), RR_EINVAL);
        CHECK_EQ(rr_gpio_set(chip, l, true), RR_EINVAL);
        CHECK_EQ(rr_gpio_set_irq_type(chip, l, RR_GPIO_IRQ_EDGE_RISING), RR_EINVAL);
        CHECK_EQ(rr_gpio_set_irq_handler(chip, l, irq_fn, NULL), RR_EINVAL);
        rr_gpio_irq_stats_t stats;
        CHECK_EQ(rr_gpio_irq_stats(chip, l, &stats), RR_EINVAL);
    }
    CHECK_EQ(rr_gpio_irq_stats(chip, 0, NULL), RR_EINVAL);
    CHECK_EQ(rr_gpio_set_irq_type(chip, 0, 0x7F), RR_EINVAL);
    CHECK_EQ(rr_gpio_set_irq_type(chip, 0, -1), RR_EINVAL);
    CHECK_EQ(rr_gpio_get_direction(chip, 0, NULL), RR_EINVAL);
    CHECK_EQ(rr_gpio_get(chip, 0, NULL), RR_EINVAL);
    CHECK_EQ(rr_pl061_model_outputs(model, NULL), RR_EINVAL);

    /* Still usable: a line driven high reaches the model's pins. */
    CHECK_EQ(rr_gpio_direction_output(chip, 3, true), RR_OK);
    CHECK_EQ(rr_pl061_model_outputs(model, &out), RR_OK);
    CHECK_EQ(out & 0x08, 0x08);
    CHECK_EQ(rr_gpio_get_direction(chip, 3, &dir), RR_OK);
    CHECK_EQ(dir, RR_GPIO_DIRECTION_OUT);
    /* Shared chip handle: the second destroy frees it; the third is refused. */
    CHECK_EQ(rr_gpio_chip_get(chip), RR_OK);
    CHECK_EQ(rr_gpio_destroy(chip), RR_OK);
    CHECK_EQ(rr_gpio_get(chip, 3, &v), RR_OK);
    CHECK_EQ(rr_gpio_destroy(chip), RR_OK);
    CHECK_EQ(rr_gpio_destroy(chip), RR_EBADHANDLE);
    CHECK_EQ(rr_pl061_model_destroy(model), RR_OK);
}

/* ---- guest memory, virtqueue sides, doorbell ------------------------------------------------ */

static void mem_calls(void *h, int32_t st)
{
    rr_guestmem_t *m = h;
    void *host = NULL;
    uint64_t gpa = 0;
    rr_vq_driver_t *drv = NULL;
    rr_vq_device_t *dev = NULL;
    rr_vq_rings_t rings = {16, 0, GPA, GPA + 256, GPA + 512};
    CHECK_EQ(rr_guestmem_translate(m, GPA, 16, &host), st);
    CHECK_EQ(rr_guestmem_alloc(m, 16, 16, &gpa), st);
    CHECK_EQ(rr_vq_driver_create(m, 16, 0, 0, &drv), st);
    CHECK_EQ(rr_vq_device_create(m, &rings, 0, RR_VQ_MALFORMED_BREAK, &dev), st);
    CHECK(drv == NULL && dev == NULL);
    CHECK_EQ(rr_guestmem_destroy(m), st);
}

static void driver_calls(void *h, int32_t st)
{
    rr_vq_driver_t *q = h;
    rr_vq_rings_t rings;
    rr_vq_buf_t buf = {GPA, 8, 0};
    uint32_t one = 1, zero = 0, n = 0, len = 0;
    uint64_t token = 0;
    int32_t flag = 0;
    char text[32];
    CHECK_EQ(rr_vq_driver_rings(q, &rings), st);
    CHECK_EQ(rr_vq_driver_add(q, &buf, 1, 0, 1), st);
    CHECK_EQ(rr_vq_driver_add_chains(q, &buf, &one, &zero, &token, 1, &n), st);
    CHECK_EQ(rr_vq_driver_get_used_batch(q, &token, &len, 1, &n), st);
    CHECK_EQ(rr_vq_driver_publish(q, &flag), st);
    CHECK_EQ(rr_vq_driver_get_used(q, &token, &len), st);
    CHECK_EQ(rr_vq_driver_enable_cb(q, &flag), st);
    CHECK_EQ(rr_vq_driver_disable_cb(q), st);
    CHECK_EQ(rr_vq_driver_detach_unused(q, &token), st);
    CHECK_EQ(rr_vq_driver_reset(q), st);
    CHECK_EQ(rr_vq_driver_error(q, text, sizeof text), st);
    CHECK_EQ(rr_vq_driver_destroy(q), st);
}

static void device_calls(void *h, int32_t st)
{
    rr_vq_device_t *q = h;
    rr_vq_chain_t c;
    char data[8] = {0};
    uint32_t n = 0, head = 0, len = 0;
    int32_t flag = 0;
    CHECK_EQ(rr_vq_device_pop(q, &c), st);
    CHECK_EQ(rr_vq_device_pop_batch(q, &c, 1, &n), st);
    CHECK_EQ(rr_vq_device_read(q, data, sizeof data, &n), st);
    CHECK_EQ(rr_vq_device_write(q, data, sizeof data, &n), st);
    CHECK_EQ(rr_vq_device_add_used(q, 0, 0), st);
    CHECK_EQ(rr_vq_device_add_used_batch(q, &head, &len, 1, &n), st);
    CHECK_EQ(rr_vq_device_publish(q, &flag), st);
    CHECK_EQ(rr_vq_device_enable_notify(q, &flag), st);
    CHECK_EQ(rr_vq_device_disable_notify(q), st);
    CHECK_EQ(rr_vq_device_reset(q), st);
    CHECK_EQ(rr_vq_device_error(q, data, sizeof data), st);
    CHECK_EQ(rr_vq_device_destroy(q), st);
}

static void bell_calls(void *h, int32_t st)
{
    rr_doorbell_t *b = h;
    CHECK_EQ(rr_doorbell_ring(b), st);
    CHECK_EQ(rr_doorbell_wait(b, 0), st);
    CHECK_EQ(rr_doorbell_destroy(b), st);
}

struct queues {
    rr_guestmem_t *mem;
    rr_vq_driver_t *drv;
    rr_vq_device_t *dev;
    rr_vq_rings_t rings;
};

static void queues_open(struct queues *q)
{
    CHECK_EQ(rr_guestmem_create(1 << 16, GPA, &q->mem), RR_OK);
    CHECK_EQ(rr_vq_driver_create(q->mem, 8, RR_VIRTIO_F_EVENT_IDX, 0, &q->drv), RR_OK);
    CHECK_EQ(rr_vq_driver_rings(q->drv, &q->rings), RR_OK);
    CHECK_EQ(rr_vq_device_create(q->mem, &q->rings, RR_VIRTIO_F_EVENT_IDX, RR_VQ_MALFORMED_BREAK, &q->dev), RR_OK);
}

static void queues_close(struct queues *q)
{
    CHECK_EQ(rr_vq_driver_destroy(q->drv), RR_OK);
    CHECK_EQ(rr_vq_driver_destroy(q->drv), RR_EBADHANDLE);
    CHECK_EQ(rr_vq_device_destroy(q->dev), RR_OK);
    CHECK_EQ(rr_vq_device_destroy(q->dev), RR_EBADHANDLE);
    CHECK_EQ(rr_guestmem_destroy(q->mem), RR_OK);
    CHECK_EQ(rr_guestmem_destroy(q->mem), RR_EBADHANDLE);
}

/* One request through the queues: 8 bytes out, 4 back. */
static void queues_round_trip(struct queues *q)
{
    uint64_t req = 0, resp = 0, token = 0;
    uint32_t len = 0, n = 0;
    int32_t notify = 0;
    rr_vq_chain_t c;
    CHECK_EQ(rr_guestmem_alloc(q->mem, 8, 8, &req), RR_OK);
    CHECK_EQ(rr_guestmem_alloc(q->mem, 4, 4, &resp), RR_OK);
    rr_vq_buf_t bufs[2] = {{req, 8, 0}, {resp, 4, 0}};
    CHECK_EQ(rr_vq_driver_add(q->drv, bufs, 1, 1, 77), RR_OK);
    CHECK_EQ(rr_vq_driver_publish(q->drv, &notify), RR_OK);
    CHECK_EQ(rr_vq_device_pop(q->dev, &c), RR_OK);
    CHECK_EQ(rr_vq_device_write(q->dev, "pong", 4, &n), RR_OK);
    CHECK_EQ(rr_vq_device_add_used(q->dev, c.head, 4), RR_OK);
    CHECK_EQ(rr_vq_device_write(q->dev, "late", 4, &n), RR_ENOENT); /* given back: the driver's again */
    CHECK_EQ(n, 0);
    CHECK_EQ(rr_vq_device_publish(q->dev, &notify), RR_OK);
    CHECK_EQ(rr_vq_driver_get_used(q->drv, &token, &len), RR_OK);
    CHECK_EQ(token, 77);
    CHECK_EQ(len, 4);
}

static void virtio_handles(void)
{
    struct queues live, stale;
    rr_doorbell_t *bell, *stale_bell;
    queues_open(&live);
    queues_open(&stale);
    queues_close(&stale);
    CHECK_EQ(rr_doorbell_create(10, &bell), RR_OK);
    CHECK_EQ(rr_doorbell_create(10, &stale_bell), RR_OK);
    CHECK_EQ(rr_doorbell_destroy(stale_bell), RR_OK);
    CHECK_EQ(rr_doorbell_destroy(stale_bell), RR_EBADHANDLE);

    sweep_handles(mem_calls, live.mem, stale.mem, live.drv);
    sweep_handles(driver_calls, live.drv, stale.drv, live.dev);
    sweep_handles(device_calls, live.dev, stale.dev, live.drv);
    sweep_handles(bell_calls, bell, stale_bell, live.mem);
    CHECK_EQ(rr_guestmem_create(4096, GPA, NULL), RR_EINVAL);
    CHECK_EQ(rr_doorbell_create(0, NULL), RR_EINVAL);

    queues_round_trip(&live);
    CHECK_EQ(rr_doorbell_ring(bell), RR_OK);
    CHECK_EQ(rr_doorbell_wait(bell, 0), RR_OK);
    CHECK_EQ(rr_doorbell_wait(bell, 0), RR_ENOENT); /* timed out */
    CHECK_EQ(rr_doorbell_destroy(bell), RR_OK);
    queues_close(&live);
}

/* Sizes, addresses, counts and flags out of range on live queues: refused, nothing changed. */
static void virtio_ranges(void)
{
    rr_guestmem_t *m = NULL;
    CHECK_EQ(rr_guestmem_create(0, GPA, &m), RR_EINVAL);
    CHECK_EQ(rr_guestmem_create(4096, UINT64_MAX - 100, &m), RR_EINVAL); /* wraps */
    CHECK_EQ(rr_guestmem_create(UINT64_MAX, 0, &m), RR_EINVAL);
    CHECK(m == NULL);

    struct queues q;
    queues_open(&q);
    void *host = NULL;
    uint64_t gpa = 0;
    CHECK_EQ(rr_guestmem_translate(q.mem, GPA - 1, 1, &host), RR_EINVAL);
    CHECK_EQ(rr_guestmem_translate(q.mem, GPA + (1 << 16), 1, &host), RR_EINVAL);
    CHECK_EQ(rr_guestmem_translate(q.mem, GPA + (1 << 16) - 4, 8, &host), RR_EINVAL);
    CHECK_EQ(rr_guestmem_translate(q.mem, GPA, UINT64_MAX, &host), RR_EINVAL);
    CHECK_EQ(rr_guestmem_translate(q.mem, UINT64_MAX, 2, &host), RR_EINVAL);
    CHECK_EQ(rr_guestmem_translate(q.mem, GPA, 8, NULL), RR_EINVAL);
    CHECK(host == NULL);
    CHECK_EQ(rr_guestmem_alloc(q.mem, 16, 3, &gpa), RR_EINVAL);    /* not a power of two */
    CHECK_EQ(rr_guestmem_alloc(q.mem, 1 << 20, 8, &gpa), RR_ENOSPC); /* bigger than the region */
    CHECK_EQ(rr_guestmem_alloc(q.mem, UINT64_MAX, 8, &gpa), RR_ENOSPC);
    CHECK_EQ(rr_guestmem_alloc(q.mem, 16, 16, NULL), RR_EINVAL);
    CHECK_EQ(rr_guestmem_destroy(q.mem), RR_EBUSY); /* queues attached */

    rr_vq_driver_t *d = NULL;
    uint32_t sizes[] = {0, 3, 65536, 1u << 31, UINT32_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK_EQ(rr_vq_driver_create(q.mem, sizes[i], 0, 0, &d), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_create(q.mem, 8, 0, 0, NULL), RR_EINVAL);
    CHECK(d == NULL);

    rr_vq_device_t *v = NULL;
    rr_vq_rings_t bad = q.rings;
    CHECK_EQ(rr_vq_device_create(q.mem, NULL, 0, RR_VQ_MALFORMED_BREAK, &v), RR_EINVAL);
    bad.size = 3;
    CHECK_EQ(rr_vq_device_create(q.mem, &bad, 0, RR_VQ_MALFORMED_BREAK, &v), RR_EINVAL);
    bad = q.rings;
    bad.desc += 1; /* misaligned */
    CHECK_EQ(rr_vq_device_create(q.mem, &bad, 0, RR_VQ_MALFORMED_BREAK, &v), RR_EINVAL);
    bad = q.rings;
    bad.used = GPA + (1 << 16) - 8; /* runs off the region */
    CHECK_EQ(rr_vq_device_create(q.mem, &bad, 0, RR_VQ_MALFORMED_BREAK, &v), RR_EINVAL);
    CHECK_EQ(rr_vq_device_create(q.mem, &q.rings, 0, 7, &v), RR_EINVAL); /* no such policy */
    bad = q.rings;
    bad.reserved = 1; /* reserved: must be 0 */
    CHECK_EQ(rr_vq_device_create(q.mem, &bad, 0, RR_VQ_MALFORMED_BREAK, &v), RR_EINVAL);
    CHECK(v == NULL);

    /* Driver side. */
    uint64_t req = 0;
    CHECK_EQ(rr_guestmem_alloc(q.mem, 64, 8, &req), RR_OK);
    rr_vq_buf_t ok = {req, 8, 0};
    rr_vq_buf_t outside = {GPA + (1 << 16), 8, 0};
    rr_vq_buf_t straddle = {GPA + (1 << 16) - 4, 8, 0};
    CHECK_EQ(rr_vq_driver_add(q.drv, NULL, 1, 0, 1), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add(q.drv, &ok, 0, 0, 1), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add(q.drv, &outside, 1, 0, 1), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add(q.drv, &straddle, 1, 0, 1), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add(q.drv, &ok, UINT32_MAX, 1, 1), RR_EINVAL); /* count overflows */
    rr_vq_buf_t reserved = {req, 8, 0x100};
    CHECK_EQ(rr_vq_driver_add(q.drv, &reserved, 1, 0, 1), RR_EINVAL); /* reserved: must be 0 */
    rr_vq_buf_t many[9];
    for (int i = 0; i < 9; i++)
        many[i] = ok;
    CHECK_EQ(rr_vq_driver_add(q.drv, many, 9, 0, 1), RR_EINVAL); /* 9 > N = 8, no indirect: never fits */
    uint32_t nr = 1, nw = 0, added = 99;
    uint64_t tok = 5;
    CHECK_EQ(rr_vq_driver_add_chains(q.drv, &ok, &nr, &nw, &tok, 0, &added), RR_OK); /* nothing to add */
    CHECK_EQ(added, 0);
    CHECK_EQ(rr_vq_driver_add_chains(q.drv, &ok, NULL, &nw, &tok, 1, &added), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_add_chains(q.drv, &ok, &nr, &nw, &tok, 1, NULL), RR_EINVAL);
    uint32_t lens[2];
    uint64_t toks[2];
    uint32_t got = 99;
    CHECK_EQ(rr_vq_driver_get_used_batch(q.drv, toks, lens, 0, &got), RR_OK); /* cap 0: nothing asked */
    CHECK_EQ(got, 0);
    CHECK_EQ(rr_vq_driver_get_used_batch(q.drv, NULL, lens, 2, &got), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_get_used(q.drv, NULL, lens), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_get_used(q.drv, toks, lens), RR_ENOENT); /* nothing used */
    CHECK_EQ(rr_vq_driver_rings(q.drv, NULL), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_detach_unused(q.drv, NULL), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_error(q.drv, NULL, 8), RR_EINVAL);
    char text[4];
    CHECK_EQ(rr_vq_driver_error(q.drv, text, 0), RR_EINVAL);
    CHECK_EQ(rr_vq_driver_error(q.drv, text, sizeof text), RR_ENOENT); /* not broken */

    /* Device side: nothing popped, heads never given out, lengths beyond the chain. */
    rr_vq_chain_t c;
    uint32_t n = 0, head = 0, len = 0;
    CHECK_EQ(rr_vq_device_pop(q.dev, NULL), RR_EINVAL);
    CHECK_EQ(rr_vq_device_pop(q.dev, &c), RR_ENOENT);
    CHECK_EQ(rr_vq_device_pop_batch(q.dev, NULL, 4, &n), RR_EINVAL);
    CHECK_EQ(rr_vq_device_pop_batch(q.dev, &c, 1, NULL), RR_EINVAL);
    n = 99;
    CHECK_EQ(rr_vq_device_pop_batch(q.dev, &c, 1, &n), RR_ENOENT);
    CHECK_EQ(n, 0);
    n = 99;
    CHECK_EQ(rr_vq_device_read(q.dev, text, sizeof text, &n), RR_OK); /* no chain popped: 0 bytes */
    CHECK_EQ(n, 0);
    n = 99;
    CHECK_EQ(rr_vq_device_write(q.dev, text, sizeof text, &n), RR_OK);
    CHECK_EQ(n, 0);
    CHECK_EQ(rr_vq_device_read(q.dev, NULL, 4, &n), RR_EINVAL);
    CHECK_EQ(rr_vq_device_write(q.dev, text, 4, NULL), RR_EINVAL);
    CHECK_EQ(rr_vq_device_add_used(q.dev, 0, 0), RR_EINVAL);   /* head not held */
    CHECK_EQ(rr_vq_device_add_used(q.dev, 8, 0), RR_EINVAL);   /* beyond N */
    CHECK_EQ(rr_vq_device_add_used(q.dev, UINT32_MAX, 0), RR_EINVAL);
    CHECK_EQ(rr_vq_device_add_used_batch(q.dev, &head, &len, 1, &n), RR_EINVAL);
    CHECK_EQ(rr_vq_device_add_used_batch(q.dev, NULL, &len, 1, &n), RR_EINVAL);
    CHECK_EQ(rr_vq_device_error(q.dev, NULL, 8), RR_EINVAL);

    /* Neither side is broken by any of it: */
    queues_round_trip(&q);
    CHECK_EQ(rr_vq_device_error(q.dev, text, sizeof text), RR_ENOENT); /* not broken */
    CHECK_EQ(rr_vq_driver_error(q.drv, text, sizeof text), RR_ENOENT);
    queues_close(&q);
}

/* ---- back-ends: guest memory maps, queues configured after creation, held chains --------- */

static int lent_released;
static void lent_release(void *ctx) { (void)ctx; lent_released++; }

static void map_calls(void *h, int32_t st)
{
    rr_guestmap_t *m = h;
    rr_guestmap_region_t r = {0x1000, 64, 0x9000, 0};
    char buf[64] = {0};
    uint32_t n = 0;
    rr_vq_device_t *dev = NULL;
    CHECK_EQ(rr_guestmap_add_host(m, &r, buf, NULL, NULL), st);
    CHECK_EQ(rr_guestmap_add_fd(m, &r, 0), st);
    CHECK_EQ(rr_guestmap_remove(m, 0x1000, 64, 0), st);
    CHECK_EQ(rr_guestmap_read(m, 0x1000, buf, 1), st);
    CHECK_EQ(rr_guestmap_write(m, 0x1000, buf, 1), st);
    CHECK_EQ(rr_guestmap_count(m, &n, NULL), st);
    CHECK_EQ(rr_vq_device_create_on_map(m, 16, 0, RR_VQ_MALFORMED_BREAK, &dev), st);
    CHECK(dev == NULL);
    CHECK_EQ(rr_guestmap_destroy(m), st);
}

static void device_backend_calls(void *h, int32_t st)
{
    rr_vq_device_t *q = h;
    rr_vq_rings_t rings = {16, 0, GPA, GPA + 256, GPA + 512};
    rr_vq_state_t state;
    rr_vq_chain_t c;
    rr_vq_segment_t seg;
    char data[8] = {0}, err[16];
    uint32_t n = 0;
    CHECK_EQ(rr_vq_device_set_size(q, 16), st);
    CHECK_EQ(rr_vq_device_set_rings(q, &rings, RR_VQ_ADDR_GUEST), st);
    CHECK_EQ(rr_vq_device_set_features(q, 0), st);
    CHECK_EQ(rr_vq_device_set_indices(q, 0, 0), st);
    CHECK_EQ(rr_vq_device_start(q, err, sizeof err), st);
    CHECK_EQ(rr_vq_device_stop(q), st);
    CHECK_EQ(rr_vq_device_set_enabled(q, 1), st);
    CHECK_EQ(rr_vq_device_sync_used(q), st);
    CHECK_EQ(rr_vq_device_state(q, &state), st);
    CHECK_EQ(rr_vq_device_chain(q, 0, &c), st);
    CHECK_EQ(rr_vq_device_chain_segment(q, 0, 0, &seg), st);
    CHECK_EQ(rr_vq_device_chain_read(q, 0, 0, data, sizeof data, &n), st);
    CHECK_EQ(rr_vq_device_chain_write(q, 0, 0, data, sizeof data, &n), st);
}

static void backend_handles(void)
{
    struct queues live, stale;
    queues_open(&live);
    queues_open(&stale);
    queues_close(&stale);
    rr_guestmap_t *map = NULL, *stale_map = NULL;
    CHECK_EQ(rr_guestmap_create(8, &map), RR_OK);
    CHECK_EQ(rr_guestmap_create(8, &stale_map), RR_OK);
    CHECK_EQ(rr_guestmap_destroy(stale_map), RR_OK);
    CHECK_EQ(rr_guestmap_destroy(stale_map), RR_EBADHANDLE);

    sweep_handles(map_calls, map, stale_map, live.mem);
    sweep_handles(device_backend_calls, live.dev, stale.dev, map);

    /* Still usable: the single-region queue answers the new calls too. */
    rr_vq_state_t st;
    CHECK_EQ(rr_vq_device_state(live.dev, &st), RR_OK);
    CHECK_EQ(st.size, 8);
    CHECK(st.flags & RR_VQ_STATE_READY);
    queues_round_trip(&live);
    CHECK_EQ(rr_guestmap_destroy(map), RR_OK);
    queues_close(&live);
}

static void backend_ranges(void)
{
    rr_guestmap_t *m = NULL;
    CHECK_EQ(rr_guestmap_create(0, &m), RR_EINVAL);
    CHECK_EQ(rr_guestmap_create(5000, &m), RR_EINVAL);
    CHECK_EQ(rr_guestmap_create(2, NULL), RR_EINVAL);
    CHECK(m == NULL);
    CHECK_EQ(rr_guestmap_create(2, &m), RR_OK);

    static alignas(64) unsigned char lent[8192];
    rr_guestmap_region_t a = {GPA, 4096, 0x7000, 0};
    rr_guestmap_region_t overlap = {GPA + 2048, 4096, 0x100000, 0};
    rr_guestmap_region_t empty = {GPA + 0x10000, 0, 0x200000, 0};
    rr_guestmap_region_t wraps = {UINT64_MAX - 100, 4096, 0x300000, 0};
    rr_guestmap_region_t b = {GPA + 4096, 4096, 0x8000, 0};
    rr_guestmap_region_t c = {GPA + 0x20000, 4096, 0x20000, 0};
    lent_released = 0;
    CHECK_EQ(rr_guestmap_add_host(m, NULL, lent, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_guestmap_add_host(m, &a, NULL, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_guestmap_add_host(m, &empty, lent, lent_release, NULL), RR_EINVAL);
    CHECK_EQ(rr_guestmap_add_host(m, &wraps, lent, lent_release, NULL), RR_EINVAL);
    CHECK_EQ(lent_released, 2); /* refused regions give their memory back at once */
    CHECK_EQ(rr_guestmap_add_host(m, &a, lent, lent_release, NULL), RR_OK);
    CHECK_EQ(rr_guestmap_add_host(m, &overlap, lent, lent_release, NULL), RR_EINVAL);
    CHECK_EQ(rr_guestmap_add_host(m, &b, lent + 4096, lent_release, NULL), RR_OK);
    CHECK_EQ(rr_guestmap_add_host(m, &c, lent, lent_release, NULL), RR_ENOSPC); /* full */
    CHECK_EQ(rr_guestmap_add_fd(m, &c, -1), RR_EINVAL);
    CHECK_EQ(rr_guestmap_add_fd(m, NULL, 0), RR_EINVAL);
    CHECK_EQ(lent_released, 4);

    char buf[16];
    uint32_t n = 0, pending = 0;
    CHECK_EQ(rr_guestmap_write(m, GPA + 4090, "abcdefghijkl", 12), RR_OK); /* across the two adjacent regions */
    CHECK_EQ(memcmp(lent + 4090, "abcdefghijkl", 12), 0);
    CHECK_EQ(rr_guestmap_read(m, GPA + 8190, buf, 4), RR_EINVAL); /* runs off the end */
    CHECK_EQ(rr_guestmap_read(m, GPA, NULL, 4), RR_EINVAL);
    CHECK_EQ(rr_guestmap_remove(m, GPA, 100, 0), RR_ENOENT);
    CHECK_EQ(rr_guestmap_count(m, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_guestmap_count(m, &n, &pending), RR_OK);
    CHECK_EQ(n, 2);
    CHECK_EQ(pending, 0);

    rr_vq_device_t *v = NULL;
    CHECK_EQ(rr_vq_device_create_on_map(m, 3, 0, RR_VQ_MALFORMED_BREAK, &v), RR_EINVAL);
    CHECK_EQ(rr_vq_device_create_on_map(m, 65536, 0, RR_VQ_MALFORMED_BREAK, &v), RR_EINVAL);
    CHECK_EQ(rr_vq_device_create_on_map(m, 16, 0, 9, &v), RR_EINVAL);
    CHECK_EQ(rr_vq_device_create_on_map(m, 16, 0, RR_VQ_MALFORMED_BREAK, NULL), RR_EINVAL);
    CHECK(v == NULL);
    CHECK_EQ(rr_vq_device_create_on_map(m, 16, 0, RR_VQ_MALFORMED_BREAK, &v), RR_OK);
    CHECK_EQ(rr_guestmap_destroy(m), RR_EBUSY); /* a queue lives in it */
    CHECK_EQ(rr_vq_device_set_size(v, 3), RR_EINVAL);
    CHECK_EQ(rr_vq_device_set_size(v, 32), RR_EINVAL); /* above the maximum */
    rr_vq_rings_t r = {16, 0, 0x7000, 0x7100, 0x7200};
    CHECK_EQ(rr_vq_device_set_rings(v, NULL, RR_VQ_ADDR_USER), RR_EINVAL);
    CHECK_EQ(rr_vq_device_set_rings(v, &r, 7), RR_EINVAL);
    r.reserved = 1;
    CHECK_EQ(rr_vq_device_set_rings(v, &r, RR_VQ_ADDR_USER), RR_EINVAL);
    r.reserved = 0;
    r.used = 0x7ff0; /* runs off the region */
    CHECK_EQ(rr_vq_device_set_rings(v, &r, RR_VQ_ADDR_USER), RR_OK);
    char err[128] = "x";
    CHECK_EQ(rr_vq_device_start(v, err, sizeof err), RR_EINVAL);
    CHECK(strstr(err, "region") != NULL);
    CHECK_EQ(rr_vq_device_start(v, NULL, 4), RR_EINVAL);
    r.used = 0x7200;
    CHECK_EQ(rr_vq_device_set_rings(v, &r, RR_VQ_ADDR_USER), RR_OK);
    CHECK_EQ(rr_vq_device_start(v, NULL, 0), RR_OK);
    CHECK_EQ(rr_vq_device_start(v, NULL, 0), RR_EBUSY);
    CHECK_EQ(rr_vq_device_set_size(v, 8), RR_EBUSY);
    CHECK_EQ(rr_vq_device_set_indices(v, 1, 1), RR_EBUSY);
    CHECK_EQ(rr_vq_device_set_enabled(v, 2), RR_EINVAL);
    rr_vq_chain_t ch;
    rr_vq_segment_t seg;
    CHECK_EQ(rr_vq_device_chain(v, 0, &ch), RR_EINVAL);      /* not held */
    CHECK_EQ(rr_vq_device_chain(v, 70000, &ch), RR_EINVAL);
    CHECK_EQ(rr_vq_device_chain(v, 0, NULL), RR_EINVAL);
    CHECK_EQ(rr_vq_device_chain_segment(v, 0, 0, &seg), RR_EINVAL);
    CHECK_EQ(rr_vq_device_chain_read(v, 0, 0, buf, sizeof buf, &n), RR_EINVAL);
    CHECK_EQ(rr_vq_device_chain_write(v, 0, 0, buf, sizeof buf, NULL), RR_EINVAL);
    CHECK_EQ(rr_vq_device_chain_read(v, 0, 0, NULL, 4, &n), RR_EINVAL);
    CHECK_EQ(rr_vq_device_state(v, NULL), RR_EINVAL);
    CHECK_EQ(rr_vq_device_stop(v), RR_OK);
    CHECK_EQ(rr_vq_device_sync_used(v), RR_EBUSY); /* stopped */
    CHECK_EQ(rr_vq_device_destroy(v), RR_OK);
    CHECK_EQ(rr_guestmap_destroy(m), RR_OK);
    CHECK_EQ(lent_released, 6); /* both lent regions given back */

    /* A single-region queue has no user addresses. */
    struct queues q;
    queues_open(&q);
    CHECK_EQ(rr_vq_device_stop(q.dev), RR_OK);
    CHECK_EQ(rr_vq_device_set_rings(q.dev, &q.rings, RR_VQ_ADDR_USER), RR_EINVAL);
    CHECK_EQ(rr_vq_device_set_rings(q.dev, &q.rings, RR_VQ_ADDR_GUEST), RR_OK);
    CHECK_EQ(rr_vq_device_start(q.dev, NULL, 0), RR_OK);
    queues_round_trip(&q);
    queues_close(&q);
}

/* ---- io ------------------------------------------------------------------------------------ */

static uint64_t dev_read(void *ctx, uint64_t offset, int32_t width) { (void)ctx; (void)width; return offset; }
static void dev_write(void *ctx, uint64_t offset, int32_t width, uint64_t value) { (void)ctx; (void)offset; (void)width; (void)value; }

static void io_calls(rr_io_t *io, int32_t st)
{
    uint64_t v = 0;
    rr_gpio_chip_t *chip = NULL;
    CHECK_EQ(rr_io_read(io, 0, RR_IO_32, &v), st);
    CHECK_EQ(rr_io_write(io, 0, RR_IO_32, 1), st);
    CHECK_EQ(rr_pl061_probe_io(io, &chip), st);
    CHECK(chip == NULL);
    CHECK_EQ(rr_io_destroy(io), st);
}

static void io_sweep(void)
{
    rr_io_t *io = NULL, *dev = NULL, *stale = NULL;
    CHECK_EQ(rr_io_alloc(64, &io), RR_OK);
    CHECK_EQ(rr_io_create_device(4096, dev_read, dev_write, NULL, &dev), RR_OK);
    io_calls(NULL, RR_EINVAL);
    io_calls((rr_io_t *)made_up(), RR_EBADHANDLE);
    io_calls((rr_io_t *)((char *)io + 1), RR_EBADHANDLE); /* misaligned: not an object */

    /* Stale: quarantine keeps the freed block mapped and poisoned, so the stale handle is
     * refused deterministically (see rr_debug_set_poison). */
    CHECK_EQ(rr_debug_set_poison(true, true), RR_OK);
    CHECK_EQ(rr_io_alloc(64, &stale), RR_OK);
    CHECK_EQ(rr_io_destroy(stale), RR_OK);
    io_calls(stale, RR_EBADHANDLE);
    CHECK_EQ(rr_io_destroy(stale), RR_EBADHANDLE);
    CHECK(rr_debug_release_quarantine() >= 1);
    CHECK_EQ(rr_debug_set_poison(false, false), RR_OK);

    /* Out of range: */
    uint64_t v = 0;
    rr_io_t *x = NULL;
    CHECK_EQ(rr_io_alloc(0, &x), RR_EINVAL);
    CHECK_EQ(rr_io_alloc(64, NULL), RR_EINVAL);
    CHECK_EQ(rr_io_alloc(UINT64_MAX, &x), RR_EINVAL);
    CHECK_EQ(rr_io_wrap(NULL, 64, &x), RR_EINVAL);
    CHECK_EQ(rr_io_wrap(not_an_object, 0, &x), RR_EINVAL);
    CHECK_EQ(rr_io_create_device(64, NULL, dev_write, NULL, &x), RR_EINVAL);
    CHECK_EQ(rr_io_create_device(64, dev_read, NULL, NULL, &x), RR_EINVAL);
    CHECK(x == NULL);
    CHECK_EQ(rr_io_read(io, 64, RR_IO_8, &v), RR_EINVAL);                /* at the end */
    CHECK_EQ(rr_io_read(io, 62, RR_IO_32, &v), RR_EINVAL);               /* runs past it */
    CHECK_EQ(rr_io_read(io, UINT64_MAX - 1, RR_IO_32, &v), RR_EINVAL);   /* wraps */
    CHECK_EQ(rr_io_read(io, 2, RR_IO_32, &v), RR_EINVAL);                /* misaligned */
    CHECK_EQ(rr_io_read(io, 0, 3, &v), RR_EINVAL);                       /* no such width */
    CHECK_EQ(rr_io_read(io, 0, RR_IO_32 | 0x8000, &v), RR_EINVAL);       /* unknown flag */
    CHECK_EQ(rr_io_read(io, 0, RR_IO_32, NULL), RR_EINVAL);
    CHECK_EQ(rr_io_write(io, 64, RR_IO_8, 1), RR_EINVAL);
    CHECK_EQ(rr_io_write(io, 0, RR_IO_16 | RR_IO_32, 1), RR_EINVAL);
    CHECK_EQ(rr_io_write(io, 0, RR_IO_8, 0x100), RR_EINVAL);             /* value wider than 8 bits */
    CHECK_EQ(rr_io_read(dev, 4096, RR_IO_32, &v), RR_EINVAL);

    /* Still usable: */
    CHECK_EQ(rr_io_write(io, 8, RR_IO_32 | RR_IO_BE, 0x11223344), RR_OK);
    CHECK_EQ(rr_io_read(io, 8, RR_IO_32, &v), RR_OK);
    CHECK_EQ(v, 0x44332211);
    CHECK_EQ(rr_io_read(dev, 40, RR_IO_16, &v), RR_OK);
    CHECK_EQ(v, 40);
    CHECK_EQ(rr_io_destroy(io), RR_OK);
    CHECK_EQ(rr_io_destroy(dev), RR_OK);
}

/* ---- RCU and revocable ---------------------------------------------------------------------- */

static void rcu_cb(rr_rcu_head_t *head) { (void)head; }
static void stall_fn(void *ctx, int32_t tid, uint64_t ns) { (void)ctx; (void)tid; (void)ns; }

static void rcu_calls(rr_rcu_domain_t *d, int32_t st)
{
    rr_rcu_reader_t *reader = NULL;
    rr_rcu_head_t head;
    uint64_t cookie = 0;
    bool done = false;
    rr_rcu_stats_t stats;
    rr_revocable_t *r = NULL;
    int resource = 0;
    CHECK_EQ(rr_rcu_read_lock(d), st);
    CHECK_EQ(rr_rcu_read_unlock(d), st);
    CHECK_EQ(rr_rcu_reader(d, &reader), st);
    CHECK_EQ(rr_rcu_synchronize(d), st);
    CHECK_EQ(rr_rcu_call(d, &head, rcu_cb), st);
    CHECK_EQ(rr_rcu_barrier(d), st);
    CHECK_EQ(rr_rcu_start_poll(d, &cookie), st);
    CHECK_EQ(rr_rcu_poll(d, 1, &done), st);
    CHECK_EQ(rr_rcu_set_stall_handler(d, 1000000, stall_fn, NULL), st);
    CHECK_EQ(rr_rcu_set_max_pending(d, 100), st);
    CHECK_EQ(rr_rcu_stats(d, &stats), st);
    if (d != NULL) /* NULL is the default domain for rr_revocable_create */
        CHECK_EQ(rr_revocable_create(d, &resource, NULL, NULL, &r), st);
    CHECK(r == NULL);
    CHECK_EQ(rr_rcu_domain_destroy(d), st);
}

static void rcu_sweep(void)
{
    rr_rcu_domain_t *d = NULL, *stale = NULL;
    rr_io_t *io = NULL;
    CHECK_EQ(rr_rcu_domain_create(&d), RR_OK);
    CHECK_EQ(rr_io_alloc(64, &io), RR_OK);
    rcu_calls(NULL, RR_EINVAL);
    rcu_calls((rr_rcu_domain_t *)made_up(), RR_EBADHANDLE);
    rcu_calls((rr_rcu_domain_t *)io, RR_EBADHANDLE); /* another kind */
    CHECK_EQ(rr_debug_set_poison(true, true), RR_OK);
    CHECK_EQ(rr_rcu_domain_create(&stale), RR_OK);
    CHECK_EQ(rr_rcu_domain_destroy(stale), RR_OK);
    rcu_calls(stale, RR_EBADHANDLE);
    rr_debug_release_quarantine();
    CHECK_EQ(rr_debug_set_poison(false, false), RR_OK);

    CHECK(rr_rcu_default_domain() != NULL);
    CHECK_EQ(rr_rcu_domain_destroy(rr_rcu_default_domain()), RR_EINVAL);
    CHECK_EQ(rr_rcu_domain_create(NULL), RR_EINVAL);
    rr_rcu_head_t head;
    bool done = false;
    uint64_t cookie = 0;
    CHECK_EQ(rr_rcu_read_unlock(d), RR_EINVAL); /* not inside a section */
    CHECK_EQ(rr_rcu_call(d, NULL, rcu_cb), RR_EINVAL);
    CHECK_EQ(rr_rcu_call(d, &head, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_reader(d, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_start_poll(d, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_poll(d, 0, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_set_max_pending(d, 0), RR_EINVAL);
    CHECK_EQ(rr_rcu_stats(d, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_read_lock(d), RR_OK);
    CHECK_EQ(rr_rcu_synchronize(d), RR_EDEADLK);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_EBUSY);
    CHECK_EQ(rr_rcu_read_unlock(d), RR_OK);

    /* Revocable: */
    int resource = 0;
    rr_revocable_t *r = NULL, *stale_r = NULL;
    CHECK_EQ(rr_revocable_create(d, NULL, NULL, NULL, &r), RR_EINVAL);
    CHECK_EQ(rr_revocable_create(d, &resource, NULL, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_revocable_create(d, &resource, NULL, NULL, &r), RR_OK);
    rr_revocable_t *bads[] = {NULL, (rr_revocable_t *)made_up(), (rr_revocable_t *)io};
    for (size_t i = 0; i < 3; i++) {
        int32_t st = i == 0 ? RR_EINVAL : RR_EBADHANDLE;
        bool revoked = false;
        CHECK(rr_revocable_try_access(bads[i]) == NULL);
        CHECK_EQ(rr_take_last_error(), st);
        CHECK_EQ(rr_revocable_release(bads[i]), st);
        CHECK_EQ(rr_revocable_revoke(bads[i], &revoked), st);
        CHECK_EQ(rr_revocable_revoke_nosync(bads[i], &revoked), st);
        CHECK_EQ(rr_revocable_destroy(bads[i]), st);
    }
    CHECK_EQ(rr_revocable_release(r), RR_EINVAL); /* no access to release */
    CHECK_EQ(rr_debug_set_poison(true, true), RR_OK);
    CHECK_EQ(rr_revocable_create(d, &resource, NULL, NULL, &stale_r), RR_OK);
    CHECK_EQ(rr_revocable_destroy(stale_r), RR_OK);
    CHECK(rr_revocable_try_access(stale_r) == NULL);
    CHECK_EQ(rr_take_last_error(), RR_EBADHANDLE);
    CHECK_EQ(rr_revocable_destroy(stale_r), RR_EBADHANDLE);
    rr_debug_release_quarantine();
    CHECK_EQ(rr_debug_set_poison(false, false), RR_OK);

    /* Still usable: */
    CHECK(rr_revocable_try_access(r) == &resource);
    CHECK_EQ(rr_revocable_release(r), RR_OK);
    bool revoked = false;
    CHECK_EQ(rr_revocable_revoke(r, &revoked), RR_OK);
    CHECK(revoked);
    CHECK(rr_revocable_try_access(r) == NULL); /* revoked: nothing to release */
    CHECK_EQ(rr_revocable_destroy(r), RR_OK);
    CHECK_EQ(rr_rcu_start_poll(d, &cookie), RR_OK);
    CHECK_EQ(rr_rcu_synchronize(d), RR_OK);
    CHECK_EQ(rr_rcu_poll(d, cookie, &done), RR_OK);
    CHECK(done);
    CHECK_EQ(rr_rcu_call(d, &head, rcu_cb), RR_OK);
    CHECK_EQ(rr_rcu_barrier(d), RR_OK);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
    CHECK_EQ(rr_io_destroy(io), RR_OK);
}

/* ---- Arc, weak, unique ---------------------------------------------------------------------- */

static void arc_calls(void *p, int32_t st)
{
    rr_weak_t w;
    int32_t s = 0, wk = 0;
    bool b = false;
    rr_unique_arc_t u;
    CHECK_EQ(rr_arc_clone(p), st);
    CHECK_EQ(rr_arc_downgrade(p, &w), st);
    CHECK_EQ(rr_arc_counts(p, &s, &wk), st);
    CHECK_EQ(rr_arc_is_unique(p, &b), st);
    CHECK_EQ(rr_arc_into_unique_or_drop(p, &u), st);
    CHECK_EQ(rr_arc_drop(p), st);
    CHECK_EQ(rr_arc_drop_slow(p), st);
}

static void arc_sweep(void)
{
    int64_t live0 = rr_heap_live_count();
    void *a = NULL, *b = NULL;
    CHECK_EQ(rr_arc_new(32, 8, NULL, NULL, &a), RR_OK);
    arc_calls(NULL, RR_EINVAL);
    arc_calls(made_up(), RR_EBADHANDLE);
    arc_calls((char *)a + 1, RR_EBADHANDLE);
    CHECK_EQ(rr_debug_set_poison(true, true), RR_OK);
    CHECK_EQ(rr_arc_new(32, 8, NULL, NULL, &b), RR_OK);
    CHECK_EQ(rr_arc_drop(b), RR_OK);
    arc_calls(b, RR_EBADHANDLE); /* freed */
    rr_debug_release_quarantine();
    CHECK_EQ(rr_debug_set_poison(false, false), RR_OK);

    /* Weak handles: a strong payload where a weak handle is expected, and the reverse. */
    rr_weak_t w, empty_w = RR_WEAK_INIT;
    CHECK_EQ(rr_arc_downgrade(a, &w), RR_OK);
    void *up = NULL;
    int32_t s = 0, wk = 0;
    /* The empty weak is valid: upgrade gives NULL, counts 0. */
    CHECK_EQ(rr_weak_clone(empty_w), RR_OK);
    CHECK_EQ(rr_weak_drop(empty_w), RR_OK);
    up = &s;
    CHECK_EQ(rr_weak_upgrade(empty_w, &up), RR_OK);
    CHECK(up == NULL);
    CHECK_EQ(rr_weak_counts(empty_w, &s, &wk), RR_OK);
    CHECK_EQ(s + wk, 0);
    CHECK_EQ(rr_weak_upgrade(w, NULL), RR_EINVAL);
    CHECK(!rr_weak_ptr_eq(w, empty_w));
    CHECK(rr_weak_ptr_eq(w, w));
    CHECK(!rr_arc_ptr_eq(a, NULL));
    CHECK(rr_arc_ptr_eq(a, a));

    /* Unique handles: */
    rr_unique_arc_t u, bad_u;
    memset(&bad_u, 0, sizeof bad_u);
    void *shared = NULL;
    CHECK_EQ(rr_unique_arc_share(bad_u, &shared), RR_EINVAL);
    CHECK_EQ(rr_unique_arc_drop(bad_u), RR_EINVAL);
    CHECK_EQ(rr_arc_new_unique(16, 8, NULL, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_debug_set_poison(true, true), RR_OK); /* the freed block stays mapped: see io_sweep */
    CHECK_EQ(rr_arc_new_unique(16, 8, NULL, NULL, &u), RR_OK);
    CHECK_EQ(rr_unique_arc_share(u, NULL), RR_EINVAL);
    CHECK_EQ(rr_unique_arc_drop(u), RR_OK);
    CHECK_EQ(rr_unique_arc_drop(u), RR_EBADHANDLE); /* double free of a unique handle */
    rr_debug_release_quarantine();
    CHECK_EQ(rr_debug_set_poison(false, false), RR_OK);

    /* Sizes and alignments: */
    void *x = NULL;
    CHECK_EQ(rr_arc_new(16, 3, NULL, NULL, &x), RR_EINVAL);
    CHECK_EQ(rr_arc_new(16, 0, NULL, NULL, &x), RR_EINVAL);
    CHECK_EQ(rr_arc_new(SIZE_MAX, 8, NULL, NULL, &x), RR_EINVAL);
    CHECK_EQ(rr_arc_new(16, 8, NULL, NULL, NULL), RR_EINVAL);
    CHECK(x == NULL);

    /* Still usable: */
    CHECK_EQ(rr_arc_clone(a), RR_OK);
    CHECK_EQ(rr_arc_counts(a, &s, &wk), RR_OK);
    CHECK_EQ(s, 2);
    CHECK_EQ(rr_weak_counts(w, &s, &wk), RR_OK);
    CHECK_EQ(rr_weak_clone(w), RR_OK);
    CHECK_EQ(rr_weak_drop(w), RR_OK);
    CHECK_EQ(rr_arc_drop(a), RR_OK);
    CHECK_EQ(rr_arc_drop(a), RR_OK);
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    CHECK(up == NULL); /* gone */
    CHECK_EQ(rr_weak_drop(w), RR_OK);
    CHECK_EQ(rr_heap_live_count(), live0);
}

/* ---- refcount, status, diagnostics ---------------------------------------------------------- */

static void refcount_sweep(void)
{
    alignas(4) char raw[8] = {0};
    rr_refcount_t *bads[] = {NULL, (rr_refcount_t *)(raw + 1)};
    for (size_t i = 0; i < 2; i++) {
        rr_refcount_t *r = bads[i];
        rr_take_last_error();
        rr_refcount_set(r, 1);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK_EQ(rr_refcount_read(r), 0);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        rr_refcount_add(1, r);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        rr_refcount_inc(r);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_add_not_zero(1, r));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_inc_not_zero(r));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_sub_and_test(1, r));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_dec_and_test(r));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        rr_refcount_dec(r);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_dec_if_one(r));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(rr_refcount_dec_not_one(r)); /* true: the caller takes no "last reference" path */
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        CHECK(!rr_refcount_dec_and_lock(r, &lock));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK_EQ(pthread_mutex_trylock(&lock), 0); /* not left locked */
        pthread_mutex_unlock(&lock);
        rr_refcount_warn_saturate(r, RR_REFCOUNT_SATURATED);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    }
    rr_refcount_t ok = RR_REFCOUNT_INIT(1);
    CHECK(!rr_refcount_dec_and_lock(&ok, NULL));
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    CHECK_EQ(rr_refcount_read(&ok), 1); /* unchanged */
    CHECK(rr_refcount_warn_count(-1) == UINT64_MAX);
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    CHECK(rr_refcount_warn_count(1000) == UINT64_MAX);
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    CHECK_EQ(rr_refcount_set_warn_handler(NULL, NULL), RR_OK);
    CHECK(strcmp(rr_status_str(RR_EBADHANDLE), "not a live object of the expected kind") == 0);
    CHECK(strcmp(rr_status_str(-5), "unknown status") == 0);
    CHECK(strcmp(rr_status_str(INT32_MAX), "unknown status") == 0);
    /* The library and the installed header carry the same version (one source: Directory.Build.props). */
    CHECK_EQ(rr_version(), ((uint32_t)RR_VERSION_MAJOR << 16) | ((uint32_t)RR_VERSION_MINOR << 8) | RR_VERSION_PATCH);
}

/* A handle deliberately leaked is named by the leak report; destroying it clears the report. */
static void leak_report(void)
{
    int64_t before = rr_debug_live_handles();
    rr_gate_t *g = NULL;
    rr_doorbell_t *b = NULL;
    CHECK_EQ(rr_gate_create(&g), RR_OK);
    CHECK_EQ(rr_doorbell_create(0, &b), RR_OK);
    CHECK_EQ(rr_debug_live_handles(), before + 2);
    fprintf(stderr, "  (a leak report is expected next)\n");
    CHECK_EQ(rr_debug_report_leaks(), before + 2);
    CHECK_EQ(rr_gate_destroy(g), RR_OK);
    CHECK_EQ(rr_doorbell_destroy(b), RR_OK);
    CHECK_EQ(rr_debug_live_handles(), before);
}

/*
 * Several threads hold copies of one handle: they use it, then all destroy it at once, then use
 * it again. Exactly one destroy wins each race, the others and every later call get
 * RR_EBADHANDLE (never a crash, a double free or another object). The contract: a handle is not
 * destroyed while another thread may still be inside a call with it (rr_gate_disconnect and
 * rr_revocable_revoke are the tools for tearing down under concurrent calls).
 */
#define RACE_ROUNDS 2000
#define RACE_THREADS 3

static rr_gate_t *volatile race_gate;
static rr_doorbell_t *volatile race_bell;
static int race_destroy_wins[RACE_THREADS];
static int race_bad[RACE_THREADS];
static pthread_barrier_t race_start, race_used, race_end;

static void race_expect(int id, int32_t got, int32_t want)
{
    if (got != want)
        race_bad[id]++;
}

static void *race_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        pthread_barrier_wait(&race_start);
        rr_gate_t *g = race_gate;
        rr_doorbell_t *b = race_bell;
        for (int i = 0; i < 10; i++) {
            race_expect(id, rr_gate_enter(g), RR_OK);
            race_expect(id, rr_gate_leave(g), RR_OK);
            race_expect(id, rr_doorbell_ring(b), RR_OK);
        }
        pthread_barrier_wait(&race_used);
        int32_t gs = rr_gate_destroy(g), bs = rr_doorbell_destroy(b);
        race_destroy_wins[id] += (gs == RR_OK) + (bs == RR_OK);
        if ((gs != RR_OK && gs != RR_EBADHANDLE) || (bs != RR_OK && bs != RR_EBADHANDLE))
            race_bad[id]++;
        pthread_barrier_wait(&race_end);
        race_expect(id, rr_gate_enter(g), RR_EBADHANDLE);
        race_expect(id, rr_doorbell_ring(b), RR_EBADHANDLE);
    }
    return NULL;
}

static void destroy_races(void)
{
    pthread_t t[RACE_THREADS];
    pthread_barrier_init(&race_start, NULL, RACE_THREADS + 1);
    pthread_barrier_init(&race_used, NULL, RACE_THREADS + 1);
    pthread_barrier_init(&race_end, NULL, RACE_THREADS + 1);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_create(&t[i], NULL, race_thread, (void *)(intptr_t)i);
    for (int round = 0; round < RACE_ROUNDS; round++) {
        rr_gate_t *g = NULL;
        rr_doorbell_t *b = NULL;
        CHECK_EQ(rr_gate_create(&g), RR_OK);
        CHECK_EQ(rr_doorbell_create(0, &b), RR_OK);
        race_gate = g;
        race_bell = b;
        pthread_barrier_wait(&race_start);
        pthread_barrier_wait(&race_used);
        pthread_barrier_wait(&race_end);
    }
    int wins = 0, bad = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(t[i], NULL);
        wins += race_destroy_wins[i];
        bad += race_bad[i];
    }
    CHECK_EQ(wins, 2 * RACE_ROUNDS); /* exactly one destroy of each gate and each doorbell */
    CHECK_EQ(bad, 0);
    pthread_barrier_destroy(&race_start);
    pthread_barrier_destroy(&race_used);
    pthread_barrier_destroy(&race_end);
}

static void nothing_left(void)
{
    CHECK_EQ(rr_debug_live_handles(), 0);
    CHECK_EQ(rr_debug_report_leaks(), 0);
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"gate_handles", gate_handles},
        {"devres_handles", devres_handles},
        {"gpio_handles", gpio_handles},
        {"virtio_handles", virtio_handles},
        {"virtio_ranges", virtio_ranges},
        {"backend_handles", backend_handles},
        {"backend_ranges", backend_ranges},
        {"io_sweep", io_sweep},
        {"rcu_sweep", rcu_sweep},
        {"arc_sweep", arc_sweep},
        {"refcount_sweep", refcount_sweep},
        {"leak_report", leak_report},
        {"destroy_races", destroy_races},
        {"nothing_left", nothing_left},
    };
    return rr_test_main("abi_sweep_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
