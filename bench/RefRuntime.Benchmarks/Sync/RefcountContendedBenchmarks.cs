using System.Threading;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core.Sync;

namespace RefRuntime.Benchmarks.Sync;

/// <summary>
/// Two threads, one counter: in each invocation the measured thread and a partner thread both
/// run the same batch of inc + dec_and_test pairs on the same counter, and the invocation ends
/// when both are done, so the figure is the time per pair while the cache line bounces between
/// two CPUs. Cross-thread figures on these VMs swing with the one-way cache-line latency
/// (docs/measuring.md), so <see cref="PingPong_OneWayLatency"/> measures it in the same
/// run: read every ratio beside it.
/// </summary>
public class RefcountContendedBenchmarks
{
    private const int Pairs = 1000;

    private readonly PaddedCounter _raw = new();
    private readonly PaddedCounter _core = new();
    private readonly PaddedCounter _locked = new();
    private readonly object _gate = new();
    private readonly PartnerThread _partner = new();

    [GlobalSetup(Target = nameof(Interlocked_Pair_2Threads))]
    public void SetupInterlocked() => _partner.Start(() => Baselines.InterlockedPairs(ref _raw.Value, Pairs));

    [GlobalSetup(Target = nameof(Refcount_Pair_2Threads))]
    public void SetupRefcount() => _partner.Start(() => RefcountPairs(_core));

    [GlobalSetup(Target = nameof(LockedCounter_Pair_2Threads))]
    public void SetupLocked() => _partner.Start(() => LockedPairs(_locked, _gate));

    [GlobalSetup(Target = nameof(PingPong_OneWayLatency))]
    public void SetupPingPong() => _partner.StartPong();

    [GlobalCleanup]
    public void Cleanup() => _partner.Stop();

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public long Interlocked_Pair_2Threads() => _partner.RunBoth(() => Baselines.InterlockedPairs(ref _raw.Value, Pairs));

    [Benchmark(OperationsPerInvoke = Pairs)]
    public long Refcount_Pair_2Threads() => _partner.RunBoth(() => RefcountPairs(_core));

    [Benchmark(OperationsPerInvoke = Pairs)]
    public long LockedCounter_Pair_2Threads() => _partner.RunBoth(() => LockedPairs(_locked, _gate));

    /// <summary>One-way cache-line transfer latency (round trips to the partner, each counted as two operations).</summary>
    [Benchmark(OperationsPerInvoke = 2 * Pairs)]
    public int PingPong_OneWayLatency() => _partner.PingPong(Pairs);

    private static int RefcountPairs(PaddedCounter c)
    {
        int hits = 0;
        for (int i = 0; i < Pairs; i++)
        {
            Refcount.Inc(ref c.Value);
            if (Refcount.DecAndTest(ref c.Value))
            {
                hits++;
            }
        }

        return hits;
    }

    private static int LockedPairs(PaddedCounter c, object gate)
    {
        int hits = 0;
        for (int i = 0; i < Pairs; i++)
        {
            lock (gate)
            {
                c.Value++;
            }

            lock (gate)
            {
                if (--c.Value == 0)
                {
                    hits++;
                }
            }
        }

        return hits;
    }
}
