using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Rcu;
using Xunit;

namespace RefRuntime.Core.Tests.Rcu;

/// <summary>Deterministic RCU semantics (docs/rcu.md): who a grace period waits for, and who it does not.</summary>
public sealed unsafe class RcuDomainTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private readonly RawRcuDomain _d = new();

    public void Dispose()
    {
        if (!_d.IsDisposed)
        {
            _d.Dispose();
        }
    }

    /// <summary>Runs a reader on its own thread: enters, signals, holds until released, exits.</summary>
    private sealed class HeldReader : IDisposable
    {
        private readonly ManualResetEventSlim _inside = new();
        private readonly ManualResetEventSlim _release = new();
        private readonly Thread _thread;

        public HeldReader(RawRcuDomain d, int nesting = 1)
        {
            _thread = new Thread(() =>
            {
                ThreadId = Environment.CurrentManagedThreadId;
                for (int i = 0; i < nesting; i++)
                {
                    d.ReadLock();
                }

                _inside.Set();
                _release.Wait();
                for (int i = 0; i < nesting; i++)
                {
                    d.ReadUnlock();
                }
            });
            _thread.Start();
            Assert.True(_inside.Wait(Patience));
        }

        public int ThreadId { get; private set; }

        public void Release()
        {
            _release.Set();
            _thread.Join();
        }

        public void Dispose() => Release();
    }

    [Fact]
    public void Layout_MatchesCHeader()
    {
        Assert.Equal(128, sizeof(RcuDomainState));
        Assert.Equal(64, (int)Marshal.OffsetOf<RcuDomainState>(nameof(RcuDomainState.GpCtr)));
        Assert.Equal(16, (int)Marshal.OffsetOf<RcuDomainState>(nameof(RcuDomainState.GateWord)));
        Assert.Equal(64, sizeof(RcuReader));
        Assert.Equal(16, (int)Marshal.OffsetOf<RcuReader>(nameof(RcuReader.InUse)));
    }

    // A grace period waits for a reader that was inside before it started.
    [Fact]
    public void Synchronize_PreExistingReader_Waits()
    {
        using var reader = new HeldReader(_d);
        Background<RrStatus> sync = Background<RrStatus>.Run(_d.Synchronize);
        Assert.False(sync.Wait(200));
        reader.Release();
        Assert.True(sync.Wait(Patience));
        Assert.Equal(RrStatus.Ok, sync.Result);
    }

    // ... and not for one that started after it: the old reader leaves, the new one stays inside.
    [Fact]
    public void Synchronize_ReaderStartedAfter_NotWaitedFor()
    {
        var old = new HeldReader(_d);
        Background<RrStatus> sync = Background<RrStatus>.Run(_d.Synchronize);
        Assert.False(sync.Wait(100)); // waiting for old
        using var late = new HeldReader(_d);
        old.Release();
        Assert.True(sync.Wait(Patience)); // completes although late is still inside
    }

    // Nesting: only the outermost unlock ends the section.
    [Fact]
    public void Synchronize_NestedReader_WaitsForOutermostUnlock()
    {
        var ready = new ManualResetEventSlim();
        var step = new SemaphoreSlim(0);
        var t = new Thread(() =>
        {
            _d.ReadLock();
            _d.ReadLock();
            ready.Set();
            step.Wait();
            _d.ReadUnlock(); // still inside the outer section
            step.Wait();
            _d.ReadUnlock();
        });
        t.Start();
        Assert.True(ready.Wait(Patience));
        Background<RrStatus> sync = Background<RrStatus>.Run(_d.Synchronize);
        step.Release();
        Assert.False(sync.Wait(200));
        step.Release();
        Assert.True(sync.Wait(Patience));
        t.Join();
    }

    // Unlock without lock is refused; the thread's state is unchanged.
    [Fact]
    public void ReadUnlock_WithoutLock_ReturnsFalse()
    {
        Assert.False(_d.ReadUnlock());
        Assert.False(_d.InReadSection);
        _d.ReadLock();
        Assert.True(_d.InReadSection);
        Assert.True(_d.ReadUnlock());
        Assert.False(_d.ReadUnlock());
    }

    // Synchronize inside a read section of the same domain is a clear error, not a hang;
    // inside a section of another domain it is fine.
    [Fact]
    public void Synchronize_InsideOwnSection_WouldDeadlock()
    {
        using var other = new RawRcuDomain();
        _d.ReadLock();
        Assert.Equal(RrStatus.WouldDeadlock, _d.Synchronize());
        Assert.Equal(RrStatus.Ok, other.Synchronize());
        _d.ReadUnlock();
        Assert.Equal(RrStatus.Ok, _d.Synchronize());
    }

    // A reader in one domain never delays another domain's grace periods.
    [Fact]
    public void Domains_AreIndependent()
    {
        using var other = new RawRcuDomain();
        using var reader = new HeldReader(other);
        Background<RrStatus> sync = Background<RrStatus>.Run(_d.Synchronize);
        Assert.True(sync.Wait(Patience));
    }

    // A callback never runs before the readers that existed when it was queued have finished.
    [Fact]
    public void Call_WaitsForPreExistingReaders()
    {
        int ran = 0;
        var reader = new HeldReader(_d);
        _d.Call(() => Interlocked.Increment(ref ran));
        Thread.Sleep(200);
        Assert.Equal(0, Volatile.Read(ref ran));
        reader.Release();
        Assert.Equal(RrStatus.Ok, _d.Barrier());
        Assert.Equal(1, ran);
    }

    // Barrier sees every callback queued by every thread run exactly once, in queue order per thread.
    [Fact]
    public void Barrier_AllThreadsCallbacks_RunExactlyOnce()
    {
        const int threads = 4, each = 2000;
        var runs = new int[threads * each];
        var lastSeen = new int[threads];
        Array.Fill(lastSeen, -1);
        int outOfOrder = 0;
        Parallel.For(0, threads, t =>
        {
            for (int i = 0; i < each; i++)
            {
                int id = t * each + i, seq = i, thread = t;
                _d.Call(() =>
                {
                    Interlocked.Increment(ref runs[id]);
                    if (lastSeen[thread] >= seq)
                    {
                        Interlocked.Increment(ref outOfOrder);
                    }

                    lastSeen[thread] = seq;
                });
            }
        });
        Assert.Equal(RrStatus.Ok, _d.Barrier());
        Assert.All(runs, r => Assert.Equal(1, r));
        Assert.Equal(0, outOfOrder);
        Assert.Equal(0, _d.PendingCallbacks);
    }

    // Barrier from a callback would wait for itself: refused.
    [Fact]
    public void Barrier_FromCallback_WouldDeadlock()
    {
        RrStatus inner = RrStatus.Ok;
        _d.Call(() => inner = _d.Barrier());
        _d.Barrier();
        Assert.Equal(RrStatus.WouldDeadlock, inner);
    }

    // A throwing callback is counted; the worker carries on.
    [Fact]
    public void Call_ThrowingCallback_CountedWorkerContinues()
    {
        int after = 0;
        _d.Call(() => throw new InvalidOperationException("boom"));
        _d.Call(() => after = 1);
        _d.Barrier();
        Assert.Equal(1, _d.CallbackErrors);
        Assert.Equal(1, after);
    }

    // Polled grace periods: not done while a pre-existing reader holds on; done after.
    [Fact]
    public void Poll_PreExistingReader_DoneOnlyAfterItLeaves()
    {
        var reader = new HeldReader(_d);
        ulong cookie = _d.StartPoll();
        Thread.Sleep(200);
        Assert.False(_d.Poll(cookie));
        reader.Release();
        var deadline = DateTime.UtcNow + Patience;
        while (!_d.Poll(cookie) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(1);
        }

        Assert.True(_d.Poll(cookie));
    }

    // A reader that keeps a grace period waiting past the threshold is reported, with its thread.
    [Fact]
    public void StallHandler_LongReader_Reported()
    {
        var stalls = new List<RawRcuStall>();
        _d.SetStallHandler(TimeSpan.FromMilliseconds(50), s =>
        {
            lock (stalls)
            {
                stalls.Add(s);
            }
        });
        var reader = new HeldReader(_d);
        Background<RrStatus> sync = Background<RrStatus>.Run(_d.Synchronize);
        Thread.Sleep(300);
        reader.Release();
        Assert.True(sync.Wait(Patience));
        Assert.Single(stalls);
        Assert.Equal(reader.ThreadId, stalls[0].ThreadId);
        Assert.True(stalls[0].Waited >= TimeSpan.FromMilliseconds(50));
    }

    // Back-pressure: past the bound a caller waits for the worker, so pending stays bounded;
    // inside a read section it cannot wait and the overflow is counted instead.
    [Fact]
    public void Call_PastBound_BackPressureKeepsPendingBounded()
    {
        _d.MaxPendingCallbacks = 16;
        long maxSeen = 0;
        for (int i = 0; i < 400; i++)
        {
            _d.Call(() => Thread.SpinWait(2000));
            maxSeen = Math.Max(maxSeen, _d.PendingCallbacks);
        }

        Assert.True(maxSeen <= 17, $"pending reached {maxSeen}");
        _d.ReadLock();
        for (int i = 0; i < 40; i++)
        {
            _d.Call(() => { });
        }

        _d.ReadUnlock();
        Assert.True(_d.OverflowedCalls > 0);
        _d.Barrier();
    }

    // Destroy: refused while a reader is inside; then runs pending callbacks; afterwards unusable.
    [Fact]
    public void Destroy_BusyThenRunsCallbacksThenUnusable()
    {
        var d = new RawRcuDomain();
        int ran = 0;
        var reader = new HeldReader(d);
        Assert.Equal(RrStatus.Busy, d.Destroy());
        reader.Release();
        d.Call(() => ran = 1);
        Assert.Equal(RrStatus.Ok, d.Destroy());
        Assert.Equal(1, ran);
        Assert.True(d.IsDisposed);
        Assert.Equal(RrStatus.Ok, d.Destroy()); // idempotent
        Assert.Throws<ObjectDisposedException>(() => d.Call(() => { }));
        Assert.Throws<ObjectDisposedException>(() => d.Synchronize());
        Assert.Equal(RrStatus.InvalidArgument, RawRcuDomain.Default.Destroy());
    }

    // A thread that read in a domain keeps its record cached; after another thread destroyed the
    // domain (which frees every record), its next read must be refused, not write freed memory.
    [Fact]
    public void ReadLock_OnAnotherThreadAfterDestroy_ObjectDisposed_NoUseAfterFree()
    {
        bool poison = NativeHeap.PoisonOnFree, quarantine = NativeHeap.Quarantine;
        NativeHeap.PoisonOnFree = true;
        NativeHeap.Quarantine = true;
        try
        {
            var d = new RawRcuDomain();
            using var cached = new ManualResetEventSlim(false);
            using var destroyed = new ManualResetEventSlim(false);
            Exception? seen = null;
            bool inSectionAfter = true;
            var t = new Thread(() =>
            {
                d.ReadLock();
                d.ReadUnlock(); // the record is now in this thread's cache
                cached.Set();
                destroyed.Wait();
                inSectionAfter = d.InReadSection;
                try
                {
                    d.ReadLock();
                }
                catch (ObjectDisposedException e)
                {
                    seen = e;
                }
            });
            t.Start();
            cached.Wait();
            Assert.Equal(RrStatus.Ok, d.Destroy());
            destroyed.Set();
            Assert.True(t.Join(60_000));
            Assert.IsType<ObjectDisposedException>(seen);
            Assert.False(inSectionAfter);
        }
        finally
        {
            NativeHeap.PoisonOnFree = poison;
            NativeHeap.Quarantine = quarantine;
        }
    }

    // Threads that read and exit leave their records for reuse: the registry does not grow
    // with every thread ever created.
    [Fact]
    public void ReaderRecords_OfExitedThreads_AreRecycled()
    {
        for (int round = 0; round < 5; round++)
        {
            var threads = new Thread[8];
            for (int i = 0; i < threads.Length; i++)
            {
                threads[i] = new Thread(() =>
                {
                    _d.ReadLock();
                    _d.ReadUnlock();
                });
                threads[i].Start();
            }

            foreach (Thread t in threads)
            {
                t.Join();
            }

            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        Assert.True(_d.ReaderRecordCount <= 20, $"{_d.ReaderRecordCount} records for 40 short-lived threads");
        Assert.Equal(RrStatus.Ok, _d.Synchronize());
    }

    // The C head form: the function runs once with its head, after a grace period.
    [Fact]
    public void CallNative_RunsFunctionWithHead()
    {
        RcuHead* head = (RcuHead*)NativeMemory.AllocZeroed((nuint)sizeof(RcuHead));
        try
        {
            s_nativeRuns = 0;
            Assert.Equal(RrStatus.Ok, _d.Call(head, &NativeCallback));
            Assert.Equal(RrStatus.InvalidArgument, _d.Call(null, &NativeCallback));
            _d.Barrier();
            Assert.Equal(1, s_nativeRuns);
            Assert.True(s_lastHead == (nint)head);
        }
        finally
        {
            NativeMemory.Free(head);
        }
    }

    // C heads (the intrusive stack) and .NET callbacks (the queue) from several threads: each
    // thread's Barrier returns only after every callback it queued before, of both kinds, ran;
    // each thread's C callbacks run in the order it queued them; nothing runs twice or is lost.
    [Fact]
    public void CallNativeAndManaged_FromThreads_BarrierCoversBoth_OrderPerThreadKept()
    {
        const int threads = 4, rounds = 50, perRound = 40;
        var heads = (TrackedHead*)NativeMemory.AllocZeroed((nuint)(threads * rounds * perRound), (nuint)sizeof(TrackedHead));
        var managedRuns = new int[threads];
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        try
        {
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int me = t;
                workers[t] = new Thread(() =>
                {
                    for (int r = 0; r < rounds; r++)
                    {
                        int managedBefore = Volatile.Read(ref managedRuns[me]);
                        for (int i = 0; i < perRound; i++)
                        {
                            TrackedHead* h = &heads[(me * rounds + r) * perRound + i];
                            h->Thread = me;
                            h->Seq = r * perRound + i;
                            Assert.Equal(RrStatus.Ok, _d.Call(&h->Head, &TrackedCallback));
                            if (i % 4 == 0)
                            {
                                _d.Call(() => Interlocked.Increment(ref managedRuns[me]));
                            }
                        }

                        Assert.Equal(RrStatus.Ok, _d.Barrier());
                        for (int i = 0; i < perRound; i++)
                        {
                            if (heads[(me * rounds + r) * perRound + i].Runs != 1)
                            {
                                failures.Enqueue($"thread {me} round {r} head {i}: ran {heads[(me * rounds + r) * perRound + i].Runs} times when Barrier returned");
                            }
                        }

                        if (Volatile.Read(ref managedRuns[me]) != managedBefore + perRound / 4)
                        {
                            failures.Enqueue($"thread {me} round {r}: managed callbacks missing when Barrier returned");
                        }
                    }
                });
                workers[t].Start();
            }

            foreach (Thread w in workers)
            {
                w.Join();
            }

            Assert.Empty(failures);
            Assert.Equal(0, _d.PendingCallbacks);
            for (int t = 0; t < threads; t++)
            {
                for (int k = 0; k < rounds * perRound; k++)
                {
                    // Order kept per thread: each head recorded the sequence number run before it.
                    Assert.Equal(k - 1, heads[t * rounds * perRound + k].PreviousSeq);
                }
            }
        }
        finally
        {
            NativeMemory.Free(heads);
        }
    }

    private struct TrackedHead
    {
        public RcuHead Head; // first: the callback gets the head's address = the struct's
        public int Thread;
        public int Seq;
        public int Runs;
        public int PreviousSeq;
    }

    private static readonly int[] s_lastSeq = [-1, -1, -1, -1];

    [UnmanagedCallersOnly]
    private static void TrackedCallback(RcuHead* head)
    {
        var h = (TrackedHead*)head; // runs on the worker only: no race on s_lastSeq
        h->Runs++;
        h->PreviousSeq = s_lastSeq[h->Thread];
        s_lastSeq[h->Thread] = h->Seq;
    }

    private static int s_nativeRuns;
    private static nint s_lastHead;

    [UnmanagedCallersOnly]
    private static void NativeCallback(RcuHead* head)
    {
        Interlocked.Increment(ref s_nativeRuns);
        s_lastHead = (nint)head;
    }
}
