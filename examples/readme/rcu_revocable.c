/*
 * README.md, "Using it from C": the RCU and revocable snippet, as a program
 * (tests/readme/snippets.sh). Built both with the exported functions and with RR_INLINE.
 */
#include <refruntime.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct config { int version; rr_rcu_head_t rcu; };
static struct config *current;
static int freed_configs, unmapped, reads;

static void use(const struct config *c) { printf("reader saw version %d\n", c->version); }
static void free_config(rr_rcu_head_t *head)
{
    free((char *)head - offsetof(struct config, rcu));
    freed_configs++;
}
static void unmap(void *resource, void *ctx) { (void)resource; (void)ctx; unmapped++; }
static void read_registers(void *base) { (void)base; reads++; }

static struct config *config_new(int version)
{
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->version = version;
    return c;
}

static void snippet(struct config *fresh, void *mmio_base)
{
    /* --- README snippet -------------------------------------------------------------- */
    rr_rcu_domain_t *d = rr_rcu_default_domain();
    rr_rcu_read_lock(d);                          /* any thread, no registration */
    struct config *c = RR_RCU_DEREFERENCE(current);
    use(c);
    rr_rcu_read_unlock(d);

    struct config *old = RR_RCU_XCHG_POINTER(current, fresh);
    rr_rcu_call(d, &old->rcu, free_config);       /* freed after every reader that could see it */

    rr_revocable_t *regs;                         /* revoked on unplug, destroyed after readers leave */
    rr_revocable_create(NULL, mmio_base, unmap, NULL, &regs);
    void *base = rr_revocable_try_access(regs);   /* NULL once revoked: report "no device" */
    if (base) { read_registers(base); rr_revocable_release(regs); }
    /* --- end of snippet -------------------------------------------------------------- */

    bool revoked;
    rr_revocable_revoke(regs, &revoked);          /* unplug */
    if (rr_revocable_try_access(regs) == NULL)
        printf("revoked: no device\n");           /* EXPECT: revoked: no device */
    rr_revocable_destroy(regs);
}

int main(void)
{
    static char mmio[64];
    current = config_new(1);
    snippet(config_new(2), mmio);                 /* EXPECT: reader saw version 1 */
    rr_rcu_barrier(rr_rcu_default_domain());
    printf("configs freed %d, unmapped %d, register reads %d\n", freed_configs, unmapped, reads);
    /* EXPECT: configs freed 1, unmapped 1, register reads 1 */
    free(current);
    return 0;
}
