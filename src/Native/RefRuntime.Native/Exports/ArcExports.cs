// C ABI of Arc/Weak: rr_arc_*, rr_weak_*, rr_unique_arc_* in include/refruntime.h.
// Spec: docs/arc.md. Every body: validate, one call into Core, map, catch-all.
// A strong reference is the payload pointer; a weak one is rr_weak_t (a tagged header address
// passed by value), so C's type checker keeps them apart and RawArc's tag check catches casts.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Sync;

namespace RefRuntime.Native.Exports;

internal static unsafe class ArcExports
{
    [UnmanagedCallersOnly(EntryPoint = "rr_arc_new")]
    private static int New(nuint size, nuint align, delegate* unmanaged<void*, void*, void> dtor, void* ctx, void** outPayload)
    {
        try
        {
            if (outPayload == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: outPayload is non-NULL (checked); the caller provides writable storage.
            *outPayload = null;
            RrStatus s = RawArc.Create(size, align, dtor, ctx, out void* p);
            *outPayload = p;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_new_unique")]
    private static int NewUnique(nuint size, nuint align, delegate* unmanaged<void*, void*, void> dtor, void* ctx, void** outUnique)
    {
        try
        {
            if (outUnique == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: as in New; rr_unique_arc_t is one pointer.
            *outUnique = null;
            RrStatus s = RawArc.CreateUnique(size, align, dtor, ctx, out void* p);
            *outUnique = p;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    /// <summary>Validates a unique handle: a live object in the unique state (strong == 0).</summary>
    private static RrStatus CheckUnique(void* payload, out ArcHeader* h)
    {
        RrStatus s = RawArc.TryGetHeader(payload, out h);
        // SAFETY: h is a live header when s is Ok.
        if (s == RrStatus.Ok && !RawArc.IsUniquelyOwned(h))
        {
            return RrStatus.BadHandle; // a shared object passed as a unique one
        }

        return s;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_unique_arc_share")]
    private static int UniqueShare(void* unique, void** outPayload)
    {
        try
        {
            if (outPayload == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: outPayload non-NULL (checked).
            *outPayload = null;
            RrStatus s = CheckUnique(unique, out ArcHeader* h);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: h is live and uniquely owned by the caller (checked and header contract).
            RawArc.ShareUnique(h);
            *outPayload = unique;
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_unique_arc_drop")]
    private static int UniqueDrop(void* unique)
    {
        try
        {
            RrStatus s = CheckUnique(unique, out ArcHeader* h);
            if (s == RrStatus.Ok)
            {
                // SAFETY: h is live and uniquely owned by the caller.
                RawArc.DropUnique(h);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_clone")]
    private static int Clone(void* payload)
    {
        try
        {
            RrStatus s = RawArc.TryGetHeader(payload, out ArcHeader* h);
            if (s == RrStatus.Ok)
            {
                // SAFETY: h is live; the caller holds a strong reference (header contract).
                RawArc.Clone(h);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_drop")]
    private static int Drop(void* payload)
    {
        try
        {
            RrStatus s = RawArc.TryGetHeader(payload, out ArcHeader* h);
            if (s == RrStatus.Ok)
            {
                // SAFETY: h is live; the caller gives up the strong reference it owns.
                RawArc.Drop(h);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_drop_slow")]
    private static int DropSlow(void* payload)
    {
        try
        {
            RrStatus s = RawArc.TryGetHeader(payload, out ArcHeader* h);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: h is live (checked). Only the caller whose dec_and_test reached 0 may call.
            if (Refcount.Read(ref h->Strong) != 0)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // A duplicate call (the destructor already claimed) must not run it twice.
            if (!RawArc.TryMarkDestroyed(h))
            {
                return (int)RrStatus.BadHandle;
            }

            RawArc.RunDestructorAndRelease(h);
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_downgrade")]
    private static int Downgrade(void* payload, nuint* outWeak)
    {
        try
        {
            if (outWeak == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: outWeak non-NULL (checked).
            *outWeak = 0;
            RrStatus s = RawArc.TryGetHeader(payload, out ArcHeader* h);
            if (s == RrStatus.Ok)
            {
                // SAFETY: h is live; the caller holds a strong reference.
                *outWeak = RawArc.Downgrade(h);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_weak_clone")]
    private static int WeakClone(nuint weak)
    {
        try
        {
            RrStatus s = RawArc.TryGetWeakHeader(weak, out ArcHeader* h);
            if (s == RrStatus.Ok && h != null)
            {
                // SAFETY: h is live; the caller holds this weak reference.
                RawArc.CloneWeak(h);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_weak_drop")]
    private static int WeakDrop(nuint weak)
    {
        try
        {
            RrStatus s = RawArc.TryGetWeakHeader(weak, out ArcHeader* h);
            if (s == RrStatus.Ok && h != null)
            {
                // SAFETY: h is live; the caller gives up the weak reference it owns.
                RawArc.DropWeak(h);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_weak_upgrade")]
    private static int WeakUpgrade(nuint weak, void** outPayload)
    {
        try
        {
            if (outPayload == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: outPayload non-NULL (checked).
            *outPayload = null;
            RrStatus s = RawArc.TryGetWeakHeader(weak, out ArcHeader* h);
            // SAFETY: h is live; the caller's weak reference keeps the allocation.
            if (s == RrStatus.Ok && h != null && RawArc.Upgrade(h))
            {
                *outPayload = RawArc.Payload(h);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_counts")]
    private static int Counts(void* payload, int* strong, int* weak)
    {
        try
        {
            RrStatus s = RawArc.TryGetHeader(payload, out ArcHeader* h);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: h is live; out pointers are optional (NULL skips).
            RawArc.Counts(h, out int st, out int wk);
            if (strong != null)
            {
                *strong = st;
            }

            if (weak != null)
            {
                *weak = wk;
            }

            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_weak_counts")]
    private static int WeakCounts(nuint weakHandle, int* strong, int* weak)
    {
        try
        {
            RrStatus s = RawArc.TryGetWeakHeader(weakHandle, out ArcHeader* h);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            int st = 0, wk = 0;
            if (h != null)
            {
                // SAFETY: h is live (checked).
                RawArc.Counts(h, out st, out wk);
            }

            // SAFETY: optional out pointers.
            if (strong != null)
            {
                *strong = st;
            }

            if (weak != null)
            {
                *weak = wk;
            }

            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_ptr_eq")]
    private static byte PtrEq(void* a, void* b) => a == b ? (byte)1 : (byte)0;

    [UnmanagedCallersOnly(EntryPoint = "rr_weak_ptr_eq")]
    private static byte WeakPtrEq(nuint a, nuint b) => a == b ? (byte)1 : (byte)0;

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_into_unique_or_drop")]
    private static int IntoUniqueOrDrop(void* payload, void** outUnique)
    {
        try
        {
            if (outUnique == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: outUnique non-NULL (checked).
            *outUnique = null;
            RrStatus s = RawArc.TryGetHeader(payload, out ArcHeader* h);
            // SAFETY: h is live; the caller gives up its strong reference.
            if (s == RrStatus.Ok && RawArc.IntoUniqueOrDrop(h))
            {
                *outUnique = payload;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_arc_is_unique")]
    private static int IsUnique(void* payload, byte* outUnique)
    {
        try
        {
            if (outUnique == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: outUnique non-NULL (checked).
            *outUnique = 0;
            RrStatus s = RawArc.TryGetHeader(payload, out ArcHeader* h);
            // SAFETY: h is live; the caller holds a strong reference.
            if (s == RrStatus.Ok && RawArc.IsUnique(h))
            {
                *outUnique = 1;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }
}
