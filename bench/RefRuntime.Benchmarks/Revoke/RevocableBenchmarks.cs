using System.Threading;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core.Rcu;
using CoreDomain = RefRuntime.Core.Rcu.RawRcuDomain;
using CoreRevocable = RefRuntime.Core.Revoke.RawRevocable<RefRuntime.Benchmarks.Revoke.Hw>;

namespace RefRuntime.Benchmarks.Revoke;

/// <summary>A stand-in for hardware state.</summary>
public sealed class Hw
{
    public long Register = 42;
}

/// <summary>
/// Accessing a revocable resource (try_access + read + release), 100 per invocation, against the
/// RCU read section it is built on (baseline). Goal (issue #5): ≤ 1.2× the RCU read pair.
/// </summary>
public unsafe class RevocableBenchmarks
{
    private const int Accesses = 100;

    private readonly CoreDomain _domain = new();
    private readonly RefRuntime.RcuDomain _managedDomain = new();
    private Hw _hw = new();
    private CoreRevocable _core = null!;
    private Revocable<Hw> _managed = null!;

    [GlobalSetup]
    public void Setup()
    {
        _core = new CoreRevocable(_domain, _hw);
        _managed = new Revocable<Hw>(_hw, _managedDomain);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _domain.Dispose();
        _managedDomain.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Accesses)]
    public long Rcu_ReadSection()
    {
        long sum = 0;
        for (int i = 0; i < Accesses; i++)
        {
            RcuReader* r = _domain.ReadLockRecord();
            sum += Volatile.Read(ref _hw).Register;
            CoreDomain.ReadUnlock(r);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public long Revocable_Core_TryAccess()
    {
        long sum = 0;
        CoreRevocable rv = _core;
        for (int i = 0; i < Accesses; i++)
        {
            Hw? h = rv.TryAccess(out RcuReader* r);
            if (h is not null)
            {
                sum += h.Register;
                CoreDomain.ReadUnlock(r);
            }
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public long Revocable_Managed_Guard()
    {
        long sum = 0;
        Revocable<Hw> rv = _managed;
        for (int i = 0; i < Accesses; i++)
        {
            if (rv.TryAccess(out RevocableGuard<Hw> g))
            {
                using (g)
                {
                    sum += g.Value!.Register;
                }
            }
        }

        return sum;
    }
}
