using System;
using System.Diagnostics;
using System.Threading;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Revoke;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.Revoke;

/// <summary>
/// Hot-unplug torture for the revocation primitives, as long as asked: generation after
/// generation, a Revocable resource and a CallGate-guarded device are created, hammered by
/// reader threads, and torn down (revoke / disconnect, then the resource is poisoned) while the
/// readers keep going. A reader that ever sees a poisoned resource, a resource released twice or
/// a call admitted after disconnect returned is an error. Prints its counts.
/// </summary>
public sealed unsafe class RevocationTortureTests
{
    private readonly ITestOutputHelper _output;

    public RevocationTortureTests(ITestOutputHelper output) => _output = output;

    private sealed class Resource
    {
        public int Poisoned;
        public int Releases;
    }

    private sealed class Generation
    {
        public required RawRevocable<Resource> Revocable { get; init; }

        public required Resource ViaRevocable { get; init; }

        public required CallGate Gate { get; init; }

        public required Resource ViaGate { get; init; }

        public required long Number { get; init; }

        public int GateClosed; // set once Disconnect returned
    }

    [Fact]
    [Trait("Category", "Stress")]
    public void Revoke_and_disconnect_under_readers_for_the_stress_duration()
    {
        TimeSpan duration = StressConfig.Duration(1.5);
        int readers = Math.Min(StressConfig.Threads, 6);
        using var domain = new RawRcuDomain();
        Generation current = NewGeneration(domain, 0);
        // Each reader announces the generation it works on, so that a gate is destroyed only once
        // no reader can still enter it (destroying a gate under a caller is not allowed).
        var working = new long[readers];
        long accesses = 0, refused = 0, gateCalls = 0, gateRefused = 0, errors = 0;
        int generations = 0;
        using var stop = new CancellationTokenSource();
        string? firstError = null;
        void Error(string what)
        {
            Interlocked.Increment(ref errors);
            Interlocked.CompareExchange(ref firstError, what, null);
        }

        int anyAccess = 0, anyGateCall = 0; // live: the readers got in at least once
        var threads = new Thread[readers];
        for (int t = 0; t < readers; t++)
        {
            int me = t;
            threads[t] = new Thread(() =>
            {
                long a = 0, r = 0, g = 0, gr = 0;
                while (!stop.IsCancellationRequested)
                {
                    Generation gen = Volatile.Read(ref current);
                    Interlocked.Exchange(ref working[me], gen.Number); // full fence before the re-check
                    if (Volatile.Read(ref current) != gen)
                    {
                        continue;
                    }

                    Resource? res = gen.Revocable.TryAccess(out RcuReader* rec);
                    if (res is null)
                    {
                        r++;
                    }
                    else
                    {
                        if (a++ == 0)
                        {
                            Volatile.Write(ref anyAccess, 1);
                        }

                        Thread.SpinWait(20); // use it for a while
                        if (Volatile.Read(ref res.Poisoned) != 0)
                        {
                            Error("a Revocable access saw its resource after release");
                        }

                        RawRcuDomain.ReadUnlock(rec);
                    }

                    RcuReader* call = gen.Gate.Enter();
                    if (call == null)
                    {
                        gr++;
                    }
                    else
                    {
                        if (g++ == 0)
                        {
                            Volatile.Write(ref anyGateCall, 1);
                        }

                        if (Volatile.Read(ref gen.GateClosed) != 0)
                        {
                            Error("a gate call was admitted after Disconnect returned");
                        }

                        Thread.SpinWait(20);
                        if (Volatile.Read(ref gen.ViaGate.Poisoned) != 0)
                        {
                            Error("a gate call saw the device after it was freed");
                        }

                        CallGate.Leave(call);
                    }
                }

                Volatile.Write(ref working[me], long.MaxValue);
                Interlocked.Add(ref accesses, a);
                Interlocked.Add(ref refused, r);
                Interlocked.Add(ref gateCalls, g);
                Interlocked.Add(ref gateRefused, gr);
            })
            { IsBackground = true, Name = $"torture-reader-{t}" };
            threads[t].Start();
        }

        var clock = Stopwatch.StartNew();
        var retired = new System.Collections.Generic.List<Generation>();
        while (StressConfig.Continue(clock, duration, generations > 10 && Volatile.Read(ref anyAccess) != 0 && Volatile.Read(ref anyGateCall) != 0))
        {
            Thread.Sleep(1); // let the readers in
            Generation gen = Volatile.Read(ref current);
            Assert.Equal(RrStatus.Ok, gen.Revocable.Revoke(out bool revoked));
            Assert.True(revoked);
            Assert.Equal(RrStatus.Ok, gen.Gate.Disconnect(out bool first));
            Assert.True(first);
            Volatile.Write(ref gen.GateClosed, 1);
            Volatile.Write(ref gen.ViaGate.Poisoned, 1); // the device is "freed"
            if (gen.ViaRevocable.Releases != 1)
            {
                Error($"the resource was released {gen.ViaRevocable.Releases} times");
            }

            retired.Add(gen);
            generations++;
            Interlocked.Exchange(ref current, NewGeneration(domain, generations)); // full fence before the scan
            long oldest = long.MaxValue;
            foreach (ref long w in working.AsSpan())
            {
                oldest = Math.Min(oldest, Volatile.Read(ref w));
            }

            while (retired.Count > 0 && retired[0].Number < oldest)
            {
                FreeGate(retired[0]);
                retired.RemoveAt(0);
            }
        }

        stop.Cancel();
        foreach (Thread t in threads)
        {
            t.Join();
        }

        foreach (Generation gen in retired)
        {
            FreeGate(gen);
        }

        current.Revocable.Revoke(out _);
        current.Gate.Disconnect(out _);
        FreeGate(current);

        string counts = $"revocation torture {clock.Elapsed.TotalSeconds:F1} s, {readers} readers: {generations} generations (revocations + disconnects), " +
            $"accesses {accesses} (refused {refused}), gate calls {gateCalls} (refused {gateRefused}), errors {errors}";
        _output.WriteLine(counts);
        Console.WriteLine(counts);
        Assert.True(errors == 0, firstError);
        Assert.True(generations > 10, $"only {generations} generations ran");
        Assert.True(accesses > 0 && gateCalls > 0, "the readers never got in");
    }

    private static Generation NewGeneration(RawRcuDomain domain, long number)
    {
        var viaRevocable = new Resource();
        return new Generation
        {
            Number = number,
            ViaRevocable = viaRevocable,
            Revocable = new RawRevocable<Resource>(domain, viaRevocable, r =>
            {
                Interlocked.Increment(ref r.Releases);
                Volatile.Write(ref r.Poisoned, 1);
            }),
            Gate = new CallGate(),
            ViaGate = new Resource(),
        };
    }

    private static void FreeGate(Generation gen) => Assert.Equal(RrStatus.Ok, gen.Gate.Destroy());
}
