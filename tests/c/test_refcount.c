/*
 * rr_refcount_* conformance and stress tests, through the real librefruntime.so.
 *
 * Built twice by CMakeLists.txt: once calling the exported functions, once with RR_INLINE (the
 * header's static inline fast paths). The same cases must pass in both modes.
 *
 * Cases L1..L20 are the LKDTM refcount tests (docs/refcount.md, Linux lkdtm/refcount.c), with the expected
 * outcomes of the current kernel; L19/L20 (timing) are scaled down.
 */
#define _GNU_SOURCE
#include <refruntime.h>

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "rr_test.h"


/* ---- warning observation --------------------------------------------------------------- */

static _Atomic uint64_t handler_calls[RR_REFCOUNT_WARN_TYPES];
static _Atomic int32_t handler_last_value;
static _Atomic(rr_refcount_t *) handler_last_counter;
static int handler_ctx_token;

static void counting_handler(rr_refcount_t *r, int32_t type, void *ctx)
{
    CHECK(ctx == &handler_ctx_token);
    if (type >= 0 && type < RR_REFCOUNT_WARN_TYPES)
        atomic_fetch_add(&handler_calls[type], 1);
    atomic_store(&handler_last_counter, r);
    atomic_store(&handler_last_value, rr_refcount_read(r));
}

struct warn_snapshot {
    uint64_t lib[RR_REFCOUNT_WARN_TYPES];
    uint64_t handler[RR_REFCOUNT_WARN_TYPES];
};

static struct warn_snapshot snap(void)
{
    struct warn_snapshot s;
    for (int t = 0; t < RR_REFCOUNT_WARN_TYPES; t++) {
        s.lib[t] = rr_refcount_warn_count(t);
        s.handler[t] = atomic_load(&handler_calls[t]);
    }
    return s;
}

/* Checks that exactly @count warnings of @type (and none of any other type) happened since @s. */
#define CHECK_WARNED(s, type, count)                                                            \
    do {                                                                                        \
        struct warn_snapshot now_ = snap();                                                     \
        for (int t_ = 0; t_ < RR_REFCOUNT_WARN_TYPES; t_++) {                                   \
            uint64_t want_ = t_ == (type) ? (uint64_t)(count) : 0;                              \
            CHECK_EQ(now_.lib[t_] - (s).lib[t_], want_);                                        \
            CHECK_EQ(now_.handler[t_] - (s).handler[t_], want_);                                \
        }                                                                                       \
    } while (0)
#define CHECK_NO_WARNING(s) CHECK_WARNED(s, -1, 0)

/* ---- LKDTM cases ------------------------------------------------------------------------ */

static void L1_inc_overflow(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(RR_REFCOUNT_MAX - 1);
    struct warn_snapshot s = snap();
    rr_refcount_dec(&r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_MAX - 2);
    rr_refcount_inc(&r);
    rr_refcount_inc(&r);
    CHECK_EQ(rr_refcount_read(&r), INT32_MAX);
    CHECK_NO_WARNING(s);
    rr_refcount_inc(&r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_ADD_OVF, 1);
    CHECK(atomic_load(&handler_last_counter) == &r);
    CHECK_EQ(atomic_load(&handler_last_value), RR_REFCOUNT_SATURATED);
}

static void L2_add_overflow(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(RR_REFCOUNT_MAX - 1);
    struct warn_snapshot s = snap();
    for (int i = 0; i < 4; i++)
        rr_refcount_dec(&r);
    rr_refcount_add(4, &r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_MAX - 1);
    CHECK_NO_WARNING(s);
    rr_refcount_add(4, &r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_ADD_OVF, 1);
}

static void L3_inc_not_zero_overflow(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(RR_REFCOUNT_MAX);
    struct warn_snapshot s = snap();
    CHECK(rr_refcount_inc_not_zero(&r));
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_ADD_NOT_ZERO_OVF, 1);
}

static void L4_add_not_zero_overflow(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(RR_REFCOUNT_MAX);
    struct warn_snapshot s = snap();
    CHECK(rr_refcount_add_not_zero(6, &r));
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_ADD_NOT_ZERO_OVF, 1);
}

static void L5_dec_zero(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(2);
    struct warn_snapshot s = snap();
    rr_refcount_dec(&r);
    CHECK_EQ(rr_refcount_read(&r), 1);
    CHECK_NO_WARNING(s);
    rr_refcount_dec(&r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_DEC_LEAK, 1);
}

static void L6_dec_negative(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(0);
    struct warn_snapshot s = snap();
    rr_refcount_dec(&r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_DEC_LEAK, 1);
}

static void L7_dec_and_test_negative(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(0);
    struct warn_snapshot s = snap();
    CHECK(!rr_refcount_dec_and_test(&r));
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_SUB_UAF, 1);
}

static void L8_sub_and_test_negative(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(3);
    struct warn_snapshot s = snap();
    CHECK(!rr_refcount_sub_and_test(5, &r));
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_SUB_UAF, 1);
}

static void L9_sub_and_test_zero(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(0);
    struct warn_snapshot s = snap();
    CHECK(!rr_refcount_sub_and_test(0, &r));
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_SUB_UAF, 1);
}

static void L10_inc_zero(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(0);
    struct warn_snapshot s = snap();
    CHECK(!rr_refcount_inc_not_zero(&r));
    CHECK_EQ(rr_refcount_read(&r), 0);
    CHECK_NO_WARNING(s);
    rr_refcount_inc(&r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_ADD_UAF, 1);
}

static void L11_add_zero(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(0);
    struct warn_snapshot s = snap();
    CHECK(!rr_refcount_add_not_zero(3, &r));
    CHECK_EQ(rr_refcount_read(&r), 0);
    CHECK_NO_WARNING(s);
    rr_refcount_add(3, &r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_WARNED(s, RR_REFCOUNT_ADD_UAF, 1);
}

#define SATURATED_CASE(name, stmt, type)                                                        \
    static void name(void)                                                                      \
    {                                                                                           \
        rr_refcount_t r = RR_REFCOUNT_INIT(RR_REFCOUNT_SATURATED);                              \
        struct warn_snapshot s = snap();                                                        \
        stmt;                                                                                   \
        CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);                                  \
        CHECK_WARNED(s, type, 1);                                                               \
    }

SATURATED_CASE(L12_inc_saturated, rr_refcount_inc(&r), RR_REFCOUNT_ADD_OVF)
SATURATED_CASE(L13_dec_saturated, rr_refcount_dec(&r), RR_REFCOUNT_DEC_LEAK)
SATURATED_CASE(L14_add_saturated, rr_refcount_add(8, &r), RR_REFCOUNT_ADD_OVF)
SATURATED_CASE(L15_inc_not_zero_saturated, CHECK(rr_refcount_inc_not_zero(&r)),
               RR_REFCOUNT_ADD_NOT_ZERO_OVF)
SATURATED_CASE(L16_add_not_zero_saturated, CHECK(rr_refcount_add_not_zero(7, &r)),
               RR_REFCOUNT_ADD_NOT_ZERO_OVF)
SATURATED_CASE(L17_dec_and_test_saturated, CHECK(!rr_refcount_dec_and_test(&r)),
               RR_REFCOUNT_SUB_UAF)
SATURATED_CASE(L18_sub_and_test_saturated, CHECK(!rr_refcount_sub_and_test(8, &r)),
               RR_REFCOUNT_SUB_UAF)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* L19 (plain atomic) and L20 (refcount), scaled to 1,000,000 references: counting up is silent,
 * the final dec_and_test is the only one that returns true. */
#define TIMING_N 1000000
static void L19_atomic_timing(void)
{
    _Atomic int32_t a = 1;
    double t0 = now_ns();
    for (int i = 1; i < TIMING_N; i++)
        atomic_fetch_add_explicit(&a, 1, memory_order_relaxed);
    int hits = 0, hit_at = -1;
    for (int i = TIMING_N; i > 0; i--)
        if (atomic_fetch_sub_explicit(&a, 1, memory_order_acq_rel) == 1) {
            hits++;
            hit_at = i;
        }
    CHECK_EQ(hits, 1);
    CHECK_EQ(hit_at, 1);
    printf("  atomic timing: %.2f ns per op\n", (now_ns() - t0) / (2.0 * TIMING_N));
}

static void L20_refcount_timing(void)
{
    rr_refcount_t r = RR_REFCOUNT_INIT(1);
    struct warn_snapshot s = snap();
    double t0 = now_ns();
    for (int i = 1; i < TIMING_N; i++)
        rr_refcount_inc(&r);
    int hits = 0, hit_at = -1;
    for (int i = TIMING_N; i > 0; i--)
        if (rr_refcount_dec_and_test(&r)) {
            hits++;
            hit_at = i;
        }
    CHECK_EQ(hits, 1);
    CHECK_EQ(hit_at, 1);
    printf("  refcount timing (%s): %.2f ns per op\n", MODE, (now_ns() - t0) / (2.0 * TIMING_N));
    /* The top of the range: counting up to exactly RR_REFCOUNT_MAX is legal and silent. */
    rr_refcount_set(&r, RR_REFCOUNT_MAX - 1000);
    for (int i = 0; i < 1000; i++)
        rr_refcount_inc(&r);
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_MAX);
    CHECK(!rr_refcount_sub_and_test(RR_REFCOUNT_MAX - 1, &r));
    CHECK_EQ(rr_refcount_read(&r), 1);
    CHECK(rr_refcount_dec_and_test(&r));
    CHECK_NO_WARNING(s);
}

/* ---- the other helpers ------------------------------------------------------------------ */

static void dec_if_one_only_from_one(void)
{
    struct warn_snapshot s = snap();
    rr_refcount_t r = RR_REFCOUNT_INIT(2);
    CHECK(!rr_refcount_dec_if_one(&r));
    CHECK_EQ(rr_refcount_read(&r), 2);
    rr_refcount_set(&r, 1);
    CHECK(rr_refcount_dec_if_one(&r));
    CHECK_EQ(rr_refcount_read(&r), 0);
    CHECK(!rr_refcount_dec_if_one(&r));
    rr_refcount_set(&r, RR_REFCOUNT_SATURATED);
    CHECK(!rr_refcount_dec_if_one(&r));
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_NO_WARNING(s);
}

static void dec_not_one_cases(void)
{
    struct warn_snapshot s = snap();
    rr_refcount_t r = RR_REFCOUNT_INIT(3);
    CHECK(rr_refcount_dec_not_one(&r));
    CHECK_EQ(rr_refcount_read(&r), 2);
    CHECK(rr_refcount_dec_not_one(&r));
    CHECK_EQ(rr_refcount_read(&r), 1);
    CHECK(!rr_refcount_dec_not_one(&r));
    CHECK_EQ(rr_refcount_read(&r), 1);
    rr_refcount_set(&r, RR_REFCOUNT_SATURATED);
    CHECK(rr_refcount_dec_not_one(&r));
    CHECK_EQ(rr_refcount_read(&r), RR_REFCOUNT_SATURATED);
    CHECK_NO_WARNING(s);
    /* 0: warns underflow, leaves the counter unchanged (no saturation). */
    rr_refcount_set(&r, 0);
    CHECK(rr_refcount_dec_not_one(&r));
    CHECK_EQ(rr_refcount_read(&r), 0);
    CHECK_WARNED(s, RR_REFCOUNT_DEC_NOT_ONE_UNDERFLOW, 1);
    /* A bad value other than SATURATED is simply decremented (docs/refcount.md; lib/refcount.c). */
    rr_refcount_set(&r, INT32_MIN);
    CHECK(rr_refcount_dec_not_one(&r));
    CHECK_EQ(rr_refcount_read(&r), INT32_MAX);
}

static void dec_and_lock_takes_lock_only_at_zero(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    rr_refcount_t r = RR_REFCOUNT_INIT(2);
    CHECK(!rr_refcount_dec_and_lock(&r, &m));
    CHECK_EQ(rr_refcount_read(&r), 1);
    CHECK_EQ(pthread_mutex_trylock(&m), 0); /* not held */
    pthread_mutex_unlock(&m);
    CHECK(rr_refcount_dec_and_lock(&r, &m));
    CHECK_EQ(rr_refcount_read(&r), 0);
    CHECK(pthread_mutex_trylock(&m) != 0); /* held by us */
    pthread_mutex_unlock(&m);
}

static void bad_pointers_are_reported_not_dereferenced(void)
{
    rr_refcount_t *null = NULL;
    char buf[16] __attribute__((aligned(8))) = {0};
    rr_refcount_t *misaligned = (rr_refcount_t *)(void *)(buf + 1);
    rr_refcount_t *bad[] = {null, misaligned};
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    struct warn_snapshot s = snap();
    (void)rr_take_last_error();
    for (int k = 0; k < 2; k++) {
        rr_refcount_t *p = bad[k];
        rr_refcount_set(p, 5);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK_EQ(rr_refcount_read(p), 0);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        rr_refcount_inc(p);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        rr_refcount_add(2, p);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_inc_not_zero(p));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_add_not_zero(2, p));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_dec_and_test(p));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_sub_and_test(1, p));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        rr_refcount_dec(p);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_dec_if_one(p));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(rr_refcount_dec_not_one(p)); /* "decremented": the caller frees nothing */
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        CHECK(!rr_refcount_dec_and_lock(p, &m));
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
        rr_refcount_warn_saturate(p, RR_REFCOUNT_ADD_OVF);
        CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    }
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK_EQ(buf[i], 0); /* nothing was written through the misaligned pointer */
    rr_refcount_t ok = RR_REFCOUNT_INIT(1);
    CHECK(!rr_refcount_dec_and_lock(&ok, NULL));
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    CHECK_EQ(rr_refcount_read(&ok), 1);
    rr_refcount_warn_saturate(&ok, RR_REFCOUNT_WARN_TYPES);
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    rr_refcount_warn_saturate(&ok, -1);
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    CHECK_EQ(rr_refcount_read(&ok), 1);
    CHECK(rr_refcount_warn_count(RR_REFCOUNT_WARN_TYPES) == UINT64_MAX);
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    CHECK(rr_refcount_warn_count(-7) == UINT64_MAX);
    CHECK_EQ(rr_take_last_error(), RR_EINVAL);
    CHECK_EQ(rr_take_last_error(), RR_OK); /* read-and-clear */
    CHECK_NO_WARNING(s);
    /* The library stays usable. */
    rr_refcount_inc(&ok);
    CHECK_EQ(rr_refcount_read(&ok), 2);
}

static void status_strings_and_version(void)
{
    CHECK(strcmp(rr_status_str(RR_OK), "success") == 0);
    CHECK(strcmp(rr_status_str(RR_EINVAL), "invalid argument") == 0);
    CHECK(strcmp(rr_status_str(RR_ENOMEM), "out of memory") == 0);
    CHECK(strcmp(rr_status_str(RR_EINTERNAL), "internal error") == 0);
    CHECK(strcmp(rr_status_str(12345), "unknown status") == 0);
    CHECK_EQ(rr_version(),
             (RR_VERSION_MAJOR << 16) | (RR_VERSION_MINOR << 8) | RR_VERSION_PATCH);
}

static void exported_addresses_still_reachable(void)
{
    /* Under RR_INLINE the names are function-like macros; the exported functions stay callable. */
    void (*inc)(rr_refcount_t *) = &rr_refcount_inc;
    bool (*dat)(rr_refcount_t *) = &rr_refcount_dec_and_test;
    rr_refcount_t r = RR_REFCOUNT_INIT(1);
    inc(&r);
    CHECK(!dat(&r));
    CHECK(dat(&r));
}

/* ---- concurrency stress ----------------------------------------------------------------- */

#define POISON 0xDEADBEEFDEADBEEFull
#define LIVE 0x0123456789ABCDEFull

/* A counted, type-stable object pool: "freed" objects are poisoned, not returned, until the end
 * of a round, so a stale access is observed as poison rather than as a crash. */
struct obj {
    rr_refcount_t ref;
    _Atomic int freed;
    _Atomic uint64_t payload;
};

struct pool {
    struct obj *objs;
    size_t cap;
    _Atomic size_t next;
    _Atomic uint64_t frees, double_frees, poisoned_reads;
};

static struct obj *pool_alloc(struct pool *p, int32_t refs)
{
    size_t i = atomic_fetch_add(&p->next, 1);
    if (i >= p->cap)
        abort();
    struct obj *o = &p->objs[i];
    atomic_store(&o->freed, 0);
    atomic_store(&o->payload, LIVE);
    rr_refcount_set(&o->ref, refs);
    return o;
}

static void pool_free(struct pool *p, struct obj *o)
{
    if (atomic_exchange(&o->freed, 1) != 0)
        atomic_fetch_add(&p->double_frees, 1);
    atomic_store(&o->payload, POISON);
    atomic_fetch_add(&p->frees, 1);
}

static void use(struct pool *p, struct obj *o)
{
    if (atomic_load(&o->payload) != LIVE || atomic_load(&o->freed))
        atomic_fetch_add(&p->poisoned_reads, 1);
}

#define THREADS 4
#define OBJS 64
#define ROUNDS 40
#define ITERS 200

/* Scenario A: every thread is handed a reference to every object; all race inc/dec_and_test
 * pairs while the owner drops its own reference at a random moment; exactly one free each. */
struct a_ctx {
    struct pool *pool;
    struct obj **objs;
    unsigned seed;
    int owner;
    _Atomic int *go;
};

static void *scenario_a_thread(void *arg)
{
    struct a_ctx *c = arg;
    while (!atomic_load(c->go))
        ;
    unsigned seed = c->seed;
    if (c->owner) {
        for (int k = 0; k < OBJS; k++) {
            /* Drop the owner's reference at a random moment within the workers' race. */
            for (int spin = rand_r(&seed) % 256; spin > 0; spin--)
                __asm__ volatile("" ::: "memory");
            if (rr_refcount_dec_and_test(&c->objs[k]->ref))
                pool_free(c->pool, c->objs[k]);
        }
        return NULL;
    }
    for (int it = 0; it < ITERS; it++) {
        int k = (int)(rand_r(&seed) % OBJS);
        struct obj *o = c->objs[k];
        rr_refcount_inc(&o->ref);
        use(c->pool, o);
        if (rr_refcount_dec_and_test(&o->ref)) /* we still hold our own reference */
            atomic_fetch_add(&c->pool->double_frees, 1);
    }
    for (int k = 0; k < OBJS; k++) {
        use(c->pool, c->objs[k]);
        if (rr_refcount_dec_and_test(&c->objs[k]->ref))
            pool_free(c->pool, c->objs[k]);
    }
    return NULL;
}

static void stress_inc_dec_and_test_exactly_one_free(void)
{
    struct warn_snapshot s = snap();
    struct pool p = {.cap = OBJS * ROUNDS};
    p.objs = calloc(p.cap, sizeof *p.objs);
    for (int round = 0; round < ROUNDS; round++) {
        struct obj *objs[OBJS];
        for (int k = 0; k < OBJS; k++) {
            objs[k] = pool_alloc(&p, 1);
            for (int t = 0; t < THREADS; t++)
                rr_refcount_inc(&objs[k]->ref); /* hand one reference to each thread */
        }
        _Atomic int go = 0;
        pthread_t th[THREADS + 1];
        struct a_ctx ctx[THREADS + 1];
        for (int t = 0; t <= THREADS; t++) {
            ctx[t] = (struct a_ctx){&p, objs, (unsigned)(round * 131 + t), t == THREADS, &go};
            pthread_create(&th[t], NULL, scenario_a_thread, &ctx[t]);
        }
        atomic_store(&go, 1);
        for (int t = 0; t <= THREADS; t++)
            pthread_join(th[t], NULL);
        for (int k = 0; k < OBJS; k++)
            CHECK_EQ(rr_refcount_read(&objs[k]->ref), 0);
    }
    CHECK_EQ(atomic_load(&p.next), OBJS * ROUNDS);
    CHECK_EQ(atomic_load(&p.frees), OBJS * ROUNDS);
    CHECK_EQ(atomic_load(&p.double_frees), 0);
    CHECK_EQ(atomic_load(&p.poisoned_reads), 0);
    CHECK_NO_WARNING(s);
    free(p.objs);
}

/* Scenario B: lookups race a replacer. Readers take a reference with inc_not_zero from a
 * published slot (possibly stale), use it and drop it; the replacer swaps in new objects and
 * drops the slot's reference. An inc_not_zero that succeeds on a freed object is a failure. */
#define SLOTS 8
#define REPLACEMENTS 20000

struct b_ctx {
    struct pool *pool;
    _Atomic(struct obj *) *slots;
    _Atomic int *stop;
    unsigned seed;
    _Atomic uint64_t *lookups;
    _Atomic int *ready;
};

static void *scenario_b_reader(void *arg)
{
    struct b_ctx *c = arg;
    unsigned seed = c->seed;
    uint64_t n = 0;
    while (!atomic_load_explicit(c->stop, memory_order_relaxed)) {
        struct obj *o = atomic_load(&c->slots[rand_r(&seed) % SLOTS]);
        if (rr_refcount_inc_not_zero(&o->ref)) {
            use(c->pool, o); /* a success from zero would read poison here */
            if (n++ == 0)
                atomic_fetch_add(c->ready, 1);
            if (rr_refcount_dec_and_test(&o->ref))
                pool_free(c->pool, o);
        }
    }
    atomic_fetch_add(c->lookups, n);
    return NULL;
}

static void stress_inc_not_zero_never_resurrects(void)
{
    struct warn_snapshot s = snap();
    struct pool p = {.cap = SLOTS + REPLACEMENTS};
    p.objs = calloc(p.cap, sizeof *p.objs);
    _Atomic(struct obj *) slots[SLOTS];
    for (int i = 0; i < SLOTS; i++)
        atomic_store(&slots[i], pool_alloc(&p, 1));
    _Atomic int stop = 0;
    _Atomic uint64_t lookups = 0;
    _Atomic int ready = 0;
    pthread_t th[THREADS];
    struct b_ctx ctx[THREADS];
    for (int t = 0; t < THREADS; t++) {
        ctx[t] = (struct b_ctx){&p, slots, &stop, (unsigned)(t + 7), &lookups, &ready};
        pthread_create(&th[t], NULL, scenario_b_reader, &ctx[t]);
    }
    /* Replace only once every reader is looking objects up: on a loaded machine the writer
     * could otherwise finish before any reader ran, and the race would not be exercised. */
    while (atomic_load(&ready) < THREADS)
        sched_yield();
    unsigned seed = 99;
    for (int r = 0; r < REPLACEMENTS; r++) {
        struct obj *fresh = pool_alloc(&p, 1);
        struct obj *old = atomic_exchange(&slots[rand_r(&seed) % SLOTS], fresh);
        if (rr_refcount_dec_and_test(&old->ref))
            pool_free(&p, old);
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    for (int i = 0; i < SLOTS; i++) {
        struct obj *o = atomic_load(&slots[i]);
        CHECK(rr_refcount_dec_and_test(&o->ref));
        pool_free(&p, o);
    }
    /* Every object is now freed: a late inc_not_zero on any of them must fail. */
    for (size_t i = 0; i < p.cap; i++)
        CHECK(!rr_refcount_inc_not_zero(&p.objs[i].ref));
    CHECK_EQ(atomic_load(&p.frees), p.cap);
    CHECK_EQ(atomic_load(&p.double_frees), 0);
    CHECK_EQ(atomic_load(&p.poisoned_reads), 0);
    CHECK(atomic_load(&lookups) > 0);
    CHECK_NO_WARNING(s);
    free(p.objs);
}

int main(int argc, char **argv)
{
    CHECK_EQ(rr_refcount_set_warn_handler(counting_handler, &handler_ctx_token), RR_OK);
    static const struct rr_test_case cases[] = {
        {"L1_inc_overflow", L1_inc_overflow},
        {"L2_add_overflow", L2_add_overflow},
        {"L3_inc_not_zero_overflow", L3_inc_not_zero_overflow},
        {"L4_add_not_zero_overflow", L4_add_not_zero_overflow},
        {"L5_dec_zero", L5_dec_zero},
        {"L6_dec_negative", L6_dec_negative},
        {"L7_dec_and_test_negative", L7_dec_and_test_negative},
        {"L8_sub_and_test_negative", L8_sub_and_test_negative},
        {"L9_sub_and_test_zero", L9_sub_and_test_zero},
        {"L10_inc_zero", L10_inc_zero},
        {"L11_add_zero", L11_add_zero},
        {"L12_inc_saturated", L12_inc_saturated},
        {"L13_dec_saturated", L13_dec_saturated},
        {"L14_add_saturated", L14_add_saturated},
        {"L15_inc_not_zero_saturated", L15_inc_not_zero_saturated},
        {"L16_add_not_zero_saturated", L16_add_not_zero_saturated},
        {"L17_dec_and_test_saturated", L17_dec_and_test_saturated},
        {"L18_sub_and_test_saturated", L18_sub_and_test_saturated},
        {"L19_atomic_timing", L19_atomic_timing},
        {"L20_refcount_timing", L20_refcount_timing},
        {"dec_if_one_only_from_one", dec_if_one_only_from_one},
        {"dec_not_one_cases", dec_not_one_cases},
        {"dec_and_lock_takes_lock_only_at_zero", dec_and_lock_takes_lock_only_at_zero},
        {"bad_pointers_are_reported_not_dereferenced", bad_pointers_are_reported_not_dereferenced},
        {"status_strings_and_version", status_strings_and_version},
        {"exported_addresses_still_reachable", exported_addresses_still_reachable},
        {"stress_inc_dec_and_test_exactly_one_free", stress_inc_dec_and_test_exactly_one_free},
        {"stress_inc_not_zero_never_resurrects", stress_inc_not_zero_never_resurrects},
    };
    int rc = rr_test_main("refcount_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
    CHECK_EQ(rr_refcount_set_warn_handler(NULL, NULL), RR_OK);
    return rc;
}
