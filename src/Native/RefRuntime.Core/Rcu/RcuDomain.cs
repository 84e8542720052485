// An RCU domain: read-side critical sections that cost two plain stores, grace periods that wait
// for every pre-existing reader, deferred callbacks, polled grace periods. Spec:
// docs/rcu.md; the reader/writer protocol is liburcu's memb flavour.
//
// Design. Every thread that reads in a domain owns a reader record (RcuLayout.cs), found through
// a thread-local cache and created on the thread's first read lock - no registration call, so
// any thread works: a C host's pthreads, the .NET thread pool, threads that come and go. Records
// of threads that exit are recycled (their owner object's finalizer marks them free). Readers
// never write a shared cache line: each writes only its own record, so the read side scales
// with the number of cores (the per-CPU reader state of the issue, found per thread, which
// avoids both the two atomic operations per section of per-CPU counters and registration).
//
// Why it is correct. The outermost read lock loads gp_ctr and stores it in the record; the
// writer (Synchronize) does: process-wide barrier, wait until no record is active in a phase
// other than the current one, flip the phase, wait again, process-wide barrier. The process-wide
// barrier (membarrier on Linux: Interlocked.MemoryBarrierProcessWide) makes every reader thread
// execute a full fence at some point ordered with the writer, so readers need no fence of their
// own - only that the compiler keeps their record store before the section's loads:
//   * a reader whose record store precedes that fence point is seen by the scan and waited for;
//   * a reader whose record store follows it performs all its section's loads after the fence,
//     so it sees every update the writer made before calling Synchronize (the old version was
//     already unpublished) and cannot hold a reference to what the writer will free.
// The wait before the flip is needed because a reader can load gp_ctr, stall, and store its
// phase after an earlier grace period's scan: by now that phase is stale, and a flip would make
// it look current. Waiting out every stale reader first (liburcu's order) closes that hole; a
// reader entering after the flip takes the new phase and is not waited for.
//
// Compiler ordering on the .NET side. The record store is a Volatile.Write and protected loads
// go through Volatile.Read (RawRcuPointer); the .NET memory model gives those release and acquire
// semantics, which alone would allow a later load to move above the earlier store. RyuJIT and
// the NativeAOT compiler do not move volatile accesses across each other, which is what the
// read side relies on (the C inline read side uses an explicit compiler barrier instead). The
// torture test (RcuTortureTests) is there to catch a violation.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Memory;

namespace RefRuntime.Core.Rcu;

/// <summary>A reader that has kept a grace period waiting longer than the stall threshold.</summary>
/// <param name="ThreadId">The managed id of the reader's thread.</param>
/// <param name="Waited">How long the grace period has waited for it so far.</param>
public readonly record struct RawRcuStall(int ThreadId, TimeSpan Waited);

/// <summary>An RCU domain (see file comment). Thread-safe.</summary>
public sealed unsafe partial class RawRcuDomain : IDisposable
{
    /// <summary>Magic of a live domain's native state ("RCU1").</summary>
    public const uint MagicLive = 0x3155_4352;

    /// <summary>The phase bit of gp_ctr and reader records.</summary>
    public const ulong Phase = 1UL << 32;

    /// <summary>The nesting bits of a reader record.</summary>
    public const ulong NestMask = Phase - 1;

    /// <summary>One level of nesting.</summary>
    public const ulong NestOne = 1;

    private static int s_nextId;

    // How long a grace period spins on one reader before it sleeps between checks (50 µs).
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000;


    private readonly RcuDomainState* _state;
    private readonly GCHandle _self;
    private readonly Lock _gpLock = new();
    private readonly Lock _registryLock = new();
    private nint _head; // RcuReader* list, pushed with CAS
    private long _gpStarted;
    private long _gpCompleted;
    private long _stallTicks = long.MaxValue;
    private Action<RawRcuStall>? _onStall;
    private volatile bool _disposed;
    private readonly bool _permanent; // never destroyed; native memory outside the leak count

    /// <summary>The process-wide default domain; never disposed.</summary>
    public static RawRcuDomain Default { get; } = new(pinned: true);

    /// <summary>Creates a domain, independent of every other: its readers never delay another domain's grace periods.</summary>
    /// <param name="pinned">Whether the native state keeps the domain alive (for domains owned by C code) until <see cref="Dispose"/>.</param>
    public RawRcuDomain(bool pinned = false)
        : this(pinned, permanent: false)
    {
    }

    private RawRcuDomain(bool pinned, bool permanent)
    {
        _permanent = permanent;
        // SAFETY: fresh zeroed block of sizeof(RcuDomainState), 64-aligned, freed in Dispose
        // (never, for a permanent domain).
        _state = (RcuDomainState*)Alloc((nuint)sizeof(RcuDomainState));
        if (_state == null)
        {
            throw new OutOfMemoryException("RawRcuDomain: native allocation failed.");
        }

        _self = GCHandle.Alloc(this, pinned ? GCHandleType.Normal : GCHandleType.Weak);
        _state->Id = (uint)Interlocked.Increment(ref s_nextId);
        _state->Managed = GCHandle.ToIntPtr(_self);
        // INVARIANT: gp_ctr always carries a nesting count of one, so a reader copying it is nested once.
        _state->GpCtr = NestOne;
        Volatile.Write(ref _state->Magic, MagicLive);
    }

    /// <summary>
    /// A domain that is never destroyed (<see cref="Destroy"/> refuses, as for the default one),
    /// whose native state and reader records stay mapped for the life of the process and are not
    /// counted by <see cref="NativeHeap.LiveCount"/>: the pool behind type-stable gates.
    /// </summary>
    /// <returns>A new pinned domain.</returns>
    public static RawRcuDomain CreatePermanent() => new(pinned: true, permanent: true);

    private void* Alloc(nuint size) => _permanent ? NativeHeap.AllocPermanent(size, 64) : NativeHeap.AllocZeroed(size, 64);

    /// <summary>The native state (the C handle of this domain).</summary>
    public RcuDomainState* State => _state;

    /// <summary>The domain's process-unique id.</summary>
    public uint Id => _state->Id;

    /// <summary>Whether the domain has been disposed.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>Grace periods completed so far.</summary>
    public long CompletedGracePeriods => Volatile.Read(ref _gpCompleted);

    /// <summary>The managed domain behind a native state pointer, validated by magic.</summary>
    /// <param name="state">A pointer from <see cref="State"/>.</param>
    /// <param name="domain">The domain.</param>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/> (NULL) or <see cref="RrStatus.BadHandle"/>.</returns>
    public static RrStatus TryFromState(RcuDomainState* state, out RawRcuDomain? domain)
    {
        domain = null;
        if (state == null)
        {
            return RrStatus.InvalidArgument;
        }

        // SAFETY: best-effort magic check of a well-aligned pointer, as for Arc handles.
        if (((nuint)state & 63) != 0 || Volatile.Read(ref state->Magic) != MagicLive)
        {
            return RrStatus.BadHandle;
        }

        domain = GCHandle.FromIntPtr(state->Managed).Target as RawRcuDomain;
        return domain is null || domain._disposed ? RrStatus.BadHandle : RrStatus.Ok;
    }

    // ---- read side ----------------------------------------------------------------------

    /// <summary>Enters a read-side critical section (nestable). Pair with <see cref="ReadUnlock()"/> on the same thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ReadLock() => ReadLockRecord();

    /// <summary>Leaves a read-side critical section.</summary>
    /// <returns><see langword="false"/> when the thread was not inside a section of this domain (nothing changed).</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool ReadUnlock()
    {
        RcuReader* r = CurrentReader();
        ulong c = r->Ctr;
        if ((c & NestMask) == 0)
        {
            return false;
        }

        Interleave.Point("rcu.unlock");
        // ORDERING: release: the section's loads complete before the record says "outside".
        Volatile.Write(ref r->Ctr, c - NestOne);
        return true;
    }

    /// <summary>Enters a read-side section and returns the thread's record, for <see cref="ReadUnlock(RcuReader*)"/> (saves a lookup).</summary>
    /// <returns>The calling thread's record.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public RcuReader* ReadLockRecord()
    {
        RcuReader* r = CurrentReader();
        ulong c = r->Ctr;
        if ((c & NestMask) == 0)
        {
            Interleave.Point("rcu.lock.load-phase");
            ulong gp = Volatile.Read(ref _state->GpCtr);
            Interleave.Point("rcu.lock.store-record");
            // ORDERING: as in ReadLock.
            Volatile.Write(ref r->Ctr, gp);
        }
        else
        {
            r->Ctr = c + NestOne;
        }

        return r;
    }

    /// <summary>Leaves a section entered by <see cref="ReadLockRecord"/> on this thread.</summary>
    /// <param name="r">The record it returned.</param>
    /// <remarks><b>Safety:</b> <paramref name="r"/> is the calling thread's record in this domain.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ReadUnlock(RcuReader* r)
    {
        ulong c = r->Ctr;
        Debug.Assert((c & NestMask) != 0, "unlock without lock");
        Interleave.Point("rcu.unlock");
        // ORDERING: release, as in ReadUnlock().
        Volatile.Write(ref r->Ctr, c - NestOne);
    }

    /// <summary>Whether the calling thread is inside a read-side section of this domain.</summary>
    public bool InReadSection
    {
        get
        {
            RcuReader* r = PeekReader();
            return r != null && (Volatile.Read(ref r->Ctr) & NestMask) != 0;
        }
    }

    /// <summary>The calling thread's reader record in this domain, created on first use.</summary>
    /// <exception cref="ObjectDisposedException">The domain has been destroyed (also when this thread cached a record before).</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public RcuReader* CurrentReader()
    {
        ref ReaderCache cache = ref Tls.Cache;
        // Destroy frees every record but can clear only its own thread's cache: another thread's
        // cache may still name this domain, so the fast path checks the flag (the slow path throws).
        return cache.Domain == this && !_disposed ? cache.Reader : CurrentReaderSlow();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RcuReader* CurrentReaderSlow()
    {
        if (_disposed)
        {
            throw new ObjectDisposedException(nameof(RawRcuDomain));
        }

        ThreadReaders readers = Tls.Readers ??= new ThreadReaders();
        RcuReader* r = readers.Find(this);
        if (r == null)
        {
            r = AcquireRecord();
            readers.Add(this, r);
        }

        Tls.Cache = new ReaderCache { Domain = this, Reader = r };
        return r;
    }

    private RcuReader* PeekReader()
    {
        if (_disposed)
        {
            return null; // its records are freed
        }

        ref ReaderCache cache = ref Tls.Cache;
        return cache.Domain == this ? cache.Reader : Tls.Readers is { } readers ? readers.Find(this) : null;
    }

    private RcuReader* AcquireRecord()
    {
        int tid = Environment.CurrentManagedThreadId;
        for (RcuReader* r = (RcuReader*)Volatile.Read(ref _head); r != null; r = r->Next)
        {
            // SAFETY: records live until Dispose; a free one is claimed by exactly one CAS.
            if (Volatile.Read(ref r->InUse) == 0 && Interlocked.CompareExchange(ref r->InUse, 1, 0) == 0)
            {
                Debug.Assert((r->Ctr & NestMask) == 0, "a recycled record is outside any section");
                r->ThreadId = tid;
                return r;
            }
        }

        RcuReader* fresh = (RcuReader*)Alloc((nuint)sizeof(RcuReader));
        if (fresh == null)
        {
            throw new OutOfMemoryException("RawRcuDomain: reader record allocation failed.");
        }

        fresh->InUse = 1;
        fresh->ThreadId = tid;
        nint head;
        do
        {
            Interleave.Point("rcu.register.push");
            head = Volatile.Read(ref _head);
            fresh->Next = (RcuReader*)head;
        }
        while (Interlocked.CompareExchange(ref _head, (nint)fresh, head) != head);
        return fresh;
    }

    /// <summary>Marks a dead thread's record free for reuse (called by its owner's finalizer).</summary>
    internal void ReleaseRecord(RcuReader* r)
    {
        lock (_registryLock)
        {
            // A record of a thread that died inside a section stays owned: its section never
            // ends, and the stall report names it.
            if (!_disposed && (Volatile.Read(ref r->Ctr) & NestMask) == 0)
            {
                Volatile.Write(ref r->InUse, 0);
            }
        }
    }

    /// <summary>Whether some thread is inside a read-side section of this domain now (plain loads: the caller orders them, e.g. with a process-wide barrier).</summary>
    public bool HasActiveReader()
    {
        for (RcuReader* r = (RcuReader*)Volatile.Read(ref _head); r != null; r = r->Next)
        {
            Interleave.Point("rcu.scan-active");
            if ((Volatile.Read(ref r->Ctr) & NestMask) != 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Number of reader records (threads that ever read, minus recycled ones).</summary>
    public int ReaderRecordCount
    {
        get
        {
            int n = 0;
            for (RcuReader* r = (RcuReader*)Volatile.Read(ref _head); r != null; r = r->Next)
            {
                n++;
            }

            return n;
        }
    }

    // ---- grace periods -------------------------------------------------------------------

    /// <summary>
    /// Waits until every read-side section that was running when it was called has ended (a
    /// grace period). Sections that begin later are not waited for.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.WouldDeadlock"/> when called inside a read section of this domain.</returns>
    public RrStatus Synchronize()
    {
        if (InReadSection)
        {
            return RrStatus.WouldDeadlock;
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_gpLock)
        {
            long number = Interlocked.Increment(ref _gpStarted);
            // ORDERING: pairs with every reader's record store (file comment): readers that
            // entered before this point are visible to the scan, the others see our updates.
            Interlocked.MemoryBarrierProcessWide();
            // liburcu's order: first wait out stale readers (a phase older than the current one:
            // loaded gp_ctr before the previous flip), then flip and wait for the readers that
            // hold the pre-flip phase. A reader that enters after the flip carries the new phase
            // and is not waited for.
            WaitForOldPhase();
            Interleave.Point("rcu.sync.flip");
            FlipPhase();
            WaitForOldPhase();
            Interleave.Point("rcu.sync.done");
            // ORDERING: every waited-for reader's section loads complete before what follows
            // (the caller's free), even for C readers whose unlock is a plain store.
            Interlocked.MemoryBarrierProcessWide();
            Volatile.Write(ref _gpCompleted, number);
        }

        return RrStatus.Ok;
    }

    private void FlipPhase()
    {
        // ORDERING: full fences around the flip: the stale-reader scan completes before it, and it
        // is visible before the next scan reads any record.
        Interlocked.MemoryBarrier();
        Volatile.Write(ref _state->GpCtr, _state->GpCtr ^ Phase);
        Interlocked.MemoryBarrier();
    }

    private void WaitForOldPhase()
    {
        Interleave.Point("rcu.sync.load-head");
        ulong gp = _state->GpCtr;
        long stallTicks = Volatile.Read(ref _stallTicks);
        for (RcuReader* r = (RcuReader*)Volatile.Read(ref _head); r != null; r = r->Next)
        {
            Interleave.Point("rcu.sync.scan-record");
            if (!ActiveInOldPhase(Volatile.Read(ref r->Ctr), gp))
            {
                continue;
            }

            long start = Stopwatch.GetTimestamp();
            bool reported = false;
            var spin = new SpinWait();
            while (ActiveInOldPhase(Volatile.Read(ref r->Ctr), gp))
            {
                Interleave.Point("spin.rcu.sync.wait-reader");
                // Spin briefly (most sections last nanoseconds), then block in 1 ms sleeps so a
                // long section (a gate's call in flight) does not keep a CPU busy.
                if (Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }
                else
                {
                    Thread.Sleep(1);
                }

                if (!reported && Stopwatch.GetTimestamp() - start > stallTicks)
                {
                    reported = true;
                    ReportStall(r->ThreadId, Stopwatch.GetElapsedTime(start));
                }
            }
        }

        // ORDERING: the readers' exits are observed before the next flip or the caller's free.
        Interlocked.MemoryBarrier();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool ActiveInOldPhase(ulong ctr, ulong gp) => (ctr & NestMask) != 0 && ((ctr ^ gp) & Phase) != 0;

    /// <summary>
    /// Starts a polled grace period: returns a cookie that <see cref="Poll"/> reports as done once
    /// a full grace period has elapsed after this call; the background worker runs one if nothing else does.
    /// </summary>
    /// <returns>The cookie.</returns>
    public ulong StartPoll()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // A grace period that has not started yet when we read the counter starts after this
        // call, so it waits for every reader running now.
        ulong cookie = (ulong)Volatile.Read(ref _gpStarted) + 1;
        RequestGracePeriod();
        return cookie;
    }

    /// <summary>Whether a full grace period has elapsed since <see cref="StartPoll"/> returned <paramref name="cookie"/>.</summary>
    /// <param name="cookie">A cookie from <see cref="StartPoll"/>.</param>
    /// <returns><see langword="true"/> once it has.</returns>
    public bool Poll(ulong cookie) => (ulong)Volatile.Read(ref _gpCompleted) >= cookie;

    /// <summary>Reports readers that keep a grace period waiting longer than <paramref name="threshold"/>; <see langword="null"/> turns reports off.</summary>
    /// <param name="threshold">How long a grace period may wait for one reader before it is reported.</param>
    /// <param name="onStall">Called on the waiting writer's thread, once per reader per wait; must not throw.</param>
    public void SetStallHandler(TimeSpan threshold, Action<RawRcuStall>? onStall)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, TimeSpan.Zero);
        _onStall = onStall;
        Volatile.Write(ref _stallTicks, onStall is null ? long.MaxValue : (long)(threshold.TotalSeconds * Stopwatch.Frequency));
    }

    private void ReportStall(int threadId, TimeSpan waited)
    {
        try
        {
            _onStall?.Invoke(new RawRcuStall(threadId, waited));
        }
        catch (Exception e)
        {
            Trace.TraceError($"RefRuntime: an RCU stall handler threw: {e}");
        }
    }

    // ---- shutdown ------------------------------------------------------------------------

    /// <summary>
    /// Destroys the domain: waits for every queued callback to run, stops the worker, frees the
    /// reader records. Refused (<see cref="RrStatus.Busy"/>) while a reader is inside a section;
    /// the default domain cannot be destroyed.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.Busy"/>, <see cref="RrStatus.WouldDeadlock"/> (from a callback), or <see cref="RrStatus.InvalidArgument"/> for the default domain or a permanent one.</returns>
    public RrStatus Destroy()
    {
        if (ReferenceEquals(this, Default) || _permanent)
        {
            return RrStatus.InvalidArgument;
        }

        if (_disposed)
        {
            return RrStatus.Ok;
        }

        if (OnWorkerThread)
        {
            return RrStatus.WouldDeadlock;
        }

        for (RcuReader* r = (RcuReader*)Volatile.Read(ref _head); r != null; r = r->Next)
        {
            if ((Volatile.Read(ref r->Ctr) & NestMask) != 0)
            {
                return RrStatus.Busy;
            }
        }

        // Callbacks exist only once the worker has started (it starts on the first Call or
        // poll request): without one there is nothing to wait for, and no thread to start.
        if (Volatile.Read(ref _worker) is not null)
        {
            RrStatus s = Barrier();
            if (s != RrStatus.Ok)
            {
                return s;
            }
        }

        StopWorker();
        lock (_registryLock)
        {
            _disposed = true;
            RcuReader* r = (RcuReader*)Interlocked.Exchange(ref _head, 0);
            while (r != null)
            {
                RcuReader* next = r->Next;
                NativeHeap.Free(r, (nuint)sizeof(RcuReader));
                r = next;
            }
        }

        if (Tls.Cache.Domain == this)
        {
            Tls.Cache = default;
        }

        Volatile.Write(ref _state->Magic, 0xDEAD_4355);
        NativeHeap.Free(_state, (nuint)sizeof(RcuDomainState));
        _self.Free();
        return RrStatus.Ok;
    }

    /// <summary>Destroys the domain (see <see cref="Destroy"/>).</summary>
    /// <exception cref="InvalidOperationException">A reader is inside a section, it is the default domain, or it is called from a callback.</exception>
    public void Dispose()
    {
        RrStatus s = Destroy();
        if (s != RrStatus.Ok)
        {
            throw new InvalidOperationException(s switch
            {
                RrStatus.Busy => "RawRcuDomain.Dispose: a reader is still inside a read-side section.",
                RrStatus.WouldDeadlock => "RawRcuDomain.Dispose: called from one of the domain's own callbacks.",
                _ => "RawRcuDomain.Dispose: the default domain cannot be disposed.",
            });
        }
    }

    /// <summary>
    /// The thread statics, in a class of their own with no static constructor: RawRcuDomain has
    /// one (Default, SpinTicks), and NativeAOT code checks that a class's constructor has run
    /// before every access to one of its thread statics - on every read-side entry and exit,
    /// where the JIT's tiered code knows the class is initialised. Measured on a NativeAOT
    /// ReadLock/ReadUnlock loop: see perf-results/README.md (issue 20).
    /// </summary>
    private static class Tls
    {
        [ThreadStatic]
        public static ReaderCache Cache;

        [ThreadStatic]
        public static ThreadReaders? Readers;
    }

    /// <summary>The last domain a thread used and its record there: the read side's fast path.</summary>
    private struct ReaderCache
    {
        public RawRcuDomain? Domain;
        public RcuReader* Reader;
    }

    /// <summary>
    /// A thread's records in every domain it has read in. When the thread exits this object
    /// becomes unreachable and its finalizer hands the records back for reuse.
    /// </summary>
    private sealed class ThreadReaders
    {
        // Strong references: a WeakReference here would be finalized together with this object,
        // possibly first, and could no longer name the domain when the records are handed back.
        private readonly List<(RawRcuDomain Domain, nint Reader)> _entries = new();

        ~ThreadReaders()
        {
            foreach ((RawRcuDomain domain, nint r) in _entries)
            {
                domain.ReleaseRecord((RcuReader*)r);
            }
        }

        public RcuReader* Find(RawRcuDomain domain)
        {
            foreach ((RawRcuDomain d, nint r) in _entries)
            {
                if (ReferenceEquals(d, domain))
                {
                    return (RcuReader*)r;
                }
            }

            return null;
        }

        public void Add(RawRcuDomain domain, RcuReader* r)
        {
            _entries.RemoveAll(e => e.Domain.IsDisposed);
            _entries.Add((domain, (nint)r));
        }
    }
}
