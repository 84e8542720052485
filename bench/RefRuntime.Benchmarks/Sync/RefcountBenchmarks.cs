using System.Threading;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core.Sync;

namespace RefRuntime.Benchmarks.Sync;

/// <summary>
/// One thread, one counter: a reference taken and dropped (inc + dec_and_test), 100 pairs per
/// invocation. Baseline: the raw Interlocked pair a user would write without saturation checks.
/// Goal (issue #2): RefRuntime's pair ≤ 1.05× the raw pair.
/// </summary>
[MemoryDiagnoser(false)]
public class RefcountBenchmarks
{
    private const int Pairs = 100;

    private int _raw = 1;
    private int _core = 1;
    private readonly RefCount _managed = new();
    private readonly object _gate = new();
    private readonly Lock _lock = new();
    private int _locked = 1;

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public int Interlocked_Pair() => Baselines.InterlockedPairs(ref _raw, Pairs);

    [Benchmark(OperationsPerInvoke = Pairs)]
    public int Refcount_Core_Pair()
    {
        int hits = 0;
        for (int i = 0; i < Pairs; i++)
        {
            Refcount.Inc(ref _core);
            if (Refcount.DecAndTest(ref _core))
            {
                hits++;
            }
        }

        return hits;
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public int RefCount_Managed_Pair()
    {
        int hits = 0;
        RefCount r = _managed;
        for (int i = 0; i < Pairs; i++)
        {
            r.Inc();
            if (r.DecAndTest())
            {
                hits++;
            }
        }

        return hits;
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public int LockedCounter_Monitor_Pair()
    {
        int hits = 0;
        for (int i = 0; i < Pairs; i++)
        {
            lock (_gate)
            {
                _locked++;
            }

            lock (_gate)
            {
                if (--_locked == 0)
                {
                    hits++;
                }
            }
        }

        return hits;
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public int LockedCounter_Lock_Pair()
    {
        int hits = 0;
        for (int i = 0; i < Pairs; i++)
        {
            lock (_lock)
            {
                _locked++;
            }

            lock (_lock)
            {
                if (--_locked == 0)
                {
                    hits++;
                }
            }
        }

        return hits;
    }
}
