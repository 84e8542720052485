// The safe .NET face of RCU (RefRuntime.Core.Rcu.RawRcuDomain holds the algorithm).
//
//   using var guard = domain.ReadLock();          // a ref struct: cannot be captured by a lambda,
//   Config? c = current.Read(guard);              // stored in a field or carried across an await,
//                                                 // so a section cannot cross threads by accident;
//   current.Replace(newConfig, old => old.Dispose());   // and Read needs the guard to compile.

using System;
using System.Runtime.CompilerServices;
using System.Threading;
using RefRuntime.Core;
using CoreDomain = RefRuntime.Core.Rcu.RawRcuDomain;
using CoreReader = RefRuntime.Core.Rcu.RcuReader;

namespace RefRuntime;

/// <summary>
/// An RCU domain: read-side sections that cost two plain stores and scale with the cores,
/// grace periods that wait for every pre-existing reader, deferred callbacks, polled grace periods.
/// Readers in one domain never delay another domain's grace periods.
/// </summary>
public sealed class RcuDomain : IDisposable
{
    private static readonly RcuDomain s_default = new(CoreDomain.Default);

    private RcuDomain(CoreDomain core) => Core = core;

    /// <summary>Creates an independent domain. Dispose it: it owns a callback worker thread.</summary>
    public RcuDomain()
        : this(new CoreDomain())
    {
    }

    /// <summary>The process-wide default domain (shared with C callers of the same library copy); never disposed.</summary>
    public static RcuDomain Default => s_default;

    internal CoreDomain Core { get; }

    /// <summary>Grace periods completed so far.</summary>
    public long CompletedGracePeriods => Core.CompletedGracePeriods;

    /// <summary>Callbacks queued and not yet run.</summary>
    public long PendingCallbacks => Core.PendingCallbacks;

    /// <summary>The bound on pending callbacks beyond which <see cref="Call"/> waits for the worker (back-pressure).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1.</exception>
    public long MaxPendingCallbacks
    {
        get => Core.MaxPendingCallbacks;
        set => Core.MaxPendingCallbacks = value;
    }

    /// <summary>Whether the calling thread is inside a read-side section of this domain.</summary>
    public bool InReadSection => Core.InReadSection;

    /// <summary>Enters a read-side section (nestable) until the guard is disposed, on this thread.</summary>
    /// <returns>The guard; use it with <c>using</c>.</returns>
    /// <exception cref="ObjectDisposedException">The domain was disposed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe RcuReadGuard ReadLock() => new(Core.State, Core.ReadLockRecord());

    /// <summary>Waits until every read-side section running now has ended (a grace period).</summary>
    /// <exception cref="InvalidOperationException">Called inside a read-side section of this domain (it would wait for itself).</exception>
    public void Synchronize()
    {
        if (Core.Synchronize() == RrStatus.WouldDeadlock)
        {
            throw new InvalidOperationException("RcuDomain.Synchronize was called inside a read-side section of the same domain; it would wait for itself forever. End the section first, or use Call to defer the work.");
        }
    }

    /// <summary>Runs <paramref name="callback"/> on the domain's worker thread after a grace period.</summary>
    /// <param name="callback">The callback; if it throws, the exception is traced and counted and the worker carries on.</param>
    public void Call(Action callback) => Core.Call(callback);

    /// <summary>Waits until every callback queued before this call, by any thread, has run.</summary>
    /// <exception cref="InvalidOperationException">Called from one of the domain's own callbacks.</exception>
    public void Barrier()
    {
        if (Core.Barrier() == RrStatus.WouldDeadlock)
        {
            throw new InvalidOperationException("RcuDomain.Barrier was called from one of the domain's callbacks; it would wait for itself.");
        }
    }

    /// <summary>Starts a polled grace period.</summary>
    /// <returns>A cookie; <see cref="Poll"/> says when a full grace period has elapsed since.</returns>
    public RcuCookie StartPoll() => new(Core.StartPoll());

    /// <summary>Whether a full grace period has elapsed since <paramref name="cookie"/> was taken.</summary>
    /// <param name="cookie">From <see cref="StartPoll"/>.</param>
    /// <returns><see langword="true"/> once it has.</returns>
    public bool Poll(RcuCookie cookie) => Core.Poll(cookie.Value);

    /// <summary>Reports readers that keep a grace period waiting longer than <paramref name="threshold"/>.</summary>
    /// <param name="threshold">The threshold.</param>
    /// <param name="onStall">Called on the waiting writer's thread; <see langword="null"/> turns reports off.</param>
    public void SetStallHandler(TimeSpan threshold, Action<RcuStall>? onStall) =>
        Core.SetStallHandler(threshold, onStall is null ? null : s => onStall(new RcuStall(s.ThreadId, s.Waited)));

    /// <summary>Destroys the domain after running every queued callback.</summary>
    /// <exception cref="InvalidOperationException">A reader is still inside a section, this is the default domain, or it is called from a callback.</exception>
    public void Dispose() => Core.Dispose();
}

/// <summary>A reader that has kept a grace period waiting longer than the stall threshold (<see cref="RcuDomain.SetStallHandler"/>).</summary>
/// <param name="ThreadId">The managed id of the reader's thread.</param>
/// <param name="Waited">How long the grace period has waited for it so far.</param>
public readonly record struct RcuStall(int ThreadId, TimeSpan Waited);

/// <summary>A grace-period cookie from <see cref="RcuDomain.StartPoll"/>.</summary>
/// <param name="Value">The grace-period number that must complete.</param>
public readonly record struct RcuCookie(ulong Value);

/// <summary>
/// A read-side section, ended by <see cref="Dispose"/>. A ref struct: it lives on the stack of the
/// thread that entered the section and cannot be captured, boxed or carried across an await.
/// </summary>
public unsafe ref struct RcuReadGuard
{
    // Unmanaged fields only: a ref struct without object references stays in registers.
    private readonly Core.Rcu.RcuDomainState* _domain;
    private CoreReader* _reader;

    internal RcuReadGuard(Core.Rcu.RcuDomainState* domain, CoreReader* reader)
    {
        _domain = domain;
        _reader = reader;
    }

    /// <summary>Whether the section is still open.</summary>
    public readonly bool IsActive => _reader != null;

    /// <summary>Whether this is an open section of <paramref name="domain"/>.</summary>
    /// <param name="domain">A domain.</param>
    /// <returns><see langword="true"/> when the guard is open and belongs to <paramref name="domain"/>.</returns>
    public readonly bool IsSectionOf(RcuDomain domain) => _reader != null && domain is not null && _domain == domain.Core.State;

    /// <summary>Ends the section. Safe to call more than once on the same guard.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose()
    {
        CoreReader* r = _reader;
        if (r != null)
        {
            _reader = null;
            // SAFETY: r is this thread's record (a ref struct never leaves its thread).
            CoreDomain.ReadUnlock(r);
        }
    }
}

/// <summary>
/// A reference published under RCU: readers load it inside a section without locks; writers
/// replace it and reclaim the old value only after every reader that could see it has finished.
/// </summary>
/// <typeparam name="T">The referenced type.</typeparam>
public sealed class RcuPointer<T>
    where T : class
{
    private readonly RcuDomain _domain;
    private T? _value;

    /// <summary>Creates a pointer in <paramref name="domain"/> holding <paramref name="initial"/>.</summary>
    /// <param name="domain">The domain whose sections protect readers.</param>
    /// <param name="initial">The initial value.</param>
    public RcuPointer(RcuDomain domain, T? initial = null)
    {
        ArgumentNullException.ThrowIfNull(domain);
        _domain = domain;
        _value = initial;
    }

    /// <summary>The domain.</summary>
    public RcuDomain Domain => _domain;

    /// <summary>Loads the current value; valid until <paramref name="guard"/> is disposed.</summary>
    /// <param name="guard">An open section of this pointer's domain (the compile-time proof of a section).</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentException">The guard is closed or belongs to another domain.</exception>
    public T? Read(scoped in RcuReadGuard guard)
    {
        if (!guard.IsSectionOf(_domain))
        {
            throw new ArgumentException("RcuPointer.Read needs an open read-side section of the pointer's own domain.", nameof(guard));
        }

        return Volatile.Read(ref _value);
    }

    /// <summary>Publishes <paramref name="value"/> (release: its initialisation is visible to readers first).</summary>
    /// <param name="value">The new value.</param>
    public void Publish(T? value) => Volatile.Write(ref _value, value);

    /// <summary>Publishes <paramref name="value"/> and returns the old one, which readers may still be using until a grace period has passed.</summary>
    /// <param name="value">The new value.</param>
    /// <returns>The old value.</returns>
    public T? Exchange(T? value) => Interlocked.Exchange(ref _value, value);

    /// <summary>Publishes <paramref name="value"/>, waits for a grace period, then reclaims the old value on this thread.</summary>
    /// <param name="value">The new value.</param>
    /// <param name="reclaim">Called with the old value once no reader can see it.</param>
    /// <exception cref="InvalidOperationException">Called inside a read-side section of the domain.</exception>
    public void Replace(T? value, Action<T>? reclaim = null)
    {
        // Refuse before publishing anything: afterwards the old value could not be reclaimed.
        if (_domain.InReadSection)
        {
            throw new InvalidOperationException("RcuPointer.Replace was called inside a read-side section of its domain; the grace period would wait for itself. Use ReplaceDeferred, or end the section first.");
        }

        T? old = Exchange(value);
        _domain.Synchronize();
        if (old is not null)
        {
            reclaim?.Invoke(old);
        }
    }

    /// <summary>Publishes <paramref name="value"/> and reclaims the old value on the domain's worker after a grace period, without waiting.</summary>
    /// <param name="value">The new value.</param>
    /// <param name="reclaim">Called with the old value once no reader can see it.</param>
    public void ReplaceDeferred(T? value, Action<T> reclaim)
    {
        ArgumentNullException.ThrowIfNull(reclaim);
        T? old = Exchange(value);
        if (old is not null)
        {
            _domain.Call(() => reclaim(old));
        }
    }
}
