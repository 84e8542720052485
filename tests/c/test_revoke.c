/*
 * rr_revocable_* / rr_gate_* / rr_devres_* through the real librefruntime.so, built twice
 * (exported calls and RR_INLINE, whose revocable access and gate enter/leave run inline). Spec:
 * docs/revocation.md, plus hot-unplug from C threads: consumers call through a gate and a
 * revocable while the device is removed, and callers holding stale gate handles while gates are
 * destroyed and their domains reused.
 */
#define _GNU_SOURCE
#include <refruntime.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "rr_test.h"


#define LIVE 0xC0FFEE00C0FFEE00ull
#define POISON 0xDBDBDBDBDBDBDBDBull

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct hw {
    _Atomic uint64_t reg;
    _Atomic int destroyed;
};

static void hw_destroy(void *resource, void *ctx)
{
    struct hw *h = resource;
    CHECK(ctx == (void *)h);
    atomic_fetch_add(&h->destroyed, 1);
    atomic_store(&h->reg, POISON); /* poisoned, kept mapped: a late read sees it */
}

static void revocable_access_revoke_destroy(void)
{
    struct hw h = {LIVE, 0};
    rr_revocable_t *r = NULL;
    CHECK_EQ(rr_revocable_create(NULL, &h, hw_destroy, &h, &r), RR_OK);
    struct hw *p = rr_revocable_try_access(r);
    CHECK(p == &h);
    CHECK_EQ(rr_revocable_release(r), RR_OK);
    CHECK_EQ(rr_revocable_release(r), RR_EINVAL); /* no access in progress */
    p = rr_revocable_try_access(r);
    bool revoked = true;
    CHECK_EQ(rr_revocable_revoke(r, &revoked), RR_EDEADLK); /* during an access: refused */
    CHECK(!revoked);
    CHECK_EQ(rr_revocable_release(r), RR_OK);
    CHECK_EQ(rr_revocable_revoke(r, &revoked), RR_OK);
    CHECK(revoked);
    CHECK_EQ(atomic_load(&h.destroyed), 1);
    CHECK(rr_revocable_try_access(r) == NULL);
    CHECK_EQ(rr_revocable_revoke(r, &revoked), RR_OK);
    CHECK(!revoked); /* once */
    CHECK_EQ(rr_revocable_destroy(r), RR_OK);
    CHECK_EQ(atomic_load(&h.destroyed), 1);
    CHECK_EQ(rr_revocable_create(NULL, NULL, NULL, NULL, &r), RR_EINVAL);
}

struct access_holder {
    rr_revocable_t *r;
    _Atomic int inside, release;
    uint64_t seen;
};

static void *hold_access(void *arg)
{
    struct access_holder *a = arg;
    struct hw *p = rr_revocable_try_access(a->r);
    atomic_store(&a->inside, 1);
    while (!atomic_load(&a->release))
        sleep_ms(1);
    a->seen = p ? atomic_load(&p->reg) : 0;
    rr_revocable_release(a->r);
    return NULL;
}

struct bg_revoke {
    rr_revocable_t *r;
    _Atomic int done;
};

static void *do_revoke(void *arg)
{
    struct bg_revoke *b = arg;
    rr_revocable_revoke(b->r, NULL);
    atomic_store(&b->done, 1);
    return NULL;
}

static void revoke_waits_for_access_in_flight(void)
{
    struct hw h = {LIVE, 0};
    rr_revocable_t *r = NULL;
    CHECK_EQ(rr_revocable_create(NULL, &h, hw_destroy, &h, &r), RR_OK);
    struct access_holder a = {r, 0, 0, 0};
    pthread_t t, u;
    pthread_create(&t, NULL, hold_access, &a);
    while (!atomic_load(&a.inside))
        sleep_ms(1);
    struct bg_revoke b = {r, 0};
    pthread_create(&u, NULL, do_revoke, &b);
    sleep_ms(150);
    CHECK_EQ(atomic_load(&b.done), 0);       /* waiting for the access */
    CHECK_EQ(atomic_load(&h.destroyed), 0);
    CHECK(rr_revocable_try_access(r) == NULL); /* but new accesses fail already */
    atomic_store(&a.release, 1);
    pthread_join(t, NULL);
    pthread_join(u, NULL);
    CHECK_EQ(a.seen, LIVE); /* the access in flight saw live hardware */
    CHECK_EQ(atomic_load(&h.destroyed), 1);
    CHECK_EQ(rr_revocable_destroy(r), RR_OK);
}

static void gate_enter_leave_disconnect(void)
{
    rr_gate_t *g = NULL;
    CHECK_EQ(rr_gate_create(&g), RR_OK);
    CHECK_EQ(rr_gate_leave(g), RR_EINVAL); /* not inside */
    CHECK_EQ(rr_gate_enter(g), RR_OK);
    CHECK_EQ(rr_gate_enter(g), RR_OK); /* nested */
    CHECK_EQ(rr_gate_disconnect(g), RR_EDEADLK); /* cannot drain itself */
    CHECK_EQ(rr_gate_enter(g), RR_ENODEV);       /* but new calls are refused */
    CHECK_EQ(rr_gate_destroy(g), RR_EBUSY);
    CHECK_EQ(rr_gate_leave(g), RR_OK);
    CHECK_EQ(rr_gate_leave(g), RR_OK);
    CHECK_EQ(rr_gate_disconnect(g), RR_OK);
    CHECK_EQ(rr_gate_enter(g), RR_ENODEV);
    CHECK_EQ(rr_gate_destroy(g), RR_OK);
    CHECK_EQ(rr_gate_create(NULL), RR_EINVAL);
    CHECK_EQ(rr_gate_enter(NULL), RR_EINVAL);
}

/* ---- devres ----------------------------------------------------------------------------- */

static int order[32];
static int order_n;

static void record(void *data)
{
    order[order_n++] = (int)(intptr_t)data;
}

static void devres_lifo_groups_and_matching(void)
{
    rr_devres_t *d = NULL;
    CHECK_EQ(rr_devres_create(&d), RR_OK);
    order_n = 0;
    CHECK_EQ(rr_devres_add_action(d, record, (void *)1), RR_OK);
    uint64_t g = 0;
    CHECK_EQ(rr_devres_open_group(d, &g), RR_OK);
    CHECK(g != 0);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)2), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)3), RR_OK);
    uint64_t nested = 0;
    CHECK_EQ(rr_devres_open_group(d, &nested), RR_OK);
    CHECK_EQ(rr_devres_add_action_or_reset(d, record, (void *)4), RR_OK);
    CHECK_EQ(rr_devres_close_group(d, 0), RR_OK); /* the newest open group: nested */
    uint32_t released = 0;
    CHECK_EQ(rr_devres_release_group(d, g, &released), RR_OK); /* roll back 2, 3, 4 */
    CHECK_EQ(released, 3);
    CHECK_EQ(order_n, 3);
    CHECK_EQ(order[0], 4);
    CHECK_EQ(order[1], 3);
    CHECK_EQ(order[2], 2);
    CHECK_EQ(rr_devres_release_group(d, g, &released), RR_ENOENT);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)5), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)6), RR_OK);
    CHECK_EQ(rr_devres_remove_action(d, record, (void *)5), RR_OK); /* not run */
    CHECK_EQ(rr_devres_remove_action(d, record, (void *)5), RR_ENOENT);
    CHECK_EQ(rr_devres_release_action(d, record, (void *)6), RR_OK); /* run now */
    CHECK_EQ(order[3], 6);
    CHECK_EQ(rr_devres_add_action(d, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_devres_destroy(d, &released), RR_OK); /* the rest: 1 */
    CHECK_EQ(released, 1);
    CHECK_EQ(order[4], 1);
    CHECK_EQ(order_n, 5);
}

/* Issue 16.3: overlapping (not nested) groups, as the kernel's devres_release_group(): a group
 * only overlapping the released range keeps both markers. Case 1: G2 opened inside G1 and
 * closed after G1's close. */
static void devres_group_opened_inside_closed_after_survives(void)
{
    rr_devres_t *d = NULL;
    CHECK_EQ(rr_devres_create(&d), RR_OK);
    order_n = 0;
    uint64_t g1 = 0, g2 = 0;
    CHECK_EQ(rr_devres_open_group(d, &g1), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)1), RR_OK);
    CHECK_EQ(rr_devres_open_group(d, &g2), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)2), RR_OK);
    CHECK_EQ(rr_devres_close_group(d, g1), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)3), RR_OK);
    CHECK_EQ(rr_devres_close_group(d, g2), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)4), RR_OK);
    uint32_t released = 0;
    CHECK_EQ(rr_devres_release_group(d, g1, &released), RR_OK); /* 2, 1 */
    CHECK_EQ(released, 2);
    CHECK_EQ(order_n, 2);
    CHECK_EQ(order[0], 2);
    CHECK_EQ(order[1], 1);
    CHECK_EQ(rr_devres_release_group(d, g2, &released), RR_OK); /* G2 still a group: 3 only */
    CHECK_EQ(released, 1);
    CHECK_EQ(order_n, 3);
    CHECK_EQ(order[2], 3);
    CHECK_EQ(rr_devres_destroy(d, &released), RR_OK); /* 4 stays with the device */
    CHECK_EQ(released, 1);
    CHECK_EQ(order[3], 4);
}

/* Case 2: G2 opened before G1 and closed inside it. Releasing G1 must not make G2 open-ended:
 * a later release of G2 never reaches an action added after G2 was closed. */
static void devres_group_closed_inside_never_grows(void)
{
    rr_devres_t *d = NULL;
    CHECK_EQ(rr_devres_create(&d), RR_OK);
    order_n = 0;
    uint64_t g1 = 0, g2 = 0;
    CHECK_EQ(rr_devres_open_group(d, &g2), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)1), RR_OK);
    CHECK_EQ(rr_devres_open_group(d, &g1), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)2), RR_OK);
    CHECK_EQ(rr_devres_close_group(d, g2), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)3), RR_OK);
    CHECK_EQ(rr_devres_close_group(d, g1), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)4), RR_OK); /* after both closed */
    uint32_t released = 0;
    CHECK_EQ(rr_devres_release_group(d, g1, &released), RR_OK); /* 3, 2 */
    CHECK_EQ(released, 2);
    CHECK_EQ(order[0], 3);
    CHECK_EQ(order[1], 2);
    CHECK_EQ(rr_devres_release_group(d, g2, &released), RR_OK); /* 1 only: never 4 */
    CHECK_EQ(released, 1);
    CHECK_EQ(order_n, 3);
    CHECK_EQ(order[2], 1);
    CHECK_EQ(rr_devres_destroy(d, &released), RR_OK);
    CHECK_EQ(released, 1);
    CHECK_EQ(order[3], 4);
}

/* Id 0 names the newest open group in release and remove, as in close (the kernel's NULL id). */
static void devres_group_id_zero_is_newest_open(void)
{
    rr_devres_t *d = NULL;
    CHECK_EQ(rr_devres_create(&d), RR_OK);
    order_n = 0;
    uint64_t g1 = 0, g2 = 0;
    uint32_t released = 0;
    CHECK_EQ(rr_devres_release_group(d, 0, &released), RR_ENOENT); /* no open group */
    CHECK_EQ(rr_devres_remove_group(d, 0), RR_ENOENT);
    CHECK_EQ(rr_devres_open_group(d, &g1), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)1), RR_OK);
    CHECK_EQ(rr_devres_open_group(d, &g2), RR_OK);
    CHECK_EQ(rr_devres_add_action(d, record, (void *)2), RR_OK);
    CHECK_EQ(rr_devres_release_group(d, 0, &released), RR_OK); /* g2 */
    CHECK_EQ(released, 1);
    CHECK_EQ(order[0], 2);
    CHECK_EQ(rr_devres_remove_group(d, 0), RR_OK); /* g1: its markers go, action 1 stays */
    CHECK_EQ(rr_devres_release_group(d, g1, &released), RR_ENOENT);
    CHECK_EQ(order_n, 1);
    CHECK_EQ(rr_devres_destroy(d, &released), RR_OK);
    CHECK_EQ(released, 1);
    CHECK_EQ(order[1], 1);
}

static void bad_handles_are_refused(void)
{
    static _Alignas(64) unsigned char junk[128];
    CHECK_EQ(rr_gate_enter((rr_gate_t *)(void *)junk), RR_EBADHANDLE);
    CHECK_EQ(rr_devres_add_action((rr_devres_t *)(void *)junk, record, NULL), RR_EBADHANDLE);
    CHECK(rr_revocable_try_access((rr_revocable_t *)(void *)junk) == NULL);
    CHECK_EQ(rr_take_last_error(), RR_EBADHANDLE);
    CHECK(rr_revocable_try_access(NULL) == NULL);
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    /* add_action_or_reset on a bad list still runs the action: released exactly once. */
    order_n = 0;
    CHECK_EQ(rr_devres_add_action_or_reset((rr_devres_t *)(void *)junk, record, (void *)7), RR_EBADHANDLE);
    CHECK_EQ(order_n, 1);
    /* A destroyed gate or list is refused (its handle block is freed; kept mapped here). */
    rr_debug_set_poison(true, true);
    rr_gate_t *g = NULL;
    rr_devres_t *d = NULL;
    rr_gate_create(&g);
    rr_devres_create(&d);
    CHECK_EQ(rr_gate_destroy(g), RR_OK);
    CHECK_EQ(rr_devres_destroy(d, NULL), RR_OK);
    CHECK_EQ(rr_gate_enter(g), RR_EBADHANDLE);
    CHECK_EQ(rr_devres_destroy(d, NULL), RR_EBADHANDLE);
    rr_debug_release_quarantine();
    rr_debug_set_poison(false, false);
    CHECK(strcmp(rr_status_str(RR_ENODEV), "no device") == 0);
    CHECK(strcmp(rr_status_str(RR_ENOENT), "not found") == 0);
}

/* A destroyed gate's domain goes to the next gate: the old handle must not reach it. */
static void gate_stale_handle_never_reaches_the_reused_domain(void)
{
    rr_gate_t *g1 = NULL, *g2 = NULL;
    CHECK_EQ(rr_gate_create(&g1), RR_OK);
    rr_handle_segment_t const *table = rr_handle_table();
    CHECK(table != NULL);
    uint64_t h1 = (uint64_t)(uintptr_t)g1;
    uint32_t i1 = (uint32_t)(h1 >> 8) & 0xffffffu;
    rr_handle_slot_t *slot1 = &table[i1 >> RR_HANDLE_SEGMENT_SHIFT][i1 & ((1u << RR_HANDLE_SEGMENT_SHIFT) - 1u)];
    CHECK_EQ(slot1->stamp, (h1 & 0xffffffff00000000ull) | 1u);
    rr_rcu_domain_t *d1 = slot1->native;
    CHECK(d1 != NULL);
    CHECK_EQ(d1->gate_word & 3u, 0);
    CHECK_EQ(rr_gate_destroy(g1), RR_OK);
    CHECK(slot1->stamp != ((h1 & 0xffffffff00000000ull) | 1u));
    CHECK_EQ(rr_gate_create(&g2), RR_OK); /* takes the domain g1 gave back */
    uint64_t h2 = (uint64_t)(uintptr_t)g2;
    uint32_t i2 = (uint32_t)(h2 >> 8) & 0xffffffu;
    CHECK(table[i2 >> RR_HANDLE_SEGMENT_SHIFT][i2 & ((1u << RR_HANDLE_SEGMENT_SHIFT) - 1u)].native == d1);
    CHECK_EQ(rr_gate_enter(g1), RR_EBADHANDLE);
    CHECK_EQ(rr_gate_leave(g1), RR_EBADHANDLE);
    CHECK_EQ(rr_gate_disconnect(g1), RR_EBADHANDLE); /* and g2 stays open */
    CHECK_EQ(rr_gate_enter(g2), RR_OK);
    CHECK_EQ(rr_gate_leave(g1), RR_EBADHANDLE); /* not g2's call either */
    CHECK_EQ(rr_gate_destroy(g2), RR_EBUSY);     /* a call is in flight: nothing changes */
    CHECK_EQ(rr_gate_enter(g2), RR_OK);           /* still open after the refused destroy */
    CHECK_EQ(rr_gate_leave(g2), RR_OK);
    CHECK_EQ(rr_gate_leave(g2), RR_OK);
    CHECK_EQ(rr_gate_leave(g2), RR_EINVAL);
    CHECK_EQ(rr_gate_disconnect(g2), RR_OK);
    CHECK_EQ(d1->gate_word & 1u, 1u);
    CHECK_EQ(rr_gate_enter(g2), RR_ENODEV);
    CHECK_EQ(rr_gate_destroy(g2), RR_OK);
}

/* Gates created and destroyed in a loop while callers enter through current and stale handles.
 * A call that gets RR_OK must find its gate's device live for the whole call, and a handle whose
 * gate was already destroyed before the call began must never enter. */
#define CHURN_GATES 3000
static rr_gate_t *churn_handle[CHURN_GATES];
static _Atomic uint64_t churn_state[CHURN_GATES]; /* LIVE while the gate exists, then POISON */
static _Atomic int churn_current = -1;
static _Atomic int churn_done;

struct churn_caller {
    unsigned seed;
    long ok, refused, bad, late_enter, used_after_destroy, leave_failed;
};

static void *churn_call(void *arg)
{
    struct churn_caller *c = arg;
    while (!atomic_load(&churn_done)) {
        int cur = atomic_load(&churn_current);
        if (cur < 0)
            continue;
        c->seed = c->seed * 1103515245u + 12345u;
        int seq = cur - (int)((c->seed >> 16) % 4u); /* the current gate or one of the last three */
        if (seq < 0)
            seq = 0;
        rr_gate_t *g = churn_handle[seq];
        uint64_t before = atomic_load(&churn_state[seq]);
        int32_t rc = rr_gate_enter(g);
        if (rc == RR_OK) {
            c->ok++;
            if (before == POISON)
                c->late_enter++;
            for (int k = 0; k < 3; k++)
                if (atomic_load(&churn_state[seq]) != LIVE)
                    c->used_after_destroy++;
            if (rr_gate_leave(g) != RR_OK)
                c->leave_failed++;
        } else if (rc == RR_ENODEV) {
            c->refused++;
        } else if (rc == RR_EBADHANDLE) {
            c->bad++;
        } else {
            c->leave_failed += 1000000; /* no other status is possible */
        }
    }
    return NULL;
}

static void stale_gate_handles_under_churn(void)
{
    CHECK_EQ(rr_debug_set_poison(true, false), RR_OK);
    struct churn_caller c[3] = {{1u, 0, 0, 0, 0, 0, 0}, {2u, 0, 0, 0, 0, 0, 0}, {3u, 0, 0, 0, 0, 0, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, churn_call, &c[i]);
    long busy = 0;
    for (int seq = 0; seq < CHURN_GATES; seq++) {
        CHECK_EQ(rr_gate_create(&churn_handle[seq]), RR_OK);
        atomic_store(&churn_state[seq], LIVE);
        atomic_store(&churn_current, seq);
        if (seq >= 2) {
            /* Retire the gate made two steps ago: disconnect, then destroy (a caller caught
             * entering makes destroy answer RR_EBUSY; it leaves at once, so try again). */
            rr_gate_t *old = churn_handle[seq - 2];
            CHECK_EQ(rr_gate_disconnect(old), RR_OK);
            int32_t rc;
            while ((rc = rr_gate_destroy(old)) == RR_EBUSY)
                busy++;
            CHECK_EQ(rc, RR_OK);
            atomic_store(&churn_state[seq - 2], POISON);
        }
    }
    atomic_store(&churn_done, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    long ok = 0, bad = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(c[i].late_enter, 0);
        CHECK_EQ(c[i].used_after_destroy, 0);
        CHECK_EQ(c[i].leave_failed, 0);
        ok += c[i].ok;
        bad += c[i].bad;
    }
    CHECK(ok > 0);  /* the callers did get in */
    CHECK(bad > 0); /* and did use stale handles */
    for (int seq = CHURN_GATES - 2; seq < CHURN_GATES; seq++) {
        CHECK_EQ(rr_gate_disconnect(churn_handle[seq]), RR_OK);
        CHECK_EQ(rr_gate_destroy(churn_handle[seq]), RR_OK);
    }
    CHECK_EQ(rr_debug_live_handles(), 0);
    CHECK_EQ(rr_debug_set_poison(false, false), RR_OK);
    printf("  churn: %ld calls, %ld stale handles refused, %ld destroys retried\n", ok, bad, busy);
}

/* ---- hot-unplug from C threads ---------------------------------------------------------- */

struct device {
    rr_gate_t *gate;
    rr_revocable_t *hw;
    struct hw regs;
};

struct consumer {
    struct device *dev;
    long ok, nodev, poisoned, ok_after_nodev;
};

static void *consume(void *arg)
{
    struct consumer *c = arg;
    bool saw_nodev = false;
    for (int i = 0; i < 20000; i++) {
        if (rr_gate_enter(c->dev->gate) != RR_OK) {
            saw_nodev = true;
            c->nodev++;
            continue;
        }
        struct hw *h = rr_revocable_try_access(c->dev->hw);
        if (h) {
            if (atomic_load(&h->reg) != LIVE)
                c->poisoned++;
            rr_revocable_release(c->dev->hw);
            c->ok++;
            if (saw_nodev)
                c->ok_after_nodev++;
        } else {
            saw_nodev = true;
            c->nodev++;
        }
        rr_gate_leave(c->dev->gate);
    }
    return NULL;
}

static void hot_unplug_while_consumers_call(void)
{
    for (int round = 0; round < 10; round++) {
        struct device dev = {0};
        atomic_store(&dev.regs.reg, LIVE);
        CHECK_EQ(rr_gate_create(&dev.gate), RR_OK);
        CHECK_EQ(rr_revocable_create(NULL, &dev.regs, hw_destroy, &dev.regs, &dev.hw), RR_OK);
        struct consumer c[3] = {{&dev, 0, 0, 0, 0}, {&dev, 0, 0, 0, 0}, {&dev, 0, 0, 0, 0}};
        pthread_t t[3];
        for (int i = 0; i < 3; i++)
            pthread_create(&t[i], NULL, consume, &c[i]);
        sleep_ms(round % 3);
        CHECK_EQ(rr_gate_disconnect(dev.gate), RR_OK);
        CHECK_EQ(rr_revocable_revoke(dev.hw, NULL), RR_OK);
        CHECK_EQ(atomic_load(&dev.regs.destroyed), 1);
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(c[i].poisoned, 0);
            CHECK_EQ(c[i].ok_after_nodev, 0);
            CHECK_EQ(c[i].ok + c[i].nodev, 20000);
        }
        CHECK_EQ(rr_revocable_destroy(dev.hw), RR_OK);
        CHECK_EQ(rr_gate_destroy(dev.gate), RR_OK);
        CHECK_EQ(atomic_load(&dev.regs.destroyed), 1);
    }
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"revocable_access_revoke_destroy", revocable_access_revoke_destroy},
        {"revoke_waits_for_access_in_flight", revoke_waits_for_access_in_flight},
        {"gate_enter_leave_disconnect", gate_enter_leave_disconnect},
        {"devres_lifo_groups_and_matching", devres_lifo_groups_and_matching},
        {"devres_group_opened_inside_closed_after_survives", devres_group_opened_inside_closed_after_survives},
        {"devres_group_closed_inside_never_grows", devres_group_closed_inside_never_grows},
        {"devres_group_id_zero_is_newest_open", devres_group_id_zero_is_newest_open},
        {"bad_handles_are_refused", bad_handles_are_refused},
        {"hot_unplug_while_consumers_call", hot_unplug_while_consumers_call},
        {"gate_stale_handle_never_reaches_the_reused_domain", gate_stale_handle_never_reaches_the_reused_domain},
        {"stale_gate_handles_under_churn", stale_gate_handles_under_churn},
    };
    return rr_test_main("revoke_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
