// Arc/Weak over native memory: Rust std's Arc/Weak semantics with the kernel Arc's saturation
// instead of abort. One algorithm for both doors: the C ABI (rr_arc_*, rr_weak_*) and the managed
// Arc<T>/Weak<T>. Spec: docs/arc.md (Rust library/alloc/src/sync.rs, Linux rust/kernel/sync/arc.rs).
//
// Counts. Strong and weak are refcount_t words (Refcount), so every bad transition saturates and
// warns; a saturated object is leaked, never freed while in use, never wrapped. As in std, the
// strong owners together hold one implicit weak, so the allocation outlives the payload's
// destructor until the last weak reference (implicit or explicit) goes.
//
//   drop (strong)    dec_and_test(strong) -> destructor(payload, ctx) -> drop_weak
//   drop_weak        dec_and_test(weak)   -> poison header (magic = dead) -> free
//   clone            inc(strong)                     (caller holds a strong reference)
//   downgrade        CAS loop inc(weak), waits out the is_unique lock
//   upgrade          CAS loop inc(strong) from a positive, unsaturated count, then checks
//                    the destroyed flag (never from 0: once the destructor has started,
//                    upgrade fails)
//
// Death is a flag, not a count. The thread whose drop took strong to 0 sets
// ArcHeader.Flags.Destroyed before the destructor runs. A count alone cannot say "dead": a
// caller's extra drop or clone after the destructor moves strong from 0 to Saturated (or, for the
// instant before the fix-up store, to 1), and Saturated is also what an overflow leaves on a live
// object. So every path that gives out a strong reference or treats the object as live checks the
// flag as well as the count: upgrade refuses a saturated count outright (the object is leaked and
// may already be destroyed: a strong reference cannot be handed out safely) and re-checks the
// flag after its increment; the unique-ownership checks need strong == 0 *and* the flag clear;
// a second drop_slow finds the flag set and does nothing. What stays best effort is a misuse that
// races the legitimate last drop itself (an extra drop landing between the 1 -> 0 decrement and
// the flag store): the same window the kernel's refcount_t leaves, documented in SECURITY.md.
//
// is_unique (std's get_mut check) must lock out downgrade while it reads the strong count: std
// CASes weak 1 -> usize::MAX, a value that under refcount_t rules reads as negative, i.e. as a
// saturated count. Here the lock value is WeakLocked = int.MinValue, distinct from Saturated
// (int.MinValue / 2), and downgrade - the only operation that can meet it (the lock is taken
// only while weak == 1, i.e. while no Weak exists, so nobody can clone or drop a Weak) - checks
// for it explicitly before its saturation handling. A transient int.MinValue from a racing
// overflow (INT_MAX + 1 before the fix-up store) also makes downgrade wait, briefly, until the
// fix-up lands.
//
// Handles. A strong reference is the payload pointer (16-aligned). A weak reference is the
// header address with bit 0 set, so neither can be mistaken for the other: a weak passed as a
// strong is misaligned, a strong passed as a weak lacks the tag. Every entry from outside
// validates the header magic: NULL, a foreign pointer or a freed object (while its memory still
// holds the poisoned header) is refused with BadHandle instead of being dereferenced further.

using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;
using RefRuntime.Core.Memory;

namespace RefRuntime.Core.Sync;

/// <summary>Arc/Weak operations on native objects (see file comment).</summary>
public static unsafe class RawArc
{
    /// <summary>Header magic of a live object ("RRA1").</summary>
    public const uint MagicLive = 0x3141_5252;

    /// <summary>Header magic written when the allocation is freed.</summary>
    public const uint MagicDead = 0xDEAD_A5C0;

    /// <summary>Size of <see cref="ArcHeader"/>; the payload starts this far after the header.</summary>
    public const int HeaderSize = 48;

    /// <summary>The smallest payload alignment (also makes bit 0 of a header address free for the weak tag).</summary>
    public const int MinAlignment = 16;

    /// <summary>Largest payload alignment accepted.</summary>
    public const int MaxAlignment = 4096;

    /// <summary>The weak count while <see cref="IsUnique"/> holds its lock; never a count, never <see cref="Refcount.Saturated"/>.</summary>
    public const int WeakLocked = int.MinValue;

    /// <summary>Bit 0 of a weak handle: set on every non-empty weak handle.</summary>
    public const nuint WeakTag = 1;

    /// <summary>
    /// <see cref="ArcHeader.Flags"/> bit set, once, by the drop that runs the destructor
    /// (<c>RR_ARC_F_DESTROYED</c>); never cleared while the allocation lives.
    /// </summary>
    public const ulong FlagDestroyed = 1;

    /// <summary>
    /// Creates an object with strong = 1 and weak = 1 (the implicit weak): a zeroed payload of
    /// <paramref name="size"/> bytes aligned to <paramref name="align"/>.
    /// </summary>
    /// <param name="size">Payload bytes (0 allowed).</param>
    /// <param name="align">Payload alignment: a power of two up to <see cref="MaxAlignment"/>; values below 16 are raised to 16.</param>
    /// <param name="destructor">Called once as <c>destructor(payload, context)</c> when the last strong reference goes; may be null.</param>
    /// <param name="context">Passed to <paramref name="destructor"/>.</param>
    /// <param name="payload">The payload pointer: the caller's strong reference.</param>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/> (alignment or size), or <see cref="RrStatus.OutOfMemory"/>.</returns>
    public static RrStatus Create(nuint size, nuint align, delegate* unmanaged<void*, void*, void> destructor, void* context, out void* payload)
    {
        payload = null;
        if (align == 0 || (align & (align - 1)) != 0 || align > MaxAlignment)
        {
            return RrStatus.InvalidArgument;
        }

        nuint a = align < MinAlignment ? MinAlignment : align;
        // The payload offset: the header size rounded up to the payload alignment.
        nuint payloadOffset = (HeaderSize + a - 1) & ~(a - 1);
        if (size > (nuint)int.MaxValue - payloadOffset)
        {
            return RrStatus.InvalidArgument;
        }

        nuint total = payloadOffset + size;
        byte* block = (byte*)NativeHeap.AllocZeroed(total, a);
        if (block == null)
        {
            return RrStatus.OutOfMemory;
        }

        // SAFETY: payloadOffset >= HeaderSize, so the header lies inside the fresh block.
        ArcHeader* h = (ArcHeader*)(block + payloadOffset - HeaderSize);
        // INVARIANT: strong = 1 (the caller), weak = 1 (the implicit weak), magic live.
        h->Strong = 1;
        h->Weak = 1;
        h->BaseOffset = (uint)(payloadOffset - HeaderSize);
        h->Size = size;
        h->Destructor = destructor;
        h->Context = context;
        // ORDERING: the release store publishes the initialised header before the payload pointer
        // can reach another thread through the caller's own publication.
        Volatile.Write(ref h->Magic, MagicLive);
        payload = block + payloadOffset;
        return RrStatus.Ok;
    }

    /// <summary>The header of a payload pointer. No validation: see <see cref="TryGetHeader"/>.</summary>
    /// <param name="payload">A payload pointer.</param>
    /// <returns>The header address.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ArcHeader* DangerousHeader(void* payload) => (ArcHeader*)((byte*)payload - HeaderSize);

    /// <summary>
    /// Validates a strong handle (payload pointer): non-NULL, 16-aligned, and the header magic
    /// says live.
    /// </summary>
    /// <param name="payload">The handle.</param>
    /// <param name="header">Its header on success.</param>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/> for NULL, <see cref="RrStatus.BadHandle"/> otherwise.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static RrStatus TryGetHeader(void* payload, out ArcHeader* header)
    {
        header = null;
        if (payload == null)
        {
            return RrStatus.InvalidArgument;
        }

        if (((nuint)payload & (MinAlignment - 1)) != 0)
        {
            return RrStatus.BadHandle; // not ours, or a weak handle passed as a strong one
        }

        ArcHeader* h = DangerousHeader(payload);
        // SAFETY: best effort by design: a pointer that passed the alignment test is read 48 bytes
        // back for its magic. For our own live objects that is the header; for a freed one it is
        // the poisoned header while the memory stays mapped; a foreign pointer is refused unless
        // it happens to carry our magic at that spot.
        if (Volatile.Read(ref h->Magic) != MagicLive)
        {
            return RrStatus.BadHandle;
        }

        header = h;
        return RrStatus.Ok;
    }

    /// <summary>Validates a weak handle; the empty handle (0) is valid and yields a null header.</summary>
    /// <param name="weak">The handle.</param>
    /// <param name="header">Its header, or null for the empty handle.</param>
    /// <returns><see cref="RrStatus.Ok"/> or <see cref="RrStatus.BadHandle"/>.</returns>
    public static RrStatus TryGetWeakHeader(nuint weak, out ArcHeader* header)
    {
        header = null;
        if (weak == 0)
        {
            return RrStatus.Ok;
        }

        if ((weak & (MinAlignment - 1)) != WeakTag)
        {
            return RrStatus.BadHandle; // untagged: a strong handle or a foreign pointer
        }

        ArcHeader* h = (ArcHeader*)(weak & ~WeakTag);
        // SAFETY: as in TryGetHeader: a best-effort magic check of a well-formed handle.
        if (Volatile.Read(ref h->Magic) != MagicLive)
        {
            return RrStatus.BadHandle;
        }

        header = h;
        return RrStatus.Ok;
    }

    /// <summary>The payload of a header.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* Payload(ArcHeader* h) => (byte*)h + HeaderSize;

    /// <summary>The weak handle of a header (tagged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nuint WeakHandle(ArcHeader* h) => (nuint)h | WeakTag;

    /// <summary>Takes another strong reference (<c>Arc::clone</c>).</summary>
    /// <remarks><b>Safety:</b> the caller holds a strong reference to <paramref name="h"/>.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Clone(ArcHeader* h) => Refcount.Inc(ref h->Strong);

    /// <summary>Drops a strong reference; the last one runs the destructor, then drops the implicit weak.</summary>
    /// <remarks><b>Safety:</b> the caller owns the strong reference it drops and does not use it afterwards.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Drop(ArcHeader* h)
    {
        if (Refcount.DecAndTest(ref h->Strong))
        {
            DropSlow(h);
        }
    }

    /// <summary>
    /// The last strong reference is gone (strong is 0): mark the object destroyed, run the
    /// destructor, then release the implicit weak. Exported to C as the slow path of the inline drop.
    /// </summary>
    /// <remarks><b>Safety:</b> called by the thread whose dec_and_test took strong to 0 (or the unique owner).</remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void DropSlow(ArcHeader* h)
    {
        bool first = TryMarkDestroyed(h);
        Debug.Assert(first, "DropSlow runs once per object");
        if (first)
        {
            RunDestructorAndRelease(h);
        }
    }

    /// <summary>
    /// Claims the destruction: sets <see cref="FlagDestroyed"/> and reports whether this call set
    /// it. A second claim (a caller's duplicate drop_slow) gets <see langword="false"/> and must
    /// do nothing.
    /// </summary>
    public static bool TryMarkDestroyed(ArcHeader* h)
    {
        Interleave.Point("arc.drop.mark-destroyed");
        // ORDERING: full fence; pairs with the flag loads in Upgrade (after its CAS) and Counts.
        return (Interlocked.Or(ref h->Flags, FlagDestroyed) & FlagDestroyed) == 0;
    }

    /// <summary>Runs the destructor of an object this thread marked destroyed, then drops the implicit weak.</summary>
    /// <remarks><b>Safety:</b> the caller's <see cref="TryMarkDestroyed"/> returned true.</remarks>
    public static void RunDestructorAndRelease(ArcHeader* h)
    {
        delegate* unmanaged<void*, void*, void> dtor = h->Destructor;
        if (dtor != null)
        {
            dtor(Payload(h), h->Context);
        }

        DropWeak(h);
    }

    /// <summary>Whether the destructor has started (see <see cref="FlagDestroyed"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsDestroyed(ArcHeader* h) => (Volatile.Read(ref h->Flags) & FlagDestroyed) != 0;

    /// <summary>Drops a weak reference (explicit, or the implicit one); the last frees the allocation.</summary>
    /// <remarks><b>Safety:</b> the caller owns the weak reference it drops.</remarks>
    public static void DropWeak(ArcHeader* h)
    {
        if (Refcount.DecAndTest(ref h->Weak))
        {
            Free(h);
        }
    }

    private static void Free(ArcHeader* h)
    {
        // INVARIANT: magic dead before the memory goes, so a stale handle is refused while the
        // memory stays mapped (always true under NativeHeap.Quarantine).
        Volatile.Write(ref h->Magic, MagicDead);
        byte* block = (byte*)h - h->BaseOffset;
        nuint total = h->BaseOffset + (nuint)HeaderSize + (nuint)h->Size;
        NativeHeap.Free(block, total);
    }

    /// <summary>Creates a weak reference (<c>Arc::downgrade</c>).</summary>
    /// <remarks><b>Safety:</b> the caller holds a strong reference to <paramref name="h"/>.</remarks>
    /// <returns>The weak handle.</returns>
    public static nuint Downgrade(ArcHeader* h)
    {
        int cur = Volatile.Read(ref h->Weak);
        while (true)
        {
            if (cur == WeakLocked)
            {
                Interleave.Point("spin.arc.downgrade.locked");
                // is_unique holds the lock for two loads; wait it out.
                Thread.SpinWait(1);
                cur = Volatile.Read(ref h->Weak);
                continue;
            }

            if (cur < 0 || cur == int.MaxValue)
            {
                // Saturated, or about to overflow: the refcount path pins and warns.
                Refcount.Inc(ref h->Weak);
                return WeakHandle(h);
            }

            Interleave.Point("arc.downgrade.cas");
            // ORDERING: full fence; pairs with the release unlock in IsUnique.
            int seen = Interlocked.CompareExchange(ref h->Weak, cur + 1, cur);
            if (seen == cur)
            {
                return WeakHandle(h);
            }

            cur = seen;
        }
    }

    /// <summary>Takes another weak reference (<c>Weak::clone</c>).</summary>
    /// <remarks><b>Safety:</b> the caller holds a weak reference to <paramref name="h"/>.</remarks>
    public static void CloneWeak(ArcHeader* h) => Refcount.Inc(ref h->Weak);

    /// <summary>Takes a strong reference from a weak one unless the object's last strong reference is gone (<c>Weak::upgrade</c>).</summary>
    /// <remarks><b>Safety:</b> the caller holds a weak reference to <paramref name="h"/>.</remarks>
    /// <returns>
    /// <see langword="true"/> with a new strong reference; <see langword="false"/> once the
    /// destructor has started, while the object is owned uniquely (strong 0), or when the strong
    /// count is saturated (leaked, and possibly destroyed: see the file comment).
    /// </returns>
    public static bool Upgrade(ArcHeader* h)
    {
        int cur = Volatile.Read(ref h->Strong);
        while (true)
        {
            if (cur <= 0)
            {
                return false; // gone, owned uniquely, or saturated
            }

            if (cur == int.MaxValue)
            {
                // The next reference would overflow: pin and warn (a live object with INT_MAX
                // owners is leaked, not wrapped); the reference is still good unless it died.
                return Refcount.IncNotZero(ref h->Strong) && !IsDestroyed(h);
            }

            Interleave.Point("arc.upgrade.cas");
            // ORDERING: full fence (acquire for the payload written before the owners' release
            // decrements or ShareUnique's release store); orders the flag load below after it.
            int seen = Interlocked.CompareExchange(ref h->Strong, cur + 1, cur);
            if (seen == cur)
            {
                break;
            }

            cur = seen;
        }

        if (IsDestroyed(h))
        {
            // A positive count on a destroyed object exists only through a caller's misuse (an
            // increment of a dead count, before its saturation fix-up): never hand it out.
            Refcount.WarnSaturate(ref h->Strong, RefcountWarning.AddUseAfterFree);
            return false;
        }

        return true;
    }

    /// <summary>
    /// Whether the caller's strong reference is the only reference of any kind (std's
    /// <c>is_unique</c>, the check behind <c>get_mut</c>): strong == 1 and no weak reference.
    /// </summary>
    /// <remarks><b>Safety:</b> the caller holds a strong reference to <paramref name="h"/>.</remarks>
    /// <returns><see langword="true"/> when the caller may mutate the payload without synchronisation.</returns>
    public static bool IsUnique(ArcHeader* h)
    {
        // Lock out downgrade while strong is read: only possible while weak == 1 (no Weak exists).
        Interleave.Point("arc.is-unique.lock");
        if (Interlocked.CompareExchange(ref h->Weak, WeakLocked, 1) != 1)
        {
            return false;
        }

        Interleave.Point("arc.is-unique.read-strong");
        bool unique = Volatile.Read(ref h->Strong) == 1;
        Interleave.Point("arc.is-unique.unlock");
        // ORDERING: release; pairs with the CAS in Downgrade.
        Volatile.Write(ref h->Weak, 1);
        return unique;
    }

    /// <summary>
    /// Drops the caller's strong reference; if it was the last one, takes unique ownership back
    /// instead of destroying the payload (<c>into_unique_or_drop</c>); the destructor does not run.
    /// </summary>
    /// <remarks>
    /// <para>Unique ownership is represented by strong == 0 on a live object (the state of
    /// std's <c>new_cyclic</c> before publication). The kernel resets the count to 1 instead, which
    /// is sound only without weak references: here a weak reference could upgrade the moment the
    /// count became 1 again. With strong at 0 every upgrade fails until <see cref="ShareUnique"/>.</para>
    /// <para><b>Safety:</b> the caller owns the strong reference.</para>
    /// </remarks>
    /// <returns><see langword="true"/> when the caller now owns the object uniquely.</returns>
    public static bool IntoUniqueOrDrop(ArcHeader* h) => Refcount.DecAndTest(ref h->Strong);

    /// <summary>Creates an object owned uniquely (strong = 0, weak = 1): initialise, then <see cref="ShareUnique"/>.</summary>
    /// <param name="size">Payload bytes.</param>
    /// <param name="align">Payload alignment.</param>
    /// <param name="destructor">As in <see cref="Create"/>.</param>
    /// <param name="context">As in <see cref="Create"/>.</param>
    /// <param name="payload">The payload: the caller's unique ownership.</param>
    /// <returns>As <see cref="Create"/>.</returns>
    public static RrStatus CreateUnique(nuint size, nuint align, delegate* unmanaged<void*, void*, void> destructor, void* context, out void* payload)
    {
        RrStatus status = Create(size, align, destructor, context, out payload);
        if (status == RrStatus.Ok)
        {
            // INVARIANT: unique ownership is strong == 0 on a live object (see IntoUniqueOrDrop).
            Refcount.Set(ref DangerousHeader(payload)->Strong, 0);
        }

        return status;
    }

    /// <summary>Turns unique ownership into the first strong reference (<c>UniqueArc</c> into <c>Arc</c>).</summary>
    /// <remarks><b>Safety:</b> the caller owns <paramref name="h"/> uniquely.</remarks>
    public static void ShareUnique(ArcHeader* h)
    {
        Debug.Assert(Volatile.Read(ref h->Strong) == 0, "unique ownership has strong == 0");
        // ORDERING: release: everything written to the payload while unique is visible to any
        // thread that later upgrades (acquire in the inc_not_zero CAS) or receives a clone.
        Volatile.Write(ref h->Strong, 1);
    }

    /// <summary>Destroys a uniquely owned object: runs the destructor, releases the implicit weak.</summary>
    /// <remarks><b>Safety:</b> the caller owns <paramref name="h"/> uniquely and does not use it afterwards.</remarks>
    public static void DropUnique(ArcHeader* h) => DropSlow(h);

    /// <summary>Whether the object is in the unique-ownership state (strong == 0 on a live object).</summary>
    /// <param name="h">The object.</param>
    /// <returns><see langword="true"/> while owned uniquely.</returns>
    public static bool IsUniquelyOwned(ArcHeader* h) => Volatile.Read(ref h->Strong) == 0 && !IsDestroyed(h);

    /// <summary>
    /// The strong count and the number of weak references as Rust's <c>strong_count</c> /
    /// <c>weak_count</c> report them: the implicit weak is never counted, and once the destructor
    /// has started both are 0 (<c>Weak::weak_count</c> is 0 when no strong reference remains).
    /// </summary>
    /// <param name="h">The object.</param>
    /// <param name="strong">Strong count: 0 while owned uniquely or once destroyed; <see cref="Refcount.Saturated"/> when saturated on a live object.</param>
    /// <param name="weak">Weak references, not counting the implicit one; <see cref="Refcount.Saturated"/> when saturated.</param>
    public static void Counts(ArcHeader* h, out int strong, out int weak)
    {
        strong = Volatile.Read(ref h->Strong);
        int w = Volatile.Read(ref h->Weak);
        if (IsDestroyed(h))
        {
            strong = 0;
            weak = 0;
            return;
        }

        if (w == WeakLocked)
        {
            w = 1; // is_unique holds the lock: only the implicit weak exists
        }

        // While not destroyed the implicit weak is held (by the strong owners, or by the unique owner).
        weak = w <= 0 ? w : w - 1;
    }
}
