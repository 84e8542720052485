// A doorbell between two threads: the notification a virtqueue side sends its peer (a kick or an
// interrupt). Ring is cheap when nobody sleeps (one atomic exchange); Wait spins briefly — a
// peer on another CPU usually answers within a few microseconds — then yields its CPU a few
// times (on a machine with fewer CPUs than busy threads, the peer may need this one), and only
// then blocks. The spin is bounded (about 100 µs by default): long enough to ride out the
// wake-up of a peer that had gone to sleep, short enough not to starve the very thread
// that would ring.
//
// State word, one waiter at a time:
//   Idle ──Ring──▶ Signalled ──Wait consumes──▶ Idle
//   Idle ──Wait gives up spinning──▶ Sleeping ──Ring (sets the event)──▶ Signalled
// A Ring that finds Sleeping sets the event; the sleeper wakes, consumes the signal and resets
// the event. Wake-ups may be spurious (a late Set); callers re-check their ring, as the virtio
// spec requires of both sides anyway.
//
// A relay doorbell (constructed with an action) also runs that action on every ring: how a ring
// leaves the process, as an eventfd write to a vhost-user peer.
//
// Spinning pays only when the ringer is a busy peer thread that answers within microseconds. A
// ringer that is itself woken by the kernel (a thread polling a vhost-user kick eventfd) rings
// once per guest round trip, tens of microseconds or more apart: a spinning waiter burns its CPU
// and yields to nobody before it sleeps anyway. Such a doorbell gets SpinIterations 0: the
// waiter sleeps at once.

using System;
using System.Threading;

namespace RefRuntime.Core.Virtio;

/// <summary>A spin-then-block doorbell (see file comment). Any number of ringers, one waiter.</summary>
public sealed class Doorbell : IDisposable
{
    private const int Idle = 0;
    private const int Signalled = 1;
    private const int Sleeping = 2;

    private readonly ManualResetEventSlim _event = new(false, 0);
    private int _spinIterations;
    private readonly Action? _relay;
    private int _state;
    private long _rings;
    private long _sleeps;

    private const int YieldIterations = 8;

    /// <summary>Creates a doorbell whose waiter polls <paramref name="spinIterations"/> times (about 45 ns each) before yielding and blocking.</summary>
    /// <param name="spinIterations">Polls before sleeping (0 = block at once).</param>
    public Doorbell(int spinIterations = 2000)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(spinIterations);
        _spinIterations = spinIterations;
    }

    /// <summary>A doorbell that also runs <paramref name="relay"/> on every ring (see file comment).</summary>
    public Doorbell(Action relay)
        : this(0)
    {
        ArgumentNullException.ThrowIfNull(relay);
        _relay = relay;
    }

    /// <summary>
    /// Polls before sleeping (0 = sleep at once, no spin and no yields; see file comment). Set it
    /// while nobody waits: the waiter reads it at the start of each wait.
    /// </summary>
    public int SpinIterations
    {
        get => Volatile.Read(ref _spinIterations);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            // ORDERING: pairs with the Volatile.Read at the top of Wait; a waiter started after
            // this (Thread.Start is a full barrier) sees the new value.
            Volatile.Write(ref _spinIterations, value);
        }
    }

    /// <summary>Rings delivered.</summary>
    public long Rings => Interlocked.Read(ref _rings);

    /// <summary>Times the waiter went to sleep.</summary>
    public long Sleeps => Interlocked.Read(ref _sleeps);

    /// <summary>Rings the doorbell.</summary>
    public void Ring()
    {
        Interlocked.Increment(ref _rings);
        _relay?.Invoke();
        // ORDERING: the exchange is a full barrier: the ring's new entries (published before this
        // call) are visible to the waiter that consumes the signal.
        if (Interlocked.Exchange(ref _state, Signalled) == Sleeping)
        {
            _event.Set();
        }
    }

    /// <summary>Waits for a ring, up to <paramref name="timeoutMs"/> milliseconds (−1 = forever).</summary>
    /// <returns>True when a ring was consumed; false on timeout.</returns>
    public bool Wait(int timeoutMs = Timeout.Infinite)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeoutMs, Timeout.Infinite);
        int spins = Volatile.Read(ref _spinIterations);
        for (int i = 0; i < spins; i++)
        {
            if (Volatile.Read(ref _state) == Signalled)
            {
                return Consume();
            }

            Thread.SpinWait(1);
        }

        for (int i = 0; i < YieldIterations && spins > 0; i++)
        {
            Thread.Yield();
            if (Volatile.Read(ref _state) == Signalled)
            {
                return Consume();
            }
        }

        if (Interlocked.CompareExchange(ref _state, Sleeping, Idle) == Signalled)
        {
            return Consume();
        }

        Interlocked.Increment(ref _sleeps);
        long deadline = timeoutMs == Timeout.Infinite ? long.MaxValue : Environment.TickCount64 + timeoutMs;
        while (true)
        {
            long left = deadline == long.MaxValue ? Timeout.Infinite : Math.Max(0, deadline - Environment.TickCount64);
            _event.Wait((int)Math.Min(left, int.MaxValue));
            _event.Reset();
            if (Volatile.Read(ref _state) == Signalled)
            {
                return Consume();
            }

            // Still Sleeping: a stale Set from an earlier ring, or the time is up.
            if (deadline != long.MaxValue && Environment.TickCount64 >= deadline)
            {
                return Interlocked.CompareExchange(ref _state, Idle, Sleeping) != Sleeping && Consume();
            }
        }
    }

    // ORDERING: an exchange (full barrier), not a plain store: a ring that lands between our read
    // of Signalled and this store is totally ordered with it, so its entries are visible to the
    // waiter's next look at the ring.
    private bool Consume()
    {
        Interlocked.Exchange(ref _state, Idle);
        return true;
    }

    /// <inheritdoc/>
    public void Dispose() => _event.Dispose();
}
