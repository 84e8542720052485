using System;
using System.Threading;
using BenchmarkDotNet.Attributes;

namespace RefRuntime.Benchmarks.Devices;

// Inside the namespace: this file means Core's types, found here before the safe layer's (namespace RefRuntime).
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;

/// <summary>
/// GPIO operations through the driver pair (issue #9): the same PL061 reached through the
/// virtio-gpio front end → split ring → device thread → PL061 driver (Ring_*), through a
/// lock-based request queue between the same two threads (Locked_*, the baseline: lock +
/// Queue&lt;T&gt; + Monitor.Wait/PulseAll), and by calling the driver directly (Direct_*, no second
/// thread). SetGet = one Set then one Get on one line (2 operations, each a full round trip);
/// GetMultiple8 = 8 lines read with all 8 requests in flight at once (pipelined); IrqRoundTrip =
/// an input edge made at the model until the consumer's handler has run. Figures are per
/// operation. Latency percentiles: the main job (./run.sh) prints p50/p99 per path.
/// </summary>
public class VirtioGpioBenchmarks
{
    private const int Ops = 64;
    private static readonly int[] Lines8 = [0, 1, 2, 3, 4, 5, 6, 7];

    private GpioPairStack? _stack;
    private bool _level;
    private int _fired;
    private readonly bool[] _values = new bool[8];

    [GlobalSetup]
    public void Setup()
    {
        _stack = new GpioPairStack();
        for (int l = 0; l < 7; l++)
        {
            Check(_stack.Direct.DirectionOutput(l, false));
            Check(_stack.Ring.DirectionOutput(l, false)); // the device's state: outputs too
        }

        Check(_stack.Ring.DirectionInput(7));
    }

    [GlobalSetup(Targets = [nameof(Ring_IrqRoundTrip)])]
    public void SetupRingIrq()
    {
        Setup();
        Check(_stack!.Ring.SetIrqType(7, RawGpioIrqType.EdgeBoth));
        Check(_stack.Ring.SetIrqHandler(7, _ => Interlocked.Increment(ref _fired)));
    }

    [GlobalSetup(Targets = [nameof(Direct_IrqRoundTrip), nameof(Locked_IrqRoundTrip)])]
    public void SetupDirectIrq()
    {
        Setup();
        Check(_stack!.Direct.DirectionInput(7));
        Check(_stack.Direct.SetIrqType(7, RawGpioIrqType.EdgeBoth));
        Check(_stack.Direct.SetIrqHandler(7, _ => Interlocked.Increment(ref _fired)));
    }

    [GlobalCleanup]
    public void Cleanup() => _stack?.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = 2 * Ops)]
    public int Locked_SetGet() => SetGet(_stack!.Locked);

    [Benchmark(OperationsPerInvoke = 2 * Ops)]
    public int Ring_SetGet() => SetGet(_stack!.Ring);

    [Benchmark(OperationsPerInvoke = 2 * Ops)]
    public int Direct_SetGet() => SetGet(_stack!.Direct);

    [Benchmark(OperationsPerInvoke = 8 * Ops)]
    public int Locked_GetMultiple8()
    {
        for (int i = 0; i < Ops; i++)
        {
            _stack!.Locked.GetMultiple(Lines8, _values);
        }

        return _values[0] ? 1 : 0;
    }

    [Benchmark(OperationsPerInvoke = 8 * Ops)]
    public int Ring_GetMultiple8()
    {
        for (int i = 0; i < Ops; i++)
        {
            _stack!.Ring.GetMultiple(Lines8, _values);
        }

        return _values[0] ? 1 : 0;
    }

    [Benchmark(OperationsPerInvoke = 8 * Ops)]
    public int Direct_GetMultiple8()
    {
        int n = 0;
        for (int i = 0; i < Ops; i++)
        {
            foreach (int l in Lines8)
            {
                _stack!.Direct.Get(l, out bool v);
                n += v ? 1 : 0;
            }
        }

        return n;
    }

    /// <summary>Interrupt round trip through the pair: model edge → PL061 → device → eventq → front end → handler.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int Ring_IrqRoundTrip() => IrqRoundTrips();

    /// <summary>The same edge with the handler on the PL061 driver directly (runs inside the model's write).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int Direct_IrqRoundTrip() => IrqRoundTrips();

    /// <summary>The lock-based queue forwards interrupt handlers to the driver unchanged: the same figure as Direct.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int Locked_IrqRoundTrip() => IrqRoundTrips();

    private int SetGet(IGpioChip chip)
    {
        int n = 0;
        for (int i = 0; i < Ops; i++)
        {
            chip.Set(0, (i & 1) != 0);
            chip.Get(0, out bool v);
            n += v ? 1 : 0;
        }

        return n;
    }

    private int IrqRoundTrips()
    {
        for (int i = 0; i < Ops; i++)
        {
            int before = Volatile.Read(ref _fired);
            _level = !_level;
            _stack!.Model.SetInput(7, _level);
            var spin = new SpinWait();
            while (Volatile.Read(ref _fired) == before)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        return _fired;
    }

    private static void Check(RrStatus s)
    {
        if (s != RrStatus.Ok)
        {
            throw new InvalidOperationException($"benchmark setup failed: {s}");
        }
    }
}
