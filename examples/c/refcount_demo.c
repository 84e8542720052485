/*
 * refcount_demo - a C host using librefruntime's saturating refcount.
 *
 * A small cache of shared objects: lookups take references with rr_refcount_inc_not_zero, the
 * last owner frees. Then the bugs refcount_t exists for - an extra put (underflow) and an
 * increment of a dead object - are shown being caught: the counter saturates, the object leaks
 * instead of being freed twice, and the warning handler reports it.
 *
 * Build:  cc -O2 refcount_demo.c $(pkg-config --cflags --libs refruntime) -o refcount_demo
 *         (PKG_CONFIG_PATH=<dist>/lib/pkgconfig; add -DRR_INLINE for the inline fast paths)
 */
#include <refruntime.h>

#include <stdio.h>
#include <stdlib.h>

struct session {
    rr_refcount_t ref;
    int id;
};

static int frees;

static struct session *session_new(int id)
{
    struct session *s = malloc(sizeof *s);
    if (!s)
        abort();
    rr_refcount_set(&s->ref, 1);
    s->id = id;
    return s;
}

static void session_put(struct session *s)
{
    if (rr_refcount_dec_and_test(&s->ref)) {
        printf("  session %d: last reference dropped, freed\n", s->id);
        frees++;
        free(s);
    }
}

static const char *type_name(int32_t type)
{
    static const char *const names[] = {"ADD_NOT_ZERO_OVF", "ADD_OVF", "ADD_UAF", "SUB_UAF",
                                        "DEC_LEAK", "DEC_NOT_ONE_UNDERFLOW"};
    return type >= 0 && type < RR_REFCOUNT_WARN_TYPES ? names[type] : "?";
}

static void on_warning(rr_refcount_t *r, int32_t type, void *ctx)
{
    (void)ctx;
    printf("  warning: %s, counter now %d (saturated: the object is leaked, not freed twice)\n",
           type_name(type), rr_refcount_read(r));
}

int main(void)
{
    uint32_t v = rr_version();
    printf("librefruntime %u.%u.%u\n", v >> 16, (v >> 8) & 0xff, v & 0xff);
    rr_refcount_set_warn_handler(on_warning, NULL);

    printf("normal life cycle:\n");
    struct session *s = session_new(1);
    if (rr_refcount_inc_not_zero(&s->ref)) /* a lookup takes a reference */
        printf("  lookup got session %d (refs %d)\n", s->id, rr_refcount_read(&s->ref));
    session_put(s); /* the lookup's reference */
    session_put(s); /* the creator's reference: frees */

    printf("an extra put (the classic error-path double free):\n");
    struct session *t = session_new(2);
    rr_refcount_t *tref = &t->ref;
    rr_refcount_inc(tref);
    session_put(t);
    rr_refcount_dec(tref); /* bug: drops the last reference with a plain dec */
    session_put(t);        /* would have been a double free; the counter is saturated instead */
    printf("  session 2 still allocated, refs %d\n", rr_refcount_read(tref));

    printf("bad pointer:\n");
    rr_refcount_inc(NULL);
    printf("  rr_refcount_inc(NULL) -> %s\n", rr_status_str(rr_take_last_error()));

    printf("frees: %d (expected 1), warnings DEC_LEAK=%llu SUB_UAF=%llu\n", frees,
           (unsigned long long)rr_refcount_warn_count(RR_REFCOUNT_DEC_LEAK),
           (unsigned long long)rr_refcount_warn_count(RR_REFCOUNT_SUB_UAF));
    return frees == 1 ? 0 : 1;
}
