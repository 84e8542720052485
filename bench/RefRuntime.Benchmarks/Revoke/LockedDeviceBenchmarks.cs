using System.Threading;
using BenchmarkDotNet.Attributes;

namespace RefRuntime.Benchmarks.Revoke;

/// <summary>
/// Guarding every call of a device API, 100 calls per invocation. Baseline: the lock-based design
/// a user would write (ReaderWriterLockSlim read lock around a nullable resource, set to null on
/// removal). Goals (issue #5): revocable access ≥ 5× faster (ratio ≤ 0.2); gate enter+leave reported.
/// </summary>
public class LockedDeviceBenchmarks
{
    private const int Calls = 100;

    private readonly ReaderWriterLockSlim _rwls = new();
    private readonly DeviceGate _gate = new();
    private readonly Revocable<Hw> _revocable = new(new Hw());
    private Hw? _nullable = new();

    [GlobalCleanup]
    public void Cleanup()
    {
        _gate.Dispose();
        _rwls.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Calls)]
    public long ReaderWriterLockSlim_NullableResource() => GuardedCalls.Rwls(_rwls, ref _nullable, Calls);

    [Benchmark(OperationsPerInvoke = Calls)]
    public long Revocable_TryAccess() => GuardedCalls.Revocable(_revocable, Calls);

    [Benchmark(OperationsPerInvoke = Calls)]
    public long Gate_EnterLeave() => GuardedCalls.Gate(_gate, Calls);
}

/// <summary>The three guarded-call loops both classes measure (one copy of each).</summary>
internal static class GuardedCalls
{
    /// <summary>A read lock around a nullable resource (read under the lock, as removal nulls it): the lock-based design.</summary>
    public static long Rwls(ReaderWriterLockSlim rwls, ref Hw? nullable, int calls)
    {
        long sum = 0;
        for (int i = 0; i < calls; i++)
        {
            rwls.EnterReadLock();
            Hw? h = nullable;
            if (h is not null)
            {
                sum += h.Register;
            }

            rwls.ExitReadLock();
        }

        return sum;
    }

    /// <summary>Revocable access with a guard.</summary>
    public static long Revocable(Revocable<Hw> revocable, int calls)
    {
        long sum = 0;
        for (int i = 0; i < calls; i++)
        {
            if (revocable.TryAccess(out RevocableGuard<Hw> g))
            {
                using (g)
                {
                    sum += g.Value!.Register;
                }
            }
        }

        return sum;
    }

    /// <summary>Gate enter and leave.</summary>
    public static long Gate(DeviceGate gate, int calls)
    {
        long sum = 0;
        for (int i = 0; i < calls; i++)
        {
            if (gate.TryEnter(out GateCall c))
            {
                using (c)
                {
                    sum += i;
                }
            }
        }

        return sum;
    }
}

/// <summary>The same on two threads at once (both run the batch in each invocation).</summary>
public class LockedDeviceContendedBenchmarks
{
    private const int Calls = 1000;

    private readonly PartnerThread _partner = new();
    private readonly ReaderWriterLockSlim _rwls = new();
    private readonly DeviceGate _gate = new();
    private readonly Revocable<Hw> _revocable = new(new Hw());
    private Hw? _nullable = new();

    [GlobalSetup(Target = nameof(ReaderWriterLockSlim_2Threads))]
    public void SetupRwls() => _partner.Start(() => (int)Rwls());

    [GlobalSetup(Target = nameof(Revocable_2Threads))]
    public void SetupRevocable() => _partner.Start(() => (int)Revocable());

    [GlobalSetup(Target = nameof(Gate_2Threads))]
    public void SetupGate() => _partner.Start(() => (int)Gate());

    [GlobalCleanup]
    public void Cleanup()
    {
        _partner.Stop();
        _gate.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Calls)]
    public long ReaderWriterLockSlim_2Threads() => _partner.RunBoth(Rwls);

    [Benchmark(OperationsPerInvoke = Calls)]
    public long Revocable_2Threads() => _partner.RunBoth(Revocable);

    [Benchmark(OperationsPerInvoke = Calls)]
    public long Gate_2Threads() => _partner.RunBoth(Gate);

    private long Rwls() => GuardedCalls.Rwls(_rwls, ref _nullable, Calls);

    private long Revocable() => GuardedCalls.Revocable(_revocable, Calls);

    private long Gate() => GuardedCalls.Gate(_gate, Calls);
}

/// <summary>
/// The cost of taking a device away while two reader threads keep accessing the same RCU domain:
/// revoke (unpublish, grace period, release) and gate disconnect (close, drain). Baseline: the
/// lock-based removal (write lock, null the resource).
/// </summary>
public class RemovalBenchmarks
{
    private readonly RcuDomain _domain = new();
    private readonly Revocable<Hw> _busy;
    private readonly ReaderWriterLockSlim _rwls = new();
    private readonly ManualResetEventSlim _stop = new();
    private Thread[] _readers = [];
    private Hw? _nullable = new();

    public RemovalBenchmarks() => _busy = new Revocable<Hw>(new Hw(), _domain);

    [GlobalSetup]
    public void Setup()
    {
        _readers = new Thread[2];
        for (int i = 0; i < _readers.Length; i++)
        {
            _readers[i] = new Thread(() =>
            {
                while (!_stop.IsSet)
                {
                    if (_busy.TryAccess(out RevocableGuard<Hw> g))
                    {
                        g.Dispose();
                    }
                }
            }) { IsBackground = true };
            _readers[i].Start();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop.Set();
        foreach (Thread t in _readers)
        {
            t.Join();
        }

        _domain.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void ReaderWriterLockSlim_Remove()
    {
        _rwls.EnterWriteLock();
        _nullable = _nullable is null ? new Hw() : null;
        _rwls.ExitWriteLock();
    }

    [Benchmark]
    public bool Revocable_CreateAndRevoke_ReadersInFlight() => new Revocable<Hw>(new Hw(), _domain).Revoke();

    [Benchmark]
    public bool Gate_CreateDisconnectDestroy()
    {
        using var gate = new DeviceGate();
        return gate.Disconnect();
    }
}
