// Outcome codes shared by Core, the C ABI (rr_status in include/refruntime.h) and the managed
// layer (which turns them into exceptions). Values are part of the C ABI: add, never renumber.

namespace RefRuntime.Core;

/// <summary>The outcome of a Core operation that validates its input; the C ABI's <c>rr_status</c>.</summary>
public enum RrStatus
{
    /// <summary><c>RR_OK</c>: success.</summary>
    Ok = 0,

    /// <summary><c>RR_EINVAL</c>: an argument was NULL, misaligned or out of range; nothing changed.</summary>
    InvalidArgument = 1,

    /// <summary><c>RR_ENOMEM</c>: an allocation failed; nothing changed.</summary>
    OutOfMemory = 2,

    /// <summary><c>RR_EINTERNAL</c>: an unexpected internal error was caught at the boundary.</summary>
    Internal = 3,

    /// <summary>
    /// <c>RR_EBADHANDLE</c>: the pointer or handle is not a live RefRuntime object of the expected
    /// kind (wrong magic: never created, already freed, or a weak reference where a strong one was
    /// expected, or the reverse); nothing changed.
    /// </summary>
    BadHandle = 4,

    /// <summary>
    /// <c>RR_EDEADLK</c>: the call would wait for itself (a grace period requested inside a
    /// read-side section of the same domain, a barrier from one of the domain's callbacks); nothing
    /// was done.
    /// </summary>
    WouldDeadlock = 5,

    /// <summary><c>RR_EBUSY</c>: the object is in use (a domain destroyed while a reader is inside a section); nothing was done.</summary>
    Busy = 6,

    /// <summary><c>RR_ENODEV</c>: the resource was revoked or the device disconnected ("no device").</summary>
    NoDevice = 7,

    /// <summary>
    /// <c>RR_ENOENT</c>: no matching entry (a devres action or group that is not on the list); for a
    /// virtqueue: nothing to take or collect, or no chain to read or write (already returned).
    /// </summary>
    NotFound = 8,

    /// <summary>
    /// <c>RR_EIO</c>: the queue is broken: the other side of a virtqueue broke the protocol (an id
    /// out of range, a used index that jumps, a malformed chain under the breaking policy). Every
    /// later call on the queue answers this until it is reset.
    /// </summary>
    Broken = 9,

    /// <summary><c>RR_ENOSPC</c>: no room (too few free descriptors); reclaim used buffers and retry. Nothing changed.</summary>
    NoSpace = 10,

    /// <summary>
    /// <c>RR_EBADMSG</c>: a malformed descriptor chain was consumed from the ring; the queue stays
    /// usable, and the chain's head must be returned with a used length of 0.
    /// </summary>
    Malformed = 11,
}
