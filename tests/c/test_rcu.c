/*
 * rr_rcu_* tests through the real librefruntime.so, built twice (exported calls and RR_INLINE,
 * whose read side runs in this program with a compiler barrier and plain stores).
 * Semantics of docs/rcu.md and a torture run from C threads.
 */
#define _GNU_SOURCE
#include <refruntime.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "rr_test.h"


static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A reader thread that enters, signals, holds until released, exits. */
struct held_reader {
    rr_rcu_domain_t *d;
    int nesting;
    _Atomic int inside, release;
    pthread_t thread;
};

static void *held_reader_main(void *arg)
{
    struct held_reader *h = arg;
    for (int i = 0; i < h->nesting; i++)
        rr_rcu_read_lock(h->d);
    atomic_store(&h->inside, 1);
    while (!atomic_load(&h->release))
        sleep_ms(1);
    for (int i = 0; i < h->nesting; i++)
        rr_rcu_read_unlock(h->d);
    return NULL;
}

static void held_start(struct held_reader *h, rr_rcu_domain_t *d)
{
    h->d = d;
    if (!h->nesting)
        h->nesting = 1;
    atomic_store(&h->inside, 0);
    atomic_store(&h->release, 0);
    pthread_create(&h->thread, NULL, held_reader_main, h);
    while (!atomic_load(&h->inside))
        sleep_ms(1);
}

static void held_release(struct held_reader *h)
{
    atomic_store(&h->release, 1);
    pthread_join(h->thread, NULL);
}

/* A synchronize running on its own thread, so the test can see that it is still waiting. */
struct bg_sync {
    rr_rcu_domain_t *d;
    _Atomic int done;
    int32_t status;
    pthread_t thread;
};

static void *bg_sync_main(void *arg)
{
    struct bg_sync *b = arg;
    b->status = rr_rcu_synchronize(b->d);
    atomic_store(&b->done, 1);
    return NULL;
}

static void bg_sync_start(struct bg_sync *b, rr_rcu_domain_t *d)
{
    b->d = d;
    atomic_store(&b->done, 0);
    pthread_create(&b->thread, NULL, bg_sync_main, b);
}

static bool bg_sync_wait(struct bg_sync *b, int ms)
{
    for (int i = 0; i < ms && !atomic_load(&b->done); i++)
        sleep_ms(1);
    return atomic_load(&b->done);
}

static rr_rcu_domain_t *new_domain(void)
{
    rr_rcu_domain_t *d = NULL;
    CHECK_EQ(rr_rcu_domain_create(&d), RR_OK);
    return d;
}

static void lock_unlock_nesting_and_misuse(void)
{
    rr_rcu_domain_t *d = new_domain();
    CHECK_EQ(rr_rcu_read_unlock(d), RR_EINVAL); /* not inside */
    CHECK_EQ(rr_rcu_read_lock(d), RR_OK);
    CHECK_EQ(rr_rcu_read_lock(d), RR_OK);
    CHECK_EQ(rr_rcu_synchronize(d), RR_EDEADLK); /* would wait for itself */
    CHECK_EQ(rr_rcu_read_unlock(d), RR_OK);
    CHECK_EQ(rr_rcu_synchronize(d), RR_EDEADLK); /* still inside the outer section */
    CHECK_EQ(rr_rcu_read_unlock(d), RR_OK);
    CHECK_EQ(rr_rcu_read_unlock(d), RR_EINVAL);
    CHECK_EQ(rr_rcu_synchronize(d), RR_OK);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

static void synchronize_waits_for_pre_existing_not_later_readers(void)
{
    rr_rcu_domain_t *d = new_domain();
    struct held_reader old = {0}, late = {0};
    struct bg_sync s;
    held_start(&old, d);
    bg_sync_start(&s, d);
    CHECK(!bg_sync_wait(&s, 150)); /* waits for old */
    held_start(&late, d);          /* enters after the grace period started */
    held_release(&old);
    CHECK(bg_sync_wait(&s, 10000)); /* done although late is still inside */
    CHECK_EQ(s.status, RR_OK);
    pthread_join(s.thread, NULL);
    held_release(&late);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

static void domains_are_independent(void)
{
    rr_rcu_domain_t *a = new_domain(), *b = new_domain();
    struct held_reader r = {0};
    held_start(&r, a);
    CHECK_EQ(rr_rcu_synchronize(b), RR_OK); /* a's reader does not delay b */
    CHECK_EQ(rr_rcu_domain_destroy(a), RR_EBUSY); /* a reader is inside a */
    held_release(&r);
    CHECK_EQ(rr_rcu_domain_destroy(a), RR_OK);
    CHECK_EQ(rr_rcu_domain_destroy(b), RR_OK);
}

/* ---- callbacks --------------------------------------------------------------------------- */

struct tracked {
    rr_rcu_head_t head;
    _Atomic int runs;
};

static _Atomic long callbacks_run;

static void tracked_cb(rr_rcu_head_t *h)
{
    struct tracked *t = (struct tracked *)(void *)h; /* head is the first member */
    atomic_fetch_add(&t->runs, 1);
    atomic_fetch_add(&callbacks_run, 1);
}

static void call_waits_for_pre_existing_readers(void)
{
    rr_rcu_domain_t *d = new_domain();
    struct tracked t = {0};
    struct held_reader r = {0};
    held_start(&r, d);
    CHECK_EQ(rr_rcu_call(d, &t.head, tracked_cb), RR_OK);
    sleep_ms(150);
    CHECK_EQ(atomic_load(&t.runs), 0);
    held_release(&r);
    CHECK_EQ(rr_rcu_barrier(d), RR_OK);
    CHECK_EQ(atomic_load(&t.runs), 1);
    CHECK_EQ(rr_rcu_call(d, NULL, tracked_cb), RR_EINVAL);
    CHECK_EQ(rr_rcu_call(d, &t.head, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

#define CB_THREADS 4
#define CB_EACH 2000

struct cb_ctx {
    rr_rcu_domain_t *d;
    struct tracked *items;
};

static void *cb_thread(void *arg)
{
    struct cb_ctx *c = arg;
    for (int i = 0; i < CB_EACH; i++)
        rr_rcu_call(c->d, &c->items[i].head, tracked_cb);
    return NULL;
}

static void barrier_runs_every_threads_callbacks_once(void)
{
    rr_rcu_domain_t *d = new_domain();
    static struct tracked items[CB_THREADS][CB_EACH];
    memset(items, 0, sizeof items);
    pthread_t t[CB_THREADS];
    struct cb_ctx c[CB_THREADS];
    for (int i = 0; i < CB_THREADS; i++) {
        c[i] = (struct cb_ctx){d, items[i]};
        pthread_create(&t[i], NULL, cb_thread, &c[i]);
    }
    for (int i = 0; i < CB_THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(rr_rcu_barrier(d), RR_OK);
    int wrong = 0;
    for (int i = 0; i < CB_THREADS; i++)
        for (int k = 0; k < CB_EACH; k++)
            wrong += atomic_load(&items[i][k].runs) != 1;
    CHECK_EQ(wrong, 0);
    rr_rcu_stats_t st;
    CHECK_EQ(rr_rcu_stats(d, &st), RR_OK);
    CHECK_EQ(st.pending, 0);
    CHECK(st.grace_periods >= 1);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

/* A callback that asks for a barrier on its own domain gets RR_EDEADLK instead of hanging. */
static _Atomic int32_t barrier_from_cb_status = -1;
static rr_rcu_domain_t *barrier_from_cb_domain;

static void barrier_cb(rr_rcu_head_t *h)
{
    (void)h;
    atomic_store(&barrier_from_cb_status, rr_rcu_barrier(barrier_from_cb_domain));
}

static void barrier_from_callback_is_refused(void)
{
    rr_rcu_domain_t *d = new_domain();
    static rr_rcu_head_t head;
    barrier_from_cb_domain = d;
    CHECK_EQ(rr_rcu_call(d, &head, barrier_cb), RR_OK);
    CHECK_EQ(rr_rcu_barrier(d), RR_OK);
    CHECK_EQ(atomic_load(&barrier_from_cb_status), RR_EDEADLK);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

static void destroy_runs_pending_callbacks(void)
{
    rr_rcu_domain_t *d = new_domain();
    struct tracked t = {0};
    CHECK_EQ(rr_rcu_call(d, &t.head, tracked_cb), RR_OK);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
    CHECK_EQ(atomic_load(&t.runs), 1);
}

static void polled_grace_period(void)
{
    rr_rcu_domain_t *d = new_domain();
    struct held_reader r = {0};
    held_start(&r, d);
    uint64_t cookie = 0;
    bool done = true;
    CHECK_EQ(rr_rcu_start_poll(d, &cookie), RR_OK);
    sleep_ms(150);
    CHECK_EQ(rr_rcu_poll(d, cookie, &done), RR_OK);
    CHECK(!done);
    held_release(&r);
    for (int i = 0; i < 10000 && !done; i++) {
        sleep_ms(1);
        rr_rcu_poll(d, cookie, &done);
    }
    CHECK(done);
    CHECK_EQ(rr_rcu_start_poll(d, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_poll(d, cookie, NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

static _Atomic int stalls_seen;
static _Atomic int32_t stall_thread;
static int stall_ctx;

static void on_stall(void *ctx, int32_t thread_id, uint64_t waited_ns)
{
    CHECK(ctx == &stall_ctx);
    CHECK(waited_ns >= 50ull * 1000 * 1000);
    atomic_store(&stall_thread, thread_id);
    atomic_fetch_add(&stalls_seen, 1);
}

static void stall_handler_reports_long_reader(void)
{
    rr_rcu_domain_t *d = new_domain();
    CHECK_EQ(rr_rcu_set_stall_handler(d, 50ull * 1000 * 1000, on_stall, &stall_ctx), RR_OK);
    struct held_reader r = {0};
    struct bg_sync s;
    held_start(&r, d);
    bg_sync_start(&s, d);
    sleep_ms(300);
    held_release(&r);
    CHECK(bg_sync_wait(&s, 10000));
    pthread_join(s.thread, NULL);
    CHECK_EQ(atomic_load(&stalls_seen), 1);
    CHECK(atomic_load(&stall_thread) > 0);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

static void bad_handles_and_arguments(void)
{
    static _Alignas(64) unsigned char junk[256];
    rr_rcu_domain_t *fake = (rr_rcu_domain_t *)(void *)junk;
    CHECK_EQ(rr_rcu_read_lock(NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_read_lock(fake), RR_EBADHANDLE);
    CHECK_EQ(rr_rcu_read_unlock(fake), RR_EBADHANDLE);
    CHECK_EQ(rr_rcu_synchronize(fake), RR_EBADHANDLE);
    CHECK_EQ(rr_rcu_barrier(NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_domain_destroy(NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_domain_destroy(rr_rcu_default_domain()), RR_EINVAL);
    CHECK_EQ(rr_rcu_domain_create(NULL), RR_EINVAL);
    CHECK_EQ(rr_rcu_set_max_pending(rr_rcu_default_domain(), 0), RR_EINVAL);
    CHECK_EQ(rr_rcu_stats(rr_rcu_default_domain(), NULL), RR_EINVAL);
    rr_rcu_reader_t *r = NULL;
    CHECK_EQ(rr_rcu_reader(fake, &r), RR_EBADHANDLE);
    CHECK(r == NULL);
    /* A destroyed domain, its memory kept mapped and poisoned, is refused. */
    rr_debug_set_poison(true, true);
    rr_rcu_domain_t *d = new_domain();
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
    CHECK_EQ(rr_rcu_synchronize(d), RR_EBADHANDLE);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_EBADHANDLE);
    rr_debug_release_quarantine();
    rr_debug_set_poison(false, false);
    /* The default domain works and is shared by everyone. */
    CHECK(rr_rcu_default_domain() != NULL);
    CHECK_EQ(rr_rcu_read_lock(rr_rcu_default_domain()), RR_OK);
    CHECK_EQ(rr_rcu_read_unlock(rr_rcu_default_domain()), RR_OK);
    CHECK_EQ(rr_rcu_synchronize(rr_rcu_default_domain()), RR_OK);
}

/* ---- torture from C threads ------------------------------------------------------------- */

#define LIVE 0x5555666677778888ull
#define T_READERS 3

struct item {
    rr_rcu_head_t head;
    _Atomic uint64_t canary;
};

static struct item *published;
static _Atomic int t_stop;
static _Atomic long t_reads, t_poisoned;

static void poison_item(rr_rcu_head_t *h)
{
    struct item *it = (struct item *)(void *)h;
    atomic_store(&it->canary, 0xDEAD);
    free(it);
}

static void *torture_reader(void *arg)
{
    rr_rcu_domain_t *d = arg;
    long n = 0, bad = 0;
    do { /* at least one read, however late the thread starts on a busy machine */
        rr_rcu_read_lock(d);
        struct item *it = RR_RCU_DEREFERENCE(published);
        for (int k = 0; k < 8; k++)
            if (atomic_load_explicit(&it->canary, memory_order_relaxed) != LIVE)
                bad++;
        rr_rcu_read_unlock(d);
        n++;
    } while (!atomic_load_explicit(&t_stop, memory_order_relaxed));
    atomic_fetch_add(&t_reads, n);
    atomic_fetch_add(&t_poisoned, bad);
    return NULL;
}

static struct item *new_item(void)
{
    struct item *it = calloc(1, sizeof *it);
    atomic_store(&it->canary, LIVE);
    return it;
}

static void torture_readers_never_see_freed_items(void)
{
    rr_rcu_domain_t *d = new_domain();
    RR_RCU_ASSIGN_POINTER(published, new_item());
    atomic_store(&t_stop, 0);
    pthread_t r[T_READERS];
    for (int i = 0; i < T_READERS; i++)
        pthread_create(&r[i], NULL, torture_reader, d);
    long replaced = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - start.tv_sec) + 1e-9 * (double)(now.tv_nsec - start.tv_nsec) > 1.0)
            break;
        struct item *old = RR_RCU_XCHG_POINTER(published, new_item());
        if (replaced % 2) {
            CHECK_EQ(rr_rcu_synchronize(d), RR_OK);
            poison_item(&old->head); /* poisons, then frees */
        } else {
            CHECK_EQ(rr_rcu_call(d, &old->head, poison_item), RR_OK);
        }
        replaced++;
    }
    atomic_store(&t_stop, 1);
    for (int i = 0; i < T_READERS; i++)
        pthread_join(r[i], NULL);
    CHECK_EQ(rr_rcu_barrier(d), RR_OK);
    printf("  torture (%s): %ld reads, %ld replacements, %ld poisoned\n", MODE, atomic_load(&t_reads),
           replaced, atomic_load(&t_poisoned));
    CHECK_EQ(atomic_load(&t_poisoned), 0);
    CHECK(atomic_load(&t_reads) > 0 && replaced > 0);
    free(published);
    CHECK_EQ(rr_rcu_domain_destroy(d), RR_OK);
}

int main(int argc, char **argv)
{
    static const struct rr_test_case cases[] = {
        {"lock_unlock_nesting_and_misuse", lock_unlock_nesting_and_misuse},
        {"synchronize_waits_for_pre_existing_not_later_readers", synchronize_waits_for_pre_existing_not_later_readers},
        {"domains_are_independent", domains_are_independent},
        {"call_waits_for_pre_existing_readers", call_waits_for_pre_existing_readers},
        {"barrier_runs_every_threads_callbacks_once", barrier_runs_every_threads_callbacks_once},
        {"barrier_from_callback_is_refused", barrier_from_callback_is_refused},
        {"destroy_runs_pending_callbacks", destroy_runs_pending_callbacks},
        {"polled_grace_period", polled_grace_period},
        {"stall_handler_reports_long_reader", stall_handler_reports_long_reader},
        {"bad_handles_and_arguments", bad_handles_and_arguments},
        {"torture_readers_never_see_freed_items", torture_readers_never_see_freed_items},
    };
    return rr_test_main("rcu_" MODE, cases, sizeof cases / sizeof cases[0], argc, argv);
}
