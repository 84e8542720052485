/*
 * refruntime.h - the C ABI of RefRuntime (librefruntime.so).
 *
 * SPDX-License-Identifier: MIT (see LICENSE). Requires C11 (or C++11): the header pins its
 * layouts with _Static_assert / static_assert and uses <stdbool.h>, <stdint.h>, <stddef.h>.
 *
 * RefRuntime brings the lifetime primitives of Rust-for-Linux (saturating refcount_t, Arc,
 * RCU, Revocable, devres, typed MMIO) to C and .NET programs. This header is written by hand;
 * every function it declares is exported by librefruntime.so and nothing else is (a test checks
 * both directions).
 *
 * Conventions
 *   - Every symbol starts with rr_ (macros RR_). Fixed-width integer types only.
 *   - Functions that can fail return an rr_status. Functions whose result is a value or a bool
 *     (the refcount operations, kept in the Linux kernel's shape) report a bad argument by
 *     returning a documented safe value and recording RR_EINVAL as the calling thread's last
 *     error, which rr_take_last_error() reads. A NULL or misaligned pointer is never
 *     dereferenced by the library.
 *   - No exception or crash crosses this boundary: an unexpected internal error is caught and
 *     reported as RR_EINTERNAL; the library stays usable.
 *   - All functions are thread-safe unless their documentation says otherwise.
 *
 * Inline fast paths
 *   Calling an export costs a NativeAOT transition (5-13 ns on a 2-vCPU VM; see the README and
 *   perf-results/). Define RR_INLINE before including this header to get static inline versions
 *   of the hot paths over the same memory layout: refcount, Arc clone/drop/upgrade, the RCU read
 *   side, Revocable access, gate enter/leave and plain MMIO windows. They call into the library
 *   only for the unusual case (to saturate and warn, a NULL, misaligned, stale or made-up pointer
 *   or handle, which the exported function then reports). Both modes behave identically; the inline mode needs GCC or
 *   Clang (it uses the __atomic builtins), in C or C++.
 *
 * Layouts are fixed: rr_refcount_t is exactly one int32_t (4 bytes, 4-byte aligned) and may be
 * embedded in caller structs, shared with .NET code, or placed in shared memory.
 */
#ifndef REFRUNTIME_H
#define REFRUNTIME_H

#if !defined(__cplusplus) && (!defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L)
#error "refruntime.h needs C11 or later (e.g. -std=c11 or -std=gnu11): it pins its layouts with _Static_assert"
#endif

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RR__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define RR__UNLIKELY(x) (x)
#endif

/* ---------------------------------------------------------------------------------------- */
/* Version and status codes                                                                 */
/* ---------------------------------------------------------------------------------------- */

#define RR_VERSION_MAJOR 0
#define RR_VERSION_MINOR 1
#define RR_VERSION_PATCH 0

/**
 * rr_version() - the version of the loaded library.
 *
 * Return: (major << 16) | (minor << 8) | patch. Compare with the RR_VERSION_* macros of the
 * header the caller was compiled against.
 */
uint32_t rr_version(void);

/**
 * enum rr_status - outcome of a call. Values are part of the ABI and never renumbered.
 * @RR_OK:        success.
 * @RR_EINVAL:    an argument was NULL, misaligned or out of range; nothing was changed.
 * @RR_ENOMEM:    an allocation failed; nothing was changed.
 * @RR_EINTERNAL: an unexpected internal error was caught at the boundary (a bug: please
 *                report it); the library remains usable.
 * @RR_EBADHANDLE: the pointer or handle is not a live RefRuntime object of the expected kind
 *                (never created by the library, already freed while its memory still holds the
 *                poisoned header, a weak handle where a strong one was expected or the reverse,
 *                a shared object where a unique one was expected); nothing was changed.
 *                Opaque handles (rr_gate_t, rr_devres_t, rr_gpio_chip_t, rr_pl061_model_t,
 *                rr_guestmem_t, rr_guestmap_t, rr_vq_driver_t, rr_vq_device_t, rr_doorbell_t) are
 *                generation-checked entries of a handle table, never dereferenced: a destroyed,
 *                twice-destroyed, wrong-kind or made-up handle is always refused. For objects
 *                whose memory the caller holds (Arc payloads, rr_revocable_t, rr_io_t, RCU
 *                domains) detection of freed objects is best effort: see rr_debug_set_poison().
 * @RR_EDEADLK:   the call would wait for itself (a grace period inside a read-side section of
 *                the same domain, a barrier from the domain's own callback); nothing was done.
 * @RR_EBUSY:     the object is in use (an RCU domain with a reader inside a section); nothing
 *                was done.
 * @RR_ENODEV:    no device: the resource was revoked, or the gate disconnected.
 * @RR_ENOENT:    no matching entry (a devres action or group not on the list); for queues:
 *                nothing to collect, or (device read/write) the chain was already returned;
 *                for a doorbell wait: timed out.
 * @RR_EIO:       the virtqueue is broken: its peer broke the protocol (see rr_vq_*_error() for
 *                what); every later call on it answers RR_EIO until it is reset.
 * @RR_ENOSPC:    no room (too few free descriptors, region full); nothing was changed.
 * @RR_EBADMSG:   a malformed descriptor chain was consumed (device policy
 *                RR_VQ_MALFORMED_RETURN_EMPTY); return its head with length 0.
 */
typedef enum rr_status {
    RR_OK = 0,
    RR_EINVAL = 1,
    RR_ENOMEM = 2,
    RR_EINTERNAL = 3,
    RR_EBADHANDLE = 4,
    RR_EDEADLK = 5,
    RR_EBUSY = 6,
    RR_ENODEV = 7,
    RR_ENOENT = 8,
    RR_EIO = 9,
    RR_ENOSPC = 10,
    RR_EBADMSG = 11
} rr_status;

/**
 * rr_status_str() - a short English description of a status code.
 * @status: any value; unknown values get "unknown status".
 *
 * Return: a NUL-terminated static string; never NULL, never to be freed.
 */
const char *rr_status_str(int32_t status);

/**
 * rr_take_last_error() - read and clear the calling thread's last error.
 *
 * Functions that cannot return an rr_status (the refcount operations, rr_refcount_warn_count)
 * record RR_EINVAL here when given a bad argument. Successful calls do not clear it; this call
 * does. Thread-local: another thread's errors are never seen.
 *
 * Return: the last recorded rr_status, or RR_OK if none since the previous call.
 */
int32_t rr_take_last_error(void);

/*
 * Handles and their lifetime. Every *_destroy() call ends a handle: afterwards every call with it
 * (or a copy of it) is refused with RR_EBADHANDLE rather than followed, deterministically for the
 * opaque handles (see RR_EBADHANDLE). Two threads destroying the same handle at once: one
 * succeeds, the other gets RR_EBADHANDLE; nothing is freed twice. As with pthread_mutex_destroy,
 * a handle must not be destroyed while another thread may still be inside a call with it: to tear
 * an object down under concurrent calls, first stop the calls with the tools made for it
 * (rr_gate_disconnect, rr_revocable_revoke, rr_gpio_remove), then destroy. Leaks are visible:
 * rr_debug_live_handles(), rr_debug_report_leaks().
 */

/* ---------------------------------------------------------------------------------------- */
/* Saturating reference counter (Linux refcount_t)                                          */
/* ---------------------------------------------------------------------------------------- */

/**
 * rr_refcount_t - a saturating 32-bit reference counter with Linux refcount_t semantics.
 *
 * Read as signed, every negative value is bad. An operation that sees a bad transition
 * (increment from 0, overflow past RR_REFCOUNT_MAX, decrement below 0) pins the counter at
 * RR_REFCOUNT_SATURATED, counts a warning of its type and calls the warning handler. A
 * saturated counter stays saturated: the object it guards is leaked, never freed while in use,
 * and the counter never wraps back into the valid range.
 *
 * Ordering: increments are relaxed; decrements are release; a dec_and_test / sub_and_test that
 * returns true is also acquire, so the free that follows sees every other owner's accesses.
 * (The library's own implementation uses full fences, which is stronger.)
 *
 * Bad pointers: a NULL or non-4-byte-aligned @r is never dereferenced. The call records
 * RR_EINVAL (see rr_take_last_error()) and returns the value documented as "on a bad pointer",
 * which is always the answer that does not lead the caller to free anything.
 */
typedef struct rr_refcount {
    int32_t refs; /* use the rr_refcount_* functions; never access directly */
} rr_refcount_t;

/** RR_REFCOUNT_INIT() - static initializer: rr_refcount_t r = RR_REFCOUNT_INIT(1); */
#define RR_REFCOUNT_INIT(n) { (n) }

/** RR_REFCOUNT_MAX - the largest legal count (INT32_MAX). */
#define RR_REFCOUNT_MAX INT32_MAX

/** RR_REFCOUNT_SATURATED - the value a counter is pinned at after a bad transition. */
#define RR_REFCOUNT_SATURATED (INT32_MIN / 2)

/**
 * enum rr_refcount_saturation_type - what a warning reports. 0..4 are the kernel's enum
 * refcount_saturation_type in declaration order and pin the counter at RR_REFCOUNT_SATURATED.
 * @RR_REFCOUNT_ADD_NOT_ZERO_OVF: add_not_zero/inc_not_zero saw a negative old value or sum.
 * @RR_REFCOUNT_ADD_OVF:          add/inc saw a negative old value or sum.
 * @RR_REFCOUNT_ADD_UAF:          add/inc on a counter that was 0 (use-after-free).
 * @RR_REFCOUNT_SUB_UAF:          sub_and_test/dec_and_test went or started below 1 (underflow).
 * @RR_REFCOUNT_DEC_LEAK:         dec reached 0 or saw a bad value (nobody will free the object).
 * @RR_REFCOUNT_DEC_NOT_ONE_UNDERFLOW: dec_not_one saw 0; the counter is left unchanged.
 */
enum rr_refcount_saturation_type {
    RR_REFCOUNT_ADD_NOT_ZERO_OVF = 0,
    RR_REFCOUNT_ADD_OVF = 1,
    RR_REFCOUNT_ADD_UAF = 2,
    RR_REFCOUNT_SUB_UAF = 3,
    RR_REFCOUNT_DEC_LEAK = 4,
    RR_REFCOUNT_DEC_NOT_ONE_UNDERFLOW = 5
};

/** RR_REFCOUNT_WARN_TYPES - the number of saturation types (valid types are 0 .. this - 1). */
#define RR_REFCOUNT_WARN_TYPES 6

/**
 * rr_refcount_set() - store @n (plain atomic store).
 * @r: the counter. @n: the new value.
 * On a bad pointer: does nothing.
 */
void rr_refcount_set(rr_refcount_t *r, int32_t n);

/**
 * rr_refcount_read() - load the counter (plain atomic load).
 * @r: the counter.
 * Return: the current value; RR_REFCOUNT_SATURATED when saturated. On a bad pointer: 0.
 * (The kernel returns the unsigned view of the same bits; int32_t avoids sign-compare traps.)
 */
int32_t rr_refcount_read(const rr_refcount_t *r);

/**
 * rr_refcount_add() - add @i to a counter the caller already holds a reference on.
 * @i: amount (kernel semantics: meant to be positive). @r: the counter.
 * Adding to 0 saturates with RR_REFCOUNT_ADD_UAF; a negative old value or sum saturates with
 * RR_REFCOUNT_ADD_OVF. On a bad pointer: does nothing.
 */
void rr_refcount_add(int32_t i, rr_refcount_t *r);

/** rr_refcount_inc() - rr_refcount_add(1, r). */
void rr_refcount_inc(rr_refcount_t *r);

/**
 * rr_refcount_add_not_zero() - add @i unless the counter is 0.
 * @i: amount. @r: the counter.
 * A negative old value or sum saturates with RR_REFCOUNT_ADD_NOT_ZERO_OVF and still returns true.
 * Return: false when the counter was 0 (nothing written), true otherwise. On a bad pointer: false.
 */
bool rr_refcount_add_not_zero(int32_t i, rr_refcount_t *r);

/** rr_refcount_inc_not_zero() - rr_refcount_add_not_zero(1, r). */
bool rr_refcount_inc_not_zero(rr_refcount_t *r);

/**
 * rr_refcount_sub_and_test() - subtract @i; report whether that took a positive counter to 0.
 * @i: amount. @r: the counter.
 * Starting at or below 0, or going below 0, saturates with RR_REFCOUNT_SUB_UAF.
 * Return: true when the caller dropped the last reference and must free the object
 * (acquire ordering then holds). On a bad pointer: false.
 */
bool rr_refcount_sub_and_test(int32_t i, rr_refcount_t *r);

/** rr_refcount_dec_and_test() - rr_refcount_sub_and_test(1, r). */
bool rr_refcount_dec_and_test(rr_refcount_t *r);

/**
 * rr_refcount_dec() - decrement a counter that must not reach 0 this way.
 * @r: the counter.
 * Reaching 0, or starting at a bad value, saturates with RR_REFCOUNT_DEC_LEAK.
 * On a bad pointer: does nothing.
 */
void rr_refcount_dec(rr_refcount_t *r);

/**
 * rr_refcount_dec_if_one() - take the counter from exactly 1 to 0; never warns.
 * @r: the counter.
 * Return: true when the value was 1 and is now 0. On a bad pointer: false.
 */
bool rr_refcount_dec_if_one(rr_refcount_t *r);

/**
 * rr_refcount_dec_not_one() - decrement unless the value is 1.
 * @r: the counter.
 * A saturated counter is left alone (returns true). A counter at 0 records
 * RR_REFCOUNT_DEC_NOT_ONE_UNDERFLOW and is left unchanged (returns true).
 * Return: false only when the value is 1 (nothing written). On a bad pointer: true.
 */
bool rr_refcount_dec_not_one(rr_refcount_t *r);

/**
 * rr_refcount_dec_and_lock() - decrement, taking @lock only for the final 1 -> 0 transition.
 * @r:    the counter.
 * @lock: an initialised mutex guarding lookups of the object.
 * Return: true when the counter reached 0; @lock is then held and the caller must unlock it.
 * False otherwise (lock not held). On a bad pointer, a NULL @lock, or a failing
 * pthread_mutex_lock: false, RR_EINVAL recorded, counter unchanged.
 * Not inlined under RR_INLINE (it is not a hot path).
 */
bool rr_refcount_dec_and_lock(rr_refcount_t *r, pthread_mutex_t *lock);

/**
 * rr_refcount_warn_saturate() - the out-of-line warning path (kernel refcount_warn_saturate).
 * @r:    the counter.
 * @type: an enum rr_refcount_saturation_type value.
 * For types 0..4 stores RR_REFCOUNT_SATURATED first; then counts the event and calls the
 * handler. RR_REFCOUNT_DEC_NOT_ONE_UNDERFLOW is counted and reported without a store.
 * Called by the RR_INLINE fast paths; callers rarely need it directly.
 * On a bad pointer or type: does nothing, RR_EINVAL recorded.
 */
void rr_refcount_warn_saturate(rr_refcount_t *r, int32_t type);

/**
 * rr_refcount_warn_count() - number of warnings of @type since the library was loaded.
 * @type: an enum rr_refcount_saturation_type value.
 * Return: the count; UINT64_MAX (and RR_EINVAL recorded) when @type is not a valid type.
 */
uint64_t rr_refcount_warn_count(int32_t type);

/**
 * rr_refcount_warn_fn - warning handler: called on the thread that hit the bad transition,
 * after the counter is pinned, with the counter, the enum rr_refcount_saturation_type value and
 * the context given to rr_refcount_set_warn_handler(). It may call rr_refcount_read() on @r.
 */
typedef void (*rr_refcount_warn_fn)(rr_refcount_t *r, int32_t type, void *ctx);

/**
 * rr_refcount_set_warn_handler() - install the handler called on every warning.
 * @fn:  the handler, or NULL to restore the default (print each type once to stderr, like the
 *       kernel's WARN_ONCE).
 * @ctx: passed to @fn; must stay valid until the handler is replaced.
 * Return: RR_OK.
 */
int32_t rr_refcount_set_warn_handler(rr_refcount_warn_fn fn, void *ctx);

/* ---------------------------------------------------------------------------------------- */
/* Arc / Weak: reference-counted shared objects with weak references                        */
/* ---------------------------------------------------------------------------------------- */

/**
 * DOC: Arc
 *
 * One allocation: a 48-byte header (rr_arc_header_t) immediately followed by the payload. A
 * strong reference is the payload pointer itself (Rust's Arc::into_raw), so a C program passes
 * it around as a plain pointer to its own struct; the header is found by a constant subtraction.
 * A weak reference has its own type, rr_weak_t, passed by value, so the compiler refuses to mix
 * the two. Semantics are Rust std's Arc/Weak with the kernel's saturation instead of abort:
 *   - strong and weak are rr_refcount_t words: an overflow or an extra drop pins the count at
 *     RR_REFCOUNT_SATURATED, warns (rr_refcount_warn_count / the warning handler) and leaks the
 *     object; it is never freed while in use and never wraps;
 *   - the strong owners together hold one implicit weak, so the destructor runs when the last
 *     strong reference goes and the memory is freed when the last weak reference goes;
 *   - upgrade never succeeds once the destructor has started, whatever misuse does to the strong
 *     count afterwards: the drop that runs the destructor first sets RR_ARC_F_DESTROYED in the
 *     header, and upgrade checks it (and refuses a saturated strong count: such an object is
 *     leaked and may already be destroyed);
 *   - rr_arc_counts()/rr_weak_counts() report what Rust's strong_count/weak_count report: the
 *     implicit weak is never counted, and once the destructor has started both read 0.
 * The same objects are used from .NET (RefRuntime.Arc<T>) with the same layout.
 *
 * Every function validates its handle: NULL gives RR_EINVAL, anything that is not a live object
 * of the expected kind gives RR_EBADHANDLE, and nothing is changed. All functions are
 * thread-safe; the payload itself is the caller's to synchronise.
 */

/**
 * rr_arc_header_t - the header before every payload (layout fixed; read-only for callers).
 * @strong:      strong count (refcount_t semantics; 0 while owned uniquely or once destroyed).
 * @weak:        weak references + 1 implicit weak while the object is not destroyed.
 * @magic:       RR_ARC_MAGIC while live.
 * @base_offset: bytes from the allocation start to this header.
 * @size:        payload bytes.
 * @dtor, @ctx:  the destructor and its context.
 * @flags:       RR_ARC_F_DESTROYED once the destructor has started (set once, never cleared);
 *               other bits reserved (0).
 */
typedef struct rr_arc_header {
    rr_refcount_t strong;
    rr_refcount_t weak;
    uint32_t magic;
    uint32_t base_offset;
    uint64_t size;
    void (*dtor)(void *payload, void *ctx);
    void *ctx;
    uint64_t flags;
} rr_arc_header_t;

#define RR_ARC_MAGIC 0x31415252u /* "RRA1" */
/** RR_ARC_F_DESTROYED - rr_arc_header_t.flags bit: the destructor has started. */
#define RR_ARC_F_DESTROYED 1u
#define RR_ARC_HEADER_SIZE 48
/** RR_ARC_HEADER() - the header of a payload pointer (no validation). */
#define RR_ARC_HEADER(payload) ((rr_arc_header_t *)(void *)((char *)(payload) - RR_ARC_HEADER_SIZE))

/** rr_arc_dtor_fn - payload destructor: called once, on the thread that drops the last strong
 * reference, with the payload and the context given at creation. It must not use the payload
 * after returning; weak references may still exist (their upgrade fails). */
typedef void (*rr_arc_dtor_fn)(void *payload, void *ctx);

/** rr_weak_t - a weak reference, passed by value. RR_WEAK_INIT is the empty weak: upgrade gives
 * NULL, drop does nothing, counts are 0. Copying the struct does not take a reference:
 * rr_weak_clone() does. */
typedef struct rr_weak {
    uintptr_t bits;
} rr_weak_t;
#define RR_WEAK_INIT { 0 }

/** rr_unique_arc_t - unique ownership of an object not yet shared (Rust's UniqueArc): the
 * holder may initialise the payload without synchronisation; weak references cannot upgrade. */
typedef struct rr_unique_arc {
    void *payload;
} rr_unique_arc_t;

/**
 * rr_arc_new() - allocate a shared object: a zeroed payload, strong = 1.
 * @size:  payload bytes (0 allowed).
 * @align: payload alignment: a power of two up to 4096 (values below 16 are raised to 16).
 * @dtor:  called once when the last strong reference goes, or NULL.
 * @ctx:   passed to @dtor.
 * @out:   receives the payload pointer (the caller's strong reference); NULL on failure.
 * Return: RR_OK; RR_EINVAL (bad @align, @size too large, NULL @out); RR_ENOMEM.
 */
int32_t rr_arc_new(size_t size, size_t align, rr_arc_dtor_fn dtor, void *ctx, void **out);

/**
 * rr_arc_new_unique() - allocate an object owned uniquely, to be initialised before sharing.
 * Parameters as rr_arc_new(); @out receives the unique ownership.
 * Return: as rr_arc_new().
 */
int32_t rr_arc_new_unique(size_t size, size_t align, rr_arc_dtor_fn dtor, void *ctx,
                          rr_unique_arc_t *out);

/**
 * rr_unique_arc_share() - turn unique ownership into the first strong reference (release:
 * everything written to the payload so far is visible to every later owner).
 * @u:   the unique ownership (consumed on success).
 * @out: receives the payload pointer.
 * Return: RR_OK; RR_EINVAL (NULL @u.payload or @out); RR_EBADHANDLE (not a live uniquely owned object).
 */
int32_t rr_unique_arc_share(rr_unique_arc_t u, void **out);

/**
 * rr_unique_arc_drop() - destroy a uniquely owned object: run the destructor, release it.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_unique_arc_drop(rr_unique_arc_t u);

/**
 * rr_arc_clone() - take another strong reference. The caller must hold one.
 * @payload: a strong reference.
 * Return: RR_OK; RR_EINVAL (NULL); RR_EBADHANDLE. At the count limit the object saturates
 * (warning RR_REFCOUNT_ADD_OVF) and is leaked; the call still succeeds.
 */
int32_t rr_arc_clone(const void *payload);

/**
 * rr_arc_drop() - give up a strong reference. The last one runs the destructor; the memory
 * goes with the last weak reference. Do not use @payload afterwards.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE (for example a second drop after the object was freed,
 * while its memory still holds the poisoned header).
 */
int32_t rr_arc_drop(void *payload);

/**
 * rr_arc_drop_slow() - the out-of-line half of the RR_INLINE drop: after the caller's own
 * dec_and_test of the strong count returned true, run the destructor and release the implicit
 * weak. Callers of rr_arc_drop() never need it.
 * Return: RR_OK; RR_EINVAL (NULL, or the strong count is not 0); RR_EBADHANDLE (also for a
 * second call on the same object: the destructor never runs twice).
 */
int32_t rr_arc_drop_slow(void *payload);

/**
 * rr_arc_downgrade() - create a weak reference. The caller must hold a strong one.
 * @out: receives the weak reference (RR_WEAK_INIT on failure).
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_arc_downgrade(const void *payload, rr_weak_t *out);

/**
 * rr_weak_clone() - take another weak reference (the caller then holds two copies of @w, each
 * owning one). Does nothing for the empty weak.
 * Return: RR_OK; RR_EBADHANDLE (not a weak handle of a live allocation).
 */
int32_t rr_weak_clone(rr_weak_t w);

/**
 * rr_weak_drop() - give up a weak reference; the last reference of any kind frees the memory.
 * Does nothing for the empty weak.
 * Return: RR_OK; RR_EBADHANDLE.
 */
int32_t rr_weak_drop(rr_weak_t w);

/**
 * rr_weak_upgrade() - take a strong reference from a weak one, unless the last strong
 * reference is already gone (never from 0: once the destructor has started, this fails, even
 * if a caller's extra drop or clone has since saturated the strong count). A saturated strong
 * count always fails: the object is leaked, and may already be destroyed. While the object is
 * owned uniquely (rr_arc_into_unique_or_drop) it fails too.
 * @out: receives the payload pointer (a new strong reference), or NULL when the object is gone.
 * Return: RR_OK (check *out); RR_EINVAL (NULL @out); RR_EBADHANDLE.
 */
int32_t rr_weak_upgrade(rr_weak_t w, void **out);

/**
 * rr_arc_counts() - the strong count and the number of weak references (the implicit weak is
 * never counted), as Rust's strong_count/weak_count report them: a shared object with no Weak
 * reads weak 0; a uniquely owned object reads strong 0 and its Weak references; once the
 * destructor has started both read 0. A snapshot: other threads may change them at once.
 * Saturated counts of a live object read RR_REFCOUNT_SATURATED.
 * @strong, @weak: receive the counts; either may be NULL.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_arc_counts(const void *payload, int32_t *strong, int32_t *weak);

/**
 * rr_weak_counts() - the same through a weak reference; both 0 for the empty weak.
 * Return: RR_OK; RR_EBADHANDLE.
 */
int32_t rr_weak_counts(rr_weak_t w, int32_t *strong, int32_t *weak);

/** rr_arc_ptr_eq() - whether two strong references name the same object. */
bool rr_arc_ptr_eq(const void *a, const void *b);

/** rr_weak_ptr_eq() - whether two weak references name the same allocation (two empty weaks are equal). */
bool rr_weak_ptr_eq(rr_weak_t a, rr_weak_t b);

/**
 * rr_arc_into_unique_or_drop() - give up a strong reference; if it was the last one, take
 * unique ownership back instead of destroying the payload (the destructor does not run).
 * Weak references that remain cannot upgrade until the object is shared again.
 * @out: receives the unique ownership, or { NULL } when other strong references remain (then
 *       the caller's reference is simply gone).
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_arc_into_unique_or_drop(void *payload, rr_unique_arc_t *out);

/**
 * rr_arc_is_unique() - whether the caller's strong reference is the only reference of any kind
 * (strong = 1 and no weak reference), so the payload may be mutated without synchronisation
 * (Rust's get_mut). Locks out a concurrent downgrade for the duration of the check with a weak
 * value that can never be confused with a saturated count.
 * @out: receives the answer.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_arc_is_unique(const void *payload, bool *out);

/* ---------------------------------------------------------------------------------------- */
/* RCU: read-copy-update domains                                                            */
/* ---------------------------------------------------------------------------------------- */

/**
 * DOC: RCU
 *
 * Read-side critical sections that cost two plain stores and never write a shared cache line;
 * grace periods (rr_rcu_synchronize) that wait for every section already running; deferred
 * callbacks (rr_rcu_call) run by a background worker after a grace period; polled grace periods.
 * Any thread may read, with no registration: its reader record is created on its first read
 * lock and recycled after the thread exits. Domains are independent: a slow reader in one never
 * delays another. The reader/writer protocol is liburcu's memb flavour (the writer pays with a
 * process-wide barrier, membarrier(2) on Linux).
 *
 * Rules, as for every RCU: a pointer loaded with RR_RCU_DEREFERENCE inside a section may be used
 * only until that section ends; never call rr_rcu_synchronize inside a section of the same
 * domain (it returns RR_EDEADLK instead of hanging); a thread must not exit inside a section.
 */

/**
 * rr_rcu_domain_t - a domain's native state. Fields are read by the RR_INLINE read side; never
 * write them. gp_ctr sits alone on the second cache line. @gate_word is the state of the gate
 * whose domain this is (rr_gate_t: owner token in bits 63..2, disconnected in bit 0, a destroy in
 * progress in bit 1), 0 for a plain domain.
 */
typedef struct rr_rcu_domain {
    uint32_t magic;
    uint32_t id;
    uint64_t managed;
    uint64_t gate_word;
    uint64_t reserved[5];
    uint64_t gp_ctr;
    uint64_t reserved2[7];
} rr_rcu_domain_t;

/** rr_rcu_reader_t - a thread's reader record in one domain (64 bytes): nesting in bits 0..31
 * of ctr, phase in bit 32. Owned by one thread; obtained with rr_rcu_reader(). */
typedef struct rr_rcu_reader {
    uint64_t ctr;
    struct rr_rcu_reader *next;
    int32_t in_use;
    int32_t thread_id;
    uint64_t reserved[5];
} rr_rcu_reader_t;

#define RR_RCU_NEST_MASK 0xffffffffull
#define RR_RCU_NEST_ONE 1ull

/** rr_rcu_head_t - embed in an object to queue it with rr_rcu_call() without allocating. */
typedef struct rr_rcu_head {
    struct rr_rcu_head *next;                   /* reserved */
    void (*func)(struct rr_rcu_head *head);     /* set by rr_rcu_call */
} rr_rcu_head_t;

/** rr_rcu_stats_t - counters of a domain (rr_rcu_stats). */
typedef struct rr_rcu_stats {
    uint64_t grace_periods;   /* completed */
    uint64_t pending;         /* callbacks queued, not yet run */
    uint64_t overflowed;      /* rr_rcu_call()s past the bound that could not wait */
    uint64_t reader_records;  /* records allocated (threads that read, minus recycled) */
} rr_rcu_stats_t;

/** rr_rcu_default_domain() - the process-wide default domain; never destroyed, never NULL. */
rr_rcu_domain_t *rr_rcu_default_domain(void);

/**
 * rr_rcu_domain_create() - create an independent domain.
 * @out: receives it.
 * Return: RR_OK; RR_EINVAL (NULL @out); RR_ENOMEM.
 */
int32_t rr_rcu_domain_create(rr_rcu_domain_t **out);

/**
 * rr_rcu_domain_destroy() - run every queued callback, stop the worker, free the domain.
 * Return: RR_OK; RR_EBUSY (a reader is inside a section: nothing done); RR_EDEADLK (called from
 * the domain's callback); RR_EINVAL (NULL, or the default domain); RR_EBADHANDLE.
 */
int32_t rr_rcu_domain_destroy(rr_rcu_domain_t *d);

/**
 * rr_rcu_read_lock() - enter a read-side section (nestable), on the calling thread.
 * Return: RR_OK; RR_EINVAL (NULL); RR_EBADHANDLE (not a live domain).
 */
int32_t rr_rcu_read_lock(rr_rcu_domain_t *d);

/**
 * rr_rcu_read_unlock() - leave a read-side section.
 * Return: RR_OK; RR_EINVAL (NULL, or the thread is not inside a section of @d); RR_EBADHANDLE.
 */
int32_t rr_rcu_read_unlock(rr_rcu_domain_t *d);

/**
 * rr_rcu_reader() - the calling thread's reader record in @d (created on first use). Used by the
 * RR_INLINE read side; valid until the thread exits or the domain is destroyed.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_rcu_reader(rr_rcu_domain_t *d, rr_rcu_reader_t **out);

/**
 * rr_rcu_synchronize() - wait until every read-side section of @d running now has ended.
 * Return: RR_OK; RR_EDEADLK (the caller is inside a section of @d); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_rcu_synchronize(rr_rcu_domain_t *d);

/**
 * rr_rcu_call() - call @func(@head) on the domain's worker thread after a grace period.
 * Callbacks run in the order queued. @head must stay valid until @func runs; @func must not
 * block for long (it delays the callbacks behind it). Past the bound set by
 * rr_rcu_set_max_pending() the call waits for the worker (back-pressure), except inside a read
 * section or on the worker, where waiting could deadlock.
 * Return: RR_OK; RR_EINVAL (NULL); RR_EBADHANDLE.
 */
int32_t rr_rcu_call(rr_rcu_domain_t *d, rr_rcu_head_t *head, void (*func)(rr_rcu_head_t *head));

/**
 * rr_rcu_barrier() - wait until every callback queued on @d before this call, by any thread,
 * has run (for example before unloading the code they point to).
 * Return: RR_OK; RR_EDEADLK (called from a callback); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_rcu_barrier(rr_rcu_domain_t *d);

/**
 * rr_rcu_start_poll() - start a polled grace period; the worker runs one if nothing else does.
 * @cookie: receives the cookie for rr_rcu_poll().
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_rcu_start_poll(rr_rcu_domain_t *d, uint64_t *cookie);

/**
 * rr_rcu_poll() - whether a full grace period has elapsed since rr_rcu_start_poll() gave @cookie.
 * @done: receives the answer.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_rcu_poll(rr_rcu_domain_t *d, uint64_t cookie, bool *done);

/**
 * rr_rcu_set_stall_handler() - report readers that keep a grace period waiting.
 * @threshold_ns: how long a grace period may wait for one reader before it is reported.
 * @fn:           called on the waiting writer's thread with @ctx, the reader's thread id and how
 *                long it has waited, once per reader per wait; NULL turns reports off.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_rcu_set_stall_handler(rr_rcu_domain_t *d, uint64_t threshold_ns,
                                 void (*fn)(void *ctx, int32_t thread_id, uint64_t waited_ns),
                                 void *ctx);

/**
 * rr_rcu_set_max_pending() - bound the callbacks queued and not yet run (default 1000000).
 * Return: RR_OK; RR_EINVAL (0, too large, NULL); RR_EBADHANDLE.
 */
int32_t rr_rcu_set_max_pending(rr_rcu_domain_t *d, uint64_t max_pending);

/**
 * rr_rcu_stats() - the domain's counters.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_rcu_stats(rr_rcu_domain_t *d, rr_rcu_stats_t *out);

/*
 * RCU-protected pointers (GCC/Clang builtins; no library call):
 *   RR_RCU_ASSIGN_POINTER(p, v)  publish v with release ordering (its initialisation first)
 *   RR_RCU_DEREFERENCE(p)        load inside a read-side section (dependency-ordered)
 *   RR_RCU_XCHG_POINTER(p, v)    replace with a full barrier, evaluating to the old pointer
 */
#define RR_RCU_ASSIGN_POINTER(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define RR_RCU_DEREFERENCE(p) __atomic_load_n(&(p), __ATOMIC_CONSUME)
#define RR_RCU_XCHG_POINTER(p, v) __atomic_exchange_n(&(p), (v), __ATOMIC_SEQ_CST)

/* ---------------------------------------------------------------------------------------- */
/* Revocation: revocable resources, call-draining gates, managed resources (devres)         */
/* ---------------------------------------------------------------------------------------- */

/**
 * DOC: Revocation
 *
 * Two answers to "the hardware went away while code still uses it", usable side by side:
 *  - rr_revocable_t (Wedson Almeida Filho's): a resource pointer published under RCU. Access is
 *    lock-free (a read-side section and one load); revoke makes new accesses fail at once, waits
 *    for accesses in flight, then destroys the resource exactly once.
 *  - rr_gate_t (Laurent Pinchart's): a gate in front of a whole API. Each call enters and leaves
 *    (no shared counter: it scales); disconnect refuses new calls at once, waits until every call
 *    in flight has left (blocking, not spinning), and later calls get RR_ENODEV.
 * And rr_devres_t: a device's release actions, run last-in-first-out on removal or on a failed
 * probe, with groups to roll back part of a multi-step acquisition (Linux devres).
 */

/** rr_revocable_t - a revocable resource (layout read by the RR_INLINE access path). */
typedef struct rr_revocable {
    uint32_t magic;
    uint32_t reserved;
    rr_rcu_domain_t *domain;
    void *resource;
    void (*destroy)(void *resource, void *ctx);
    void *ctx;
    uint64_t flags;
} rr_revocable_t;

/**
 * rr_revocable_create() - wrap @resource so that it can be revoked.
 * @domain:  the RCU domain whose sections protect accesses (NULL: the default domain).
 * @resource: non-NULL.
 * @destroy: called once with @resource and @ctx after revocation (may be NULL).
 * @out:     receives the handle.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE (bad domain); RR_ENOMEM.
 */
int32_t rr_revocable_create(rr_rcu_domain_t *domain, void *resource,
                            void (*destroy)(void *resource, void *ctx), void *ctx,
                            rr_revocable_t **out);

/**
 * rr_revocable_try_access() - the resource, or NULL once revoked.
 * On success the caller is inside a read-side section and must call rr_revocable_release() on
 * the same thread when done (and must not block for long meanwhile). On NULL there is nothing
 * to release. A bad handle also gives NULL, with RR_EINVAL/RR_EBADHANDLE recorded (see
 * rr_take_last_error()).
 */
void *rr_revocable_try_access(rr_revocable_t *r);

/**
 * rr_revocable_release() - end an access that rr_revocable_try_access() granted.
 * Return: RR_OK; RR_EINVAL (NULL, or no access in progress on this thread); RR_EBADHANDLE.
 */
int32_t rr_revocable_release(rr_revocable_t *r);

/**
 * rr_revocable_revoke() - make new accesses fail, wait for accesses in flight, destroy the
 * resource. Concurrent revokes destroy it once; only that call reports @revoked = true.
 * @revoked: optional; whether this call revoked it.
 * Return: RR_OK; RR_EDEADLK (called during an access: nothing revoked); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_revocable_revoke(rr_revocable_t *r, bool *revoked);

/**
 * rr_revocable_revoke_nosync() - revoke without waiting: for callers who can prove that no
 * access is in flight (the resource is destroyed at once).
 * Return: as rr_revocable_revoke().
 */
int32_t rr_revocable_revoke_nosync(rr_revocable_t *r, bool *revoked);

/**
 * rr_revocable_destroy() - revoke (waiting for accesses) if still live, then free the handle.
 * Return: RR_OK; RR_EDEADLK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_revocable_destroy(rr_revocable_t *r);

/**
 * rr_gate_t - a call-draining gate (opaque: a generation-checked handle, never dereferenced).
 *
 * Under RR_INLINE, rr_gate_enter() and rr_gate_leave() run inline without entering the library:
 * they find the gate through the handle table (rr_handle_table()), whose slot names the gate's
 * RCU domain, enter or leave that domain's read side inline, and check the handle again after
 * entering. A gate's domain is never freed, only reused by a later gate, so a handle that goes
 * stale meanwhile reads valid memory and then fails the second check. Anything unusual (NULL, a
 * made-up, stale or wrong-kind handle, a gate being destroyed, a call that is not inside) is
 * handed to the exported function, which reports it exactly as without RR_INLINE.
 */
typedef struct rr_gate rr_gate_t;

/**
 * rr_handle_slot_t - one slot of the library's handle table (16 bytes; read by the RR_INLINE
 * gate calls; never write it). @stamp: the live handle's generation << 32 | kind (0 when free;
 * bit 8 while a destroy is in progress). @native: a gate's rr_rcu_domain_t, NULL for other kinds.
 */
typedef struct rr_handle_slot {
    uint64_t stamp;
    void *native;
} rr_handle_slot_t;

/* The handle table's shape: a handle's bits 31..8 index it, in segments of 1024 slots. */
#define RR_HANDLE_SEGMENT_SHIFT 10
#define RR_HANDLE_SEGMENTS 16384

/**
 * rr_handle_table() - the handle table: RR_HANDLE_SEGMENTS segment pointers, each NULL or a
 * segment of 1 << RR_HANDLE_SEGMENT_SHIFT slots. The table and its segments are never freed or
 * moved; a segment pointer, once set, never changes. Used by the RR_INLINE gate calls.
 * Return: the table; NULL only when its allocation failed.
 */
typedef rr_handle_slot_t *rr_handle_segment_t;
rr_handle_segment_t const *rr_handle_table(void);

/** rr_gate_create() - an open gate. Return: RR_OK; RR_EINVAL (NULL @out); RR_ENOMEM. */
int32_t rr_gate_create(rr_gate_t **out);

/**
 * rr_gate_enter() - enter a call (nestable). On RR_OK the caller must rr_gate_leave() on the
 * same thread. Return: RR_OK; RR_ENODEV (disconnected: fail the call); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_gate_enter(rr_gate_t *g);

/** rr_gate_leave() - leave a call. Return: RR_OK; RR_EINVAL (not inside a call); RR_EBADHANDLE. */
int32_t rr_gate_leave(rr_gate_t *g);

/**
 * rr_gate_disconnect() - refuse new calls at once, then wait until every call in flight has
 * left. Idempotent. Return: RR_OK (drained); RR_EDEADLK (called from inside a call: new calls are
 * refused but the calls in flight are not drained); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_gate_disconnect(rr_gate_t *g);

/**
 * rr_gate_destroy() - free the gate (its handle goes stale at once; the gate's domain is kept for
 * a later gate, see rr_gate_t). Calls racing the destroy get RR_ENODEV or RR_EBADHANDLE.
 * Return: RR_OK; RR_EBUSY (a call is in flight or entering: nothing changes, the gate stays as it
 * was, open or disconnected); RR_EINVAL; RR_EBADHANDLE (already destroyed, or being destroyed by
 * another thread).
 */
int32_t rr_gate_destroy(rr_gate_t *g);

/** rr_devres_t - a device's list of release actions (opaque). */
typedef struct rr_devres rr_devres_t;

/** rr_devres_create() - an empty list. Return: RR_OK; RR_EINVAL; RR_ENOMEM. */
int32_t rr_devres_create(rr_devres_t **out);

/**
 * rr_devres_destroy() - release every action (LIFO), then free the list.
 * @released: optional; receives the number of actions run.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_devres_destroy(rr_devres_t *d, uint32_t *released);

/** rr_devres_add_action() - run @action(@data) on release (devm_add_action). Return: RR_OK; RR_EINVAL; RR_EBADHANDLE; RR_ENOMEM. */
int32_t rr_devres_add_action(rr_devres_t *d, void (*action)(void *data), void *data);

/**
 * rr_devres_add_action_or_reset() - as rr_devres_add_action(), but if the action cannot be
 * registered it is run at once, so the resource is released exactly once either way.
 */
int32_t rr_devres_add_action_or_reset(rr_devres_t *d, void (*action)(void *data), void *data);

/** rr_devres_remove_action() - remove the newest (@action, @data) entry without running it. Return: RR_OK; RR_ENOENT; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_devres_remove_action(rr_devres_t *d, void (*action)(void *data), void *data);

/** rr_devres_release_action() - remove the newest (@action, @data) entry and run it now. Return: RR_OK; RR_ENOENT; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_devres_release_action(rr_devres_t *d, void (*action)(void *data), void *data);

/** rr_devres_open_group() - open a group; @id receives its id (never 0). Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_devres_open_group(rr_devres_t *d, uint64_t *id);

/** rr_devres_close_group() - close group @id (0: the newest open group). Return: RR_OK; RR_ENOENT; RR_EBADHANDLE. */
int32_t rr_devres_close_group(rr_devres_t *d, uint64_t id);

/** rr_devres_remove_group() - drop the group's markers (@id 0: the newest open group), keeping its resources on the list. Return: RR_OK; RR_ENOENT; RR_EBADHANDLE. */
int32_t rr_devres_remove_group(rr_devres_t *d, uint64_t id);

/**
 * rr_devres_release_group() - release every action between the group's markers (to the end of
 * the list while it is open), LIFO (roll back a failed step); @id 0 names the newest open group.
 * As the kernel's devres_release_group(): the markers of groups lying wholly inside that range
 * go with it (nested groups); a group that only overlaps it (opened inside and closed after, or
 * opened before and closed inside) keeps both markers and stays usable, and never covers actions
 * added after its own close. @released: optional count.
 * Return: RR_OK; RR_ENOENT; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_devres_release_group(rr_devres_t *d, uint64_t id, uint32_t *released);

/** rr_devres_release_all() - release everything, LIFO. @released: optional count. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_devres_release_all(rr_devres_t *d, uint32_t *released);

/* ---------------------------------------------------------------------------------------- */
/* MMIO windows: volatile register accessors with explicit endianness                       */
/* ---------------------------------------------------------------------------------------- */

/**
 * DOC: MMIO
 *
 * A window is a range of register space: plain memory (allocated by the library, or the
 * caller's own - an mmap, shared memory) or a device model whose callbacks see every access.
 * Accessors read and write 8/16/32/64 bits at an offset, with the byte order in the name:
 * le = little endian (readl/writel), be = big endian (ioread32be); ordered accessors keep
 * readX/writeX's guarantees (a read completes before later memory reads, a write waits for
 * earlier memory writes), _relaxed ones only keep accesses to the same window in order. Every
 * access is single, volatile and naturally aligned: never torn, merged, repeated or elided.
 * An offset out of bounds, overflowing or not naturally aligned gives RR_EINVAL and no access.
 */

/** rr_io_t - a window (layout read by the RR_INLINE accessors; never write it). */
typedef struct rr_io {
    uint32_t magic;
    uint32_t kind; /* 0: plain memory, 1: device callbacks */
    uint8_t *base;
    uint64_t size;
    uint64_t (*read)(void *ctx, uint64_t offset, int32_t width);
    void (*write)(void *ctx, uint64_t offset, int32_t width, uint64_t value);
    void *ctx;
    uint64_t owned;
    uint64_t reserved;
} rr_io_t;

#define RR_IO_8 1u
#define RR_IO_16 2u
#define RR_IO_32 4u
#define RR_IO_64 8u
#define RR_IO_BE 0x100u      /* big-endian value */
#define RR_IO_RELAXED 0x200u /* relaxed ordering */

/** rr_io_alloc() - a plain window over @size zeroed bytes (64-byte aligned), freed by rr_io_destroy(). Return: RR_OK; RR_EINVAL; RR_ENOMEM. */
int32_t rr_io_alloc(uint64_t size, rr_io_t **out);

/**
 * rr_io_wrap() - a plain window over the caller's memory (@base 8-byte aligned; kept mapped by
 * the caller until rr_io_destroy()). Return: RR_OK; RR_EINVAL (NULL, misaligned, empty, wraps); RR_ENOMEM.
 */
int32_t rr_io_wrap(void *base, uint64_t size, rr_io_t **out);

/**
 * rr_io_create_device() - a device window: every access calls @read(@ctx, offset, width) or
 * @write(@ctx, offset, width, value), width in bytes, value in little-endian bus order.
 * Return: RR_OK; RR_EINVAL; RR_ENOMEM.
 */
int32_t rr_io_create_device(uint64_t size, uint64_t (*read)(void *ctx, uint64_t offset, int32_t width),
                            void (*write)(void *ctx, uint64_t offset, int32_t width, uint64_t value),
                            void *ctx, rr_io_t **out);

/** rr_io_destroy() - free a window (and its memory when the library allocated it). Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_io_destroy(rr_io_t *io);

/**
 * rr_io_read() / rr_io_write() - one checked access; @flags = width in bytes | RR_IO_BE |
 * RR_IO_RELAXED. A value wider than the access is refused. Prefer the typed accessors below.
 * Return: RR_OK; RR_EINVAL (bad offset, width or value, an unknown flag bit; NULL @value);
 * RR_EBADHANDLE.
 */
int32_t rr_io_read(rr_io_t *io, uint64_t offset, uint32_t flags, uint64_t *value);
int32_t rr_io_write(rr_io_t *io, uint64_t offset, uint32_t flags, uint64_t value);

/* Typed accessors, e.g. rr_io_read_le32(io, 0x400, &v), rr_io_write_be16_relaxed(io, 8, v).
 * Under RR_INLINE a plain window is accessed directly; otherwise, and for device windows and
 * bad offsets, they call rr_io_read / rr_io_write (same checks, same results). */
#ifdef RR_INLINE
#define RR__IO_FAST(io, off, w) \
    ((io) != NULL && (io)->kind == 0 && (io)->magic == 0x31495252u && ((off) & ((w)-1)) == 0 && \
     (off) <= (io)->size && (io)->size - (off) >= (w))
#define RR__IO_BSWAP_1(v) (v)
#define RR__IO_BSWAP_2(v) __builtin_bswap16(v)
#define RR__IO_BSWAP_4(v) __builtin_bswap32(v)
#define RR__IO_BSWAP_8(v) __builtin_bswap64(v)
#define RR__IO_ACCESSORS(name, type, w, flags, be, order_r, order_w)                               \
    static inline int32_t rr_io_read_##name(rr_io_t *io, uint64_t off, type *out)                  \
    {                                                                                              \
        if (RR__UNLIKELY(out == NULL || !RR__IO_FAST(io, off, w))) {                               \
            uint64_t v = 0;                                                                        \
            int32_t s = rr_io_read(io, off, (flags), out ? &v : NULL);                             \
            if (out)                                                                               \
                *out = (type)v;                                                                    \
            return s;                                                                              \
        }                                                                                          \
        type v = __atomic_load_n((type *)(void *)(io->base + off), order_r);                       \
        *out = (be) ? (type)RR__IO_BSWAP_##w(v) : v; /* little-endian hosts (x86-64, arm64) */     \
        return RR_OK;                                                                              \
    }                                                                                              \
    static inline int32_t rr_io_write_##name(rr_io_t *io, uint64_t off, type value)                \
    {                                                                                              \
        if (RR__UNLIKELY(!RR__IO_FAST(io, off, w)))                                                \
            return rr_io_write(io, off, (flags), value);                                           \
        __atomic_store_n((type *)(void *)(io->base + off), (be) ? (type)RR__IO_BSWAP_##w(value) : value, order_w); \
        return RR_OK;                                                                              \
    }
#else
#define RR__IO_ACCESSORS(name, type, w, flags, be, order_r, order_w)                               \
    static inline int32_t rr_io_read_##name(rr_io_t *io, uint64_t off, type *out)                  \
    {                                                                                              \
        uint64_t v = 0;                                                                            \
        int32_t s = rr_io_read(io, off, (flags), out ? &v : NULL);                                 \
        if (out)                                                                                   \
            *out = (type)v;                                                                        \
        return s;                                                                                  \
    }                                                                                              \
    static inline int32_t rr_io_write_##name(rr_io_t *io, uint64_t off, type value)                \
    {                                                                                              \
        return rr_io_write(io, off, (flags), value);                                               \
    }
#endif
RR__IO_ACCESSORS(8, uint8_t, 1, RR_IO_8, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELEASE)
RR__IO_ACCESSORS(le16, uint16_t, 2, RR_IO_16, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELEASE)
RR__IO_ACCESSORS(le32, uint32_t, 4, RR_IO_32, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELEASE)
RR__IO_ACCESSORS(le64, uint64_t, 8, RR_IO_64, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELEASE)
RR__IO_ACCESSORS(be16, uint16_t, 2, RR_IO_16 | RR_IO_BE, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELEASE)
RR__IO_ACCESSORS(be32, uint32_t, 4, RR_IO_32 | RR_IO_BE, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELEASE)
RR__IO_ACCESSORS(be64, uint64_t, 8, RR_IO_64 | RR_IO_BE, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELEASE)
RR__IO_ACCESSORS(8_relaxed, uint8_t, 1, RR_IO_8 | RR_IO_RELAXED, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
RR__IO_ACCESSORS(le16_relaxed, uint16_t, 2, RR_IO_16 | RR_IO_RELAXED, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
RR__IO_ACCESSORS(le32_relaxed, uint32_t, 4, RR_IO_32 | RR_IO_RELAXED, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
RR__IO_ACCESSORS(le64_relaxed, uint64_t, 8, RR_IO_64 | RR_IO_RELAXED, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
RR__IO_ACCESSORS(be16_relaxed, uint16_t, 2, RR_IO_16 | RR_IO_BE | RR_IO_RELAXED, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
RR__IO_ACCESSORS(be32_relaxed, uint32_t, 4, RR_IO_32 | RR_IO_BE | RR_IO_RELAXED, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
RR__IO_ACCESSORS(be64_relaxed, uint64_t, 8, RR_IO_64 | RR_IO_BE | RR_IO_RELAXED, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)

/* ---------------------------------------------------------------------------------------- */
/* GPIO chips and the PL061                                                                 */
/* ---------------------------------------------------------------------------------------- */

/**
 * DOC: GPIO
 *
 * rr_gpio_chip_t is a GPIO chip with Linux's gpio_chip semantics (8 lines for the PL061). The
 * PL061 driver probes a window (a PL061 model, or any rr_io_t: a C device model or real mapped
 * registers), refuses anything that is not a PL061 (RR_ENODEV), and serves calls through a
 * call-draining gate and revocable hardware: after rr_gpio_remove() returns no register is
 * touched again and every call answers RR_ENODEV. Line numbers out of range and invalid
 * triggers give RR_EINVAL.
 *
 * Interrupt handlers have the kernel's request_irq / free_irq / synchronize_irq lifetimes
 * (kernel/irq/manage.c). A chip runs its handlers one at a time, on the thread that raised the
 * parent interrupt (rr_pl061_model_set_input(), rr_gpio_interrupt(), or a chip call whose
 * register write raised it) or, when another thread is already dispatching the chip's
 * interrupts, on that thread; raising an interrupt never waits for a handler. When
 * rr_gpio_remove(), rr_gpio_destroy() of the last reference, or an rr_gpio_set_irq_handler()
 * that clears or replaces a handler returns, the old handler is not running and will not start
 * again: its context may be freed. From inside one of the chip's handlers those calls would
 * wait for themselves: they return RR_EDEADLK and change nothing (the handler may still call
 * every other function, including installing a handler on a free line or re-arming its own).
 *
 * Misbehaving lines are handled as in kernel/irq/spurious.c: an interrupt on a line with trigger
 * RR_GPIO_IRQ_NONE (the PL061 still latches falling edges there) calls no handler and counts as
 * spurious (Linux handle_bad_irq); a level line whose handler returns with the level still
 * asserted 64 times in a row is disabled - left masked - counted, and reported once on stderr
 * ("nobody cared"), until rr_gpio_set_irq_handler() or rr_gpio_set_irq_type() re-arms it.
 * rr_gpio_irq_stats() reads the counters.
 */
typedef struct rr_gpio_chip rr_gpio_chip_t;
typedef struct rr_pl061_model rr_pl061_model_t;

#define RR_GPIO_DIRECTION_OUT 0
#define RR_GPIO_DIRECTION_IN 1
/* NONE: the line's trigger registers back to 0 (as at reset); it does not mask the interrupt,
 * which only rr_gpio_set_irq_handler(NULL) does. */
#define RR_GPIO_IRQ_NONE 0
#define RR_GPIO_IRQ_EDGE_RISING 1
#define RR_GPIO_IRQ_EDGE_FALLING 2
#define RR_GPIO_IRQ_EDGE_BOTH 3
#define RR_GPIO_IRQ_LEVEL_HIGH 4
#define RR_GPIO_IRQ_LEVEL_LOW 8

/** rr_gpio_irq_stats_t - a line's interrupt counters (rr_gpio_irq_stats). */
typedef struct rr_gpio_irq_stats {
    uint64_t handled;        /* interrupts handed to the line's handler */
    uint64_t spurious;       /* interrupts no handler was called for: trigger NONE, or no handler */
    uint64_t stuck_disables; /* times the line was disabled as stuck ("nobody cared") */
    uint32_t disabled;       /* 1 while the line is disabled as stuck, else 0 */
    uint32_t reserved;       /* 0 */
} rr_gpio_irq_stats_t;

/** rr_pl061_model_create() - a register-accurate PL061 model (pins driven by the host). Return: RR_OK; RR_EINVAL; RR_ENOMEM. */
int32_t rr_pl061_model_create(rr_pl061_model_t **out);

/** rr_pl061_model_destroy() - free a model (remove chips probed on it first). Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_pl061_model_destroy(rr_pl061_model_t *model);

/** rr_pl061_model_set_input() - drive input pin @line (0..7) to @level; ignored while the line is an output. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_pl061_model_set_input(rr_pl061_model_t *model, int32_t line, bool level);

/** rr_pl061_model_outputs() - the levels the model drives on its output lines. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_pl061_model_outputs(rr_pl061_model_t *model, uint8_t *outputs);

/**
 * rr_pl061_probe_model() - probe the PL061 driver on @model, its interrupt connected.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE; RR_ENOMEM.
 */
int32_t rr_pl061_probe_model(rr_pl061_model_t *model, rr_gpio_chip_t **out);

/**
 * rr_pl061_probe_io() - probe the PL061 driver on any window (at least 4 KiB). Feed the parent
 * interrupt line in with rr_gpio_interrupt().
 * Return: RR_OK; RR_EINVAL (window too small); RR_ENODEV (not a PL061); RR_EBADHANDLE.
 */
int32_t rr_pl061_probe_io(rr_io_t *io, rr_gpio_chip_t **out);

/** rr_gpio_get_direction() - RR_GPIO_DIRECTION_OUT or _IN. Return: RR_OK; RR_EINVAL; RR_ENODEV; RR_EBADHANDLE. */
int32_t rr_gpio_get_direction(rr_gpio_chip_t *chip, int32_t line, int32_t *direction);

/** rr_gpio_direction_input() - make @line an input. Return: as above. */
int32_t rr_gpio_direction_input(rr_gpio_chip_t *chip, int32_t line);

/** rr_gpio_direction_output() - make @line an output driving @value (value, direction, value again). Return: as above. */
int32_t rr_gpio_direction_output(rr_gpio_chip_t *chip, int32_t line, bool value);

/** rr_gpio_get() - the level of @line. Return: as above. */
int32_t rr_gpio_get(rr_gpio_chip_t *chip, int32_t line, bool *value);

/** rr_gpio_set() - drive output @line. Return: as above. */
int32_t rr_gpio_set(rr_gpio_chip_t *chip, int32_t line, bool value);

/**
 * rr_gpio_set_irq_type() - an RR_GPIO_IRQ_* trigger; level and edge together are refused (RR_EINVAL).
 * With RR_GPIO_IRQ_NONE (the default) interrupts on the line call no handler and count as
 * spurious. Re-arms a line disabled as stuck. Never waits; callable from a handler.
 * Return: as above.
 */
int32_t rr_gpio_set_irq_type(rr_gpio_chip_t *chip, int32_t line, int32_t type);

/**
 * rr_gpio_set_irq_handler() - call @fn(@ctx, line) when @line's interrupt fires and unmask it;
 * @fn NULL masks it. Handlers run as the DOC above says: one at a time per chip, on the raising
 * or dispatching thread. An edge line is acked before @fn runs; a level line is masked and acked,
 * @fn runs (it must quiet the source), then it is unmasked. Clearing or replacing a handler waits
 * for a running call of the old one (free_irq): when it returns, the old @ctx may be freed.
 * Setting the same @fn and @ctx again is a re-arm: it never waits, and re-enables a line disabled
 * as stuck.
 * Return: as above; RR_EDEADLK (nothing changed) when called from inside one of the chip's
 * handlers to clear or replace a handler.
 */
int32_t rr_gpio_set_irq_handler(rr_gpio_chip_t *chip, int32_t line, void (*fn)(void *ctx, int32_t line), void *ctx);

/**
 * rr_gpio_irq_stats() - @line's interrupt counters into @out: interrupts handled, spurious ones
 * (no handler called), times disabled as stuck, and whether it is disabled now. Software state:
 * still readable after rr_gpio_remove().
 * Return: RR_OK; RR_EINVAL (bad @line, NULL @out); RR_EBADHANDLE.
 */
int32_t rr_gpio_irq_stats(rr_gpio_chip_t *chip, int32_t line, rr_gpio_irq_stats_t *out);

/**
 * rr_gpio_interrupt() - the chip's parent interrupt line changed (for chips probed with
 * rr_pl061_probe_io): call it on each change of the line's level, with the new level.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_gpio_interrupt(rr_gpio_chip_t *chip, bool asserted);

/** rr_gpio_suspend() / rr_gpio_resume() - save and restore the registers. Return: as above. */
int32_t rr_gpio_suspend(rr_gpio_chip_t *chip);
int32_t rr_gpio_resume(rr_gpio_chip_t *chip);

/**
 * rr_gpio_remove() - hot-unplug: refuse new calls, wait for calls in flight - running interrupt
 * handlers included - revoke the hardware, release the driver's resources; later calls answer
 * RR_ENODEV. When it returns no handler is running and none will start. Idempotent.
 * Return: RR_OK; RR_EDEADLK (from inside one of the chip's handlers: nothing changed); RR_EINVAL;
 * RR_EBADHANDLE.
 */
int32_t rr_gpio_remove(rr_gpio_chip_t *chip);

/**
 * rr_gpio_chip_get() - take another reference to @chip for another user (a consumer that may
 * outlive the code that probed it). Each reference is given back with rr_gpio_destroy().
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_gpio_chip_get(rr_gpio_chip_t *chip);

/**
 * rr_gpio_destroy() - give back a reference. The last one removes the device if it is still
 * there and frees the chip; until then other users keep a valid handle (answering RR_ENODEV once
 * removed). From inside one of the chip's handlers every reference is refused with RR_EDEADLK
 * (nothing changed), so the answer does not depend on which user lets go last.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE; RR_EDEADLK; as rr_gpio_remove() for the last one.
 */
int32_t rr_gpio_destroy(rr_gpio_chip_t *chip);

/* ---------------------------------------------------------------------------------------- */
/* Virtio split virtqueue (virtio 1.x 2.7): driver side, device side, doorbell               */
/* ---------------------------------------------------------------------------------------- */

/*
 * A queue lives in a guest-memory region (rr_guestmem_t): one native block addressed by
 * guest-physical addresses from gpa_base. The driver side carves its ring from the region and
 * hands the three part addresses (rr_vq_rings) to the device side. Every address either side
 * takes from the other is bounds-checked against the region; nothing outside it is touched.
 * Each side distrusts the other: a protocol violation returns RR_EIO and breaks the queue
 * (rr_vq_*_error() says what), until both sides are reset.
 * Threading: one thread drives a queue's driver side, one thread its device side (they may be
 * different threads); a side's calls must not run concurrently with each other.
 */

/** Descriptor flags and ring flags (little-endian fields in guest memory). */
#define RR_VRING_DESC_F_NEXT 1
#define RR_VRING_DESC_F_WRITE 2
#define RR_VRING_DESC_F_INDIRECT 4
#define RR_VRING_AVAIL_F_NO_INTERRUPT 1
#define RR_VRING_USED_F_NO_NOTIFY 1
/** Feature bits for the @features arguments. */
#define RR_VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define RR_VIRTIO_F_EVENT_IDX (1ull << 29)
/** The largest queue size. */
#define RR_VQ_MAX_SIZE 32768
/** Device policy for malformed chains: break the queue (default, as vhost/QEMU) or return RR_EBADMSG. */
#define RR_VQ_MALFORMED_BREAK 0
#define RR_VQ_MALFORMED_RETURN_EMPTY 1

/**
 * rr_vring_need_event() - the event-index test (vring_need_event): true iff @event_idx lies in
 * [@old_idx, @new_idx) of the 16-bit index space, i.e. moving the index from old to new passed
 * the point where the peer asked to be notified. Correct across the 65535 -> 0 wrap.
 */
static inline int rr_vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/** rr_guestmem_t - a guest-memory region (opaque). */
typedef struct rr_guestmem rr_guestmem_t;
/** rr_vq_driver_t - the driver side of a queue (opaque). */
typedef struct rr_vq_driver rr_vq_driver_t;
/** rr_vq_device_t - the device side of a queue (opaque). */
typedef struct rr_vq_device rr_vq_device_t;
/** rr_doorbell_t - a spin-then-block notification between two threads (opaque). */
typedef struct rr_doorbell rr_doorbell_t;

/** rr_vq_buf_t - one buffer of a chain: guest-physical address and length. */
typedef struct rr_vq_buf {
    uint64_t gpa;
    uint32_t len;
    uint32_t reserved; /* must be 0: anything else is refused with RR_EINVAL (kept for later use) */
} rr_vq_buf_t;

/** rr_vq_rings_t - where a queue's parts are (guest-physical), as the driver tells the device. */
typedef struct rr_vq_rings {
    uint32_t size;     /* N, a power of two up to 32768 */
    uint32_t reserved; /* must be 0: anything else is refused with RR_EINVAL (kept for later use) */
    uint64_t desc;     /* descriptor table, 16-byte aligned */
    uint64_t avail;    /* available ring, 2-byte aligned */
    uint64_t used;     /* used ring, 4-byte aligned */
} rr_vq_rings_t;

/** rr_vq_chain_t - a chain the device took from the available ring. */
typedef struct rr_vq_chain {
    uint16_t head;           /* the id to give back with rr_vq_device_add_used() */
    uint16_t reserved;
    uint32_t n_readable;     /* readable segments (they come first) */
    uint32_t n_writable;     /* writable segments */
    uint32_t readable_bytes;
    uint32_t writable_bytes;
} rr_vq_chain_t;

/**
 * rr_guestmem_create() - allocate a zeroed region of @size bytes (1 .. 2^40) at guest address
 * @gpa_base (4 KiB aligned; the region may not wrap the 64-bit space).
 * Return: RR_OK; RR_EINVAL; RR_ENOMEM.
 */
int32_t rr_guestmem_create(uint64_t size, uint64_t gpa_base, rr_guestmem_t **out);

/** rr_guestmem_destroy() - free the region. Return: RR_OK; RR_EBUSY while a queue side is attached; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_guestmem_destroy(rr_guestmem_t *mem);

/**
 * rr_guestmem_translate() - the host address of [@gpa, @gpa + @len), so a host can fill or read
 * buffers. Return: RR_OK; RR_EINVAL if any byte lies outside the region (*@out_host = NULL);
 * RR_EBADHANDLE.
 */
int32_t rr_guestmem_translate(rr_guestmem_t *mem, uint64_t gpa, uint64_t len, void **out_host);

/**
 * rr_guestmem_alloc() - carve @size zeroed bytes aligned to @align (a power of two, at most 4096)
 * from the region; lives as long as the region. Return: RR_OK; RR_EINVAL; RR_ENOSPC; RR_EBADHANDLE.
 */
int32_t rr_guestmem_alloc(rr_guestmem_t *mem, uint64_t size, uint64_t align, uint64_t *out_gpa);

/**
 * rr_vq_driver_create() - a driver-side queue of @size entries in @mem, ring carved from it.
 * @features: RR_VIRTIO_F_* bits negotiated with the device.
 * @indirect_max: 0, or (with RR_VIRTIO_F_INDIRECT_DESC) the entries of the indirect table kept
 *                per descriptor, at most @size: chains of 2 .. @indirect_max buffers then use
 *                one descriptor.
 * Return: RR_OK; RR_EINVAL (size not a power of two up to 32768, @indirect_max above @size or
 * given without RR_VIRTIO_F_INDIRECT_DESC); RR_ENOSPC
 * (region too small); RR_EBADHANDLE.
 */
int32_t rr_vq_driver_create(rr_guestmem_t *mem, uint32_t size, uint64_t features, uint32_t indirect_max, rr_vq_driver_t **out);

/** rr_vq_driver_destroy() - detach from the region and free. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_vq_driver_destroy(rr_vq_driver_t *vq);

/** rr_vq_driver_rings() - the part addresses to give the device side. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_vq_driver_rings(rr_vq_driver_t *vq, rr_vq_rings_t *out);

/**
 * rr_vq_driver_add() - stage a chain: @bufs[0 .. @n_readable) device-readable, then @n_writable
 * device-writable buffers, each inside the region, 2^32 - 1 bytes in all at most. @token comes
 * back from rr_vq_driver_get_used(). The device sees it after rr_vq_driver_publish().
 * Return: RR_OK; RR_ENOSPC (too few free descriptors: collect used chains first); RR_EINVAL
 * (no buffers, more than N, a buffer outside the region, a reserved field not 0); RR_EIO;
 * RR_EBADHANDLE.
 */
int32_t rr_vq_driver_add(rr_vq_driver_t *vq, const rr_vq_buf_t *bufs, uint32_t n_readable, uint32_t n_writable, uint64_t token);

/**
 * rr_vq_driver_add_chains() - rr_vq_driver_add() for @chains chains in one call: chain i takes
 * @n_readable[i] + @n_writable[i] entries of @bufs (chains laid out one after the other) and
 * @tokens[i]. Stops at the first chain that cannot be added; *@out_added says how many were.
 * Return: RR_OK (all added); otherwise the status of the chain that failed (RR_ENOSPC, RR_EINVAL,
 * RR_EIO); RR_EBADHANDLE.
 */
int32_t rr_vq_driver_add_chains(rr_vq_driver_t *vq, const rr_vq_buf_t *bufs, const uint32_t *n_readable, const uint32_t *n_writable,
                                const uint64_t *tokens, uint32_t chains, uint32_t *out_added);

/**
 * rr_vq_driver_get_used_batch() - rr_vq_driver_get_used() up to @cap times in one call: tokens and
 * lengths into @tokens[0 .. *@out_n) and @lens[...]. Each entry is validated as by
 * rr_vq_driver_get_used(). Return: RR_OK (*@out_n >= 1, or @cap == 0); RR_ENOENT (nothing to
 * collect); RR_EIO (broken; the entries collected before it are in the arrays); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_driver_get_used_batch(rr_vq_driver_t *vq, uint64_t *tokens, uint32_t *lens, uint32_t cap, uint32_t *out_n);

/**
 * rr_vq_driver_publish() - make staged chains visible (one release store of avail.idx).
 * @out_notify: NULL for polling devices (no fence, no decision); otherwise receives 1 when the
 *              device must be notified (EVENT_IDX: avail_event passed; else NO_NOTIFY clear).
 * Return: RR_OK; RR_EIO; RR_EBADHANDLE.
 */
int32_t rr_vq_driver_publish(rr_vq_driver_t *vq, int32_t *out_notify);

/**
 * rr_vq_driver_get_used() - collect the next chain the device returned. The entry is validated
 * (used index within what is in flight, id < N and a head in flight, length <= the chain's
 * writable bytes) before anything is believed.
 * Return: RR_OK with its token and length; RR_ENOENT (nothing to collect); RR_EIO (broken);
 * RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_driver_get_used(rr_vq_driver_t *vq, uint64_t *out_token, uint32_t *out_len);

/**
 * rr_vq_driver_enable_cb() - ask the device for notifications again. @out_pending (optional)
 * receives 1 when used chains are already waiting: collect them before sleeping.
 */
int32_t rr_vq_driver_enable_cb(rr_vq_driver_t *vq, int32_t *out_pending);

/** rr_vq_driver_disable_cb() - ask the device not to notify (polling). */
int32_t rr_vq_driver_disable_cb(rr_vq_driver_t *vq);

/** rr_vq_driver_detach_unused() - teardown: reclaim one chain the device still holds. Return: RR_OK with its token; RR_ENOENT when none is left. */
int32_t rr_vq_driver_detach_unused(rr_vq_driver_t *vq, uint64_t *out_token);

/** rr_vq_driver_reset() - back to the initial state (not broken, all free, indices 0); reset the device side too. */
int32_t rr_vq_driver_reset(rr_vq_driver_t *vq);

/** rr_vq_driver_error() - copy why the queue broke (NUL-terminated, truncated to @cap). Return: RR_OK; RR_ENOENT if not broken; RR_EINVAL. */
int32_t rr_vq_driver_error(rr_vq_driver_t *vq, char *buf, uint32_t cap);

/**
 * rr_vq_device_create() - the device side over the rings at @rings in @mem (each part checked:
 * aligned, inside the region; @rings->reserved 0). @policy: RR_VQ_MALFORMED_BREAK or
 * RR_VQ_MALFORMED_RETURN_EMPTY.
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_device_create(rr_guestmem_t *mem, const rr_vq_rings_t *rings, uint64_t features, uint32_t policy, rr_vq_device_t **out);

/** rr_vq_device_destroy() - detach from the region and free. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_vq_device_destroy(rr_vq_device_t *vq);

/**
 * rr_vq_device_pop() - take the next available chain and validate it whole: indices in range,
 * no loop, at most N descriptors, readable before writable, indirect tables well formed,
 * every buffer inside the region.
 * Return: RR_OK; RR_ENOENT (nothing available); RR_EBADMSG (policy RETURN_EMPTY: malformed,
 * give @out->head back with length 0); RR_EIO (broken); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_device_pop(rr_vq_device_t *vq, rr_vq_chain_t *out);

/**
 * rr_vq_device_pop_batch() - rr_vq_device_pop() up to @cap times in one call (one transition
 * into the library instead of one per chain): the chains go to @out[0 .. *@out_n), each taken and
 * validated as by rr_vq_device_pop() and held until given back. Reach a chain's buffers by its
 * head (rr_vq_device_chain_read() / _write() / _segment()); rr_vq_device_read() / _write() see
 * the last one. The batch ends at the first chain that is not plainly valid.
 * Return: RR_OK (*@out_n >= 1, or @cap == 0); RR_ENOENT (nothing available); RR_EBADMSG (policy
 * RETURN_EMPTY: the last entry, @out[*@out_n - 1], is malformed: give it back with length 0);
 * RR_EIO (broken; the entries before it are valid and held); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_device_pop_batch(rr_vq_device_t *vq, rr_vq_chain_t *out, uint32_t cap, uint32_t *out_n);

/**
 * rr_vq_device_read() - copy the last popped chain's readable bytes into @dst (at most @cap);
 * *@out_len = bytes copied (0 when no chain is popped). Once that chain is given back with
 * rr_vq_device_add_used() its buffers belong to the driver again (it may already reuse them).
 * Return: RR_OK; RR_ENOENT (the chain was already given back: nothing read, *@out_len = 0);
 * RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_device_read(rr_vq_device_t *vq, void *dst, uint32_t cap, uint32_t *out_len);

/**
 * rr_vq_device_write() - copy @len bytes into the last popped chain's writable buffers (as many
 * as fit); *@out_written = bytes written (0 when no chain is popped).
 * Return: RR_OK; RR_ENOENT (the chain was already given back with rr_vq_device_add_used():
 * nothing written, *@out_written = 0); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_device_write(rr_vq_device_t *vq, const void *src, uint32_t len, uint32_t *out_written);

/**
 * rr_vq_device_add_used() - return chain @head with @len bytes written (at most its writable
 * bytes); visible after rr_vq_device_publish(). Return: RR_OK; RR_EINVAL (not a chain this
 * device holds, or @len too large); RR_EIO; RR_EBADHANDLE.
 */
int32_t rr_vq_device_add_used(rr_vq_device_t *vq, uint32_t head, uint32_t len);

/**
 * rr_vq_device_add_used_batch() - rr_vq_device_add_used() for @count chains in one call; stops at
 * the first refused entry (*@out_added says how many were written). Return: RR_OK; as
 * rr_vq_device_add_used() for the entry that failed.
 */
int32_t rr_vq_device_add_used_batch(rr_vq_device_t *vq, const uint32_t *heads, const uint32_t *lens, uint32_t count, uint32_t *out_added);

/** rr_vq_device_publish() - publish used entries; @out_notify as for rr_vq_driver_publish() (used_event / NO_INTERRUPT). */
int32_t rr_vq_device_publish(rr_vq_device_t *vq, int32_t *out_notify);

/** rr_vq_device_enable_notify() - ask the driver to kick again; @out_pending (optional): 1 if chains are already available. */
int32_t rr_vq_device_enable_notify(rr_vq_device_t *vq, int32_t *out_pending);

/** rr_vq_device_disable_notify() - ask the driver not to kick (polling). */
int32_t rr_vq_device_disable_notify(rr_vq_device_t *vq);

/** rr_vq_device_reset() - forget indices and held chains; clears the broken state. */
int32_t rr_vq_device_reset(rr_vq_device_t *vq);

/** rr_vq_device_error() - why the queue broke, or why the last chain was malformed. Return: RR_OK; RR_ENOENT if neither; RR_EINVAL. */
int32_t rr_vq_device_error(rr_vq_device_t *vq, char *buf, uint32_t cap);

/** rr_doorbell_create() - a doorbell whose waiter polls @spin times before blocking. Return: RR_OK; RR_EINVAL; RR_ENOMEM. */
int32_t rr_doorbell_create(uint32_t spin, rr_doorbell_t **out);

/** rr_doorbell_destroy() - free it (no thread may be waiting). */
int32_t rr_doorbell_destroy(rr_doorbell_t *bell);

/** rr_doorbell_ring() - ring it: wakes the waiter, or the next wait returns at once. Any thread. */
int32_t rr_doorbell_ring(rr_doorbell_t *bell);

/** rr_doorbell_wait() - wait up to @timeout_ms (-1: forever) for a ring. One waiter at a time. Return: RR_OK; RR_ENOENT on timeout; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_doorbell_wait(rr_doorbell_t *bell, int32_t timeout_ms);

/* ---------------------------------------------------------------------------------------- */
/* Virtqueue back-ends: guest memory of several regions, queues configured after creation,  */
/* chains held by head                                                                       */
/* ---------------------------------------------------------------------------------------- */

/*
 * A device back-end in its own process (vhost-user; QEMU docs/interop/vhost-user.rst) does not
 * own guest memory: the front-end sends regions as file descriptors, each naming guest-physical
 * addresses (descriptors) and the front-end's own user addresses (ring addresses). An
 * rr_guestmap_t holds such regions. Every address the driver gives is translated through it and
 * checked (no byte outside a region is ever touched); a buffer that crosses into an adjacent
 * region is split into segments. A region removed while a held chain or a started ring still
 * points into it stays mapped until they let go (RCU grace period + per-region reference count).
 *
 * A device queue created on a map (rr_vq_device_create_on_map) starts stopped: set its size, ring
 * addresses, features and indices, then rr_vq_device_start(). rr_vq_device_stop() drops held
 * chains and keeps the indices (to restart where it stopped, e.g. after a reconnect). Every chain
 * popped stays held - its segments addressable by head - until rr_vq_device_add_used(): hold many,
 * complete them in any order. The single-region queues of rr_vq_device_create() support the same
 * calls. Threading as for the other queue calls: one thread at a time per queue; map calls are
 * thread-safe.
 */

/** rr_guestmap_t - guest memory of several regions (opaque). */
typedef struct rr_guestmap rr_guestmap_t;

/** rr_guestmap_region_t - one region, laid out like a vhost-user memory region description. */
typedef struct rr_guestmap_region {
    uint64_t gpa;         /* first guest-physical address */
    uint64_t size;        /* bytes, non-zero; the region may not wrap either address space */
    uint64_t user_addr;   /* the front-end's address of the first byte (ring addresses use these) */
    uint64_t mmap_offset; /* offset of the first byte in the descriptor's file (rr_guestmap_add_fd) */
} rr_guestmap_region_t;

/** rr_vq_segment_t - one translated buffer (or part of one) of a held chain. */
typedef struct rr_vq_segment {
    void *host;     /* host address; valid while the chain is held */
    uint32_t len;
    uint32_t flags; /* RR_VQ_SEGMENT_WRITABLE */
} rr_vq_segment_t;

/** rr_vq_state_t - a device queue's state (rr_vq_device_state). */
typedef struct rr_vq_state {
    uint32_t size;          /* configured size (N) */
    uint32_t max_size;
    uint16_t next_avail;    /* the next available index the device consumes (GET_VRING_BASE) */
    uint16_t next_used;     /* the next used index it writes */
    uint16_t ring_used_idx; /* used.idx as the ring holds it (0 while stopped) */
    uint16_t reserved;
    uint32_t held;          /* chains popped and not returned */
    uint32_t flags;         /* RR_VQ_STATE_* */
} rr_vq_state_t;

#define RR_VQ_SEGMENT_WRITABLE 1u
#define RR_VQ_STATE_READY 1u   /* started */
#define RR_VQ_STATE_ENABLED 2u
#define RR_VQ_STATE_BROKEN 4u
/** Address spaces of rr_vq_device_set_rings(). */
#define RR_VQ_ADDR_GUEST 0u    /* guest-physical */
#define RR_VQ_ADDR_USER 1u     /* the front-end's user addresses (maps only) */

/**
 * rr_guestmap_create() - an empty map holding at most @max_regions (1 .. 4096) regions.
 * Return: RR_OK; RR_EINVAL; RR_ENOMEM.
 */
int32_t rr_guestmap_create(uint32_t max_regions, rr_guestmap_t **out);

/**
 * rr_guestmap_destroy() - remove every region (each unmapped once nothing pins it) and free the map.
 * Return: RR_OK; RR_EBUSY while a queue created on it exists; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_guestmap_destroy(rr_guestmap_t *map);

/**
 * rr_guestmap_add_fd() - map [@region->mmap_offset, +@region->size) of @fd MAP_SHARED read/write
 * and add it. The descriptor is not consumed (close it when you like; the mapping stays). A file
 * smaller than offset + size, or a descriptor that cannot be mapped (a pipe, a socket, a
 * character device), is refused: touching a mapping past the end of its file would fault.
 * Return: RR_OK; RR_EINVAL (bad region, overlap with another region in either address space, the
 * descriptor); RR_ENOSPC (map full); RR_ENOMEM; RR_EBADHANDLE.
 */
int32_t rr_guestmap_add_fd(rr_guestmap_t *map, const rr_guestmap_region_t *region, int32_t fd);

/**
 * rr_guestmap_add_host() - add memory the host lends: @region->size bytes at @host.
 * @release: called once with @ctx when the region is gone and nothing uses it any more (also at
 *           once when the call fails); may be NULL. The memory must stay valid until then.
 * Return: as rr_guestmap_add_fd().
 */
int32_t rr_guestmap_add_host(rr_guestmap_t *map, const rr_guestmap_region_t *region, void *host,
                             void (*release)(void *ctx), void *ctx);

/**
 * rr_guestmap_remove() - remove the region with this guest address and size (and user address,
 * unless 0). Held chains and started rings that use it keep it mapped until they are done.
 * Return: RR_OK; RR_ENOENT (no such region); RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_guestmap_remove(rr_guestmap_t *map, uint64_t gpa, uint64_t size, uint64_t user_addr);

/** rr_guestmap_read() - copy guest memory at @gpa (may span adjacent regions). Return: RR_OK; RR_EINVAL (a byte outside every region); RR_EBADHANDLE. */
int32_t rr_guestmap_read(rr_guestmap_t *map, uint64_t gpa, void *dst, uint64_t len);

/** rr_guestmap_write() - copy into guest memory at @gpa. Return: as rr_guestmap_read(). */
int32_t rr_guestmap_write(rr_guestmap_t *map, uint64_t gpa, const void *src, uint64_t len);

/** rr_guestmap_count() - regions in the table, and (optional) removed ones still pinned. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_guestmap_count(rr_guestmap_t *map, uint32_t *out_regions, uint32_t *out_pending);

/**
 * rr_vq_device_create_on_map() - a stopped device queue in @map of at most @max_size entries (a
 * power of two up to 32768). @features, @policy as for rr_vq_device_create().
 * Return: RR_OK; RR_EINVAL; RR_EBADHANDLE.
 */
int32_t rr_vq_device_create_on_map(rr_guestmap_t *map, uint32_t max_size, uint64_t features, uint32_t policy, rr_vq_device_t **out);

/** rr_vq_device_set_size() - the ring size (stopped only). Return: RR_OK; RR_EINVAL (not a power of two up to max_size); RR_EBUSY (started); RR_EBADHANDLE. */
int32_t rr_vq_device_set_size(rr_vq_device_t *vq, uint32_t size);

/**
 * rr_vq_device_set_rings() - size and part addresses (stopped only); @space: RR_VQ_ADDR_GUEST, or
 * RR_VQ_ADDR_USER for a queue on a map. Checked by rr_vq_device_start().
 * Return: RR_OK; RR_EINVAL (bad size or space, reserved not 0); RR_EBUSY; RR_EBADHANDLE.
 */
int32_t rr_vq_device_set_rings(rr_vq_device_t *vq, const rr_vq_rings_t *rings, uint32_t space);

/** rr_vq_device_set_features() - RR_VIRTIO_F_* the queue uses (stopped only). Return: RR_OK; RR_EBUSY; RR_EBADHANDLE. */
int32_t rr_vq_device_set_features(rr_vq_device_t *vq, uint64_t features);

/** rr_vq_device_set_indices() - next available index to consume, next used index to write (stopped only). Return: RR_OK; RR_EBUSY; RR_EBADHANDLE. */
int32_t rr_vq_device_set_indices(rr_vq_device_t *vq, uint16_t next_avail, uint16_t next_used);

/**
 * rr_vq_device_start() - start on the configured rings: each part aligned and inside one region
 * (pinned until stop); clears the broken state. On failure the reason goes to @err (@cap bytes,
 * NUL-terminated; may be NULL with @cap 0).
 * Return: RR_OK; RR_EINVAL; RR_EBUSY (already started); RR_EBADHANDLE.
 */
int32_t rr_vq_device_start(rr_vq_device_t *vq, char *err, uint32_t cap);

/** rr_vq_device_stop() - stop: held chains dropped (not returned), rings unpinned, indices kept. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_vq_device_stop(rr_vq_device_t *vq);

/** rr_vq_device_set_enabled() - 0: take no new chains (held ones may still be completed); 1: take them. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_vq_device_set_enabled(rr_vq_device_t *vq, int32_t enabled);

/**
 * rr_vq_device_sync_used() - continue writing used entries at the ring's own used.idx (started,
 * nothing held): what a back-end that takes over a ring does. Return: RR_OK; RR_EBUSY; RR_EBADHANDLE.
 */
int32_t rr_vq_device_sync_used(rr_vq_device_t *vq);

/** rr_vq_device_state() - the queue's state. Return: RR_OK; RR_EINVAL; RR_EBADHANDLE. */
int32_t rr_vq_device_state(rr_vq_device_t *vq, rr_vq_state_t *out);

/** rr_vq_device_chain() - the shape of held chain @head. Return: RR_OK; RR_EINVAL (not held); RR_EBADHANDLE. */
int32_t rr_vq_device_chain(rr_vq_device_t *vq, uint32_t head, rr_vq_chain_t *out);

/**
 * rr_vq_device_chain_segment() - segment @index of held chain @head (readable ones first): a
 * bounded span of guest memory, valid - zero copy - while the chain is held.
 * Return: RR_OK; RR_ENOENT (@index past the last segment); RR_EINVAL (not held); RR_EBADHANDLE.
 */
int32_t rr_vq_device_chain_segment(rr_vq_device_t *vq, uint32_t head, uint32_t index, rr_vq_segment_t *out);

/**
 * rr_vq_device_chain_read() - copy readable bytes of held chain @head from byte @offset (counted
 * across its readable segments) into @dst; *@out_len = bytes copied (short at the end).
 * Return: RR_OK; RR_EINVAL (not held, @offset past the readable bytes); RR_EBADHANDLE.
 */
int32_t rr_vq_device_chain_read(rr_vq_device_t *vq, uint32_t head, uint32_t offset, void *dst, uint32_t cap, uint32_t *out_len);

/** rr_vq_device_chain_write() - copy @len bytes into the writable bytes of held chain @head from byte @offset; as rr_vq_device_chain_read(). */
int32_t rr_vq_device_chain_write(rr_vq_device_t *vq, uint32_t head, uint32_t offset, const void *src, uint32_t len, uint32_t *out_written);

/* ---------------------------------------------------------------------------------------- */
/* Heap diagnostics                                                                         */
/* ---------------------------------------------------------------------------------------- */

/**
 * rr_heap_live_count() - objects allocated by the library (Arc allocations, ...) and not yet
 * freed. At a clean shutdown it returns to the value it had before the program created
 * anything: a higher value means a reference was leaked.
 */
int64_t rr_heap_live_count(void);

/**
 * rr_debug_live_handles() - opaque handles (rr_gate_t, rr_devres_t, rr_gpio_chip_t,
 * rr_pl061_model_t, rr_guestmem_t, rr_guestmap_t, rr_vq_driver_t, rr_vq_device_t, rr_doorbell_t) created and
 * not yet destroyed. 0 at a clean shutdown.
 */
int64_t rr_debug_live_handles(void);

/**
 * rr_debug_report_leaks() - the leak report: when handles are still live, prints one line to
 * stderr naming how many of each kind (and the native blocks still allocated).
 * Return: the number of live handles (0: nothing leaked); a negative value is -rr_status.
 */
int64_t rr_debug_report_leaks(void);

/**
 * rr_debug_set_poison() - debugging aids for use-after-free hunting.
 * @poison:     fill every freed block with 0xDB (the environment variable RR_POISON=1 sets it
 *              at load time).
 * @quarantine: keep freed blocks mapped (poisoned) instead of releasing them, so that a stale
 *              handle is always refused with RR_EBADHANDLE and a stale read sees the poison.
 *              Memory then grows until rr_debug_release_quarantine().
 * Return: RR_OK.
 */
int32_t rr_debug_set_poison(bool poison, bool quarantine);

/**
 * rr_debug_release_quarantine() - release every quarantined block.
 * Return: the number of blocks released.
 */
int64_t rr_debug_release_quarantine(void);

/* ---------------------------------------------------------------------------------------- */
/* RR_INLINE: static inline fast paths (same layout, same semantics)                        */
/* ---------------------------------------------------------------------------------------- */

#ifdef RR_INLINE

#if !defined(__GNUC__) && !defined(__clang__)
#error "RR_INLINE needs GCC or Clang (__atomic builtins)"
#endif


/* A pointer the library would refuse: the exported function then handles (and reports) it. */
static inline bool rr__refcount_bad_ptr(const rr_refcount_t *r)
{
    return RR__UNLIKELY(((uintptr_t)r & 3u) != 0 || r == NULL);
}

/* Wrapping addition without signed-overflow undefined behaviour. */
static inline int32_t rr__wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t rr__wrap_sub(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

static inline void rr__inline_refcount_set(rr_refcount_t *r, int32_t n)
{
    if (rr__refcount_bad_ptr(r)) {
        (rr_refcount_set)(r, n);
        return;
    }
    __atomic_store_n(&r->refs, n, __ATOMIC_RELAXED);
}

static inline int32_t rr__inline_refcount_read(const rr_refcount_t *r)
{
    if (rr__refcount_bad_ptr(r))
        return (rr_refcount_read)(r);
    return __atomic_load_n(&r->refs, __ATOMIC_RELAXED);
}

static inline void rr__inline_refcount_add(int32_t i, rr_refcount_t *r)
{
    if (rr__refcount_bad_ptr(r)) {
        (rr_refcount_add)(i, r);
        return;
    }
    int32_t old = __atomic_fetch_add(&r->refs, i, __ATOMIC_RELAXED);
    if (RR__UNLIKELY(old <= 0 || rr__wrap_add(old, i) < 0))
        rr_refcount_warn_saturate(r, old == 0 ? RR_REFCOUNT_ADD_UAF : RR_REFCOUNT_ADD_OVF);
}

static inline void rr__inline_refcount_inc(rr_refcount_t *r)
{
    rr__inline_refcount_add(1, r);
}

static inline bool rr__inline_refcount_add_not_zero(int32_t i, rr_refcount_t *r)
{
    if (rr__refcount_bad_ptr(r))
        return (rr_refcount_add_not_zero)(i, r);
    int32_t old = __atomic_load_n(&r->refs, __ATOMIC_RELAXED);
    do {
        if (old == 0)
            break;
    } while (!__atomic_compare_exchange_n(&r->refs, &old, rr__wrap_add(old, i), false,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    if (RR__UNLIKELY(old < 0 || rr__wrap_add(old, i) < 0))
        rr_refcount_warn_saturate(r, RR_REFCOUNT_ADD_NOT_ZERO_OVF);
    return old != 0;
}

static inline bool rr__inline_refcount_inc_not_zero(rr_refcount_t *r)
{
    return rr__inline_refcount_add_not_zero(1, r);
}

static inline bool rr__inline_refcount_sub_and_test(int32_t i, rr_refcount_t *r)
{
    if (rr__refcount_bad_ptr(r))
        return (rr_refcount_sub_and_test)(i, r);
    int32_t old = __atomic_fetch_sub(&r->refs, i, __ATOMIC_RELEASE);
    if (old == i && old > 0) {
        /* Pairs with the release of every other owner's decrement: the free sees their accesses. */
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        return true;
    }
    if (RR__UNLIKELY(old <= 0 || rr__wrap_sub(old, i) < 0))
        rr_refcount_warn_saturate(r, RR_REFCOUNT_SUB_UAF);
    return false;
}

static inline bool rr__inline_refcount_dec_and_test(rr_refcount_t *r)
{
    return rr__inline_refcount_sub_and_test(1, r);
}

static inline void rr__inline_refcount_dec(rr_refcount_t *r)
{
    if (rr__refcount_bad_ptr(r)) {
        (rr_refcount_dec)(r);
        return;
    }
    int32_t old = __atomic_fetch_sub(&r->refs, 1, __ATOMIC_RELEASE);
    if (RR__UNLIKELY(old <= 1))
        rr_refcount_warn_saturate(r, RR_REFCOUNT_DEC_LEAK);
}

static inline bool rr__inline_refcount_dec_if_one(rr_refcount_t *r)
{
    if (rr__refcount_bad_ptr(r))
        return (rr_refcount_dec_if_one)(r);
    int32_t expected = 1;
    return __atomic_compare_exchange_n(&r->refs, &expected, 0, false, __ATOMIC_RELEASE,
                                       __ATOMIC_RELAXED);
}

static inline bool rr__inline_refcount_dec_not_one(rr_refcount_t *r)
{
    if (rr__refcount_bad_ptr(r))
        return (rr_refcount_dec_not_one)(r);
    uint32_t val = (uint32_t)__atomic_load_n(&r->refs, __ATOMIC_RELAXED);
    for (;;) {
        if (val == (uint32_t)RR_REFCOUNT_SATURATED)
            return true;
        if (val == 1)
            return false;
        uint32_t next = val - 1;
        if (RR__UNLIKELY(next > val)) {
            rr_refcount_warn_saturate(r, RR_REFCOUNT_DEC_NOT_ONE_UNDERFLOW);
            return true;
        }
        int32_t expected = (int32_t)val;
        if (__atomic_compare_exchange_n(&r->refs, &expected, (int32_t)next, false,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            return true;
        val = (uint32_t)expected;
    }
}

/* Function-like macros: &rr_refcount_inc still names the exported function. */
#define rr_refcount_set(r, n) rr__inline_refcount_set((r), (n))
#define rr_refcount_read(r) rr__inline_refcount_read((r))
#define rr_refcount_add(i, r) rr__inline_refcount_add((i), (r))
#define rr_refcount_inc(r) rr__inline_refcount_inc((r))
#define rr_refcount_add_not_zero(i, r) rr__inline_refcount_add_not_zero((i), (r))
#define rr_refcount_inc_not_zero(r) rr__inline_refcount_inc_not_zero((r))
#define rr_refcount_sub_and_test(i, r) rr__inline_refcount_sub_and_test((i), (r))
#define rr_refcount_dec_and_test(r) rr__inline_refcount_dec_and_test((r))
#define rr_refcount_dec(r) rr__inline_refcount_dec((r))
#define rr_refcount_dec_if_one(r) rr__inline_refcount_dec_if_one((r))
#define rr_refcount_dec_not_one(r) rr__inline_refcount_dec_not_one((r))

/* Arc fast paths: validate like the library (NULL, alignment, magic), then the refcount
 * fast path; anything unusual goes to the exported function, which reports it. */
static inline bool rr__arc_ok(const void *payload)
{
    return ((uintptr_t)payload & 15u) == 0 && payload != NULL &&
           __atomic_load_n(&RR_ARC_HEADER(payload)->magic, __ATOMIC_RELAXED) == RR_ARC_MAGIC;
}

static inline int32_t rr__inline_arc_clone(const void *payload)
{
    if (RR__UNLIKELY(!rr__arc_ok(payload)))
        return (rr_arc_clone)(payload);
    rr__inline_refcount_inc(&RR_ARC_HEADER(payload)->strong);
    return RR_OK;
}

static inline int32_t rr__inline_arc_drop(void *payload)
{
    if (RR__UNLIKELY(!rr__arc_ok(payload)))
        return (rr_arc_drop)(payload);
    if (rr__inline_refcount_dec_and_test(&RR_ARC_HEADER(payload)->strong))
        return rr_arc_drop_slow(payload);
    return RR_OK;
}

static inline int32_t rr__inline_weak_upgrade(rr_weak_t w, void **out)
{
    rr_arc_header_t *h = (rr_arc_header_t *)(w.bits & ~(uintptr_t)1);
    if (RR__UNLIKELY((w.bits & 15u) != 1u || out == NULL ||
                     __atomic_load_n(&h->magic, __ATOMIC_RELAXED) != RR_ARC_MAGIC))
        return (rr_weak_upgrade)(w, out);
    int32_t old = __atomic_load_n(&h->strong.refs, __ATOMIC_RELAXED);
    do {
        if (old <= 0) { /* gone, owned uniquely, or saturated: never handed out */
            *out = NULL;
            return RR_OK;
        }
        if (RR__UNLIKELY(old == RR_REFCOUNT_MAX))
            return (rr_weak_upgrade)(w, out); /* the library pins and warns */
    } while (!__atomic_compare_exchange_n(&h->strong.refs, &old, old + 1, false,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    /* Pairs with the full barrier of the destroying drop's flag store: a positive count on a
     * destroyed object exists only through misuse, and is never handed out. */
    if (RR__UNLIKELY(__atomic_load_n(&h->flags, __ATOMIC_SEQ_CST) & RR_ARC_F_DESTROYED)) {
        rr_refcount_warn_saturate(&h->strong, RR_REFCOUNT_ADD_UAF);
        *out = NULL;
        return RR_OK;
    }
    *out = (void *)((char *)h + RR_ARC_HEADER_SIZE);
    return RR_OK;
}

#define rr_arc_clone(p) rr__inline_arc_clone((p))
#define rr_arc_drop(p) rr__inline_arc_drop((p))
#define rr_weak_upgrade(w, out) rr__inline_weak_upgrade((w), (out))

/* RCU read side: the thread's record is cached per translation unit; the first lock in a
 * domain (or after switching domains) asks the library for it. */
#ifdef __cplusplus
#define RR__THREAD_LOCAL thread_local
#else
#define RR__THREAD_LOCAL _Thread_local
#endif
static RR__THREAD_LOCAL rr_rcu_domain_t *rr__rcu_tls_domain;
static RR__THREAD_LOCAL uint32_t rr__rcu_tls_id;
static RR__THREAD_LOCAL rr_rcu_reader_t *rr__rcu_tls_reader;

/* The cache is keyed by address and by the domain's process-unique id, so a new domain that
 * happens to reuse a destroyed one's address never inherits its (freed) reader record. */
static inline rr_rcu_reader_t *rr__rcu_reader(rr_rcu_domain_t *d)
{
    if (RR__UNLIKELY(rr__rcu_tls_domain != d ||
                     rr__rcu_tls_id != __atomic_load_n(&d->id, __ATOMIC_RELAXED))) {
        rr_rcu_reader_t *r = NULL;
        if (rr_rcu_reader(d, &r) != RR_OK)
            return NULL;
        rr__rcu_tls_reader = r;
        rr__rcu_tls_id = __atomic_load_n(&d->id, __ATOMIC_RELAXED);
        rr__rcu_tls_domain = d;
    }
    return rr__rcu_tls_reader;
}

/* Enter and leave on a thread's own record (the read side of every inline section). */
static inline void rr__rcu_record_enter(rr_rcu_domain_t *d, rr_rcu_reader_t *r)
{
    uint64_t c = __atomic_load_n(&r->ctr, __ATOMIC_RELAXED);
    uint64_t entered = (c & RR_RCU_NEST_MASK) == 0 ? __atomic_load_n(&d->gp_ctr, __ATOMIC_RELAXED)
                                                   : c + RR_RCU_NEST_ONE;
    __atomic_store_n(&r->ctr, entered, __ATOMIC_RELAXED);
    /* Compiler barrier: the record store stays before the section's loads; the writer's
     * process-wide barrier supplies the hardware fence (liburcu memb). */
    __asm__ __volatile__("" ::: "memory");
}

/* False (nothing changed) when the thread is not inside a section of the record's domain. */
static inline bool rr__rcu_record_leave(rr_rcu_reader_t *r)
{
    uint64_t c = __atomic_load_n(&r->ctr, __ATOMIC_RELAXED);
    if (RR__UNLIKELY((c & RR_RCU_NEST_MASK) == 0))
        return false;
    __asm__ __volatile__("" ::: "memory");
    __atomic_store_n(&r->ctr, c - RR_RCU_NEST_ONE, __ATOMIC_RELAXED);
    return true;
}

static inline int32_t rr__inline_rcu_read_lock(rr_rcu_domain_t *d)
{
    if (RR__UNLIKELY(d == NULL))
        return (rr_rcu_read_lock)(d); /* reports RR_EINVAL */
    rr_rcu_reader_t *r = rr__rcu_reader(d);
    if (RR__UNLIKELY(r == NULL))
        return (rr_rcu_read_lock)(d);
    rr__rcu_record_enter(d, r);
    return RR_OK;
}

static inline int32_t rr__inline_rcu_read_unlock(rr_rcu_domain_t *d)
{
    if (RR__UNLIKELY(d == NULL))
        return (rr_rcu_read_unlock)(d);
    rr_rcu_reader_t *r = rr__rcu_reader(d);
    if (RR__UNLIKELY(r == NULL || !rr__rcu_record_leave(r)))
        return (rr_rcu_read_unlock)(d); /* not in a section: the library reports RR_EINVAL */
    return RR_OK;
}

#define rr_rcu_read_lock(d) rr__inline_rcu_read_lock((d))
#define rr_rcu_read_unlock(d) rr__inline_rcu_read_unlock((d))

/* Revocable access on the inline RCU read side. */
static inline void *rr__inline_revocable_try_access(rr_revocable_t *r)
{
    if (RR__UNLIKELY(r == NULL || ((uintptr_t)r & 15u) != 0 ||
                     __atomic_load_n(&r->magic, __ATOMIC_RELAXED) != 0x31565252u))
        return (rr_revocable_try_access)(r);
    if (RR__UNLIKELY(rr__inline_rcu_read_lock(r->domain) != RR_OK))
        return (rr_revocable_try_access)(r);
    void *p = RR_RCU_DEREFERENCE(r->resource);
    if (p == NULL)
        rr__inline_rcu_read_unlock(r->domain);
    return p;
}

static inline int32_t rr__inline_revocable_release(rr_revocable_t *r)
{
    if (RR__UNLIKELY(r == NULL || ((uintptr_t)r & 15u) != 0 ||
                     __atomic_load_n(&r->magic, __ATOMIC_RELAXED) != 0x31565252u))
        return (rr_revocable_release)(r);
    return rr__inline_rcu_read_unlock(r->domain);
}

#define rr_revocable_try_access(r) rr__inline_revocable_try_access((r))
#define rr_revocable_release(r) rr__inline_revocable_release((r))

/* Gate calls: the handle is checked in the handle table (never dereferenced), the gate's domain
 * is entered, then the handle is checked again: a gate destroyed meanwhile (its domain is never
 * freed) is noticed and the section undone. Disconnect and destroy order their flag or claim
 * before their scan with a process-wide barrier, as a grace period does, so the compiler barrier
 * below is all the ordering the caller needs. Everything else goes to the library. */
static rr_handle_segment_t const *rr__handle_table_cache;

static inline rr_handle_slot_t *rr__gate_slot(const rr_gate_t *g, uint64_t *stamp)
{
    uint64_t h = (uint64_t)(uintptr_t)g;
    if (RR__UNLIKELY((h & 0xffu) != 0x1bu)) /* kind 1 (gate) << 4 | tag 0xb */
        return NULL;
    rr_handle_segment_t const *t = __atomic_load_n(&rr__handle_table_cache, __ATOMIC_ACQUIRE);
    if (RR__UNLIKELY(t == NULL)) {
        t = rr_handle_table();
        if (t == NULL)
            return NULL;
        __atomic_store_n(&rr__handle_table_cache, t, __ATOMIC_RELEASE);
    }
    uint32_t index = (uint32_t)(h >> 8) & 0xffffffu;
    rr_handle_slot_t *seg = __atomic_load_n(&t[index >> RR_HANDLE_SEGMENT_SHIFT], __ATOMIC_ACQUIRE);
    if (RR__UNLIKELY(seg == NULL))
        return NULL;
    *stamp = (h & 0xffffffff00000000ull) | 1u; /* the live, unclaimed stamp of this handle */
    return &seg[index & ((1u << RR_HANDLE_SEGMENT_SHIFT) - 1u)];
}

static inline int32_t rr__inline_gate_enter(rr_gate_t *g)
{
    uint64_t stamp = 0;
    rr_handle_slot_t *s = rr__gate_slot(g, &stamp);
    if (RR__UNLIKELY(s == NULL || __atomic_load_n(&s->stamp, __ATOMIC_ACQUIRE) != stamp))
        return (rr_gate_enter)(g); /* NULL, made-up, stale, claimed: the library reports it */
    rr_rcu_domain_t *d = (rr_rcu_domain_t *)__atomic_load_n(&s->native, __ATOMIC_ACQUIRE);
    if (RR__UNLIKELY(d == NULL))
        return (rr_gate_enter)(g);
    rr_rcu_reader_t *r = rr__rcu_reader(d);
    if (RR__UNLIKELY(r == NULL))
        return (rr_gate_enter)(g);
    rr__rcu_record_enter(d, r);
    if (RR__UNLIKELY(__atomic_load_n(&s->stamp, __ATOMIC_RELAXED) != stamp)) {
        rr__rcu_record_leave(r);
        return (rr_gate_enter)(g); /* destroyed or being destroyed meanwhile */
    }
    if (RR__UNLIKELY((__atomic_load_n(&d->gate_word, __ATOMIC_RELAXED) & 3u) != 0)) {
        rr__rcu_record_leave(r);
        return RR_ENODEV; /* disconnected */
    }
    return RR_OK;
}

static inline int32_t rr__inline_gate_leave(rr_gate_t *g)
{
    uint64_t stamp = 0;
    rr_handle_slot_t *s = rr__gate_slot(g, &stamp);
    if (RR__UNLIKELY(s == NULL || __atomic_load_n(&s->stamp, __ATOMIC_ACQUIRE) != stamp))
        return (rr_gate_leave)(g);
    rr_rcu_domain_t *d = (rr_rcu_domain_t *)__atomic_load_n(&s->native, __ATOMIC_ACQUIRE);
    /* The second look: the domain read in between is this handle's. */
    if (RR__UNLIKELY(d == NULL || __atomic_load_n(&s->stamp, __ATOMIC_RELAXED) != stamp))
        return (rr_gate_leave)(g);
    rr_rcu_reader_t *r = rr__rcu_reader(d);
    if (RR__UNLIKELY(r == NULL))
        return (rr_gate_leave)(g);
    if (RR__UNLIKELY(!rr__rcu_record_leave(r)))
        return (rr_gate_leave)(g); /* not inside a call: the library reports RR_EINVAL */
    return RR_OK;
}

#define rr_gate_enter(g) rr__inline_gate_enter((g))
#define rr_gate_leave(g) rr__inline_gate_leave((g))

#endif /* RR_INLINE */

#ifdef __cplusplus
} /* extern "C" */
#endif

/* Layout pins: the library and every host agree on these. */
#ifdef __cplusplus
static_assert(sizeof(rr_refcount_t) == 4, "rr_refcount_t is one int32_t");
static_assert(alignof(rr_refcount_t) == 4, "rr_refcount_t is 4-byte aligned");
#else
_Static_assert(sizeof(rr_refcount_t) == 4, "rr_refcount_t is one int32_t");
_Static_assert(_Alignof(rr_refcount_t) == 4, "rr_refcount_t is 4-byte aligned");
#endif
#ifdef __cplusplus
static_assert(sizeof(rr_arc_header_t) == RR_ARC_HEADER_SIZE, "Arc header is 48 bytes");
static_assert(offsetof(rr_arc_header_t, magic) == 8, "Arc header layout");
static_assert(offsetof(rr_arc_header_t, dtor) == 24, "Arc header layout");
static_assert(offsetof(rr_arc_header_t, flags) == 40, "Arc header layout");
static_assert(sizeof(rr_weak_t) == sizeof(uintptr_t), "rr_weak_t is one word");
#else
_Static_assert(sizeof(rr_arc_header_t) == RR_ARC_HEADER_SIZE, "Arc header is 48 bytes");
_Static_assert(offsetof(rr_arc_header_t, magic) == 8, "Arc header layout");
_Static_assert(offsetof(rr_arc_header_t, dtor) == 24, "Arc header layout");
_Static_assert(offsetof(rr_arc_header_t, flags) == 40, "Arc header layout");
_Static_assert(sizeof(rr_weak_t) == sizeof(uintptr_t), "rr_weak_t is one word");
#endif
#ifdef __cplusplus
static_assert(sizeof(rr_rcu_domain_t) == 128 && offsetof(rr_rcu_domain_t, gp_ctr) == 64 && offsetof(rr_rcu_domain_t, gate_word) == 16, "RCU domain layout");
static_assert(sizeof(rr_handle_slot_t) == 16 && offsetof(rr_handle_slot_t, native) == 8, "handle slot layout");
static_assert(sizeof(rr_rcu_reader_t) == 64, "RCU reader layout");
#else
_Static_assert(sizeof(rr_rcu_domain_t) == 128 && offsetof(rr_rcu_domain_t, gp_ctr) == 64 && offsetof(rr_rcu_domain_t, gate_word) == 16, "RCU domain layout");
_Static_assert(sizeof(rr_handle_slot_t) == 16 && offsetof(rr_handle_slot_t, native) == 8, "handle slot layout");
_Static_assert(sizeof(rr_rcu_reader_t) == 64, "RCU reader layout");
#endif
#ifdef __cplusplus
static_assert(sizeof(rr_revocable_t) == 48 && offsetof(rr_revocable_t, resource) == 16, "revocable layout");
#else
_Static_assert(sizeof(rr_revocable_t) == 48 && offsetof(rr_revocable_t, resource) == 16, "revocable layout");
#endif
#ifdef __cplusplus
static_assert(sizeof(rr_io_t) == 64 && offsetof(rr_io_t, base) == 8 && offsetof(rr_io_t, size) == 16, "io layout");
#else
_Static_assert(sizeof(rr_io_t) == 64 && offsetof(rr_io_t, base) == 8 && offsetof(rr_io_t, size) == 16, "io layout");
#endif

#ifdef __cplusplus
static_assert(sizeof(rr_gpio_irq_stats_t) == 32 && offsetof(rr_gpio_irq_stats_t, stuck_disables) == 16 && offsetof(rr_gpio_irq_stats_t, disabled) == 24, "gpio irq stats layout");
#else
_Static_assert(sizeof(rr_gpio_irq_stats_t) == 32 && offsetof(rr_gpio_irq_stats_t, stuck_disables) == 16 && offsetof(rr_gpio_irq_stats_t, disabled) == 24, "gpio irq stats layout");
#endif

#ifdef __cplusplus
static_assert(sizeof(rr_vq_buf_t) == 16 && sizeof(rr_vq_rings_t) == 32 && sizeof(rr_vq_chain_t) == 20, "virtqueue struct layouts");
#else
_Static_assert(sizeof(rr_vq_buf_t) == 16 && sizeof(rr_vq_rings_t) == 32 && sizeof(rr_vq_chain_t) == 20, "virtqueue struct layouts");
#endif

#ifdef __cplusplus
static_assert(sizeof(rr_guestmap_region_t) == 32 && sizeof(rr_vq_segment_t) == 16 && sizeof(rr_vq_state_t) == 24, "back-end struct layouts");
#else
_Static_assert(sizeof(rr_guestmap_region_t) == 32 && sizeof(rr_vq_segment_t) == 16 && sizeof(rr_vq_state_t) == 24, "back-end struct layouts");
#endif

#endif /* REFRUNTIME_H */
