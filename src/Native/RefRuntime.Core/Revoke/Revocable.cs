// RawRevocable<T>: a managed resource that can be revoked while others may still try to use it.
// Same algorithm as RawRevocable (docs/revocation.md), over a managed reference: access is a read-side
// section plus one load; revoke unpublishes, waits for a grace period, then releases the
// resource exactly once (concurrent revokes: one wins).

using System;
using System.Runtime.CompilerServices;
using System.Threading;
using RefRuntime.Core.Rcu;

namespace RefRuntime.Core.Revoke;

/// <summary>A revocable managed resource (see file comment).</summary>
/// <typeparam name="T">The resource type.</typeparam>
public sealed class RawRevocable<T>
    where T : class
{
    private readonly RawRcuDomain _domain;
    private readonly Action<T>? _release;
    private T? _value;

    /// <summary>Wraps <paramref name="value"/>; <paramref name="release"/> (default: Dispose for IDisposable) runs once on revocation.</summary>
    public RawRevocable(RawRcuDomain domain, T value, Action<T>? release = null)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(value);
        _domain = domain;
        _value = value;
        _release = release ?? (value is IDisposable ? static v => ((IDisposable)v).Dispose() : null);
    }

    /// <summary>The domain whose read-side sections protect accesses.</summary>
    public RawRcuDomain Domain => _domain;

    /// <summary>Whether the resource has been revoked.</summary>
    public bool IsRevoked => Volatile.Read(ref _value) is null;

    /// <summary>Enters a read-side section and loads the resource; on null the section has been left again.</summary>
    /// <param name="reader">The thread's record, for <see cref="RawRcuDomain.ReadUnlock(RcuReader*)"/>.</param>
    /// <returns>The resource, or null once revoked.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe T? TryAccess(out RcuReader* reader)
    {
        reader = _domain.ReadLockRecord();
        Interleave.Point("revocable.access.load");
        T? v = Volatile.Read(ref _value);
        if (v is null)
        {
            RawRcuDomain.ReadUnlock(reader);
            reader = null;
        }

        return v;
    }

    /// <summary>
    /// Loads the resource when the caller is already inside a read-side section of
    /// <see cref="Domain"/> (a gate call on the same domain, for example): no second section.
    /// </summary>
    /// <returns>The resource, or null once revoked.</returns>
    /// <remarks><b>Safety:</b> the calling thread is inside a read-side section of <see cref="Domain"/>
    /// for as long as it uses the result.</remarks>
    public T? TryGetInSection()
    {
        System.Diagnostics.Debug.Assert(_domain.InReadSection, "TryGetInSection needs a read-side section of the revocable's domain");
        return Volatile.Read(ref _value);
    }

    /// <summary>Revokes and waits for accesses in flight; releases the resource once.</summary>
    /// <returns><see cref="RrStatus.Ok"/> with <paramref name="revoked"/> = whether this call did it, or <see cref="RrStatus.WouldDeadlock"/> from inside an access.</returns>
    public RrStatus Revoke(out bool revoked)
    {
        revoked = false;
        if (_domain.InReadSection)
        {
            return RrStatus.WouldDeadlock;
        }

        Interleave.Point("revocable.revoke.unpublish");
        T? old = Interlocked.Exchange(ref _value, null);
        if (old is null)
        {
            return RrStatus.Ok;
        }

        _domain.Synchronize();
        Interleave.Point("revocable.revoke.release");
        _release?.Invoke(old);
        revoked = true;
        return RrStatus.Ok;
    }

    /// <summary>Revokes without waiting: the caller guarantees no access is in flight (<c>revoke_nosync</c>).</summary>
    /// <returns>Whether this call revoked it.</returns>
    public bool RevokeNoSync()
    {
        T? old = Interlocked.Exchange(ref _value, null);
        if (old is null)
        {
            return false;
        }

        _release?.Invoke(old);
        return true;
    }
}
