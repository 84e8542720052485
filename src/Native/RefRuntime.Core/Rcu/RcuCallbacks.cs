// Deferred reclamation for an RCU domain: call (run a callback after a grace period), barrier
// (wait until every callback queued so far has run), bounded memory, and the background worker
// that batches callbacks behind one grace period and also serves polled grace periods.
//
// Callbacks from C (an rr_rcu_head embedded in the caller's object, no allocation) go on an
// intrusive lock-free stack through the heads' next fields: one CAS per call, and the worker takes
// the whole stack with one exchange per batch (and reverses it, so each thread's callbacks run in
// the order it queued them). Callbacks from .NET (an Action) and barrier markers go through a FIFO
// queue. The worker drains the queue first, then takes the stack, runs one grace period, then the
// C callbacks, then the queue's callbacks in order: a barrier marker therefore runs after every
// callback queued before it, of either kind (a head pushed before the marker was queued is on the
// stack when the worker takes it, which is after it dequeued the marker). Callbacks queued while a
// grace period runs go to the next batch, so each waits for at least one full grace period after
// it was queued.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;

namespace RefRuntime.Core.Rcu;

/// <summary>The callback head a C caller embeds in its object (<c>rr_rcu_head_t</c>).</summary>
public unsafe struct RcuHead
{
    /// <summary>Reserved for the implementation.</summary>
    public RcuHead* Next;

    /// <summary>The function the worker calls with the head after a grace period.</summary>
    public delegate* unmanaged<RcuHead*, void> Func;
}

public sealed unsafe partial class RawRcuDomain
{
    /// <summary>The default bound on callbacks queued and not yet run (see <see cref="MaxPendingCallbacks"/>).</summary>
    public const long DefaultMaxPending = 1_000_000;

    private readonly ConcurrentQueue<Callback> _queue = new();
    private readonly object _workLock = new();
    private nint _nativeStack; // RcuHead*: C callbacks, newest first
    private long _enqueued;
    private long _ran;
    private long _maxPending = DefaultMaxPending;
    private long _callbackErrors;
    private long _overflowed;
    private int _pollRequested;
    private int _workerIdle;
    private bool _stopping;
    private Thread? _worker;

    /// <summary>
    /// The bound on callbacks queued and not yet run: a <see cref="Call(Action)"/> beyond it waits
    /// until the worker has drained half of them (back-pressure instead of unbounded growth).
    /// Inside a read section, or on the worker itself, waiting could deadlock, so such calls are
    /// queued anyway and counted in <see cref="OverflowedCalls"/>.
    /// </summary>
    public long MaxPendingCallbacks
    {
        get => Volatile.Read(ref _maxPending);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            Volatile.Write(ref _maxPending, value);
        }
    }

    /// <summary>Callbacks queued and not yet run.</summary>
    public long PendingCallbacks => Volatile.Read(ref _enqueued) - Volatile.Read(ref _ran);

    /// <summary>Callbacks queued past <see cref="MaxPendingCallbacks"/> because the caller could not wait.</summary>
    public long OverflowedCalls => Volatile.Read(ref _overflowed);

    /// <summary>Managed callbacks that threw (the exception is traced; the worker carries on).</summary>
    public long CallbackErrors => Volatile.Read(ref _callbackErrors);

    /// <summary>Whether the calling thread is this domain's callback worker.</summary>
    public bool OnWorkerThread => ReferenceEquals(Thread.CurrentThread, _worker);

    /// <summary>Runs <paramref name="callback"/> on the worker after a grace period.</summary>
    /// <param name="callback">The callback; exceptions it throws are counted and traced.</param>
    public void Call(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        Enqueue(new Callback { Managed = callback });
    }

    /// <summary>Runs <c>head-&gt;Func(head)</c> on the worker after a grace period (the C form: no allocation).</summary>
    /// <param name="head">The caller's head; it must stay valid until the function has been called.</param>
    /// <param name="func">The function.</param>
    /// <returns><see cref="RrStatus.Ok"/> or <see cref="RrStatus.InvalidArgument"/> (NULL).</returns>
    public RrStatus Call(RcuHead* head, delegate* unmanaged<RcuHead*, void> func)
    {
        if (head == null || func == null)
        {
            return RrStatus.InvalidArgument;
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        head->Func = func;
        nint top = Volatile.Read(ref _nativeStack);
        while (true)
        {
            // SAFETY: the head is the caller's, valid until its function runs (Call's contract);
            // it is not visible to the worker until the CAS publishes it.
            head->Next = (RcuHead*)top;
            nint seen = Interlocked.CompareExchange(ref _nativeStack, (nint)head, top);
            if (seen == top)
            {
                break;
            }

            top = seen;
        }

        Queued(throttle: true);
        return RrStatus.Ok;
    }

    /// <summary>Waits until every callback queued before this call, by any thread, has run.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.WouldDeadlock"/> on the worker itself (from a callback).</returns>
    public RrStatus Barrier()
    {
        if (OnWorkerThread)
        {
            return RrStatus.WouldDeadlock;
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        using var done = new ManualResetEventSlim();
        // The marker goes through the same FIFO queue, bypassing back-pressure.
        Enqueue(new Callback { Managed = done.Set, IsBarrier = true }, throttle: false);
        done.Wait();
        return RrStatus.Ok;
    }

    private void RequestGracePeriod()
    {
        // ORDERING: full fence before Wake reads _workerIdle (pairs with the worker's exchange).
        Interlocked.Exchange(ref _pollRequested, 1);
        EnsureWorker();
        Wake();
    }

    private void Enqueue(Callback cb, bool throttle = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _queue.Enqueue(cb);
        Queued(throttle);
    }

    // After a callback was queued (a full fence): count it, wake the worker, apply back-pressure.
    private void Queued(bool throttle)
    {
        long pending = Interlocked.Increment(ref _enqueued) - Volatile.Read(ref _ran);
        EnsureWorker();
        Wake();
        if (throttle && pending > Volatile.Read(ref _maxPending))
        {
            Throttle();
        }
    }

    private void Throttle()
    {
        if (InReadSection || OnWorkerThread)
        {
            Interlocked.Increment(ref _overflowed);
            return;
        }

        long target = Volatile.Read(ref _maxPending) / 2;
        lock (_workLock)
        {
            while (PendingCallbacks > target && !_stopping)
            {
                Monitor.Wait(_workLock, 100);
            }
        }
    }

    private void Wake()
    {
        // Only a sleeping worker needs the lock and a pulse. ORDERING: the caller's enqueue (a
        // full fence) precedes this read; the worker sets _workerIdle with a full fence before it
        // checks the queue: one of the two always sees the other (Dekker).
        if (Volatile.Read(ref _workerIdle) != 0)
        {
            lock (_workLock)
            {
                Monitor.PulseAll(_workLock);
            }
        }
    }

    private void EnsureWorker()
    {
        if (Volatile.Read(ref _worker) is not null)
        {
            return;
        }

        lock (_workLock)
        {
            if (_worker is null && !_stopping)
            {
                var t = new Thread(WorkerLoop) { IsBackground = true, Name = $"rcu-worker-{Id}" };
                _worker = t;
                t.Start();
            }
        }
    }

    private void StopWorker()
    {
        Thread? t;
        lock (_workLock)
        {
            _stopping = true;
            t = _worker;
            Monitor.PulseAll(_workLock);
        }

        t?.Join();
    }

    private void WorkerLoop()
    {
        var batch = new List<Callback>();
        while (true)
        {
            lock (_workLock)
            {
                while (true)
                {
                    Interlocked.Exchange(ref _workerIdle, 1);
                    if (!_queue.IsEmpty || Volatile.Read(ref _nativeStack) != 0 || Volatile.Read(ref _pollRequested) != 0 || _stopping)
                    {
                        break;
                    }

                    Monitor.Wait(_workLock);
                }

                Volatile.Write(ref _workerIdle, 0);
                if (_stopping && _queue.IsEmpty && Volatile.Read(ref _nativeStack) == 0)
                {
                    return;
                }
            }

            Volatile.Write(ref _pollRequested, 0);
            batch.Clear();
            while (_queue.TryDequeue(out Callback cb))
            {
                batch.Add(cb);
            }

            // After the queue (see file comment); reversed into the order the heads were queued.
            RcuHead* native = null;
            for (RcuHead* h = (RcuHead*)Interlocked.Exchange(ref _nativeStack, 0); h != null;)
            {
                RcuHead* next = h->Next;
                h->Next = native;
                native = h;
                h = next;
            }

            Synchronize();
            long nativeRan = 0;
            while (native != null)
            {
                RcuHead* next = native->Next; // read first: the function may free the head
                // SAFETY: the caller keeps the head valid until its function runs (Call's contract).
                native->Func(native);
                native = next;
                nativeRan++;
            }

            if (nativeRan != 0)
            {
                Interlocked.Add(ref _ran, nativeRan);
            }

            // Callbacks are counted per batch (one atomic per batch), except that a Barrier's
            // marker first counts everything before it, itself included: when Barrier returns,
            // PendingCallbacks no longer includes what it waited for.
            int counted = 0;
            for (int i = 0; i < batch.Count; i++)
            {
                Callback cb = batch[i];
                if (cb.IsBarrier)
                {
                    Interlocked.Add(ref _ran, i + 1 - counted);
                    counted = i + 1;
                }

                Run(cb);
            }

            Interlocked.Add(ref _ran, batch.Count - counted);
            lock (_workLock)
            {
                Monitor.PulseAll(_workLock); // throttled callers
            }
        }
    }

    private void Run(Callback cb)
    {
        try
        {
            cb.Managed();
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _callbackErrors);
            Trace.TraceError($"RefRuntime: an RCU callback threw: {e}");
        }
    }

    private struct Callback
    {
        public required Action Managed;
        public bool IsBarrier; // a Barrier's marker: everything before it is counted as run first
    }
}
