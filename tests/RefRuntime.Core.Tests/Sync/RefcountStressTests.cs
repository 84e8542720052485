using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Sync;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.Sync;

/// <summary>
/// Many threads racing refcount operations on shared objects in native memory, allocated by a
/// counting allocator that poisons on free. Runs for a short slice in the normal suite and for
/// RR_STRESS_SECONDS in stress mode.
/// </summary>
[Trait("Category", "Stress")]
public sealed unsafe class RefcountStressTests(ITestOutputHelper output)
{
    private const ulong Live = 0x0123_4567_89AB_CDEF;
    private const ulong Poison = 0xDEAD_BEEF_DEAD_BEEF;

    [StructLayout(LayoutKind.Sequential)]
    private struct Obj
    {
        public int Refs;
        public int Freed;
        public ulong Payload;
    }

    /// <summary>
    /// A type-stable pool: a "free" poisons the object and counts, but the memory stays mapped
    /// until the round ends, so a stale access reads poison instead of crashing the test host.
    /// </summary>
    private sealed class Pool : IDisposable
    {
        private readonly Obj* _objs;
        private readonly int _capacity;
        private int _next;
        public long Frees;
        public long DoubleFrees;
        public long PoisonedReads;

        public Pool(int capacity)
        {
            _capacity = capacity;
            // SAFETY: zeroed native block of capacity objects, freed in Dispose after all threads joined.
            _objs = (Obj*)NativeMemory.AllocZeroed((nuint)capacity, (nuint)sizeof(Obj));
        }

        public int Allocated => Volatile.Read(ref _next);

        public int Capacity => _capacity;

        public Obj* At(int i) => _objs + i;

        public Obj* Alloc(int refs)
        {
            int i = Interlocked.Increment(ref _next) - 1;
            Assert.True(i < _capacity, "pool exhausted");
            Obj* o = _objs + i;
            // SAFETY: i < capacity; the slot is fresh (never handed out before).
            o->Freed = 0;
            o->Payload = Live;
            Refcount.Set(ref o->Refs, refs);
            return o;
        }

        public void Free(Obj* o)
        {
            // SAFETY: o came from this pool, whose memory outlives every thread of the round.
            if (Interlocked.Exchange(ref o->Freed, 1) != 0)
            {
                Interlocked.Increment(ref DoubleFrees);
            }

            Volatile.Write(ref o->Payload, Poison);
            Interlocked.Increment(ref Frees);
        }

        public void Use(Obj* o)
        {
            // SAFETY: as in Free.
            if (Volatile.Read(ref o->Payload) != Live || Volatile.Read(ref o->Freed) != 0)
            {
                Interlocked.Increment(ref PoisonedReads);
            }
        }

        public void Dispose() => NativeMemory.Free(_objs);
    }

    // Every worker is handed one reference per object and races inc/dec_and_test pairs while the
    // owner drops the original reference at a random moment: each object is freed exactly once,
    // by whoever drops last, and never used after that.
    [Fact]
    public void IncDecAndTest_ManyThreads_ExactlyOneFreePerObject()
    {
        const int objects = 64;
        int workers = StressConfig.Threads;
        TimeSpan duration = StressConfig.Duration(1.5);
        using var probe = new WarningProbe();
        var clock = Stopwatch.StartNew();
        long rounds = 0, pairs = 0;
        while (StressConfig.Continue(clock, duration, Interlocked.Read(ref pairs) > 0))
        {
            using var pool = new Pool(objects);
            var objs = new nint[objects];
            for (int k = 0; k < objects; k++)
            {
                Obj* o = pool.Alloc(1);
                Refcount.Add(workers, ref o->Refs); // one reference handed to each worker
                objs[k] = (nint)o;
            }

            using var go = new ManualResetEventSlim();
            var threads = new Thread[workers + 1];
            for (int t = 0; t <= workers; t++)
            {
                bool owner = t == workers;
                int seed = (int)rounds * 131 + t;
                threads[t] = new Thread(() =>
                {
                    var rng = new Random(seed);
                    go.Wait();
                    if (owner)
                    {
                        foreach (nint p in objs)
                        {
                            Thread.SpinWait(rng.Next(64));
                            Obj* o = (Obj*)p;
                            // SAFETY: the owner's own reference keeps o alive until this drop.
                            if (Refcount.DecAndTest(ref o->Refs))
                            {
                                pool.Free(o);
                            }
                        }

                        return;
                    }

                    long local = 0;
                    for (int i = 0; i < 2000; i++)
                    {
                        Obj* o = (Obj*)objs[rng.Next(objects)];
                        // SAFETY: this worker's handed reference keeps o alive.
                        Refcount.Inc(ref o->Refs);
                        pool.Use(o);
                        if (Refcount.DecAndTest(ref o->Refs))
                        {
                            Interlocked.Increment(ref pool.DoubleFrees); // we still hold ours
                        }

                        local++;
                    }

                    foreach (nint p in objs)
                    {
                        Obj* o = (Obj*)p;
                        pool.Use(o);
                        // SAFETY: dropping the worker's own handed reference.
                        if (Refcount.DecAndTest(ref o->Refs))
                        {
                            pool.Free(o);
                        }
                    }

                    Interlocked.Add(ref pairs, local);
                });
                threads[t].Start();
            }

            go.Set();
            foreach (Thread t in threads)
            {
                t.Join();
            }

            Assert.Equal(objects, pool.Allocated);
            Assert.Equal(objects, Interlocked.Read(ref pool.Frees));
            Assert.Equal(0, Interlocked.Read(ref pool.DoubleFrees));
            Assert.Equal(0, Interlocked.Read(ref pool.PoisonedReads));
            rounds++;
        }

        output.WriteLine($"rounds {rounds}, inc/dec_and_test pairs {pairs}, double frees 0, poisoned reads 0");
        Assert.True(rounds > 0 && pairs > 0);
        probe.AssertNone();
    }

    // Readers take references from published slots with inc_not_zero while a replacer swaps
    // objects out and drops the slot's reference: a reader never gets a reference to an object
    // whose count reached zero, and every object is freed exactly once.
    [Fact]
    public void IncNotZeroDecAndTest_LookupsRaceReplacement_NeverResurrect()
    {
        const int slots = 8;
        const int replacementsPerRound = 20_000;
        int readers = StressConfig.Threads;
        TimeSpan duration = StressConfig.Duration(1.5);
        using var probe = new WarningProbe();
        var clock = Stopwatch.StartNew();
        long lookups = 0, rounds = 0;
        while (StressConfig.Continue(clock, duration, Interlocked.Read(ref lookups) > 0))
        {
            using var pool = new Pool(slots + replacementsPerRound);
            var table = new nint[slots];
            for (int i = 0; i < slots; i++)
            {
                table[i] = (nint)pool.Alloc(1);
            }

            int stop = 0;
            var threads = new Thread[readers];
            for (int t = 0; t < readers; t++)
            {
                int seed = t + 7;
                threads[t] = new Thread(() =>
                {
                    var rng = new Random(seed);
                    long n = 0;
                    while (Volatile.Read(ref stop) == 0)
                    {
                        Obj* o = (Obj*)Volatile.Read(ref table[rng.Next(slots)]);
                        // SAFETY: pool memory is type-stable for the round; a stale object has
                        // count 0 forever, so inc_not_zero refuses it.
                        if (Refcount.IncNotZero(ref o->Refs))
                        {
                            pool.Use(o);
                            n++;
                            if (Refcount.DecAndTest(ref o->Refs))
                            {
                                pool.Free(o);
                            }
                        }
                    }

                    Interlocked.Add(ref lookups, n);
                });
                threads[t].Start();
            }

            var rng = new Random((int)rounds);
            for (int r = 0; r < replacementsPerRound; r++)
            {
                Obj* fresh = pool.Alloc(1);
                Obj* old = (Obj*)Interlocked.Exchange(ref table[rng.Next(slots)], (nint)fresh);
                // SAFETY: the slot's reference keeps old alive until this drop.
                if (Refcount.DecAndTest(ref old->Refs))
                {
                    pool.Free(old);
                }
            }

            Volatile.Write(ref stop, 1);
            foreach (Thread t in threads)
            {
                t.Join();
            }

            foreach (nint p in table)
            {
                Obj* o = (Obj*)p;
                // SAFETY: all readers joined; the slot's reference is the last one.
                Assert.True(Refcount.DecAndTest(ref o->Refs));
                pool.Free(o);
            }

            for (int i = 0; i < pool.Capacity; i++)
            {
                // SAFETY: i < capacity.
                Assert.False(Refcount.IncNotZero(ref pool.At(i)->Refs));
            }

            Assert.Equal(pool.Capacity, Interlocked.Read(ref pool.Frees));
            Assert.Equal(0, Interlocked.Read(ref pool.DoubleFrees));
            Assert.Equal(0, Interlocked.Read(ref pool.PoisonedReads));
            rounds++;
        }

        output.WriteLine($"rounds {rounds}, lookups {Interlocked.Read(ref lookups)}, resurrections 0, poisoned reads 0");
        Assert.True(Interlocked.Read(ref lookups) > 0);
        probe.AssertNone();
    }
}
