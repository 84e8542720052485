using System.Threading;
using BenchmarkDotNet.Attributes;
using CoreDomain = RefRuntime.Core.Rcu.RawRcuDomain;

namespace RefRuntime.Benchmarks.Rcu;

/// <summary>
/// The writer's side: a grace period with idle readers (two threads that read once and then
/// stay outside any section), and call throughput (1000 calls then one barrier, per call).
/// Baseline: taking and releasing ReaderWriterLockSlim's write lock, what a lock-based design's
/// writer pays instead of waiting for a grace period.
/// </summary>
public class RcuWriteBenchmarks
{
    private const int Calls = 1000;

    private readonly ReaderWriterLockSlim _rwls = new();
    private readonly CoreDomain _d = new();
    private Thread[] _idle = [];
    private readonly ManualResetEventSlim _stop = new();

    [GlobalSetup]
    public void Setup()
    {
        _idle = new Thread[2];
        for (int i = 0; i < _idle.Length; i++)
        {
            _idle[i] = new Thread(() =>
            {
                _d.ReadLock();
                _d.ReadUnlock();
                _stop.Wait();
            }) { IsBackground = true };
            _idle[i].Start();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop.Set();
        foreach (Thread t in _idle)
        {
            t.Join();
        }

        _d.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void ReaderWriterLockSlim_Write()
    {
        _rwls.EnterWriteLock();
        _rwls.ExitWriteLock();
    }

    [Benchmark]
    public RrStatusBox Synchronize_IdleReaders() => new(_d.Synchronize());

    [Benchmark(OperationsPerInvoke = Calls)]
    public void Call_ThenBarrier()
    {
        for (int i = 0; i < Calls; i++)
        {
            _d.Call(static () => { });
        }

        _d.Barrier();
    }

    /// <summary>Returned so the call is not optimised away.</summary>
    public readonly record struct RrStatusBox(Core.RrStatus Status);
}
