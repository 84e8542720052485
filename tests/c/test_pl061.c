/*
 * The PL061 model and driver from C (rr_pl061_*, rr_gpio_*), built twice like every C test:
 * lines, directions, interrupts through a handler, a driver probed on a C device window whose
 * interrupt the host feeds in, removal. Spec: docs/pl061.md.
 */
#define _GNU_SOURCE
#include <refruntime.h>

#include "rr_test.h"


static int irq_calls, irq_line = -1;

static void on_irq(void *ctx, int32_t line)
{
    CHECK(ctx == &irq_calls);
    irq_calls++;
    irq_line = line;
}

static void model_backed_chip(void)
{
    rr_pl061_model_t *m = NULL;
    rr_gpio_chip_t *chip = NULL;
    CHECK_EQ(rr_pl061_model_create(&m), RR_OK);
    CHECK_EQ(rr_pl061_probe_model(m, &chip), RR_OK);
    CHECK_EQ(rr_gpio_direction_output(chip, 1, true), RR_OK);
    uint8_t out = 0;
    CHECK_EQ(rr_pl061_model_outputs(m, &out), RR_OK);
    CHECK_EQ(out, 0x02);
    int32_t dir = -1;
    CHECK_EQ(rr_gpio_get_direction(chip, 1, &dir), RR_OK);
    CHECK_EQ(dir, RR_GPIO_DIRECTION_OUT);
    CHECK_EQ(rr_gpio_set(chip, 1, false), RR_OK);
    CHECK_EQ(rr_pl061_model_outputs(m, &out), RR_OK);
    CHECK_EQ(out, 0);
    CHECK_EQ(rr_pl061_model_set_input(m, 5, true), RR_OK);
    bool v = false;
    CHECK_EQ(rr_gpio_get(chip, 5, &v), RR_OK);
    CHECK(v);
    /* An edge interrupt through the parent line and the handler. */
    CHECK_EQ(rr_pl061_model_set_input(m, 6, false), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_type(chip, 6, RR_GPIO_IRQ_EDGE_RISING), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_handler(chip, 6, on_irq, &irq_calls), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 6, true), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 6, false), RR_OK);
    CHECK_EQ(irq_calls, 1);
    CHECK_EQ(irq_line, 6);
    /* Bad arguments. */
    CHECK_EQ(rr_gpio_set(chip, 8, true), RR_EINVAL);
    CHECK_EQ(rr_gpio_set_irq_type(chip, 6, RR_GPIO_IRQ_LEVEL_HIGH | RR_GPIO_IRQ_EDGE_RISING), RR_EINVAL);
    CHECK_EQ(rr_gpio_get(chip, 0, NULL), RR_EINVAL);
    CHECK_EQ(rr_pl061_model_set_input(m, 9, true), RR_EINVAL);
    /* Hot-unplug: every later call is "no device"; the handle stays valid until destroyed. */
    CHECK_EQ(rr_gpio_suspend(chip), RR_OK);
    CHECK_EQ(rr_gpio_remove(chip), RR_OK);
    CHECK_EQ(rr_gpio_set(chip, 1, true), RR_ENODEV);
    CHECK_EQ(rr_gpio_get(chip, 5, &v), RR_ENODEV);
    CHECK_EQ(rr_gpio_resume(chip), RR_ENODEV);
    CHECK_EQ(rr_pl061_model_set_input(m, 6, true), RR_OK); /* a late interrupt reaches nobody */
    CHECK_EQ(irq_calls, 1);
    CHECK_EQ(rr_gpio_remove(chip), RR_OK);
    /* A second user keeps the (removed) chip valid until it lets go too. */
    CHECK_EQ(rr_gpio_chip_get(chip), RR_OK);
    CHECK_EQ(rr_gpio_destroy(chip), RR_OK);
    CHECK_EQ(rr_gpio_set(chip, 1, true), RR_ENODEV); /* still a valid handle: "no device" */
    rr_debug_set_poison(true, true);
    CHECK_EQ(rr_gpio_destroy(chip), RR_OK);           /* the last user: freed */
    CHECK_EQ(rr_gpio_set(chip, 1, true), RR_EBADHANDLE);
    rr_debug_release_quarantine();
    rr_debug_set_poison(false, false);
    CHECK_EQ(rr_pl061_model_destroy(m), RR_OK);
}

/* A C device model of a PL061: just enough to probe and drive one output (ID bytes, DIR, DATA). */
static const uint8_t ids[12] = {0, 0, 0, 0, 0x61, 0x10, 0x04, 0x00, 0x0D, 0xF0, 0x05, 0xB1};
struct c_pl061 {
    uint8_t data, dir, ie;
};

static uint64_t c_read(void *ctx, uint64_t off, int32_t width)
{
    struct c_pl061 *d = ctx;
    (void)width;
    if (off <= 0x3FC)
        return d->data & (uint8_t)(off >> 2);
    if (off == 0x400)
        return d->dir;
    if (off == 0x410)
        return d->ie;
    if (off >= 0xFD0 && off <= 0xFFC)
        return ids[(off - 0xFD0) >> 2];
    return 0;
}

static void c_write(void *ctx, uint64_t off, int32_t width, uint64_t value)
{
    struct c_pl061 *d = ctx;
    (void)width;
    if (off <= 0x3FC) {
        uint8_t mask = (uint8_t)((off >> 2) & d->dir);
        d->data = (uint8_t)((d->data & ~mask) | (value & mask));
    } else if (off == 0x400) {
        d->dir = (uint8_t)value;
    } else if (off == 0x410) {
        d->ie = (uint8_t)value;
    }
}

static void chip_on_a_c_window(void)
{
    struct c_pl061 dev = {0, 0, 0xFF};
    rr_io_t *io = NULL;
    rr_gpio_chip_t *chip = NULL;
    CHECK_EQ(rr_io_create_device(0x1000, c_read, c_write, &dev, &io), RR_OK);
    CHECK_EQ(rr_pl061_probe_io(io, &chip), RR_OK);
    CHECK_EQ(dev.ie, 0); /* probe masks every interrupt */
    CHECK_EQ(rr_gpio_direction_output(chip, 7, true), RR_OK);
    CHECK_EQ(dev.data, 0x80);
    CHECK_EQ(rr_gpio_interrupt(chip, true), RR_OK); /* the host's interrupt line; nothing pending */
    CHECK_EQ(rr_gpio_destroy(chip), RR_OK);
    CHECK_EQ(rr_io_destroy(io), RR_OK);
    /* Not a PL061: refused. */
    rr_io_t *plain = NULL;
    CHECK_EQ(rr_io_alloc(0x1000, &plain), RR_OK);
    CHECK_EQ(rr_pl061_probe_io(plain, &chip), RR_ENODEV);
    CHECK(chip == NULL);
    CHECK_EQ(rr_io_destroy(plain), RR_OK);
    CHECK_EQ(rr_io_alloc(0x800, &plain), RR_OK);
    CHECK_EQ(rr_pl061_probe_io(plain, &chip), RR_EINVAL); /* too small */
    CHECK_EQ(rr_io_destroy(plain), RR_OK);
    CHECK_EQ(rr_pl061_probe_io(NULL, &chip), RR_EINVAL);
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"model_backed_chip", model_backed_chip},
        {"chip_on_a_c_window", chip_on_a_c_window},
    };
    return rr_test_main("pl061_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
