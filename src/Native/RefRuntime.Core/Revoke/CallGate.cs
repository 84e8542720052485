// A call-draining gate in front of an object's API (the cdev-disconnect design argued in 2021,
// docs/revocation.md): each call enters and leaves; disconnect refuses new entries at once, waits until
// every call in flight has left, then returns; later calls fail with "no device".
//
// Enter and leave must scale, so there is no shared in-flight counter: the gate is an RCU
// domain of its own. Enter = read lock + check the disconnected flag; leave = read unlock;
// disconnect = set the flag, then a grace period. The grace period waits for every call that
// entered before the flag was visible; a call that enters after sees the flag (the writer's
// process-wide barrier orders the flag store before its scan, exactly as for RCU readers) and
// backs out. Calls may block for long (a driver call that sleeps): the grace period's wait
// sleeps in 1 ms steps after a short spin instead of keeping a CPU busy.

using System;
using System.Runtime.CompilerServices;
using System.Threading;
using RefRuntime.Core.Rcu;

namespace RefRuntime.Core.Revoke;

/// <summary>A call-draining gate (see file comment). Thread-safe.</summary>
public sealed unsafe class CallGate : IDisposable
{
    private readonly RawRcuDomain _domain;
    private int _disconnected;

    /// <summary>Creates an open gate.</summary>
    /// <param name="pinned">Whether C code owns the gate (its domain state then keeps it alive until disposed).</param>
    public CallGate(bool pinned = false) => _domain = new RawRcuDomain(pinned);

    /// <summary>The gate's domain (its native state is the C handle's core).</summary>
    public RawRcuDomain Domain => _domain;

    /// <summary>Whether <see cref="Disconnect"/> has been called.</summary>
    public bool IsDisconnected => Volatile.Read(ref _disconnected) != 0;

    /// <summary>Enters a call. On success the caller must <see cref="Leave"/> with the returned record, on the same thread.</summary>
    /// <returns>The thread's record, or null when the gate is disconnected (the call must fail with "no device").</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // the hot path of every driver call
    public RcuReader* Enter()
    {
        RcuReader* r = _domain.ReadLockRecord();
        Interleave.Point("gate.enter.check-flag");
        // ORDERING: the record store above precedes this load (compiler order); Disconnect's
        // process-wide barrier supplies the hardware side (see file comment).
        if (Volatile.Read(ref _disconnected) != 0)
        {
            RawRcuDomain.ReadUnlock(r);
            return null;
        }

        return r;
    }

    /// <summary>Leaves a call entered with <see cref="Enter"/>.</summary>
    /// <param name="r">The record Enter returned.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Leave(RcuReader* r) => RawRcuDomain.ReadUnlock(r);

    /// <summary>Whether the calling thread is inside a call through this gate.</summary>
    public bool InCall => _domain.InReadSection;

    /// <summary>
    /// Refuses new calls at once, then waits until every call in flight has left. From inside a
    /// call it cannot wait for itself: the gate is still closed to new calls, and the result says
    /// the calls in flight were not drained.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> (drained; <paramref name="first"/> tells whether this call closed the gate), or <see cref="RrStatus.WouldDeadlock"/>.</returns>
    public RrStatus Disconnect(out bool first)
    {
        Interleave.Point("gate.disconnect.set-flag");
        first = Interlocked.Exchange(ref _disconnected, 1) == 0;
        return _domain.Synchronize();
    }

    /// <summary>Frees the gate's domain; refused (<see cref="RrStatus.Busy"/>) while a call is in flight.</summary>
    public RrStatus Destroy()
    {
        Volatile.Write(ref _disconnected, 1);
        return _domain.Destroy();
    }

    /// <summary>Frees the gate (see <see cref="Destroy"/>).</summary>
    /// <exception cref="InvalidOperationException">A call is still in flight.</exception>
    public void Dispose()
    {
        if (Destroy() != RrStatus.Ok)
        {
            throw new InvalidOperationException("CallGate.Dispose: a call is still in flight; disconnect and drain first.");
        }
    }
}
