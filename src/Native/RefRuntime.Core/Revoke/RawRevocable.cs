// Revocable resources for C callers: a resource pointer published under RCU, revoked once.
// Spec: docs/revocation.md (Linux rust/kernel/revocable.rs, RCU-based form).
//
//   try_access   rcu_read_lock; p = rcu_dereference(resource); if p == NULL: unlock, fail
//   release      rcu_read_unlock
//   revoke       p = xchg(resource, NULL); if p: synchronize; destroy(p); return true
//   revoke_nosync p = xchg(resource, NULL); if p: destroy(p)   (caller proves no readers)
//
// Concurrent revokes: the exchange hands the pointer to exactly one of them, so the resource
// is destroyed exactly once and only that call returns true. Access is lock-free: a read-side
// section and one load. The state lives in native memory (rr_revocable_t in the header) so a C
// host's RR_INLINE try_access reads it without a library call.

using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Rcu;

namespace RefRuntime.Core.Revoke;

/// <summary>The native state of a revocable resource (<c>rr_revocable_t</c>, 48 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 48)]
public unsafe struct RevocableState
{
    /// <summary><see cref="RawRevocable.MagicLive"/> while the object exists (offset 0).</summary>
    public uint Magic;

    /// <summary>Reserved (offset 4).</summary>
    public uint Reserved;

    /// <summary>The RCU domain whose sections protect accesses (offset 8).</summary>
    public RcuDomainState* Domain;

    /// <summary>The resource, or null once revoked (offset 16).</summary>
    public nint Resource;

    /// <summary>Destroys the resource after revocation: <c>destroy(resource, context)</c> (offset 24).</summary>
    public delegate* unmanaged<void*, void*, void> Destroy;

    /// <summary>Passed to <see cref="Destroy"/> (offset 32).</summary>
    public void* Context;

    /// <summary>Reserved (offset 40).</summary>
    public ulong Flags;
}

/// <summary>Operations on <see cref="RevocableState"/> (see file comment).</summary>
public static unsafe class RawRevocable
{
    /// <summary>Magic of a live revocable ("RRV1").</summary>
    public const uint MagicLive = 0x3156_5252;

    /// <summary>Creates a revocable holding <paramref name="resource"/> (non-null).</summary>
    public static RrStatus Create(RawRcuDomain domain, void* resource, delegate* unmanaged<void*, void*, void> destroy, void* context, out RevocableState* state)
    {
        state = null;
        if (resource == null)
        {
            return RrStatus.InvalidArgument;
        }

        RevocableState* s = (RevocableState*)NativeHeap.AllocZeroed((nuint)sizeof(RevocableState), 16);
        if (s == null)
        {
            return RrStatus.OutOfMemory;
        }

        // SAFETY: fresh block; published to the caller after the magic store.
        s->Domain = domain.State;
        s->Resource = (nint)resource;
        s->Destroy = destroy;
        s->Context = context;
        Volatile.Write(ref s->Magic, MagicLive);
        state = s;
        return RrStatus.Ok;
    }

    /// <summary>Validates a handle: non-null, aligned, live magic, and its domain alive.</summary>
    public static RrStatus Validate(RevocableState* s, out RawRcuDomain? domain)
    {
        domain = null;
        if (s == null)
        {
            return RrStatus.InvalidArgument;
        }

        // SAFETY: best-effort magic check of an aligned pointer, as for Arc handles.
        if (((nuint)s & 15) != 0 || Volatile.Read(ref s->Magic) != MagicLive)
        {
            return RrStatus.BadHandle;
        }

        return RawRcuDomain.TryFromState(s->Domain, out domain);
    }

    /// <summary>Enters a read-side section and returns the resource, or null (section already left) once revoked.</summary>
    public static void* TryAccess(RevocableState* s, RawRcuDomain domain)
    {
        domain.ReadLock();
        Interleave.Point("revocable.access.load");
        // ORDERING: dependency-ordered load inside the section (rcu_dereference).
        nint r = Volatile.Read(ref s->Resource);
        if (r == 0)
        {
            domain.ReadUnlock();
        }

        return (void*)r;
    }

    /// <summary>Revokes: new accesses fail at once; waits for accesses in flight; destroys the resource once.</summary>
    /// <returns><see cref="RrStatus.Ok"/> with <paramref name="revoked"/> telling whether this call did it, or <see cref="RrStatus.WouldDeadlock"/> inside an access (nothing revoked).</returns>
    public static RrStatus Revoke(RevocableState* s, RawRcuDomain domain, bool wait, out bool revoked)
    {
        revoked = false;
        if (wait && domain.InReadSection)
        {
            return RrStatus.WouldDeadlock; // refuse before unpublishing: afterwards we would have to wait
        }

        Interleave.Point("revocable.revoke.unpublish");
        void* r = (void*)Interlocked.Exchange(ref s->Resource, 0);
        if (r == null)
        {
            return RrStatus.Ok;
        }

        if (wait)
        {
            RrStatus st = domain.Synchronize();
            System.Diagnostics.Debug.Assert(st == RrStatus.Ok, "checked above");
        }

        if (s->Destroy != null)
        {
            s->Destroy(r, s->Context);
        }

        revoked = true;
        return RrStatus.Ok;
    }

    /// <summary>Frees the object, revoking (with a grace period) first if it is still live.</summary>
    public static RrStatus Free(RevocableState* s, RawRcuDomain domain)
    {
        RrStatus st = Revoke(s, domain, wait: true, out _);
        if (st != RrStatus.Ok)
        {
            return st;
        }

        Volatile.Write(ref s->Magic, 0);
        NativeHeap.Free(s, (nuint)sizeof(RevocableState));
        return RrStatus.Ok;
    }
}
