/*
 * rr_arc_* / rr_weak_* / rr_unique_arc_* tests through the real librefruntime.so, built twice
 * (exported calls and RR_INLINE). Scenarios of docs/arc.md, bad handles, and a
 * stress run with poisoned, quarantined memory.
 */
#define _GNU_SOURCE
#include <refruntime.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "rr_test.h"


#define CANARY 0x0A7C0A7C0A7C0A7Cull

struct payload {
    _Atomic int destroyed;
    uint64_t canary;
    int64_t value;
};

static _Atomic long dtor_calls;
/* Objects leaked on purpose (saturated counts): kept reachable so that valgrind's leak check
 * (./test.sh --memcheck fails on definite leaks) tells them from real ones. */
static void *volatile deliberately_leaked[4];
static _Atomic long dtor_bad; /* destructor saw a payload already destroyed or corrupted */

static void payload_dtor(void *p, void *ctx)
{
    struct payload *pl = p;
    if (atomic_exchange(&pl->destroyed, 1) != 0 || pl->canary != CANARY)
        atomic_fetch_add(&dtor_bad, 1);
    atomic_fetch_add(&dtor_calls, 1);
    if (ctx)
        atomic_fetch_add((_Atomic long *)ctx, 1);
}

static struct payload *new_payload(void)
{
    void *p = NULL;
    CHECK_EQ(rr_arc_new(sizeof(struct payload), _Alignof(struct payload), payload_dtor, NULL, &p), RR_OK);
    struct payload *pl = p;
    pl->canary = CANARY;
    return pl;
}

static void counts(const void *p, int32_t *s, int32_t *w)
{
    CHECK_EQ(rr_arc_counts(p, s, w), RR_OK);
}

/* Clone and drop: the last drop runs the destructor once and frees the memory. */
static void clone_drop_destructor_runs_once(void)
{
    int64_t live0 = rr_heap_live_count();
    _Atomic long mine = 0;
    void *p = NULL;
    CHECK_EQ(rr_arc_new(sizeof(struct payload), 8, payload_dtor, (void *)&mine, &p), RR_OK);
    ((struct payload *)p)->canary = CANARY;
    CHECK_EQ(rr_heap_live_count(), live0 + 1);
    CHECK_EQ(rr_arc_clone(p), RR_OK);
    CHECK_EQ(rr_arc_clone(p), RR_OK);
    int32_t s = 0, w = 0;
    counts(p, &s, &w);
    CHECK_EQ(s, 3);
    CHECK_EQ(w, 0);
    CHECK_EQ(rr_arc_drop(p), RR_OK);
    CHECK_EQ(rr_arc_drop(p), RR_OK);
    CHECK_EQ(atomic_load(&mine), 0);
    CHECK_EQ(rr_arc_drop(p), RR_OK);
    CHECK_EQ(atomic_load(&mine), 1);
    CHECK_EQ(rr_heap_live_count(), live0);
}

/* Weak references keep the memory, not the payload; upgrade fails once the last strong is gone. */
static void weak_outlives_payload_upgrade_fails_after(void)
{
    int64_t live0 = rr_heap_live_count();
    long calls0 = atomic_load(&dtor_calls);
    struct payload *p = new_payload();
    rr_weak_t w = RR_WEAK_INIT;
    CHECK_EQ(rr_arc_downgrade(p, &w), RR_OK);
    CHECK(w.bits != 0);
    CHECK_EQ(rr_weak_clone(w), RR_OK); /* two weak references now, both named w */
    int32_t s = 0, wk = 0;
    counts(p, &s, &wk);
    CHECK_EQ(s, 1);
    CHECK_EQ(wk, 2);
    void *up = NULL;
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    CHECK(up == p);
    CHECK_EQ(rr_arc_drop(up), RR_OK);
    CHECK_EQ(rr_arc_drop(p), RR_OK); /* last strong: destructor runs */
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 1);
    CHECK_EQ(rr_heap_live_count(), live0 + 1); /* memory stays for the weak references */
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    CHECK(up == NULL);
    CHECK_EQ(rr_weak_counts(w, &s, &wk), RR_OK);
    CHECK_EQ(s, 0);
    CHECK_EQ(wk, 0); /* Rust's Weak::weak_count: 0 once no strong reference remains */
    CHECK_EQ(rr_weak_drop(w), RR_OK);
    CHECK_EQ(rr_heap_live_count(), live0 + 1);
    CHECK_EQ(rr_weak_drop(w), RR_OK);
    CHECK_EQ(rr_heap_live_count(), live0);
}

/* The empty weak: upgrade gives NULL, counts are 0, clone and drop do nothing. */
static void empty_weak_is_inert(void)
{
    rr_weak_t e = RR_WEAK_INIT, e2 = RR_WEAK_INIT;
    void *up = (void *)1;
    CHECK_EQ(rr_weak_upgrade(e, &up), RR_OK);
    CHECK(up == NULL);
    int32_t s = -1, w = -1;
    CHECK_EQ(rr_weak_counts(e, &s, &w), RR_OK);
    CHECK_EQ(s, 0);
    CHECK_EQ(w, 0);
    CHECK_EQ(rr_weak_clone(e), RR_OK);
    CHECK_EQ(rr_weak_drop(e), RR_OK);
    CHECK(rr_weak_ptr_eq(e, e2));
}

static void ptr_eq_names_identity(void)
{
    struct payload *a = new_payload(), *b = new_payload();
    CHECK(rr_arc_ptr_eq(a, a));
    CHECK(!rr_arc_ptr_eq(a, b));
    rr_weak_t wa = RR_WEAK_INIT, wa2 = RR_WEAK_INIT, wb = RR_WEAK_INIT;
    CHECK_EQ(rr_arc_downgrade(a, &wa), RR_OK);
    CHECK_EQ(rr_arc_downgrade(a, &wa2), RR_OK);
    CHECK_EQ(rr_arc_downgrade(b, &wb), RR_OK);
    CHECK(rr_weak_ptr_eq(wa, wa2));
    CHECK(!rr_weak_ptr_eq(wa, wb));
    rr_weak_drop(wa);
    rr_weak_drop(wa2);
    rr_weak_drop(wb);
    rr_arc_drop(a);
    rr_arc_drop(b);
}

/* is_unique (get_mut): only with one strong and no weak; the lock never reads as saturated. */
static void is_unique_requires_one_strong_and_no_weak(void)
{
    struct warn_count {
        uint64_t v[RR_REFCOUNT_WARN_TYPES];
    } before;
    for (int t = 0; t < RR_REFCOUNT_WARN_TYPES; t++)
        before.v[t] = rr_refcount_warn_count(t);
    struct payload *p = new_payload();
    bool u = false;
    CHECK_EQ(rr_arc_is_unique(p, &u), RR_OK);
    CHECK(u);
    CHECK_EQ(RR_ARC_HEADER(p)->weak.refs, 1); /* the lock was released */
    rr_arc_clone(p);
    CHECK_EQ(rr_arc_is_unique(p, &u), RR_OK);
    CHECK(!u);
    rr_arc_drop(p);
    rr_weak_t w = RR_WEAK_INIT;
    rr_arc_downgrade(p, &w);
    CHECK_EQ(rr_arc_is_unique(p, &u), RR_OK);
    CHECK(!u);
    rr_weak_drop(w);
    CHECK_EQ(rr_arc_is_unique(p, &u), RR_OK);
    CHECK(u);
    rr_arc_drop(p);
    for (int t = 0; t < RR_REFCOUNT_WARN_TYPES; t++)
        CHECK_EQ(rr_refcount_warn_count(t), before.v[t]);
}

/* into_unique_or_drop: the non-last owner just drops; the last gets the object back without
 * the destructor running; weak references cannot upgrade until it is shared again. */
static void into_unique_or_drop_takes_back_last_reference(void)
{
    long calls0 = atomic_load(&dtor_calls);
    struct payload *p = new_payload();
    rr_arc_clone(p);
    rr_weak_t w = RR_WEAK_INIT;
    rr_arc_downgrade(p, &w);
    rr_unique_arc_t u = {(void *)1};
    CHECK_EQ(rr_arc_into_unique_or_drop(p, &u), RR_OK);
    CHECK(u.payload == NULL);
    CHECK_EQ(rr_arc_into_unique_or_drop(p, &u), RR_OK);
    CHECK(u.payload == p);
    CHECK_EQ(atomic_load(&dtor_calls), calls0);
    void *up = (void *)1;
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    CHECK(up == NULL); /* unique: no upgrade */
    ((struct payload *)u.payload)->value = 42; /* mutate without synchronisation */
    void *shared = NULL;
    CHECK_EQ(rr_unique_arc_share(u, &shared), RR_OK);
    CHECK(shared == p);
    void *again = (void *)1;
    CHECK_EQ(rr_unique_arc_share(u, &again), RR_EBADHANDLE); /* already shared */
    CHECK(again == NULL);                                     /* out is cleared on failure */
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    CHECK(up == p);
    CHECK_EQ(((struct payload *)up)->value, 42);
    rr_arc_drop(up);
    rr_arc_drop(shared);
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 1);
    rr_weak_drop(w);
}

/* new_unique: initialise, then share; or drop without sharing (destructor runs). */
static void unique_create_share_or_drop(void)
{
    long calls0 = atomic_load(&dtor_calls);
    rr_unique_arc_t u = {NULL};
    CHECK_EQ(rr_arc_new_unique(sizeof(struct payload), 8, payload_dtor, NULL, &u), RR_OK);
    ((struct payload *)u.payload)->canary = CANARY;
    int32_t s = -1;
    counts(u.payload, &s, NULL);
    CHECK_EQ(s, 0);
    /* A caller bug: cloning a unique object (strong 0) is an increment from 0: it saturates
     * with ADD_UAF instead of resurrecting the count. */
    uint64_t uaf0 = rr_refcount_warn_count(RR_REFCOUNT_ADD_UAF);
    CHECK_EQ(rr_arc_clone(u.payload), RR_OK);
    CHECK_EQ(rr_refcount_warn_count(RR_REFCOUNT_ADD_UAF), uaf0 + 1);
    counts(u.payload, &s, NULL);
    CHECK_EQ(s, RR_REFCOUNT_SATURATED);
    deliberately_leaked[0] = u.payload;
    /* Saturated: the object is leaked, by design. A fresh one for the real checks: */
    rr_unique_arc_t v = {NULL};
    CHECK_EQ(rr_arc_new_unique(sizeof(struct payload), 8, payload_dtor, NULL, &v), RR_OK);
    ((struct payload *)v.payload)->canary = CANARY;
    CHECK_EQ(rr_unique_arc_drop(v), RR_OK);
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 1);
    rr_unique_arc_t x = {NULL};
    CHECK_EQ(rr_arc_new_unique(sizeof(struct payload), 8, payload_dtor, NULL, &x), RR_OK);
    ((struct payload *)x.payload)->canary = CANARY;
    void *p = NULL;
    CHECK_EQ(rr_unique_arc_share(x, &p), RR_OK);
    rr_unique_arc_t notunique = {p};
    CHECK_EQ(rr_unique_arc_drop(notunique), RR_EBADHANDLE); /* shared objects are refused */
    CHECK_EQ(rr_arc_drop(p), RR_OK);
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 2);
}

/* Saturation: a strong count at the limit pins, warns, and the object is never freed. */
static void saturated_strong_count_leaks_never_frees(void)
{
    int64_t live0 = rr_heap_live_count();
    long calls0 = atomic_load(&dtor_calls);
    uint64_t ovf0 = rr_refcount_warn_count(RR_REFCOUNT_ADD_OVF);
    struct payload *p = new_payload();
    deliberately_leaked[1] = p;
    rr_refcount_set(&RR_ARC_HEADER(p)->strong, RR_REFCOUNT_MAX);
    CHECK_EQ(rr_arc_clone(p), RR_OK);
    CHECK_EQ(rr_refcount_warn_count(RR_REFCOUNT_ADD_OVF), ovf0 + 1);
    int32_t s = 0;
    counts(p, &s, NULL);
    CHECK_EQ(s, RR_REFCOUNT_SATURATED);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(rr_arc_drop(p), RR_OK);
    CHECK_EQ(atomic_load(&dtor_calls), calls0); /* never destroyed */
    CHECK_EQ(rr_heap_live_count(), live0 + 1);  /* leaked, by design */
    rr_weak_t w = RR_WEAK_INIT;
    CHECK_EQ(rr_arc_downgrade(p, &w), RR_OK);
    void *up = (void *)1;
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    /* A saturated count says nothing about life any more (an extra drop after the destructor
     * looks the same), so upgrade never hands one out; the holders' own references stay usable. */
    CHECK(up == NULL);
    CHECK_EQ(rr_arc_clone(p), RR_OK);
    CHECK_EQ(((struct payload *)p)->canary, CANARY);
}

/* Issue 16.1: a Weak never brings a destroyed object back, whatever a caller's extra drop or
 * clone does to the strong count after the destructor (saturation included). */
static void extra_drop_after_destructor_never_revives(void)
{
    long calls0 = atomic_load(&dtor_calls);
    uint64_t uaf0 = rr_refcount_warn_count(RR_REFCOUNT_SUB_UAF);
    uint64_t add0 = rr_refcount_warn_count(RR_REFCOUNT_ADD_UAF);
    struct payload *p = new_payload();
    rr_weak_t w = RR_WEAK_INIT;
    CHECK_EQ(rr_arc_downgrade(p, &w), RR_OK);
    CHECK_EQ(rr_arc_drop(p), RR_OK); /* the destructor runs */
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 1);
    CHECK_EQ(rr_arc_drop(p), RR_OK); /* a caller's extra drop: saturates, warns */
    CHECK_EQ(rr_refcount_warn_count(RR_REFCOUNT_SUB_UAF), uaf0 + 1);
    void *up = (void *)1;
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    CHECK(up == NULL);
    CHECK_EQ(rr_arc_clone(p), RR_OK); /* and an extra clone on top */
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_OK);
    CHECK(up == NULL);
    /* The unique-ownership paths must not take a destroyed object for a unique one either. */
    rr_unique_arc_t stale = {p};
    void *shared = (void *)1;
    CHECK_EQ(rr_unique_arc_share(stale, &shared), RR_EBADHANDLE);
    CHECK(shared == NULL);
    CHECK_EQ(rr_unique_arc_drop(stale), RR_EBADHANDLE);
    bool u = true;
    CHECK_EQ(rr_arc_is_unique(p, &u), RR_OK);
    CHECK(!u);
    int32_t s = -1, wk = -1;
    CHECK_EQ(rr_weak_counts(w, &s, &wk), RR_OK);
    CHECK_EQ(s, 0);
    CHECK_EQ(wk, 0);
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 1); /* never destroyed twice */
    CHECK_EQ(atomic_load(&dtor_bad), 0);
    CHECK(rr_refcount_warn_count(RR_REFCOUNT_ADD_UAF) >= add0);
    CHECK_EQ(rr_weak_drop(w), RR_OK); /* the last reference of any kind: memory goes */
}

/* Issue 16.1: a duplicate rr_arc_drop_slow (the RR_INLINE drop's slow half called twice, with
 * the strong count still 0) never runs the destructor twice. */
static void drop_slow_twice_runs_destructor_once(void)
{
    long calls0 = atomic_load(&dtor_calls);
    struct payload *p = new_payload();
    rr_weak_t w = RR_WEAK_INIT;
    CHECK_EQ(rr_arc_downgrade(p, &w), RR_OK);
    CHECK((rr_refcount_dec_and_test)(&RR_ARC_HEADER(p)->strong));
    CHECK_EQ(rr_arc_drop_slow(p), RR_OK);
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 1);
    CHECK_EQ(rr_arc_drop_slow(p), RR_EBADHANDLE); /* strong is 0, but the object is destroyed */
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + 1);
    CHECK_EQ(atomic_load(&dtor_bad), 0);
    CHECK(RR_ARC_HEADER(p)->flags & RR_ARC_F_DESTROYED);
    CHECK_EQ(rr_weak_drop(w), RR_OK);
}

/* Issue 16.2: counts as Rust reports them: the implicit weak is never counted. */
static void counts_never_include_the_implicit_weak(void)
{
    int32_t s = -1, w = -1;
    struct payload *p = new_payload();
    counts(p, &s, &w);
    CHECK_EQ(s, 1);
    CHECK_EQ(w, 0);
    rr_unique_arc_t u = {NULL};
    CHECK_EQ(rr_arc_into_unique_or_drop(p, &u), RR_OK);
    CHECK(u.payload == p);
    counts(u.payload, &s, &w); /* unique, no Weak */
    CHECK_EQ(s, 0);
    CHECK_EQ(w, 0);
    rr_weak_t wk = RR_WEAK_INIT;
    CHECK_EQ(rr_arc_downgrade(u.payload, &wk), RR_OK);
    counts(u.payload, &s, &w); /* unique, one Weak */
    CHECK_EQ(s, 0);
    CHECK_EQ(w, 1);
    CHECK_EQ(rr_weak_counts(wk, &s, &w), RR_OK);
    CHECK_EQ(s, 0);
    CHECK_EQ(w, 1);
    void *sh = NULL;
    CHECK_EQ(rr_unique_arc_share(u, &sh), RR_OK);
    CHECK_EQ(rr_weak_counts(wk, &s, &w), RR_OK);
    CHECK_EQ(s, 1);
    CHECK_EQ(w, 1);
    CHECK_EQ(rr_arc_drop(sh), RR_OK); /* last strong: the destructor runs */
    CHECK_EQ(rr_weak_counts(wk, &s, &w), RR_OK);
    CHECK_EQ(s, 0);
    CHECK_EQ(w, 0);
    CHECK_EQ(rr_weak_drop(wk), RR_OK);
}

/* Alignment and size arguments. */
static void alignment_and_size_arguments(void)
{
    size_t aligns[] = {1, 2, 4, 8, 16, 32, 64, 256, 4096};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        void *p = NULL;
        CHECK_EQ(rr_arc_new(100, aligns[i], NULL, NULL, &p), RR_OK);
        CHECK(((uintptr_t)p % (aligns[i] < 16 ? 16 : aligns[i])) == 0);
        for (int k = 0; k < 100; k++)
            CHECK_EQ(((unsigned char *)p)[k], 0); /* zeroed */
        CHECK_EQ(rr_arc_drop(p), RR_OK);
    }
    void *p = (void *)1;
    CHECK_EQ(rr_arc_new(8, 3, NULL, NULL, &p), RR_EINVAL);
    CHECK(p == NULL);
    CHECK_EQ(rr_arc_new(8, 0, NULL, NULL, &p), RR_EINVAL);
    CHECK_EQ(rr_arc_new(8, 8192, NULL, NULL, &p), RR_EINVAL);
    CHECK_EQ(rr_arc_new(SIZE_MAX - 8, 16, NULL, NULL, &p), RR_EINVAL);
    CHECK_EQ(rr_arc_new(8, 16, NULL, NULL, NULL), RR_EINVAL);
    CHECK_EQ(rr_arc_new(0, 16, NULL, NULL, &p), RR_OK);
    CHECK_EQ(rr_arc_drop(p), RR_OK);
}

/* Bad handles of every kind: refused with a status, nothing changed, no crash. */
static void bad_handles_are_refused(void)
{
    rr_debug_set_poison(true, true); /* keep freed memory mapped so stale handles are refused */
    int64_t live0 = rr_heap_live_count();
    struct payload *p = new_payload();
    rr_weak_t w = RR_WEAK_INIT;
    rr_arc_downgrade(p, &w);

    CHECK_EQ(rr_arc_clone(NULL), RR_EINVAL);
    CHECK_EQ(rr_arc_drop(NULL), RR_EINVAL);
    CHECK_EQ(rr_arc_counts(NULL, NULL, NULL), RR_EINVAL);
    /* Misaligned and foreign pointers. */
    CHECK_EQ(rr_arc_clone((char *)p + 8), RR_EBADHANDLE);
    static _Alignas(64) unsigned char foreign[256];
    CHECK_EQ(rr_arc_clone(foreign + 64), RR_EBADHANDLE);
    CHECK_EQ(rr_arc_drop(foreign + 128), RR_EBADHANDLE);
    /* A weak handle passed as a strong one (its bits cast to a pointer), and the reverse. */
    CHECK_EQ(rr_arc_clone((void *)w.bits), RR_EBADHANDLE);
    CHECK_EQ(rr_arc_drop((void *)w.bits), RR_EBADHANDLE);
    rr_weak_t fake = {(uintptr_t)p};
    CHECK_EQ(rr_weak_clone(fake), RR_EBADHANDLE);
    CHECK_EQ(rr_weak_drop(fake), RR_EBADHANDLE);
    void *up = (void *)1;
    CHECK_EQ(rr_weak_upgrade(fake, &up), RR_EBADHANDLE);
    CHECK(up == NULL);
    CHECK_EQ(rr_weak_upgrade(w, NULL), RR_EINVAL);
    rr_unique_arc_t u = {p};
    CHECK_EQ(rr_unique_arc_drop(u), RR_EBADHANDLE); /* shared, not unique */
    /* NULL out-pointers. */
    CHECK_EQ(rr_arc_downgrade(p, NULL), RR_EINVAL);
    CHECK_EQ(rr_arc_is_unique(p, NULL), RR_EINVAL);
    CHECK_EQ(rr_arc_into_unique_or_drop(p, NULL), RR_EINVAL);
    CHECK_EQ(rr_unique_arc_share(u, NULL), RR_EINVAL);
    /* rr_arc_drop_slow on a live object with strong > 0 is refused. */
    CHECK_EQ(rr_arc_drop_slow(p), RR_EINVAL);
    int32_t s = 0, wk = 0;
    counts(p, &s, &wk);
    CHECK_EQ(s, 1);
    CHECK_EQ(wk, 1); /* nothing above changed anything */

    /* Double drop and use after free: refused while the memory holds the poisoned header. */
    CHECK_EQ(rr_arc_drop(p), RR_OK);
    CHECK_EQ(rr_weak_drop(w), RR_OK); /* freed now */
    CHECK_EQ(rr_heap_live_count(), live0);
    CHECK_EQ(rr_arc_drop(p), RR_EBADHANDLE);
    CHECK_EQ(rr_arc_clone(p), RR_EBADHANDLE);
    CHECK_EQ(rr_weak_drop(w), RR_EBADHANDLE);
    CHECK_EQ(rr_weak_upgrade(w, &up), RR_EBADHANDLE);
    CHECK_EQ(((unsigned char *)p)[0], 0xDB); /* poisoned */
    CHECK_EQ(rr_heap_live_count(), live0);
    CHECK(rr_debug_release_quarantine() >= 1);
    rr_debug_set_poison(false, false);
    CHECK(strcmp(rr_status_str(RR_EBADHANDLE), "not a live object of the expected kind") == 0);
}

/* ---- stress ----------------------------------------------------------------------------- */

#define S_THREADS 4
#define S_OBJS 32
#define S_ROUNDS 30
#define S_ITERS 3000

struct s_ctx {
    struct payload **objs;
    rr_weak_t *weaks; /* one weak per object per thread: weaks[t * S_OBJS + k] */
    int t;
    unsigned seed;
    _Atomic int *go;
    _Atomic long *upgrade_after_destroy;
    _Atomic long *errors;
};

static void *stress_thread(void *arg)
{
    struct s_ctx *c = arg;
    unsigned seed = c->seed;
    bool have_strong[S_OBJS];
    for (int k = 0; k < S_OBJS; k++)
        have_strong[k] = true;
    while (!atomic_load(c->go))
        ;
    for (int i = 0; i < S_ITERS; i++) {
        int k = (int)(rand_r(&seed) % S_OBJS);
        struct payload *o = c->objs[k];
        rr_weak_t w = c->weaks[c->t * S_OBJS + k];
        switch (rand_r(&seed) % 5) {
        case 0: /* clone + drop */
            if (have_strong[k]) {
                if (rr_arc_clone(o) != RR_OK || rr_arc_drop(o) != RR_OK)
                    atomic_fetch_add(c->errors, 1);
            }
            break;
        case 1: /* downgrade + weak drop */
            if (have_strong[k]) {
                rr_weak_t w2 = RR_WEAK_INIT;
                if (rr_arc_downgrade(o, &w2) != RR_OK || rr_weak_drop(w2) != RR_OK)
                    atomic_fetch_add(c->errors, 1);
            }
            break;
        case 2: /* upgrade through our weak; a success must see a live payload */
        case 3: {
            void *up = NULL;
            if (rr_weak_upgrade(w, &up) != RR_OK) {
                atomic_fetch_add(c->errors, 1);
            } else if (up) {
                struct payload *pl = up;
                if (atomic_load(&pl->destroyed) || pl->canary != CANARY)
                    atomic_fetch_add(c->upgrade_after_destroy, 1);
                if (rr_arc_drop(up) != RR_OK)
                    atomic_fetch_add(c->errors, 1);
            }
            break;
        }
        case 4: /* give up our strong reference for good (rarely) */
            if (have_strong[k] && rand_r(&seed) % 8 == 0) {
                have_strong[k] = false;
                if (rr_arc_drop(o) != RR_OK)
                    atomic_fetch_add(c->errors, 1);
            }
            break;
        }
    }
    for (int k = 0; k < S_OBJS; k++) {
        if (have_strong[k] && rr_arc_drop(c->objs[k]) != RR_OK)
            atomic_fetch_add(c->errors, 1);
        if (rr_weak_drop(c->weaks[c->t * S_OBJS + k]) != RR_OK)
            atomic_fetch_add(c->errors, 1);
    }
    return NULL;
}

static void stress_clone_drop_downgrade_upgrade(void)
{
    rr_debug_set_poison(true, true);
    int64_t live0 = rr_heap_live_count();
    long calls0 = atomic_load(&dtor_calls), bad0 = atomic_load(&dtor_bad);
    uint64_t warn0[RR_REFCOUNT_WARN_TYPES];
    for (int t = 0; t < RR_REFCOUNT_WARN_TYPES; t++)
        warn0[t] = rr_refcount_warn_count(t);
    _Atomic long upgrade_after_destroy = 0, errors = 0;
    for (int round = 0; round < S_ROUNDS; round++) {
        struct payload *objs[S_OBJS];
        rr_weak_t weaks[S_THREADS * S_OBJS];
        for (int k = 0; k < S_OBJS; k++) {
            objs[k] = new_payload();
            for (int t = 0; t < S_THREADS; t++) {
                CHECK_EQ(rr_arc_downgrade(objs[k], &weaks[t * S_OBJS + k]), RR_OK);
                if (t > 0)
                    CHECK_EQ(rr_arc_clone(objs[k]), RR_OK); /* one strong per thread */
            }
        }
        _Atomic int go = 0;
        pthread_t th[S_THREADS];
        struct s_ctx ctx[S_THREADS];
        for (int t = 0; t < S_THREADS; t++) {
            ctx[t] = (struct s_ctx){objs, weaks, t, (unsigned)(round * 977 + t), &go,
                                    &upgrade_after_destroy, &errors};
            pthread_create(&th[t], NULL, stress_thread, &ctx[t]);
        }
        atomic_store(&go, 1);
        for (int t = 0; t < S_THREADS; t++)
            pthread_join(th[t], NULL);
    }
    CHECK_EQ(atomic_load(&errors), 0);
    CHECK_EQ(atomic_load(&upgrade_after_destroy), 0);
    CHECK_EQ(atomic_load(&dtor_bad), bad0);
    CHECK_EQ(atomic_load(&dtor_calls), calls0 + S_ROUNDS * S_OBJS); /* each payload destroyed once */
    CHECK_EQ(rr_heap_live_count(), live0);                        /* each allocation freed */
    for (int t = 0; t < RR_REFCOUNT_WARN_TYPES; t++)
        CHECK_EQ(rr_refcount_warn_count(t), warn0[t]); /* a clean run never warns */
    CHECK_EQ(rr_debug_release_quarantine(), S_ROUNDS * S_OBJS);
    rr_debug_set_poison(false, false);
}

static void quiet_handler(rr_refcount_t *r, int32_t type, void *ctx)
{
    (void)r;
    (void)type;
    (void)ctx;
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"clone_drop_destructor_runs_once", clone_drop_destructor_runs_once},
        {"weak_outlives_payload_upgrade_fails_after", weak_outlives_payload_upgrade_fails_after},
        {"empty_weak_is_inert", empty_weak_is_inert},
        {"ptr_eq_names_identity", ptr_eq_names_identity},
        {"is_unique_requires_one_strong_and_no_weak", is_unique_requires_one_strong_and_no_weak},
        {"into_unique_or_drop_takes_back_last_reference", into_unique_or_drop_takes_back_last_reference},
        {"unique_create_share_or_drop", unique_create_share_or_drop},
        {"saturated_strong_count_leaks_never_frees", saturated_strong_count_leaks_never_frees},
        {"extra_drop_after_destructor_never_revives", extra_drop_after_destructor_never_revives},
        {"drop_slow_twice_runs_destructor_once", drop_slow_twice_runs_destructor_once},
        {"counts_never_include_the_implicit_weak", counts_never_include_the_implicit_weak},
        {"alignment_and_size_arguments", alignment_and_size_arguments},
        {"bad_handles_are_refused", bad_handles_are_refused},
        {"stress_clone_drop_downgrade_upgrade", stress_clone_drop_downgrade_upgrade},
    };
    /* The saturation cases warn on purpose; keep stderr quiet (the counters still count). */
    rr_refcount_set_warn_handler(quiet_handler, NULL);
    return rr_test_main("arc_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
