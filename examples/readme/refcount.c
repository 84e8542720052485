/*
 * README.md, "Using it from C": the refcount snippet, as a program.
 * Checked by tests/readme/snippets.sh: the README block appears here verbatim, and this file
 * builds against the installed SDK and prints every EXPECT line below.
 */
#include <stdio.h>
#include <stdlib.h>

/* --- README snippet ------------------------------------------------------------------ */
#define RR_INLINE            /* optional: static inline fast paths, same layout and semantics */
#include <refruntime.h>

struct session { rr_refcount_t ref; /* ... */ };

void session_put(struct session *s)
{
    if (rr_refcount_dec_and_test(&s->ref))   /* true exactly once: the last owner frees */
        free(s);
}
/* --- end of snippet ------------------------------------------------------------------ */

int main(void)
{
    struct session *s = malloc(sizeof *s);
    if (!s)
        return 1;
    rr_refcount_set(&s->ref, 2);          /* two owners */
    session_put(s);                       /* the first leaves: nothing freed */
    printf("after one put: %d\n", rr_refcount_read(&s->ref)); /* EXPECT: after one put: 1 */
    session_put(s);                       /* the last frees */
    printf("session freed by the last put\n"); /* EXPECT: session freed by the last put */
    return 0;
}
