/*
 * README.md, "Using it from C": the Arc/Weak snippet, as a program (tests/readme/snippets.sh).
 */
#define _POSIX_C_SOURCE 200809L
#include <refruntime.h>

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* --- README snippet ------------------------------------------------------------------ */
struct conn { int fd; /* ... */ };
static void conn_dtor(void *p, void *ctx) { (void)ctx; close(((struct conn *)p)->fd); }

void share(int fd)
{
    void *c;                                   /* a strong reference is the payload pointer */
    rr_arc_new(sizeof(struct conn), _Alignof(struct conn), conn_dtor, NULL, &c);
    ((struct conn *)c)->fd = fd;
    rr_weak_t w;                               /* a weak reference has its own type */
    rr_arc_downgrade(c, &w);
    rr_arc_drop(c);                            /* last strong: conn_dtor runs, once */
    void *again;
    rr_weak_upgrade(w, &again);                /* again == NULL: never resurrected */
    rr_weak_drop(w);                           /* last reference: memory freed */
}
/* --- end of snippet ------------------------------------------------------------------ */

int main(void)
{
    int64_t before = rr_heap_live_count();
    int fd = dup(1);
    share(fd);
    int closed = fcntl(fd, F_GETFD) == -1;    /* the destructor closed it */
    printf("fd closed %s, objects left %lld\n", closed ? "yes" : "no", (long long)(rr_heap_live_count() - before));
    /* EXPECT: fd closed yes, objects left 0 */
    return closed ? 0 : 1;
}
