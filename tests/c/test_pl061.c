/*
 * The PL061 model and driver from C (rr_pl061_*, rr_gpio_*), built twice like every C test:
 * lines, directions, interrupts through a handler, a driver probed on a C device window whose
 * interrupt the host feeds in, removal. Spec: docs/pl061.md.
 */
#define _GNU_SOURCE
#include <refruntime.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

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

/* ---- interrupt handler lifetimes (the kernel's free_irq / synchronize_irq) ------------------ */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (bounded by a generous hang guard, never a performance limit) for *flag to be set. */
static int wait_flag(atomic_int *flag)
{
    for (int i = 0; i < 30000 && !atomic_load(flag); i++)
        sleep_ms(1);
    return atomic_load(flag);
}

struct sleeper {
    rr_pl061_model_t *m;
    rr_gpio_chip_t *chip;
    int32_t line;
    atomic_int entered, exited, calls, after_return;
    atomic_int returned; /* the remove / clear under test has returned */
};

static void sleepy_handler(void *ctx, int32_t line)
{
    struct sleeper *s = ctx;
    (void)line;
    atomic_fetch_add(&s->calls, 1);
    if (atomic_load(&s->returned))
        atomic_fetch_add(&s->after_return, 1);
    atomic_store(&s->entered, 1);
    sleep_ms(50);
    atomic_store(&s->exited, 1);
}

static void *raise_rising_edge(void *arg)
{
    struct sleeper *s = arg;
    CHECK_EQ(rr_pl061_model_set_input(s->m, s->line, true), RR_OK);
    return NULL;
}

static void sleeper_setup(struct sleeper *s, int32_t line)
{
    memset(s, 0, sizeof *s);
    s->line = line;
    CHECK_EQ(rr_pl061_model_create(&s->m), RR_OK);
    CHECK_EQ(rr_pl061_probe_model(s->m, &s->chip), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_type(s->chip, line, RR_GPIO_IRQ_EDGE_RISING), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_handler(s->chip, line, sleepy_handler, s), RR_OK);
}

/* A handler sleeps while the main thread removes the chip: remove returns only after the handler
 * has returned, and no handler runs afterwards. */
static void remove_waits_for_running_handler(void)
{
    struct sleeper s;
    sleeper_setup(&s, 2);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, raise_rising_edge, &s), 0);
    CHECK(wait_flag(&s.entered));
    CHECK_EQ(rr_gpio_remove(s.chip), RR_OK);
    atomic_store(&s.returned, 1);
    CHECK_EQ(atomic_load(&s.exited), 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(rr_pl061_model_set_input(s.m, 2, false), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(s.m, 2, true), RR_OK); /* reaches nobody */
    CHECK_EQ(atomic_load(&s.calls), 1);
    CHECK_EQ(atomic_load(&s.after_return), 0);
    CHECK_EQ(rr_gpio_destroy(s.chip), RR_OK);
    CHECK_EQ(rr_pl061_model_destroy(s.m), RR_OK);
}

/* rr_gpio_set_irq_handler(NULL) waits for a running handler the same way: when it returns, the
 * handler's context may be freed. */
static void clear_handler_waits_for_running_handler(void)
{
    struct sleeper s;
    sleeper_setup(&s, 3);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, raise_rising_edge, &s), 0);
    CHECK(wait_flag(&s.entered));
    CHECK_EQ(rr_gpio_set_irq_handler(s.chip, 3, NULL, NULL), RR_OK);
    atomic_store(&s.returned, 1);
    CHECK_EQ(atomic_load(&s.exited), 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(rr_pl061_model_set_input(s.m, 3, false), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(s.m, 3, true), RR_OK);
    CHECK_EQ(atomic_load(&s.calls), 1);
    CHECK_EQ(atomic_load(&s.after_return), 0);
    CHECK_EQ(rr_gpio_destroy(s.chip), RR_OK);
    CHECK_EQ(rr_pl061_model_destroy(s.m), RR_OK);
}

struct selfish {
    rr_gpio_chip_t *chip;
    int calls;
    int32_t remove_st, clear_st, destroy_st;
};

static void selfish_handler(void *ctx, int32_t line)
{
    struct selfish *s = ctx;
    s->calls++;
    s->remove_st = rr_gpio_remove(s->chip);
    s->clear_st = rr_gpio_set_irq_handler(s->chip, line, NULL, NULL);
    s->destroy_st = rr_gpio_destroy(s->chip);
}

/* From inside a handler, remove, clearing the handler and destroying the chip would wait for
 * themselves: RR_EDEADLK, nothing changed (the chip works, the handler stays). */
static void remove_from_handler_edeadlk(void)
{
    rr_pl061_model_t *m = NULL;
    struct selfish s = {0};
    CHECK_EQ(rr_pl061_model_create(&m), RR_OK);
    CHECK_EQ(rr_pl061_probe_model(m, &s.chip), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_type(s.chip, 1, RR_GPIO_IRQ_EDGE_RISING), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_handler(s.chip, 1, selfish_handler, &s), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 1, true), RR_OK);
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.remove_st, RR_EDEADLK);
    CHECK_EQ(s.clear_st, RR_EDEADLK);
    CHECK_EQ(s.destroy_st, RR_EDEADLK);
    CHECK_EQ(rr_gpio_direction_output(s.chip, 0, true), RR_OK); /* still there */
    CHECK_EQ(rr_pl061_model_set_input(m, 1, false), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 1, true), RR_OK);
    CHECK_EQ(s.calls, 2); /* still installed */
    CHECK_EQ(rr_gpio_remove(s.chip), RR_OK);
    CHECK_EQ(rr_gpio_destroy(s.chip), RR_OK);
    CHECK_EQ(rr_pl061_model_destroy(m), RR_OK);
}

/* ---- interrupt corner cases ------------------------------------------------------------------ */

static void count_handler(void *ctx, int32_t line)
{
    (void)line;
    (*(int *)ctx)++;
}

/* Trigger NONE: the PL061 still latches falling edges (IS=IBE=IEV=0), but the kernel routes the
 * line to handle_bad_irq: the handler is not called, the interrupt counts as spurious. */
static void trigger_none_is_spurious(void)
{
    rr_pl061_model_t *m = NULL;
    rr_gpio_chip_t *chip = NULL;
    int calls = 0;
    CHECK_EQ(rr_pl061_model_create(&m), RR_OK);
    CHECK_EQ(rr_pl061_probe_model(m, &chip), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 4, true), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_handler(chip, 4, count_handler, &calls), RR_OK); /* no trigger: NONE */
    CHECK_EQ(rr_pl061_model_set_input(m, 4, false), RR_OK);
    CHECK_EQ(calls, 0);
    rr_gpio_irq_stats_t st;
    CHECK_EQ(rr_gpio_irq_stats(chip, 4, &st), RR_OK);
    CHECK_EQ(st.spurious, 1);
    CHECK_EQ(st.handled, 0);
    CHECK_EQ(st.disabled, 0);
    CHECK_EQ(rr_gpio_set_irq_type(chip, 4, RR_GPIO_IRQ_EDGE_FALLING), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 4, true), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 4, false), RR_OK);
    CHECK_EQ(calls, 1);
    CHECK_EQ(rr_gpio_irq_stats(chip, 4, &st), RR_OK);
    CHECK_EQ(st.spurious, 1);
    CHECK_EQ(st.handled, 1);
    CHECK_EQ(rr_gpio_destroy(chip), RR_OK);
    CHECK_EQ(rr_pl061_model_destroy(m), RR_OK);
}

/* Counts the lines of @f (rewound) that contain @needle. */
static int count_lines_with(FILE *f, const char *needle)
{
    char line[512];
    int n = 0;
    rewind(f);
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    return n;
}

struct clearing {
    rr_pl061_model_t *m;
    int calls;
};

static void clearing_handler(void *ctx, int32_t line)
{
    struct clearing *c = ctx;
    c->calls++;
    CHECK_EQ(rr_pl061_model_set_input(c->m, line, false), RR_OK); /* quietens the level source */
}

/* A level line whose handler never clears the condition: disabled (left masked), counted and
 * reported once on stderr, as the kernel's "nobody cared"; re-armed by setting a handler again. */
static void stuck_level_disabled_once(void)
{
    rr_pl061_model_t *m = NULL;
    rr_gpio_chip_t *chip = NULL;
    int calls = 0;
    CHECK_EQ(rr_pl061_model_create(&m), RR_OK);
    CHECK_EQ(rr_pl061_probe_model(m, &chip), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_type(chip, 3, RR_GPIO_IRQ_LEVEL_HIGH), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_handler(chip, 3, count_handler, &calls), RR_OK);
    /* Capture stderr, where the library reports. Once for the whole case: the .NET runtime
     * duplicates fd 2 when it first writes there and keeps writing to that duplicate. */
    FILE *capture = tmpfile();
    CHECK(capture != NULL);
    fflush(stderr);
    int saved = dup(2);
    CHECK(dup2(fileno(capture), 2) >= 0);
    CHECK_EQ(rr_pl061_model_set_input(m, 3, true), RR_OK); /* never cleared by the handler */
    int burst = calls;
    CHECK_EQ(rr_pl061_model_set_input(m, 3, false), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 3, true), RR_OK);
    CHECK(burst > 0);
    CHECK_EQ(calls, burst); /* disabled: the second assertion reaches nobody */
    CHECK_EQ(count_lines_with(capture, "nobody cared"), 1);
    rr_gpio_irq_stats_t st;
    CHECK_EQ(rr_gpio_irq_stats(chip, 3, &st), RR_OK);
    CHECK_EQ(st.handled, (uint64_t)burst);
    CHECK_EQ(st.stuck_disables, 1);
    CHECK_EQ(st.disabled, 1);
    /* Re-armed by setting the handler again (this one quietens the source): delivered once. */
    struct clearing c = {m, 0};
    CHECK_EQ(rr_gpio_set_irq_handler(chip, 3, clearing_handler, &c), RR_OK);
    CHECK_EQ(c.calls, 1);
    CHECK_EQ(rr_pl061_model_set_input(m, 3, true), RR_OK);
    CHECK_EQ(c.calls, 2);
    CHECK_EQ(rr_gpio_irq_stats(chip, 3, &st), RR_OK);
    CHECK_EQ(st.stuck_disables, 1);
    CHECK_EQ(st.disabled, 0);
    /* Re-arming by the trigger works too: stuck again (same handler, level left asserted), then
     * rr_gpio_set_irq_type() re-enables it. */
    CHECK_EQ(rr_gpio_set_irq_handler(chip, 3, count_handler, &calls), RR_OK);
    CHECK_EQ(rr_pl061_model_set_input(m, 3, true), RR_OK);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK_EQ(count_lines_with(capture, "nobody cared"), 2); /* one report per disable */
    fclose(capture);
    CHECK_EQ(rr_gpio_irq_stats(chip, 3, &st), RR_OK);
    CHECK_EQ(st.stuck_disables, 2);
    CHECK_EQ(st.disabled, 1);
    CHECK_EQ(rr_pl061_model_set_input(m, 3, false), RR_OK);
    CHECK_EQ(rr_gpio_set_irq_type(chip, 3, RR_GPIO_IRQ_LEVEL_HIGH), RR_OK);
    CHECK_EQ(rr_gpio_irq_stats(chip, 3, &st), RR_OK);
    CHECK_EQ(st.disabled, 0);
    CHECK_EQ(rr_gpio_remove(chip), RR_OK);
    CHECK_EQ(rr_gpio_irq_stats(chip, 3, &st), RR_OK); /* still readable after removal */
    CHECK_EQ(st.stuck_disables, 2);
    CHECK_EQ(rr_gpio_destroy(chip), RR_OK);
    CHECK_EQ(rr_pl061_model_destroy(m), RR_OK);
}

/* ---- stress: removal racing interrupts raised from several threads ---------------------------- */

#define RACERS 4

struct race {
    rr_pl061_model_t *m;
    atomic_int stop, removed, in_handler, max_in_handler, after_remove, calls;
};

struct racer {
    struct race *r;
    int32_t line;
};

static void racing_handler(void *ctx, int32_t line)
{
    struct race *r = ctx;
    int now = atomic_fetch_add(&r->in_handler, 1) + 1;
    int max = atomic_load(&r->max_in_handler);
    while (now > max && !atomic_compare_exchange_weak(&r->max_in_handler, &max, now)) {
    }
    if (atomic_load(&r->removed))
        atomic_fetch_add(&r->after_remove, 1);
    if ((atomic_fetch_add(&r->calls, 1) & 15) == 0 || line == 0)
        sleep_ms(1); /* some handlers sleep */
    atomic_fetch_sub(&r->in_handler, 1);
}

static void *toggle_line(void *arg)
{
    struct racer *t = arg;
    bool level = false;
    while (!atomic_load(&t->r->stop)) {
        level = !level;
        CHECK_EQ(rr_pl061_model_set_input(t->r->m, t->line, level), RR_OK);
        if (!level)
            sched_yield();
    }
    return NULL;
}

static void stress_remove_races_interrupts(void)
{
    for (int round = 0; round < 8; round++) {
        struct race r;
        memset(&r, 0, sizeof r);
        rr_gpio_chip_t *chip = NULL;
        CHECK_EQ(rr_pl061_model_create(&r.m), RR_OK);
        CHECK_EQ(rr_pl061_probe_model(r.m, &chip), RR_OK);
        pthread_t threads[RACERS];
        struct racer racers[RACERS];
        for (int i = 0; i < RACERS; i++) {
            CHECK_EQ(rr_gpio_set_irq_type(chip, i, RR_GPIO_IRQ_EDGE_BOTH), RR_OK);
            CHECK_EQ(rr_gpio_set_irq_handler(chip, i, racing_handler, &r), RR_OK);
            racers[i] = (struct racer){&r, i};
            CHECK_EQ(pthread_create(&threads[i], NULL, toggle_line, &racers[i]), 0);
        }
        sleep_ms(2 + round % 3);
        CHECK_EQ(rr_gpio_remove(chip), RR_OK);
        CHECK_EQ(atomic_load(&r.in_handler), 0); /* none running when remove returned */
        atomic_store(&r.removed, 1);
        sleep_ms(2);
        atomic_store(&r.stop, 1);
        for (int i = 0; i < RACERS; i++)
            CHECK_EQ(pthread_join(threads[i], NULL), 0);
        CHECK_EQ(atomic_load(&r.after_remove), 0);  /* and none started after */
        CHECK(atomic_load(&r.max_in_handler) <= 1); /* a chip's handlers never overlap */
        CHECK_EQ(rr_gpio_destroy(chip), RR_OK);
        CHECK_EQ(rr_pl061_model_destroy(r.m), RR_OK);
    }
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"model_backed_chip", model_backed_chip},
        {"chip_on_a_c_window", chip_on_a_c_window},
        {"remove_waits_for_running_handler", remove_waits_for_running_handler},
        {"clear_handler_waits_for_running_handler", clear_handler_waits_for_running_handler},
        {"remove_from_handler_edeadlk", remove_from_handler_edeadlk},
        {"trigger_none_is_spurious", trigger_none_is_spurious},
        {"stuck_level_disabled_once", stuck_level_disabled_once},
        {"stress_remove_races_interrupts", stress_remove_races_interrupts},
    };
    return rr_test_main("pl061_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
