using System;
using System.Threading;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core;
using RefRuntime.Core.Sync;

namespace RefRuntime.Benchmarks.Sync;

/// <summary>
/// One thread: take and give back a reference to a shared object, 100 times per invocation.
/// Baseline: the raw Interlocked pair. Goals (issue #3): clone+drop ≤ 1.1× the raw pair;
/// upgrade+drop ≤ 1.5× clone+drop; ≥ 2× faster than the lock-based handle.
/// </summary>
public unsafe class ArcBenchmarks
{
    private const int Pairs = 100;

    private int _raw = 1;
    private ArcHeader* _header;
    private nuint _weak;
    private Arc<long> _managed = null!;
    private Weak<long> _managedWeak = null!;
    private LockedHandle _locked = null!;

    [GlobalSetup]
    public void Setup()
    {
        if (RawArc.Create(8, 8, null, null, out void* p) != RrStatus.Ok)
        {
            throw new InvalidOperationException("RawArc.Create failed");
        }

        _header = RawArc.DangerousHeader(p);
        _weak = RawArc.Downgrade(_header);
        _managed = Arc<long>.Create(1);
        _managedWeak = _managed.Downgrade();
        _locked = new LockedHandle();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        RawArc.DropWeak((ArcHeader*)(_weak & ~RawArc.WeakTag));
        RawArc.Drop(_header);
        _managedWeak.Dispose();
        _managed.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public int Interlocked_Pair() => Baselines.InterlockedPairs(ref _raw, Pairs);

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void RawArc_CloneDrop()
    {
        ArcHeader* h = _header;
        for (int i = 0; i < Pairs; i++)
        {
            RawArc.Clone(h);
            RawArc.Drop(h);
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void RawArc_UpgradeDrop()
    {
        ArcHeader* h = (ArcHeader*)(_weak & ~RawArc.WeakTag);
        for (int i = 0; i < Pairs; i++)
        {
            if (RawArc.Upgrade(h))
            {
                RawArc.Drop(h);
            }
        }
    }

    /// <summary>The managed handle: each Clone allocates a finalizable handle object, each Dispose suppresses its finalizer.</summary>
    [Benchmark(OperationsPerInvoke = Pairs)]
    public void ManagedArc_CloneDispose()
    {
        Arc<long> a = _managed;
        for (int i = 0; i < Pairs; i++)
        {
            a.Clone().Dispose();
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void ManagedWeak_UpgradeDispose()
    {
        Weak<long> w = _managedWeak;
        for (int i = 0; i < Pairs; i++)
        {
            w.TryUpgrade()!.Dispose();
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void LockedHandle_CloneDrop()
    {
        LockedHandle l = _locked;
        for (int i = 0; i < Pairs; i++)
        {
            l.Clone();
            l.Drop();
        }
    }
}

/// <summary>
/// The lock-based shared handle a user would otherwise write: a count and a "destroyed" flag
/// behind a lock, checked on every clone.
/// </summary>
internal sealed class LockedHandle
{
    private readonly Lock _gate = new();
    private int _count = 1;
    private bool _destroyed;

    public void Clone()
    {
        lock (_gate)
        {
            if (_destroyed)
            {
                throw new ObjectDisposedException(nameof(LockedHandle));
            }

            _count++;
        }
    }

    public bool TryUpgrade()
    {
        lock (_gate)
        {
            if (_destroyed || _count == 0)
            {
                return false;
            }

            _count++;
            return true;
        }
    }

    public void Drop()
    {
        lock (_gate)
        {
            if (--_count == 0)
            {
                _destroyed = true;
            }
        }
    }
}
