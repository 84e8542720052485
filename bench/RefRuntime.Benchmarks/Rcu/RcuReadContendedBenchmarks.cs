using System.Threading;
using BenchmarkDotNet.Attributes;
using Epoch = DotNext.Threading.Epoch;
using CoreDomain = RefRuntime.Core.Rcu.RawRcuDomain;

namespace RefRuntime.Benchmarks.Rcu;

/// <summary>
/// Two reader threads: in each invocation both run the same batch of read sections at once.
/// Locks and shared counters bounce a cache line between the CPUs; RCU readers write only their
/// own record. Read beside <see cref="Sync.RefcountContendedBenchmarks.PingPong_OneWayLatency"/>.
/// </summary>
public class RcuReadContendedBenchmarks
{
    private const int Sections = 1000;

    private sealed class Node(long value)
    {
        public readonly long Value = value;
    }

    private readonly PartnerThread _partner = new();
    private readonly ReaderWriterLockSlim _rwls = new();
    private readonly System.Threading.Lock _lock = new();
    private readonly Epoch _epoch = new();
    private readonly CoreDomain _core = new();
    private Node _node = new(42);

    [GlobalSetup(Target = nameof(ReaderWriterLockSlim_Read_2Threads))]
    public void SetupRwls() => _partner.Start(() => (int)Rwls());

    [GlobalSetup(Target = nameof(ThreadingLock_2Threads))]
    public void SetupLock() => _partner.Start(() => (int)Locked());

    [GlobalSetup(Target = nameof(DotNext_Epoch_2Threads))]
    public void SetupEpoch() => _partner.Start(() => (int)EpochSections());

    [GlobalSetup(Target = nameof(Rcu_Core_2Threads))]
    public void SetupRcu() => _partner.Start(() => (int)Rcu());

    [GlobalCleanup]
    public void Cleanup()
    {
        _partner.Stop();
        _core.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Sections)]
    public long ReaderWriterLockSlim_Read_2Threads() => _partner.RunBoth(Rwls);

    [Benchmark(OperationsPerInvoke = Sections)]
    public long ThreadingLock_2Threads() => _partner.RunBoth(Locked);

    [Benchmark(OperationsPerInvoke = Sections)]
    public long DotNext_Epoch_2Threads() => _partner.RunBoth(EpochSections);

    [Benchmark(OperationsPerInvoke = Sections)]
    public long Rcu_Core_2Threads() => _partner.RunBoth(Rcu);

    private long Rwls()
    {
        long sum = 0;
        for (int i = 0; i < Sections; i++)
        {
            _rwls.EnterReadLock();
            sum += Volatile.Read(ref _node).Value;
            _rwls.ExitReadLock();
        }

        return sum;
    }

    private long Locked()
    {
        long sum = 0;
        for (int i = 0; i < Sections; i++)
        {
            lock (_lock)
            {
                sum += _node.Value;
            }
        }

        return sum;
    }

    private long EpochSections()
    {
        long sum = 0;
        for (int i = 0; i < Sections; i++)
        {
            Epoch.Scope scope = _epoch.Enter();
            sum += Volatile.Read(ref _node).Value;
            scope.Dispose();
        }

        return sum;
    }

    private long Rcu()
    {
        long sum = 0;
        CoreDomain d = _core;
        for (int i = 0; i < Sections; i++)
        {
            d.ReadLock();
            sum += Volatile.Read(ref _node).Value;
            d.ReadUnlock();
        }

        return sum;
    }
}
