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
//
// The gate's state is one word in its domain's native state (RcuDomainState.GateWord): the owner
// token in bits 63..2, "disconnected" in bit 0 and "a destroy is in progress" in bit 1. Enter
// compares the whole word with the one it had when open, so a closed gate, a destroy in progress
// and a domain that now belongs to another gate are refused by one load and one compare.
//
// Type-stable gates (the C ABI's, docs/revocation.md "Inline gate calls"): their domain comes from
// a pool and is never freed, only reused by a later gate with a new token. C code that checked a
// handle may then still read the domain after the gate was destroyed (the RR_INLINE enter reads
// the handle table, enters the domain, then checks the handle again): it reads memory that is
// still a domain and backs out. Destroy therefore does what Synchronize does before it scans:
// it marks the destroy in the gate word, then a process-wide barrier, then looks for readers, so
// that a caller whose record store the scan missed sees the mark (or the changed handle) and
// backs out; a caller the scan saw makes Destroy answer Busy, with the gate left as it was.

using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;
using RefRuntime.Core.Rcu;

namespace RefRuntime.Core.Revoke;

/// <summary>A call-draining gate (see file comment). Thread-safe.</summary>
public sealed unsafe class CallGate : IDisposable
{
    /// <summary>Gate word bit: disconnected.</summary>
    public const ulong Disconnected = 1;

    /// <summary>Gate word bit: a destroy is in progress.</summary>
    public const ulong Destroying = 2;

    // Free domains of destroyed type-stable gates (never freed), and the last token handed out.
    private static readonly Stack<RawRcuDomain> s_pool = new();
    private static readonly Lock s_poolLock = new();
    private static long s_lastToken;

    private readonly RawRcuDomain _domain;
    private readonly RcuDomainState* _state;
    private readonly ulong _open; // the gate word while open: token << 2
    private readonly bool _typeStable;
    private int _disconnected;
    private int _destroyed; // 0 live, 2 destroy in progress, 1 destroyed

    /// <summary>Creates an open gate.</summary>
    /// <param name="typeStable">
    /// Whether the gate's domain comes from a pool of domains that are never freed (reused by later
    /// gates after <see cref="Destroy"/>): code outside .NET may then read the domain's native
    /// state without holding the gate (the C ABI's inline enter). The <see cref="Domain"/> of such
    /// a gate must not be used after the gate is destroyed.
    /// </param>
    public CallGate(bool typeStable = false)
    {
        _typeStable = typeStable;
        RawRcuDomain? reused = null;
        if (typeStable)
        {
            lock (s_poolLock)
            {
                s_pool.TryPop(out reused);
            }
        }

        _domain = reused ?? (typeStable ? RawRcuDomain.CreatePermanent() : new RawRcuDomain());
        // SAFETY: the domain's native state lives until the domain is destroyed, which only this
        // gate's Destroy does (a type-stable gate's, never); every access below is to it.
        _state = _domain.State;
        _open = (ulong)Interlocked.Increment(ref s_lastToken) << 2;
        // The word goes before the gate is published (by the caller's handle, a release).
        Volatile.Write(ref _state->GateWord, _open);
    }

    /// <summary>The gate's domain (its native state is the C handle's core).</summary>
    public RawRcuDomain Domain => _domain;

    /// <summary>Whether the gate's domain outlives it (see the constructor).</summary>
    public bool IsTypeStable => _typeStable;

    /// <summary>Whether <see cref="Disconnect"/> has been called.</summary>
    public bool IsDisconnected => Volatile.Read(ref _disconnected) != 0;

    /// <summary>The gate word while the gate is open (its token; the C inline path does not use it, see file comment).</summary>
    public ulong OpenWord => _open;

    /// <summary>Enters a call. On success the caller must <see cref="Leave"/> with the returned record, on the same thread.</summary>
    /// <returns>The thread's record, or null when the gate is disconnected, being destroyed or destroyed (the call must fail with "no device").</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // the hot path of every driver call
    public RcuReader* Enter()
    {
        RcuReader* r = _domain.ReadLockRecord();
        Interleave.Point("gate.enter.check-flag");
        // ORDERING: the record store above precedes this load (compiler order); Disconnect's and
        // Destroy's process-wide barriers supply the hardware side (see file comment).
        if (Volatile.Read(ref _state->GateWord) != _open)
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
    public bool InCall => Volatile.Read(ref _destroyed) != 1 && _domain.InReadSection;

    /// <summary>
    /// Refuses new calls at once, then waits until every call in flight has left. From inside a
    /// call it cannot wait for itself: the gate is still closed to new calls, and the result says
    /// the calls in flight were not drained.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> (drained; <paramref name="first"/> tells whether this call closed the gate), or <see cref="RrStatus.WouldDeadlock"/>.</returns>
    /// <exception cref="ObjectDisposedException">The gate has been destroyed.</exception>
    public RrStatus Disconnect(out bool first)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _destroyed) == 1, this);
        Interleave.Point("gate.disconnect.set-flag");
        first = Interlocked.Exchange(ref _disconnected, 1) == 0;
        // Only while the word is this gate's: a type-stable gate destroyed meanwhile (a caller's
        // race) may already have handed its domain to another gate, which must stay open.
        ulong w = Volatile.Read(ref _state->GateWord);
        while ((w & ~(Disconnected | Destroying)) == _open && (w & Disconnected) == 0)
        {
            ulong seen = Interlocked.CompareExchange(ref _state->GateWord, w | Disconnected, w);
            if (seen == w)
            {
                break;
            }

            w = seen;
        }

        if ((w & ~(Disconnected | Destroying)) != _open)
        {
            return RrStatus.Ok; // destroyed meanwhile: nothing is in flight
        }

        return _domain.Synchronize();
    }

    /// <summary>
    /// Frees the gate (a type-stable gate's domain goes back to the pool). Refused
    /// (<see cref="RrStatus.Busy"/>) while a call is in flight or entering, and then nothing
    /// changes: the gate stays usable. Destroying a destroyed gate is <see cref="RrStatus.Ok"/>.
    /// </summary>
    public RrStatus Destroy()
    {
        int was = Interlocked.CompareExchange(ref _destroyed, 2, 0);
        if (was != 0)
        {
            return was == 1 ? RrStatus.Ok : RrStatus.Busy; // destroyed, or another thread is destroying it
        }

        Interleave.Point("gate.destroy.mark");
        Interlocked.Or(ref _state->GateWord, Destroying);
        // ORDERING: as Synchronize's first barrier: a caller whose record store the scan below
        // misses performs its check of the gate word (and a C caller its handle check) after
        // this point, so it sees the mark and backs out.
        Interlocked.MemoryBarrierProcessWide();
        RrStatus s;
        if (_typeStable)
        {
            s = _domain.HasActiveReader() ? RrStatus.Busy : RrStatus.Ok;
        }
        else
        {
            s = _domain.Destroy(); // Busy with a reader inside; frees the native state otherwise
        }

        if (s != RrStatus.Ok)
        {
            Interlocked.And(ref _state->GateWord, ~Destroying);
            Volatile.Write(ref _destroyed, 0);
            return s;
        }

        if (_typeStable)
        {
            // No owner: a late caller of this gate (or of a stale C handle) backs out.
            Volatile.Write(ref _state->GateWord, 0);
            lock (s_poolLock)
            {
                s_pool.Push(_domain);
            }
        }

        Volatile.Write(ref _destroyed, 1);
        return RrStatus.Ok;
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
