using System.Threading;
using BenchmarkDotNet.Attributes;
using Epoch = DotNext.Threading.Epoch;
using CoreDomain = RefRuntime.Core.Rcu.RawRcuDomain;

namespace RefRuntime.Benchmarks.Rcu;

/// <summary>
/// A read-mostly section - enter, dereference a shared reference, read a field, leave - on one
/// thread, 100 sections per invocation. Baseline: ReaderWriterLockSlim's read lock, the design a
/// .NET user would otherwise write. Goal (issue #4): RCU ≥ 10× faster than ReaderWriterLockSlim.
/// </summary>
public class RcuReadBenchmarks
{
    private const int Sections = 100;

    private sealed class Node(long value)
    {
        public readonly long Value = value;
    }

    private readonly ReaderWriterLockSlim _rwls = new();
    private readonly object _monitor = new();
    private readonly System.Threading.Lock _lock = new();
    private readonly Epoch _epoch = new();
    private readonly CoreDomain _core = new();
    private readonly RcuDomain _managed = new();
    private Node _node = new(42);

    [GlobalCleanup]
    public void Cleanup()
    {
        _core.Dispose();
        _managed.Dispose();
        _rwls.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Sections)]
    public long ReaderWriterLockSlim_Read()
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

    [Benchmark(OperationsPerInvoke = Sections)]
    public long Monitor_Lock()
    {
        long sum = 0;
        for (int i = 0; i < Sections; i++)
        {
            lock (_monitor)
            {
                sum += _node.Value;
            }
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Sections)]
    public long ThreadingLock_Lock()
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

    [Benchmark(OperationsPerInvoke = Sections)]
    public long DotNext_Epoch()
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

    [Benchmark(OperationsPerInvoke = Sections)]
    public long Rcu_Core_ReadLock()
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

    [Benchmark(OperationsPerInvoke = Sections)]
    public long Rcu_Managed_Guard()
    {
        long sum = 0;
        RcuDomain d = _managed;
        for (int i = 0; i < Sections; i++)
        {
            using RcuReadGuard g = d.ReadLock();
            sum += Volatile.Read(ref _node).Value;
        }

        return sum;
    }
}
