using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.Rcu;

/// <summary>
/// rcutorture-style: readers dereference a published object inside a section and check it is
/// neither poisoned nor too old; writers replace it and push retired objects through a pipeline
/// of grace periods (age 0, 1, 2 ...) before poisoning and freeing them. With correct RCU a
/// reader can see an object at most one grace period into its retirement (age ≤ 1) and never
/// poison. Objects live in quarantined native memory, so a use after free reads poison.
/// </summary>
[Trait("Category", "Stress")]
public sealed unsafe class RcuTortureTests(ITestOutputHelper output)
{
    private const ulong Live = 0x1111_2222_3333_4444;
    private const int PipelineLength = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct Item
    {
        public ulong Canary;
        public long Age;       // -1 while published; grace periods elapsed since retirement after that
        public long Serial;
    }

    [Fact]
    public void Torture_ReadersNeverSeePoisonOrOverAgedObjects()
    {
        TimeSpan duration = StressConfig.Duration(3);
        using var domain = new RawRcuDomain();
        NativeHeap.Quarantine = true;
        nint published = (nint)NewItem(0);
        int stop = 0;
        var ageHistogram = new long[PipelineLength + 2];
        long reads = 0, poisoned = 0, gracePeriods = 0, freed = 0, deferredFreed = 0;
        var pipeline = new List<nint>();
        try
        {
            var readers = new Thread[Math.Max(2, Environment.ProcessorCount)];
            for (int t = 0; t < readers.Length; t++)
            {
                readers[t] = new Thread(() =>
                {
                    var local = new long[ageHistogram.Length];
                    long n = 0, bad = 0;
                    do
                    {
                        domain.ReadLock();
                        Item* it = (Item*)RawRcuPointer.Dereference(ref published);
                        // SAFETY: inside the section the item is not freed (what this test checks).
                        for (int spin = 0; spin < 20; spin++)
                        {
                            if (Volatile.Read(ref it->Canary) != Live)
                            {
                                bad++;
                                break;
                            }
                        }

                        long age = Volatile.Read(ref it->Age);
                        local[Math.Clamp(age + 1, 0, local.Length - 1)]++;
                        if (Volatile.Read(ref it->Canary) != Live)
                        {
                            bad++;
                        }

                        domain.ReadUnlock();
                        n++;
                    }
                    while (Volatile.Read(ref stop) == 0); // at least one round, however late the thread starts

                    lock (ageHistogram)
                    {
                        for (int i = 0; i < local.Length; i++)
                        {
                            ageHistogram[i] += local[i];
                        }
                    }

                    Interlocked.Add(ref reads, n);
                    Interlocked.Add(ref poisoned, bad);
                });
                readers[t].Start();
            }

            // Writer 2: retires through call (no waiting), concurrently with writer 1.
            var deferredWriter = new Thread(() =>
            {
                long serial = 1_000_000;
                do
                {
                    Item* fresh = NewItem(serial++);
                    Item* old = (Item*)RawRcuPointer.Exchange(ref published, (nint)fresh);
                    Volatile.Write(ref old->Age, 0);
                    domain.Call(() =>
                    {
                        Poison(old);
                        Interlocked.Increment(ref deferredFreed);
                    });
                    Thread.Sleep(1);
                }
                while (Volatile.Read(ref stop) == 0); // at least one round, however late the thread starts
            });
            deferredWriter.Start();

            // Writer 1: replaces, then ages the pipeline by one per grace period.
            var clock = Stopwatch.StartNew();
            long serial1 = 1;
            while (clock.Elapsed < duration)
            {
                Item* fresh = NewItem(serial1++);
                Item* old = (Item*)RawRcuPointer.Exchange(ref published, (nint)fresh);
                Volatile.Write(ref old->Age, 0);
                pipeline.Add((nint)old);
                Assert.Equal(RrStatus.Ok, domain.Synchronize());
                gracePeriods++;
                for (int i = pipeline.Count - 1; i >= 0; i--)
                {
                    Item* p = (Item*)pipeline[i];
                    long age = Interlocked.Increment(ref p->Age);
                    if (age >= PipelineLength)
                    {
                        Poison(p);
                        freed++;
                        pipeline.RemoveAt(i);
                    }
                }
            }

            Volatile.Write(ref stop, 1);
            deferredWriter.Join();
            foreach (Thread r in readers)
            {
                r.Join();
            }

            domain.Barrier();
            output.WriteLine($"reads {reads}, grace periods {gracePeriods}, freed {freed} + {deferredFreed} via call, poisoned reads {poisoned}");
            output.WriteLine("age histogram (published, 0, 1, 2, >=3): " + string.Join(", ", ageHistogram));
            Assert.Equal(0, poisoned);
            Assert.True(reads > 0 && gracePeriods > 0 && deferredFreed > 0);
            // ageHistogram[i] counts age i - 1: indexes 3 and 4 are ages 2 and older.
            Assert.Equal(0, ageHistogram[3] + ageHistogram[4]);
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            NativeHeap.Quarantine = false;
            NativeHeap.ReleaseQuarantine();
        }
    }

    private static Item* NewItem(long serial)
    {
        Item* it = (Item*)NativeHeap.AllocZeroed((nuint)sizeof(Item), 16);
        // SAFETY: fresh block; published only after these stores (Exchange is a full fence).
        it->Canary = Live;
        it->Age = -1;
        it->Serial = serial;
        return it;
    }

    private static void Poison(Item* it) => NativeHeap.Free(it, (nuint)sizeof(Item));
}
