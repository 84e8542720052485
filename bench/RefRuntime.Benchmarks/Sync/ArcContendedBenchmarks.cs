using System;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core;
using RefRuntime.Core.Sync;

namespace RefRuntime.Benchmarks.Sync;

/// <summary>
/// Two threads on one object: both run the same batch of clone+drop (or upgrade+drop) in each
/// invocation; the baseline is the raw Interlocked pair under the same contention. Read beside
/// <see cref="RefcountContendedBenchmarks.PingPong_OneWayLatency"/> of the same run.
/// </summary>
public unsafe class ArcContendedBenchmarks
{
    private const int Pairs = 1000;

    private readonly PartnerThread _partner = new();
    private readonly PaddedCounter _raw = new();
    private ArcHeader* _header;
    private nuint _weak;
    private LockedHandle _locked = null!;

    private void Setup()
    {
        if (RawArc.Create(8, 8, null, null, out void* p) != RrStatus.Ok)
        {
            throw new InvalidOperationException("RawArc.Create failed");
        }

        _header = RawArc.DangerousHeader(p);
        _weak = RawArc.Downgrade(_header); // the weak reference the upgrade benchmark holds
        _locked = new LockedHandle();
    }

    [GlobalSetup(Target = nameof(Interlocked_Pair_2Threads))]
    public void SetupRaw()
    {
        Setup();
        _partner.Start(() => Baselines.InterlockedPairs(ref _raw.Value, Pairs));
    }

    [GlobalSetup(Target = nameof(RawArc_CloneDrop_2Threads))]
    public void SetupClone()
    {
        Setup();
        _partner.Start(() => CloneDrop(_header));
    }

    [GlobalSetup(Target = nameof(RawArc_UpgradeDrop_2Threads))]
    public void SetupUpgrade()
    {
        Setup();
        _partner.Start(() => UpgradeDrop(_header));
    }

    [GlobalSetup(Target = nameof(LockedHandle_CloneDrop_2Threads))]
    public void SetupLocked()
    {
        Setup();
        _partner.Start(() => LockedCloneDrop(_locked));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _partner.Stop();
        RawArc.DropWeak((ArcHeader*)(_weak & ~RawArc.WeakTag));
        RawArc.Drop(_header);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public long Interlocked_Pair_2Threads() => _partner.RunBoth(() => Baselines.InterlockedPairs(ref _raw.Value, Pairs));

    [Benchmark(OperationsPerInvoke = Pairs)]
    public long LockedHandle_CloneDrop_2Threads() => _partner.RunBoth(() => LockedCloneDrop(_locked));

    [Benchmark(OperationsPerInvoke = Pairs)]
    public long RawArc_CloneDrop_2Threads() => _partner.RunBoth(() => CloneDrop(_header));

    [Benchmark(OperationsPerInvoke = Pairs)]
    public long RawArc_UpgradeDrop_2Threads() => _partner.RunBoth(() => UpgradeDrop(_header));

    private static int CloneDrop(ArcHeader* h)
    {
        for (int i = 0; i < Pairs; i++)
        {
            RawArc.Clone(h);
            RawArc.Drop(h);
        }

        return Pairs;
    }

    private static int UpgradeDrop(ArcHeader* h)
    {
        int n = 0;
        for (int i = 0; i < Pairs; i++)
        {
            if (RawArc.Upgrade(h))
            {
                RawArc.Drop(h);
                n++;
            }
        }

        return n;
    }

    private static int LockedCloneDrop(LockedHandle l)
    {
        for (int i = 0; i < Pairs; i++)
        {
            l.Clone();
            l.Drop();
        }

        return Pairs;
    }
}
