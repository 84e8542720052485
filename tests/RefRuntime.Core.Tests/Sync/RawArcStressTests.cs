using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Sync;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.Sync;

/// <summary>
/// Threads racing clone/drop/downgrade/upgrade on shared objects, with the counting heap in
/// quarantine (freed blocks poisoned and kept mapped): every payload destroyed exactly once,
/// every allocation freed exactly once after the last weak, and an upgrade never succeeds once
/// the destructor has started.
/// </summary>
[Trait("Category", "Stress")]
public sealed unsafe class RawArcStressTests(ITestOutputHelper output)
{
    private const ulong Canary = 0x0A7C_0A7C_0A7C_0A7C;
    private static long s_destroyed;
    private static long s_badDestroy;

    [StructLayout(LayoutKind.Sequential)]
    private struct Payload
    {
        public int Destroyed;
        public ulong Canary;
    }

    [UnmanagedCallersOnly]
    private static void Dtor(void* payload, void* ctx)
    {
        Payload* p = (Payload*)payload;
        // SAFETY: payload is a live Payload until this destructor returns.
        if (Interlocked.Exchange(ref p->Destroyed, 1) != 0 || p->Canary != Canary)
        {
            Interlocked.Increment(ref s_badDestroy);
        }

        Interlocked.Increment(ref s_destroyed);
    }

    [Fact]
    public void CloneDropDowngradeUpgrade_ManyThreads_ExactlyOnceEverything()
    {
        const int objects = 32;
        int threads = StressConfig.Threads;
        TimeSpan duration = StressConfig.Duration(2);
        using var probe = new WarningProbe();
        NativeHeap.Quarantine = true;
        long live0 = NativeHeap.LiveCount, destroyed0 = Interlocked.Read(ref s_destroyed), bad0 = Interlocked.Read(ref s_badDestroy);
        long created = 0, upgradeAfterDestroy = 0, upgrades = 0;
        var clock = Stopwatch.StartNew();
        try
        {
            while (StressConfig.Continue(clock, duration, Interlocked.Read(ref upgrades) > 0))
            {
                var objs = new nint[objects];
                var weaks = new nuint[threads, objects];
                for (int k = 0; k < objects; k++)
                {
                    Assert.Equal(RrStatus.Ok, RawArc.Create((nuint)sizeof(Payload), 8, &Dtor, null, out void* p));
                    ((Payload*)p)->Canary = Canary;
                    ArcHeader* h = RawArc.DangerousHeader(p);
                    for (int t = 0; t < threads; t++)
                    {
                        weaks[t, k] = RawArc.Downgrade(h);
                        if (t > 0)
                        {
                            RawArc.Clone(h); // one strong reference per thread
                        }
                    }

                    objs[k] = (nint)h;
                    created++;
                }

                using var go = new ManualResetEventSlim();
                var workers = new Thread[threads];
                for (int t = 0; t < threads; t++)
                {
                    int me = t;
                    workers[t] = new Thread(() =>
                    {
                        var rng = new Random(me + (int)created);
                        var haveStrong = new bool[objects];
                        Array.Fill(haveStrong, true);
                        go.Wait();
                        for (int i = 0; i < 4000; i++)
                        {
                            int k = rng.Next(objects);
                            ArcHeader* h = (ArcHeader*)objs[k];
                            switch (rng.Next(5))
                            {
                                case 0 when haveStrong[k]:
                                    // SAFETY: this thread holds a strong reference to h.
                                    RawArc.Clone(h);
                                    RawArc.Drop(h);
                                    break;
                                case 1 when haveStrong[k]:
                                    RawArc.DropWeak((ArcHeader*)(RawArc.Downgrade(h) & ~RawArc.WeakTag));
                                    break;
                                case 2:
                                case 3:
                                    // SAFETY: this thread's weak reference keeps h allocated.
                                    if (RawArc.Upgrade(h))
                                    {
                                        Interlocked.Increment(ref upgrades);
                                        Payload* pl = (Payload*)RawArc.Payload(h);
                                        if (Volatile.Read(ref pl->Destroyed) != 0 || pl->Canary != Canary)
                                        {
                                            Interlocked.Increment(ref upgradeAfterDestroy);
                                        }

                                        RawArc.Drop(h);
                                    }

                                    break;
                                case 4 when haveStrong[k] && rng.Next(8) == 0:
                                    haveStrong[k] = false;
                                    RawArc.Drop(h);
                                    break;
                            }
                        }

                        for (int k = 0; k < objects; k++)
                        {
                            ArcHeader* h = (ArcHeader*)objs[k];
                            if (haveStrong[k])
                            {
                                RawArc.Drop(h);
                            }

                            RawArc.DropWeak((ArcHeader*)(weaks[me, k] & ~RawArc.WeakTag));
                        }
                    });
                    workers[t].Start();
                }

                go.Set();
                foreach (Thread w in workers)
                {
                    w.Join();
                }

                foreach (nint o in objs)
                {
                    // Every object is freed: its header in quarantine reads dead.
                    Assert.Equal(RrStatus.BadHandle, RawArc.TryGetHeader(RawArc.Payload((ArcHeader*)o), out _));
                }
            }

            output.WriteLine($"arcs {created}, upgrades {upgrades}, upgrades after destroy {upgradeAfterDestroy}, bad destroys {Interlocked.Read(ref s_badDestroy) - bad0}");
            Assert.Equal(0, Interlocked.Read(ref upgradeAfterDestroy));
            Assert.Equal(bad0, Interlocked.Read(ref s_badDestroy));
            Assert.Equal(destroyed0 + created, Interlocked.Read(ref s_destroyed));
            Assert.Equal(live0, NativeHeap.LiveCount);
            Assert.True(upgrades > 0);
            probe.AssertNone();
        }
        finally
        {
            NativeHeap.Quarantine = false;
            NativeHeap.ReleaseQuarantine();
        }
    }
}
